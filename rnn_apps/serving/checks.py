"""Check a predict request's tensors against its model's app limits (:mod:`rnn_apps.limits`).

The server knows a model's app from ``assets.extra/<app>.json``, written by every app's export. A model
of no known app gets only the generic checks (body size, JSON, dtype and shape).
"""

from __future__ import annotations

import io
import os
from typing import Dict, Optional

import numpy as np

from rnn_apps import limits as L


def model_app(path: str) -> Optional[str]:
    """The app of the SavedModel at ``path``: the known app whose ``assets.extra/<app>.json`` it holds."""
    extra = os.path.join(path, "assets.extra")
    for app in L.APPS:
        if os.path.isfile(os.path.join(extra, f"{app}.json")):
            return app
    return None


def image_size(data: bytes):
    """(width, height) from an encoded image's header (nothing is decoded), or None if not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None  # not an image: the model says so when it tries to decode it


def batch_rows(arrays: Dict[str, np.ndarray]) -> int:
    """Examples in a request: the largest first dimension among its batched (rank >= 1) inputs."""
    return max([a.shape[0] for a in arrays.values() if a.ndim >= 1] or [1])


def check_request(app_limits: Optional[L.AppLimits], arrays: Dict[str, np.ndarray]) -> None:
    """Raise :class:`rnn_apps.limits.LimitError` when an input is outside ``app_limits``."""
    if app_limits is None:
        return
    L.check_batch(app_limits, batch_rows(arrays))
    for name, arr in arrays.items():
        if arr.dtype == object:
            _check_strings(app_limits, name, arr)
        elif arr.dtype.kind in "fiu":
            _check_numbers(app_limits, name, arr)


def _check_strings(lim: L.AppLimits, name: str, arr: np.ndarray) -> None:
    flat = arr.reshape(-1)
    if name in lim.max_megapixels:
        for i, data in enumerate(flat):
            size = image_size(data)
            if size is not None:
                L.check_megapixels(lim, name if flat.size == 1 else f"{name} {i}", *size)
        return
    for i, data in enumerate(flat):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise L.LimitError(f"{name} {i} is not valid UTF-8 text.") from None
        L.check_text(lim, name, text, i if flat.size > 1 else None)


def _check_numbers(lim: L.AppLimits, name: str, arr: np.ndarray) -> None:
    if arr.ndim >= 2 and arr[0].size > lim.max_values:
        raise L.LimitError(f"{name} has {arr[0].size:,} values per example; at most {lim.max_values:,} are accepted.")
    if name in lim.max_megapixels and arr.ndim == 4:  # pixels [B, H, W, C]
        L.check_megapixels(lim, name, arr.shape[2], arr.shape[1])
    if arr.size == 0:
        return
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise L.LimitError(f"{name} must be finite numbers; received {arr.reshape(-1)[bad.reshape(-1)][0]}.")
    if name in lim.ranges:
        for x in (arr.min().item(), arr.max().item()):  # Python numbers: exact for int64
            L.check_number(lim, name, x)
