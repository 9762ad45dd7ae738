"""Global attention over a sequence of encoder states (Bahdanau et al., 2015; Luong et al., 2015)."""

from __future__ import annotations

import keras
from keras import ops

from rnn_apps.checks import check_units

SCORES = ("additive", "general", "dot")
ALIASES = {"bahdanau": "additive", "luong": "general"}
MASKED_SCORE = -1e9


@keras.saving.register_keras_serializable(package="rnn_apps")
class GlobalAttention(keras.layers.Layer):
    r"""Attention of decoder queries over encoder states: alignment weights and a context vector.

    For a query q_t (a decoder state) and encoder states h̄_1 .. h̄_S (the *values*), each step t gets
    scores, alignment weights and a context vector::

        e_{t,s} = score(q_t, h̄_s)
        α_{t,s} = exp(e_{t,s}) / Σ_{s'} exp(e_{t,s'})       (softmax over the valid source steps)
        c_t     = Σ_s α_{t,s} h̄_s

    with one of three scores:

    * ``"additive"`` (Bahdanau et al., 2015, *Neural machine translation by jointly learning to align and
      translate*, eq. 6; Luong's "concat"): ``e_{t,s} = vᵀ tanh(W_q q_t + W_k h̄_s + b)``, with
      ``W_q`` (query_dim, units), ``W_k`` (value_dim, units), ``b`` and ``v`` (units,);
    * ``"general"`` (Luong et al., 2015, *Effective approaches to attention-based neural machine
      translation*, eq. 8): ``e_{t,s} = q_tᵀ W_a h̄_s`` with ``W_a`` (query_dim, value_dim);
    * ``"dot"`` (Luong et al., 2015): ``e_{t,s} = q_tᵀ h̄_s`` (query and value sizes must match).

    The parts that depend only on the values (``W_k h̄_s`` for additive, ``W_aᵀ h̄_s`` for general) are the
    *keys*; :meth:`compute_keys` computes them once per source sentence, so a decoder that queries one step
    at a time passes them back with ``keys=`` instead of recomputing them at every step. Source steps where
    ``value_mask`` is False get the score -1e9 (weight 0); a row without any valid step gets uniform
    weights rather than NaN.

    Args:
        score: ``"additive"`` (alias ``"bahdanau"``), ``"general"`` (alias ``"luong"``) or ``"dot"``.
        units: Size of the additive score's hidden layer (required for ``"additive"``, unused otherwise).

    Call arguments:
        query: (batch, time, query_dim) for every decoder step, or (batch, query_dim) for one step.
        value: (batch, source_time, value_dim) encoder states.
        value_mask: Optional (batch, source_time) boolean, True at valid source steps.
        keys: Optional result of :meth:`compute_keys` for ``value`` (computed when omitted).

    Returns:
        ``[context, weights]``: context (batch, time, value_dim) and weights (batch, time, source_time),
        or (batch, value_dim) and (batch, source_time) for a rank-2 query.
    """

    def __init__(self, score: str = "general", units: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(score, str) or ALIASES.get(score.lower(), score.lower()) not in SCORES:
            raise ValueError(
                f"`score` must be one of {SCORES} (or the aliases {sorted(ALIASES)}); received {score!r}."
            )
        self.score = ALIASES.get(score.lower(), score.lower())
        if self.score == "additive":
            if units is None:
                raise ValueError("`units` is required for the additive (Bahdanau) score; received None.")
            self.units = check_units(units)
        else:
            self.units = None if units is None else check_units(units)

    def build(self, query_shape, value_shape):
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        if len(query_shape) not in (2, 3):
            raise ValueError(
                f"GlobalAttention expects a query of rank 3 (batch, time, features) or 2 (batch, features); "
                f"received shape {query_shape}."
            )
        if len(value_shape) != 3:
            raise ValueError(
                f"GlobalAttention expects values of rank 3 (batch, source_time, features); received shape {value_shape}."
            )
        dq, dv = query_shape[-1], value_shape[-1]
        if dq is None or dv is None:
            raise ValueError(f"GlobalAttention needs known feature sizes; received query {query_shape}, value {value_shape}.")
        dq, dv = int(dq), int(dv)
        if self.score == "dot" and dq != dv:
            raise ValueError(f"The dot score needs query and value of the same size; received {dq} and {dv}.")
        if self.score == "additive":
            self.query_kernel = self.add_weight(name="query_kernel", shape=(dq, self.units), initializer="glorot_uniform")
            self.key_kernel = self.add_weight(name="key_kernel", shape=(dv, self.units), initializer="glorot_uniform")
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
            self.score_vector = self.add_weight(name="score_vector", shape=(self.units,), initializer="glorot_uniform")
        elif self.score == "general":
            self.kernel = self.add_weight(name="kernel", shape=(dq, dv), initializer="glorot_uniform")
        self.built = True

    def compute_keys(self, value):
        """The value-only part of the score, computed once per source: (batch, source_time, key_dim)."""
        if self.score == "additive":
            return ops.add(ops.matmul(value, self.key_kernel), self.bias)
        if self.score == "general":
            return ops.matmul(value, ops.transpose(self.kernel))  # W_a h̄_s  as rows: h̄_s W_aᵀ
        return value

    def call(self, query, value, value_mask=None, keys=None):
        single = len(query.shape) == 2
        q = ops.expand_dims(query, 1) if single else query  # (B, T, dq)
        k = self.compute_keys(value) if keys is None else keys  # (B, S, dk)
        if self.score == "additive":
            qp = ops.matmul(q, self.query_kernel)  # (B, T, units)
            hidden = ops.tanh(ops.expand_dims(qp, 2) + ops.expand_dims(k, 1))  # (B, T, S, units)
            scores = ops.sum(hidden * self.score_vector, axis=-1)  # (B, T, S)
        else:
            scores = ops.matmul(q, ops.transpose(k, (0, 2, 1)))  # (B, T, S)
        if value_mask is not None:
            valid = ops.expand_dims(ops.cast(value_mask, "bool"), 1)
            scores = ops.where(valid, scores, ops.cast(MASKED_SCORE, scores.dtype))
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, value)  # (B, T, dv)
        if single:
            return [ops.squeeze(context, 1), ops.squeeze(weights, 1)]
        return [context, weights]

    def compute_output_shape(self, query_shape, value_shape):
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        if len(query_shape) == 2:
            return [(query_shape[0], value_shape[-1]), (query_shape[0], value_shape[1])]
        return [(query_shape[0], query_shape[1], value_shape[-1]), (query_shape[0], query_shape[1], value_shape[1])]

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}
