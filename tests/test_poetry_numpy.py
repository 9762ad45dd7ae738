"""The NumPy poem engine and the TF-free checkpoint reader against TensorFlow and the SavedModel."""

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from rnn_apps.apps.poetry.fast import ModelInputError, NumpyPoemModel, sample, uniform
from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator
from rnn_apps.export import latest_version_dir
from rnn_apps.tensor_bundle import BundleError, BundleReader, crc32c, mask_crc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = latest_version_dir(os.path.join(REPO, "models", "poetry")) or ""  # the newest shipped poem model
HAS_SHIPPED = os.path.isfile(os.path.join(SHIPPED, "variables", "variables.index"))


@pytest.fixture(scope="module")
def saved(tiny_poem_model):
    import tensorflow as tf

    return tf.saved_model.load(tiny_poem_model)


@pytest.fixture(scope="module")
def npm(tiny_poem_model):
    return NumpyPoemModel(tiny_poem_model)


def _han(npm, k, skip=0):
    return "".join(t for i, t in enumerate(npm.tokens) if npm.content[i])[skip : skip + k]


# ----------------------------------------------------------------------------------------- the bundle reader

def _assert_same_as_tf(prefix, sliced=()):
    import tensorflow as tf

    ref = tf.train.load_checkpoint(prefix)
    reader = BundleReader(prefix, verify_checksums=True)
    names = [k for k, _ in tf.train.list_variables(prefix)]
    assert reader.keys() == sorted(names)
    assert {k for k in names if reader.is_sliced(k)} == set(sliced)
    for k in names:
        if k in sliced:
            with pytest.raises(BundleError, match="slices"):
                reader.get_tensor(k)
            continue
        want, got = ref.get_tensor(k), reader.get_tensor(k)
        if isinstance(want, bytes):
            assert got == want, k
        else:
            assert got.dtype == want.dtype and got.shape == want.shape, k
            assert np.array_equal(got, want), k
    return names


def test_bundle_reader_matches_tensorflow_on_the_tiny_export(tiny_poem_model):
    names = _assert_same_as_tf(os.path.join(tiny_poem_model, "variables", "variables"))
    assert "model_weights/0/.ATTRIBUTES/VARIABLE_VALUE" in names


@pytest.mark.skipif(not HAS_SHIPPED, reason="no shipped poem model in models/poetry")
def test_bundle_reader_matches_tensorflow_on_the_shipped_model():
    import tensorflow as tf

    prefix = os.path.join(SHIPPED, "variables", "variables")
    ref = tf.train.load_checkpoint(prefix)
    reader = BundleReader(prefix)  # CRCs of 21 MB in pure Python would take long; sizes are checked
    assert reader.keys() == sorted(k for k, _ in tf.train.list_variables(prefix))
    for k in reader.keys():
        want, got = ref.get_tensor(k), reader.get_tensor(k)
        assert (got == want) if isinstance(want, bytes) else np.array_equal(got, want), k


def test_bundle_reader_dtypes_and_shards(tmp_path):
    """Several dtypes, a string array, a checkpoint split over several shard files, a sliced tensor refused."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    values = {
        "f32": tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4) / 7),
        "f16": tf.Variable(np.linspace(-2, 2, 9).astype(np.float16)),
        "i32": tf.Variable(np.array([1, -2, 3], np.int32)),
        "i64": tf.Variable(np.array([[2**40, -5]], np.int64)),
        "flag": tf.Variable(np.array([True, False, True])),
        "words": tf.Variable(tf.constant([b"spring", b"", "春眠".encode()])),
        **{f"part{i}": tf.Variable(rng.normal(size=(10, 12)).astype(np.float32)) for i in range(4)},
        "big": tf.Variable(rng.normal(size=(64, 64)).astype(np.float32)),
    }
    ckpt = tf.train.Checkpoint(**values)
    try:
        policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=4096)
        options = tf.train.CheckpointOptions(experimental_sharding_callback=policy)
        prefix = ckpt.write(str(tmp_path / "ckpt"), options=options)
    except (AttributeError, TypeError):  # an older TensorFlow without sharding policies
        prefix = ckpt.write(str(tmp_path / "ckpt"))
    probe = BundleReader(prefix)
    sliced = [k for k in probe.keys() if probe.is_sliced(k)]  # tensors larger than a shard are cut in slices
    assert "f32/.ATTRIBUTES/VARIABLE_VALUE" not in sliced and "words/.ATTRIBUTES/VARIABLE_VALUE" not in sliced
    _assert_same_as_tf(prefix, sliced)
    shards = [f for f in os.listdir(tmp_path) if ".data-" in f]
    reader = BundleReader(prefix)
    assert reader.num_shards == len(shards)
    print(f"\n{reader.num_shards} shards, sliced: {sliced}")
    assert reader.get_tensor("words/.ATTRIBUTES/VARIABLE_VALUE").tolist() == [b"spring", b"", "春眠".encode()]


def _copy_variables(tiny_poem_model, tmp_path):
    dst = tmp_path / "variables"
    shutil.copytree(os.path.join(tiny_poem_model, "variables"), dst)
    return str(dst / "variables")


def test_bundle_reader_refuses_damaged_files(tiny_poem_model, tmp_path):
    prefix = _copy_variables(tiny_poem_model, tmp_path)
    index = prefix + ".index"
    good = open(index, "rb").read()
    # truncated index: the footer (and its magic number) is gone
    open(index, "wb").write(good[:-10])
    with pytest.raises(BundleError, match="truncated or corrupted"):
        BundleReader(prefix)
    open(index, "wb").write(good[:20])
    with pytest.raises(BundleError, match="truncated"):
        BundleReader(prefix)
    # one flipped byte inside a block: its checksum no longer matches
    bad = bytearray(good)
    bad[30] ^= 0x40
    open(index, "wb").write(bytes(bad))
    with pytest.raises(BundleError, match="checksum mismatch"):
        BundleReader(prefix)
    # a snappy-compressed index block (type byte 1, checksum recomputed) is refused by name
    footer = good[-48:]
    pos, handles = 0, []
    for _ in range(4):
        v = shift = 0
        while True:
            b = footer[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        handles.append(v)
    off, size = handles[2], handles[3]
    snappy = bytearray(good)
    snappy[off + size] = 1
    snappy[off + size + 1 : off + size + 5] = struct.pack("<I", mask_crc(crc32c(b"\x01", crc32c(good[off : off + size]))))
    open(index, "wb").write(bytes(snappy))
    with pytest.raises(BundleError, match="snappy"):
        BundleReader(prefix)
    # a truncated data file: the index is fine, the tensor is not there
    open(index, "wb").write(good)
    data = prefix + ".data-00000-of-00001"
    raw = open(data, "rb").read()
    open(data, "wb").write(raw[: len(raw) // 2])
    reader = BundleReader(prefix)
    with pytest.raises(BundleError, match="truncated"):
        for k in reader.keys():
            reader.get_tensor(k)
    # a corrupted tensor is caught when checksums are verified
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0x01
    open(data, "wb").write(bytes(flipped))
    reader = BundleReader(prefix, verify_checksums=True)
    with pytest.raises(BundleError, match="Checksum mismatch"):
        for k in reader.keys():
            reader.get_tensor(k)
    with pytest.raises(BundleError, match="No checkpoint index"):
        BundleReader(str(tmp_path / "nothing" / "variables"))


# ----------------------------------------------------------------------------------------- network and sampler

def test_numpy_step_matches_the_keras_model(tiny_poem_run, npm):
    run_dir, result = tiny_poem_run
    model = result["model"]
    rng = np.random.default_rng(0)
    ids = np.concatenate([np.full((3, 1), 2), rng.integers(4, npm.vocab_size, size=(3, 30))], axis=1).astype(np.int32)
    want = np.asarray(model(ids, training=False))
    got = npm.sequence_logits(ids)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell,units", [("gru", 20), ("simple_rnn", 16), ("lstm", 16)])
def test_numpy_step_matches_keras_for_other_cells(tiny_poem_run, cell, units):
    """GRU (reset_after) and SimpleRNN models, and a model whose units equal the embedding size (no projection)."""
    from rnn_apps.apps.poetry.model import build_char_rnn

    vocab = tiny_poem_run[1]["vocab"]
    model = build_char_rnn(len(vocab), embedding_dim=16, units=units, num_layers=2, cell=cell)
    rng = np.random.default_rng(3)
    model.set_weights([w + rng.normal(scale=0.3, size=w.shape).astype(np.float32) for w in model.get_weights()])
    npm = NumpyPoemModel.from_weights(model.char_rnn_config, vocab.tokens, [np.asarray(w) for w in model.weights])
    ids = np.concatenate([np.full((2, 1), 2), rng.integers(4, len(vocab), size=(2, 20))], axis=1).astype(np.int32)
    np.testing.assert_allclose(npm.sequence_logits(ids), np.asarray(model(ids, training=False)), rtol=1e-5, atol=1e-5)


def test_sampler_matches_the_tensorflow_sampler():
    import tensorflow as tf

    from rnn_apps import samplers

    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(6, 300)) * 3).astype(np.float32)
    logits[:, :5] = np.float32(-1e9)
    seeds = np.array([0, 1, 2**62, -5, 123456789, 7], np.int64)
    temperature = np.array([0.0, 0.7, 1.0, 1.3, 0.8, 0.5], np.float32)
    top_k = np.array([0, 5, 0, 40, 1, 0], np.int32)
    top_p = np.array([1.0, 0.9, 0.5, 1.0, 0.95, 0.8], np.float32)
    for step in (0, 1, 17, 300):
        np.testing.assert_array_equal(uniform(seeds, step), samplers.uniform(tf.constant(seeds), step).numpy())
        want = samplers.sample(tf.constant(logits), tf.constant(seeds), step, tf.constant(temperature),
                               tf.constant(top_k), tf.constant(top_p)).numpy()
        np.testing.assert_array_equal(sample(logits, seeds, step, temperature, top_k, top_p), want)


def test_top_p_keeps_characters_tied_in_probability_on_both_engines():
    import tensorflow as tf

    from rnn_apps import samplers

    # tokens 2 and 3 have logits one float32 step apart but the same probability; top-p 0.5 reaches its
    # mass within token 2, so the filter keeps token 3 too (samplers.top_p_filter keeps ties)
    row = np.array([1.0, 1.0, 0.5, np.nextafter(np.float32(0.5), np.float32(0)), 0, 0, 0, 0], np.float32)
    assert row[2] != row[3] and np.exp(row[2] - row[0]) == np.exp(row[3] - row[0])
    n = 400
    logits = np.tile(row, (n, 1))
    seeds = np.arange(n, dtype=np.int64)
    ones = np.ones(n, np.float32)
    args = (ones, np.zeros(n, np.int32), np.full(n, 0.5, np.float32))
    want = samplers.sample(tf.constant(logits), tf.constant(seeds), 3, *map(tf.constant, args)).numpy()
    got = sample(logits, seeds, 3, *args)
    np.testing.assert_array_equal(got, want)
    assert set(got) == {0, 1, 2, 3}


# ----------------------------------------------------------------------------------------- same poems

def _tf_generate(saved, rows):
    import tensorflow as tf

    col = lambda k: [r[k] for r in rows]  # noqa: E731
    out = saved.signatures["generate"](
        prompt=tf.constant(col("prompt")), form=tf.constant(col("form")), acrostic=tf.constant(col("acrostic")),
        temperature=tf.constant(col("temperature"), tf.float32), top_k=tf.constant(col("top_k"), tf.int32),
        top_p=tf.constant(col("top_p"), tf.float32), seed=tf.constant(col("seed"), tf.int64),
        max_length=tf.constant(col("max_length"), tf.int32), rhyme=tf.constant(col("rhyme")),
        metre=tf.constant(col("metre")),
    )
    return [t.decode("utf-8") for t in out["text"].numpy()], out["characters"].numpy().tolist()


def _np_generate(npm, rows):
    keys = ("prompt", "form", "acrostic", "temperature", "top_k", "top_p", "seed", "max_length", "rhyme", "metre")
    out = npm.generate(*[[r[k] for r in rows] for k in keys])
    return out["text"], out["characters"].tolist()


def _row(prompt="", form="", acrostic="", temperature=0.0, top_k=0, top_p=1.0, seed=0, max_length=64, rhyme="",
         metre=""):
    return dict(prompt=prompt, form=form, acrostic=acrostic, temperature=temperature, top_k=top_k, top_p=top_p,
                seed=seed, max_length=max_length, rhyme=rhyme, metre=metre)


MATCHES = {"rows": 0, "same": 0}
DRAWN = ("text", "lines", "characters", "forced_breaks")  # a poem's fields that depend on its drawn characters


def _compare(saved, npm, rows):
    want = _tf_generate(saved, rows)
    got = _np_generate(npm, rows)
    MATCHES["rows"] += len(rows)
    MATCHES["same"] += sum(a == b for a, b in zip(want[0], got[0]))
    assert got == want
    return got[0]


def test_greedy_poems_are_the_savedmodels(saved, npm):
    a4, a8 = _han(npm, 4), _han(npm, 8, skip=3)
    rows = [_row(form=f) for f in ("wujue", "qijue", "wulv", "qilv")]
    rows += [_row(max_length=m) for m in (8, 9, 30, 64)]
    texts = _compare(saved, npm, rows)  # a batch of 8: the SavedModel's XLA loop
    assert all(t.endswith("。") for t in texts)
    rows = [_row(form="wujue", acrostic=a4), _row(form="qilv", acrostic=a8), _row(acrostic=a4[:3]),
            _row(prompt=a4[:2]), _row(prompt=a4[:2], max_length=12), _row(prompt=a8[:5], form="wujue"),
            _row(prompt=a4[:2] + "，" + a4[2:], form="qijue"), _row(prompt=a4[1] + a8[1:3], acrostic=a4[1:3], form="wulv"),
            _row(prompt=" " + a4[:2] + "！"), _row(form="qijue", max_length=9)]
    _compare(saved, npm, rows)  # a batch of 10: the SavedModel's graph loop


def test_sampled_poems_are_the_savedmodels(saved, npm):
    a4 = _han(npm, 4)
    settings = [(0.8, 0, 0.9), (1.0, 0, 1.0), (1.3, 5, 1.0), (0.7, 20, 0.8), (1.0, 1, 1.0), (0.5, 0, 0.5)]
    for seed in (1, 7, 2026):
        rows = []
        for i, (temp, k, p) in enumerate(settings):
            kind = [dict(), dict(form="wujue", metre="strict"), dict(form="qilv", acrostic=a4, metre="none"),
                    dict(prompt=a4[:2], form="qijue", rhyme="xinyun"), dict(acrostic=a4[:3]),
                    dict(form="wulv", rhyme="none", metre="none")][(i + seed) % 6]
            rows.append(_row(temperature=temp, top_k=k, top_p=p, seed=seed + i, **kind))
        _compare(saved, npm, rows)  # 6 rows (XLA)
        _compare(saved, npm, rows + rows[:4])  # 10 rows (graph loop): the same poems again


def test_generator_engines_agree(tiny_poem_model):
    """The library's two engines write the same poems for a seed, up to float32 rounding.

    Their products sum in other orders (NumPy's BLAS, TensorFlow's kernels), so the logits differ in the
    last bits, and over a long poem a draw that falls within that much of a boundary between two characters
    (of the inverse CDF or of the top-p nucleus) can go the other way on one engine, and the poems part
    there: on a 2-core AVX2 machine 3 of 72 such poems of this nearly untrained model did. A poem's other
    fields, its form, seed and lines' shape, never depend on it; a sampler that differed would part almost
    every poem at once."""
    tf_gen = PoemGenerator(tiny_poem_model, engine="tensorflow")
    np_gen = PoemGenerator(tiny_poem_model)
    assert np_gen.engine == "numpy" and tf_gen.engine == "tensorflow"
    a4 = _han(np_gen._numpy, 4)
    same = total = 0
    for kwargs in (dict(form="qijue", n=6, seed=5), dict(acrostic=a4, form="wujue", n=6, seed=9, top_k=3),
                   dict(start=a4[:2], n=6, seed=11, temperature=1.2, top_p=0.7), dict(n=12, seed=3),
                   dict(form="auto", n=12, seed=7), dict(n=6, seed=3, temperature=0.0)):
        want = [p.to_dict() for p in tf_gen.generate(**kwargs)]
        got = [p.to_dict() for p in np_gen.generate(**kwargs)]
        for a, b in zip(want, got):
            assert {k: v for k, v in a.items() if k not in DRAWN} == \
                   {k: v for k, v in b.items() if k not in DRAWN}
            if a["form"]:  # a form's shape is fixed whatever is drawn
                assert [len(x) for x in a["lines"]] == [len(x) for x in b["lines"]]
        same += sum(a == b for a, b in zip(want, got))
        total += len(want)
    MATCHES["rows"] += total
    MATCHES["same"] += same
    assert same >= 0.9 * total, f"the engines wrote the same poem for {same} of {total} seeds"
    # scoring still runs the SavedModel, loaded on first use
    assert np_gen.score(["春风。"])[0] == tf_gen.score(["春风。"])[0]
    print(f"\nengines agreed on {MATCHES['same']} of {MATCHES['rows']} checked poems")


def _error(gen, **kwargs):
    with pytest.raises(PoemError) as e:
        gen.generate(**kwargs)
    return str(e.value)


def test_bad_input_gives_the_same_error_on_both_engines(tiny_poem_model):
    tf_gen = PoemGenerator(tiny_poem_model, engine="tensorflow")
    np_gen = PoemGenerator(tiny_poem_model, engine="numpy")
    a = _han(np_gen._numpy, 9)
    cases = [dict(start="春Q龘"), dict(acrostic="春x", form="wujue"), dict(acrostic=a[:5], form="wujue"),
             dict(form="sonnet"), dict(start=a * 3, form="wujue"), dict(start="a\u3000b"), dict(acrostic="x" * 40),
             dict(max_length=4), dict(top_p=0)]
    for kwargs in cases:
        assert _error(np_gen, **kwargs) == _error(tf_gen, **kwargs), kwargs
    assert np_gen.unknown_characters("春眠xyz 風") == tf_gen.unknown_characters("春眠xyz 風")


def test_one_reading_of_texts_matches_the_graph(tiny_poem_model):
    """The vocabulary-only reading (rnn_apps' start/acrostic checks, the NumPy engine, the server) names the
    same unknown characters as the SavedModel's ``unknown_characters`` signature."""
    from rnn_apps.apps.poetry.constants import ModelReading

    tf_gen = PoemGenerator(tiny_poem_model, engine="tensorflow")
    np_gen = PoemGenerator(tiny_poem_model, engine="numpy")
    assert np_gen.reading is np_gen._numpy.reading  # the NumPy engine reads with the same object
    reading = ModelReading(tf_gen.meta["vocab"]["tokens"], tf_gen.script)
    known = _han(np_gen._numpy, 4)
    texts = ["春眠xyz 風", "床前明月光？！", "Ａ春，。", "龘", "", "長風破浪會有時", "\u3000" + known,
             known + "；" + known]
    for text in texts:
        graph = tf_gen.unknown_characters(text)  # the TensorFlow engine asks the SavedModel
        assert reading.unknown(text) == graph, text
        assert np_gen.unknown_characters(text) == graph, text
        assert tf_gen.chars(text) == np_gen.chars(text) == reading(text), text


def test_model_level_checks(saved, npm):
    """What the graph itself refuses (reached only without PoemGenerator's checks) is refused too."""
    import tensorflow as tf

    from rnn_apps.apps.poetry.generate import graph_error_message

    a = _han(npm, 9)
    cases = [
        ([_row(form="sonnet")], "form must be one of"),
        ([_row(form="wujue"), _row(form="sonnet")], r"form\[1\] must be one of"),
        ([_row(rhyme="Pingshui")], "rhyme must be one of"),
        ([_row(prompt="Q"), _row(prompt="it's 龘")], "does not know"),
        ([_row(acrostic=a[:5], form="wujue")], "more characters than the form has lines"),
        ([_row(prompt=a * 3, form="wujue")], "The start is longer"),
        ([_row(prompt=a * 7, max_length=20)], "The start is longer"),
    ]
    for rows, pattern in cases:
        with pytest.raises(ModelInputError, match=pattern) as mine:
            _np_generate(npm, rows)
        with pytest.raises(tf.errors.InvalidArgumentError) as theirs:
            _tf_generate(saved, rows)
        assert str(mine.value) == graph_error_message(theirs.value)


def test_engine_choice(tiny_poem_model, tmp_path):
    model = tmp_path / "gru" / "1"
    shutil.copytree(tiny_poem_model, model)
    meta_path = model / "assets.extra" / "poetry.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["config"]["cell"] = "peephole_lstm"
    meta_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    gen = PoemGenerator(str(model))
    assert gen.engine == "tensorflow" and "peephole_lstm" in gen.engine_note
    with pytest.raises(PoemError, match="NumPy engine cannot run"):
        PoemGenerator(str(model), engine="numpy")
    with pytest.raises(PoemError, match="Unknown engine"):
        PoemGenerator(tiny_poem_model, engine="torch")


# ----------------------------------------------------------------------------------------- the command

def _run_cli(args, model_dir=None):
    code = (
        "import sys, json\n"
        "from rnn_apps.cli import cli\n"
        f"try:\n    cli.main({args!r}, prog_name='rnn-apps', standalone_mode=False)\n"
        "except Exception as e:\n    print('ERROR', type(e).__name__, e)\n"
        "print('TF_IMPORTED', 'tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_default_command_does_not_import_tensorflow(tiny_poem_model):
    from click.testing import CliRunner

    from rnn_apps.cli import cli

    model = [] if HAS_SHIPPED else ["--model", tiny_poem_model]
    out = _run_cli(["generate-poem", "--seed", "1", "--json"] + model)
    assert "TF_IMPORTED False" in out
    rows = json.loads(out[: out.rindex("TF_IMPORTED")])
    assert rows[0]["seed"] == 1 and rows[0]["text"].endswith("。")
    out = _run_cli(["generate-poem", "--start", "Q", "--model", tiny_poem_model])
    assert "does not know: Q" in out and "TF_IMPORTED False" in out
    # the --json output is the same with the TensorFlow engine (run here, where TensorFlow is loaded)
    args = ["generate-poem", "--seed", "4", "-n", "2", "--form", "wujue", "--json", "--model", tiny_poem_model]
    a = _run_cli(args)
    res = CliRunner().invoke(cli, args + ["--engine", "tensorflow"])
    assert res.exit_code == 0, res.output
    assert json.loads(a[: a.rindex("TF_IMPORTED")]) == json.loads(res.output)
    res = CliRunner().invoke(cli, ["generate-poem", "--start", "Q", "--model", tiny_poem_model, "--engine", "tensorflow"])
    assert res.exit_code == 1 and "does not know: Q" in res.output
    assert "Error: " + res.output.split("Error: ")[1].strip() in "Error: " + out.split("ClickException ")[1]


@pytest.mark.parametrize("engine, batch", [("numpy", 256), ("tensorflow", 64)])
def test_many_poems_come_in_batches_with_progress_and_the_same_poems(tiny_poem_model, engine, batch):
    """generate-poem -n 1000 ran for minutes as one batch with no sign of progress."""
    gen = PoemGenerator(tiny_poem_model, engine=engine)
    calls = []
    poems = gen.generate(n=batch + 6, seed=11, max_length=24, progress=lambda done, n: calls.append((done, n)))
    assert calls == [(batch, batch + 6), (batch + 6, batch + 6)]
    tail = gen.generate(n=6, seed=11 + batch, max_length=24)  # a poem depends on its own seed only
    assert [p.text for p in poems[batch:]] == [p.text for p in tail]
    assert [p.seed for p in poems] == list(range(11, 11 + batch + 6))
