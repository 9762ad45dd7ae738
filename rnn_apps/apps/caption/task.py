"""Train the captioner on synthetic scenes or on a Flickr/COCO caption set (resumable)."""

from __future__ import annotations

import json
import os
import time
from typing import Optional

import numpy as np

from rnn_apps.apps import base as contract
from rnn_apps.apps.base import CONFIG_FILE, FINAL_WEIGHTS, RunOptions, TrainResult
from rnn_apps.apps.caption import data as cdata
from rnn_apps.apps.caption import scenes
from rnn_apps.apps.caption.data import check_default_beam, scene_settings
from rnn_apps.checks import check_settings
from rnn_apps.vocab import SPECIALS, Vocabulary

VOCAB_FILE = "vocab.json"
FEATURES_DIR = "features"

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
    output="direct",  # "tied": a deep output layer tied to the word embedding (see AttentionDecoder)
    dropout=0.1,
    learning_rate=2e-3,
    clipnorm=5.0,
    batch_size=64,
    steps_per_epoch=None,  # synthetic: 500; a caption set: one pass over its (image, caption) pairs
    max_len=None,  # synthetic: the longest caption + 1; a caption set: 32
    flip_prob=0.0,  # share of training images mirrored left-right (data augmentation)
    default_beam=1,  # the beam width of the export's serving_default and of `rnn-apps caption` without --beam
    average_best=3,  # caption sets: end with the mean of the weights of the 3 epochs of least validation loss
    # caption sets: stop after this many epochs without a lower validation loss (0: every epoch; runs saved before
    # this setting have none and resume so). Synthetic scenes keep no best epoch: refused there.
    patience=0,
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
    """:func:`rnn_apps.apps.base.compile_model` with the captioner's schedule: a linear warm-up over the first
    5 % of the steps (at most 200), then a cosine decay to 2 % of ``learning_rate``; the token cross-entropy
    (``rnn_apps.losses.SparseCrossEntropy``) and token accuracy weighted by the caption mask."""
    from rnn_apps.apps import base
    from rnn_apps.losses import SparseCrossEntropy

    return base.compile_model(model, learning_rate, clipnorm, total_steps, alpha=0.02,
                              warmup_steps=min(200, max(1, total_steps // 20)), loss=SparseCrossEntropy(),
                              weighted_metrics=[_metric()])


def _options(ds):
    from rnn_apps.datasets import whole_batch_options

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


def flip_mask(cfg: dict, step: int, n: int) -> np.ndarray:
    """Which of the ``n`` examples of global step ``step`` are mirrored left-right (``flip_prob`` of them):
    drawn from the seed (seed, 3, step), so a resumed run mirrors the same images as an uninterrupted one."""
    p = float(cfg.get("flip_prob") or 0.0)
    if p <= 0:
        return np.zeros(n, bool)
    return np.random.default_rng([cfg["seed"], 3, step]).random(n) < p


def pairs_dataset(plan: cdata.PairPlan, cfg: dict, vocab: Vocabulary, start_step: int):
    import tensorflow as tf

    b, s, t = cfg["batch_size"], cfg["image_size"], cfg["max_len"]

    def batches():
        for k, (p, x, y, w) in enumerate(plan.iterate(vocab, t, start_step)):
            yield p, flip_mask(cfg, start_step + k, b), x, y, w

    def load(p, flip, x, y, w):
        images = _load_images(p, s)
        return (tf.where(flip[:, None, None, None], tf_reverse_width(images), images), x), y, w

    spec = (tf.TensorSpec((b,), tf.string), tf.TensorSpec((b,), tf.bool), tf.TensorSpec((b, t), tf.int32),
            tf.TensorSpec((b, t), tf.int32), tf.TensorSpec((b, t), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec).map(load, num_parallel_calls=2)
    return _options(ds).prefetch(2)


def feature_pairs_dataset(plan: cdata.PairPlan, grids: np.ndarray, rows_to_grids: np.ndarray, cfg: dict,
                          vocab: Vocabulary, start_step: int, flipped: Optional[np.ndarray] = None):
    """Training batches of cached feature grids: ``((grids float16 [B, h, w, c], inputs), targets, weights)``.

    ``rows_to_grids[i]`` is the row of ``grids`` that holds the features of the plan's image ``i``;
    ``flipped`` holds the features of the mirrored images, used for the examples :func:`flip_mask` picks.
    """
    import tensorflow as tf

    b, t = cfg["batch_size"], cfg["max_len"]

    def batches():
        for k, (index, x, y, w) in enumerate(plan.iterate(vocab, t, start_step, with_index=True)):
            rows = rows_to_grids[index]
            g = grids[rows]
            if flipped is not None:
                flip = flip_mask(cfg, start_step + k, b)
                g[flip] = flipped[rows[flip]]
            yield (g, x), y, w

    spec = ((tf.TensorSpec((b, *grids.shape[1:]), tf.float16), tf.TensorSpec((b, t), tf.int32)),
            tf.TensorSpec((b, t), tf.int32), tf.TensorSpec((b, t), tf.float32))
    return _options(tf.data.Dataset.from_generator(batches, output_signature=spec)).prefetch(2)


def validation_features_dataset(rows, grids: np.ndarray, grid_of: dict, cfg: dict, vocab: Vocabulary):
    """The validation pairs (at most ``max_val_pairs``) with their cached feature grids."""
    import tensorflow as tf

    pairs = [(grid_of[r.path], c) for r in rows for c in r.captions][: cfg["max_val_pairs"]]
    x, y, w = cdata.encode_captions([c for _, c in pairs], vocab, cfg["max_len"])
    g = grids[np.array([i for i, _ in pairs])]
    return _options(tf.data.Dataset.from_tensor_slices(((g, x), y, w)).batch(cfg["batch_size"]))


def backbone_identity(cfg: dict) -> dict:
    """What a run's cached features depend on: the backbone and its weights file (by name and size)."""
    w = cfg["backbone_weights"]
    return {"backbone": cfg["backbone"], "weights": os.path.basename(str(w)),
            "weights_bytes": os.path.getsize(w) if w and os.path.isfile(w) else None}


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
    check_default_beam(cfg["default_beam"])
    if not 0.0 <= float(cfg["flip_prob"]) <= 1.0:
        raise cdata.CaptionDataError(f"flip_prob must be from 0 to 1; received {cfg['flip_prob']!r}.")
    if cfg["variant"] not in ("attention", "inject"):
        raise ValueError(f"variant must be 'attention' or 'inject'; received {cfg['variant']!r}.")
    return cfg


# What a fine-tuned model keeps of the model it starts from: its architecture, and how it decodes by default.
ARCHITECTURE = ("variant", "image_size", "filters", "feature_dim", "embedding_dim", "units", "cell", "attention_units",
                "gate", "output", "max_len", "backbone", "default_beam")


def train(data_path: Optional[str], run_dir: str, epochs: int = 6, *, synthetic: bool = False,
          init_from: Optional[str] = None, **options) -> TrainResult:
    """Train a captioner; checkpoints, config, vocabulary and final weights go to ``run_dir``.

    Args:
        data_path: A Flickr8k/30k or COCO directory (see :mod:`rnn_apps.apps.caption.data`), or None with
            ``synthetic=True``.
        run_dir: The run's directory.
        epochs: Total epochs (``steps_per_epoch`` steps each).
        synthetic: Train on freshly generated scenes (an endless, deterministic stream).
        init_from: An exported caption model to start from (fine-tuning): its architecture, weights and
            vocabulary are kept, and words of the new captions it does not know (at least ``min_count``
            times) get new rows in the embedding and the output layer.
        **options: The run's :class:`~rnn_apps.apps.base.RunOptions` (``resume``: continue the run in
            ``run_dir``, its saved config winning) and any of :data:`DEFAULTS` (``patience``: caption sets only).

    Returns:
        A summary (step, history, validation loss and token accuracy, stats, seconds) with the
        trained ``model``, ``vocab`` and ``config``; a caption set's run adds ``best_epoch`` and ``stopped_early``.

    Raises:
        CaptionDataError: ``patience`` given with ``synthetic`` (its runs keep no best epoch to stop on).
    """
    from rnn_apps import training
    from rnn_apps.apps.caption.features import cache_features
    from rnn_apps.backbones import check_backbone

    if (data_path is None) == (not synthetic):
        raise cdata.CaptionDataError("Give either --data DIR (a Flickr or COCO caption set) or --synthetic, not both.")
    run, overrides = RunOptions.split(options, save_every=200)
    check_settings(overrides)  # sizes and rates, before the run directory is written
    if overrides.get("patience") is not None:
        training.check_patience(overrides["patience"])
        if synthetic and overrides["patience"]:
            raise cdata.CaptionDataError("patience applies to a caption set: a run on synthetic scenes keeps no best "
                                         "epoch to stop on.")
    verbose = run.verbose
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, run.resume, CONFIG_FILE, app="caption")
    vocab_path = os.path.join(run_dir, VOCAB_FILE)
    base = None
    if saved is not None:
        synthetic = saved["synthetic"]
        data_path = saved.get("data")
        init_from = saved.get("init_from")
        if init_from:
            base = _base_model(init_from)
    else:
        if init_from:
            base = _base_model(init_from)
            cfg.update({k: base["config"][k] for k in ARCHITECTURE if k in base["config"]}, backbone_weights=None,
                       backbone_trainable=False)
            init_from = base["model_dir"]
        cfg = _resolve(cfg, synthetic)
        if cfg["backbone"] and base is None:
            check_backbone(cfg["backbone"], cfg["backbone_weights"])
            if os.path.isfile(cfg["backbone_weights"]):  # a resumed run reads it again, maybe from elsewhere
                cfg["backbone_weights"] = os.path.abspath(cfg["backbone_weights"])
    # A frozen backbone on a caption set: its feature grids are computed once and cached in the run dir;
    # only the encoder's head and the decoder train (checkpoints hold those, so the backbone's weights
    # are read again on resume: from their file, or from the model a fine-tuning run started from).
    cached = bool(cfg["backbone"]) and not cfg["backbone_trainable"] and not synthetic
    if saved is not None and cached and base is None:
        check_backbone(cfg["backbone"], cfg["backbone_weights"])
    training.set_seed(cfg["seed"])
    t0 = time.time()
    strat = training.get_strategy(run.strategy)
    rows = None
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
        cdata.check_images(train_rows + val_rows, data_path)  # the images training reads (not a test split)
        vocab = Vocabulary.load(vocab_path) if saved else _caption_vocabulary(train_rows, cfg, base, verbose)
        plan = cdata.PairPlan(train_rows, cfg["batch_size"], cfg["seed"])
        steps_per_epoch = cfg["steps_per_epoch"] or plan.steps_per_epoch
        stats = {"source": kind, "train_images": len(train_rows), "val_images": len(val_rows),
                 "train_pairs": len(plan.pairs), "vocab_size": len(vocab)}
        if rows.missing:  # named by the caption files, not among the images: their captions are left out
            stats["images_missing"] = rows.missing
        if base is not None:
            stats["added_words"] = len(vocab) - len(base["vocab"])
        make_train = lambda start: pairs_dataset(plan, cfg, vocab, start)  # noqa: E731
        val = validation_pairs_dataset(val_rows, cfg, vocab) if val_rows else None
    if verbose:
        print(f"Captioning data: {json.dumps(stats)} ({time.time() - t0:.0f} s).")
        if stats.get("images_missing"):
            print(f"Note: {stats['images_missing']:,} images named by the caption files of {data_path} are not among "
                  "its images; their captions are left out.")
    vocab.save(vocab_path)
    if not saved:
        contract.write_run_config(run_dir, {"settings": cfg, "synthetic": synthetic,
                                            "data": os.path.abspath(data_path) if data_path else None,
                                            "stats": stats, "init_from": init_from}, app="caption")
    with strat.scope():
        model = _build(vocab, cfg, base, from_file=not saved or cached)
        trainee = model
        if cached:
            paths = [r.path for r in rows]
            backbone = model.encoder.backbone
            identity = backbone_identity(cfg) if base is None else {"backbone": cfg["backbone"], "weights": init_from}
            grids = cache_features(paths, lambda px: backbone(px / 127.5 - 1.0, training=False),
                                   backbone.output.shape[1:], os.path.join(run_dir, FEATURES_DIR), cfg["image_size"],
                                   identity, verbose=verbose)
            flipped = None
            if cfg.get("flip_prob"):  # the mirrored photos' features, cached the same way
                flipped = cache_features(paths, lambda px: backbone(tf_reverse_width(px) / 127.5 - 1.0, training=False),
                                         backbone.output.shape[1:], os.path.join(run_dir, FEATURES_DIR + "-mirrored"),
                                         cfg["image_size"], {**identity, "mirrored": True}, verbose=verbose)
            grid_of = {p: i for i, p in enumerate(paths)}
            rows_to_grids = np.array([grid_of[p] for p in plan.paths])
            make_train = lambda start: feature_pairs_dataset(plan, grids, rows_to_grids, cfg, vocab, start,  # noqa: E731
                                                             flipped)
            val = validation_features_dataset(val_rows, grids, grid_of, cfg, vocab) if val_rows else None
            trainee = feature_model(model, cfg)
        compile_model(trainee, cfg["learning_rate"], cfg["clipnorm"], steps_per_epoch * epochs)
    result = contract.fit_run(
        trainee, make_train, steps_per_epoch, epochs, run_dir, run, strategy=strat, final=None, app="caption",
        validation_data=val,
        # A caption set is finite, and a large decoder overfits it: keep the epoch of least validation loss.
        keep_best=None if synthetic or val is None else "val_loss",
        # Runs saved before these settings existed kept the best epoch alone and trained every epoch.
        average_best=cfg.get("average_best", 0), patience=int(cfg.get("patience", 0)),
    )
    if training.is_chief(strat):  # the whole model (the trainee may be its part on cached features)
        model.save_weights(os.path.join(run_dir, FINAL_WEIGHTS))
    result.update({
        "val_loss": training.last_metric(result["history"], "val_loss"),
        "val_token_accuracy": training.last_metric(result["history"], "val_token_accuracy"),
        "stats": stats, "seconds": round(time.time() - t0, 1), "model": model, "vocab": vocab, "config": cfg,
        "synthetic": synthetic, "data": data_path, "run_dir": run_dir,
        "known_prototypes": None if base is None else base["prototypes"],
    })
    if result.get("best_epoch") is not None:
        row = next(r for r in result["history"] if r["epoch"] == result["best_epoch"])
        result["val_loss"], result["val_token_accuracy"] = row.get("val_loss"), row.get("val_token_accuracy")
    return result


def tf_reverse_width(images):
    """Images [B, H, W, C] mirrored left-right."""
    import tensorflow as tf

    return tf.reverse(images, axis=[2])


def run_novelty(model, cfg: dict, synthetic: bool, data_path: Optional[str], run_dir: Optional[str] = None,
                init_from: Optional[str] = None, known_prototypes=None, verbose: int = 1) -> Optional[dict]:
    """The novelty prototypes and threshold a run's export carries (:mod:`rnn_apps.apps.caption.novelty`),
    from the caption set it trained on (its feature cache in ``run_dir`` when there is one); None for a model
    of synthetic scenes or one without a backbone. The prototypes of the model a fine-tuning run started from
    are kept: ``known_prototypes``, else read from ``init_from`` (that model's directory).

    Raises:
        rnn_apps.apps.caption.data.CaptionDataError: the caption set is no longer at ``data_path``.
    """
    from rnn_apps.apps.caption import novelty

    if synthetic or not cfg.get("backbone"):
        return None
    if not data_path or not os.path.isdir(data_path):
        raise cdata.CaptionDataError(
            f"The run's caption set {data_path} is not there; the export reads its photos to tell familiar images "
            "from unfamiliar ones. Give --data DIR, the caption set the run was trained on.")
    if known_prototypes is None and init_from:
        known_prototypes = _base_model(init_from)["prototypes"]
    cached = not cfg.get("backbone_trainable") and run_dir is not None
    return novelty.from_caption_set(model, cfg, data_path, os.path.join(run_dir, FEATURES_DIR) if cached else None,
                                    known=known_prototypes, verbose=verbose)


def _base_model(model_dir: str) -> dict:
    from rnn_apps.apps.caption.export import load_weights_from_export

    return load_weights_from_export(model_dir)


def _caption_vocabulary(train_rows, cfg: dict, base: Optional[dict], verbose: int) -> Vocabulary:
    """The training captions' vocabulary; when fine-tuning, the base model's, with the new words appended."""
    cdata.check_caption_words(c for r in train_rows for c in r.captions)
    words = (cdata.tokenize(c) for r in train_rows for c in r.captions)
    fresh = Vocabulary.build(words, cfg["min_count"], cfg["max_vocab"])
    if base is None:
        return fresh
    vocab = Vocabulary(base["vocab"].tokens[len(SPECIALS):])
    added = vocab.extend(fresh.tokens[len(SPECIALS):])
    if verbose and added:
        print(f"Adding {len(added)} new words to the vocabulary: {' '.join(added[:20])}{' ...' if len(added) > 20 else ''}")
    return vocab


def _build(vocab: Vocabulary, cfg: dict, base: Optional[dict], from_file: bool):
    """The captioner with its starting weights: the base model's (grown), or the backbone's from its file."""
    from rnn_apps.apps.caption.model import build_caption_model

    if base is not None:
        model = build_caption_model(len(vocab), {**cfg, "backbone_weights": "none" if cfg["backbone"] else None},
                                    cfg["max_len"])
        contract.assign_grown_weights(model, base["weights"])
        return model
    weights = cfg["backbone_weights"] if from_file else ("none" if cfg["backbone"] else None)
    return build_caption_model(len(vocab), {**cfg, "backbone_weights": weights}, cfg["max_len"])


def feature_model(model, cfg: dict):
    """The trainable part of a frozen-backbone captioner, built, to train on cached feature grids."""
    from rnn_apps.apps.caption.model import FeatureCaptionModel

    trainee = FeatureCaptionModel(model.encoder.head, model.decoder, name="captioner_on_features")
    grid = model.encoder.backbone.output.shape[1:]
    trainee((np.zeros((1, *grid), np.float16), np.zeros((1, cfg["max_len"]), np.int32)))
    return trainee


def load_run_model(run_dir: str, weights: Optional[str] = None):
    """Rebuild a run's model and load its final (or newest checkpoint) weights: (model, vocab, cfg, run)."""
    run = contract.read_run_config(run_dir, CONFIG_FILE, "captioning", expect="caption")
    cfg = run["settings"]
    vocab = Vocabulary.load(os.path.join(run_dir, VOCAB_FILE))
    final = weights or os.path.join(run_dir, FINAL_WEIGHTS)
    # Checkpoints of a run on cached features hold the head and decoder only: the backbone comes from its
    # file, or from the model a fine-tuning run started from.
    cached = bool(cfg.get("backbone")) and not cfg.get("backbone_trainable") and not run.get("synthetic")
    from_file = cached and not os.path.exists(final)
    base = _base_model(run["init_from"]) if from_file and run.get("init_from") else None
    model = _build(vocab, cfg, base, from_file)
    trainee = feature_model(model, cfg) if from_file else model  # what the checkpoints hold
    contract.load_run_weights(trainee, run_dir,
                              lambda m: compile_model(m, cfg["learning_rate"], cfg["clipnorm"], 1), final)
    return model, vocab, cfg, run


def average_run_epochs(model, run_dir: str, cfg: dict, run: dict, n: int) -> list:
    """Give a run's ``model`` the mean weights of its ``n`` epochs of least validation loss; return those epochs.

    The weights of those epochs must be in ``<run_dir>/best-epochs/`` (kept by training with
    ``average_best`` >= ``n``; see :func:`rnn_apps.training.fit_resumable`).

    Raises:
        FileNotFoundError: an epoch's weights are not there.
    """
    from rnn_apps import training

    epochs = sorted(training.best_epochs(training.read_history(run_dir), "val_loss", n))
    paths = [training.epoch_weights_path(run_dir, e) for e in epochs]
    missing = [p for p in paths if not os.path.exists(p)]
    if len(epochs) < n:
        raise FileNotFoundError(f"{run_dir} has {len(epochs)} epoch(s) with a validation loss; --average-best {n} "
                                f"needs {n}.")
    if missing:
        raise FileNotFoundError(f"{run_dir} does not hold the weights of its {n} best epochs "
                                f"({missing[0] if missing else 'no epoch has a validation loss'}); train with "
                                f"--average-best {n} to keep them.")
    cached = bool(cfg.get("backbone")) and not cfg.get("backbone_trainable") and not run.get("synthetic")
    training.average_weights(feature_model(model, cfg) if cached else model, paths)
    return epochs


def export_run(*args, **kwargs) -> str:
    """:func:`rnn_apps.apps.caption.export.export_run`: export a trained captioner."""
    from rnn_apps.apps.caption.export import export_run as export

    return export(*args, **kwargs)
