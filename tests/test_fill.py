"""The fill-in-the-blank app: the shifted bidirectional model, masking, parsing, export, decoding, CLI, learning."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.cli import cli

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
POEMS = os.path.join(FIXTURES, "poems.txt")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def vocab():
    from rnn_apps.apps.fill import data as fdata
    from rnn_apps import poems as pdata

    return fdata.build_vocab(pdata.load_poems(POEMS), min_count=1)


@pytest.fixture(scope="module")
def four_poems(tmp_path_factory):
    """A small, repetitive corpus: the fixture's first four poems (静夜思, 春晓, 登鹳雀楼, 相思)."""
    with open(POEMS, encoding="utf-8") as f:
        lines = f.read().splitlines()[:4]
    path = tmp_path_factory.mktemp("fill_data") / "four.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, four_poems):
    """A tiny bidirectional model trained 150 steps on four poems (all of them: no validation split)."""
    from rnn_apps.apps.fill import task

    run_dir = str(tmp_path_factory.mktemp("fill_run"))
    r = task.train(four_poems, run_dir, epochs=1, verbose=0, save_every=0, embedding_dim=32, units=64, dropout=0.0,
                   min_count=1, val_fraction=0.0, tokens_per_batch=4096, learning_rate=1e-2, max_steps=150, seed=5)
    return run_dir, r


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from rnn_apps.apps.fill.export import export_fill

    _, r = trained
    app_dir = str(tmp_path_factory.mktemp("models") / "fill")
    return export_fill(r["model"], r["vocab"], r["config"], app_dir, 1)


# ---------------------------------------------------------------------------------------------- the model


@pytest.mark.parametrize("kind", ["bidirectional", "forward"])
def test_prediction_at_t_never_sees_x_t(vocab, kind):
    from rnn_apps.apps.fill.model import build

    model = build(kind, len(vocab), 16, 16, dropout=0.0)
    rng = np.random.default_rng(0)
    x = rng.integers(5, len(vocab), size=(3, 12)).astype(np.int32)
    t = 5
    base = model(x).numpy()

    def changed(pos):
        x2 = x.copy()
        x2[:, pos] = (x2[:, pos] - 5 + 1) % (len(vocab) - 5) + 5
        return model(x2).numpy()

    same_t = changed(t)
    np.testing.assert_allclose(same_t[:, t], base[:, t], rtol=0, atol=1e-6)  # x_t never reaches its own prediction
    assert np.abs(same_t[:, t + 1] - base[:, t + 1]).max() > 1e-4  # ... but reaches the next one's
    left = changed(t - 1)
    assert np.abs(left[:, t] - base[:, t]).max() > 1e-4  # both models read the left context
    right = changed(t + 1)
    diff = np.abs(right[:, t] - base[:, t]).max()
    if kind == "bidirectional":
        assert diff > 1e-4  # the right context reaches position t
    else:
        assert diff < 1e-6  # the forward-only model cannot see it


def test_padding_does_not_change_predictions(vocab):
    from rnn_apps.apps.fill.model import build

    model = build("bidirectional", len(vocab), 16, 16, dropout=0.0)
    x = np.random.default_rng(1).integers(5, len(vocab), size=(1, 9)).astype(np.int32)
    padded = np.concatenate([x, np.zeros((1, 6), np.int32)], axis=1)
    np.testing.assert_allclose(model(padded).numpy()[:, :9], model(x).numpy(), atol=1e-5)


# ---------------------------------------------------------------------------------------------- data


def test_vocabulary_has_mask_token(vocab):
    from rnn_apps.apps.fill import data as fdata

    assert vocab.tokens[fdata.MASK_ID] == fdata.MASK
    assert "，" in vocab and "。" in vocab  # punctuation is an ordinary token


def test_masking_of_inputs_is_seeded_and_only_at_predicted_positions(vocab):
    from rnn_apps.apps.fill import data as fdata
    from rnn_apps import poems as pdata

    seqs = fdata.encode(pdata.load_poems(POEMS), vocab)
    plan = fdata.make_plan(seqs, 4096, seed=3, mask_rate=0.15)
    batches = list(plan.iterate(0, 2))
    masked = total = 0
    for x, y, w in batches:
        hit = x != y
        assert np.all(x[hit] == fdata.MASK_ID)  # only <mask> replaces characters
        assert np.all(w[hit] > 0)  # never padding, <bos>, <eos>
        assert not np.any(y == fdata.MASK_ID)  # targets are the original characters
        masked += hit.sum()
        total += (w > 0).sum()
    assert 0.10 < masked / total < 0.20
    # Deterministic and resumable: the batches from step 2 on are those of an uninterrupted run.
    again = list(plan.iterate(2, 2))
    for (a, b, c), (d, e, f) in zip(batches[2:], again):
        np.testing.assert_array_equal(a, d)
        np.testing.assert_array_equal(b, e)
    # Weights: characters and punctuation of the poem, not <bos>/<eos>/padding.
    x, y, w = batches[0]
    assert np.all(w[y == 2] == 0) and np.all(w[y == 3] == 0) and np.all(w[y == 0] == 0)


def test_parse_text_blanks_and_errors():
    from rnn_apps.apps.fill.data import FillError, parse_text

    assert parse_text("床前明月□，疑是地上霜。") == "床前明月□，疑是地上霜。"
    assert parse_text(" 床前明月＿， 疑是地上_。") == "床前明月□，疑是地上□。"
    around = "no Chinese characters around its blanks"
    for bad, words in [("", "is empty"), ("   ", "is empty"), ("床前明月光，疑是地上霜。", "has no blank"), ("□□□", around),
                       ("□，□。", around), ("abc□", around), ("床" * 600 + "□", "at most 512")]:
        with pytest.raises(FillError, match=words):
            parse_text(bad)


def test_hide_one_hides_han_characters_only():
    from rnn_apps.apps.fill.data import hide_one

    poems = ["床前明月光，疑是地上霜。", "春眠不觉晓，处处闻啼鸟。"] * 20
    texts, pos, ans = hide_one(poems, seed=4)
    assert texts == hide_one(poems, seed=4)[0]
    for t, p, a, poem in zip(texts, pos, ans, poems):
        assert t[p] == "□" and poem[p] == a and a not in "，。"
        assert t[:p] + a + t[p + 1 :] == poem
    assert len(set(pos)) > 3


# ---------------------------------------------------------------------------------------------- learning, export


def test_tiny_model_learns_to_fill_an_obvious_blank(trained):
    import tensorflow as tf

    from rnn_apps.apps.fill.export import FillModule

    _, r = trained
    assert r["step"] == 150
    module = FillModule(r["model"], r["vocab"], r["config"])
    texts = ["床前明月□，疑是地上霜。举头望明月，低头思故乡。", "春眠不觉□，处处闻啼鸟。夜来风雨声，花落知多少。",
             "白日依山尽，黄河入海□。欲穷千里目，更上一层楼。"]  # whole poems: the model has memorised them
    out = module.fill(tf.constant(texts), tf.constant(3))
    tops = [c.decode() for c in out["candidates"].numpy()[:, 0, 0]]
    assert tops == ["光", "晓", "流"]
    assert out["probabilities"].numpy()[0, 0, 0] > 0.5


def test_export_matches_keras_and_fills_every_blank(trained, exported):
    import tensorflow as tf

    from rnn_apps.apps.fill import data as fdata

    _, r = trained
    model, vocab = r["model"], r["vocab"]
    loaded = tf.saved_model.load(exported)
    text = "春眠不觉□，处处闻啼鸟。"
    out = loaded.signatures["fill"](text=tf.constant([text]), top_k=tf.constant(5))
    ids = np.array([[vocab.bos_id] + [fdata.MASK_ID if c == "□" else vocab.index[c] for c in text] + [vocab.eos_id]])
    logits = model(ids, training=False).numpy()[0, 5]
    logits[: fdata.MASK_ID + 1] = -np.inf
    logits[[vocab.index["，"], vocab.index["。"]]] = -np.inf  # a blank stands for a character
    p = np.exp(logits - logits.max())
    p /= p.sum()
    top = np.argsort(-p)[:5]
    np.testing.assert_allclose(out["probabilities"].numpy()[0, 0], p[top], rtol=1e-4, atol=1e-6)
    assert [c.decode() for c in out["candidates"].numpy()[0, 0]] == [vocab.tokens[i] for i in top]

    # Several blanks in a batch with a one-blank row: every blank filled, its first candidate in the text.
    texts = ["□前明月光，疑是□上霜。举头望□月，低头思故乡。", "床前明月□，疑是地上霜。"]
    out = loaded.signatures["serving_default"](text=tf.constant(texts))
    assert out["candidates"].shape == (2, 3, 5)
    assert out["blanks"].numpy().tolist() == [3, 1]
    filled = [t.decode() for t in out["text"].numpy()]
    for text, f, cands, n in zip(texts, filled, out["candidates"].numpy(), [3, 1]):
        assert "□" not in f and len(f) == len(text)
        positions = [i for i, c in enumerate(text) if c == "□"]
        assert [f[i] for i in positions] == [cands[j, 0].decode() for j in range(n)]
        assert all(c.decode() and c.decode() not in vocab.tokens[:5] for c in cands[:n].ravel())
    assert np.all(out["probabilities"].numpy()[1, 1:] == 0) and np.all(out["candidates"].numpy()[1, 1:] == b"")
    probs = out["probabilities"].numpy()
    assert np.all(np.diff(probs[0], axis=-1) <= 1e-7)  # candidates sorted by probability


def test_a_blank_is_a_character_and_a_text_without_a_last_stop_reads_as_a_line(trained, exported):
    """"白日依山□" was filled with 。: a blank is a character, and the text is read as a line followed by 。
    (a poem's last character is never followed by <eos> at once in training), which the output does not show."""
    import tensorflow as tf

    from rnn_apps.apps.fill import data as fdata

    _, r = trained
    model, vocab = r["model"], r["vocab"]
    loaded = tf.saved_model.load(exported)
    punct = [vocab.index["，"], vocab.index["。"]]

    def reference(text, then):
        ids = [vocab.bos_id] + [fdata.MASK_ID if c == "□" else vocab.index[c] for c in text] + then + [vocab.eos_id]
        logits = model(np.array([ids]), training=False).numpy()[0, text.index("□") + 1]
        allowed = logits.copy()
        allowed[: fdata.MASK_ID + 1] = allowed[punct] = -np.inf
        p = np.exp(allowed - allowed.max())
        return logits, p / p.sum()

    bare, _ = reference("白日依山□", [])
    assert np.argmax(bare) in punct  # what the model alone makes of <eos> right after the blank
    _, p = reference("白日依山□", [vocab.index["。"]])
    top = np.argsort(-p)[:5]
    for text in ("白日依山□", "白日依山□。"):
        out = loaded.signatures["fill"](text=tf.constant([text]), top_k=tf.constant(5))
        assert [c.decode() for c in out["candidates"].numpy()[0, 0]] == [vocab.tokens[i] for i in top]
        np.testing.assert_allclose(out["probabilities"].numpy()[0, 0], p[top], rtol=1e-4, atol=1e-6)
        assert out["text"].numpy()[0].decode() == text.replace("□", vocab.tokens[top[0]])


def test_cli_export_fill_from_model_keeps_weights_and_answers(exported, tmp_path):
    """`export fill --from-model`: the weights of an export, with this version's graph; one source at a time."""
    import tensorflow as tf

    runner = CliRunner()
    r = runner.invoke(cli, ["export", "fill", "--from-model", exported, "--export", str(tmp_path / "fill"), "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.output)["exported"]
    assert again == str(tmp_path / "fill" / "1") and os.path.exists(tmp_path / "fill" / "README.md")
    texts = tf.constant(["□前明月光，疑是□上霜。", "春眠不觉□"])
    a, b = (tf.saved_model.load(d).signatures["fill"](text=texts, top_k=tf.constant(4)) for d in (exported, again))
    for k in ("text", "candidates"):
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
    np.testing.assert_allclose(a["probabilities"].numpy(), b["probabilities"].numpy(), rtol=1e-6)
    r = runner.invoke(cli, ["export", "fill", "--from-model", exported, "--run-dir", str(tmp_path)])
    assert r.exit_code == 2 and "Give one of --run-dir (a training run) or --from-model" in r.output


def test_export_loads_in_a_fresh_process_without_rnn_apps(exported):
    code = f"""
import sys, json
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "rnn_apps":
            raise ImportError("rnn_apps is blocked")
sys.meta_path.insert(0, Block())
import tensorflow as tf
m = tf.saved_model.load({exported!r})
out = m.signatures["serving_default"](text=tf.constant(["床前明月□，疑是地上霜。举头望明月，低头思故乡。", "牀前明月光，疑是地上＿。"]))
print(json.dumps({{"text": [t.decode() for t in out["text"].numpy()], "converted": out["converted"].numpy().tolist(),
                  "k": int(out["candidates"].shape[-1]), "rnn_apps": any(k.startswith("rnn_apps") for k in sys.modules)}}))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd="/", timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["rnn_apps"] is False and res["k"] == 5
    assert res["text"][0] == "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
    assert res["text"][1].startswith("床前明月光，疑是地上") and res["converted"] == [False, True]


# ---------------------------------------------------------------------------------------------- command line


def test_cli_fill_poem_json_and_text(exported):
    runner = CliRunner()
    res = runner.invoke(cli, ["fill-poem", "床前明月□，疑是地上霜。举头望明月，低头思故乡。", "春眠不觉＿，处处闻啼X。", "--model", exported, "--json",
                              "--candidates", "3", "--poem-model", "none"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data[0]["text"] == "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
    assert len(data[0]["blanks"]) == 1 and len(data[0]["blanks"][0]["candidates"]) == 3
    assert data[0]["blanks"][0]["candidates"][0]["character"] == "光"
    assert data[1]["unknown_characters"] == ["X"] and "□" not in data[1]["text"]
    assert "X" in res.stderr  # the note names the unknown character
    res = runner.invoke(cli, ["fill-poem", "牀前明月□，疑是地上霜。举头望明月，低头思故乡。", "--model", exported,
                              "--poem-model", "none"])
    assert res.exit_code == 0, res.output
    # the text as typed (牀 of a text that mixes the scripts stays), the blank filled in the model's script
    assert res.stdout.splitlines()[0] == "牀前明月光，疑是地上霜。举头望明月，低头思故乡。"
    assert res.stdout.splitlines()[1].startswith("  □1: 光 ")
    assert "read the text converted to simplified script (its own); its filled characters are simplified" in res.stderr


def test_cli_fill_poem_gives_the_text_back_as_typed_with_its_blanks_filled(exported):
    """"Moon 床前明月□ light" came back "Moon床前明月白light": the spaces, the user's punctuation and the place
    of each blank mark are kept; only the blanks change."""
    texts = ["床前明月＿， 疑是地上霜？", "Moon 床前明月□ light", "□前 明月_，疑是地上霜！",
             # the graph drops quotes and title marks and makes a run of … one 。: the blanks' places move
             "“床前明月□”，疑是地上霜。", "床前明月光……疑是地上□。", "《静夜思》床前明月□，疑是地上霜。"]
    res = CliRunner().invoke(cli, ["fill-poem", *texts, "--model", exported, "--json", "--poem-model", "none"])
    assert res.exit_code == 0, res.output
    for text, row in zip(texts, json.loads(res.stdout)):
        chosen = iter(b["candidates"][0]["character"] for b in row["blanks"])
        assert row["text"] == "".join(next(chosen) if c in "□＿_" else c for c in text)
        assert row["script"] == "simplified" and row["input"] == text


def test_a_text_in_traditional_script_is_filled_in_it_as_the_tang_poems_write():
    """The model reads and fills simplified script: in a text written in traditional its choices are written
    back in traditional, each in the form the poems write beside its neighbours (发 beside 白 is 髮)."""
    from rnn_apps.apps.fill.filler import write_back

    text, cands = "白□三千丈，緣愁似個長。", [[("发", 0.5), ("日", 0.3), ("云", 0.2)]]
    assert write_back(text, "白发三千丈，缘愁似个长。", [1], cands) == (
        "白髮三千丈，緣愁似個長。", [[("髮", 0.5), ("日", 0.3), ("雲", 0.2)]], "traditional")
    # 千万里 in a traditional line: 里 "mile" stays 里 (OpenCC's phrases wrote 裏 "inside")
    assert write_back("猶得寒光千＿里", "犹得寒光千万里", [5], [[("万", 1.0)]])[0] == "猶得寒光千萬里"
    # a simplified text, or one that mixes the scripts, keeps the model's characters
    assert write_back("白□三千丈", "白发三千丈", [1], [[("发", 1.0)]]) == ("白发三千丈", [[("发", 1.0)]], "simplified")
    # a filled text that does not line up with the blanks is given as the model wrote it
    assert write_back("白□三千丈", "白发三千丈", [1, 2], [[("发", 1.0)], [("三", 1.0)]])[0] == "白发三千丈"


def test_cli_fill_poem_candidates_keeps_its_old_spelling_out_of_help(exported):
    """--candidates (how many to show) was --top-k, which generate-poem uses for its sampling cut-off: the old
    spelling still works, unshown, and its errors name --candidates."""
    runner = CliRunner()
    text = "床前明月□，疑是地上霜。举头望明月，低头思故乡。"
    new = runner.invoke(cli, ["fill-poem", text, "--model", exported, "--poem-model", "none", "--json",
                              "--candidates", "2"])
    old = runner.invoke(cli, ["fill-poem", text, "--model", exported, "--poem-model", "none", "--json", "--top-k", "2"])
    assert new.exit_code == 0 and old.exit_code == 0, (new.output, old.output)
    assert new.stdout == old.stdout and len(json.loads(new.stdout)[0]["blanks"][0]["candidates"]) == 2
    shown = runner.invoke(cli, ["fill-poem", "--help"]).output
    assert "--candidates" in shown and "--top-k" not in shown
    bad = runner.invoke(cli, ["fill-poem", text, "--model", exported, "--top-k", "0"])
    assert bad.exit_code == 2 and "'--candidates'" in bad.output and "number of candidates must be" in bad.output


def test_cli_fill_poem_a_bad_text_does_not_cost_the_others_their_answers(exported, tmp_path):
    """One text that cannot be filled among several: it is named (stderr; an error row in --json), the others
    are filled as they are alone, and the command ends with status 1."""
    good = "床前明月□，疑是地上霜。"
    path = tmp_path / "lines.txt"
    path.write_text(f"{good}\n床前明月光，疑是地上霜。\n", encoding="utf-8")
    alone = CliRunner().invoke(cli, ["fill-poem", good, "--model", exported, "--poem-model", "none", "--json"])
    res = CliRunner().invoke(cli, ["fill-poem", "--file", str(path), "--model", exported, "--poem-model", "none",
                                   "--json"])
    rows = json.loads(res.stdout)
    assert res.exit_code == 1 and alone.exit_code == 0
    assert {k: v for k, v in rows[0].items() if k != "read_from"} == json.loads(alone.stdout)[0]
    assert rows[1]["error"].startswith(f"{path}, line 2") and "has no blank" in rows[1]["error"]
    assert rows[1]["input"] == "床前明月光，疑是地上霜。" and f"Error: {rows[1]['error']}" in res.stderr
    text = CliRunner().invoke(cli, ["fill-poem", good, "□□□", "--model", exported, "--poem-model", "none"])
    assert text.exit_code == 1 and text.stdout.startswith("床前明月") and "Error: Text 2" in text.stderr


@pytest.mark.parametrize("args", [["床前明月光，疑是地上霜。"], ["□□□"], [""], ["床" * 513 + "□"], [],
                                  ["床前明月□，", "--candidates", "0"], ["床前明月□，", "--top-k", "51"]])
def test_cli_fill_poem_bad_input(args, exported):
    res = CliRunner().invoke(cli, ["fill-poem", *args, "--model", exported])
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output


def test_the_library_refuses_a_batch_size_that_is_not_a_positive_integer(exported, four_poems):
    """0 failed in range() with Python's own ValueError."""
    from rnn_apps.apps.fill.data import FillError
    from rnn_apps.apps.fill.filler import Filler, evaluate_masked

    for call in (lambda b: Filler(exported).fill(["床前明□光"], batch_size=b),
                 lambda b: evaluate_masked(four_poems, exported, batch_size=b)):
        for bad in (0, 2.5):
            with pytest.raises(FillError, match=r"^batch_size must be a positive integer; received "):
                call(bad)


def test_cli_evaluate_fill(exported, four_poems):
    res = CliRunner().invoke(cli, ["evaluate", "fill", "--data", four_poems, "--model", exported, "--split", "all", "--json",
                                   "--poem-model", "none"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["poems"] == 4 and r["kind"] == "bidirectional" and r["poem_model"] is None
    assert r["top5_accuracy"] >= r["top1_accuracy"] > 0.5  # the training poems were memorised


def test_fill_corpus_stats_count_the_poems_left_out(four_poems, tmp_path):
    """The fill model reads poems as the poem model does, and its run's stats say how many it left out."""
    from rnn_apps.apps.fill.task import DEFAULTS, prepare_corpus

    mine = tmp_path / "mine.txt"
    with open(four_poems, encoding="utf-8") as f:
        mine.write_text(f.read() + "白日□山尽，黄河入海流。\n", encoding="utf-8")
    stats = prepare_corpus(str(mine), {**DEFAULTS, "min_count": 1})[-1]
    assert stats["poems"] == 4 and stats["poems_read"] == 5 and stats["poems_left_out"] == 1
    assert stats["poems_left_out_why"] == {"symbols": 1} and stats["poems_left_out_symbols"] == ["□"]


def test_cli_train_fill_forward_export_and_resume(four_poems, tmp_path):
    run_dir, models = str(tmp_path / "run"), str(tmp_path / "models")
    args = ["train", "fill", "--data", four_poems, "--run-dir", run_dir, "--kind", "forward", "--epochs", "2",
            "--max-steps", "4", "--embedding-dim", "8", "--units", "8", "--save-every", "1", "--json"]
    res = CliRunner().invoke(cli, [*args, "--export", os.path.join(models, "fill")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["step"] == 4 and summary["exported"].endswith(os.path.join("fill", "1"))
    again = CliRunner().invoke(cli, args)  # checkpoints exist: refused without --resume
    assert again.exit_code != 0 and "--resume" in again.output and "Traceback" not in again.output
    resumed = CliRunner().invoke(cli, [*args, "--resume"])  # already at the last step: nothing left to do
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["step"] == 4
    res = CliRunner().invoke(cli, ["fill-poem", "床前明月□，疑是地上霜。", "--model", os.path.join(models, "fill"), "--json"])
    assert res.exit_code == 0, res.output
    assert "□" not in json.loads(res.stdout)[0]["text"]
    assert "has already trained 4 steps" in resumed.stderr and "nothing more is trained" in resumed.stderr


def test_a_resumed_fill_run_trains_to_the_epochs_it_is_given(four_poems, tmp_path):
    """--resume --epochs 2 of a finished 1-epoch run was ignored without a word: the run kept its own epochs, as
    only a run cut to --max-steps must (its epochs set their length)."""
    args = ["train", "fill", "--data", four_poems, "--run-dir", str(tmp_path / "run"), "--embedding-dim", "8",
            "--units", "8", "--json"]
    one = CliRunner().invoke(cli, [*args, "--epochs", "1"])
    assert one.exit_code == 0, one.output
    steps = json.loads(one.stdout)["step"]
    two = CliRunner().invoke(cli, [*args, "--epochs", "2", "--resume"])
    assert two.exit_code == 0, two.output
    assert json.loads(two.stdout)["step"] == 2 * steps and "nothing more" not in two.stderr


def test_cli_train_fill_patience_stops_early_with_the_best_epoch(tmp_path):
    """--patience N: the run stops after N epochs without a lower validation loss, and reports (and keeps) its best
    epoch's figures, not those of the last epoch it trained."""
    run_dir = tmp_path / "run"
    # A learning rate this high makes the validation loss of 30 poems rise within a few epochs.
    r = CliRunner().invoke(cli, ["train", "fill", "--data", POEMS, "--run-dir", str(run_dir), "--epochs", "10",
                                 "--max-steps", "20", "--tokens-per-batch", "256", "--embedding-dim", "8", "--units",
                                 "8", "--dropout", "0", "--learning-rate", "0.05", "--seed", "3", "--patience", "1",
                                 "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    with open(run_dir / "history.jsonl", encoding="utf-8") as f:
        history = [json.loads(line) for line in f]
    assert res["stopped_early"] and len(history) == res["best_epoch"] + 1 < 10
    best = history[res["best_epoch"] - 1]
    assert (res["val_loss"], res["val_accuracy"]) == (best["val_loss"], best["val_accuracy"])
    assert json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["settings"]["patience"] == 1


# ------------------------------------------------------------------------------------------- fine-tune

NEW_POEMS = ["鲲鹏展翅九万里，翻动扶摇羊角。", "鲲鹏击水三千里，扶摇直上九万里。"] * 3 + ["两个黄鹂鸣翠柳，一行白鹭上青天。"]


@pytest.fixture
def new_poems(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(NEW_POEMS) + "\n", encoding="utf-8")
    return str(path)


def test_fine_tune_keeps_old_ids_and_rows_and_grows_for_new_characters(exported, new_poems, tmp_path):
    """The run starts from the base's weights (its rows unchanged), keeps its ids, appends the frequent new
    characters only (with --min-count 2, the once-seen 黄鹂 of the last poem stays out)."""
    import keras

    from rnn_apps.apps.fill import task
    from rnn_apps.training import TrainingError

    class StartWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = [w.numpy().copy() for w in self.model.weights]

    start = StartWeights()
    r = task.train(new_poems, str(tmp_path / "run"), epochs=1, init_from=exported, verbose=0, save_every=0,
                   min_count=2, val_fraction=0.0, max_steps=2, learning_rate=1e-3, callbacks=[start])
    base = task.read_base_model(exported)
    old = base["vocab"].tokens
    added = r["added_characters"]
    assert r["vocab"].tokens == old + added and r["config"]["units"] == base["config"]["units"] == 64
    assert {"鲲", "鹏", "扶", "摇"} <= set(added) and not {"黄", "鹂"} & set(added)
    assert not set(added) & set(old)
    grown = 0
    for now, was in zip(start.weights, base["weights"]):
        assert np.array_equal(now[tuple(slice(0, n) for n in was.shape)], was)  # old rows: the base's values
        grown += now.shape != was.shape
    assert grown >= 1 and start.weights[0].shape[0] == len(old) + len(added)  # the embedding grew
    with pytest.raises(TrainingError, match="keeps the base model's units"):
        task.train(new_poems, str(tmp_path / "run2"), epochs=1, init_from=exported, verbose=0, units=8)


def test_resumed_fine_tuning_needs_its_base_only_until_its_first_checkpoint(exported, new_poems, tmp_path,
                                                                          monkeypatch):
    """The run records its base as an absolute path (given relative here); once a checkpoint holds the
    weights, --resume continues without the base (moved away here), from another working directory."""
    import shutil

    from rnn_apps.apps.fill import task

    shutil.copytree(exported, tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    task.train(new_poems, str(run), epochs=2, init_from="base", verbose=0, save_every=1, min_count=2,
               val_fraction=0.0, max_steps=2)
    with open(run / "config.json", encoding="utf-8") as f:
        assert json.load(f)["init_from"] == str(tmp_path / "base")
    shutil.rmtree(tmp_path / "base")
    monkeypatch.chdir(tmp_path.parent)
    r = task.train(new_poems, str(run), epochs=2, resume=True, verbose=0, max_steps=4)
    assert r["step"] == 4


def test_cli_fine_tune_fill_exports_a_model_that_fills_new_characters(exported, new_poems, tmp_path):
    ft = str(tmp_path / "ft" / "fill")
    res = CliRunner().invoke(cli, ["fine-tune", "fill", "--data", new_poems, "--model", exported, "--export", ft,
                                   "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--min-count", "2",
                                   "--val-fraction", "0", "--learning-rate", "0.01", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["exported"] == os.path.join(ft, "1") and "鲲" in summary["added_characters"]
    res = CliRunner().invoke(cli, ["fill-poem", "鲲鹏展翅□万里，翻动扶摇羊角。", "--model", ft, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)[0]
    assert out["unknown_characters"] == [] and "□" not in out["text"]
    res = CliRunner().invoke(cli, ["fine-tune", "fill", "--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "--min-count" in res.output


def _corrupt_copy(model_dir, dest):
    import shutil

    shutil.copytree(model_dir, dest)
    with open(os.path.join(dest, "saved_model.pb"), "r+b") as f:
        f.truncate(100)
    return str(dest)


@pytest.mark.parametrize("case, expected", [
    ("no-data", "No such corpus file"),
    ("no-model", "No SavedModel"),
    ("other-app", "is not a fill model"),
    ("corrupt", "Could not load the model"),
])
def test_cli_fine_tune_fill_bad_inputs_are_one_line(case, expected, exported, new_poems, tmp_path):
    data, model = new_poems, exported
    if case == "no-data":
        data = str(tmp_path / "nope.txt")
    elif case == "no-model":
        model = str(tmp_path / "empty")
        os.makedirs(model)
    elif case == "other-app":
        model = os.path.join(FIXTURES, os.pardir, os.pardir, "models", "forecast")
    else:
        model = _corrupt_copy(exported, tmp_path / "corrupt")
    res = CliRunner().invoke(cli, ["fine-tune", "fill", "--data", data, "--model", model, "--export",
                                   str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"), "--epochs", "1"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], res.output


def test_cli_fine_tune_fill_argument_checks():
    for args, expected in ((["--min-count", "0"], "0 is not in the range x>=1"),
                           (["--learning-rate", "-1"], "-1.0 is not in the range 0<x<=10"),
                           (["--val-fraction", "1"], "1.0 is not in the range 0<=x<1"), ([], "Missing option '--data'")):
        res = CliRunner().invoke(cli, ["fine-tune", "fill", *([] if not args else ["--data", "x.txt"]), *args])
        assert res.exit_code == 2 and expected in res.output, (args, res.output)


def test_card_of_a_model_continued_from_a_shipped_one(exported, four_poems, tmp_path):
    """The card of a model continued with fine-tune on its own corpus: its run, its evaluation, where it
    started; no forward-only baseline, which a model trained from scratch must have."""
    from rnn_apps import cards
    from rnn_apps.apps.fill import task
    from rnn_apps.apps.fill.export import export_fill
    from rnn_apps.apps.fill.filler import evaluate_masked

    run = str(tmp_path / "run")
    r = task.train(four_poems, run, epochs=2, init_from=exported, verbose=0, save_every=0, val_fraction=0.0,
                   learning_rate=1e-3)
    model = export_fill(r["model"], r["vocab"], r["config"], str(tmp_path / "models" / "fill"), 2)
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps(evaluate_masked(four_poems, model, split="all")), encoding="utf-8")
    out = cards.write_card("fill", model, run_dir=run, eval=str(ev))
    text = open(out["card"], encoding="utf-8").read()
    assert f"starting from version {os.path.basename(exported)}'s weights" in text
    assert "rnn-apps fine-tune fill" in text and "| 2 | " in text  # the run's command and its history
    assert "| forward-only |" not in text and "was not trained again" in text
    metrics = {m["type"]: m["value"] for m in out["metrics"]}
    assert set(metrics) == {"top1_accuracy", "top5_accuracy"}
    with pytest.raises(cards.CardError, match="forward_run_dir with forward_eval"):
        cards.write_card("fill", model, run_dir=run, eval=str(ev), forward_eval=str(ev))
    # With a baseline continued the same way (here the same run stands in for it): both tables, both rows,
    # and no claim that the two were trained together from scratch.
    fw_ev = tmp_path / "fw_eval.json"
    fw_ev.write_text(json.dumps({"poems": 4, "top1_accuracy": 0.25, "top5_accuracy": 0.5, "seed": 0,
                                 "hidden_out_of_vocabulary": 0}), encoding="utf-8")
    text = open(cards.write_card("fill", model, out=str(tmp_path / "card2.md"), run_dir=run, eval=str(ev),
                                 forward_run_dir=run, forward_eval=str(fw_ev))["card"], encoding="utf-8").read()
    assert "| forward-only | 4 | 25.0% | 50.0% |" in text and "was not trained again" not in text
    assert "Forward-only, from its previous stretch:" in text and "Bidirectional, from version" in text
    assert "trained as long as the shipped model in the same stretches" in text
    assert "Both trained at the same time" not in text


def test_card_of_a_model_from_scratch_needs_its_baseline(trained, exported, four_poems, tmp_path):
    from rnn_apps import cards

    run_dir, _ = trained
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"poems": 4, "top1_accuracy": 0.5, "top5_accuracy": 0.75, "seed": 0,
                              "hidden_out_of_vocabulary": 0}), encoding="utf-8")
    with pytest.raises(cards.CardError, match="forward-only baseline"):
        cards.write_card("fill", exported, out=str(tmp_path / "card.md"), run_dir=run_dir, eval=str(ev))
    out = cards.write_card("fill", exported, out=str(tmp_path / "card.md"), run_dir=run_dir, eval=str(ev),
                           forward_run_dir=run_dir, forward_eval=str(ev))
    text = open(out["card"], encoding="utf-8").read()
    assert "| forward-only | 4 | 50.0% | 75.0% |" in text and "Forward-only:" in text


def test_card_of_a_model_on_the_users_own_poems_names_them_not_the_tang_poems(trained, exported, four_poems, tmp_path):
    """A model trained on a user's own poems: its card names their file (in its commands too), not the Complete
    Tang Poems, their hub entries or the project's machine; it says the machine its run recorded."""
    from rnn_apps import cards

    run_dir, _ = trained
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"poems": 4, "top1_accuracy": 0.5, "top5_accuracy": 0.75, "seed": 0,
                              "hidden_out_of_vocabulary": 0}), encoding="utf-8")
    out = cards.write_card("fill", exported, out=str(tmp_path / "card.md"), run_dir=run_dir, eval=str(ev),
                           forward_run_dir=run_dir, forward_eval=str(ev))
    text = open(out["card"], encoding="utf-8").read()
    for shipped in ("Tang", "chinese-poetry", "tang-poems", "project's", "2-core", "shared with other"):
        assert shipped not in text, shipped
    assert "# Fill-in-the-blank model (bidirectional LSTM on `four.txt`)" in text and "* Corpus: `four.txt`, " in text
    assert "rnn-apps train fill --data four.txt " in text and "Trained on a machine with " in text
    import yaml

    front = yaml.safe_load(text.split("\n---\n", 1)[0][4:])
    result = front["model-index"][0]["results"][0]
    assert "datasets" not in front and result["dataset"]["type"] == "four.txt"
    assert result["task"]["name"] == "Poem fill-in-the-blank"


# ---------------------------------------------------------------------------------------------- a poem model weighs


def _keras_log_probability(run, text: str, ends: bool) -> float:
    """log p(text [+ end] | start) by the tiny poem model's Keras model: an independent reference."""
    _, result = run
    vocab = result["vocab"]
    ids = [vocab.bos_id] + vocab.encode(list(text))
    targets = ids[1:] + ([vocab.eos_id] if ends else [])
    logits = result["model"](np.array([ids[: len(targets)]]), training=False).numpy()[0].astype(np.float64)
    logp = logits - logits.max(axis=-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=-1, keepdims=True))
    return float(sum(logp[t, y] for t, y in enumerate(targets)))


def _expected(run, texts_and_priors, ends=True):
    """Probabilities proportional to p_fill(c) * p_lm(text with c), over the candidates."""
    scores = np.array([np.log(p) + _keras_log_probability(run, t, ends) for t, p in texts_and_priors])
    prob = np.exp(scores - scores.max())
    return prob / prob.sum()


def test_a_poem_model_weighs_candidates_by_the_whole_text(tiny_poem_run, tiny_poem_model):
    from rnn_apps.apps.fill.filler import load_poem_model, weigh_candidates

    pm = load_poem_model(os.path.dirname(tiny_poem_model))  # the app directory: its newest version
    text = "床前明月光，疑是地上霜。"
    cands = [("光", 0.5), ("月", 0.3), ("上", 0.15), ("X", 0.05)]  # X: unknown to the poem model, read as <unk>
    filled, (weighed,) = weigh_candidates(pm, text, [4], [cands])
    expected = _expected(tiny_poem_run, [(text[:4] + c + text[5:], p) for c, p in cands])
    got = dict(weighed)
    np.testing.assert_allclose([got[c] for c, _ in cands], expected, rtol=1e-4, atol=1e-6)
    assert [c for c, _ in weighed] == [cands[k][0] for k in np.argsort(-expected, kind="stable")]
    assert filled == text[:4] + weighed[0][0] + text[5:]


def test_blanks_are_weighed_left_to_right_with_a_window(tiny_poem_run, tiny_poem_model):
    from rnn_apps.apps.fill.filler import load_poem_model, weigh_candidates

    pm = load_poem_model(tiny_poem_model)
    text = "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。"
    first = [("晓", 0.4), ("声", 0.35), ("鸟", 0.25)]
    second = [("知", 0.6), ("花", 0.4)]
    # window 4: the first blank reads 4 characters after it (the text goes on), the second the 3 to the end
    filled, (w1, w2) = weigh_candidates(pm, text, [4, 20], [first, second], window=4)
    e1 = _expected(tiny_poem_run, [(text[:4] + c + text[5:9], p) for c, p in first], ends=False)
    np.testing.assert_allclose([dict(w1)[c] for c, _ in first], e1, rtol=1e-4, atol=1e-6)
    # the second blank sees the first one's new choice
    base = text[:4] + w1[0][0] + text[5:]
    e2 = _expected(tiny_poem_run, [(base[:20] + c + base[21:], p) for c, p in second])
    np.testing.assert_allclose([dict(w2)[c] for c, _ in second], e2, rtol=1e-4, atol=1e-6)
    assert filled == base[:20] + w2[0][0] + base[21:]
    # and exactly what the poem model gives when it reads each blank's text from the start (the reader carried
    # from blank to blank has read the first blank's choice, and nothing else, by the second)
    from rnn_apps.apps.poetry.fast import NumpyPoemModel

    npm = NumpyPoemModel(tiny_poem_model)
    for g, cands, got, t in ((4, first, w1, text), (20, second, w2, base)):
        lm = npm.infill_log_probabilities(t[:g], [c for c, _ in cands], t[g + 1 : g + 5], ends=g + 5 >= len(t))
        score = np.log([p for _, p in cands]) + lm
        prob = np.exp(score - score.max())
        np.testing.assert_allclose([dict(got)[c] for c, _ in cands], prob / prob.sum(), rtol=1e-9)


def test_cli_fill_poem_weighs_with_a_poem_model_and_evaluates_the_same(exported, four_poems, tiny_poem_model):
    from rnn_apps.apps.fill.filler import Filler, load_poem_model, weigh_candidates

    text = "床前明月□，疑是地上霜。举头望明月，低头思故乡。"
    res = CliRunner().invoke(cli, ["fill-poem", text, "--model", exported, "--poem-model", tiny_poem_model,
                                   "--json", "--candidates", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)[0]
    # what the library gives: the fill model's 50 candidates, weighed, the first 3 kept
    alone = Filler(exported).fill([text], top_k=50)[0]
    filled, (weighed,) = weigh_candidates(load_poem_model(tiny_poem_model), alone.text, [4], alone.blanks)
    assert data["text"] == filled
    assert [(c["character"], round(c["probability"], 6)) for c in data["blanks"][0]["candidates"]] == [
        (c, round(p, 6)) for c, p in weighed[:3]]
    res = CliRunner().invoke(cli, ["evaluate", "fill", "--data", four_poems, "--model", exported, "--split", "all",
                                   "--poem-model", tiny_poem_model, "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["poem_model"] == tiny_poem_model and r["poems"] == 4


@pytest.mark.parametrize("which", ["missing", "fill", "empty"])
def test_cli_a_poem_model_that_cannot_weigh_is_one_line(which, exported, tmp_path):
    path = {"missing": str(tmp_path / "nowhere"), "fill": exported, "empty": str(tmp_path)}[which]
    for args in (["fill-poem", "床前明月□，"], ["evaluate", "fill", "--data", POEMS]):
        res = CliRunner().invoke(cli, [*args, "--model", exported, "--poem-model", path])
        assert res.exit_code != 0 and "Traceback" not in res.output
        errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "--poem-model" in errors[0], res.output


def test_the_shipped_poem_model_weighs_by_default(exported):
    from rnn_apps.apps.fill.filler import load_poem_model
    from rnn_apps.paths import default_model_dir

    assert load_poem_model(None).model_dir.startswith(default_model_dir("poetry"))
    res = CliRunner().invoke(cli, ["fill-poem", "--help"])
    assert "--poem-model" in res.output and "none" in res.output
