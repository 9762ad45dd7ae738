"""Forecast errors (MAE, MAPE), the naive and seasonal-naive baselines, and the seasonal period from the ACF.

Pure NumPy. The baselines are computed over the same back-test origins as the model, from the values known at
each origin: naive repeats the last value ``y[t-1]``; seasonal-naive repeats the last full season,
``y[t + h - season * (h // season + 1)]`` for step ``h`` (0-based) of the horizon.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

ZERO_TOLERANCE = 1e-8  # |truth| at or below this (relative to the largest |truth|) is left out of MAPE


def mae(truth, pred) -> float:
    """Mean absolute error over every forecast value."""
    truth, pred = np.asarray(truth, np.float64), np.asarray(pred, np.float64)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction shapes differ: {truth.shape} and {pred.shape}.")
    if truth.size == 0:
        raise ValueError("No values to score (empty truth).")
    return float(np.mean(np.abs(truth - pred)))


def mape(truth, pred) -> tuple[Optional[float], int]:
    """Mean absolute percentage error (in percent) and the number of values it skipped.

    Values whose truth is zero (``|truth| <= 1e-8 * max|truth|``) have no percentage error and are left out;
    the second item counts them. When every value is left out the MAPE is None.
    """
    truth, pred = np.asarray(truth, np.float64), np.asarray(pred, np.float64)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction shapes differ: {truth.shape} and {pred.shape}.")
    a = np.abs(truth)
    keep = a > ZERO_TOLERANCE * (a.max() if a.size else 0.0)
    skipped = int(truth.size - keep.sum())
    if not keep.any():
        return None, skipped
    return float(100.0 * np.mean(np.abs(truth[keep] - pred[keep]) / a[keep])), skipped


def format_figure(value, pct: bool = False, sign: str = "%") -> str:
    """A figure as the command's table and the model's card print it: "n/a" for None; a MAPE (``pct``) with two
    decimals and ``sign`` after it (the card's is " %"); else four significant digits in plain decimals (.4g
    wrote an MAE of 73,820 as 7.382e+04)."""
    if value is None:
        return "n/a"
    if pct:
        return f"{value:.2f}{sign}"
    return np.format_float_positional(value, precision=4, unique=False, fractional=False, trim="-")


def scores(truth, pred) -> dict:
    """``{"mae", "mape", "mape_skipped"}`` of a forecast."""
    m, skipped = mape(truth, pred)
    return {"mae": mae(truth, pred), "mape": m, "mape_skipped": skipped}


def naive_forecast(values, origins, horizon: int) -> np.ndarray:
    """``[len(origins), horizon]``: the last value before each origin, repeated."""
    values = np.asarray(values, np.float64)
    origins = np.asarray(origins, np.int64)
    if origins.size and origins.min() < 1:
        raise ValueError("Naive forecasts need at least one value before each origin.")
    return np.repeat(values[origins - 1][:, None], horizon, axis=1)


def seasonal_naive_forecast(values, origins, horizon: int, season: int) -> np.ndarray:
    """``[len(origins), horizon]``: the value one season before, from the last complete season."""
    values = np.asarray(values, np.float64)
    origins = np.asarray(origins, np.int64)
    if isinstance(season, bool) or int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer; received {season!r}.")
    if origins.size and origins.min() < season:
        raise ValueError(f"Seasonal-naive forecasts need a full season ({season} values) before each origin; "
                         f"the first origin is {origins.min()}.")
    h = np.arange(horizon)
    idx = origins[:, None] + h[None, :] - season * (h[None, :] // season + 1)
    return values[idx]


def estimate_season(values, max_lag: Optional[int] = None, min_acf: float = 0.2) -> Optional[int]:
    """The seasonal period from the autocorrelation of the (linearly detrended) values, or None.

    Among the local maxima of the autocorrelation at lags 2..``max_lag`` (default: a third of the values) that
    exceed ``min_acf``, the smallest lag whose autocorrelation is at least 0.8 of the highest is chosen (so
    that a multiple of the period does not win by chance).
    """
    x = np.asarray(values, np.float64)
    n = len(x)
    if n < 8:
        return None
    t = np.arange(n)
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    denom = float(np.dot(x, x))
    if denom <= 1e-12 * max(1.0, float(np.abs(values).max()) ** 2):
        return None
    max_lag = min(int(max_lag or n // 3), n - 2)
    # All lags at once through the FFT (zero-padded past 2n: no wrap-around) instead of one dot product a lag,
    # which took seconds on series of 10^5 values; rounded so that ties (exactly periodic series) stay ties.
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    acf = np.round(np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 2] / denom, 12)
    peaks = [k for k in range(2, max_lag + 1) if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1] and acf[k] > min_acf]
    if not peaks:
        return None
    best = max(acf[k] for k in peaks)
    return next(k for k in peaks if acf[k] >= 0.8 * best)
