"""A 2-D convolution whose training steps may take bfloat16 operands."""

from __future__ import annotations

import keras
from keras import ops

from rnn_apps import precision


@keras.saving.register_keras_serializable(package="rnn_apps")
class Conv2D(keras.layers.Conv2D):
    r"""``keras.layers.Conv2D`` whose convolution may take bfloat16 operands in training steps.

    A convolution is a matrix product of image patches and the kernel,
    ``y[b, i, j, :] = Σ_{u, v, c} x[b, i + u, j + v, c] K[u, v, c, :] (+ bias)``. With
    ``training_precision = "bfloat16"`` (set by :func:`rnn_apps.precision.set_training_precision`, as the
    training commands' ``--precision`` decides), a training step on TensorFlow computes it as

        y = float32( conv(bf16(x), bf16(K)) ),

    oneDNN's bfloat16 kernel accumulating in float32; the bias, the activation and everything after stay
    float32, and so do the weights and the optimizer's state. Inference, evaluation and exports run Keras's
    float32 ``Conv2D`` graph. The weights and configuration are ``keras.layers.Conv2D``'s, and so is the class
    name, by which Keras's weights files address a model's layers: a ``.weights.h5`` file saved with either
    class loads into a model built with the other.
    """

    training_precision = "float32"  # a training run's setting, not the model's: not in get_config

    def call(self, inputs, training=None):
        dtype = precision.training_products(self, training)
        if dtype == "float32" or self.data_format != "channels_last":
            return super().call(inputs)
        outputs = ops.cast(self.convolution_op(ops.cast(inputs, dtype), ops.cast(self.kernel, dtype)), inputs.dtype)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)  # (filters,) broadcasts over channels-last outputs
        return outputs if self.activation is None else self.activation(outputs)
