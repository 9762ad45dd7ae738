"""Soft visual attention over a CNN feature grid (Show, Attend and Tell)."""

from __future__ import annotations

import keras
from keras import ops

from rnn_apps.checks import check_units


@keras.saving.register_keras_serializable(package="rnn_apps")
class VisualAttention(keras.layers.Layer):
    r"""Soft (deterministic) attention over image locations (Xu et al., 2015, "Show, Attend and Tell").

    For annotation vectors a_1 .. a_L (the cells of a CNN feature grid, each of size D) and the decoder's
    previous hidden state h_{t-1}, additive scores (Bahdanau et al., 2015) give one weight per location
    and the context is their weighted mean::

        e_{t,i} = vᵀ tanh(a_i W_a + h_{t-1} W_h + b)          score of location i
        α_{t,i} = exp(e_{t,i}) / Σ_k exp(e_{t,k})             attention weights, Σ_i α_{t,i} = 1
        β_t     = σ(h_{t-1} w_β + b_β)                          gate (only with ``gate=True``)
        z_t     = β_t Σ_i α_{t,i} a_i                           context vector

    Locations where ``mask`` is False get weight 0. ``a_i W_a + b`` does not depend on t: compute it once
    per image with :meth:`project_keys` and pass it as ``keys`` to every step.

    Weights: ``feature_kernel`` W_a (D, units), ``bias`` b (units), ``query_kernel`` W_h (Q, units),
    ``score_vector`` v (units,), and with the gate ``gate_kernel`` w_β (Q, 1), ``gate_bias`` b_β (1,)
    (initialised at 1, a gate mostly open at the start).

    Args:
        units: Positive int, size of the hidden layer of the scores.
        gate: Whether to scale the context by the gate β_t (Xu et al., section 4.2.1).
        kernel_initializer: Initializer of W_a, W_h, v and w_β.

    Call arguments:
        features: (batch, L, D) annotation vectors, or a (batch, H, W, D) grid (L = H·W).
        query: (batch, Q) decoder state h_{t-1}.
        keys: Optional (batch, L, units) result of :meth:`project_keys` on the same features.
        mask: Optional (batch, L) or (batch, H, W) boolean, True at locations that may be attended.

    Returns:
        ``(context, weights)``: context (batch, D); weights (batch, L), or (batch, H, W) for a grid.
    """

    def __init__(self, units, gate=False, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = check_units(units)
        if not isinstance(gate, bool):
            raise ValueError(f"`gate` must be True or False; received {gate!r}.")
        self.gate = gate
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True  # ``mask`` masks locations; the outputs carry no mask

    def compute_mask(self, *args, **kwargs):
        return None

    @staticmethod
    def _feature_dim(features_shape, what="features"):
        shape = tuple(features_shape)
        if len(shape) not in (3, 4):
            raise ValueError(
                f"VisualAttention expects {what} of rank 3 (batch, locations, channels) or 4 (batch, height, width, "
                f"channels); received shape {shape}."
            )
        if shape[-1] is None:
            raise ValueError(f"VisualAttention needs a known channel dimension; received {what} shape {shape}.")
        return int(shape[-1])

    def build(self, features_shape, query_shape):
        d = self._feature_dim(features_shape)
        q = tuple(query_shape)
        if len(q) != 2 or q[-1] is None:
            raise ValueError(f"VisualAttention expects a query of shape (batch, Q) with Q known; received {q}.")
        u = self.units
        self.feature_kernel = self.add_weight(name="feature_kernel", shape=(d, u), initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(u,), initializer="zeros")
        self.query_kernel = self.add_weight(name="query_kernel", shape=(int(q[-1]), u), initializer=self.kernel_initializer)
        self.score_vector = self.add_weight(name="score_vector", shape=(u, 1), initializer=self.kernel_initializer)
        if self.gate:
            self.gate_kernel = self.add_weight(name="gate_kernel", shape=(int(q[-1]), 1), initializer=self.kernel_initializer)
            self.gate_bias = self.add_weight(name="gate_bias", shape=(1,), initializer="ones")
        self.built = True

    @staticmethod
    def _flatten(x):
        if len(x.shape) == 4:
            return ops.reshape(x, (ops.shape(x)[0], -1, x.shape[-1])), (x.shape[1], x.shape[2])
        return x, None

    def project_keys(self, features):
        """a_i W_a + b for every location: (batch, L, units) (a grid is flattened)."""
        flat, _ = self._flatten(features)
        return ops.add(ops.matmul(flat, self.feature_kernel), self.bias)

    def call(self, features, query, keys=None, mask=None):
        flat, grid = self._flatten(features)
        if keys is None:
            keys = self.project_keys(flat)
        hidden = ops.tanh(keys + ops.expand_dims(ops.matmul(query, self.query_kernel), 1))  # (B, L, units)
        scores = ops.squeeze(ops.matmul(hidden, self.score_vector), -1)  # (B, L)
        if mask is not None:
            m = ops.reshape(ops.cast(mask, "bool"), ops.shape(scores))
            scores = ops.where(m, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)
        if mask is not None:
            weights = weights * ops.cast(m, weights.dtype)
        context = ops.squeeze(ops.matmul(ops.expand_dims(weights, 1), flat), 1)  # (B, D)
        if self.gate:
            context = context * ops.sigmoid(ops.add(ops.matmul(query, self.gate_kernel), self.gate_bias))
        if grid is not None:
            weights = ops.reshape(weights, (-1, grid[0], grid[1]))
        return context, weights

    def compute_output_shape(self, features_shape, query_shape):
        d = self._feature_dim(features_shape)
        batch = features_shape[0]
        return (batch, d), tuple(features_shape[:-1])

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "gate": self.gate,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
