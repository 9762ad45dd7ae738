"""The Char-RNN: embedding, stacked recurrent layers from rnn_apps.cells, softmax over characters."""

from __future__ import annotations

import keras

from rnn_apps.cells import get_cell
from rnn_apps.checks import check_positive_ints
from rnn_apps.layers import ProjectedRNN, TiedLogits


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
    check_positive_ints(vocab_size=vocab_size, embedding_dim=embedding_dim, units=units, num_layers=num_layers)
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
