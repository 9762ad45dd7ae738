"""The sentiment model's n-gram branch: NB-weighted logistic regression, self-training, the combiner, export."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from sentiment_reviews import ENV, NEG, POS, TINY, review, review_sets


@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    return review_sets(tmp_path_factory.mktemp("imdb"))

# ------------------------------------------------------------------------------------------ n-gram branch


def test_nb_ratios_and_branch_logits_match_numpy():
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams

    x = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1], [0, 0, 1, 1]], np.float32)
    y = np.array([1, 1, 0, 0, 1], np.float32)
    p = 1 + x[y == 1].sum(0)
    q = 1 + x[y == 0].sum(0)
    expected = np.log(p / p.sum()) - np.log(q / q.sum())
    np.testing.assert_allclose(ngrams.nb_ratios(tf.sparse.from_dense(x), y), expected, rtol=1e-6)
    vec = ngrams.make_ngram_vectorizer(2, vocabulary=["good", "bad movie", "bad", "not"])
    w = np.array([0.5, 2.0, -3.0, -1.0, 0.25], np.float32)  # index 0: an n-gram outside the vocabulary
    # "Not bad movie!" -> not, bad, movie, "not bad", "bad movie": known not, bad, bad movie; unknown movie, not bad.
    # "good good" -> good (counted once: multi-hot) and the unknown "good good".
    z = ngrams.ngram_logits(vec, w, 0.1, ["Not bad movie!", "good good", ""])
    np.testing.assert_allclose(z, [0.25 - 1.0 - 3.0 + 0.5 + 0.1, 2.0 + 0.5 + 0.1, 0.1], rtol=1e-6)


def test_weighted_nb_ratios_match_numpy():
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams

    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0]], np.float32)
    y = np.array([1, 0, 1, 0], np.float32)
    s = np.array([1.0, 1.0, 0.5, 0.25], np.float32)
    p = 1 + (s * y) @ x
    q = 1 + (s * (1 - y)) @ x
    np.testing.assert_allclose(ngrams.nb_ratios(tf.sparse.from_dense(x), y, sample_weights=s),
                               np.log(p / p.sum()) - np.log(q / q.sum()), rtol=1e-6)


def test_self_training_learns_words_seen_only_in_unlabelled_reviews():
    from rnn_apps.apps.sentiment import ngrams

    rng = random.Random(0)
    texts = [review(rng, POS if i % 2 else NEG, 8) for i in range(40)]
    labels = [i % 2 for i in range(40)]
    # "zorbly" and "blech" never occur in a labelled review; in unlabelled ones they go with the label words.
    unlabelled = [review(rng, POS, 8) + " zorbly" for _ in range(15)] + [review(rng, NEG, 8) + " blech" for _ in range(15)]
    plain = ngrams.fit_ngram_branch(texts, labels, 2000, 1, tokens="punctuation")
    assert "zorbly" not in plain[0]
    off = ngrams.fit_ngram_branch(texts, labels, 2000, 1, tokens="punctuation", unlabelled=unlabelled, unlabelled_weight=0)
    assert off[0] == plain[0] and np.array_equal(off[1], plain[1])
    vocab, weights, bias = ngrams.fit_ngram_branch(texts, labels, 2000, 1, tokens="punctuation", unlabelled=unlabelled,
                                                   unlabelled_weight=0.5)
    w = dict(zip(vocab, weights[1:]))
    assert w["zorbly"] > 0.05 and w["blech"] < -0.05
    assert w["great"] > 0 and w["awful"] < 0
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="number in \\[0, 1\\]"):
            ngrams.fit_ngram_branch(texts, labels, 2000, 1, unlabelled=unlabelled, unlabelled_weight=bad)


def test_combiner_is_the_logistic_regression_optimum_and_cross_validates():
    from rnn_apps.apps.sentiment import ngrams

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(np.float64)
    a = (2 * y - 1) * 1.5 + rng.normal(0, 2, 400)  # two noisy views of the label
    b = (2 * y - 1) * 1.0 + rng.normal(0, 1.5, 400)
    coef = ngrams.fit_combiner(np.stack([a, b], 1), y, l2=0.0)
    design = np.stack([a, b, np.ones_like(a)], 1)
    p = 1 / (1 + np.exp(-(design @ coef.astype(np.float64))))
    np.testing.assert_allclose(design.T @ (p - y) / len(y), 0, atol=1e-5)  # the gradient vanishes at the optimum
    both = ngrams.accuracy(p, y)
    assert both > max(ngrams.accuracy(a > 0, y), ngrams.accuracy(b > 0, y)) + 0.02
    p_rnn = 1 / (1 + np.exp(-a))
    cv = ngrams.cross_validated_accuracy(p_rnn, b, y, folds=2, seed=1)
    assert abs(cv - both) < 0.05
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        ngrams.fit_combiner(np.zeros((3, 3)), np.zeros(3))


def _python_tokens(text, tokens):
    """An independent reference of the branch's tokens (ASCII text): words, and with "punctuation" each mark."""
    import re

    text = text.lower().replace("<br />", " ")
    if tokens == "punctuation":
        text = re.sub(r"([^a-z0-9\s'])", r" \1 ", text)
    else:
        text = re.sub(r"[^a-z0-9']+", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def test_punctuation_tokens_match_a_python_reference():
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams

    texts = ["Awful!! 2/10... Don't 'quote' me :) <br />Great?", "a_b (c) [d] $5 & #1", "  ", ""]
    got = [t.decode().split() for t in ngrams.ngram_standardize(tf.constant(texts)).numpy()]
    assert got == [_python_tokens(t, "punctuation") for t in texts]
    assert got[0] == ["awful", "!", "!", "2", "/", "10", ".", ".", ".", "don't", "quote", "me", ":", ")", "great", "?"]
    # Non-ASCII letters stay in words; a dash and curly quotes are marks; bad UTF-8 becomes U+FFFD, not an error.
    out = ngrams.ngram_standardize(tf.constant(["Naïve—café \u2018ok\u2019", b"bad \xff byte",
                                                "no\u00a0break\x0btab\u200bzero"])).numpy()
    assert out[0].decode().split() == ["naïve", "—", "café", "ok"]
    assert out[1].decode().split() == ["bad", "\ufffd", "byte"]
    assert out[2].decode().split() == ["no", "break", "tab", "zero"]  # Unicode spaces and controls separate
    vec = ngrams.make_ngram_vectorizer(2, vocabulary=["!", "awful !", "! !", "awful"], tokens="punctuation")
    w = np.array([0.5, 1.0, -2.0, 0.25, -3.0], np.float32)
    # "Awful!!" -> awful, !, "awful !", "! !" (each once) and nothing unknown; "awful" alone -> awful.
    np.testing.assert_allclose(ngrams.ngram_logits(vec, w, 0.0, ["Awful!!", "awful", "!?"]),
                               [1.0 - 2.0 + 0.25 - 3.0, -3.0, 1.0 + 0.5], rtol=1e-6)
    words = ngrams.make_ngram_vectorizer(2, vocabulary=["!", "awful"], tokens="words")
    np.testing.assert_allclose(ngrams.ngram_logits(words, w[:3], 0.0, ["Awful!!"]), [-2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="one of words, punctuation; received 'chars'"):
        ngrams.make_ngram_vectorizer(2, tokens="chars")


def test_ngram_branch_saved_without_tokens_reads_as_words(tmp_path):
    from rnn_apps.apps.sentiment import ngrams, task

    branch = ngrams.NgramBranch(["good", "bad"], np.array([0.0, 1.0, -1.0]), 0.5, 1, np.array([1.0, 1.0, 0.0]),
                                tokens="punctuation")
    branch.save(str(tmp_path / "b"))
    assert ngrams.NgramBranch.load(str(tmp_path / "b")).tokens == "punctuation"
    meta = json.loads((tmp_path / "b" / ngrams.META_FILE).read_text())
    del meta["tokens"]  # what branches fitted before the setting existed saved
    (tmp_path / "b" / ngrams.META_FILE).write_text(json.dumps(meta))
    assert ngrams.NgramBranch.load(str(tmp_path / "b")).tokens == "words"
    with pytest.raises(ValueError, match="received 'chars'"):
        ngrams.NgramBranch(["good"], np.zeros(2), 0.0, 1, np.zeros(3), tokens="chars")
    from rnn_apps.training import TrainingError

    with pytest.raises(TrainingError, match="--ngram-tokens"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), ngram_tokens="chars")
    with pytest.raises(TrainingError, match="--ngram-self-training"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), ngram_self_training=2.0)
    assert not (tmp_path / "run").exists()


def _python_ngram_logit(branch, text):
    """An independent reference: uni- and bigrams in plain Python, summed branch weights."""
    words = _python_tokens(text, branch.tokens)
    grams = set(words) | {f"{u} {v}" for u, v in zip(words, words[1:])}
    index = {g: i + 1 for i, g in enumerate(branch.vocabulary)}
    known = {index[g] for g in grams if g in index}
    return float(sum(branch.weights[i] for i in known) + (branch.weights[0] if len(known) < len(grams) else 0)
                 + branch.bias)


@pytest.fixture(scope="module")
def ngram_run(tmp_path_factory, imdb):
    from rnn_apps.apps.sentiment import task

    run_dir = str(tmp_path_factory.mktemp("sentiment_ngram_run"))
    old = task.MIN_COMBINER_REVIEWS
    task.MIN_COMBINER_REVIEWS = 8  # the tiny data has 12 validation reviews
    try:
        result = task.train(imdb[0], run_dir, epochs=2, verbose=0, save_every=0,
                            **{**TINY, "num_layers": 1, "ngram_features": 500, "ngram_order": 2, "val_fraction": 0.25})
    finally:
        task.MIN_COMBINER_REVIEWS = old
    return run_dir, result


def test_ngram_branch_trains_exports_and_combines(ngram_run, tmp_path):
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams, task
    from rnn_apps.apps.sentiment import model as smodel
    from rnn_apps.apps.sentiment.export import export_sentiment, load_base

    run_dir, result = ngram_run
    branch = result["ngram"]
    assert branch is not None and 0 < len(branch.vocabulary) <= 499 and branch.order == 2
    assert branch.tokens == "punctuation" and any(g.endswith(" !") for g in branch.vocabulary)  # the default
    assert branch.figures["self_training"] == {"unlabelled_reviews": 10, "weight": 0.5}  # train/unsup, by default
    assert any(" " in g for g in branch.vocabulary)  # bigrams are in
    assert branch.figures["combiner_fitted_on_validation"] and branch.figures["val_reviews"] == 12
    assert branch.figures["ngram_val_accuracy"] >= 0.9  # the tiny reviews carry their label words
    saved = task.load_run_ngram(run_dir)
    assert saved.vocabulary == branch.vocabulary and np.array_equal(saved.weights, branch.weights)
    np.testing.assert_array_equal(saved.combiner, branch.combiner)
    path = export_sentiment(result["model"], result["vocabulary"], result["config"], str(tmp_path / "sentiment"),
                            ngram=branch)
    assert open(os.path.join(path, "assets", ngrams.VOCAB_FILE), encoding="utf-8").read().split("\n")[0] == branch.vocabulary[0]
    texts = ["Great movie, loved it!", "the plot was awful<br />worst acting!!", "zzz", "!"]
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["branches"](text=tf.constant(texts))
    serving = loaded.signatures["serving_default"](text=tf.constant(texts))
    vec = smodel.make_vectorizer(result["vocabulary"])
    p_rnn = result["model"].predict(smodel.dense_ids(vec, tf.constant(texts), result["config"]["max_len"]), verbose=0)[:, 0]
    z = np.array([_python_ngram_logit(branch, t) for t in texts])
    np.testing.assert_allclose(out["rnn_probability"].numpy(), p_rnn, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["ngram_probability"].numpy(), 1 / (1 + np.exp(-z)), rtol=1e-4, atol=1e-6)
    expected = ngrams.combine(branch.combiner, p_rnn, z)
    np.testing.assert_allclose(serving["probability"].numpy(), expected, rtol=1e-4, atol=1e-5)
    assert [x.decode() for x in serving["label"].numpy()] == ["positive" if p >= 0.5 else "negative" for p in expected]
    base = load_base(path)
    assert base["ngram"].vocabulary == branch.vocabulary and np.allclose(base["ngram"].weights, branch.weights)
    assert base["ngram"].tokens == "punctuation"
    # The SavedModel carries the n-gram list as an asset and needs neither rnn_apps nor the run directory.
    script = tmp_path / "load.py"
    script.write_text("import sys, json\nsys.modules['rnn_apps'] = None\nimport tensorflow as tf\n"
                      "m = tf.saved_model.load(sys.argv[1])\n"
                      "o = m.signatures['branches'](text=tf.constant(sys.argv[2:]))\n"
                      "print(json.dumps({k: v.numpy().tolist() for k, v in o.items()}))\n")
    r = subprocess.run([sys.executable, str(script), path, *texts[:2]], env=ENV, capture_output=True, text=True,
                       timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["probability"], expected[:2], rtol=1e-4, atol=1e-5)


def test_fine_tune_keeps_the_base_ngram_branch(ngram_run, tmp_path):
    from rnn_apps.apps.sentiment import task
    from rnn_apps.apps.sentiment.export import export_sentiment

    _, result = ngram_run
    base = export_sentiment(result["model"], result["vocabulary"], result["config"], str(tmp_path / "base"),
                            ngram=result["ngram"])
    rng = random.Random(4)
    rows = ["text\tlabel"] + [f"{review(rng, POS if i % 2 else NEG, 6)}\t{i % 2}" for i in range(20)]
    mine = tmp_path / "mine.tsv"
    mine.write_text("\n".join(rows) + "\n", encoding="utf-8")
    tuned = task.train(str(mine), str(tmp_path / "run"), epochs=1, verbose=0, save_every=0, init_from=base, seed=2)
    assert tuned["ngram"].vocabulary == result["ngram"].vocabulary
    np.testing.assert_array_equal(tuned["ngram"].weights, result["ngram"].weights)
    # Two validation reviews are too few to refit the combiner: the base's is kept.
    np.testing.assert_array_equal(tuned["ngram"].combiner, result["ngram"].combiner)


def test_the_card_of_a_fine_tuned_model_says_what_it_inherited(ngram_run, tmp_path):
    """The card of a model fine-tuned on a CSV said its n-gram branch was "fitted on the training reviews, then
    fitted again with N unlabelled reviews", its vocabulary "adapted on the training text", "Language-model
    pre-training: 0 epoch(s)", the base's combiner "fitted on the validation reviews", and held a row "combiner
    fitted on all validation reviews" and a "**?**"; with no validation reviews, nan and "Kept: the epoch with
    the lowest validation loss". It names the base model, what came from it, and only the figures it measured."""
    from rnn_apps import cards
    from rnn_apps.apps.sentiment import task
    from rnn_apps.apps.sentiment.export import export_result, export_sentiment, load_config, write_model_card

    _, result = ngram_run
    base = export_sentiment(result["model"], result["vocabulary"], result["config"], str(tmp_path / "base"),
                            ngram=result["ngram"])
    cards.write_card("sentiment", base, trained_on="aclImdb-train.tar.gz")  # the base's card says IMDB
    rng = random.Random(5)
    rows = ["text,label"] + [f"{review(rng, POS if i % 2 else NEG, 6)},{i % 2}" for i in range(20)]
    mine = tmp_path / "mine.csv"
    mine.write_text("\n".join(rows) + "\n", encoding="utf-8")

    def fine_tune(name, **settings):
        run = str(tmp_path / f"run_{name}")
        tuned = task.train(str(mine), run, epochs=1, verbose=0, save_every=0, init_from=base, seed=2, **settings)
        path = export_result(tuned, str(tmp_path / name))
        with open(write_model_card(str(tmp_path / name), path, run), encoding="utf-8") as f:
            return tuned, path, f.read()

    tuned, path, card = fine_tune("ft")
    figures = tuned["ngram"].figures
    assert not figures["combiner_fitted_on_validation"] and figures["val_reviews"] == 2
    assert "Fine-tuned on `mine.csv`, starting from the weights of `base/1`, which was trained on IMDB movie reviews " \
           "(aclImdb)." in card
    assert "(padding and unknown word included) of the base model `base/1`, kept as it was" in card
    assert "* Language-model pre-training: none in the base model `base/1`; none in this fine-tuning." in card
    assert ("* N-gram branch (`rnn_apps.apps.sentiment.ngrams`), the base model `base/1`'s, kept as it was "
            "(fine-tuning does not refit it):") in card
    assert "fitted on its training data, IMDB movie reviews (aclImdb), then fitted again with 10 unlabelled" in card
    assert "the three numbers of the base model `base/1`'s combiner, kept: 2 validation reviews are fewer than the " \
           "200 a combiner is fitted on" in card
    pct = f"{100 * figures['combined_val_accuracy_in_sample']:.2f} %"
    assert f"| **both (this model)**, the combiner of the base model `base/1`, not fitted on these reviews | **{pct}** |" \
        in card
    assert "fitted on the training reviews" not in card and "adapted on the training text" not in card
    assert "combiner fitted on all validation reviews" not in card and "cross-validated" not in card
    assert "2 for validation" in card and "; no unlabelled reviews." in card and "for nothing" not in card
    assert "nan" not in card and "?" not in card
    # the figure the front matter states is the model's own answer on its validation reviews
    assert load_config(path)["val_accuracy"] == figures["combined_val_accuracy_in_sample"]

    _, _, card = fine_tune("none", val_fraction=0.0)  # no validation reviews at all
    assert "20 reviews for training and none for validation (--val-fraction 0)" in card
    assert "no figure on this card was measured on reviews the model did not train on" in card
    assert "* Kept: the last epoch's weights. There were no validation reviews to choose an epoch by" in card
    assert "lowest validation loss" not in card and "Validation accuracy over" not in card
    assert "| epoch | step | loss | seconds |" in card and "val loss" not in card
    assert "kept: there were no validation reviews to fit one on" in card
    assert "nan" not in card and "?" not in card


def test_evaluate_reports_each_branch_and_the_cross_validated_combination(ngram_run, imdb, tmp_path):
    import tensorflow as tf
    from click.testing import CliRunner

    from rnn_apps.apps.sentiment import data as sdata
    from rnn_apps.apps.sentiment import ngrams
    from rnn_apps.apps.sentiment.export import export_sentiment
    from rnn_apps.cli import cli

    run_dir, result = ngram_run
    path = export_sentiment(result["model"], result["vocabulary"], result["config"], str(tmp_path / "sentiment"),
                            ngram=result["ngram"])
    runner = CliRunner()
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", imdb[0], "--model", path, "--split", "val", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    # The same validation reviews, read here through the model's own signature, give the same figures.
    cfg = result["config"]
    labelled, _ = sdata.load_reviews(imdb[0], "train")
    _, val = sdata.split_train_val(labelled, cfg["val_fraction"], cfg["seed"], cfg["val_split"])
    out = tf.saved_model.load(path).signatures["branches"](text=tf.constant([v.text for v in val]))
    y = np.array([v.label for v in val])
    p, p_rnn, p_ngram = (out[k].numpy() for k in ("probability", "rnn_probability", "ngram_probability"))
    assert got["reviews"] == len(val) == 12
    assert got["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))
    assert got["rnn_accuracy"] == pytest.approx(np.mean((p_rnn >= 0.5) == y))
    assert got["ngram_accuracy"] == pytest.approx(np.mean((p_ngram >= 0.5) == y))
    cv = [ngrams.cross_validated_accuracy(p_rnn, ngrams.logit(p_ngram), y, folds=2, seed=s) for s in range(20)]
    assert got["halvings"] == 20 and got["combined_accuracy_cross_validated"] == pytest.approx(np.mean(cv))
    # Training recorded the same figure on the same reviews (the model card's and the export's val_accuracy).
    figures = result["ngram"].figures
    assert figures["halvings"] == 20
    assert figures["combined_val_accuracy_cv"] == pytest.approx(got["combined_accuracy_cross_validated"])
    meta = json.load(open(os.path.join(path, "assets.extra", "sentiment.json"), encoding="utf-8"))
    assert meta["ngram"]["figures"]["combined_val_accuracy_cv"] == figures["combined_val_accuracy_cv"]
    from rnn_apps.apps.sentiment.export import write_model_card

    card = open(write_model_card(str(tmp_path / "sentiment"), path, run_dir), encoding="utf-8").read()
    pct = 100 * got["combined_accuracy_cross_validated"]
    assert (f"| **both (this model)**, combiner cross-validated (fitted on one half, scored on the other, both ways; "
            f"mean of 20 random halvings) | **{pct:.2f} %** |") in card
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", imdb[0], "--model", path, "--split", "val"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[1] == f"recurrent branch alone: {got['rnn_accuracy']:.4f}"
    assert lines[2] == f"n-gram branch alone: {got['ngram_accuracy']:.4f}"
    assert lines[3].endswith(f"(mean of 20 halvings): {got['combined_accuracy_cross_validated']:.4f}")
    # Not on the other splits: the combiner was not fitted on them.
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", imdb[1], "--model", path, "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert "rnn_accuracy" in got and "combined_accuracy_cross_validated" not in got
