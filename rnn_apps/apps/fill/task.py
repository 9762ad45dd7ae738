"""Train and evaluate the fill-in-the-blank models (bidirectional, and the forward-only baseline)."""

from __future__ import annotations

import os
import time
from typing import Optional

from rnn_apps import poems
from rnn_apps.apps import base as contract
from rnn_apps.apps.base import CONFIG_FILE, RunOptions, TrainResult
from rnn_apps.apps.fill import data as fdata
from rnn_apps.batches import batch_dataset
from rnn_apps.checks import check_settings
from rnn_apps.vocab import Vocabulary

VOCAB_FILE = "vocab.json"

DEFAULTS = dict(
    kind="bidirectional",
    embedding_dim=128,
    units=256,
    cell="lstm",
    dropout=0.1,
    mask_rate=0.12,
    learning_rate=3e-3,
    **poems.CORPUS_SETTINGS,
    max_steps=0,
    # Stop after this many epochs without a lower validation loss, keeping the best epoch (0: every epoch, ending
    # with the last; runs saved before this setting have none and resume so).
    patience=0,
)


BASE_SETTINGS = ("kind", "embedding_dim", "units", "cell", "dropout", "script")
"""What a fine-tuning run keeps of its base model: the network's shape and the script of its vocabulary."""


def read_base_model(model_dir: str) -> dict:
    """The settings, vocabulary and weights of an exported fill model (:func:`rnn_apps.apps.base.read_base_model`).

    Raises:
        FileNotFoundError: no SavedModel there, or not a fill model.
    """
    from rnn_apps.apps.fill.export import load_config

    return contract.read_base_model(model_dir, load_config)


def base_settings(base_config: dict, overrides: dict) -> dict:
    """The :data:`BASE_SETTINGS` of a base model's ``base_config``, after checking that ``overrides`` (the
    settings given for the run) do not change them.

    Raises:
        TrainingError: an override that differs from the base model's value.
    """
    from rnn_apps.training import TrainingError

    kept = {k: base_config[k] for k in BASE_SETTINGS if k in base_config}
    for k, v in kept.items():
        if overrides.get(k) is not None and overrides[k] != v:
            raise TrainingError(f"Fine-tuning keeps the base model's {k} ({v!r}); received {k}={overrides[k]!r}.")
    return kept


def compile_model(model, learning_rate: float, clipnorm: float, total_steps: int):
    """Adam on a cosine decay (:func:`rnn_apps.apps.base.compile_model`); cross-entropy and accuracy at the
    weighted (predicted) positions."""
    return contract.compile_model(model, learning_rate, clipnorm, total_steps, **contract.token_classification())


def prepare_corpus(data_path: str, cfg: dict, vocab: Optional[Vocabulary] = None):
    """Load and split the poems as the poem model does; return (vocab, train, val, train_seqs, val_seqs, stats)."""
    out = poems.prepare_corpus(data_path, cfg, vocab, fdata.build_vocab, unpredicted=2)
    fdata.check_vocab(out[0])
    return out


def train(data_path: str, run_dir: str, epochs: int = 2, *, init_from: Optional[str] = None,
          **options) -> TrainResult:
    """Train a fill-in-the-blank model; checkpoints and the final weights go to ``run_dir``.

    Fine-tuning (``init_from``): the run starts from an exported fill model's weights and keeps its
    :data:`BASE_SETTINGS` and vocabulary (every old id); the characters of the new training poems that it
    lacks and that they use at least ``min_count`` times are appended, with new embedding rows (the tied
    output layer grows with them; :func:`rnn_apps.poems.grow_vocabulary`).

    Args:
        data_path: A poem corpus (see :mod:`rnn_apps.poems`).
        run_dir: The run's config, vocabulary, checkpoints and logs.
        epochs: Total epochs (``max_steps`` > 0 instead cuts the run to that many steps: the epoch is then
            ``max_steps / epochs`` steps long).
        init_from: An exported fill model (a version or an app directory) to fine-tune. A resumed run
            starts from its checkpoint (or, when it has none yet, from the model its run directory names).
        **options: The run's :class:`~rnn_apps.apps.base.RunOptions` (``resume``: continue the run in
            ``run_dir``, to ``epochs``; its saved config wins, and a run cut to ``max_steps`` keeps its epochs
            unless a given ``max_steps`` with ``epochs`` sets a new length)
            and any of :data:`DEFAULTS` (``kind``: "bidirectional" or "forward"; ``patience`` N > 0: stop after
            N epochs without a lower validation loss and end with the best epoch's weights,
            :func:`rnn_apps.apps.base.stop_early`).

    Returns:
        A :class:`~rnn_apps.apps.base.TrainResult`: ``step``, ``history``, ``val_accuracy``, ``val_loss`` (of the
        weights the run ended with), ``stats``, ``seconds``, ``model``, ``vocab``, ``config``, and
        ``added_characters`` (fine-tuning: the characters appended to the base vocabulary; empty otherwise); with
        ``patience``, ``best_epoch`` and ``stopped_early``.

    Raises:
        TrainingError: a fine-tuning setting of :data:`BASE_SETTINGS` that differs from the base model's.
    """
    from rnn_apps import training
    from rnn_apps.apps.fill.model import build

    # A resumed run trains to the given epochs, as in every app. A run cut to max_steps keeps its epochs
    # (they set its epochs' length) unless a new max_steps gives it a new length (split into the given
    # epochs; the cosine schedule follows the new total).
    run, overrides = RunOptions.split(options, save_every=100)
    check_settings(overrides)  # sizes and rates, before the run directory is written
    if overrides.get("patience") is not None:
        training.check_patience(overrides["patience"])
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, run.resume, CONFIG_FILE, resumable=("max_steps",),
                                       app="fill", data=os.path.abspath(data_path))
    vocab_path = os.path.join(run_dir, VOCAB_FILE)
    vocab = None
    if saved is not None:
        if saved["settings"].get("max_steps") and not overrides.get("max_steps"):
            epochs = saved.get("epochs", epochs)
        vocab = Vocabulary.load(vocab_path)
        init_from = saved.get("init_from")
    training.set_seed(cfg["seed"])
    t0 = time.time()
    base, added = None, []
    if init_from and not contract.resumes_from_checkpoint(run_dir, saved):
        base = read_base_model(init_from)
        init_from = base["model_dir"]
        if vocab is None:  # a new fine-tuning run: the base's settings and ids, new characters appended
            cfg.update(base_settings(base["config"], overrides))
            vocab = base["vocab"]
            fdata.check_vocab(vocab)
            try:
                added = poems.grow_vocabulary(vocab, data_path, cfg, cfg["min_count"], run.verbose)
            except poems.CorpusError:
                training.discard_new_run(run_dir)
                raise
    try:
        vocab, _, _, tr, va, stats = prepare_corpus(data_path, cfg, vocab)
    except poems.CorpusError:
        training.discard_new_run(run_dir)  # a corpus refused before anything was written leaves no run directory
        raise
    poems.report_split_corpus(data_path, stats, cfg["val_fraction"], run_dir, run.verbose, time.time() - t0,
                              "characters")
    vocab.save(vocab_path)
    contract.write_run_config(run_dir, {"settings": cfg, "epochs": epochs, "data": os.path.abspath(data_path),
                                        "stats": stats, "init_from": init_from}, app="fill", saved=saved)
    strat = training.get_strategy(run.strategy)
    replicas = strat.num_replicas_in_sync
    plan = fdata.make_plan(tr, cfg["tokens_per_batch"], cfg["seed"], cfg["mask_rate"], replicas)
    # Validation: the same masking rate, a fixed draw.
    val_plan = fdata.make_plan(va, cfg["tokens_per_batch"], 0, cfg["mask_rate"], replicas) if va else None
    steps_per_epoch = plan.steps_per_epoch
    if cfg.get("max_steps"):
        steps_per_epoch = max(1, int(cfg["max_steps"]) // epochs)
    with strat.scope():
        model = build(cfg["kind"], len(vocab), cfg["embedding_dim"], cfg["units"], cfg["cell"], cfg["dropout"])
        compile_model(model, cfg["learning_rate"], cfg["clipnorm"], steps_per_epoch * epochs)
        model.build((None, None))
        if base is not None:
            # The base's rows keep their weights; new characters keep their fresh ones. A resumed run's
            # checkpoint then replaces them all.
            contract.assign_grown_weights(model, base["weights"])
    result = contract.fit_run(model, lambda start: batch_dataset(plan, start, None), steps_per_epoch, epochs, run_dir,
                              run, strategy=strat, validation_data=batch_dataset(val_plan, 0, 1) if val_plan else None,
                              app="fill", **contract.stop_early(cfg))
    kept = contract.kept_history(result)
    result.update({
        "val_accuracy": training.last_metric(kept, "val_accuracy"),
        "val_loss": training.last_metric(kept, "val_loss"),
        "stats": stats, "seconds": round(time.time() - t0, 1), "model": model, "vocab": vocab, "config": cfg,
        "added_characters": added,
    })
    return result


def load_run_model(run_dir: str):
    """Rebuild the model of a training run and load its final (or newest checkpoint) weights."""
    from rnn_apps.apps.fill.model import build

    cfg = contract.read_run_config(run_dir, CONFIG_FILE, "fill", expect="fill")["settings"]
    vocab = Vocabulary.load(os.path.join(run_dir, VOCAB_FILE))
    model = build(cfg["kind"], len(vocab), cfg["embedding_dim"], cfg["units"], cfg["cell"], cfg["dropout"])
    model.build((None, None))
    contract.load_run_weights(model, run_dir, lambda m: compile_model(m, cfg["learning_rate"], cfg["clipnorm"], 1))
    return model, vocab, cfg
