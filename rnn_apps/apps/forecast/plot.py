"""The forecast figure (matplotlib, Agg): the history, the back-test forecasts against the truth, the future."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np


def plot_forecast(values, split: int, backtest_origins, backtest_predictions, forecast, path: str,
                  title: Optional[str] = None, seasonal_naive=None) -> str:
    """Save the figure to ``path`` (PNG) and return ``path``.

    The back-test is drawn as consecutive, non-overlapping forecasts (origins ``split, split + H, ...``), each
    of ``H`` steps from the history before it, against the true values.

    Args:
        values: The whole series.
        split: Index of the first back-test value.
        backtest_origins: ``[N]`` forecast origins of the back-test.
        backtest_predictions: ``[N, H]`` the model's forecasts at those origins.
        forecast: ``[H]`` the forecast after the last value.
        path: Output file (its directory is created).
        title: Figure title.
        seasonal_naive: Optional ``[N, H]`` seasonal-naive forecasts at the same origins (drawn faintly).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    values = np.asarray(values, np.float64)
    origins = np.asarray(backtest_origins)
    preds = np.asarray(backtest_predictions, np.float64)
    if preds.ndim != 2 or len(preds) != len(origins):
        raise ValueError(f"backtest_predictions must be [len(origins), H]; received shape {preds.shape}.")
    H = preds.shape[1]
    n = len(values)
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    t = np.arange(n)
    ax.plot(t[:split], values[:split], color="0.35", lw=1, label="history (training part)")
    ax.plot(t[split:], values[split:], color="black", lw=1.2, label="back-test truth")
    first = True
    for i in range(0, len(origins), H):
        o = origins[i]
        ax.plot(np.arange(o, o + H), preds[i], color="tab:blue", lw=1.6, label="model back-test" if first else None)
        if seasonal_naive is not None:
            ax.plot(np.arange(o, o + H), np.asarray(seasonal_naive)[i], color="tab:orange", lw=1, alpha=0.6, ls="--",
                    label="seasonal-naive" if first else None)
        first = False
    f = np.asarray(forecast, np.float64)
    ax.plot(np.arange(n, n + len(f)), f, color="tab:red", lw=2, label="forecast")
    ax.axvline(split - 0.5, color="0.6", ls=":", lw=1)
    ax.axvline(n - 0.5, color="0.6", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_title(title or "Forecast")
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
