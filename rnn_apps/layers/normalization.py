"""Batch normalization whose training step runs as one fused kernel on TensorFlow."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="rnn_apps")
class BatchNormalization(keras.layers.BatchNormalization):
    r"""``keras.layers.BatchNormalization`` (Ioffe & Szegedy, 2015, "Batch Normalization: Accelerating Deep
    Network Training by Reducing Internal Covariate Shift") with a fused training step.

    In a training step each channel c of an image batch x (batch, H, W, C) is normalised with the moments of
    the batch,

        μ_c = mean(x[..., c]),   σ²_c = mean((x[..., c] - μ_c)²),
        y[..., c] = γ_c (x[..., c] - μ_c) / sqrt(σ²_c + ε) + β_c,

    and the moving averages move towards them, ``moving = momentum · moving + (1 - momentum) · batch``, with
    the biased variance σ²_c as Keras keeps it. Keras 3 writes this as about a dozen reductions and
    element-wise operations, each a pass over the activations, and autodiff doubles them; on TensorFlow, for
    4-D channels-last float32 inputs, this layer computes it with TensorFlow's ``FusedBatchNormV3`` (oneDNN's
    kernel on CPUs): one pass forwards and one backwards, as ``tf.keras``'s ``BatchNormalization(fused=True)``
    computes it. The captioning CNN's training step measured 1.4x as fast with it (docs/cells.md).

    The weights (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``), the configuration, inference and
    every other case (other backends, ranks, dtypes and axes, masks, batch renormalization, synchronized
    statistics) are Keras's. The class keeps Keras's name because Keras's weights files address a model's
    layers by their class names: a ``.weights.h5`` file saved with ``keras.layers.BatchNormalization`` loads
    into a model built with this layer, and the other way round.
    """

    def _fused(self, inputs, training, mask) -> bool:
        rank = len(inputs.shape)
        return (bool(training) and self.trainable and mask is None and not self.renorm
                and not self.synchronized and keras.backend.backend() == "tensorflow"
                and self.variable_dtype == "float32"  # the kernel's scale, offset and moments are float32
                and rank == 4 and self.axis in (-1, rank - 1))

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # as Keras computes batch statistics: in float32 whatever the input
        channels = x.shape[-1]
        gamma = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones([channels])
        beta = tf.convert_to_tensor(self.beta) if self.center else tf.zeros([channels])
        y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
            epsilon=self.epsilon, data_format="NHWC", is_training=True)
        # The kernel hands back the unbiased variance, n / (n - 1) σ², for the moving average; Keras averages σ².
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)
