"""A resumable cache of a frozen backbone's feature grids, so training does not run the CNN for every caption.

With the backbone frozen, an image's feature grid (MobileNetV2 at 224 px: 7×7×1280) is the same in every
epoch and for each of its five captions. :func:`cache_features` computes it once per image and keeps it in
``<dir>/features.npy`` as float16 (7×7×1280×2 bytes = 125 kB an image; about 0.9 GB for Flickr8k), written
in chunks: ``features.json`` says how many rows are done, so an interrupted run continues where it stopped,
and a cache made for other images or another backbone is refused rather than reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Callable, Sequence

import numpy as np

ARRAY_FILE = "features.npy"
INDEX_FILE = "features.json"


class FeatureCacheError(ValueError):
    """A feature cache that does not belong to this run (other images, another backbone or size)."""


def _fingerprint(paths: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(os.path.basename(p) for p in paths).encode("utf-8")).hexdigest()


def _write_index(path: str, index: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(index, f)
    os.replace(tmp, path)


def cache_features(
    paths: Sequence[str],
    extract: Callable,
    grid_shape: Sequence[int],
    cache_dir: str,
    image_size: int,
    identity: dict,
    batch_size: int = 32,
    verbose: int = 1,
) -> np.ndarray:
    """Compute (or finish computing) the feature grid of every image; return them all as float16.

    Args:
        paths: Image files, in the order of the returned rows.
        extract: ``f(pixels float32 [B, S, S, 3] in 0..255) -> features [B, h, w, c]`` (the frozen backbone).
        grid_shape: ``(h, w, c)`` of one image's features.
        cache_dir: Where ``features.npy`` and ``features.json`` live.
        image_size: S, the side images are resized to (as the exported model does, in the graph).
        identity: What made the features (backbone name, weights file, ...): a cache made by something
            else is refused.
        batch_size: Images per backbone call.

    Returns:
        float16 array ``[len(paths), h, w, c]`` (read into memory).

    Raises:
        FeatureCacheError: ``cache_dir`` holds features of other images or of another backbone.
    """
    import tensorflow as tf

    from rnn_apps.apps.caption.images import decode_images

    os.makedirs(cache_dir, exist_ok=True)
    array_path, index_path = os.path.join(cache_dir, ARRAY_FILE), os.path.join(cache_dir, INDEX_FILE)
    shape = (len(paths), *[int(g) for g in grid_shape])
    want = {"images": len(paths), "fingerprint": _fingerprint(paths), "shape": list(shape),
            "image_size": int(image_size), "identity": identity}
    done = 0
    if os.path.exists(index_path) and os.path.exists(array_path):
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        if {k: index.get(k) for k in want} != want:
            raise FeatureCacheError(f"{cache_dir} holds features of other images or another backbone; "
                                    "remove it or choose another run directory.")
        done = int(index["done"])
        array = np.lib.format.open_memmap(array_path, mode="r+")
    else:
        array = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.float16, shape=shape)
        _write_index(index_path, {**want, "done": 0})
    fn = tf.function(lambda files: extract(decode_images(tf.map_fn(tf.io.read_file, files), image_size)))
    for first, stop, grids in _in_batches(paths, fn, done, batch_size, "Features", verbose):
        array[first:stop] = grids.astype(np.float16)
        array.flush()  # the rows reach the file before the index says they are done
        _write_index(index_path, {**want, "done": stop})
    del array
    return np.load(array_path)


def mean_features(paths: Sequence[str], extract: Callable, image_size: int, verbose: int = 1) -> np.ndarray:
    """Each image's feature grid averaged over its cells, float32 ``[len(paths), c]``; nothing is cached.

    Args:
        paths: Image files.
        extract: ``f(pixels float32 [B, S, S, 3] in 0..255) -> features [B, h, w, c]`` (the frozen backbone).
        image_size: S, the side images are resized to (as the exported model does, in the graph).
    """
    import tensorflow as tf

    from rnn_apps.apps.caption.images import decode_images

    fn = tf.function(lambda files: tf.reduce_mean(
        extract(decode_images(tf.map_fn(tf.io.read_file, files), image_size)), axis=[1, 2]))
    out = [means for _, _, means in _in_batches(paths, fn, 0, 32, "Mean features", verbose)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def _in_batches(paths: Sequence[str], fn: Callable, start: int, batch_size: int, label: str, verbose: int):
    """``(first, stop, fn(paths[first:stop]) as NumPy)`` for each batch of the images from ``start`` on, with a
    progress line on stderr (``label``: what is computed) once the caller has taken each batch."""
    import tensorflow as tf

    t0, done = time.time(), start
    while done < len(paths):
        stop = min(done + batch_size, len(paths))
        yield done, stop, fn(tf.constant(list(paths[done:stop]))).numpy()
        done = stop
        if verbose:
            rate = (done - start) / max(time.time() - t0, 1e-9)
            print(f"\r{label}: {done}/{len(paths)} images ({rate:.1f}/s)", end="", file=sys.stderr, flush=True)
    if verbose and done > start:
        print(file=sys.stderr)


def cached_mean_features(cache_dir: str, paths: Sequence[str]) -> np.ndarray | None:
    """The cached grids of ``paths`` (made by :func:`cache_features` for exactly these images) averaged over
    their cells, float32 ``[len(paths), c]``; None when ``cache_dir`` holds no finished cache of them."""
    array_path, index_path = os.path.join(cache_dir, ARRAY_FILE), os.path.join(cache_dir, INDEX_FILE)
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError):
        return None
    if index.get("fingerprint") != _fingerprint(paths) or index.get("done") != len(paths) \
            or not os.path.exists(array_path):
        return None
    grids, chunk = np.load(array_path, mmap_mode="r"), 256  # 256 grids of 7×7×1280 float16: 32 MB at a time
    axes = tuple(range(1, grids.ndim - 1))  # the grid's cells: all axes but the images' and the channels'
    return np.concatenate([grids[i : i + chunk].astype(np.float32).mean(axis=axes)
                           for i in range(0, len(paths), chunk)])
