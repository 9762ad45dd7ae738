r"""The sequence-to-sequence translator: a bidirectional recurrent encoder and an attentional decoder.

The N-to-M architecture (Sutskever et al., 2014; Cho et al., 2014): the encoder reads the source
sentence x_1 .. x_S, the decoder writes the target y_1 .. y_T one token at a time::

    h̄_s = [→h_s ; ←h_s]                          bidirectional encoder (rnn_apps cells), s = 1 .. S
    s_0 = tanh(W_b [→h_S ; ←h_1])                  decoder start state (one bridge per cell state)
    s_t = cell(E_y[y_{t-1}], s_{t-1})              decoder, teacher-forced in training
    c_t = Σ_s α_{t,s} h̄_s,  α_t = softmax_s score(s_t, h̄_s)      attention (Luong et al., 2015)
    h̃_t = tanh(W_c [c_t ; s_t])                   attentional vector (Luong's eq. 5)
    p(y_t | y_<t, x) = softmax(W_o dropout(h̃_t) + b_o)

``attention="none"`` is the plain encoder-decoder: every step gets the same context vector
c = [→h_S ; ←h_1], the encoder's summary of the whole sentence, in place of c_t (the "bottleneck" that
attention removes). ``"luong"`` scores with ``s_tᵀ W_a h̄_s`` and ``"bahdanau"`` with the additive
``vᵀ tanh(W_q s_t + W_k h̄_s)`` of Bahdanau et al. (2015), both on the current decoder state (Luong's
"global attention"; see :class:`rnn_apps.layers.GlobalAttention`). The attention is computed after the
recurrence, so training runs the decoder cell over the whole target in one recurrent layer and then
attends for all steps at once.
"""

from __future__ import annotations

import keras
from keras import ops

from rnn_apps import precision
from rnn_apps.cells import get_cell
from rnn_apps.checks import check_rate, check_units
from rnn_apps.layers import DeepBidirectionalRNN, GlobalAttention, ProjectedRNN

ATTENTIONS = ("luong", "bahdanau", "none")


@keras.saving.register_keras_serializable(package="rnn_apps")
class Seq2Seq(keras.Model):
    """Encoder-decoder translator with optional global attention (see the module docstring).

    Args:
        source_vocab_size: Source tokens, specials included (id 0 is padding).
        target_vocab_size: Target tokens, specials included.
        embedding_dim: Size of both embeddings.
        encoder_units: Units of each encoder cell (each direction).
        encoder_layers: Stacked bidirectional layers.
        decoder_units: Units of the decoder cell (and of the attentional vector).
        cell: A name from ``rnn_apps.cells.CELLS`` ("lstm", "gru", ...), for encoder and decoder.
        attention: ``"luong"``, ``"bahdanau"`` or ``"none"``.
        attention_units: Hidden size of the additive (Bahdanau) score.
        dropout: Dropout on the embeddings, between encoder layers, on the encoder states and before the logits.

    Call arguments:
        inputs: ``(source, target_in)``, int32 (batch, S) and (batch, T), padded with 0.

    Returns:
        Logits (batch, T, target_vocab_size).

    In training, ``training_precision = "bfloat16"`` (set by :func:`rnn_apps.precision.set_training_precision`)
    rounds the operands of the attentional layer's and the output layer's products to bfloat16
    (:mod:`rnn_apps.precision`; the encoder's and decoder's layers have their own setting); the default
    ``"float32"`` changes nothing.
    """

    training_precision = "float32"  # a training run's setting, not the model's: not in get_config

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        embedding_dim: int = 256,
        encoder_units: int = 256,
        encoder_layers: int = 1,
        decoder_units: int = 512,
        cell: str = "lstm",
        attention: str = "luong",
        attention_units: int = 256,
        dropout: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocab_size = check_units(source_vocab_size, "source_vocab_size")
        self.target_vocab_size = check_units(target_vocab_size, "target_vocab_size")
        self.embedding_dim = check_units(embedding_dim, "embedding_dim")
        self.encoder_units = check_units(encoder_units, "encoder_units")
        self.encoder_layers = check_units(encoder_layers, "encoder_layers")
        self.decoder_units = check_units(decoder_units, "decoder_units")
        self.attention_units = check_units(attention_units, "attention_units")
        self.dropout_rate = check_rate(dropout, "dropout")
        if attention not in ATTENTIONS:
            raise ValueError(f"`attention` must be one of {ATTENTIONS}; received {attention!r}.")
        self.attention_type = attention
        self.cell = cell
        cell_cls = get_cell(cell)

        self.source_embedding = keras.layers.Embedding(self.source_vocab_size, self.embedding_dim, name="source_embedding")
        self.target_embedding = keras.layers.Embedding(self.target_vocab_size, self.embedding_dim, name="target_embedding")
        self.encoder = DeepBidirectionalRNN(
            cell, self.encoder_units, self.encoder_layers, return_sequences=True, return_state=True,
            dropout=self.dropout_rate, name="encoder",
        )
        decoder_cell = cell_cls(self.decoder_units)
        sizes = decoder_cell.state_size if isinstance(decoder_cell.state_size, (list, tuple)) else [decoder_cell.state_size]
        self.num_states = len(sizes)
        self.bridges = [keras.layers.Dense(self.decoder_units, activation="tanh", name=f"bridge_{i}")
                        for i in range(self.num_states)]
        self.decoder = ProjectedRNN(decoder_cell, return_sequences=True, name="decoder")
        self.attention = (
            None if attention == "none"
            else GlobalAttention("general" if attention == "luong" else "additive", units=self.attention_units, name="attention")
        )
        self.attentional = keras.layers.Dense(self.decoder_units, activation="tanh", use_bias=False, name="attentional")
        self.logits = keras.layers.Dense(self.target_vocab_size, name="logits")
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")

    # ------------------------------------------------------------------------------------------ parts
    def encode(self, source, training=False):
        """Encoder states, their mask, the decoder's start states and the summary vector c.

        Returns:
            ``(memory (B, S, 2·encoder_units), mask (B, S) bool, [decoder start states], c (B, 2·encoder_units))``.
        """
        mask = ops.not_equal(source, 0)
        x = self.dropout(self.source_embedding(source), training=training)
        out = self.encoder(x, mask=mask, training=training)
        memory, finals = out[0], out[1:]
        n = self.num_states
        forward, backward = finals[:n], finals[n:]
        start = [bridge(ops.concatenate([f, b], axis=-1)) for bridge, f, b in zip(self.bridges, forward, backward)]
        summary = ops.concatenate([forward[0], backward[0]], axis=-1)
        memory = self.dropout(memory, training=training)
        return memory, mask, start, summary

    def attention_keys(self, memory):
        """The attention's keys for ``memory`` (None without attention)."""
        return None if self.attention is None else self.attention.compute_keys(memory)

    def output_head(self, h, memory, mask, summary, keys=None, training=False):
        """Logits from decoder states ``h`` ((B, T, units) or (B, units)); also the attention weights (or None)."""
        if self.attention is not None:
            context, weights = self.attention(h, memory, value_mask=mask, keys=keys)
        else:
            context = summary if len(h.shape) == 2 else ops.expand_dims(summary, 1) + ops.zeros_like(h[..., :1])
            weights = None
        products = precision.training_products(self, training)
        a = precision.dense(self.attentional, ops.concatenate([context, h], axis=-1), products)
        return precision.dense(self.logits, self.dropout(a, training=training), products), weights

    def decode_step(self, prev_ids, states, memory, mask, summary, keys=None):
        """One decoder step at inference: (logits (B, V), new states, attention weights (B, S) or None)."""
        y = ops.take(self.target_embedding.embeddings, prev_ids, axis=0)
        h, states = self.decoder.cell(y, list(states), training=False)
        logits, weights = self.output_head(h, memory, mask, summary, keys)
        return logits, states, weights

    # ------------------------------------------------------------------------------------------ Keras API
    def call(self, inputs, training=False):
        source, target_in = inputs
        memory, mask, start, summary = self.encode(source, training=training)
        y = self.dropout(self.target_embedding(target_in), training=training)
        h = self.decoder(y, initial_state=start, training=training)
        logits, _ = self.output_head(h, memory, mask, summary, training=training)
        return logits

    def build_weights(self):
        """Create every weight by calling the model on a tiny batch."""
        import numpy as np

        self((np.ones((1, 2), np.int32), np.ones((1, 2), np.int32)))
        return self

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            "embedding_dim": self.embedding_dim,
            "encoder_units": self.encoder_units,
            "encoder_layers": self.encoder_layers,
            "decoder_units": self.decoder_units,
            "cell": self.cell,
            "attention": self.attention_type,
            "attention_units": self.attention_units,
            "dropout": self.dropout_rate,
        }


ARCHITECTURE = ("embedding_dim", "encoder_units", "encoder_layers", "decoder_units", "cell", "attention",
                "attention_units", "dropout")


def build_model(source_vocab_size: int, target_vocab_size: int, cfg: dict) -> Seq2Seq:
    """A built :class:`Seq2Seq` with the architecture settings of ``cfg``."""
    return Seq2Seq(source_vocab_size, target_vocab_size, **{k: cfg[k] for k in ARCHITECTURE}, name="seq2seq").build_weights()
