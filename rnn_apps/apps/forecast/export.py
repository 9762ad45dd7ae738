"""The forecaster's SavedModel: raw histories in, forecasts out, with the normalisation and recursion in the graph.

``models/forecast/<version>/`` loads with plain ``tf.saved_model.load`` (no rnn_apps, no Keras needed) and serves
with TensorFlow Serving. Signature (batch-first):

* ``serving_default``: ``{"history": float32[B, T]}`` -> ``{"forecast": float32[B, H]}``, in the series' units.
  ``T`` must be at least the model's window; the last ``window`` values of each row are read. ``H`` is the
  model's horizon. More than 1,024 rows, more than 100,000 values a row, NaN or infinite values are refused
  with ``InvalidArgumentError`` (:mod:`rnn_apps.graph_limits`), in the words of ``rnn-apps serve``.

``assets.extra/forecast.json`` holds the settings (``window``, ``horizon``, ``mode``, ``cell``, ``season``...),
the normalisation ``scale`` and the back-test figures of the run.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from rnn_apps import graph_limits, limits
from rnn_apps.export import inference_view
from rnn_apps.apps.base import assign_weights, exported_at, read_export, read_meta, save_module

CONFIG_NAME = "forecast.json"
FORMAT = "rnn_apps.forecast/1"
LIMITS = limits.APPS["forecast"]  # checked in the graph too (rnn_apps.graph_limits), as the command checks them


class ForecastModule(tf.Module):
    """A ``tf.Module`` holding the Keras forecaster and its normalisation.

    Args:
        model: From :func:`rnn_apps.apps.forecast.model.build_model` (trained).
        scale: The training part's standard deviation (:class:`~rnn_apps.apps.forecast.data.Normalizer`).
        window, horizon, mode: As the model was trained.
    """

    def __init__(self, model, scale: float, window: int, horizon: int, mode: str):
        super().__init__(name="forecast_model")
        if mode not in ("direct", "recursive"):
            raise ValueError(f"mode must be 'direct' or 'recursive'; received {mode!r}.")
        self.model = inference_view(model)  # without the optimizer a model just trained tracks
        self.model_weights = list(model.weights)
        self.scale = float(scale)
        self.window, self.horizon, self.mode = int(window), int(horizon), mode

    def _step(self, h):
        """Normalise ``h`` [B, window], run the model, return its output in the series' units."""
        level = tf.reduce_mean(h, axis=1, keepdims=True)
        y = self.model((h - level)[..., None] / self.scale, training=False)
        return tf.cast(y, tf.float32) * self.scale + level

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="history")])
    def serving_default(self, history):
        history = graph_limits.checked(LIMITS, history=history)["history"]
        tf.debugging.assert_greater_equal(
            tf.shape(history)[1], self.window,
            message=f"history needs at least {self.window} values per row (the model's window)")
        h = history[:, -self.window:]
        if self.mode == "direct":
            return {"forecast": self._step(h)}
        out = tf.TensorArray(tf.float32, size=self.horizon)
        for k in tf.range(self.horizon):
            nxt = self._step(h)  # [B, 1]
            out = out.write(k, nxt[:, 0])
            h = tf.concat([h[:, 1:], nxt], axis=1)
        return {"forecast": tf.transpose(out.stack())}


def export_forecast(model, scale: float, config: dict, app_dir: str, version: Optional[int] = None,
                    summary: Optional[dict] = None) -> str:
    """Export a trained forecaster to ``app_dir/<version>`` atomically; return the version directory.

    Args:
        model: The trained Keras model.
        scale: The normalisation scale of its training part.
        config: The run's settings (``window``, ``horizon``, ``mode`` ... as from ``task.train``).
        app_dir: e.g. ``models/forecast``.
        version: Default: one more than the newest.
        summary: Figures to keep with the model (back-test metrics, series, training time).
    """
    module = ForecastModule(model, scale, config["window"], config["horizon"], config["mode"])
    meta = {
        "format": FORMAT,
        "config": config,
        "scale": float(scale),
        "signature": {"inputs": {"history": "float32 [batch, T>=window]"},
                      "outputs": {"forecast": "float32 [batch, horizon]"}},
        "summary": summary or {},
        "exported": exported_at(),
    }
    return save_module(module, {"serving_default": module.serving_default}, app_dir, version, CONFIG_NAME, meta)


def export_result(result, app_dir: str, version: Optional[int] = None, summary: Optional[dict] = None) -> str:
    """Export what :func:`rnn_apps.apps.forecast.task.train` returned (``summary``: figures to keep with it, and
    ``command``: the ``rnn-apps`` command that trained the model, which its card names; a command passes it, a
    library call gives none).

    The record (``assets.extra/forecast.json``) also keeps what the model's card states of the run (those
    ``summary`` does not give): its epochs, training windows, the batch it trained with and its back-test loss
    and, for a fine-tuned model, the base model and its back-test loss before."""
    ran = {"epochs": len(result.get("history") or []) or None,
           "train_pairs": result.get("train_pairs"), "batch_size": result.get("batch_size"),
           "val_loss": result.get("val_loss"), "init_from": result.get("init_from"),
           "base_val_loss": result.get("base_val_loss")}
    summary = {**{k: v for k, v in ran.items() if v is not None}, **(summary or {})}
    return export_forecast(result["model"], result["scale"], result["config"], app_dir, version, summary=summary)


def load_config(model_dir: str) -> dict:
    """The ``assets.extra/forecast.json`` of an exported forecaster."""
    return read_meta(model_dir, CONFIG_NAME, "forecasting")


def export_again(from_model: str, app_dir: str, version: Optional[int] = None) -> str:
    """Export the weights of the exported model ``from_model`` again, with this version's graph (e.g. to gain
    the input limits checked in the graph), to ``app_dir/<version>``; its settings and figures are kept.
    Returns the version directory."""
    from rnn_apps.apps.forecast.model import build_model

    model_dir, meta, _, weights = read_export(from_model, load_config)
    cfg = meta["config"]
    model = build_model(cfg["window"], cfg["horizon"], cfg["mode"], cfg["cell"], cfg["units"])
    assign_weights(model.weights, weights, model_dir)
    return export_forecast(model, meta["scale"], cfg, app_dir, version, summary=meta.get("summary"))
