"""Accuracy of an exported sentiment model on labelled reviews (an aclImdb split, TFDS, or a CSV/TSV)."""

from __future__ import annotations

import time
from typing import Optional

from rnn_apps.apps.sentiment import data as sdata

SPLITS = ("test", "train", "val")


def evaluate_reviews(data_path: str, model_dir: Optional[str] = None, split: str = "test", progress: bool = False,
                     batch_size: int = 64) -> dict:
    """Classify every labelled review of ``split`` and count what the model got right.

    Args:
        data_path: An aclImdb directory or tar(.gz), ``tfds:imdb_reviews``, or a CSV/TSV of (text, label)
            (read whole for ``test``/``train``).
        model_dir: An exported model (default: the shipped one).
        split: ``test`` or ``train`` of the aclImdb layout, or ``val``: the model's own validation split of
            the train split (its seed, fraction and way of splitting), the one its training reported. A source
            without splits (a CSV/TSV, a directory with ``pos``/``neg``) is read whole for ``test`` and
            ``train``: the result's ``split`` is then ``all``.
        progress: Show a progress bar (on stderr).

    Returns:
        ``accuracy``, ``reviews``, ``true_positive``, ``false_positive``, ``true_negative``,
        ``false_negative``, ``split``, ``data``, ``model``, ``seconds``. A model with an n-gram branch adds
        each branch's own accuracy, ``rnn_accuracy`` and ``ngram_accuracy``, and on ``val`` (the reviews its
        combiner was fitted on, which flatters ``accuracy``) ``combined_accuracy_cross_validated``: the
        combiner fitted anew on one half of the reviews and scored on the other, both ways, averaged over
        ``halvings`` (:data:`rnn_apps.apps.sentiment.ngrams.HALVINGS`) random halvings, the figure training
        recorded for the model.
    """
    import click
    import numpy as np

    from rnn_apps.apps.sentiment.classify import SentimentClassifier

    if split not in SPLITS:
        raise sdata.SentimentDataError(f"split must be one of {', '.join(SPLITS)}; received {split!r}.")
    t0 = time.time()
    clf = SentimentClassifier(model_dir)
    cfg = clf.meta["config"]
    if split == "val":
        labelled, _ = sdata.load_reviews(data_path, "train")
        _, reviews = sdata.split_train_val(labelled, cfg.get("val_fraction", 0.1), cfg.get("seed", 1234),
                                           cfg.get("val_split", "random"))
    else:
        reviews, _ = sdata.load_reviews(data_path, split)
        if not sdata.has_splits(data_path):
            split = "all"  # a CSV or a directory of pos/neg: read whole, not a test (or train) split of it
    # Similar lengths together (a batch is padded to its longest review); progress in chunks of 50 batches.
    order = sorted(range(len(reviews)), key=lambda i: len(reviews[i].text))
    chunk = 50 * batch_size
    parts = [order[i : i + chunk] for i in range(0, len(order), chunk)]
    branches = clf.has_branches
    names = ("probability", "rnn_probability", "ngram_probability") if branches else ("probability",)
    probs = {k: np.zeros(len(reviews), np.float32) for k in names}
    bar = click.progressbar(parts, label="Classifying", file=click.get_text_stream("stderr")) if progress else None
    it = bar.__enter__() if bar else parts
    try:
        for part in it:
            texts = [reviews[i].text for i in part]
            got = clf.branch_probabilities(texts, batch_size) if branches else {
                "probability": clf.probabilities(texts, batch_size)}
            for k in names:
                probs[k][part] = got[k]
    finally:
        if bar:
            bar.__exit__(None, None, None)
    predicted = (probs["probability"] >= 0.5).astype(np.int64)
    truth = np.array([r.label for r in reviews], np.int64)
    tp = int(((predicted == 1) & (truth == 1)).sum())
    tn = int(((predicted == 0) & (truth == 0)).sum())
    fp = int(((predicted == 1) & (truth == 0)).sum())
    fn = int(((predicted == 0) & (truth == 1)).sum())
    result = {
        "accuracy": (tp + tn) / max(1, len(reviews)),
        "reviews": len(reviews),
        "true_positive": tp,
        "false_positive": fp,
        "true_negative": tn,
        "false_negative": fn,
        "split": split,
        "data": data_path,
        "model": clf.model_dir,
    }
    if branches:
        result.update(branch_figures(probs["rnn_probability"], probs["ngram_probability"], truth, split == "val"))
    result["seconds"] = round(time.time() - t0, 1)
    return result


def branch_figures(rnn_probability, ngram_probability, labels, cross_validate: bool) -> dict:
    """Each branch's accuracy and, with ``cross_validate``, the combination's cross-validated accuracy.

    The combiner (:func:`rnn_apps.apps.sentiment.ngrams.fit_combiner`) is fitted on one random half of the
    reviews and scores the other half, then the other way round; the figure is the mean accuracy over
    :data:`rnn_apps.apps.sentiment.ngrams.HALVINGS` halvings
    (:func:`rnn_apps.apps.sentiment.ngrams.mean_cross_validated_accuracy`), what training records, the model
    card shows and docs/sentiment.md reports for validation.
    """
    from rnn_apps.apps.sentiment import ngrams

    out = {"rnn_accuracy": ngrams.accuracy(rnn_probability, labels),
           "ngram_accuracy": ngrams.accuracy(ngram_probability, labels)}
    if cross_validate and len(labels) >= 4:  # two folds of at least two reviews
        z = ngrams.logit(ngram_probability)
        out["combined_accuracy_cross_validated"] = ngrams.mean_cross_validated_accuracy(rnn_probability, z, labels)
        out["halvings"] = ngrams.HALVINGS
    return out
