"""The forecaster's card (``rnn-apps card forecast``): hub metadata and the back-test figures the export
recorded (``assets.extra/forecast.json``). Written by :func:`rnn_apps.cards.write_card`."""

from __future__ import annotations


def HUB(app: str, meta: dict) -> dict:
    """The card's front matter (model hubs read it)."""
    series = ((meta.get("summary") or {}).get("series") or {}).get("name", "the training series")
    return {"license": "mit", "pipeline_tag": "time-series-forecasting",
            "tags": ["rnn", (meta.get("config") or {}).get("cell", "lstm"), "forecasting", "tensorflow"],
            "task": {"type": "time-series-forecasting", "name": "Time-series forecasting"},
            "dataset": {"type": f"rnn-apps/{series}", "name": f"{series} series, back-test (its last part)",
                        "split": "test"}}


def metrics(version_dir: str, meta: dict) -> list:
    """The back-test's MAE and MAPE of the model and of the naive baselines, as the export recorded them."""
    measured = ((meta.get("summary") or {}).get("metrics")) or {}
    out = []
    for key, who in (("model", "model"), ("naive", "naive forecast"), ("seasonal_naive", "seasonal-naive forecast")):
        m = measured.get(key)
        if m:
            out.append({"type": "mae", "name": f"Back-test MAE, {who}", "value": round(m["mae"], 4)})
            if m.get("mape") is not None:
                out.append({"type": "mape", "name": f"Back-test MAPE (%), {who}", "value": round(m["mape"], 3)})
    return out
