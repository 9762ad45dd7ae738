"""The Char-RNN: embedding, stacked recurrent layers from rnn_apps.cells, softmax over characters."""

from __future__ import annotations

import keras

from rnn_apps.cells import get_cell
from rnn_apps.layers import ProjectedRNN


@keras.saving.register_keras_serializable(package="rnn_apps")
class TiedLogits(keras.layers.Layer):
    """Logits from the embedding matrix (Press & Wolf, 2017): ``logits = (h P) Eᵀ + b``.

    ``P`` projects the recurrent state to the embedding size when they differ. Tying halves the
    character-sized parameters and usually lowers the perplexity of a small corpus.

    Args:
        embedding: The ``keras.layers.Embedding`` whose matrix is reused.
    """

    def __init__(self, embedding_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = int(embedding_dim)
        self.embedding = None

    def tie(self, embedding: keras.layers.Embedding):
        self.embedding = embedding

    def build(self, input_shape):
        units = int(input_shape[-1])
        self.projection = (
            self.add_weight(name="projection", shape=(units, self.embedding_dim), initializer="glorot_uniform")
            if units != self.embedding_dim
            else None
        )
        self.bias = None
        self.built = True

    def call(self, h):
        if self.projection is not None:
            h = keras.ops.matmul(h, self.projection)
        # A plain matmul with the transposed matrix: an einsum ("...d,vd->...v") would avoid the transpose,
        # but TensorFlow's einsum gradient then materialises a (batch, time, vocab, dim) tensor.
        return keras.ops.matmul(h, keras.ops.transpose(self.embedding.embeddings))

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim}


def build_char_rnn(
    vocab_size: int,
    embedding_dim: int = 256,
    units: int = 512,
    num_layers: int = 2,
    cell: str = "lstm",
    dropout: float = 0.1,
    name: str = "char_rnn",
) -> keras.Model:
    """Build the Char-RNN as a functional model: ids (batch, time) -> logits (batch, time, vocab).

    Layers are named ``embedding``, ``rnn_1`` .. ``rnn_N``, ``dropout_i``, ``logits`` so that generation
    can run the cells one step at a time with the same weights.

    Args:
        vocab_size: Number of tokens, specials included.
        embedding_dim: Size of the character embedding.
        units: Units of each recurrent layer.
        num_layers: Number of stacked recurrent layers.
        cell: A name from ``rnn_apps.cells.CELLS`` ("lstm", "gru", ...).
        dropout: Dropout between layers (and on the embedding) during training.
    """
    for arg, v in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim), ("units", units), ("num_layers", num_layers)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"`{arg}` must be a positive integer; received {v!r}.")
    cell_cls = get_cell(cell)
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    emb_layer = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
    x = emb_layer(ids)
    x = keras.layers.Dropout(dropout, name="dropout_0")(x)
    for i in range(1, num_layers + 1):
        # keras.layers.RNN with the inputs of all steps projected in one product (same weights and numbers);
        # measured faster for this model's training step in benchmarks/train.py
        x = ProjectedRNN(cell_cls(units), return_sequences=True, name=f"rnn_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    head = TiedLogits(embedding_dim, name="logits")
    head.tie(emb_layer)
    logits = head(x)
    model = keras.Model(ids, logits, name=name)
    model.char_rnn_config = {
        "vocab_size": vocab_size,
        "embedding_dim": embedding_dim,
        "units": units,
        "num_layers": num_layers,
        "cell": cell,
        "dropout": dropout,
    }
    return model
