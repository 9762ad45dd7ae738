"""Fully connected (Elman) recurrent cell written from the equation."""

from __future__ import annotations

import keras
from keras import ops

from rnn_apps.cells.base import BaseCell, check_step_input


@keras.saving.register_keras_serializable(package="rnn_apps")
class SimpleRNNCell(BaseCell):
    r"""Simple recurrent cell (Elman, 1990, "Finding structure in time").

    For input x_t and previous state s_{t-1}::

        s_t = f(x_t U + s_{t-1} W + b)

    f is ``activation`` (tanh by default); the output is the state, h_t = s_t. The weights use the
    layout of ``keras.layers.SimpleRNN`` so they can be copied either way: ``kernel`` U
    (input_dim, units), ``recurrent_kernel`` W (units, units), ``bias`` b (units,).

    The cell has no gates, so it takes no ``recurrent_activation``.

    Args:
        units: Positive int, size of the state.
        activation: Activation f (default tanh; None means linear).
        use_bias: Whether to add b.
        kernel_*, recurrent_*, bias_* ``initializer``, ``regularizer``, ``constraint``: as in Keras's cells.
        dropout: Fraction of the inputs dropped (one mask per sequence).
        recurrent_dropout: Fraction of s_{t-1} dropped before the product with W (one mask per sequence).
        seed: Seed for the dropout masks.

    Call arguments: ``inputs``, the (batch, input_dim) tensor of one time step; ``states``, the list
    ``[s_{t-1}]`` of one (batch, units) tensor (a bare tensor is accepted too); ``training``, whether dropout
    is applied.

    Returns:
        ``(s_t, [s_t])``, or ``(s_t, s_t)`` when ``states`` was a bare tensor (as Keras's cell).
    """

    def __init__(self, units, activation="tanh", **kwargs):
        if "recurrent_activation" in kwargs:
            raise ValueError(
                "SimpleRNNCell has no gates and takes no `recurrent_activation`; "
                f"received recurrent_activation={kwargs['recurrent_activation']!r}."
            )
        super().__init__(units, activation=activation, **kwargs)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        input_dim = check_step_input(type(self).__name__, input_shape)
        u = self.units
        self.kernel = self._weight("kernel", (input_dim, u), "kernel")
        self.recurrent_kernel = self._weight("recurrent_kernel", (u, u), "recurrent")
        self.bias = self._weight("bias", (u,), "bias") if self.use_bias else None
        self.built = True

    def call(self, inputs, states, training=False):
        nested = isinstance(states, (list, tuple))
        s_tm1 = states[0] if nested else states
        inputs, s_tm1 = self._drop_inputs(inputs, s_tm1, training)
        z = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            z = ops.add(z, self.bias)  # a BiasAdd, fused into the MatMul by TensorFlow (see LSTMCell)
        z = z + ops.matmul(s_tm1, self.recurrent_kernel)
        s = self.activation(z)
        return s, ([s] if nested else s)

    def get_config(self):
        config = super().get_config()
        config.pop("recurrent_activation", None)
        return config
