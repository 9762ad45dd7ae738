"""The output layer tied to the input embedding, shared by the poem and the fill-in-the-blank models."""

from __future__ import annotations

import keras

from rnn_apps import precision


@keras.saving.register_keras_serializable(package="rnn_apps")
class TiedLogits(keras.layers.Layer):
    """Logits from the embedding matrix (Press & Wolf, 2017): ``logits = (h P) Eᵀ + b``.

    ``P`` projects the recurrent state to the embedding size when they differ. Tying halves the
    character-sized parameters and usually lowers the perplexity of a small corpus.

    In training, ``training_precision = "bfloat16"`` (set by :func:`rnn_apps.precision.set_training_precision`)
    rounds both products' operands to bfloat16 (:mod:`rnn_apps.precision`); the default ``"float32"``
    changes nothing.

    Args:
        embedding_dim: Size of the embedding (``P``'s output).
    """

    training_precision = "float32"  # a training run's setting, not the model's: not in get_config

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

    def call(self, h, training=None):
        products = precision.training_products(self, training)
        if self.projection is not None:
            h = precision.matmul(h, self.projection, products)
        # A plain matmul with the transposed matrix: an einsum ("...d,vd->...v") would avoid the transpose,
        # but TensorFlow's einsum gradient then materialises a (batch, time, vocab, dim) tensor.
        return precision.matmul(h, self.embedding.embeddings, products, transpose_b=True)

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim}
