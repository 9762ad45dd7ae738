"""The recurrent forecaster: a cell from :mod:`rnn_apps.cells` over the normalised history, then a linear read-out.

Two ways to forecast ``horizon`` steps (``mode``):

* ``direct`` (N-to-N, multi-horizon): the read-out gives all ``horizon`` values at once.
* ``recursive`` (N-to-1, iterated): the read-out gives the next value; it is appended to the history, which
  slides by one step, ``horizon`` times.

The model maps a normalised history ``[batch, window, 1]`` to normalised values ``[batch, horizon]`` (direct)
or ``[batch, 1]`` (recursive); :class:`Forecaster` adds the normalisation of
:class:`rnn_apps.apps.forecast.data.Normalizer` and the recursion, in NumPy.
"""

from __future__ import annotations

import numpy as np

MODES = ("direct", "recursive")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"Unknown forecasting mode {mode!r}; expected one of {', '.join(MODES)}.")
    return mode


def build_model(window: int, horizon: int, mode: str = "direct", cell: str = "lstm", units: int = 32):
    """Build the (uncompiled) Keras model.

    Args:
        window: History length the model is trained on (the input accepts any length).
        horizon: Steps forecast by the ``direct`` read-out (ignored by ``recursive``, which reads out one).
        mode: ``direct`` or ``recursive``.
        cell: A name of :data:`rnn_apps.cells.CELLS` (``lstm``, ``gru``, ...).
        units: Units of the recurrent cell.

    Returns:
        A ``keras.Model`` from ``[batch, time, 1]`` to ``[batch, horizon]`` or ``[batch, 1]``.
    """
    import keras

    from rnn_apps.cells import get_cell
    from rnn_apps.layers import ProjectedRNN

    check_mode(mode)
    for name, v in (("window", window), ("horizon", horizon), ("units", units)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer; received {v!r}.")
    cell_cls = get_cell(cell)
    inputs = keras.Input((None, 1), name="history")
    h = ProjectedRNN(cell_cls(int(units)), name="rnn")(inputs)
    outputs = keras.layers.Dense(int(horizon) if mode == "direct" else 1, name="readout")(h)
    return keras.Model(inputs, outputs, name=f"forecast_{mode}_{cell}")


class Forecaster:
    """A trained model with its normalisation: histories in the series' units in, forecasts out.

    Args:
        model: From :func:`build_model`.
        normalizer: The :class:`~rnn_apps.apps.forecast.data.Normalizer` of the training part.
        window: History length the model reads (the last ``window`` values of each history).
        horizon: Steps to forecast.
        mode: ``direct`` or ``recursive``.
    """

    def __init__(self, model, normalizer, window: int, horizon: int, mode: str):
        self.model, self.normalizer = model, normalizer
        self.window, self.horizon, self.mode = int(window), int(horizon), check_mode(mode)
        self._call = None

    def _model_call(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if self._call is None:
            model = self.model
            self._call = tf.function(lambda t: model(t, training=False),
                                     input_signature=[tf.TensorSpec([None, None, 1], tf.float32)])
        return np.asarray(self._call(tf.constant(x[..., None], tf.float32)), np.float64)

    def predict(self, histories) -> np.ndarray:
        """Forecast ``[batch, horizon]`` from histories ``[batch, T]`` (``T >= window``; the last ``window`` are read)."""
        h = np.asarray(histories, np.float64)
        if h.ndim == 1:
            h = h[None, :]
        if h.ndim != 2 or h.shape[1] < self.window:
            raise ValueError(f"histories must be [batch, T] with T >= {self.window}; received shape {h.shape}.")
        h = h[:, -self.window:]
        if self.mode == "direct":
            return self.normalizer.decode(h, self._model_call(self.normalizer.encode(h).astype(np.float32)))
        out = np.empty((h.shape[0], self.horizon))
        for k in range(self.horizon):
            step = self.normalizer.decode(h, self._model_call(self.normalizer.encode(h).astype(np.float32)))[:, 0]
            out[:, k] = step
            h = np.concatenate([h[:, 1:], step[:, None]], axis=1)
        return out
