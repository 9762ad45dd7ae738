r"""The token cross-entropy of the apps that predict tokens (poems, fill-in-the-blank, translation, captions).

For logits :math:`z \in \mathbb{R}^{V}` of one position and its target :math:`y`,

.. math::  \ell(z, y) = \log \sum_{v=1}^{V} e^{z_v} - z_y,

the negative log-likelihood of :math:`y` under :math:`\mathrm{softmax}(z)`, with gradient
:math:`\mathrm{softmax}(z) - \mathrm{onehot}(y)`.

On TensorFlow it runs as one XLA-compiled kernel. Over a large vocabulary it costs as much as the output
layer's matrix product: at 8,192 positions and 6,462 characters, TensorFlow's fused
``SparseSoftmaxCrossEntropyWithLogits`` kernel and its gradient took about 120 ms more than the same
computation compiled by XLA, which fuses the softmax's passes over the
(positions × vocabulary) logits (``benchmarks/train.py`` has the effect on each app's step). The values
equal Keras's ``sparse_categorical_crossentropy`` to float32 rounding.
"""

from __future__ import annotations

import functools

import keras


@functools.lru_cache(maxsize=None)
def _compiled_cross_entropy():
    """The XLA-compiled kernel, built on first use (TensorFlow is imported only then)."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def cross_entropy(labels, logits):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    return cross_entropy


def sparse_cross_entropy(y_true, logits):
    """Per-position cross-entropy (nats) of integer targets ``y_true`` (shape ``S``, or ``S + (1,)``) under
    ``logits`` (shape ``S + (V,)``), as ``keras.losses.sparse_categorical_crossentropy(..., from_logits=True)``.

    Targets must lie in ``[0, V)``: for others the XLA kernel gives NaN where TensorFlow's own kernel raises
    (the apps' targets are ids of their own vocabularies).
    """
    ops = keras.ops
    if keras.backend.backend() != "tensorflow":
        return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(logits.shape):  # (..., 1) targets, as Keras accepts
        y_true = ops.squeeze(y_true, axis=-1)
    return _compiled_cross_entropy()(ops.cast(y_true, "int32"), logits)


@keras.saving.register_keras_serializable(package="rnn_apps")
class SparseCrossEntropy(keras.losses.SparseCategoricalCrossentropy):
    """``keras.losses.SparseCategoricalCrossentropy(from_logits=True)`` computed by :func:`sparse_cross_entropy`.

    Masks, sample weights and reductions are Keras's. Args: as the Keras loss; ``from_logits`` must stay
    True and ``ignore_class`` None (use sample weights to leave positions out).
    """

    def __init__(self, from_logits=True, ignore_class=None, **kwargs):
        if from_logits is not True or ignore_class is not None:
            raise ValueError(f"SparseCrossEntropy takes logits and no ignore_class; received from_logits="
                             f"{from_logits!r}, ignore_class={ignore_class!r}.")
        super().__init__(from_logits=True, **kwargs)

    def call(self, y_true, y_pred):
        return sparse_cross_entropy(y_true, y_pred)
