"""Train and evaluate the fill-in-the-blank models (bidirectional, and the forward-only baseline)."""

from __future__ import annotations

import json
import os
import time
from typing import Optional


from rnn_apps.apps.fill import data as fdata
from rnn_apps.apps.poetry import data as pdata
from rnn_apps.apps.poetry.task import batch_dataset
from rnn_apps.vocab import Vocabulary

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"

DEFAULTS = dict(
    kind="bidirectional",
    embedding_dim=128,
    units=256,
    cell="lstm",
    dropout=0.1,
    mask_rate=0.12,
    learning_rate=3e-3,
    clipnorm=1.0,
    tokens_per_batch=8192,
    max_len=128,
    val_fraction=0.05,
    min_count=3,
    script="simplified",
    seed=1234,
    max_steps=0,
)


def compile_model(model, learning_rate: float, clipnorm: float, total_steps: int):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps), alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def prepare_corpus(data_path: str, cfg: dict, vocab: Optional[Vocabulary] = None):
    """Load and split the poems as the poem model does; return (vocab, train, val, train_seqs, val_seqs, stats)."""
    poems = pdata.load_poems(data_path, cfg["script"])
    train, val = pdata.split_poems(poems, cfg["val_fraction"], cfg["seed"])
    if vocab is None:
        vocab = fdata.build_vocab(train, cfg["min_count"])
    fdata.check_vocab(vocab)
    tr = fdata.encode(train, vocab, cfg["max_len"])
    va = fdata.encode(val, vocab, cfg["max_len"]) if val else []
    stats = {
        "poems": len(poems),
        "train_poems": len(train),
        "val_poems": len(val),
        "train_tokens": int(sum(len(s) - 2 for s in tr)),
        "val_tokens": int(sum(len(s) - 2 for s in va)),
        "vocab_size": len(vocab),
    }
    return vocab, train, val, tr, va, stats


def train(
    data_path: str,
    run_dir: str,
    epochs: int = 2,
    resume: bool = False,
    strategy: str = "default",
    tensorboard: bool = False,
    save_every: int = 100,
    verbose: int = 1,
    **overrides,
) -> dict:
    """Train a fill-in-the-blank model; checkpoints and the final weights go to ``run_dir``.

    Args:
        data_path: A poem corpus (see :mod:`rnn_apps.apps.poetry.data`).
        run_dir: The run's config, vocabulary, checkpoints and logs.
        epochs: Total epochs (``max_steps`` > 0 instead cuts the run to that many steps: the epoch is then
            ``max_steps / epochs`` steps long).
        resume: Continue the run in ``run_dir`` (its saved config wins, but a given ``max_steps`` with
            ``epochs`` sets a new length).
        **overrides: Any of :data:`DEFAULTS` (``kind``: "bidirectional" or "forward").
    """
    from rnn_apps import training
    from rnn_apps.apps.fill.model import build

    # A resumed run may be given a new length (max_steps, split into the given epochs; the cosine schedule
    # follows the new total); otherwise it keeps its saved settings and epochs.
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, resume, CONFIG_FILE, resumable=("max_steps",))
    cfg_path = os.path.join(run_dir, CONFIG_FILE)
    vocab_path = os.path.join(run_dir, VOCAB_FILE)
    vocab = None
    if saved is not None:
        if not overrides.get("max_steps"):
            epochs = saved.get("epochs", epochs)
        vocab = Vocabulary.load(vocab_path)
    training.set_seed(cfg["seed"])
    t0 = time.time()
    vocab, _, _, tr, va, stats = prepare_corpus(data_path, cfg, vocab)
    if verbose:
        print(f"Corpus: {stats['poems']} poems, {stats['train_tokens']} training and {stats['val_tokens']} validation "
              f"characters, vocabulary {stats['vocab_size']} ({time.time() - t0:.0f} s).")
    vocab.save(vocab_path)
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump({"settings": cfg, "epochs": epochs, "data": os.path.abspath(data_path), "stats": stats}, f,
                  ensure_ascii=False, indent=1)
    strat = training.get_strategy(strategy)
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
    result = training.fit_resumable(
        model,
        lambda start: batch_dataset(plan, start, None),
        steps_per_epoch,
        epochs,
        run_dir,
        validation_data=batch_dataset(val_plan, 0, 1) if val_plan else None,
        resume=resume,
        save_every=save_every,
        tensorboard=tensorboard,
        verbose=verbose,
        strategy=strat,
    )
    if training.is_chief(strat):
        model.save_weights(os.path.join(run_dir, "final.weights.h5"))
    result.update({
        "val_accuracy": training.last_metric(result["history"], "val_accuracy"),
        "val_loss": training.last_metric(result["history"], "val_loss"),
        "stats": stats, "seconds": round(time.time() - t0, 1), "model": model, "vocab": vocab, "config": cfg,
    })
    return result


def load_run_model(run_dir: str):
    """Rebuild the model of a training run and load its final (or newest checkpoint) weights."""
    from rnn_apps import training
    from rnn_apps.apps.fill.model import build

    with open(os.path.join(run_dir, CONFIG_FILE), encoding="utf-8") as f:
        cfg = json.load(f)["settings"]
    vocab = Vocabulary.load(os.path.join(run_dir, VOCAB_FILE))
    model = build(cfg["kind"], len(vocab), cfg["embedding_dim"], cfg["units"], cfg["cell"], cfg["dropout"])
    model.build((None, None))
    final = os.path.join(run_dir, "final.weights.h5")
    if os.path.exists(final):
        model.load_weights(final)
    else:
        compile_model(model, cfg["learning_rate"], cfg["clipnorm"], 1)
        training.CheckpointManager(run_dir).restore(model)
    return model, vocab, cfg
