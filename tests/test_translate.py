"""The translation app with a tiny trained model: training/resume, export, decoding, library, CLI (its parts that
need no model: test_translate_data.py)."""

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from interrupt import Stop, StopAt
from rnn_apps.cli import cli
from rnn_apps.sentences import split_sentences
from standalone import run_script
from test_translate_data import PAIRS, TINY

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
    # the numbers of the source the whole translation does not carry are named (tested in test_translate_data)
    from rnn_apps.apps.translate.text import lost_numbers

    with_number = tr.translate(["I love 25 you. I love 7 you."])[0]
    assert with_number.lost_numbers == lost_numbers(with_number.source, with_number.translation, "zh")
    assert set(with_number.lost_numbers) == {n for n in ("25", "7") if n not in with_number.translation} or \
        any(w in with_number.translation for w in ("二十五", "七"))  # the tiny model writes no numbers in words
    assert with_number.to_dict()["lost_numbers"] == with_number.lost_numbers and res[0].lost_numbers == []
    # symbols, emoji (and their invisible variation selector) are not words the user should check
    assert tr.translate(["I love zzz ❤️ ¤ #"])[0].unknown_words == ["zzz"]
    assert {"❤", "\ufe0f", "¤"} <= set(tr.tokenize(["I love zzz ❤️ ¤ #"])[0]["unknown"])  # the model's own reading
    assert tr.translate(["I love you."], beam=1)[0].translation == res[0].translation
    al = tr.attention("I love you.", beam=2)
    assert al.source_tokens == ["i", "love", "you", ".", "<eos>"] and al.weights.shape == (len(al.target_tokens), 5)
    for bad, msg in (([""], "Text 1 is empty"), (["   "], "empty"), (["zzz qqq."], "knows none of its words"),
                     (["?!"], "no words to translate")):
        with pytest.raises(TranslateError, match=msg):
            tr.translate(bad)
    with pytest.raises(TranslateError, match="beam must be an integer from 1"):
        tr.translate(["Hi."], beam=0)
    for bad in (0, 2.5, None):  # 2.5 failed in range() with Python's own TypeError
        with pytest.raises(TranslateError, match=r"^batch_size must be a positive integer; received "):
            tr.translate(["Hi."], batch_size=bad)


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
    # line for line with the file, its blank line kept (an untrained model may write nothing)
    assert r.stdout.count("\n") == 3 and r.stdout.split("\n")[1] == ""
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "-"], input="I love you.\nI like tea.\n")
    assert r.exit_code == 0 and r.stdout.count("\n") == 2
    png = tmp_path / "att.png"
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "I love you.", "--plot-attention", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_translate_cli_a_bad_text_does_not_cost_the_others_their_translations(runner, tiny_model, tmp_path):
    """A text that cannot be translated among several: named on stderr and as an error row in --json, an
    empty line in the text output (line for line with the file), the others translated as they are alone;
    status 1."""
    f = tmp_path / "in.txt"
    f.write_text("I love you.\nXylophonic zqwx.\nThank you.\n", encoding="utf-8")
    alone = runner.invoke(cli, ["translate", "--model", tiny_model, "I love you.", "Thank you.", "--json"])
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "--file", str(f), "--json"])
    rows = json.loads(r.stdout)
    assert r.exit_code == 1 and alone.exit_code == 0
    strip = lambda row: {k: v for k, v in row.items() if k != "read_from"}  # noqa: E731
    assert [strip(rows[0]), strip(rows[2])] == json.loads(alone.stdout)
    assert rows[1]["source"] == "Xylophonic zqwx." and rows[1]["error"].startswith(f"{f}, line 2: the model knows none")
    assert f"Error: {rows[1]['error']}" in r.stderr
    text = runner.invoke(cli, ["translate", "--model", tiny_model, "--file", str(f)])
    assert text.exit_code == 1 and text.stdout.split("\n")[1] == "" and text.stdout.count("\n") == 3
    both = runner.invoke(cli, ["translate", "--model", tiny_model, "", "Xylophonic zqwx."])
    assert both.exit_code == 1 and "None of the 2 texts can be translated:\nText 1 is empty" in both.output


def test_a_table_of_pairs_is_translated_from_its_source_column(runner, tiny_model, tmp_path):
    """A Tatoeba-style file (English, Chinese, attribution) given to translate was translated whole, both
    languages as one text: its English column is translated, with a note, and the output keeps its lines."""
    from rnn_apps.apps.translate.translate import source_columns
    from rnn_apps.textio import Line

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("I love you.\t我爱你。\tCC-BY 2.0 (France) Attribution\n\nThank you.\t谢谢。\n", encoding="utf-8")
    alone = runner.invoke(cli, ["translate", "--model", tiny_model, "I love you.", "Thank you.", "--json"])
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "--file", str(pairs), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row.pop("read_from") for row in rows] == [f"{pairs}, line 1", f"{pairs}, line 3"]
    assert rows == json.loads(alone.stdout)
    assert r.stderr.strip() == (f"Note: {pairs} holds tab-separated columns: translating column 1, the English one, "
                                f"of each line (rnn-apps evaluate translate --data {pairs} scores the translations "
                                "against the other).")
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "-"], input="I love you.\t我爱你。\n")
    assert r.exit_code == 0 and r.stderr.strip() == ("Note: standard input holds tab-separated columns: translating "
                                                     "column 1, the English one, of each line.")  # nothing to score
    texts = [Line("Hi.\t你好。", "p.tsv, line 1", source="p.tsv"),
             Line("我爱你。\tI love you.", "q.tsv, line 4", source="q.tsv"), "a\tb", Line("x", "r", source="r")]
    got, columns = source_columns(texts, "zh")
    assert got[:3] == ["你好。", "我爱你。", "a\tb"] and got[0].origin == "p.tsv, line 1" and got[3] is texts[3]
    assert got[0].source == "p.tsv"
    assert columns == {"p.tsv": {2: 1}, "q.tsv": {1: 1}}  # a text given on the command line is left whole


def test_only_a_line_in_both_languages_is_a_row_of_pairs(runner, tiny_model, tmp_path):
    """The source column of en was the first cell without Chinese: Tatoeba's sentences.csv (id, language, text)
    translated its ids, plain English with a tab lost what followed the tab, and the note named the first
    line's column when the lines differed."""
    from rnn_apps.apps.translate.translate import source_columns
    from rnn_apps.textio import Line

    one_language = ["1276\teng\tLet's try something.", "1\tWhere is the station?", "Name:\tJohn Smith",
                    "你好\t再见"]
    texts = [Line(t, f"s.csv, line {n}", source="s.csv") for n, t in enumerate(one_language, 1)]
    for lang in ("en", "zh"):
        got, columns = source_columns(texts, lang)
        assert got == one_language and columns == {}  # translated whole, as a line without a tab
    pairs = [Line("我爱你。\tI love you.", "p.tsv, line 1", source="p.tsv"),
             Line("Thank you.\t谢谢。\tCC-BY 2.0 (France)", "p.tsv, line 2", source="p.tsv")]
    assert source_columns(pairs, "en") == (["I love you.", "Thank you."], {"p.tsv": {2: 1, 1: 1}})
    assert source_columns(pairs, "zh") == (["我爱你。", "谢谢。"], {"p.tsv": {1: 1, 2: 1}})
    # on the command line: the lines differ, and a line of English with a tab is translated whole
    f = tmp_path / "mixed.tsv"
    f.write_text("我爱你。\tI love you.\nThank you.\t谢谢。\nI love you.\tThank you.\n", encoding="utf-8")
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "--file", str(f), "--json"])
    assert r.exit_code == 0, r.output
    assert [row["source"] for row in json.loads(r.stdout)] == ["I love you.", "Thank you.", "I love you.\tThank you."]
    assert r.stderr.strip() == (f"Note: {f} holds tab-separated columns in both languages on 2 lines of 3: translating "
                                "the English one of each (column 1 on 1 line, column 2 on 1 line); the other line is "
                                "translated whole.")


def test_translate_cli_bad_input(runner, tiny_model):
    for args, msg in ((["translate", "--model", tiny_model, ""], "empty"),
                      (["translate", "--model", tiny_model, "Xylophonic zqwx."], "knows none of its words"),
                      (["translate", "--model", tiny_model], "Give text to translate"),
                      ):
        r = runner.invoke(cli, args)
        assert r.exit_code == 1 and msg in r.output and "Traceback" not in r.output, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit)
    # out-of-range options are usage errors that name the option, as every command's
    for args, msg in ((["--beam", "99"], "Invalid value for '--beam': the beam width must be an integer from 1 to 16"),
                      (["--max-length", "999"], "Invalid value for '--max-length': --max-length must be an integer "
                                                "from 0 to 160 (0: the model's default); received 999.")):
        r = runner.invoke(cli, ["translate", "--model", tiny_model, "Hi.", *args])
        assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output, (args, r.output)
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


def _card_of_evaluated_model(runner, run_dir: str, model: str, tmp_path):
    """``(bleu.json, card.md)``: the tiny model evaluated on its validation pairs and its card written from them."""
    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", model, "--split", "val", "--json"])
    bleu = tmp_path / "bleu.json"
    bleu.write_text(r.stdout, encoding="utf-8")
    card = tmp_path / "card.md"
    r = runner.invoke(cli, ["card", "translate", "--model", model, "--out", str(card), "-i", f"run_dir={run_dir}",
                            "-i", f"bleu={bleu}"])
    assert r.exit_code == 0, r.output
    return bleu, card


def test_card_takes_the_json_evaluate_prints(runner, tiny_run, tiny_model, tmp_path):
    """docs/training.md's `card translate -i bleu=bleu.json`, with evaluate's own JSON, was a TypeError."""
    run_dir, _ = tiny_run
    bleu, card = _card_of_evaluated_model(runner, run_dir, tiny_model, tmp_path)
    measured = round(json.loads(bleu.read_text(encoding="utf-8"))["bleu"], 2)
    assert f"value: {measured}" in card.read_text(encoding="utf-8")
    bleu.write_text('{"beam": 3}', encoding="utf-8")
    r = runner.invoke(cli, ["card", "translate", "--model", tiny_model, "--out", str(card), "-i", f"run_dir={run_dir}",
                            "-i", f"bleu={bleu}"])
    assert r.exit_code == 1 and "is not the JSON of `rnn-apps evaluate translate --json`" in r.output, r.output
    assert "Traceback" not in r.output


def test_card_of_a_model_on_the_users_own_pairs_names_them_not_tatoeba(runner, tiny_run, tiny_model, tmp_path):
    """A model trained on a user's own sentence pairs: its card names their file, not Tatoeba (its name,
    licence, hub entries or changelog), nor the project's machine; it says the machine its run recorded."""
    import yaml

    run_dir, _ = tiny_run
    _, card = _card_of_evaluated_model(runner, run_dir, tiny_model, tmp_path)
    text = card.read_text(encoding="utf-8")
    name = os.path.basename(PAIRS)
    for shipped in ("Tatoeba", "tatoeba", "CC-BY", "project's", "2-core", "shared/data", "cmn-eng", "## Versions"):
        assert shipped not in text, shipped
    assert f"* Corpus: `{name}`, English–Chinese sentence pairs" in text and f"--data {name} " in text
    assert " min on a machine with " in text
    front = yaml.safe_load(text.split("\n---\n", 1)[0][4:])
    assert "license" not in front and "datasets" not in front and front["rnn_apps"]["data"] == name
    assert front["model-index"][0]["results"][0]["dataset"]["type"] == name


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


@pytest.mark.parametrize("trained_on_words", [True, False])
def test_a_latin_name_in_chinese_is_one_unknown_token_carried_whole(tiny_run, trained_on_words):
    """A zh-en graph reads an unseen Latin word as one <unk> and puts it back whole ("我叫Kowalski。" came
    out "I lent w to the w." read letter by letter); a model trained on letters still spells the names it
    learned so (Tom) and its settings say so in the export."""
    import tensorflow as tf

    from rnn_apps.apps.translate.export import TranslateModule, zh_reading
    from rnn_apps.apps.translate.model import build_model
    from rnn_apps.vocab import Vocabulary

    _, r = tiny_run
    cfg = {**r["config"], "direction": "zh-en"}
    if not trained_on_words:
        cfg.pop("zh_latin_words", None)
    src = Vocabulary.build([list("我叫是朋友。") + ["T", "o", "m"]])
    tgt = Vocabulary.build([["i", "am", "."]])
    model = build_model(len(src), len(tgt), cfg)
    bias = model.logits.bias.numpy()
    bias[Vocabulary.unk_id] += 100.0  # it writes <unk> at every step
    model.logits.bias.assign(bias)
    module = TranslateModule(model, src, tgt, cfg, {})
    assert zh_reading(cfg)["spelled"] == (() if trained_on_words else ("Tom", "Mary"))
    toks = module.tokenize(tf.constant(["我叫Kowalski。", "Tom是朋友。"]))
    rows = [[t.decode() for t in row if t] for row in toks["tokens"].numpy()]
    assert rows[0] == ["我", "叫", "Kowalski", "。"]
    assert rows[1] == (["Tom", "是", "朋", "友", "。"] if trained_on_words else ["T", "o", "m", "是", "朋", "友", "。"])
    assert [t.decode() for t in toks["unknown_tokens"].numpy()[0] if t] == ["Kowalski"]
    out = module.run(tf.constant(["我叫Kowalski。"]), tf.constant(1), tf.constant(3))
    assert out["translation"].numpy()[0].decode() == "Kowalski"
    # With no unknown word an <unk> may copy a known Latin word, never a known character: "Your name is 么."
    out = module.run(tf.constant(["我是朋友。", "Tom是朋友。"]), tf.constant(1), tf.constant(3))
    assert out["translation"].numpy()[0].decode() == ""
    copied = out["translation"].numpy()[1].decode()
    # a model that spells Tom may copy some of its letters (which, depends on its untrained attention)
    assert (copied == "Tom") if trained_on_words else set(copied.lower()) <= set("tom"), copied


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
    # every sentence naming Tom, but those left with no known word (test_name_probe_skips_unreadable_sentences)
    assert 0 < probe["sentences"] <= len(toms) and 0 <= probe["carried"] <= probe["sentences"]
    bins = {"under 5": lambda n: n < 5, "5-9": lambda n: 5 <= n < 10, "10 or more": lambda n: n >= 10}
    for name, got in res["by_length"].items():
        part = [row for row in rows if bins[name](len(row[0].split()))]
        assert got["pairs"] == len(part)
        assert got["bleu"] == pytest.approx(corpus_bleu([h for _, _, h in part], [ref for _, ref, _ in part], "zh")[0],
                                            abs=0.01)


def test_evaluate_takes_the_direction_as_translate_does(runner, tiny_model):
    """--direction means in evaluate translate what it means in translate; the output names the split and file."""
    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", tiny_model, "--direction", "zh-en"])
    assert r.exit_code == 1 and "translates en-zh, not zh-en" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", tiny_model, "--direction", "en-zh",
                            "--split", "val", "--limit", "3"])
    assert r.exit_code == 0, r.output
    assert f"3 pairs: the val part of {os.path.basename(PAIRS)}; en-zh" in r.output


def test_evaluate_paragraphs_joins_pairs_and_translates_them_as_the_command(runner, tiny_model):
    """--paragraphs 3: the pairs shuffled with seed 0, joined three at a time, each paragraph translated as
    `rnn-apps translate` translates it (sentence by sentence), scored against the references joined."""
    from rnn_apps.apps.translate.evaluate import corpus_bleu
    from rnn_apps.apps.translate.translate import Translator

    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", tiny_model, "--paragraphs", "3",
                            "--limit", "12", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert (res["paragraphs"], res["texts"], res["pairs"]) == (3, 4, 12)
    sources = [e["source"] for e in res["examples"]]
    assert all(len(split_sentences(s, "en")) >= 3 for s in sources)
    tr = Translator(tiny_model)
    hyps = [t.translation for t in tr.translate(sources, beam=res["beam"])]
    assert hyps == [e["translation"] for e in res["examples"]]
    assert res["bleu"] == pytest.approx(corpus_bleu(hyps, [e["reference"] for e in res["examples"]], "zh")[0])
    r = runner.invoke(cli, ["evaluate", "translate", "--data", PAIRS, "--model", tiny_model, "--paragraphs", "11"])
    assert r.exit_code == 2 and "'--paragraphs'" in r.output


def test_texts_of_a_file_are_named_by_their_line(runner, tiny_model, tmp_path):
    """Blank lines are skipped, so "Text 2" named the fourth line: messages and --json name file and line."""
    f = tmp_path / "texts.txt"
    f.write_text("I love you.\n\n\nXylophonic zqwx.\n", encoding="utf-8")
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "--file", str(f)])
    assert r.exit_code == 1 and f"{f}, line 4: the model knows none of its words" in r.output, r.output
    f.write_text("I love you.\n\n\nI like tea.\n", encoding="utf-8")
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "--file", str(f), "--json"])
    assert [row["read_from"] for row in json.loads(r.stdout)] == [f"{f}, line 1", f"{f}, line 4"]
    r = runner.invoke(cli, ["translate", "--model", tiny_model, "I like tea.", "--json"])
    assert "read_from" not in json.loads(r.stdout)[0]


def test_name_probe_skips_unreadable_sentences():
    """A Tom sentence whose other words the model does not know ("Zorbu yawned.") is left out of the probe,
    not refused with an error that ends the evaluation."""
    from rnn_apps.apps.translate.evaluate import unknown_name_probe

    class Fake:
        source_lang, target_lang = "en", "zh"
        known = {"tom", "is", "here", "."}

        def tokenize(self, texts):
            rows = []
            for t in texts:
                tokens = re.findall(r"\w+|\.", t.lower())
                rows.append({"tokens": tokens, "unknown": [w for w in tokens if w not in self.known]})
            return rows

        def translate(self, texts, beam=None):
            self.asked = list(texts)
            return [type("T", (), {"translation": t})() for t in texts]  # echoes: every name carried

    fake = Fake()
    probe = unknown_name_probe(fake, ["Tom is here.", "Tom yawned.", "Mary is here."], beam=1)
    assert fake.asked == ["Zorbu is here."]
    assert probe == {"sentences": 1, "carried": 1, "share": 1.0, "names": list(probe["names"])}
    assert unknown_name_probe(Fake(), ["Tom yawned."], beam=1) is None


def test_fine_tune_keeps_the_vocabulary_and_grows_it(runner, tiny_model, tmp_path):
    """fine-tune translate: old ids and weights kept (a learning rate too small to move float32 weights), new words
    and characters appended."""
    from rnn_apps.apps.translate.export import load_exported_model

    data = tmp_path / "mine.tsv"
    data.write_text("Zorbu likes tea.\t佐布喜欢茶。\nZorbu has a dog.\t佐布有一只狗。\nI love Zorbu.\t我爱佐布。\n"
                    "Zorbu is my friend.\t佐布是我的朋友。\nThank you, Zorbu.\t谢谢你，佐布。\n", encoding="utf-8")
    r = runner.invoke(cli, ["fine-tune", "translate", "--data", str(data), "--model", tiny_model, "--epochs", "1",
                            "--learning-rate", "1e-12", "--source-min-count", "1", "--target-min-count", "1",
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
    np.testing.assert_allclose(emb_new[: len(b_src)], emb_old, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(new.logits.kernel.numpy()[:, : len(b_tgt)], base.logits.kernel.numpy(), rtol=1e-6,
                               atol=1e-9)
    # it decodes as the model it continues (beam 1 here): the export wrote beam 4 and today's penalties, so a
    # fine-tuned zh-en model lost the shipped one's α 0.6 and β 0.1
    meta = [json.load(open(os.path.join(d, "assets.extra", "translate.json"), encoding="utf-8"))
            for d in (tiny_model, res["exported"])]
    assert meta[1]["decoding"] == meta[0]["decoding"] and meta[0]["decoding"]["default_beam"] == 1
    r = runner.invoke(cli, ["fine-tune", "translate", "--data", str(tmp_path / "nope.tsv"), "--model", tiny_model,
                            "--run-dir", str(tmp_path / "run2")])
    assert r.exit_code == 1 and "No such file" in r.output and "Traceback" not in r.output


def test_a_continued_model_takes_its_bases_decoding_settings(tiny_model, tmp_path):
    """An export whose record has "decoding": null raised AttributeError; a resumed fine-tune without --model took
    the decoding of the shipped model of --direction, not of the model its run started from."""
    import shutil

    from rnn_apps.apps.translate.commands import _decoding_of, _run_base

    assert _decoding_of(tiny_model)["default_beam"] == 1
    assert _decoding_of(tiny_model, 3, 0.5) == {**_decoding_of(tiny_model), "default_beam": 3, "length_penalty": 0.5}
    old = str(tmp_path / "old")
    shutil.copytree(tiny_model, old)
    record = os.path.join(old, "assets.extra", "translate.json")
    meta = json.load(open(record, encoding="utf-8"))
    with open(record, "w", encoding="utf-8") as f:
        json.dump({**meta, "decoding": None}, f)
    assert _decoding_of(old) == {"default_beam": None, "length_penalty": None, "coverage_penalty": None}
    run = tmp_path / "run"
    run.mkdir()
    assert _run_base(str(run)) is None  # no record yet
    (run / "config.json").write_text(json.dumps({"init_from": tiny_model}), encoding="utf-8")
    assert _run_base(str(run)) == tiny_model
    (run / "config.json").write_text(json.dumps({"init_from": str(tmp_path / "moved")}), encoding="utf-8")
    assert _run_base(str(run)) is None  # the base has moved: the command's own base then


def test_export_from_model_keeps_weights_settings_and_translations(runner, tiny_model, tmp_path):
    """`export translate --from-model`: the same weights, decoding settings and translations; a card written into
    a folder without one (there was none), an existing card kept (its measured sections are not in the model)."""
    import json

    import tensorflow as tf

    from rnn_apps.cli import cli

    r = runner.invoke(cli, ["export", "translate", "--from-model", tiny_model, "--export", str(tmp_path / "translate"),
                            "--json"])
    assert r.exit_code == 0, r.output
    new_dir = json.loads(r.output)["exported"]
    card = (tmp_path / "translate" / "README.md").read_text(encoding="utf-8")
    assert 'app: "translate"' in card and "| direction | \"en-zh\" |" in card, card  # the model's own record
    r = runner.invoke(cli, ["export", "translate", "--from-model", tiny_model, "--export", str(tmp_path / "translate")])
    assert r.exit_code == 0 and (tmp_path / "translate" / "README.md").read_text(encoding="utf-8") == card
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


def test_export_from_a_run_states_the_runs_figures(runner, tiny_run, tmp_path):
    """`export translate --run-dir` recorded every figure of the run as null, and its card had an empty table."""
    import json

    from rnn_apps import training
    from rnn_apps.cli import cli

    run_dir, result = tiny_run
    r = runner.invoke(cli, ["export", "translate", "--run-dir", run_dir, "--export", str(tmp_path / "t"), "--json"])
    assert r.exit_code == 0, r.output
    meta = json.load(open(os.path.join(json.loads(r.output)["exported"], "assets.extra", "translate.json"),
                          encoding="utf-8"))
    history = training.read_history(run_dir)
    assert meta["summary"]["best_epoch"] == result["best_epoch"] and meta["summary"]["step"] == result["step"]
    assert meta["summary"]["val_loss"] == pytest.approx(result["val_loss"]) == min(h["val_loss"] for h in history)
    assert meta["summary"]["stats"] == result["stats"]
    card = (tmp_path / "t" / "README.md").read_text(encoding="utf-8")
    assert f"| best_epoch | {result['best_epoch']} |" in card and f"| step | {result['step']} |" in card


def test_a_translation_that_runs_to_max_length_says_so(translator, runner, tiny_model):
    """--max-length cut a translation short without a word."""
    text = "Tom is my friend and I love him very much."
    cut = translator.translate([text], beam=1, max_length=3)[0]
    assert cut.reached_max_length
    assert not translator.translate([text], beam=1)[0].reached_max_length  # the model's own bound: not asked for
    r = runner.invoke(cli, ["translate", text, "--model", tiny_model, "--max-length", "3", "--json"])
    assert r.exit_code == 0 and "reached --max-length 3 (2 tokens and the end)" in r.stderr
    assert json.loads(r.stdout)[0]["reached_max_length"] is True
