"""How unlike its training photos an image is, so that the caption of an unfamiliar image is flagged.

A captioner describes every image as the nearest thing it knows: trained on Flickr8k it calls a blank page
"a man in a blue shirt is holding a huge camera", with a log-probability no lower than a photo's caption.
What does tell such images apart is the backbone's view of them: an image's mean feature vector

    f(x) = mean over the grid cells of backbone(x)          (MobileNetV2: 1280 values)

points in a direction far from every training photo's. The model keeps ``K`` prototypes ``p_k`` of the
training photos' directions (spherical k-means of f/|f|; I. S. Dhillon and D. S. Modha, 2001, "Concept
Decompositions for Large Sparse Text Data Using Clustering", *Machine Learning* 42) and scores

    novelty(x) = 1 - max_k cos(f(x), p_k)          (0: the direction of a prototype; 1: orthogonal to all)

in its graph. The threshold above which an image counts as unfamiliar is set on the validation photos, which
the prototypes never saw: the largest novelty among them, so that no validation photo is flagged.
"""

from __future__ import annotations

from typing import Sequence

import math

import numpy as np

PROTOTYPES = 256
"""The default number of prototypes (256 × 1280 float32 values add 1.3 MB to a MobileNetV2 captioner)."""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to length 1 (a row of zeros stays zero)."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def fit_prototypes(features: np.ndarray, k: int = PROTOTYPES, seed: int = 0, iterations: int = 30) -> np.ndarray:
    """Spherical k-means: ``k`` unit prototypes of the directions of ``features`` ``[N, C]``.

    Each step assigns every row to its most similar prototype (cosine) and sets each prototype to the
    normalised sum of its rows; a prototype left without rows is moved to the row least similar to its own
    prototype, so that all ``k`` are used.

    Args:
        features: Mean backbone features of the training images, ``[N, C]`` with ``N >= k``.
        k: Number of prototypes.
        seed: Seed of the initial choice of rows.
        iterations: Assignment steps.

    Returns:
        float32 ``[k, C]``, rows of length 1.

    Raises:
        ValueError: fewer rows than prototypes, or a ``k`` below 1.
    """
    x = unit_rows(features)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number >= 1; received {k!r}.")
    if x.ndim != 2 or len(x) < k:
        raise ValueError(f"fit_prototypes needs at least k={k} rows of features [N, C]; received shape {x.shape}.")
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(iterations):
        sims = x @ centres.T
        owner = sims.argmax(1)
        sums = np.zeros_like(centres)
        np.add.at(sums, owner, x)
        empty = np.flatnonzero(np.bincount(owner, minlength=k) == 0)
        if len(empty):  # each empty cluster takes one of the worst-served rows (a different one each)
            worst = np.argsort(sims[np.arange(len(x)), owner])[: len(empty)]
            sums[empty] = x[worst]
        new = unit_rows(sums)
        if np.allclose(new, centres):
            break
        centres = new
    return centres.astype(np.float32)


def novelty(features: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """``1 - max_k cos(f, p_k)`` of each row of ``features`` ``[N, C]`` (the NumPy form of the graph's)."""
    return (1.0 - (unit_rows(features) @ unit_rows(prototypes).T).max(axis=1)).astype(np.float32)


def threshold(values: Sequence[float]) -> float:
    """The novelty above which an image counts as unfamiliar: the largest of the validation photos' (so that
    none of them is flagged), rounded up to 4 decimals (so that it stays at or below it in the graph too)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("The novelty threshold needs validation photos; received none.")
    return math.ceil(float(values.max()) * 1e4) / 1e4


def calibrate(train_features: np.ndarray, val_features: np.ndarray, k: int = PROTOTYPES, seed: int = 0,
              known: np.ndarray | None = None) -> dict:
    """Prototypes of the training images and the threshold of the validation images.

    ``known``: prototypes the model already has (those of the model a fine-tuning run started from), kept
    before the new ones, so that what the model knew still counts as familiar.

    Returns:
        ``{"prototypes": float32 [k, C], "threshold": float, "val_images": int, "train_images": int,
        "val_novelty": {"median", "max"}}``.
    """
    protos = fit_prototypes(train_features, min(k, len(train_features)), seed)
    if known is not None:
        protos = np.concatenate([np.asarray(known, np.float32), protos])
    val = novelty(val_features, protos)
    return {"prototypes": protos, "threshold": threshold(val), "train_images": int(len(train_features)),
            "val_images": int(len(val_features)),
            "val_novelty": {"median": round(float(np.median(val)), 4), "max": round(float(val.max()), 4)}}


def from_caption_set(model, cfg: dict, data_path: str, cache_dir: str | None = None,
                     known: np.ndarray | None = None, verbose: int = 1) -> dict:
    """:func:`calibrate` on a caption set split as training split it: the training photos give the
    prototypes, the validation photos the threshold.

    Args:
        model: A captioner with a backbone (``model.encoder.backbone``).
        cfg: Its training settings (``image_size``, ``val_fraction``, ``seed``: the split of the run).
        data_path: The caption set directory it was trained on (:func:`rnn_apps.apps.caption.data.load_caption_set`).
        cache_dir: A training run's feature cache (:func:`rnn_apps.apps.caption.features.cache_features`),
            read for the training photos instead of running the backbone when it holds these photos.
        known: Prototypes to keep (see :func:`calibrate`).

    Raises:
        ValueError: the model has no backbone, or the set has no validation photos.
        rnn_apps.apps.caption.data.CaptionDataError: ``data_path`` is no caption set.
    """
    from rnn_apps.apps.caption import data as cdata
    from rnn_apps.apps.caption.features import cached_mean_features, mean_features

    backbone, preprocess = model.encoder.backbone, model.encoder.get_layer("preprocess")
    if backbone is None:
        raise ValueError("Novelty needs a captioner with a backbone (e.g. MobileNetV2); this one has its own small CNN.")
    _, rows = cdata.load_caption_set(data_path)
    train, val = cdata.split_rows(rows, cfg["val_fraction"], cfg["seed"])
    if not val:
        raise ValueError(f"{data_path} gives no validation photos to set the novelty threshold on.")
    extract = lambda px: backbone(preprocess(px), training=False)  # noqa: E731  (the encoder's own layers)
    size = int(cfg["image_size"])
    # The training photos' features may come from the run's cache (float16: enough for the prototypes); the
    # validation photos', which set the threshold, are computed as the graph computes them (float32), so that
    # no validation photo scores above it in the exported model.
    paths = [r.path for r in rows]
    cached = cached_mean_features(cache_dir, paths) if cache_dir else None
    if cached is not None:
        row_of = {p: i for i, p in enumerate(paths)}
        train_features = cached[[row_of[r.path] for r in train]]
        val_features = mean_features([r.path for r in val], extract, size, verbose=verbose)
    else:
        pooled = mean_features([r.path for r in train] + [r.path for r in val], extract, size, verbose=verbose)
        train_features, val_features = pooled[: len(train)], pooled[len(train) :]
    return calibrate(train_features, val_features, known=known)
