"""Train the captioner on synthetic scenes or on a Flickr/COCO caption set (resumable)."""

from __future__ import annotations

import json
import os
import time
from typing import Optional

import numpy as np

from rnn_apps.apps.caption import data as cdata
from rnn_apps.apps.caption import scenes
from rnn_apps.vocab import Vocabulary

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"

DEFAULTS = dict(
    variant="attention",
    image_size=None,  # 64 for synthetic scenes, 128 for photos, 224 with a backbone
    filters=(32, 64, 96, 128),
    feature_dim=128,
    embedding_dim=64,
    units=256,
    cell="lstm",
    attention_units=128,
    gate=True,
    dropout=0.1,
    learning_rate=2e-3,
    clipnorm=5.0,
    batch_size=64,
    steps_per_epoch=None,  # synthetic: 500; a caption set: one pass over its (image, caption) pairs
    max_len=None,  # synthetic: the longest caption + 1; a caption set: 32
    seed=1234,
    # synthetic scenes
    min_shapes=1,
    max_shapes=3,
    reverse_prob=0.25,
    val_count=512,
    # caption sets
    min_count=5,
    max_vocab=10000,
    val_fraction=0.05,
    max_val_pairs=2000,
    # keras.applications backbone
    backbone=None,
    backbone_weights=None,
    backbone_trainable=False,
)


def _metric():
    import keras

    return keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")


def compile_model(model, learning_rate: float, clipnorm: float, total_steps: int):
    import keras

    warmup = min(200, max(1, total_steps // 20))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total_steps - warmup), alpha=0.02, warmup_target=learning_rate, warmup_steps=warmup
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[_metric()],
    )
    return model


def scene_settings(cfg: dict) -> dict:
    return {"image_size": cfg["image_size"], "min_shapes": cfg["min_shapes"], "max_shapes": cfg["max_shapes"]}


def _options(ds):
    from rnn_apps.training import whole_batch_options

    return whole_batch_options(ds)


def synthetic_dataset(cfg: dict, vocab: Vocabulary, start_step: int):
    import tensorflow as tf

    b, s, t = cfg["batch_size"], cfg["image_size"], cfg["max_len"]
    spec = (
        (tf.TensorSpec((b, s, s, 3), tf.uint8), tf.TensorSpec((b, t), tf.int32)),
        tf.TensorSpec((b, t), tf.int32),
        tf.TensorSpec((b, t), tf.float32),
    )
    ds = tf.data.Dataset.from_generator(
        lambda: cdata.synthetic_batches(b, cfg["seed"], scene_settings(cfg), vocab, t, start_step, cfg["reverse_prob"]),
        output_signature=spec,
    )
    return _options(ds).prefetch(2)


def _array_dataset(arrays, batch_size: int):
    import tensorflow as tf

    (images, x), y, w = arrays
    n = (len(y) // batch_size) * batch_size or len(y)
    return _options(tf.data.Dataset.from_tensor_slices(((images[:n], x[:n]), y[:n], w[:n])).batch(batch_size))


def _load_images(paths, size: int):
    import tensorflow as tf

    from rnn_apps.apps.caption.images import decode_images

    return decode_images(tf.map_fn(tf.io.read_file, paths), size)


def pairs_dataset(plan: cdata.PairPlan, cfg: dict, vocab: Vocabulary, start_step: int):
    import tensorflow as tf

    b, s, t = cfg["batch_size"], cfg["image_size"], cfg["max_len"]
    spec = (tf.TensorSpec((b,), tf.string), tf.TensorSpec((b, t), tf.int32), tf.TensorSpec((b, t), tf.int32),
            tf.TensorSpec((b, t), tf.float32))
    ds = tf.data.Dataset.from_generator(lambda: plan.iterate(vocab, t, start_step), output_signature=spec)
    ds = ds.map(lambda p, x, y, w: ((_load_images(p, s), x), y, w), num_parallel_calls=2)
    return _options(ds).prefetch(2)


def validation_pairs_dataset(rows, cfg: dict, vocab: Vocabulary):
    import tensorflow as tf

    pairs = [(r.path, c) for r in rows for c in r.captions][: cfg["max_val_pairs"]]
    x, y, w = cdata.encode_captions([c for _, c in pairs], vocab, cfg["max_len"])
    ds = tf.data.Dataset.from_tensor_slices((np.array([p for p, _ in pairs]), x, y, w)).batch(cfg["batch_size"])
    ds = ds.map(lambda p, x, y, w: ((_load_images(p, cfg["image_size"]), x), y, w))
    return _options(ds)


def _resolve(cfg: dict, synthetic: bool) -> dict:
    cfg = dict(cfg)
    if cfg["image_size"] is None:
        cfg["image_size"] = 224 if cfg["backbone"] else (64 if synthetic else 128)
    if cfg["max_len"] is None:
        cfg["max_len"] = scenes.max_caption_words(cfg["max_shapes"]) + 1 if synthetic else 32
    if cfg["steps_per_epoch"] is None and synthetic:
        cfg["steps_per_epoch"] = 500
    cfg["filters"] = [int(f) for f in cfg["filters"]]
    if cfg["variant"] not in ("attention", "inject"):
        raise ValueError(f"variant must be 'attention' or 'inject'; received {cfg['variant']!r}.")
    return cfg


def train(
    data_path: Optional[str],
    run_dir: str,
    epochs: int = 6,
    synthetic: bool = False,
    resume: bool = False,
    strategy: str = "default",
    tensorboard: bool = False,
    save_every: int = 200,
    verbose: int = 1,
    **overrides,
) -> dict:
    """Train a captioner; checkpoints, config, vocabulary and final weights go to ``run_dir``.

    Args:
        data_path: A Flickr8k/30k or COCO directory (see :mod:`rnn_apps.apps.caption.data`), or None with
            ``synthetic=True``.
        run_dir: The run's directory.
        epochs: Total epochs (``steps_per_epoch`` steps each).
        synthetic: Train on freshly generated scenes (an endless, deterministic stream).
        resume: Continue the run in ``run_dir`` (its saved config wins over ``overrides``).
        **overrides: Any of :data:`DEFAULTS`.

    Returns:
        A summary dict (step, history, validation loss and token accuracy, stats, seconds) with the
        trained ``model``, ``vocab`` and ``config``.
    """
    from rnn_apps import training
    from rnn_apps.apps.caption.model import build_caption_model, check_backbone

    if (data_path is None) == (not synthetic):
        raise cdata.CaptionDataError("Give either --data DIR (a Flickr or COCO caption set) or --synthetic, not both.")
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, resume, CONFIG_FILE)
    cfg_path, vocab_path = os.path.join(run_dir, CONFIG_FILE), os.path.join(run_dir, VOCAB_FILE)
    if saved is not None:
        synthetic = saved["synthetic"]
        data_path = saved.get("data")
    else:
        cfg = _resolve(cfg, synthetic)
        if cfg["backbone"]:
            check_backbone(cfg["backbone"], cfg["backbone_weights"])
    training.set_seed(cfg["seed"])
    t0 = time.time()
    strat = training.get_strategy(strategy)
    if synthetic:
        vocab = Vocabulary(scenes.vocabulary_words())
        stats = {"source": "synthetic", "scene_settings": scene_settings(cfg), "val_scenes": cfg["val_count"],
                 "vocab_size": len(vocab)}
        steps_per_epoch = cfg["steps_per_epoch"]
        make_train = lambda start: synthetic_dataset(cfg, vocab, start)  # noqa: E731
        val = _array_dataset(cdata.synthetic_validation(cfg["val_count"], cfg["seed"], scene_settings(cfg), vocab,
                                                        cfg["max_len"]), cfg["batch_size"])
    else:
        kind, rows = cdata.load_caption_set(data_path)
        train_rows, val_rows = cdata.split_rows(rows, cfg["val_fraction"], cfg["seed"])
        vocab = Vocabulary.load(vocab_path) if saved else Vocabulary.build(
            (cdata.tokenize(c) for r in train_rows for c in r.captions), cfg["min_count"], cfg["max_vocab"])
        plan = cdata.PairPlan(train_rows, cfg["batch_size"], cfg["seed"])
        steps_per_epoch = cfg["steps_per_epoch"] or plan.steps_per_epoch
        stats = {"source": kind, "train_images": len(train_rows), "val_images": len(val_rows),
                 "train_pairs": len(plan.pairs), "vocab_size": len(vocab)}
        make_train = lambda start: pairs_dataset(plan, cfg, vocab, start)  # noqa: E731
        val = validation_pairs_dataset(val_rows, cfg, vocab) if val_rows else None
    if verbose:
        print(f"Captioning data: {json.dumps(stats)} ({time.time() - t0:.0f} s).")
    vocab.save(vocab_path)
    if not saved:
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump({"settings": cfg, "synthetic": synthetic, "data": os.path.abspath(data_path) if data_path else None,
                       "stats": stats}, f, indent=1)
    with strat.scope():
        model = build_caption_model(len(vocab), {**cfg, "backbone_weights": cfg["backbone_weights"] if not saved
                                                 else ("none" if cfg["backbone"] else None)}, cfg["max_len"])
        compile_model(model, cfg["learning_rate"], cfg["clipnorm"], steps_per_epoch * epochs)
    result = training.fit_resumable(
        model, make_train, steps_per_epoch, epochs, run_dir, validation_data=val, resume=resume,
        save_every=save_every, tensorboard=tensorboard, verbose=verbose, strategy=strat,
    )
    if training.is_chief(strat):
        model.save_weights(os.path.join(run_dir, "final.weights.h5"))
    result.update({
        "val_loss": training.last_metric(result["history"], "val_loss"),
        "val_token_accuracy": training.last_metric(result["history"], "val_token_accuracy"),
        "stats": stats, "seconds": round(time.time() - t0, 1), "model": model, "vocab": vocab, "config": cfg,
        "synthetic": synthetic,
    })
    return result


def load_run_model(run_dir: str, weights: Optional[str] = None):
    """Rebuild a run's model and load its final (or newest checkpoint) weights: (model, vocab, cfg, run)."""
    from rnn_apps import training
    from rnn_apps.apps.caption.model import build_caption_model

    cfg_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"No captioning run in {run_dir} (no {CONFIG_FILE}).")
    with open(cfg_path, encoding="utf-8") as f:
        run = json.load(f)
    cfg = run["settings"]
    vocab = Vocabulary.load(os.path.join(run_dir, VOCAB_FILE))
    model = build_caption_model(len(vocab), {**cfg, "backbone_weights": "none" if cfg.get("backbone") else None},
                                cfg["max_len"])
    final = weights or os.path.join(run_dir, "final.weights.h5")
    if os.path.exists(final):
        model.load_weights(final)
    else:
        compile_model(model, cfg["learning_rate"], cfg["clipnorm"], 1)
        training.CheckpointManager(run_dir).restore(model)
    return model, vocab, cfg, run


def export_run(model, vocab: Vocabulary, cfg: dict, synthetic: bool, app_dir: str, version: Optional[int] = None,
               run: Optional[dict] = None) -> str:
    """Export a trained captioner with what its users need to know (scene settings for synthetic models)."""
    from rnn_apps.apps.caption.export import export_caption

    extra = {"synthetic": bool(synthetic), "scene_settings": scene_settings(cfg) if synthetic else None}
    if run:
        extra["training"] = run
    return export_caption(model, vocab, cfg, app_dir, version, extra)
