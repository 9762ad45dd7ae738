"""The sentiment model's SavedModel: raw review text in, P(positive) and a label out.

``models/sentiment/<version>/`` loads with plain ``tf.saved_model.load`` (no rnn_apps, no Keras) and serves
with TensorFlow Serving. Standardisation, vocabulary lookup (the ``TextVectorization`` layer with its
vocabulary) and head/tail truncation all run in the graph, exactly as in training. Signatures (batch-first):

* ``serving_default``: ``{"text": string[B]}`` -> ``{"probability": float32[B]`` (of the positive class),
  ``"label": string[B]}`` (``"positive"`` when probability >= 0.5, else ``"negative"``).
* ``classify``: TF Serving's classify method (``tensorflow/serving/classify``): ``{"inputs": string[B]}``,
  serialized ``tf.Example`` protos with a bytes feature ``text`` (what TF Serving's ``:classify`` REST and
  gRPC APIs feed from ``{"examples": [{"text": "..."}]}``) -> ``{"classes": string[B, 2]`` (``["negative",
  "positive"]``), ``"scores": float32[B, 2]}`` (their probabilities).
* ``words``: ``{"text": string[B]}`` -> ``{"words": int32[B]`` (after standardisation, before truncation),
  ``"known_words": int32[B]}`` (those in the vocabulary).
* ``branches`` (models with an n-gram branch, :mod:`rnn_apps.apps.sentiment.ngrams`): ``{"text": string[B]}``
  -> ``{"probability", "rnn_probability", "ngram_probability": float32[B]}``, the combined answer and what
  each branch says alone.

With an n-gram branch the probability is ``σ(a·logit(p_rnn) + c·z + d)``; its n-gram list is the asset
``assets/ngrams.txt`` (one a line) and its weights the variable ``ngram_weights``.

Every signature refuses, with ``InvalidArgumentError`` and the command's words, what the command refuses
(:mod:`rnn_apps.graph_limits`): more than 256 reviews, a review of more than 2,000,000 characters, an empty
one (only whitespace), text that is not UTF-8. A review without any word (only punctuation) is refused by
the library, the CLI and ``rnn-apps serve`` (with the ``words`` signature), not by the graph.
``assets.extra/sentiment.json`` holds the settings, the vocabulary and the training summary.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from rnn_apps import graph_limits, limits
from rnn_apps.export import inference_view
from rnn_apps.training import best_epoch, read_history
from rnn_apps.apps.sentiment import data as sdata
from rnn_apps.apps.sentiment import ngrams as ngram_lib
from rnn_apps.apps.base import assign_weights, exported_at, read_export, read_meta, save_module
from rnn_apps.apps.sentiment.model import BiLanguageModel, build_from_config, dense_ids, make_vectorizer, ragged_ids

CONFIG_NAME = "sentiment.json"
LABELS = ("negative", "positive")
THRESHOLD = 0.5
CLASSIFY_METHOD = "tensorflow/serving/classify"
FORMAT = "rnn_apps.sentiment/1"
LIMITS = limits.APPS["sentiment"]  # checked in the graph too (rnn_apps.graph_limits), as the command checks them


class SentimentModule(tf.Module):
    """A ``tf.Module`` holding the classifier, its vectorizer and the serving functions."""

    def __init__(self, model, vocabulary, config: dict, lm=None, ngram=None, ngram_vocabulary_file=None):
        super().__init__(name="sentiment_model")
        self.model = inference_view(model)  # without the optimizer a model just trained tracks
        self.vectorizer = make_vectorizer(vocabulary)
        self.model_weights = list(model.weights)  # in model.weights order, for fine-tuning
        self.lm_weights = list(lm.head_weights()) if lm is not None else []
        self.max_len = int(config["max_len"])
        self._labels = tf.constant(list(LABELS))
        self.has_ngram = ngram is not None
        if ngram is not None:
            # Built from a file, the n-gram table travels as a SavedModel asset (not as a graph constant).
            self.ngram_vectorizer = ngram.vectorizer(ngram_vocabulary_file)
            self.ngram_weights = tf.Variable(ngram.weights[:, None], trainable=False, name="ngram_weights")
            self.ngram_bias = tf.Variable(float(ngram.bias), trainable=False, name="ngram_bias")
            self.combiner = tf.Variable(ngram.combiner, trainable=False, name="combiner")

    def _rnn_probability(self, text):
        ids = dense_ids(self.vectorizer, text, self.max_len)
        return tf.reshape(self.model(ids, training=False), [-1])

    def _ngram_logit(self, text):
        x = tf.cast(self.ngram_vectorizer(text), tf.float32)
        return tf.sparse.sparse_dense_matmul(x, self.ngram_weights)[:, 0] + self.ngram_bias

    def _branches(self, text):
        p_rnn = self._rnn_probability(text)
        if not self.has_ngram:
            return p_rnn, p_rnn, None
        z = self._ngram_logit(text)
        q = tf.clip_by_value(p_rnn, ngram_lib.LOGIT_CLIP, 1.0 - ngram_lib.LOGIT_CLIP)
        rnn_logit = tf.math.log(q) - tf.math.log1p(-q)
        c = self.combiner
        return tf.sigmoid(c[0] * rnn_logit + c[1] * z + c[2]), p_rnn, tf.sigmoid(z)

    def _probability(self, text):
        return self._branches(text)[0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def branches(self, text):
        p, p_rnn, p_ngram = self._branches(graph_limits.checked(LIMITS, text=text)["text"])
        return {"probability": p, "rnn_probability": p_rnn, "ngram_probability": p_ngram}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serving_default(self, text):
        p = self._probability(graph_limits.checked(LIMITS, text=text)["text"])
        return {"probability": p, "label": tf.gather(self._labels, tf.cast(p >= THRESHOLD, tf.int32))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        text = tf.io.parse_example(inputs, {"text": tf.io.FixedLenFeature([], tf.string)})["text"]
        # The reviews inside the tf.Example protos are checked, under the input's name (as the server names them).
        p = self._probability(graph_limits.checked(LIMITS, inputs=text)["inputs"])
        scores = tf.stack([1.0 - p, p], axis=1)
        return {"classes": tf.broadcast_to(self._labels[None, :], tf.shape(scores)), "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def words(self, text):
        ids = ragged_ids(self.vectorizer, graph_limits.checked(LIMITS, text=text)["text"], None)
        known = ids.with_flat_values(tf.cast(ids.flat_values > 1, tf.int32))
        return {"words": tf.cast(ids.row_lengths(), tf.int32), "known_words": tf.reduce_sum(known, axis=1)}


def _mark_classify_signature(path: str) -> None:
    """Give the ``classify`` signature TF Serving's classify method name (tf.saved_model.save writes predict)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(path, "saved_model.pb")
    sm = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        sm.ParseFromString(f.read())
    for meta in sm.meta_graphs:
        if "classify" in meta.signature_def:
            meta.signature_def["classify"].method_name = CLASSIFY_METHOD
    with open(pb, "wb") as f:
        f.write(sm.SerializeToString())
    try:  # the fingerprint hashes saved_model.pb: write it again
        from tensorflow.python.saved_model import fingerprinting_utils

        fingerprinting_utils.write_fingerprint(path)
    except Exception:  # pragma: no cover - private API; a stale fingerprint is only informational
        pass


def _inference_copy(model, vocabulary, config: dict, lm=None):
    """The classifier (and its language-model head) rebuilt from ``config`` with the same weights, no optimizer."""
    fresh = build_from_config(len(vocabulary) + 2, config)
    assign_weights(fresh.weights, [w.numpy() for w in model.weights], "The trained classifier")
    fresh_lm = None
    if lm is not None:
        fresh_lm = BiLanguageModel(fresh, num_sampled=config["lm_num_sampled"], seed=config["seed"])
        assign_weights(fresh_lm.head_weights(), [w.numpy() for w in lm.head_weights()], "The language-model head")
    return fresh, fresh_lm


def export_sentiment(model, vocabulary, config: dict, app_dir: str, version: Optional[int] = None, lm=None,
                     summary: Optional[dict] = None, ngram=None) -> str:
    """Export the classifier to ``app_dir/<version>`` atomically; return the version directory.

    Args:
        model: The Keras classifier (ids -> P(positive)).
        vocabulary: Its words (without the padding and unknown entries).
        config: The training settings (``max_len`` and the architecture are needed to rebuild it).
        app_dir: E.g. ``models/sentiment``.
        version: Default: the next version.
        lm: The :class:`~rnn_apps.apps.sentiment.model.BiLanguageModel` of pre-training, whose head is kept
            so that fine-tuning can continue language-model training.
        summary: Extra facts for ``assets.extra/sentiment.json`` (validation accuracy, data, ...).
        ngram: An :class:`~rnn_apps.apps.sentiment.ngrams.NgramBranch` joined to the classifier, or None.
    """
    import tempfile

    if getattr(model, "optimizer", None) is not None:
        # A trained model carries its optimizer (two Adam moments per weight), which a SavedModel of it
        # would save too (three times the size): export a fresh copy with the same weights instead.
        model, lm = _inference_copy(model, vocabulary, config, lm)
    staging = tempfile.mkdtemp(prefix="rnn-apps-ngrams-")
    vocab_file = None
    if ngram is not None:
        vocab_file = os.path.join(staging, ngram_lib.VOCAB_FILE)
        ngram_lib.write_vocabulary(vocab_file, ngram.vocabulary)
    module = SentimentModule(model, vocabulary, config, lm, ngram, vocab_file)
    signatures = {"serving_default": module.serving_default, "classify": module.classify, "words": module.words}
    if ngram is not None:
        signatures["branches"] = module.branches

    meta = {
        "format": FORMAT,
        "config": config,
        "labels": list(LABELS),
        "threshold": THRESHOLD,
        "truncation": {"max_len": int(config["max_len"]), "head": int(config["max_len"] * 0.25)},
        "vocabulary": list(vocabulary),
        "exported": exported_at(),
        "ngram": ngram.meta() if ngram is not None else None,
        **(summary or {}),
    }
    try:
        return save_module(module, signatures, app_dir, version, CONFIG_NAME, meta, after_save=_mark_classify_signature)
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


def export_result(result, app_dir: str, version: Optional[int] = None) -> str:
    """Export what :func:`rnn_apps.apps.sentiment.task.train` returned, with its language-model head, n-gram
    branch and validation figures. With an n-gram branch the model's answer is the combination, so its
    ``val_accuracy`` is the combination's cross-validated one, or, for a combiner not fitted on the validation
    reviews (a fine-tuned model's, kept from its base), the combination's accuracy on them; the recurrent
    classifier's alone is kept as ``rnn_val_accuracy``."""
    ngram = result.get("ngram")
    summary = {"val_accuracy": result.get("val_accuracy"), "lm_val_perplexity": result.get("lm_val_perplexity"),
               "stats": result.get("stats")}
    figures = ngram.figures if ngram is not None else {}
    combined = (figures.get("combined_val_accuracy_cv") if figures.get("combiner_fitted_on_validation", True)
                else figures.get("combined_val_accuracy_in_sample"))
    if combined is not None:
        summary["rnn_val_accuracy"] = summary["val_accuracy"]
        summary["val_accuracy"] = combined
    return export_sentiment(result["model"], result["vocabulary"], result["config"], app_dir, version,
                            lm=result.get("lm"), summary=summary, ngram=ngram)


def load_config(model_dir: str) -> dict:
    """The settings, vocabulary and figures of an exported sentiment model (``assets.extra/sentiment.json``)."""
    return read_meta(model_dir, CONFIG_NAME, "sentiment", FORMAT)


def load_base(model_dir: str) -> dict:
    """Config, vocabulary, weights (``model.weights`` order) and LM-head weights of an exported model."""
    model_dir, meta, loaded, weights = read_export(model_dir, load_config)
    ngram = None
    if meta.get("ngram"):
        info = meta["ngram"]
        ngram = ngram_lib.NgramBranch(
            ngram_lib.read_vocabulary(os.path.join(model_dir, "assets", ngram_lib.VOCAB_FILE)),
            loaded.ngram_weights.numpy()[:, 0], float(loaded.ngram_bias.numpy()), int(info["order"]),
            loaded.combiner.numpy(), info.get("figures", {}), info.get("tokens", "words"),
        )
    return {
        "config": meta["config"],
        "vocabulary": meta["vocabulary"],
        "weights": weights,
        "lm_weights": [v.numpy() for v in getattr(loaded, "lm_weights", [])],
        "ngram": ngram,
        "model_dir": model_dir,
    }


# ------------------------------------------------------------------------------------------ model card

CARD_EXAMPLES = (
    "One of the best films I have seen in years: moving, funny and beautifully acted.",
    "A waste of two hours. The plot makes no sense and the acting is wooden.",
    "I didn't expect much, but it was actually quite good.",
    "Not bad, not great.",
)


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _split_words(cfg: dict, own: Optional[str] = None) -> str:
    """How the validation reviews were chosen, for the card (``own``: the name of the user's own data, whose
    card says nothing of IMDB)."""
    share = f"{cfg['val_fraction']:.0%} of each class of the labelled " + ("reviews" if own else "train split")
    if cfg.get("val_split", "random") == "blocks":
        return (f"{share}, in seeded blocks of up to {sdata.VAL_BLOCK} consecutive reviews"
                + ("" if own else ": aclImdb numbers a film's reviews consecutively, so the validation films are not "
                   "among the training films, as with IMDB's test split"))
    return f"{share}, drawn one by one: reviews of one film fall on both sides, so validation is somewhat optimistic"


def _halvings(figures: dict) -> str:
    """How the combination's validation accuracy was cross-validated (models trained before the mean over
    halvings recorded one halving)."""
    n = figures.get("halvings")
    how = "fitted on one half, scored on the other, both ways"
    return f"{how}; mean of {n} random halvings" if n else f"{how}; one random halving"


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


IMDB_WORDS = "IMDB movie reviews (aclImdb)"


def base_model_record(init_from: str, vocabulary: Optional[list] = None) -> dict:
    """What the card of a fine-tuned model says of the model its fine-tuning started from (``init_from``, as
    the run recorded it).

    Returns:
        ``{"name"}``: the base by its last two path parts (:func:`rnn_apps.cards.base_model_name`:
        ``models/sentiment``, ``sentiment/6``), not the user's whole path; ``"version"``: its version directory's
        name, or None; ``"meta"``: its ``assets.extra/sentiment.json`` ({} when it cannot be read, or when
        ``vocabulary``, the fine-tuned model's, is not the base's: the app directory has gained another version
        since); ``"data"``: the data the base's own card of that version says it was trained on
        (:func:`rnn_apps.cards.recorded_card`: the user's file, else IMDB, whose ``stanfordnlp/imdb`` dataset such
        a card names), else None.
    """
    from rnn_apps import cards
    from rnn_apps.export import resolve_model_dir

    record = {"name": cards.base_model_name(init_from), "version": None, "meta": {}, "data": None}
    try:
        version_dir = resolve_model_dir(init_from)
        meta = load_config(version_dir)
    except Exception:  # the base is gone or unreadable: the card says only what the run recorded
        return record
    if vocabulary is not None and list(meta.get("vocabulary") or []) != list(vocabulary):
        return record  # fine-tuning keeps its base's vocabulary: this is another model
    record.update(version=os.path.basename(os.path.normpath(version_dir)), meta=meta)
    said = cards.recorded_card(version_dir)  # {} unless the card describes this version
    if said.get("data"):
        record["data"] = f"`{said['data']}`"
    elif said:  # a card records data only for the user's own (cards.front_matter): this one names IMDB's dataset
        record["data"] = IMDB_WORDS
    return record


def _pretraining_line(cfg: dict, stats: dict, base: Optional[str], base_cfg: dict, base_data: Optional[str]) -> str:
    """The card's line on language-model pre-training: this run's and, for a model fine-tuned from ``base`` (its
    name; ``base_cfg`` its settings, {} when unreadable; ``base_data`` the data its card names), the base's,
    which the fine-tuning started from."""
    epochs = int(cfg.get("pretrain_epochs") or 0)
    texts, tokens = stats.get("lm_texts"), stats.get("lm_train_tokens")
    this = (f"{epochs} epoch(s)" + (f" on {_n(texts)} reviews" if isinstance(texts, int) else "")
            + (f" ({_n(tokens)} tokens)" if isinstance(tokens, int) else "")
            + f", forward and backward LMs sharing the embedding and encoder, sampled softmax over "
            f"{cfg.get('lm_num_sampled')} words")
    if not base:
        return (f"* Language-model pre-training: {this}; then the classifier started from those weights." if epochs
                else "* Language-model pre-training: none; the classifier started from random weights.")
    before = base_cfg.get("pretrain_epochs")
    inherited = (f"the base model `{base}`'s weights carry its pre-training (its settings cannot be read here)"
                 if before is None else
                 f"{before} epoch(s) in the base model `{base}`" + (f", on {base_data}" if base_data else "")
                 if before else f"none in the base model `{base}`")
    return (f"* Language-model pre-training: {inherited}; "
            + (f"this fine-tuning continued it for {this}, then trained the classifier from those weights." if epochs
               else "none in this fine-tuning."))


def _data_line(name: Optional[str], stats: dict, cfg: dict, own: Optional[str], no_val: bool,
               self_trained: bool) -> str:
    """The card's sentence on the data: the training, validation and unlabelled reviews this run read
    (``self_trained``: whether its own n-gram branch was fitted again with the unlabelled ones)."""
    text = f"Training data: `{name}`." if name else "Training data: not recorded."
    train_n, val_n = stats.get("train_reviews"), stats.get("val_reviews")
    if not isinstance(train_n, int):
        return text
    if no_val:
        fraction = cfg.get("val_fraction") or 0
        why = ("--val-fraction 0" if not fraction else
               f"{fraction:.0%} of each class of {_n(stats.get('labelled_reviews', train_n))} labelled reviews rounds "
               "to none")
        text += f" {_n(train_n)} reviews for training and none for validation ({why})"
    else:
        text += (f" {_n(train_n)} reviews for training and "
                 + (f"{_n(val_n)} for validation ({_split_words(cfg, own)})" if isinstance(val_n, int) else
                    "some for validation (how many was not recorded)"))
    unlabelled = stats.get("unlabelled_reviews") or 0
    uses = [use for use, on in (("language-model pre-training", cfg.get("pretrain_epochs")),
                                ("the n-gram branch's self-training", self_trained)) if on]
    if unlabelled:
        text += f"; {_n(unlabelled)} unlabelled reviews for {' and '.join(uses) or 'nothing this run used'}."
    else:
        text += "; no unlabelled reviews" + ("; pre-training read the training reviews' text alone" if uses else "") + "."
    if no_val:
        text += (" With no validation reviews, no figure on this card was measured on reviews the model did not "
                 "train on, and no epoch was chosen by one.")
    return text


def _pct(figures: dict, key: str) -> Optional[str]:
    return f"{100 * figures[key]:.2f} %" if isinstance(figures.get(key), (int, float)) else None


def _validation_table(figures: dict, fitted: bool, combiner_words: str) -> list:
    """The card's table of validation accuracy (each branch, and the model's answer), the rows it has figures
    for; ``fitted``: whether the combiner was fitted on these validation reviews."""
    rows = [("recurrent classifier alone", _pct(figures, "rnn_val_accuracy")),
            ("n-gram branch alone", _pct(figures, "ngram_val_accuracy"))]
    if fitted:
        cv = _pct(figures, "combined_val_accuracy_cv")
        rows += [(f"**both (this model)**, combiner cross-validated ({_halvings(figures)})", cv and f"**{cv}**"),
                 ("both, combiner fitted on all validation reviews (optimistic)",
                  _pct(figures, "combined_val_accuracy_in_sample"))]
    else:  # the combiner was not fitted on these reviews: the model's own answer, measured fairly
        both = _pct(figures, "combined_val_accuracy_in_sample")
        rows.append((f"**both (this model)**, {combiner_words}", both and f"**{both}**"))
    rows = [(name, value) for name, value in rows if value is not None]
    return ["| model | validation accuracy |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)] \
        if rows else []


def write_model_card(app_dir: str, version_dir: str, run_dir: Optional[str] = None, evaluation: Optional[dict] = None,
                     notes: Optional[str] = None) -> str:
    """Write ``<app_dir>/README.md`` for the exported version (settings, data, history, size, examples).

    ``notes``: Markdown of your own (how the version was trained, comparisons), put under "How this version
    was trained" before the examples.

    A model whose run trained on data of the user's own (:func:`rnn_apps.cards.own_data`) is described as
    trained on that file, not on IMDB, and its card records the file's name in its front matter, which
    :func:`rnn_apps.cards.write_card` keeps (and completes) when it adds the rest of the card.
    """
    from rnn_apps import cards
    from rnn_apps.apps.sentiment.task import MIN_COMBINER_REVIEWS

    meta = load_config(version_dir)
    cfg = meta["config"]
    run = {}
    history, lm_history = [], []
    if run_dir and os.path.exists(os.path.join(run_dir, "config.json")):
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            run = json.load(f)
        history = read_history(run_dir)
        lm_history = read_history(os.path.join(run_dir, "lm"))
    stats = run.get("stats") or meta.get("stats") or {}
    loaded = tf.saved_model.load(version_dir)
    n_params = int(sum(np.prod(v.shape) for v in loaded.model_weights if v.dtype.is_floating))
    n_ngram = (sum(int(np.prod(getattr(loaded, k).shape)) for k in ("ngram_weights", "ngram_bias", "combiner"))
               if hasattr(loaded, "ngram_weights") else 0)
    n_head = int(sum(np.prod(v.shape) for v in getattr(loaded, "lm_weights", [])))
    out = loaded.signatures["serving_default"](text=tf.constant(list(CARD_EXAMPLES)))
    size = _dir_size(version_dir)
    version = os.path.basename(version_dir.rstrip("/"))
    own = cards.own_data(run.get("data"))  # the user's own reviews: no word of IMDB
    data = run.get("data", meta.get("data"))
    data = data if isinstance(data, str) else None
    base = run.get("init_from")
    # the model a fine-tuning started from, by its app directory and version (not the user's whole path)
    origin = base_model_record(base, meta["vocabulary"]) if base else None
    start = origin["name"] if base else ""
    base_cfg = (origin or {}).get("meta", {}).get("config") or {}
    # what the base model's card says of it: its version (when its path names the app directory) and its data
    of_base = "".join(([f", version {origin['version']}"] if origin and origin["version"] and
                       os.path.basename(start) != origin["version"] else [])
                      + ([f", which was trained on {origin['data']}"] if origin and origin["data"] else []))
    trained = f"{'Fine-tuned' if base else 'Trained'} on `{own}`" + (
        f", starting from the weights of `{start}`{of_base}." if base else ".")
    val_n = stats.get("val_reviews")
    no_val = val_n == 0 or (val_n is None and bool(history) and not any("val_loss" in row for row in history))
    lines = [
        f"# Sentiment model ({'fine-tuned' if base else 'trained'} on `{own}`)" if own else
        "# Sentiment model (IMDB movie reviews)",
        "",
        f"Version {version}, exported {meta.get('exported', '?')}. Written by `rnn_apps.apps.sentiment.export.write_model_card`.",
        "",
        "## What it does",
        "",
        *(["Reads an English text (raw text, such as a review) and gives the probability that it is positive, and "
           "the label", f"`positive` (probability >= 0.5) or `negative`. {trained}"] if own else
          ["Reads an English movie review (raw text) and gives the probability that it is positive, and the label",
           "`positive` (probability >= 0.5) or `negative`. Trained on the Large Movie Review Dataset (Maas et al., 2011)."]),
        "",
        "```sh",
        'rnn-apps classify "One of the best films of the year."',
        "```",
        "",
        "## Model",
        "",
        f"* Words: lowercased, punctuation dropped (in-word apostrophes kept), vocabulary of {len(meta['vocabulary']) + 2:,}"
        " entries (padding and unknown word included) "
        + (f"of the base model `{start}`, kept as it was: fine-tuning adds no word." if base else
           "adapted on the training text."),
        f"* Reviews longer than {cfg['max_len']} words: the first {int(cfg['max_len'] * 0.25)} and the last "
        f"{cfg['max_len'] - int(cfg['max_len'] * 0.25)} words are read.",
        f"* Embedding {cfg['embedding_dim']} -> {cfg['num_layers']} bidirectional `{cfg['cell']}` layer(s) of {cfg['units']} "
        "units a direction (`rnn_apps.layers.DeepBidirectionalRNN`) -> max and mean pooling over the words -> sigmoid.",
        f"* {n_params:,} weights in the recurrent classifier"
        + (f", {n_ngram:,} in the n-gram model and the combination of the two" if n_ngram else "")
        + (f", {n_head:,} in the language model's output layer (kept for fine-tuning)" if n_head else "")
        + f"; {size / 1e6:.1f} MB on disk (SavedModel with its vocabulary).",
        _pretraining_line(cfg, stats, base and start, base_cfg, origin and origin["data"]),
        f"* {'Fine-tuning' if base else 'Classifier'}: batch {cfg['batch_size']}, Adam {cfg['learning_rate']} (5% warm-up, "
        f"cosine decay), dropout {cfg['dropout']}, word dropout {cfg['word_dropout']}, seed {cfg['seed']}"
        + (f"; {_n(sum(1 for _ in history))} epoch(s) on the training reviews of `{own}`." if base and own and history
           else "."),
    ]
    if cfg.get("keep_best") and no_val:
        lines.append("* Kept: the last epoch's weights. There were no validation reviews to choose an epoch by (see "
                     "below).")
    elif cfg.get("keep_best"):
        best = best_epoch(history, "val_loss")
        lines.append("* Kept: the weights of the epoch with the lowest validation loss"
                     + (f" (epoch {best[0]} of {len(history)})" if best else "")
                     + (f"; training stops after {cfg['patience']} epoch(s) without a lower one" if cfg.get("patience") else "")
                     + ". Validation chose the epoch, so the validation figures below flatter the model slightly.")
    decay = float(cfg.get("layer_lr_decay", 1.0))
    if decay > 1.0:
        lines.append(f"* Discriminative fine-tuning (ULMFiT, Howard & Ruder 2018): each layer below the head learns at "
                     f"1/{decay:g} of the rate of the layer above (head {cfg['learning_rate']:g}, top recurrent layer "
                     f"{cfg['learning_rate'] / decay:.3g}, embedding {cfg['learning_rate'] / decay ** (cfg['num_layers'] + 1):.3g}).")
    eps = float(cfg.get("adversarial") or 0.0)
    if eps > 0:
        lines.append(f"* Adversarial training (Miyato, Dai & Goodfellow 2017): each step also trained on the word "
                     f"embeddings moved ε = {eps:g} embedding standard deviations in the direction of the loss's gradient.")
    ngram = meta.get("ngram")
    figures = (ngram or {}).get("figures") or {}
    st = figures.get("self_training") or {}
    # A fine-tuned model keeps its base model's branch (task._fit_ngram_branch), a base without one gets one
    # fitted on the fine-tuning reviews; a base that cannot be read any more is taken to have had one.
    inherited = bool(ngram) and bool(base) and (not origin["meta"] or bool(origin["meta"].get("ngram")))
    # models exported before the record said so had their combiner fitted on validation
    fitted = bool(figures.get("combiner_fitted_on_validation", not no_val))
    base_words = f"the base model `{start}`"
    combiner_words = (f"the combiner of {base_words}, not fitted on these reviews" if inherited and not fitted else
                      "the two branches' logits added (1, 1, 0), no combiner fitted" if not fitted else "")
    if ngram:
        c = ngram["combiner"]
        branch_data = ("its training data" + (f", {origin['data']}" if origin["data"] else "")) if inherited \
            else "the training reviews"
        lines += [
            "* N-gram branch (`rnn_apps.apps.sentiment.ngrams`)"
            + (f", {base_words}'s, kept as it was (fine-tuning does not refit it)" if inherited else "")
            + f": which of the {ngram['features'] - 1:,} most frequent "
            f"n-grams (1 to {ngram['order']} tokens) of "
            + ("words and punctuation marks, each mark a token of its own,"
               if ngram.get("tokens", "words") == "punctuation" else "words")
            + " a review contains, NB-weighted logistic regression (Wang & Manning, "
            f"2012) fitted on {branch_data}"
            + (f", then fitted again with {st['unlabelled_reviews']:,} unlabelled reviews that its first fit had labelled, "
               f"each counting {st['weight']:g} of a labelled one (self-training)" if st.get("unlabelled_reviews") else "")
            + "; the n-gram list is the asset `assets/ngrams.txt`.",
            f"* The answer: P(positive) = σ({c[0]:.3f}·logit(p_rnn) + {c[1]:.3f}·z_ngram {'-' if c[2] < 0 else '+'} "
            f"{abs(c[2]):.3f}), "
            + (f"the three numbers fitted on the {_n(figures.get('val_reviews', val_n))} validation reviews "
               + ("of this fine-tuning (which its recurrent classifier did not train on)" if inherited else
                  "(which neither branch trained on)") if fitted else
               f"the three numbers of {base_words}'s combiner, kept: " if inherited else
               "the two branches' logits added, with no combiner fitted: ")
            + ("" if fitted else
               "there were no validation reviews to fit one on" if no_val else
               f"{_n(figures.get('val_reviews', val_n))} validation reviews are fewer than the "
               f"{MIN_COMBINER_REVIEWS} a combiner is fitted on")
            + "; the `branches` signature gives each branch's own answer.",
        ]
    lines += [
        "",
        "## Data and results",
        "",
        # a shipped corpus by its file's name, not by its path on the machine that trained
        _data_line(own or (data and cards.data_name(data)), stats, cfg, own, no_val,
                   bool(st.get("unlabelled_reviews")) and not inherited),
        "",
    ]
    if lm_history:
        lines += ["| LM epoch | step | val perplexity | seconds |", "| --- | --- | --- | --- |"]
        for row in lm_history:
            ppl = f"{np.exp(row['val_loss']):.1f}" if isinstance(row.get("val_loss"), (int, float)) else "—"
            lines.append(f"| {row['epoch']} | {row['step']} | {ppl} | {row.get('seconds', '')} |")
        lines.append("")
    if history:
        # the columns the rows have figures for: a run without validation reviews logged none
        columns = [(k, name) for k, name in (("loss", "loss"), ("val_loss", "val loss"), ("val_accuracy", "val accuracy"))
                   if any(isinstance(row.get(k), (int, float)) for row in history)]
        lines += ["| epoch | step | " + "".join(f"{name} | " for _, name in columns) + "seconds |",
                  "| --- | --- | " + "--- | " * len(columns) + "--- |"]
        for row in history:
            lines.append(f"| {row['epoch']} | {row['step']} | "
                         + "".join((f"{row[k]:.4f}" if isinstance(row.get(k), (int, float)) else "—") + " | "
                                   for k, _ in columns) + f"{row.get('seconds', '')} |")
        lines.append("")
    table = _validation_table(figures, fitted, combiner_words) if ngram and not no_val else []
    if table:
        lines += [f"Validation accuracy over the {_n(figures.get('val_reviews', val_n))} validation reviews:", "",
                  *table, ""]
        if inherited:
            lines += [f"The n-gram branch was fitted on the training data of {base_words}: reviews that are among "
                      "those as well as among these validation reviews flatter its figures.", ""]
    if evaluation:
        lines += [f"Evaluation on `{evaluation.get('data')}` ({evaluation.get('split')} split, "
                  f"{evaluation.get('reviews')} reviews): accuracy **{evaluation['accuracy']:.4f}**.", ""]
    elif own:
        lines += ["Accuracy on reviews the model has not seen: measure it with",
                  "`rnn-apps evaluate sentiment --data REVIEWS.csv --model MODEL_DIR`.", ""]
    else:
        lines += ["Test accuracy: the IMDB test split is held back from development; measure it with",
                  "`rnn-apps evaluate sentiment --data aclImdb_v1.tar.gz --split test`.", ""]
    if notes and notes.strip():
        lines += ["## How this version was trained", "", notes.strip(), ""]
    lines += ["## Examples", "", "| review | label | P(positive) |", "| --- | --- | --- |"]
    for text, label, p in zip(CARD_EXAMPLES, out["label"].numpy(), out["probability"].numpy()):
        lines.append(f"| {text} | {label.decode()} | {p:.3f} |")
    lines += [
        "",
        "## Limits",
        "",
        (f"English text like that of `{own}` only" if own else "English movie reviews only")
        + "; other text gets an answer, but not a meaningful one. Words outside the",
        "vocabulary count as one unknown word. Sarcasm, mixed reviews and very short texts are often wrong.",
        "",
    ]
    path = os.path.join(app_dir, "README.md")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)
    return path


def export_again(from_model: str, app_dir: str, version: Optional[int] = None) -> str:
    """Export the weights of the exported model ``from_model`` again, with this version's graph (e.g. to gain
    the input limits checked in the graph), to ``app_dir/<version>``; its settings and figures are kept.
    Returns the version directory."""
    base = load_base(from_model)
    meta = load_config(base["model_dir"])
    cfg, vocabulary = base["config"], base["vocabulary"]
    model = build_from_config(len(vocabulary) + 2, cfg)
    assign_weights(model.weights, base["weights"], base["model_dir"])
    lm = None
    if base["lm_weights"]:
        lm = BiLanguageModel(model, num_sampled=cfg["lm_num_sampled"], seed=cfg["seed"])
        assign_weights(lm.head_weights(), base["lm_weights"], base["model_dir"])
    written = ("format", "config", "labels", "threshold", "truncation", "vocabulary", "exported", "ngram")
    summary = {k: v for k, v in meta.items() if k not in written}
    return export_sentiment(model, vocabulary, cfg, app_dir, version, lm=lm, summary=summary, ngram=base["ngram"])
