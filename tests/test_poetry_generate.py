"""The exported poem model: constrained forms, acrostics, seeds, scoring, errors, self-containment."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from rnn_apps.apps.poetry.export import FORMS
from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator


@pytest.fixture(scope="module", params=["tensorflow", "numpy"])
def gen(tiny_poem_model, request):
    """Both engines: the SavedModel's graph, and its NumPy twin (rnn_apps.apps.poetry.fast)."""
    g = PoemGenerator(tiny_poem_model, engine=request.param)
    assert g.engine == request.param
    return g


def _shape_ok(text, n, m):
    lines = re.findall(r"[^，。]+[，。]", text)
    if "".join(lines) != text or len(lines) != m:
        return False
    for i, line in enumerate(lines):
        if len(line) != n + 1 or line[-1] != ("，" if i % 2 == 0 else "。"):
            return False
        if any(c in "，。" for c in line[:-1]):
            return False
    return True


@pytest.mark.parametrize("form", ["wujue", "qijue", "wulv", "qilv"])
def test_forms_are_always_exact(gen, form):
    n, m = FORMS[form]
    # High temperature and no truncation make an untrained model's choices as wild as possible.
    poems = gen.generate(form=form, n=60, temperature=1.5, top_p=1.0, seed=11)
    assert len(poems) == 60
    for p in poems:
        assert _shape_ok(p.text, n, m), p.text
    assert len({p.text for p in poems}) > 50  # sampling really samples


def _common_chars(gen, k):
    return "".join(t for t in gen.meta["vocab"]["tokens"][4:] if t not in "，。")[:k]


def test_acrostic_heads_every_line_in_order(gen):
    for form, heads in (("wujue", _common_chars(gen, 4)), ("qilv", "明月"), ("wulv", _common_chars(gen, 8))):
        n, m = FORMS[form]
        for p in gen.generate(acrostic=heads, form=form, n=20, temperature=1.2, top_p=1.0, seed=3):
            assert _shape_ok(p.text, n, m), p.text
            lines = p.lines
            assert "".join(line[0] for line in lines[: len(heads)]) == heads


def test_acrostic_without_form_uses_seven_character_lines(gen):
    heads = _common_chars(gen, 3)
    for p in gen.generate(acrostic=heads, n=10, seed=1):
        assert _shape_ok(p.text, 7, 4), p.text
        assert [line[0] for line in p.lines[:3]] == list(heads)


def test_start_is_continued(gen):
    for p in gen.generate(start="春眠", n=10, seed=5):
        assert p.text.startswith("春眠")
        assert p.text.endswith("。")
    for p in gen.generate(start="春眠不觉晓", form="wujue", n=10, seed=5):
        assert p.text.startswith("春眠不觉晓，") and _shape_ok(p.text, 5, 4)


def test_a_whole_start_in_quotes_fits_its_form(gen):
    # The form counts Chinese characters only, as the model does: quotation marks and a ； in the acrostic used
    # to count, so a whole quoted poem was refused as too long.
    n, m = FORMS["wujue"]
    chars = _common_chars(gen, n * m)
    start = "“" + "".join(chars[i:i + n] + ("，" if i // n % 2 == 0 else "。") for i in range(0, n * m, n)) + "”"
    for p in gen.generate(start=start, form="wujue", n=2, seed=1):
        assert p.text == start.strip("“”")
    heads = _common_chars(gen, m)
    for p in gen.generate(acrostic="；".join(heads), form="wujue", n=2, seed=1):
        assert [line[0] for line in p.lines] == list(heads)


def test_free_form_ends_properly(gen):
    """Without a form an (untrained) model still closes every poem with 。 within max_length."""
    for max_length in (8, 9, 40):
        poems = gen.generate(n=40, seed=2, temperature=1.3, top_p=1.0, max_length=max_length)
        for p in poems:
            assert p.text.endswith("。") and len(p.text) < max_length, p.text
            assert "，，" not in p.text and "。。" not in p.text and "，。" not in p.text and "。，" not in p.text
            assert not p.text.startswith(("，", "。"))
    for p in gen.generate(start="春眠", n=10, seed=5, max_length=20):
        assert p.text.startswith("春眠") and p.text.endswith("。") and len(p.text) < 20


def test_same_seed_same_poems_and_rows_independent(gen):
    a = [p.text for p in gen.generate(form="wujue", n=5, seed=42)]
    b = [p.text for p in gen.generate(form="wujue", n=5, seed=42)]
    c = [p.text for p in gen.generate(form="wujue", n=5, seed=43)]
    assert a == b
    assert a != c
    # poem i uses seed + i whatever the batch: the second poem of seed 42 is the first of seed 43
    assert a[1] == c[0]


def test_seeds_are_non_negative_and_every_poem_gets_one_in_range(gen):
    """The sampler reads seeds modulo 2**63, so a negative seed would repeat a positive one's poems."""
    with pytest.raises(PoemError, match="seed must be an integer from 0 to 9,223,372,036,854,775,807; received -1"):
        gen.generate(seed=-1)
    with pytest.raises(PoemError, match=r"seed \+ 2 \(the last poem's seed\) must be .* received 9223372036854775808"):
        gen.generate(n=3, seed=2**63 - 2)
    assert len(gen.generate(n=1, seed=2**63 - 1, max_length=12)) == 1


def test_xla_small_batches_agree_with_graph_large_batches(gen):
    """Batches up to XLA_MAX_BATCH decode XLA-compiled, larger ones in the graph: a row's poem is the same."""
    from rnn_apps.apps.poetry.export import XLA_MAX_BATCH

    big = [p.text for p in gen.generate(form="qijue", n=XLA_MAX_BATCH + 4, seed=7)]
    small = [p.text for p in gen.generate(form="qijue", n=3, seed=7)]
    assert small == big[:3]
    big = [p.text for p in gen.generate(start="春", n=XLA_MAX_BATCH + 1, seed=9, top_k=5, top_p=0.8)]
    small = [p.text for p in gen.generate(start="春", n=2, seed=9, top_k=5, top_p=0.8)]
    assert small == big[:2]


def test_greedy_matches_full_sequence_keras_model(tiny_poem_run, gen):
    """In-graph step-by-step greedy decoding equals argmax of the Keras model run over the whole prefix."""
    run_dir, result = tiny_poem_run
    model, vocab = result["model"], result["vocab"]
    got = gen.generate(form="wujue", n=1, temperature=0.0, seed=0, rhyme="none", metre="none")[0].text
    content = np.array([i >= 4 and '\u4e00' <= t <= '\u9fff' for i, t in enumerate(vocab.tokens)])
    ids = [vocab.bos_id]
    expected = ""
    for t in range(4 * 6):
        if t % 6 == 5:
            ch = "，" if (t // 6) % 2 == 0 else "。"
            nxt = vocab.index[ch]
        else:
            logits = np.asarray(model(np.array([ids], np.int32), training=False))[0, -1]
            logits = np.where(content, logits, -np.inf)
            nxt = int(np.argmax(logits))
        ids.append(nxt)
        expected += vocab.tokens[nxt]
    assert got == expected


def _reference_free_greedy(model, vocab, max_length, start=""):
    """Free-form greedy decoding written out in Python with the Keras model over the whole prefix."""
    toks = vocab.tokens
    han = np.array([i >= 4 and "\u4e00" <= t <= "\u9fff" for i, t in enumerate(toks)])
    comma, period, eos = vocab.index["，"], vocab.index["。"], vocab.eos_id
    ids = [vocab.bos_id] + vocab.encode(start)
    while True:
        t = len(ids) - 1
        remaining = max_length - t
        prev = ids[-1]
        if remaining == 1 or (remaining == 2 and prev == period):
            nxt = eos
        elif remaining == 2 and han[prev]:
            nxt = period
        else:
            logits = np.asarray(model(np.array([ids], np.int32), training=False))[0, -1]
            ok = np.ones(len(toks), bool)
            ok[[vocab.pad_id, vocab.unk_id, vocab.bos_id]] = False
            if not han[prev]:  # after the start, ， or 。: no punctuation
                ok[[comma, period]] = False
            if prev != period:  # the end only after 。
                ok[eos] = False
            if remaining <= 3:
                ok[comma] = False
            nxt = int(np.argmax(np.where(ok, logits, -np.inf)))
        if nxt == eos:
            return "".join(toks[i] for i in ids[1:])
        ids.append(nxt)


def test_free_greedy_matches_python_reference(tiny_poem_run, gen):
    run_dir, result = tiny_poem_run
    model, vocab = result["model"], result["vocab"]
    for max_length, start in ((30, ""), (12, "春风"), (9, "")):
        got = gen.generate(start=start, n=1, temperature=0.0, max_length=max_length)[0].text
        assert got == _reference_free_greedy(model, vocab, max_length, start)


def test_mask_table_rules(tiny_poem_run):
    """The allowed-next-token table: Han only in a form's line; free text ends only after 。."""
    from rnn_apps.apps.poetry.export import PoemModule

    run_dir, result = tiny_poem_run
    vocab = result["vocab"]
    module = PoemModule(result["model"], vocab, result["config"])
    ok = np.asarray(module._mask_table) == 0  # rows: han, after start/，, after 。, after char, closing
    comma, period, eos = vocab.index["，"], vocab.index["。"], vocab.eos_id
    specials = [vocab.pad_id, vocab.unk_id, vocab.bos_id]
    han = [i for i, t in enumerate(vocab.tokens) if i >= 4 and t not in "，。"]
    assert ok[0, han].all() and not ok[0, [comma, period, eos] + specials].any()
    assert ok[1, han].all() and not ok[1, [comma, period, eos] + specials].any()
    assert ok[2, han].all() and ok[2, eos] and not ok[2, [comma, period] + specials].any()
    assert ok[3, han].all() and ok[3, [comma, period]].all() and not ok[3, [eos] + specials].any()
    assert ok[4, han].all() and ok[4, period] and not ok[4, [comma, eos] + specials].any()


def test_score_matches_keras_log_likelihood(tiny_poem_run, gen):
    run_dir, result = tiny_poem_run
    model, vocab = result["model"], result["vocab"]
    text = "床前明月光，疑是地上霜。"
    out = gen.score([text, "春眠不觉晓。"])
    ids = [vocab.bos_id] + vocab.encode(text) + [vocab.eos_id]
    logits = np.asarray(model(np.array([ids[:-1]], np.int32), training=False))[0]
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    expected = float(sum(logp[i, ids[i + 1]] for i in range(len(ids) - 1)))
    assert out[0]["characters"] == len(text) and out[0]["unknown_characters"] == 0
    assert out[0]["log_probability"] == pytest.approx(expected, rel=1e-4)
    assert out[0]["bits_per_char"] == pytest.approx(-expected / np.log(2) / (len(text) + 1), rel=1e-4)


def test_score_counts_unknown_characters_as_unk(tiny_poem_run, gen):
    run_dir, result = tiny_poem_run
    model, vocab = result["model"], result["vocab"]
    text = "春Q风。"
    out = gen.score([text])[0]
    ids = [vocab.bos_id] + vocab.encode(text) + [vocab.eos_id]
    assert ids[2] == vocab.unk_id and out["unknown_characters"] == 1
    logits = np.asarray(model(np.array([ids[:-1]], np.int32), training=False))[0].astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert out["log_probability"] == pytest.approx(sum(logp[i, ids[i + 1]] for i in range(len(ids) - 1)), rel=1e-4)


def test_unknown_characters_are_named(gen):
    with pytest.raises(PoemError, match=r"does not know: Q 龘"):
        gen.generate(start="春Q龘")
    with pytest.raises(PoemError, match="acrostic"):
        gen.generate(acrostic="春x", form="wujue")
    assert gen.unknown_characters("春眠xyz") == "xyz"
    # traditional input is converted character by character before lookup
    assert gen.unknown_characters("風") == ""


def test_impossible_requests_are_refused(gen):
    with pytest.raises(PoemError, match="has 4 lines, but the acrostic has 5"):
        gen.generate(acrostic=_common_chars(gen, 5), form="wujue")
    with pytest.raises(PoemError, match="Unknown form"):
        gen.generate(form="sonnet")
    with pytest.raises(PoemError, match="temperature"):
        gen.generate(temperature=-1)
    with pytest.raises(PoemError, match="top_p"):
        gen.generate(top_p=0)
    with pytest.raises(PoemError, match="only 20"):
        gen.generate(start="床前明月光疑是地上霜举头望明月低头思故乡春", form="wujue")


def test_a_setting_of_the_wrong_type_is_refused_in_words(gen):
    """A Python caller's n=2.5, start=None or temperature="0.8" failed with Python's own TypeError or
    AttributeError ("'NoneType' object has no attribute 'strip'"), and score([None]) with TensorFlow's."""
    refusals = [
        (dict(n=2.5), r"^n must be an integer; received 2\.5\.$"),
        (dict(n="2"), r"^n must be an integer; received '2'\.$"),
        (dict(start=None), r"^The start must be text \(a str\); received None\.$"),
        (dict(acrostic=b"\xe6\x98\xa5"), r"^The acrostic must be text \(a str\); received b'"),
        (dict(temperature="0.8"), r"^temperature must be in \[0, 10\].*; received '0\.8'\.$"),
        (dict(max_length=None), r"^max_length must be an integer from 8 to 512; received None\.$"),
        (dict(top_k=True), r"^top_k must be an integer from 0 to 100,000 \(0 is off\); received True\.$"),
    ]
    for kwargs, message in refusals:
        with pytest.raises(PoemError, match=message):
            gen.generate(**kwargs)
    assert len(gen.generate(n=np.int64(2), seed=1, max_length=16)) == 2  # NumPy's integers are integers


def test_score_refuses_what_is_not_text_and_a_bad_batch_size(tiny_poem_model):
    g = PoemGenerator(tiny_poem_model, engine="tensorflow")
    with pytest.raises(PoemError, match=r"^Text 2 is a NoneType, not text\.$"):
        g.score(["春风", None])
    for bad in (0, 2.5, None):
        with pytest.raises(PoemError, match=r"^batch_size must be a positive integer; received "):
            g.score(["春风"], batch_size=bad)
    assert g.score(["春风", "明月"], batch_size=1) == g.score(["春风", "明月"], batch_size=np.int64(2))


def test_graph_refuses_bad_input_without_rnn_apps_checks(tiny_poem_model):
    """The SavedModel itself refuses unknown characters and forms (what a serving client sees)."""
    import tensorflow as tf

    m = tf.saved_model.load(tiny_poem_model)
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not know"):
        m.signatures["serving_default"](prompt=tf.constant(["hello"]))
    g = m.signatures["generate"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="form must be one of"):
        g(prompt=tf.constant([""]), form=tf.constant(["sonnet"]), acrostic=tf.constant([""]),
          temperature=tf.constant([1.0]), top_k=tf.constant([0]), top_p=tf.constant([1.0]),
          seed=tf.constant([1], tf.int64), max_length=tf.constant([32]), rhyme=tf.constant([""]), metre=tf.constant([""]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="rhyme must be one of"):
        g(prompt=tf.constant([""]), form=tf.constant(["wujue"]), acrostic=tf.constant([""]),
          temperature=tf.constant([1.0]), top_k=tf.constant([0]), top_p=tf.constant([1.0]),
          seed=tf.constant([1], tf.int64), max_length=tf.constant([32]), rhyme=tf.constant(["rhymes"]),
          metre=tf.constant([""]))


def test_loads_in_a_fresh_process_without_rnn_apps(tiny_poem_model):
    code = (
        "import sys; sys.modules['rnn_apps'] = None\n"
        "import tensorflow as tf, json\n"
        f"m = tf.saved_model.load({tiny_poem_model!r})\n"
        "out = m.signatures['serving_default'](prompt=tf.constant(['春', '']))\n"
        "g = m.signatures['generate'](prompt=tf.constant(['']), form=tf.constant(['qijue']), acrostic=tf.constant(['春']),"
        " temperature=tf.constant([0.7]), top_k=tf.constant([5]), top_p=tf.constant([0.9]),"
        " seed=tf.constant([3], tf.int64), max_length=tf.constant([64]), rhyme=tf.constant(['']),"
        " metre=tf.constant(['']))\n"
        "s = m.signatures['score'](text=tf.constant(['春风。']))\n"
        "print(json.dumps({'text': [t.decode() for t in out['text'].numpy()], 'g': g['text'].numpy()[0].decode(),"
        " 'bpc': float(s['bits_per_char'].numpy()[0])}, ensure_ascii=False))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["text"][0].startswith("春")
    assert out["g"].startswith("春") and len(out["g"]) == 32
    assert out["bpc"] > 0


def test_top_k_one_is_greedy(gen):
    # unconstrained: with rhyme and metre the seed also draws each poem's tonal template
    a = gen.generate(form="wujue", n=3, temperature=1.0, top_k=1, seed=9, rhyme="none", metre="none")
    b = gen.generate(form="wujue", n=3, temperature=0.0, seed=123, rhyme="none", metre="none")
    assert [p.text for p in a] == [p.text for p in b]


def _generate_inputs(rows):
    import tensorflow as tf

    col = lambda k, dtype=tf.string: tf.constant([r[k] for r in rows], dtype)  # noqa: E731
    return dict(prompt=col("prompt"), form=col("form"), acrostic=col("acrostic"),
                temperature=col("temperature", tf.float32), top_k=col("top_k", tf.int32),
                top_p=col("top_p", tf.float32), seed=col("seed", tf.int64), max_length=col("max_length", tf.int32),
                rhyme=col("rhyme"), metre=col("metre"))


def test_step_by_step_decoding_gives_generate_s_poems(tiny_poem_model):
    """The functions of continuous batching (decode_start_*, decode_steps, decode_text): rows that join a
    running batch at different times, decoded a few steps at a time, are the poems of ``generate``."""
    import tensorflow as tf

    saved = tf.saved_model.load(tiny_poem_model)
    base = dict(prompt="春", acrostic="", temperature=1.2, top_k=0, top_p=0.95, max_length=40, rhyme="", metre="")
    rows = [dict(base, form=f, seed=s) for f, s in
            [("", 1), ("wujue", 2), ("qilv", 3), ("", 4), ("qijue", 5), ("wulv", 6)]]
    rows[3]["top_k"], rows[4]["acrostic"], rows[5]["metre"] = 5, "月", "strict"
    want = [t.decode() for t in saved.signatures["generate"](**_generate_inputs(rows))["text"].numpy()]

    def start(rs):
        return {k: v.numpy() for k, v in saved.decode_start_generate(**_generate_inputs(rs)).items()}

    state, order, got, calls = start(rows[:2]), [0, 1], {}, 0
    while order or calls == 0:
        if calls in (1, 3):  # later requests join the running batch
            joining = [2, 3] if calls == 1 else [4, 5]
            new = start([rows[i] for i in joining])
            state = {k: np.concatenate([state[k], new[k]]) for k in state}
            order += joining
        before = state["t"].copy()
        state = {k: v.numpy() for k, v in saved.decode_steps(state, tf.constant(3)).items()}
        calls += 1
        ran = state["t"] - before
        assert ran.max() <= 3  # at most the steps asked for, fewer when a row ended
        ended = state["done"]
        if ended.any():
            texts = saved.decode_text(state["ids"])["text"].numpy()
            for i in np.flatnonzero(ended):
                got[order[i]] = texts[i].decode()
            keep = np.flatnonzero(~ended)
            state = {k: v[keep] for k, v in state.items()}
            order = [order[i] for i in keep]
    assert [got[i] for i in range(len(rows))] == want
    # serving_default's poems start the same way: a state of the same structure, checked inputs
    default = saved.decode_start_serving_default(tf.constant(["春", "月"]))
    assert set(default) == set(state) and default["done"].shape == [2]
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not know"):
        saved.decode_start_serving_default(tf.constant(["春X"]))
