"""Sentiment tasks: train (with optional language-model pre-training) and fine-tune the classifier.

A run directory holds ``config.json`` (settings, data, corpus statistics), ``vocab.json``, the classifier's
``checkpoints/``, ``history.jsonl``, ``best.weights.h5`` (the epoch with the lowest validation loss so far,
with ``keep_best``) and ``final.weights.h5`` (that best epoch's weights, else the last epoch's), and with
pre-training ``lm/`` (the language model's checkpoints, history and ``head.npz``). Both phases train through
:func:`rnn_apps.training.fit_resumable`, so ``resume=True`` continues either phase where it stopped; keeping
the best epoch and stopping early (``patience``) read the run's history, so they survive a resume too.

Pre-training (``pretrain_epochs > 0``, ULMFiT-style): the classifier's embedding and encoder are first
trained as forward and backward language models (:class:`~rnn_apps.apps.sentiment.model.BiLanguageModel`)
on the text of the training reviews and of the unlabelled ones (aclImdb ``train/unsup``; the validation
reviews are left out), with a sampled softmax. The classifier then starts from those weights, and all its
layers train together with one learning rate, warmed up over the first 5% of the steps and decayed along a
cosine. With ``layer_lr_decay`` d > 1 the rates are discriminative (ULMFiT, Howard & Ruder 2018): the
classifier head trains at the learning rate, the top recurrent layer at 1/d of it, each layer below at 1/d of
the one above, the embedding at 1/d of the lowest layer (:class:`rnn_apps.optimizers.DiscriminativeAdam`).
With ``adversarial`` ε > 0 each step also trains on adversarially perturbed word embeddings (Miyato et al.
2017; :class:`~rnn_apps.apps.sentiment.model.ReviewClassifier`), at about twice the cost of a step.
Fine-tuning a shipped model runs the same machinery from its weights and vocabulary.

N-gram branch (``ngram_features > 0``, :mod:`rnn_apps.apps.sentiment.ngrams`): after the classifier, an
NB-weighted logistic regression over word n-grams is fitted on the training reviews, and a combiner of the
two answers on the validation reviews; both are saved in ``<run_dir>/ngram/`` and exported with the model.
A fine-tuned model keeps its base model's branch and refits only the combiner (when it has at least
``MIN_COMBINER_REVIEWS`` validation reviews).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Optional

import numpy as np

from rnn_apps.apps import base as contract
from rnn_apps.apps.base import CONFIG_FILE, FINAL_WEIGHTS, RunOptions, TrainResult
from rnn_apps.apps.sentiment import data as sdata
from rnn_apps.checks import check_settings

VOCAB_FILE = "vocab.json"
LM_DIR = "lm"
LM_HEAD_FILE = "head.npz"

DEFAULTS = dict(
    # the classifier: vocabulary, network, regularisation
    max_tokens=20000, embedding_dim=256, units=256, num_layers=1, cell="lstm",
    dropout=0.4, word_dropout=0.1, recurrent_dropout=0.0, max_len=400,
    # its training
    batch_size=64, full_batches=True, learning_rate=1e-3, clipnorm=1.0, layer_lr_decay=1.0, adversarial=0.0,
    val_fraction=0.1, val_split="blocks", keep_best=True, patience=0, seed=1234,
    # language-model pre-training
    pretrain_epochs=0, pretrain_learning_rate=2e-3, lm_seq_len=200, lm_tokens_per_batch=12800, lm_num_sampled=1024,
    lm_val_fraction=0.01,
    # the n-gram branch
    ngram_features=200_000, ngram_order=2, ngram_l2=1e-5, ngram_tokens="punctuation", ngram_self_training=0.5,
)
ARCHITECTURE = ("max_tokens", "embedding_dim", "units", "num_layers", "cell", "max_len")
# Settings of the n-gram branch, fitted after the classifier: a resumed run takes them from the command line,
# so a finished run can get (or refit) its branch. A run saved before the branch existed had none.
NGRAM_SETTINGS = {"ngram_features": 0, "ngram_order": 2, "ngram_l2": 1e-5, "ngram_tokens": "words",
                  "ngram_self_training": 0.0}
# Settings added after runs were saved: an older run resumes with these values (its old behaviour).
ADDED_SETTINGS = {**NGRAM_SETTINGS, "full_batches": False, "layer_lr_decay": 1.0, "adversarial": 0.0, "val_split": "random",
                  "keep_best": False, "patience": 0}
NGRAM_DIR = "ngram"
MIN_COMBINER_REVIEWS = 200


def layer_lr_multipliers(num_layers: int, decay: float) -> dict:
    """Learning-rate multipliers per layer of the classifier, ULMFiT's ``η^{l-1} = η^l / decay``.

    The head (``classifier``) keeps the learning rate; recurrent layer ``k`` of ``L`` (``encoder/bidirectional_k``)
    gets ``decay^-(L-k)`` and the embedding ``decay^-(L+1)``. ``decay`` 1 gives ``{}`` (one learning rate).
    """
    if not isinstance(decay, (int, float)) or not decay >= 1.0 or decay == float("inf"):
        raise ValueError(f"layer_lr_decay must be a finite number >= 1 (1: one learning rate); received {decay!r}.")
    if decay == 1.0:
        return {}
    rates = {"embedding": float(decay) ** -(num_layers + 1)}
    rates.update({f"encoder/bidirectional_{k}": float(decay) ** -(num_layers - k) for k in range(num_layers)})
    return rates


def _check_settings(cfg: dict) -> None:
    """Refuse a bad ``layer_lr_decay``, ``adversarial``, ``val_split``, ``patience`` (also one with ``keep_best``
    off), ``ngram_tokens`` or ``ngram_self_training`` before any work (a one-line error on the CLI)."""
    from rnn_apps.apps.sentiment.model import check_adversarial_epsilon
    from rnn_apps.training import TrainingError, check_patience

    for check, key, option in ((lambda v: layer_lr_multipliers(1, v), "layer_lr_decay", "--layer-lr-decay"),
                               (check_adversarial_epsilon, "adversarial", "--adversarial")):
        try:
            check(cfg.get(key, ADDED_SETTINGS[key]))
        except ValueError as e:
            raise TrainingError(f"{e} ({option})") from None
    try:
        sdata.check_val_split(cfg.get("val_split", ADDED_SETTINGS["val_split"]))
    except sdata.SentimentDataError as e:
        raise TrainingError(f"{str(e).rstrip('.')} (--val-split).") from None
    # --patience with --keep-last: refused here, before the run directory holds anything (fit_resumable would
    # refuse it only after the data, the vocabulary and the pre-training); a check of the options given alone
    # leaves out keep_best when it was not given (its default keeps the best epoch)
    check_patience(cfg.get("patience", ADDED_SETTINGS["patience"]), cfg.get("keep_best", True))
    from rnn_apps.apps.sentiment.ngrams import check_tokens, check_unlabelled_weight

    for check, key, option in ((check_tokens, "ngram_tokens", "--ngram-tokens"),
                               (check_unlabelled_weight, "ngram_self_training", "--ngram-self-training")):
        try:
            check(cfg.get(key, ADDED_SETTINGS[key]))
        except ValueError as e:
            raise TrainingError(f"{str(e).rstrip('.')} ({option}).") from None


def _check_more_pretraining(run_dir: str, record: dict, settings: dict) -> None:
    """A resumed run may pre-train its language model for more epochs than it was started with, as long as
    its classifier phase has not begun (the classifier starts from the language model's final weights).

    ``record``: the run's saved config; ``settings``: the resumed run's (``run_settings`` checks them before it
    writes into the run directory). The learning-rate schedule then spans the new total, so the rate at the
    current step changes.
    """
    from rnn_apps.training import CheckpointManager, TrainingError, read_history

    saved, wanted = int(record["settings"].get("pretrain_epochs", 0)), int(settings["pretrain_epochs"])

    if wanted == saved:
        return
    done = len(read_history(os.path.join(run_dir, LM_DIR)))
    if saved == 0:
        raise TrainingError(f"{run_dir} was started without language-model pre-training (its vocabulary comes from "
                            "the labelled reviews only); start a new --run-dir to pre-train.")
    if wanted < max(done, 1):
        raise TrainingError(f"{run_dir} has already pre-trained its language model for {done} of {saved} epoch(s); "
                            f"--pretrain-epochs may grow on --resume, not fall to {wanted}.")
    if CheckpointManager(run_dir).latest() is not None:
        raise TrainingError(f"{run_dir} has begun training its classifier on the {saved}-epoch language model, so "
                            "--pretrain-epochs can no longer change. Copy its config.json, vocab.json and lm/ into a new "
                            f"run directory and resume that one with --pretrain-epochs {wanted}.")


def compile_classifier(model, learning_rate: float, clipnorm: float, total_steps: int, layer_lr_decay: float = 1.0):
    """Adam with a 5% linear warm-up then a cosine decay to 5%; binary cross-entropy; accuracy.

    ``layer_lr_decay`` > 1: lower layers learn more slowly (:func:`layer_lr_multipliers`).
    """
    import keras

    from rnn_apps.optimizers import DiscriminativeAdam

    warmup = max(1, int(0.05 * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total_steps - warmup), alpha=0.05, warmup_target=learning_rate, warmup_steps=warmup
    )
    num_layers = len(model.get_layer("encoder").bidirectional_layers)
    model.compile(
        optimizer=DiscriminativeAdam(schedule, clipnorm=clipnorm,
                                     lr_multipliers=layer_lr_multipliers(num_layers, layer_lr_decay)),
        loss=keras.losses.BinaryCrossentropy(),
        weighted_metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model


def compile_language_model(lm, learning_rate: float, clipnorm: float, total_steps: int):
    """Adam with a cosine decay (:func:`rnn_apps.apps.base.compile_model`); the loss is the model's own
    (sampled softmax in training)."""
    return contract.compile_model(lm, learning_rate, clipnorm, total_steps)


def _dataset(make_batches, spec, plan, start_step: int, epochs: Optional[int]):
    from rnn_apps.datasets import generator_dataset

    total = None if epochs is None else plan.steps_per_epoch * epochs - start_step
    return generator_dataset(make_batches, spec, total)


def classifier_dataset(plan, seqs, labels, start_step: int = 0, epochs: Optional[int] = None):
    import tensorflow as tf

    spec = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, 1), tf.float32),
            tf.TensorSpec((None,), tf.float32))
    return _dataset(lambda: sdata.classifier_batches(plan, seqs, labels, start_step, epochs), spec, plan, start_step,
                    epochs)


def lm_dataset(plan, seqs, start_step: int = 0, epochs: Optional[int] = None):
    import tensorflow as tf

    spec = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None, 2), tf.int32),
            tf.TensorSpec((None, None, 2), tf.float32))
    return _dataset(lambda: sdata.lm_batches(plan, seqs, start_step, epochs), spec, plan, start_step, epochs)


def train(data_path: str, run_dir: str, epochs: int = 4, *, init_from: Optional[str] = None, **options) -> TrainResult:
    """Train the sentiment classifier (after ``pretrain_epochs`` of LM pre-training) on labelled reviews.

    Args:
        data_path: An aclImdb directory or tar(.gz) (its train split; ``train/unsup`` feeds pre-training),
            ``tfds:imdb_reviews``, or a CSV/TSV of (text, label); see :func:`rnn_apps.apps.sentiment.data.load_reviews`.
        run_dir: Where the run's config, vocabulary, checkpoints and logs live.
        epochs: Total classifier epochs.
        init_from: An exported model (fine-tuning): its vocabulary, architecture and weights (and its
            language-model head, for pre-training) start the run.
        **options: The run's :class:`~rnn_apps.apps.base.RunOptions` (``resume``: continue the run in
            ``run_dir``, its saved settings and vocabulary winning; ``callbacks`` serve both phases) and any of
            :data:`DEFAULTS`.

    Returns:
        A summary dict: step, history, val_accuracy (of the kept epoch), lm_val_perplexity, stats, seconds,
        with ``keep_best`` also best_epoch and stopped_early, and the trained ``model``, ``lm`` (or None),
        ``vocabulary`` and ``config``.
    """
    import tensorflow as tf

    from rnn_apps import training
    from rnn_apps.apps.sentiment import model as smodel

    run, overrides = RunOptions.split(options, save_every=200)
    check_settings(overrides)  # sizes and rates, before the run directory is written
    _check_settings({k: v for k, v in overrides.items() if v is not None})  # before the run dir is made
    vocab_path = os.path.join(run_dir, VOCAB_FILE)
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, run.resume and os.path.exists(vocab_path), CONFIG_FILE,
                                       resumable=(*NGRAM_SETTINGS, "pretrain_epochs"), app="sentiment",
                                       data=data_path if sdata.is_tfds(data_path) else os.path.abspath(data_path),
                                       resume_asked=run.resume, stages=(LM_DIR,),
                                       check=lambda saved, settings: _check_more_pretraining(run_dir, saved, settings))
    _check_settings(cfg)  # and a saved run's own
    vocabulary = None
    if saved is not None:
        with open(vocab_path, encoding="utf-8") as f:
            vocabulary = json.load(f)["words"]
        for k, v in ADDED_SETTINGS.items():  # a run saved before these settings existed had none
            cfg.setdefault(k, v)
    base = None
    if init_from is not None:
        from rnn_apps.apps.sentiment.export import load_base

        base = load_base(init_from)
        for k in ARCHITECTURE:
            cfg[k] = base["config"][k]
        if vocabulary is None:
            vocabulary = base["vocabulary"]
    training.set_seed(cfg["seed"])
    t0 = time.time()
    pretrain = int(cfg["pretrain_epochs"]) > 0
    self_training = (int(cfg.get("ngram_features") or 0) > 0 and float(cfg["ngram_self_training"]) > 0
                     and (base is None or base.get("ngram") is None))
    try:
        labelled, unlabelled = sdata.load_reviews(data_path, "train", unsup=pretrain or self_training)
        # One label trains a classifier that answers it whatever the text (and fine-tuning on one unlearns the
        # other): refused here, before the run directory holds anything.
        sdata.check_both_labels(labelled, data_path)
        train_r, val_r = sdata.split_train_val(labelled, cfg["val_fraction"], cfg["seed"], cfg["val_split"])
        if not train_r:
            raise sdata.SentimentDataError(f"{data_path}: no reviews left for training after the validation split "
                                           f"(--val-fraction {cfg['val_fraction']}); lower it or give more reviews.")
        # the split may hold out the only reviews of a label
        sdata.check_both_labels(train_r, data_path,
                                f"after the validation split (--val-fraction {cfg['val_fraction']}) the training "
                                "reviews", "Lower --val-fraction or add reviews of each label.")
    except sdata.SentimentDataError:
        training.discard_new_run(run_dir)
        raise
    if run.verbose:
        print(f"Reviews: {len(train_r)} for training, {len(val_r)} for validation, {len(unlabelled)} unlabelled "
              f"({time.time() - t0:.0f} s).")
    train_texts = [r.text for r in train_r]
    lm_texts = train_texts + [r.text for r in unlabelled] if pretrain else []
    if vocabulary is None:
        t1 = time.time()
        vectorizer = smodel.make_vectorizer(max_tokens=cfg["max_tokens"])
        vectorizer.adapt(tf.data.Dataset.from_tensor_slices(lm_texts or train_texts).batch(1024))
        vocabulary = smodel.vocabulary_words(vectorizer)
        if run.verbose:
            print(f"Vocabulary: {len(vocabulary) + 2} entries ({time.time() - t1:.0f} s).")
    vectorizer = smodel.make_vectorizer(vocabulary)
    vocab_size = len(vocabulary) + 2
    tr_ids = smodel.encode_texts(vectorizer, train_texts, cfg["max_len"])
    va_ids = smodel.encode_texts(vectorizer, [r.text for r in val_r], cfg["max_len"])
    tr_labels = [r.label for r in train_r]
    va_labels = [r.label for r in val_r]
    stats = {
        "labelled_reviews": len(labelled),
        "train_reviews": len(train_r),
        "val_reviews": len(val_r),
        "unlabelled_reviews": len(unlabelled),
        "train_positive": int(sum(tr_labels)),
        "vocab_size": vocab_size,
        "train_tokens": int(sum(len(s) for s in tr_ids)),
        "reviews_at_max_len": int(sum(len(s) >= cfg["max_len"] for s in tr_ids)),
    }
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump({"words": vocabulary}, f, ensure_ascii=False)

    def write_config():
        contract.write_run_config(run_dir, {
            "settings": cfg, "data": data_path if sdata.is_tfds(data_path) else os.path.abspath(data_path),
            "init_from": init_from, "stats": stats}, CONFIG_FILE, app="sentiment", saved=saved)

    write_config()

    strat = training.get_strategy(run.strategy)
    replicas = strat.num_replicas_in_sync
    with strat.scope():
        model = smodel.build_from_config(vocab_size, cfg)
        if base is not None:
            contract.assign_weights(model.weights, base["weights"], f"the base model {init_from}")

    lm, lm_result = None, None
    if pretrain:
        lm_result, lm = _pretrain(model, vectorizer, lm_texts, cfg, os.path.join(run_dir, LM_DIR), strat, run, base,
                                  stats)
        write_config()  # with the language model's statistics

    # full_batches: a few hundred reviews in buckets 16 words wide made batches of ~8 reviews, not batch_size
    min_rows = cfg["batch_size"] if cfg["full_batches"] else 0
    plan = sdata.BucketBatches([len(s) for s in tr_ids], cfg["batch_size"], seed=cfg["seed"], multiple=replicas,
                               min_rows=min_rows)
    val_plan = (sdata.BucketBatches([len(s) for s in va_ids], cfg["batch_size"], multiple=replicas, shuffle=False,
                                    min_rows=min_rows)
                if va_ids else None)
    with strat.scope():
        compile_classifier(model, cfg["learning_rate"], cfg["clipnorm"], plan.steps_per_epoch * epochs,
                           cfg["layer_lr_decay"])
    if run.verbose:
        print(f"Classifier: {model.count_params():,} weights, {plan.steps_per_epoch} steps an epoch "
              f"(about {len(tr_ids) / plan.steps_per_epoch:.0f} reviews a batch).")
    result = contract.fit_run(
        model, lambda start: classifier_dataset(plan, tr_ids, tr_labels, start, None), plan.steps_per_epoch, epochs,
        run_dir, run, strategy=strat, final=FINAL_WEIGHTS, app="sentiment",
        validation_data=classifier_dataset(val_plan, va_ids, va_labels, 0, 1) if val_plan else None,
        keep_best="val_loss" if cfg["keep_best"] else None, patience=int(cfg["patience"]),
    )
    ngram = None
    if training.is_chief(strat):
        if int(cfg.get("ngram_features") or 0) > 0 or (base is not None and base.get("ngram") is not None):
            ngram = _fit_ngram_branch(model, cfg, train_texts, tr_labels, [r.text for r in val_r], va_ids, va_labels,
                                      base.get("ngram") if base is not None else None, run.verbose,
                                      [r.text for r in unlabelled] if self_training else [])
            ngram.save(os.path.join(run_dir, NGRAM_DIR))
    lm_loss = training.last_metric(lm_result["history"], "val_loss") if lm_result else None
    best = result.get("best_epoch")
    kept = [r for r in result["history"] if r.get("epoch") == best] if best else result["history"]
    result.update({
        "val_accuracy": training.last_metric(kept, "val_accuracy"),
        "lm_val_perplexity": math.exp(lm_loss) if lm_loss is not None else None,
        "stats": stats,
        "seconds": round(time.time() - t0, 1),
        "model": model,
        "lm": lm,
        "vocabulary": vocabulary,
        "config": cfg,
        "ngram": ngram,
    })
    if ngram is not None:
        result["ngram_figures"] = ngram.figures
    return result


def predict_ids(model, seqs, batch_size: int = 64) -> np.ndarray:
    """The classifier's P(positive) of id sequences (padded per batch of similar lengths; input order kept)."""
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.zeros(len(seqs), np.float32)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        width = max(1, max(len(seqs[j]) for j in idx))
        x = np.zeros((len(idx), width), np.int32)
        for row, j in enumerate(idx):
            x[row, :len(seqs[j])] = seqs[j]
        out[idx] = np.asarray(model(x, training=False)).reshape(-1)
    return out


def _fit_ngram_branch(model, cfg, train_texts, train_labels, val_texts, val_ids, val_labels, base_ngram, verbose,
                      unlabelled_texts=()):
    """Fit the n-gram branch on the training reviews (or keep a base model's) and the combiner on validation.

    ``unlabelled_texts``: reviews for the branch's self-training (``ngram_self_training`` their weight).

    The combiner needs validation reviews that neither branch trained on: with fewer than
    ``MIN_COMBINER_REVIEWS`` of them it keeps the base model's combiner, or adds the two logits (1, 1, 0).
    """
    from rnn_apps.apps.sentiment import ngrams

    t0 = time.time()
    if base_ngram is not None:
        vocabulary, weights, bias, order = base_ngram.vocabulary, base_ngram.weights, base_ngram.bias, base_ngram.order
        tokens = base_ngram.tokens
        default = base_ngram.combiner
    else:
        order, tokens = int(cfg["ngram_order"]), cfg["ngram_tokens"]
        if verbose:
            print(f"N-gram branch: up to {cfg['ngram_features']:,} n-grams of 1..{order} tokens ({tokens}), "
                  "NB-weighted logistic regression.")
        weight = float(cfg["ngram_self_training"]) if len(unlabelled_texts) else 0.0
        vocabulary, weights, bias = ngrams.fit_ngram_branch(train_texts, train_labels, int(cfg["ngram_features"]), order,
                                                            float(cfg["ngram_l2"]), verbose=verbose, tokens=tokens,
                                                            unlabelled=unlabelled_texts, unlabelled_weight=weight)
        default = np.array([1.0, 1.0, 0.0], np.float32)
    figures = {"ngrams": len(vocabulary) + 1, "seconds": None, "val_reviews": len(val_labels)}
    if base_ngram is None:
        figures["self_training"] = {"unlabelled_reviews": len(unlabelled_texts) if weight else 0, "weight": weight}
    else:
        figures["self_training"] = base_ngram.figures.get("self_training")
    combiner = default
    if val_labels:
        vectorizer = ngrams.make_ngram_vectorizer(order, vocabulary=vocabulary, tokens=tokens)
        z = ngrams.ngram_logits(vectorizer, weights, bias, val_texts)
        p = predict_ids(model, val_ids)
        figures["rnn_val_accuracy"] = ngrams.accuracy(p, val_labels)
        figures["ngram_val_accuracy"] = ngrams.accuracy(z >= 0, val_labels)
        if len(val_labels) >= MIN_COMBINER_REVIEWS:
            x = np.stack([ngrams.logit(p), z], axis=1)
            combiner = ngrams.fit_combiner(x, np.asarray(val_labels))
            figures["combined_val_accuracy_cv"] = ngrams.mean_cross_validated_accuracy(p, z, val_labels)
            figures["halvings"] = ngrams.HALVINGS
        figures["combined_val_accuracy_in_sample"] = ngrams.accuracy(ngrams.combine(combiner, p, z), val_labels)
    figures["combiner_fitted_on_validation"] = bool(len(val_labels) >= MIN_COMBINER_REVIEWS)
    figures["seconds"] = round(time.time() - t0, 1)
    if verbose:
        # the nested records (self_training) are in the run's summary, printed line by line
        print("N-gram branch: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in figures.items() if not isinstance(v, dict)))
    return ngrams.NgramBranch(vocabulary, weights, bias, order, combiner, figures, tokens)


def load_run_ngram(run_dir: str):
    """The n-gram branch of a training run, or None."""
    from rnn_apps.apps.sentiment.ngrams import NgramBranch

    return NgramBranch.load(os.path.join(run_dir, NGRAM_DIR))


def _pretrain(model, vectorizer, texts, cfg, lm_dir, strat, run, base, stats):
    """Train ``model``'s embedding and encoder as a bidirectional LM on ``texts``; return (fit result, lm)."""
    from rnn_apps import training
    from rnn_apps.apps.sentiment.model import BiLanguageModel, encode_texts

    t0 = time.time()
    seqs = sdata.chunk_sequences(encode_texts(vectorizer, texts), cfg["lm_seq_len"])
    if not seqs:
        raise sdata.SentimentDataError("No text of two words or more to pre-train the language model on.")
    order = np.random.default_rng([cfg["seed"], 7]).permutation(len(seqs))
    n_val = int(round(len(seqs) * cfg["lm_val_fraction"])) if len(seqs) > 1 else 0
    val = [seqs[i] for i in sorted(order[:n_val])]
    tr = [seqs[i] for i in sorted(order[n_val:])]
    replicas = strat.num_replicas_in_sync
    plan = sdata.BucketBatches([len(s) for s in tr], 0, cfg["lm_tokens_per_batch"], bucket=16,
                               seed=cfg["seed"], multiple=replicas)
    # Full-softmax validation: small batches keep the (tokens, vocabulary) logits small.
    val_plan = (sdata.BucketBatches([len(s) for s in val], 0, 1024, bucket=16, multiple=replicas, shuffle=False)
                if val else None)
    stats.update({"lm_train_tokens": int(sum(len(s) for s in tr)), "lm_val_tokens": int(sum(len(s) for s in val)),
                  "lm_texts": len(texts)})
    epochs = int(cfg["pretrain_epochs"])
    with strat.scope():
        lm = BiLanguageModel(model, num_sampled=cfg["lm_num_sampled"], seed=cfg["seed"])
        lm(np.zeros((1, 2), np.int32))
        if base is not None and base.get("lm_weights"):
            contract.assign_weights(lm.head_weights(), base["lm_weights"], "the base model's language-model head")
        compile_language_model(lm, cfg["pretrain_learning_rate"], cfg["clipnorm"], plan.steps_per_epoch * epochs)
    if run.verbose:
        print(f"Language-model pre-training: {stats['lm_train_tokens']:,} tokens in {len(tr)} pieces, "
              f"{plan.steps_per_epoch} steps an epoch ({time.time() - t0:.0f} s to prepare).")
    result = contract.fit_run(
        lm, lambda start: lm_dataset(plan, tr, start, None), plan.steps_per_epoch, epochs, lm_dir, run, strategy=strat,
        final=None, validation_data=lm_dataset(val_plan, val, 0, 1) if val_plan else None,
    )
    if training.is_chief(strat):
        np.savez(os.path.join(lm_dir, LM_HEAD_FILE), *[w.numpy() for w in lm.head_weights()])
    return result, lm


def load_run_model(run_dir: str):
    """Rebuild a run's classifier (final weights, else newest checkpoint), its LM (or None), vocabulary, config."""
    from rnn_apps.apps.sentiment.model import BiLanguageModel, build_from_config

    cfg = contract.read_run_config(run_dir, CONFIG_FILE, "sentiment", expect="sentiment")["settings"]
    with open(os.path.join(run_dir, VOCAB_FILE), encoding="utf-8") as f:
        vocabulary = json.load(f)["words"]
    model = build_from_config(len(vocabulary) + 2, cfg)
    lm = None
    head = os.path.join(run_dir, LM_DIR, LM_HEAD_FILE)
    if os.path.exists(head):
        lm = BiLanguageModel(model, num_sampled=cfg["lm_num_sampled"], seed=cfg["seed"])
        with np.load(head) as z:
            contract.assign_weights(lm.head_weights(), [z[f"arr_{i}"] for i in range(len(z.files))], head)
    contract.load_run_weights(model, run_dir, lambda m: compile_classifier(m, cfg["learning_rate"], cfg["clipnorm"], 1),
                              final=FINAL_WEIGHTS)
    return model, lm, vocabulary, cfg
