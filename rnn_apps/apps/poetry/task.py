"""Poetry tasks: train, fine-tune and evaluate the Char-RNN."""

from __future__ import annotations

import math
import os
import time
from typing import Optional

from rnn_apps import poems
from rnn_apps.apps import base as contract
from rnn_apps.apps.base import CONFIG_FILE, RunOptions, TrainResult
from rnn_apps.apps.poetry import data as pdata
from rnn_apps.batches import batch_dataset
from rnn_apps.checks import check_settings
from rnn_apps.poems import CORPUS_SETTINGS
from rnn_apps.vocab import Vocabulary

VOCAB_FILE = "vocab.json"

DEFAULTS = dict(
    embedding_dim=256,
    units=512,
    num_layers=2,
    cell="lstm",
    dropout=0.1,
    learning_rate=2e-3,
    **CORPUS_SETTINGS,
    # Stop after this many epochs without a lower validation loss, keeping the best epoch (0: every epoch, ending
    # with the last; runs saved before this setting have none and resume so).
    patience=0,
)


def _bits_per_char_loss():
    """Keras's sparse cross-entropy from logits (one XLA kernel: :mod:`rnn_apps.losses`), and a bits-per-character
    metric fed by that same cross-entropy.

    The metric used to compute the softmax over the whole vocabulary (6,461 characters for the shipped
    model) a second time at every training step, about a tenth of the step (``benchmarks/train.py``);
    the loss now hands its per-character values to the metric. Loss and metric values are unchanged.
    Returns ``(loss, metric)``: pass the loss as ``loss`` and the metric in ``weighted_metrics``.
    """
    import keras

    from rnn_apps.keras_compat import reduce_weighted_values  # Keras's own weighting and reduction
    from rnn_apps.losses import SparseCrossEntropy, sparse_cross_entropy

    class BitsPerChar(keras.metrics.Metric):
        """Mean negative log2-likelihood per target character (padding excluded by sample weights).

        Updated by :class:`CrossEntropyCountingBits` (its ``update_state`` does nothing), so that it
        reads the cross-entropy the loss has computed instead of computing it again.
        """

        def __init__(self, name="bits_per_char", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def add(self, ce, sample_weight=None):
            """Add per-character cross-entropies ``ce`` (nats) with their weights."""
            ops = keras.ops
            w = ops.ones_like(ce) if sample_weight is None else ops.cast(sample_weight, ce.dtype)
            self.total.assign_add(ops.sum(ce * w) / math.log(2.0))
            self.count.assign_add(ops.sum(w))

        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

        def result(self):
            return self.total / keras.ops.maximum(self.count, 1.0)

    class CrossEntropyCountingBits(SparseCrossEntropy):
        """``SparseCategoricalCrossentropy(from_logits=True)`` that also adds its values to a BitsPerChar."""

        def __init__(self, bits: BitsPerChar, **kwargs):
            super().__init__(**kwargs)
            self.bits = bits

        def __call__(self, y_true, y_pred, sample_weight=None):
            with keras.name_scope(self.name):
                ce = sparse_cross_entropy(y_true, y_pred)
                self.bits.add(ce, sample_weight)
                return reduce_weighted_values(ce, sample_weight=sample_weight, reduction=self.reduction,
                                              dtype=self.dtype)

    bits = BitsPerChar()
    return CrossEntropyCountingBits(bits), bits


def compile_model(model, learning_rate: float, clipnorm: float, total_steps: int):
    """Adam on a cosine decay (:func:`rnn_apps.apps.base.compile_model`); cross-entropy, bits per character."""
    loss, bits = _bits_per_char_loss()
    return contract.compile_model(model, learning_rate, clipnorm, total_steps, loss=loss, weighted_metrics=[bits])


def prepare_corpus(data_path: str, cfg: dict, vocab: Optional[Vocabulary] = None):
    """Load, split, (build the vocabulary) and encode a corpus; return (vocab, train_seqs, val_seqs, stats)."""
    vocab, _, _, tr, va, stats = poems.prepare_corpus(data_path, cfg, vocab)
    return vocab, tr, va, stats


def train(data_path: str, run_dir: str, epochs: int = 8, *, init_from: Optional[str] = None, **options) -> TrainResult:
    """Train a Char-RNN on a poem corpus; checkpoints and the final weights go to ``run_dir``.

    Args:
        data_path: A corpus file (see :mod:`rnn_apps.apps.poetry.data`).
        run_dir: Where the run's config, vocabulary, checkpoints and logs live.
        epochs: Total epochs.
        init_from: A model directory (a shipped SavedModel) whose weights start the run (fine-tuning);
            characters of the new corpus it does not know get new embedding rows.
        **options: The run's :class:`~rnn_apps.apps.base.RunOptions` (``resume``: continue the run in
            ``run_dir``, its saved config winning over the settings given) and any of :data:`DEFAULTS`
            (``patience`` N > 0: stop after N epochs without a lower validation loss and end with the best
            epoch's weights, :func:`rnn_apps.apps.base.stop_early`).

    Returns:
        A summary dict (step, history, validation bits/char of the weights the run ended with, corpus stats,
        seconds; with ``patience``, ``best_epoch`` and ``stopped_early``).
    """
    from rnn_apps import training

    run, overrides = RunOptions.split(options, save_every=100)
    check_settings(overrides)  # sizes and rates, before the run directory is written
    if overrides.get("patience") is not None:
        training.check_patience(overrides["patience"])
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, run.resume, CONFIG_FILE, app="poetry",
                                       data=os.path.abspath(data_path))
    vocab_path = os.path.join(run_dir, VOCAB_FILE)
    vocab = Vocabulary.load(vocab_path) if saved is not None else None
    training.set_seed(cfg["seed"])
    from rnn_apps.apps.poetry import export as pexport

    base = None
    if init_from is not None and vocab is None:
        base = pexport.load_weights_from_export(init_from)
        vocab = base["vocab"]
        for k in ("embedding_dim", "units", "num_layers", "cell"):
            cfg[k] = base["config"][k]
    elif (saved or {}).get("init_from") and not contract.resumes_from_checkpoint(run_dir, saved):
        # a fine-tuning run stopped before its first checkpoint starts from its base again (its grown vocabulary
        # is the run's own)
        base = pexport.load_weights_from_export(saved["init_from"])
    t0 = time.time()
    try:
        if base is not None and saved is None:
            # Fine-tuning: keep every old id, add the new corpus's characters (used at least min_count times) after
            # them.
            poems.grow_vocabulary(vocab, data_path, cfg, min_count=cfg["min_count"], verbose=run.verbose)
        vocab, tr, va, stats = prepare_corpus(data_path, cfg, vocab)
    except poems.CorpusError:
        training.discard_new_run(run_dir)  # a corpus refused before anything was written leaves no run directory
        raise
    poems.report_split_corpus(data_path, stats, cfg["val_fraction"], run_dir, run.verbose, time.time() - t0,
                              "tokens")
    vocab.save(vocab_path)
    record = {"settings": cfg, "data": os.path.abspath(data_path), "stats": stats}
    # the model a fine-tuning run started from (kept when it resumes), for its card
    started_from = (saved or {}).get("init_from") or (base["model_dir"] if base is not None else None)
    if started_from:
        record["init_from"] = started_from
    contract.write_run_config(run_dir, record, app="poetry", saved=saved)

    strat = training.get_strategy(run.strategy)
    replicas = strat.num_replicas_in_sync
    plan = pdata.BatchPlan(tr, cfg["tokens_per_batch"], seed=cfg["seed"], multiple=replicas)
    val_plan = pdata.BatchPlan(va, cfg["tokens_per_batch"], seed=0, multiple=replicas) if va else None
    from rnn_apps.apps.poetry.model import build_char_rnn

    with strat.scope():
        model = build_char_rnn(
            len(vocab), cfg["embedding_dim"], cfg["units"], cfg["num_layers"], cfg["cell"], cfg["dropout"]
        )
        compile_model(model, cfg["learning_rate"], cfg["clipnorm"], plan.steps_per_epoch * epochs)
        model.build((None, None))
        if base is not None:
            # A grown vocabulary keeps the old embedding rows (the tied output layer grows with it).
            contract.assign_grown_weights(model, base["weights"])
    result = contract.fit_run(model, lambda start: batch_dataset(plan, start, None), plan.steps_per_epoch, epochs, run_dir,
                              run, strategy=strat, validation_data=batch_dataset(val_plan, 0, 1) if val_plan else None,
                              app="poetry", **contract.stop_early(cfg))
    val_bpc = training.last_metric(contract.kept_history(result), "val_bits_per_char")
    result.update({"val_bits_per_char": val_bpc, "stats": stats, "seconds": round(time.time() - t0, 1), "model": model,
                   "vocab": vocab, "config": cfg})
    return result


def load_run_model(run_dir: str, weights: Optional[str] = None):
    """Rebuild the model of a training run and load its final (or newest checkpoint) weights."""
    from rnn_apps.apps.poetry.model import build_char_rnn

    cfg = contract.read_run_config(run_dir, CONFIG_FILE, "poem", expect="poetry")["settings"]
    vocab = Vocabulary.load(os.path.join(run_dir, VOCAB_FILE))
    model = build_char_rnn(len(vocab), cfg["embedding_dim"], cfg["units"], cfg["num_layers"], cfg["cell"], cfg["dropout"])
    model.build((None, None))
    contract.load_run_weights(model, run_dir, lambda m: compile_model(m, cfg["learning_rate"], cfg["clipnorm"], 1), weights)
    return model, vocab, cfg


def evaluate_sequences(model, seqs, tokens_per_batch: int = 8192) -> dict:
    """Bits per character of ``model`` over encoded sequences (every target token, <eos> included)."""
    import keras

    plan = pdata.BatchPlan(seqs, tokens_per_batch, seed=0)
    total, count = 0.0, 0.0
    for x, y, w in plan.iterate(0, 1):
        logits = model(x, training=False)
        ce = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        total += float((ce * w).sum())
        count += float(w.sum())
    return {"bits_per_char": total / max(count, 1.0) / math.log(2.0), "tokens": int(count)}
