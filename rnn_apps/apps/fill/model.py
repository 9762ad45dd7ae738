"""The fill-in-the-blank networks: a bidirectional Char-RNN whose prediction at t never sees x_t.

Bidirectional (``build_fill_model``)::

    e_t = Embedding(x_t)
    [→h_t ; ←h_t] = DeepBidirectionalRNN(lstm, num_layers=1)(e)     (rnn_apps.layers)
    c_t = [→h_{t-1} ; ←h_{t+1}]                                       (ShiftContext: left and right context)
    p(x_t | x_{≠t}) = softmax(P c_t · Eᵀ)                             (logits tied to the embedding)

``→h_{t-1}`` has read x_0..x_{t-1} and ``←h_{t+1}`` x_{t+1}..x_T, so every position of a poem is
predicted at once in training and the character itself cannot leak into its own prediction. (With more
than one bidirectional layer the second layer would see x_t through the first layer's other direction, so
the model has exactly one.)

Forward-only baseline (``build_forward_model``): the same embedding, the same forward LSTM and the same
tied head, without the backward direction: ``c_t = →h_{t-1}``, i.e. p(x_t | x_<t).
"""

from __future__ import annotations

import keras

from rnn_apps.cells import get_cell
from rnn_apps.checks import check_positive_ints
from rnn_apps.layers import DeepBidirectionalRNN, ProjectedRNN, TiedLogits

KINDS = ("bidirectional", "forward")


@keras.saving.register_keras_serializable(package="rnn_apps")
class ShiftContext(keras.layers.Layer):
    """``[f_{t-1} ; b_{t+1}]`` from a forward sequence f and a backward sequence b (zeros past the ends).

    Called with one tensor (forward-only), returns ``f_{t-1}``.
    """

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            f, b = inputs
        else:
            f, b = inputs, None
        ops = keras.ops
        left = ops.pad(f[:, :-1], [[0, 0], [1, 0], [0, 0]])
        if b is None:
            return left
        right = ops.pad(b[:, 1:], [[0, 0], [0, 1], [0, 0]])
        return ops.concatenate([left, right], axis=-1)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            f, b = input_shape
            return (*f[:-1], f[-1] + b[-1])
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return None


def _embed(vocab_size, embedding_dim, units, dropout):
    """The checked inputs of both models: ``(ids, embedding layer, dropped-out embeddings)``."""
    check_positive_ints(vocab_size=vocab_size, embedding_dim=embedding_dim, units=units)
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    emb = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")
    return ids, emb, keras.layers.Dropout(dropout, name="dropout_in")(emb(ids))


def _tied_model(ids, emb, context, dropout, name, config):
    """``dropout_out`` and the ``logits`` tied to ``emb`` over the context vectors; ``config`` kept on the model."""
    c = keras.layers.Dropout(dropout, name="dropout_out")(context)
    head = TiedLogits(emb.output_dim, name="logits")
    head.tie(emb)
    model = keras.Model(ids, head(c), name=name)
    model.fill_config = config
    return model


def build_fill_model(vocab_size: int, embedding_dim: int = 128, units: int = 256, cell: str = "lstm",
                     dropout: float = 0.1, name: str = "fill_bidirectional") -> keras.Model:
    """ids (batch, time) -> logits (batch, time, vocab) of each position from both sides of it.

    Layers: ``embedding`` (mask_zero: padding id 0), ``dropout_in``, ``birnn`` (a one-layer
    :class:`~rnn_apps.layers.DeepBidirectionalRNN`; its "concat" output is split back into the forward and
    the backward halves), ``context`` (the shift), ``dropout_out``, ``logits``.
    """
    ids, emb, x = _embed(vocab_size, embedding_dim, units, dropout)
    # DeepBidirectionalRNN merges the two directions; "concat" keeps them apart as the two halves.
    h = DeepBidirectionalRNN(cell, units=units, num_layers=1, merge_mode="concat", name="birnn")(x)
    f, b = h[..., :units], h[..., units:]
    return _tied_model(ids, emb, ShiftContext(name="context")([f, b]), dropout, name,
                       {"kind": "bidirectional", "vocab_size": vocab_size, "embedding_dim": embedding_dim,
                        "units": units, "cell": cell, "dropout": dropout})


def build_forward_model(vocab_size: int, embedding_dim: int = 128, units: int = 256, cell: str = "lstm",
                        dropout: float = 0.1, name: str = "fill_forward") -> keras.Model:
    """The forward-only baseline: ids -> logits of each position from the characters before it only."""
    ids, emb, x = _embed(vocab_size, embedding_dim, units, dropout)
    f = ProjectedRNN(get_cell(cell)(units), return_sequences=True, name="rnn")(x)
    return _tied_model(ids, emb, ShiftContext(name="context")(f), dropout, name,
                       {"kind": "forward", "vocab_size": vocab_size, "embedding_dim": embedding_dim,
                        "units": units, "cell": cell, "dropout": dropout})


def build(kind: str, vocab_size: int, embedding_dim: int, units: int, cell: str = "lstm", dropout: float = 0.1):
    if kind == "bidirectional":
        return build_fill_model(vocab_size, embedding_dim, units, cell, dropout)
    if kind == "forward":
        return build_forward_model(vocab_size, embedding_dim, units, cell, dropout)
    raise ValueError(f"kind must be one of {KINDS}; received {kind!r}.")
