"""Check a predict request's tensors against its model's app limits (:mod:`rnn_apps.limits`).

The server knows a model's app from ``assets.extra/<app>.json``, written by every app's export. A model
of no known app gets only the generic checks (body size, JSON, dtype and shape).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Tuple

import numpy as np

from rnn_apps import limits as L


def model_app(path: str) -> Optional[str]:
    """The app of the SavedModel at ``path``: the known app whose ``assets.extra/<app>.json`` it holds."""
    extra = os.path.join(path, "assets.extra")
    for app in L.APPS:
        if os.path.isfile(os.path.join(extra, f"{app}.json")):
            return app
    return None


def app_settings(path: str, app: Optional[str]) -> dict:
    """The content of ``assets.extra/<app>.json`` of the SavedModel at ``path`` ({} when unreadable)."""
    if not app:
        return {}
    try:
        with open(os.path.join(path, "assets.extra", f"{app}.json"), encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def languages(settings: dict) -> Tuple[str, str]:
    """(source, target) language codes of a translation model's settings (``config.direction``, e.g.
    ``en-zh``), or ("", "") for other models."""
    config = settings.get("config")
    direction = config.get("direction") if isinstance(config, dict) else None
    if not isinstance(direction, str) or direction.count("-") != 1:
        return "", ""
    src, tgt = direction.split("-")
    return src, tgt


def batch_rows(arrays: Dict[str, np.ndarray]) -> int:
    """Examples in a request: the largest first dimension among its batched (rank >= 1) inputs."""
    return max([a.shape[0] for a in arrays.values() if a.ndim >= 1] or [1])


def check_request(app_limits: Optional[L.AppLimits], arrays: Dict[str, np.ndarray]) -> None:
    """Raise :class:`rnn_apps.limits.LimitError` when an input is outside ``app_limits``."""
    if app_limits is None:
        return
    L.check_batch(app_limits, batch_rows(arrays))
    for name in app_limits.same_in_call:
        arr = arrays.get(name)
        if arr is not None and (arr.size == 0 or (arr.ndim >= 1 and (arr != arr.reshape(-1)[0]).any())):
            raise L.LimitError(L.same_in_call_message(name, list(dict.fromkeys(arr.reshape(-1).tolist()))))
    for name, arr in arrays.items():
        if name in app_limits.example_texts and arr.dtype == object:
            _check_strings(app_limits, name, example_texts(app_limits, name, arr))
        elif arr.dtype == object:
            _check_strings(app_limits, name, arr)
        elif arr.dtype.kind in "fiu":
            _check_numbers(app_limits, name, arr)
    # After each text's own checks, which name the one text that is too long: the total is about the request.
    for name in app_limits.max_total_chars:
        arr = arrays.get(name)
        if arr is not None and arr.dtype == object:
            L.check_total_chars(app_limits, name, (x.decode("utf-8") for x in arr.reshape(-1)))


def example_texts(lim: L.AppLimits, name: str, arr: np.ndarray) -> np.ndarray:
    """The texts inside the serialized ``tf.Example`` protos of the input ``name`` (one of
    ``lim.example_texts``: the feature that holds them), parsed as the model's graph parses them."""
    import tensorflow as tf

    feature = lim.example_texts[name]
    try:
        parsed = tf.io.parse_example(tf.constant(arr.reshape(-1)), {feature: tf.io.FixedLenFeature([], tf.string)})
    except (tf.errors.InvalidArgumentError, ValueError):
        raise L.LimitError(f"{name} must hold serialized tf.Example protos with a string feature "
                           f"\"{feature}\" (one value each).") from None
    return parsed[feature].numpy().astype(object)


def _check_strings(lim: L.AppLimits, name: str, arr: np.ndarray) -> None:
    flat = arr.reshape(-1)
    if name in lim.max_megapixels:
        _check_images(lim, name, flat)
        return
    for i, (where, data) in enumerate(_rows(name, flat)):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise L.not_utf8(where) from None
        L.check_text(lim, name, text, i if flat.size > 1 else None)


def _rows(name: str, flat: np.ndarray):
    """``(where, value)`` of each value of the input ``name``: ``name[i]`` names it when there are several."""
    return ((name if flat.size == 1 else f"{name}[{i}]", value) for i, value in enumerate(flat))


def _check_images(lim: L.AppLimits, name: str, flat: np.ndarray) -> None:
    """Encoded images, each read from its header by the command's reader
    (:func:`rnn_apps.apps.caption.images.check_image`) and refused in its words, named by their index in the
    request: empty, not a PNG, JPEG, GIF, BMP or WebP image, cut short, of no size, or too many pixels (a GIF's
    largest frame, then its frames together) for the model to decode."""
    from rnn_apps.apps.caption.images import CaptionError, check_image

    for where, data in _rows(name, flat):
        try:
            header = check_image(data, where)
        except CaptionError as e:
            raise L.LimitError(str(e)) from None
        L.check_megapixels(lim, name, header.width, header.height, where=where)
        L.check_frames(lim, name, header.frames, header.frame_pixels, header.blocks, where=where)


def name_undecodable_image(lim: Optional[L.AppLimits], arrays: dict) -> None:
    """After the model refused a request: raise a LimitError naming the first image whose header
    :func:`_check_images` read but whose data TensorFlow cannot decode (cut short or damaged after the header),
    in the command's words. The model's own error names no row; decoding each image again costs time only on
    this error path."""
    from rnn_apps.apps.caption.images import CaptionError, check_decodable

    for name in (lim.max_megapixels if lim is not None else ()):
        arr = arrays.get(name)
        if arr is None or arr.dtype != object:
            continue
        for where, data in _rows(name, arr.reshape(-1)):
            try:
                check_decodable(data, where)
            except CaptionError as e:
                raise L.LimitError(str(e)) from None


def _check_numbers(lim: L.AppLimits, name: str, arr: np.ndarray) -> None:
    # An image's pixels are bounded by its megapixels instead of the values per example.
    per_example = int(np.prod(arr.shape[1:]))
    if arr.ndim >= 2 and name not in lim.max_megapixels and per_example > lim.max_values:
        raise L.LimitError(L.too_many_values_message(name, per_example, lim.max_values))
    if name in lim.max_megapixels and arr.ndim == 4:  # pixels [B, H, W, C]
        L.check_megapixels(lim, name, arr.shape[2], arr.shape[1])
    if arr.size == 0:
        return
    if name in lim.ranges:  # the command's message, for NaN too (min and max are NaN when any value is)
        for x in (arr.min().item(), arr.max().item()):  # Python numbers: exact for int64
            L.check_number(lim, name, x)
    elif arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise L.LimitError(L.not_finite_values_message(name, arr.reshape(-1)[bad.reshape(-1)][0]))


def is_large(lim: Optional[L.AppLimits], arrays: Dict[str, np.ndarray]) -> bool:
    """Whether the texts of a request hold more characters than its app's ``light_chars``."""
    if lim is None or lim.light_chars is None:
        return False
    total = 0
    for name in lim.max_chars:
        a = arrays.get(name)
        if a is not None and a.dtype == object:
            total += sum(len(x.decode("utf-8", "replace")) for x in a.reshape(-1))
    return total > lim.light_chars


def check_known_words(lim: Optional[L.AppLimits], arrays: Dict[str, np.ndarray], tokenize,
                      languages: Tuple[str, str] = ("", "")) -> None:
    """Refuse texts with no word the model knows, for the inputs ``lim.known_words`` names.

    ``tokenize({"text": texts})`` is the model's ``tokenize`` signature: ``tokens`` [B, T] and ``length``
    [B] (the source tokens) and ``unknown_tokens`` [B, U] and ``unknown_count`` [B] (those not in the
    vocabulary). The words are judged by :func:`rnn_apps.limits.check_words`, as the command does.
    """
    if lim is None:
        return
    for name in lim.known_words:
        if name not in arrays or arrays[name].ndim != 1 or arrays[name].size == 0:
            continue
        out = tokenize({"text": arrays[name]})
        for i in range(arrays[name].shape[0]):
            toks = [t.decode("utf-8", "replace") for t in out["tokens"][i][:out["length"][i]]]
            unknown = [t.decode("utf-8", "replace") for t in out["unknown_tokens"][i][:out["unknown_count"][i]]]
            L.check_words(lim, f"{name}[{i}]", toks, unknown, languages)


def check_counted_words(lim: Optional[L.AppLimits], arrays: Dict[str, np.ndarray], count_words) -> None:
    """Refuse texts without a word, or without one the model knows, for the inputs ``lim.counted_words``
    names; ``count_words({"text": texts})`` is the model's ``words`` signature (``words`` [B]: the words of
    each text; ``known_words`` [B], where the model gives it: those in its vocabulary)."""
    if lim is None:
        return
    for name in lim.counted_words:
        if name not in arrays or arrays[name].ndim != 1 or arrays[name].size == 0:
            continue
        texts = example_texts(lim, name, arrays[name]) if name in lim.example_texts else arrays[name]
        out = count_words({"text": texts})
        counts = out["words"].reshape(-1)
        known = out["known_words"].reshape(-1) if "known_words" in out else [None] * counts.size
        for i, (c, k) in enumerate(zip(counts, known)):
            L.check_word_count(lim, f"{name}[{i}]", int(c), None if k is None else int(k))


def check_known_chars(lim: Optional[L.AppLimits], arrays: Dict[str, np.ndarray], unknown_characters) -> None:
    """Refuse texts with characters the model does not know, for the inputs ``lim.known_chars`` names;
    ``unknown_characters({"text": texts})`` is the model's signature of that name (``unknown`` [B])."""
    if lim is None:
        return
    for name in lim.known_chars:
        a = arrays.get(name)
        if a is None or a.ndim != 1 or a.size == 0:
            continue
        unknown = unknown_characters({"text": a})["unknown"]
        for i, (text, bad) in enumerate(zip(a, unknown)):
            L.check_characters(lim, f"{name}[{i}]" if a.size > 1 else name, text.decode("utf-8", "replace"),
                               bad.decode("utf-8", "replace"))
