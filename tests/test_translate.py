"""The translation app: attention layer, tokenization, data, training/resume, export, decoding, CLI, BLEU."""

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from interrupt import Stop, StopAt
from rnn_apps.cli import cli
from standalone import run_script

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
PAIRS = os.path.join(FIXTURES, "pairs.tsv")
TINY = dict(embedding_dim=16, encoder_units=16, decoder_units=24, attention_units=8, val_fraction=0.2, seed=3,
            batch_size=8, source_min_count=1, target_min_count=1, learning_rate=1e-2, dropout=0.1,
            concat_share=0.0)  # the step counts below assume the corpus as it is (joins: test_corpus_with_joined_pairs)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from rnn_apps.apps.translate import task

    run_dir = str(tmp_path_factory.mktemp("translate_run"))
    result = task.train(PAIRS, run_dir, epochs=2, verbose=0, save_every=2, **TINY)
    return run_dir, result


@pytest.fixture(scope="module")
def tiny_model(tiny_run, tmp_path_factory):
    from rnn_apps.apps.translate.export import export_translate

    _, r = tiny_run
    models = tmp_path_factory.mktemp("models")
    return export_translate(r["model"], r["source_vocab"], r["target_vocab"], r["config"], r["truecase"],
                            str(models / "translate"), default_beam=1)


@pytest.fixture(scope="module")
def translator(tiny_model):
    from rnn_apps.apps.translate.translate import Translator

    return Translator(tiny_model)


@pytest.fixture(scope="module")
def module(tiny_run):
    from rnn_apps.apps.translate.export import TranslateModule

    _, r = tiny_run
    return TranslateModule(r["model"], r["source_vocab"], r["target_vocab"], r["config"], r["truecase"])


# ------------------------------------------------------------------------------------------ attention layer


def _reference_attention(layer, q, v, mask):
    """Step-by-step NumPy: e_ts = score(q_t, v_s), softmax over valid s, c_t = sum_s a_ts v_s."""
    w = {x.name: np.asarray(x.numpy(), np.float64) for x in layer.weights}
    B, T, _ = q.shape
    S = v.shape[1]
    ctx = np.zeros((B, T, v.shape[2]))
    att = np.zeros((B, T, S))
    for b in range(B):
        for t in range(T):
            e = np.zeros(S)
            for s in range(S):
                if layer.score == "additive":
                    e[s] = w["score_vector"] @ np.tanh(q[b, t] @ w["query_kernel"] + v[b, s] @ w["key_kernel"] + w["bias"])
                elif layer.score == "general":
                    e[s] = q[b, t] @ w["kernel"] @ v[b, s]
                else:
                    e[s] = q[b, t] @ v[b, s]
            if mask[b].any():
                e = np.where(mask[b], e, -np.inf)
                a = np.exp(e - e.max())
                a /= a.sum()
            else:  # no valid source step: uniform weights, not NaN
                a = np.full(S, 1.0 / S)
            att[b, t] = a
            ctx[b, t] = a @ v[b]
    return ctx, att


@pytest.mark.parametrize("score,dq,units", [("additive", 5, 7), ("bahdanau", 6, 4), ("general", 5, None),
                                            ("luong", 3, None), ("dot", 6, None)])
def test_attention_matches_numpy_step_by_step(score, dq, units):
    import keras

    from rnn_apps.layers import GlobalAttention

    rng = np.random.default_rng(0)
    B, T, S, dv = 3, 4, 5, 6
    q = rng.normal(size=(B, T, dq)).astype(np.float32)
    v = rng.normal(size=(B, S, dv)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)  # the last row has no valid step
    layer = GlobalAttention(score, units=units)
    ctx, att = layer(q, v, value_mask=mask)
    ref_ctx, ref_att = _reference_attention(layer, q.astype(np.float64), v.astype(np.float64), mask)
    np.testing.assert_allclose(np.asarray(att), ref_att, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ctx), ref_ctx, rtol=1e-4, atol=1e-5)
    assert np.asarray(att)[1, :, 2:].max() == 0.0
    # One decoder step at a time, with precomputed keys, gives the same rows.
    keys = layer.compute_keys(v)
    c1, a1 = layer(q[:, 2], v, value_mask=mask, keys=keys)
    np.testing.assert_allclose(np.asarray(a1), np.asarray(att)[:, 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(c1), np.asarray(ctx)[:, 2], rtol=1e-5, atol=1e-6)
    # The config round-trips (and through Keras serialization).
    clone = GlobalAttention.from_config(layer.get_config())
    clone.build(q.shape, v.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(q, v, value_mask=mask)[1]), np.asarray(att), rtol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert again.get_config() == layer.get_config()


def test_attention_argument_errors():
    from rnn_apps.layers import GlobalAttention

    with pytest.raises(ValueError, match=r"`score` must be one of .*received 'cosine'"):
        GlobalAttention("cosine")
    with pytest.raises(ValueError, match="`units` is required for the additive"):
        GlobalAttention("additive")
    with pytest.raises(ValueError, match="same size; received 4 and 6"):
        GlobalAttention("dot")(np.zeros((1, 2, 4), np.float32), np.zeros((1, 3, 6), np.float32))
    with pytest.raises(ValueError, match="rank 3 .* received shape"):
        GlobalAttention("general")(np.zeros((1, 2, 4), np.float32), np.zeros((3, 6), np.float32))


# ------------------------------------------------------------------------------------------ text and data


def test_tokenization_and_detokenization():
    from rnn_apps.apps.translate.text import detokenize_py, tokenize_py

    en = tokenize_py(["Don't touch Tom's dog!", "I'm 'happy', really.", "", "  "], "en")
    assert en[0] == ["do", "n't", "touch", "tom", "'s", "dog", "!"]
    assert en[1] == ["i", "'m", "'", "happy", "'", ",", "really", "."]
    assert en[2] == [] and en[3] == []
    assert tokenize_py(["我爱 你。", ""], "zh") == [["我", "爱", "你", "。"], []]
    assert detokenize_py(en[0], "en", {"tom": "Tom"}) == "Don't touch Tom's dog!"
    assert detokenize_py(["i", "love", "you", "."], "en", {"i": "I"}) == "I love you."
    assert detokenize_py(["我", "爱", "你", "。"], "zh") == "我爱你。"
    assert detokenize_py([], "en") == ""


def test_pairs_loading_split_and_errors(tmp_path):
    from rnn_apps.apps.translate import data as tdata

    pairs = tdata.load_pairs(PAIRS)
    # 我喜歡茶。 converted to simplified repeats an earlier pair: kept once
    assert len(pairs) == 45 and pairs[0] == tdata.Pair("Hi.", "你好。")
    assert pairs.count(tdata.Pair("I like tea.", "我喜欢茶。")) == 1
    raw = tdata.load_pairs(PAIRS, normalize=False)
    assert len(raw) == 46 and tdata.Pair("I like tea.", "我喜歡茶。") in raw
    train, val = tdata.split_pairs(pairs, 0.2, 3)
    assert (train, val) == tdata.split_pairs(pairs, 0.2, 3) and len(train) + len(val) == len(pairs)
    assert not {p.en.lower() for p in train} & {p.en.lower() for p in val}  # both "I like tea." on one side
    f = tmp_path / "three.tsv"
    f.write_bytes("\ufeffHi.\t你好。\tCC-BY 2.0 (France) Attribution: tatoeba.org\n\nRun!\t跑！\n".encode())
    assert [(p.en, p.zh) for p in tdata.load_pairs(str(f))] == [("Hi.", "你好。"), ("Run!", "跑！")]
    f.write_text("Hi.\t你好。\nno tab here\n", encoding="utf-8")
    with pytest.raises(tdata.TranslationDataError, match="line 2: expected 'english<TAB>chinese'"):
        tdata.load_pairs(str(f))
    with pytest.raises(FileNotFoundError, match="No such file"):
        tdata.load_pairs(str(tmp_path / "nope.tsv"))
    assert tdata.split_sentences("Hi. How are you? Fine!", "en") == ["Hi.", "How are you?", "Fine!"]
    assert tdata.split_sentences("你好。你好吗？好", "zh") == ["你好。", "你好吗？", "好"]


def test_pair_batches_resume_at_any_step():
    from rnn_apps.apps.translate.data import PairBatches

    rng = np.random.default_rng(1)
    src = [rng.integers(4, 50, size=rng.integers(2, 9)) for _ in range(37)]
    tgt = [np.concatenate([[2], rng.integers(4, 50, size=rng.integers(1, 9)), [3]]) for _ in range(37)]
    plan = PairBatches(src, tgt, batch_size=8, seed=5)
    full = [b for _, b in zip(range(13), plan.iterate(0))]
    tail = [b for _, b in zip(range(6), plan.iterate(7))]
    for a, b in zip(full[7:], tail):
        np.testing.assert_array_equal(a[0][0], b[0][0])
        np.testing.assert_array_equal(a[1], b[1])
    (x, y_in), y_out, w = full[0]
    assert (y_in[:, 0] == 2).all() and w.sum() == (y_out != 0).sum()
    assert plan.steps_per_epoch == 5 and sum(len(b[1]) for b in full[:5]) == 37


# ------------------------------------------------------------------------------------------ training and decoding


def test_training_writes_the_run(tiny_run):
    run_dir, r = tiny_run
    assert r["step"] == 2 * 5 and len(r["history"]) == 2
    assert r["history"][-1]["loss"] < r["history"][0]["loss"]
    for name in ("config.json", "source_vocab.json", "target_vocab.json", "best.weights.h5", "final.weights.h5"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert r["truecase"].get("tom") == "Tom" and r["stats"]["val_pairs"] > 0


def _greedy_reference(model, src_ids, target_vocab, bound):
    """Greedy decoding by re-running the teacher-forced Keras model on the growing prefix (<unk> kept as such)."""
    forbidden = [target_vocab.pad_id, target_vocab.bos_id]
    out = [target_vocab.bos_id]
    for t in range(bound):
        logits = np.array(model((np.array([src_ids], np.int32), np.array([out], np.int32)), training=False))[0, -1]
        logits[forbidden] = -np.inf
        nxt = target_vocab.eos_id if t == bound - 1 else int(np.argmax(logits))
        if nxt == target_vocab.eos_id:
            break
        out.append(nxt)
    return "".join(target_vocab.tokens[i] for i in out[1:])


def test_in_graph_greedy_matches_keras_reference(tiny_run, translator):
    """The exported model's greedy loop (one cell step at a time) writes what the teacher-forced Keras model picks."""
    from rnn_apps.apps.translate.text import tokenize_py

    from rnn_apps.apps.translate.model import build_model

    _, r = tiny_run
    sv, tv = r["source_vocab"], r["target_vocab"]
    # The export stores its weights as float16 and computes in float32: the reference gets the same weights.
    ref = build_model(len(sv), len(tv), r["config"])
    ref.set_weights([w.astype(np.float16).astype(np.float32) if w.dtype == np.float32 else w
                     for w in r["model"].get_weights()])
    stored = translator._model.model_weights
    assert [v.dtype.name for v in stored] == ["float16"] * len(stored)
    texts = ["I love you.", "Where is my cat?"]
    got = translator.translate_batch(texts, beam=1)
    for text, toks, g in zip(texts, tokenize_py(texts, "en"), got):
        src = sv.encode(toks) + [sv.eos_id]
        want = _greedy_reference(ref, src, tv, 2 * len(toks) + 10)
        # The graph puts a source word (as written) where the model writes <unk>.
        words = "|".join(re.escape(w) for w in tokenize_py([text], "en", lowercase=False)[0])
        assert re.fullmatch(re.escape(want).replace(re.escape("<unk>"), f"(?:{words})"), g), (text, want, g)


def test_beam_one_equals_greedy_and_beams_are_well_formed(module):
    import tensorflow as tf

    texts = tf.constant(["I love you.", "She has a cat.", "Are you tired?", "Thank you very much.", "I like tea."])
    src, n = module._source(texts)
    bounds = module._bounds(n, tf.constant(0))
    g_ids, g_att = module.greedy(src, bounds)
    b_ids, b_att = module.beam(src, bounds, tf.constant(1))
    T = g_ids.shape[1]
    np.testing.assert_array_equal(b_ids.numpy()[:, :T], g_ids.numpy())
    assert (b_ids.numpy()[:, T:] == 0).all()
    np.testing.assert_allclose(b_att.numpy()[:, :T], g_att.numpy(), atol=1e-6)
    for k in (2, 4):
        ids, att = module.beam(src, bounds, tf.constant(k))
        ids = ids.numpy()
        for row, bound in zip(ids, bounds.numpy()):
            ends = np.flatnonzero(row == 3)
            assert len(ends) >= 1 and ends[0] < bound  # stops at the end token, within the bound
            assert (row[ends[0] + 1:] == 0).all() and not np.isin(row[: ends[0]], [0, 2]).any()
        sums = att.numpy().sum(-1)
        assert np.allclose(sums[ids > 0], 1.0, atol=1e-5)
    # a bounded length: at max_length the end token is forced
    bounds = module._bounds(n, tf.constant(2))
    for ids, _ in (module.greedy(src, bounds), module.beam(src, bounds, tf.constant(3))):
        assert ids.shape[1] <= 2 and (ids.numpy() == 3).any(axis=1).all()


def test_resume_after_interruption_matches_uninterrupted_run(tiny_run, tmp_path):
    """A run stopped mid-epoch (after a checkpoint) and resumed ends with the weights of one never stopped."""
    from rnn_apps import training
    from rnn_apps.apps.translate import task

    full_dir, full = tiny_run  # trained with the same settings, never interrupted
    with pytest.raises(Stop):
        task.train(PAIRS, str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, callbacks=[StopAt(7)], **TINY)
    with pytest.raises(training.TrainingError, match="--resume"):
        task.train(PAIRS, str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, **TINY)
    resumed = task.train(PAIRS, str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, resume=True, **TINY)
    assert resumed["step"] == full["step"] == 10
    for a, b in zip(full["model"].weights, resumed["model"].weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert resumed["history"][-1]["val_loss"] == pytest.approx(full["history"][-1]["val_loss"], rel=1e-5)


# ------------------------------------------------------------------------------------------ export


_LOAD_WITHOUT_RNN_APPS = r"""
import json, sys
sys.modules["rnn_apps"] = None  # importing rnn_apps would fail
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
out = m.signatures["serving_default"](text=tf.constant(["I love you.", "Tom has a cat.", "Good.", "zzz qqq"]))
try:  # the graph refuses an empty text itself, in the command's words
    m.signatures["serving_default"](text=tf.constant(["I love you.", " "]))
    empty = "accepted"
except tf.errors.InvalidArgumentError as e:
    empty = e.message
att = m.signatures["attention"](text=tf.constant(["I love you."]), beam_size=tf.constant(3))
tr = m.signatures["translate"](text=tf.constant(["Good night."]), beam_size=tf.constant(4), max_length=tf.constant(5))
tok = m.signatures["tokenize"](text=tf.constant(["I love zzz."]))
print(json.dumps({
    "keys": sorted(out), "dtype": out["translation"].dtype.name, "shape": out["translation"].shape.as_list(),
    "translation": [t.decode() for t in out["translation"].numpy()],
    "att_keys": sorted(att), "att_shape": att["attention"].shape.as_list(),
    "source_tokens": [t.decode() for t in att["source_tokens"].numpy()[0]],
    "target_tokens": [t.decode() for t in att["target_tokens"].numpy()[0]],
    "row_sums": att["attention"].numpy()[0].sum(-1).tolist(),
    "tr_length": int(tr["length"].numpy()[0]),
    "unknown": [t.decode() for t in tok["unknown_tokens"].numpy()[0]], "tokens": int(tok["length"].numpy()[0]),
    "empty": empty,
}, ensure_ascii=False))
"""


def test_savedmodel_loads_without_rnn_apps(tiny_model, tmp_path):
    out = run_script(_LOAD_WITHOUT_RNN_APPS, tmp_path, tiny_model)
    assert out["keys"] == ["translation"] and out["dtype"] == "string" and out["shape"] == [4]
    assert all(isinstance(t, str) for t in out["translation"])
    assert out["att_keys"] == ["attention", "source_tokens", "target_tokens", "translation"]
    assert out["source_tokens"] == ["i", "love", "you", ".", "<eos>"] and out["att_shape"][2] == 5
    n = len([t for t in out["target_tokens"] if t])
    assert out["target_tokens"][n - 1] == "<eos>"
    assert np.allclose(out["row_sums"][:n], 1.0, atol=1e-5) and np.allclose(out["row_sums"][n:], 0.0)
    assert out["tr_length"] <= 4 and out["unknown"] == ["zzz"] and out["tokens"] == 4
    assert "text[1] is empty: give a sentence to translate." in out["empty"]


def test_translator_library(translator):
    from rnn_apps.apps.translate.translate import TranslateError

    tr = translator
    res = tr.translate(["I love you.", "I love zzz."])
    assert len(res) == 2 and res[1].unknown_words == ["zzz"] and res[0].unknown_words == []
    assert tr.translate(["I love you."], beam=1)[0].translation == res[0].translation
    al = tr.attention("I love you.", beam=2)
    assert al.source_tokens == ["i", "love", "you", ".", "<eos>"] and al.weights.shape == (len(al.target_tokens), 5)
    for bad, msg in (([""], "Text 1 is empty"), (["   "], "empty"), (["zzz qqq."], "knows none of its words"),
                     (["?!"], "no words to translate")):
        with pytest.raises(TranslateError, match=msg):
            tr.translate(bad)
    with pytest.raises(TranslateError, match="beam must be an integer from 1"):
        tr.translate(["Hi."], beam=0)


# ------------------------------------------------------------------------------------------ CLI


# (Every command's --help, with its example: tests/test_cli.py walks them all.)


def test_translate_cli(runner, tiny_model, tmp_path):
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "I love you.", "Good night.", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["source"] for x in rows] == ["I love you.", "Good night."] and all("translation" in x for x in rows)
    f = tmp_path / "in.txt"
    f.write_text("I love you.\n\nThank you.\n", encoding="utf-8")
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "--file", str(f), "--beam", "3"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 2  # one line a text (an untrained model may write nothing)
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "-"], input="I love you.\nI like tea.\n")
    assert r.exit_code == 0 and r.stdout.count("\n") == 2
    png = tmp_path / "att.png"
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "I love you.", "--plot-attention", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_translate_cli_bad_input(runner, tiny_model):
    for args, msg in ((["translate", "--model", tiny_model, ""], "empty"),
                      (["translate", "--model", tiny_model, "Xylophonic zqwx."], "knows none of its words"),
                      (["translate", "--model", tiny_model], "Give text to translate"),
                      (["translate", "--model", tiny_model, "Hi.", "--beam", "99"], "beam must be")):
        r = runner.invoke(cli, args)
        assert r.exit_code == 1 and msg in r.output and "Traceback" not in r.output, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit)
    paragraph = " ".join(["I love my mother and my father, and I like tea with Tom every day."] * 32 + ["Good night"] * 20)
    assert len(paragraph.split()) >= 500
    r = runner.invoke(cli, ["translate", "--model", tiny_model, paragraph, "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)[0]
    assert row["sentences"] > 10 and row["translation"]


def test_evaluate_and_export_cli(runner, tiny_run, tiny_model):
    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", tiny_model, "--split", "val", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert 0.0 <= out["bleu"] <= 100.0 and out["tokenize"] == "zh" and out["pairs"] == len(
        __import__("rnn_apps.apps.translate.data", fromlist=["x"]).split_pairs(
            __import__("rnn_apps.apps.translate.data", fromlist=["x"]).load_pairs(PAIRS), 0.2, 3)[1])
    assert "tok:zh" in out["signature"]
    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", tiny_model, "--limit", "5"])
    assert r.exit_code == 0 and r.stdout.startswith("BLEU: ")
    r = runner.invoke(cli, ["evaluate", "translate", "--data", "nope.tsv", "--model", tiny_model])
    assert r.exit_code == 1 and "No such file" in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------------------------------ BLEU


def test_bleu_known_cases():
    from rnn_apps.apps.translate.evaluate import corpus_bleu

    assert corpus_bleu(["我爱你。"], ["我爱你。"], "zh")[0] == pytest.approx(100.0)
    # all n-gram precisions 1, hypothesis 6 tokens against 8: BLEU = exp(1 - 8/6) = 71.65
    score, sig = corpus_bleu(["a b c d e f"], ["a b c d e f g h"], "en")
    assert score == pytest.approx(100 * np.exp(1 - 8 / 6), abs=1e-2) and "tok:13a" in sig
    # 'zh' tokenization scores Chinese by character: the same 6-of-8 case
    assert corpus_bleu(["我们喜欢音乐"], ["我们喜欢音乐。。"], "zh")[0] == pytest.approx(100 * np.exp(1 - 8 / 6), abs=1e-2)


# ------------------------------------------------------------------------------------------ unknown words, names


def test_name_table_and_placeholder_pairs():
    from rnn_apps.apps.translate import data as tdata

    english = [["tom", "is", "here", "."], ["i", "saw", "tom", "."], ["tom", "likes", "tea", "."],
               ["boston", "is", "big", "."], ["i", "like", "boston", "."], ["go", "to", "boston", "."],
               ["ask", "sam", "."], ["sam", "left", "."], ["i", "saw", "sam", "."]]
    chinese = ["汤姆在这里。", "我看见了汤姆。", "汤姆喜欢茶。", "波士顿很大。", "我喜欢波士顿。", "去波士顿。",
               "问他。", "他走了。", "我看见了山姆。"]  # "sam" has no steady rendering
    truecase = {"tom": "Tom", "boston": "Boston", "sam": "Sam", "i": "I"}
    table = tdata.name_table(english, chinese, truecase, min_count=3, min_share=0.8)
    assert table == {"tom": "汤姆", "boston": "波士顿"}
    zh_tokens = [list(z) for z in chinese]
    src, tgt = tdata.placeholder_pairs(english, zh_tokens, table, "en-zh", share=1.0, seed=0)
    assert len(src) == 6
    assert src[0] == ["<unk>", "is", "here", "."] and tgt[0] == ["<unk>", "在", "这", "里", "。"]
    assert src[4] == ["i", "like", "<unk>", "."] and tgt[4] == ["我", "喜", "欢", "<unk>", "。"]
    back_src, back_tgt = tdata.placeholder_pairs(zh_tokens, english, table, "zh-en", share=1.0, seed=0)
    assert back_src == tgt and back_tgt == src
    assert tdata.placeholder_pairs(english, zh_tokens, table, "en-zh", share=0.0, seed=0) == ([], [])
    with pytest.raises(ValueError, match="share must be in"):
        tdata.placeholder_pairs(english, zh_tokens, table, "en-zh", share=1.5, seed=0)


def test_concatenated_pairs():
    """Joined pairs: two different pairs, source with source and target with target, within the limits."""
    from rnn_apps.apps.translate import data as tdata

    src = [[f"w{i}", "."] for i in range(20)]
    tgt = [[f"z{i}", "。"] for i in range(20)]
    new_src, new_tgt = tdata.concatenated_pairs(src, tgt, share=0.5, seed=3, max_source_len=60, max_target_len=80)
    assert len(new_src) == len(new_tgt) == 10
    for s, t in zip(new_src, new_tgt):
        a, b = int(s[0][1:]), int(s[2][1:])
        assert a != b and s == src[a] + src[b] and t == tgt[a] + tgt[b]
    assert tdata.concatenated_pairs(src, tgt, 0.5, 3, 60, 80) == (new_src, new_tgt)  # seeded
    assert tdata.concatenated_pairs(src, tgt, 0.5, 3, max_source_len=3, max_target_len=80) == ([], [])
    assert tdata.concatenated_pairs(src, tgt, 0.0, 3, 60, 80) == ([], [])
    with pytest.raises(ValueError, match="share must be in"):
        tdata.concatenated_pairs(src, tgt, 1.5, 3, 60, 80)


def test_corpus_with_joined_pairs():
    """Joined pairs add their share of training pairs, never validation pairs, and leave the vocabularies alone."""
    from rnn_apps.apps.translate.task import DEFAULTS, prepare_corpus

    base = prepare_corpus(PAIRS, {**DEFAULTS, **TINY})
    joined = prepare_corpus(PAIRS, {**DEFAULTS, **TINY, "concat_share": 0.5})
    n = base["stats"]["train_pairs"]
    assert joined["stats"]["concatenated_pairs"] == round(0.5 * n) and base["stats"]["concatenated_pairs"] == 0
    assert len(joined["train"]) == len(base["train"]) + round(0.5 * n)
    assert len(joined["val"]) == len(base["val"])
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(joined["val"], base["val"]))
    assert joined["source_vocab"].tokens == base["source_vocab"].tokens
    assert joined["target_vocab"].tokens == base["target_vocab"].tokens
    eos = base["source_vocab"].eos_id
    # a joined source is two training sources, the first's <eos> dropped
    longest = max(len(s) for s, _ in base["train"])
    assert max(len(s) for s, _ in joined["train"]) > longest and all(s[-1] == eos for s, _ in joined["train"])


@pytest.fixture(scope="module")
def unk_module(tiny_run):
    """The tiny model with its output bias pushed to <unk>: it writes <unk> at every step until the bound."""
    from rnn_apps.apps.translate.export import TranslateModule
    from rnn_apps.apps.translate.model import build_model

    _, r = tiny_run
    model = build_model(len(r["source_vocab"]), len(r["target_vocab"]), r["config"])
    model.set_weights(r["model"].get_weights())
    bias = model.logits.bias.numpy()
    bias[1] += 100.0
    model.logits.bias.assign(bias)
    return TranslateModule(model, r["source_vocab"], r["target_vocab"], r["config"], r["truecase"])


def _copy_reference(cased, known, att_rows, sep):
    """What each <unk> should become, by the rule written out in Python: the unknown source word (else any
    word) the attention weighs most, with the unknown words next to it; no punctuation; no run twice in a row."""
    n = len(cased)
    unknown = [not known[i] for i in range(n)]
    cands = [i for i in range(n) if unknown[i]] or list(range(n))
    out, prev = [], None
    for row in att_rows:
        p = max(cands, key=lambda i: (row[i], -i))
        lo = hi = p
        if unknown[p]:
            while lo > 0 and unknown[lo - 1]:
                lo -= 1
            while hi + 1 < n and unknown[hi + 1]:
                hi += 1
        word = sep.join(cased[lo:hi + 1])
        if re.search(r"\w", word) and (lo, hi) != prev:
            out.append(word)
        prev = (lo, hi)
    return out


@pytest.mark.parametrize("beam", [1, 3])
def test_unknown_words_are_carried_through_the_attention(unk_module, tiny_run, beam):
    """Each <unk> the model writes becomes the unknown source word (or run of them, as written) it attends to most."""
    import tensorflow as tf

    _, r = tiny_run
    texts = ["Zorbu Kelvaro met Tom in Qingdao.", "I love Xanadu.", "I love you.", "Zorbu Kelvaro."]
    out = unk_module.run(tf.constant(texts), tf.constant(beam), tf.constant(4))
    for b, text in enumerate(texts):
        src = [t.decode() for t in out["source_tokens"].numpy()[b]]
        tgt = [t.decode() for t in out["target_tokens"].numpy()[b]]
        n = src.index("<eos>")
        cased = re.findall(r"\w+|[^\w\s]", text)
        assert [w.lower() for w in cased] == src[:n]
        att = out["attention"].numpy()[b]
        assert [t for t in tgt if t] == ["<unk>"] * 3 + ["<eos>"]
        known = [w in r["source_vocab"] for w in src[:n]]
        want = _copy_reference(cased, known, [att[j, :n] for j in range(3)], " ")
        assert out["translation"].numpy()[b].decode() == "".join(want), (text, want)
    # the only unknown words form one name: it is copied whole, once
    assert out["translation"].numpy()[3].decode() == "Zorbu Kelvaro"


def test_translate_direction_must_match_the_model(tiny_model):
    from rnn_apps.apps.translate.translate import TranslateError, Translator

    with pytest.raises(TranslateError, match="translates en-zh, not zh-en"):
        Translator(tiny_model, direction="zh-en")
    assert Translator(tiny_model, direction="en-zh").target_lang == "zh"


def test_evaluate_gives_scores_by_english_length(runner, tiny_model, tmp_path):
    from rnn_apps.apps.translate.evaluate import corpus_bleu, corpus_chrf

    out_tsv = tmp_path / "out.tsv"
    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", tiny_model, "--json",
                            "--output", str(out_tsv)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    rows = [line.split("\t") for line in out_tsv.read_text(encoding="utf-8").splitlines()]
    assert sum(b["pairs"] for b in res["by_length"].values()) == res["pairs"] == len(rows)
    assert res["chrf"] == pytest.approx(corpus_chrf([h for _, _, h in rows], [ref for _, ref, _ in rows]))
    probe = res["unknown_names"]
    toms = [row[0] for row in rows if re.search(r"\bTom\b", row[0])]
    assert probe["sentences"] == len(toms) > 0 and 0 <= probe["carried"] <= probe["sentences"]
    bins = {"under 5": lambda n: n < 5, "5-9": lambda n: 5 <= n < 10, "10 or more": lambda n: n >= 10}
    for name, got in res["by_length"].items():
        part = [row for row in rows if bins[name](len(row[0].split()))]
        assert got["pairs"] == len(part)
        assert got["bleu"] == pytest.approx(corpus_bleu([h for _, _, h in part], [ref for _, ref, _ in part], "zh")[0],
                                            abs=0.01)


def test_fine_tune_keeps_the_vocabulary_and_grows_it(runner, tiny_model, tmp_path):
    """fine-tune translate: old ids and weights kept (learning rate 0), new words and characters appended."""
    from rnn_apps.apps.translate.export import load_exported_model

    data = tmp_path / "mine.tsv"
    data.write_text("Zorbu likes tea.\t佐布喜欢茶。\nZorbu has a dog.\t佐布有一只狗。\nI love Zorbu.\t我爱佐布。\n"
                    "Zorbu is my friend.\t佐布是我的朋友。\nThank you, Zorbu.\t谢谢你，佐布。\n", encoding="utf-8")
    r = runner.invoke(cli, ["fine-tune", "translate", "--data", str(data), "--model", tiny_model, "--epochs", "1",
                            "--learning-rate", "0", "--source-min-count", "1", "--target-min-count", "1",
                            "--val-fraction", "0.2", "--run-dir", str(tmp_path / "run"), "--out",
                            str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    base, b_src, b_tgt, _, _ = load_exported_model(tiny_model)
    new, n_src, n_tgt, cfg, _ = load_exported_model(res["exported"])
    assert n_src.tokens[: len(b_src)] == b_src.tokens and "zorbu" in n_src.tokens[len(b_src):]
    assert n_tgt.tokens[: len(b_tgt)] == b_tgt.tokens and "佐" in n_tgt.tokens[len(b_tgt):]
    assert res["stats"]["new_source_tokens"] == len(n_src) - len(b_src) > 0
    emb_old, emb_new = base.source_embedding.embeddings.numpy(), new.source_embedding.embeddings.numpy()
    np.testing.assert_allclose(emb_new[: len(b_src)], emb_old)
    np.testing.assert_allclose(new.logits.kernel.numpy()[:, : len(b_tgt)], base.logits.kernel.numpy())
    r = runner.invoke(cli, ["fine-tune", "translate", "--data", str(tmp_path / "nope.tsv"), "--model", tiny_model,
                            "--run-dir", str(tmp_path / "run2")])
    assert r.exit_code == 1 and "No such file" in r.output and "Traceback" not in r.output


def test_export_from_model_keeps_weights_settings_and_translations(runner, tiny_model, tmp_path):
    """`export translate --from-model`: the same weights, decoding settings and translations, no card written."""
    import json

    import tensorflow as tf

    from rnn_apps.cli import cli

    r = runner.invoke(cli, ["export", "translate", "--from-model", tiny_model, "--export", str(tmp_path / "translate"),
                            "--json"])
    assert r.exit_code == 0, r.output
    new_dir = json.loads(r.output)["exported"]
    assert not os.path.exists(tmp_path / "translate" / "README.md")
    meta = [json.load(open(os.path.join(d, "assets.extra", "translate.json"), encoding="utf-8"))
            for d in (tiny_model, new_dir)]
    assert meta[1]["decoding"] == meta[0]["decoding"] and meta[1]["config"] == meta[0]["config"]
    old, new = tf.saved_model.load(tiny_model), tf.saved_model.load(new_dir)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(old.model_weights, new.model_weights))
    texts = tf.constant(["I love you.", "Tom likes tea.", "Good night."])
    for beam in (1, 3):
        a, b = (m.signatures["translate"](text=texts, beam_size=tf.constant(beam), max_length=tf.constant(0))
                for m in (old, new))
        np.testing.assert_array_equal(a["translation"].numpy(), b["translation"].numpy())
    r = runner.invoke(cli, ["export", "translate", "--from-model", tiny_model, "--run-dir", "x"])
    assert r.exit_code == 2 and "one of --run-dir" in r.output
