"""LSTM cell with coupled input and forget gates (CIFG)."""

from __future__ import annotations

import keras
from keras import initializers, ops

from rnn_apps.cells._base import BaseCell, check_step_input


@keras.saving.register_keras_serializable(package="rnn_apps")
class CoupledLSTMCell(BaseCell):
    r"""Coupled input-forget gate LSTM, "CIFG" (Greff et al., 2017, "LSTM: A Search Space Odyssey").

    One gate decides both what is forgotten and what is written: the input gate is 1 - f_t::

        f_t  = σ(x_t W_f + h_{t-1} U_f + b_f)          forget gate
        i_t  = 1 - f_t                                 coupled input gate
        c~_t = tanh(x_t W_c + h_{t-1} U_c + b_c)       candidate cell state
        o_t  = σ(x_t W_o + h_{t-1} U_o + b_o)          output gate
        c_t  = f_t * c_{t-1} + (1 - f_t) * c~_t
        h_t  = o_t * tanh(c_t)

    σ is ``recurrent_activation`` and tanh is ``activation``. Greff et al. couple the gates of a
    peephole LSTM; this cell has no peepholes (see :class:`PeepholeLSTMCell` for those), i.e. it is
    :class:`LSTMCell` with its input gate replaced by 1 - f_t, and has a quarter fewer weights.

    Weight layout (the LSTM layout without the input-gate block): ``kernel`` (input_dim, 3·units),
    ``recurrent_kernel`` (units, 3·units), ``bias`` (3·units,), gate columns in the order
    f | c | o; states are ``[h, c]``.

    Args:
        units: Positive int, size of h and c.
        activation: Activation for the candidate and the output (default tanh).
        recurrent_activation: Activation of the gates (default sigmoid).
        use_bias: Whether the gates have a bias.
        unit_forget_bias: If True, add 1 to the forget-gate bias at initialization
            (Jozefowicz et al., 2015) and use zeros for the rest of the bias.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Regularizers.
        kernel_constraint, recurrent_constraint, bias_constraint: Constraints.
        dropout: Fraction of the inputs dropped (one mask per sequence).
        recurrent_dropout: Fraction of h_{t-1} dropped (one mask per sequence).
        seed: Seed for the dropout masks.

    Call arguments:
        inputs: (batch, input_dim) tensor for one time step.
        states: list ``[h_{t-1}, c_{t-1}]``, each (batch, units).
        training: Whether dropout is applied.

    Returns:
        ``(h_t, [h_t, c_t])``.
    """

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        input_dim = check_step_input(type(self).__name__, input_shape)
        u = self.units
        self.kernel = self._weight("kernel", (input_dim, 3 * u), "kernel")
        self.recurrent_kernel = self._weight("recurrent_kernel", (u, 3 * u), "recurrent")
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(3 * u,),
                initializer=self._bias_init(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.built = True

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        u, base = self.units, self.bias_initializer

        def init(shape, dtype=None):
            return ops.concatenate([initializers.get("ones")((u,), dtype=dtype), base((2 * u,), dtype=dtype)])

        return init

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        inputs, h_tm1 = self._drop_inputs(inputs, h_tm1, training)
        z = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            z = ops.add(z, self.bias)  # a BiasAdd, fused into the MatMul by TensorFlow (see LSTMCell)
        z = z + ops.matmul(h_tm1, self.recurrent_kernel)
        z_f, z_c, z_o = ops.split(z, 3, axis=-1)
        f = self.recurrent_activation(z_f)
        c_hat = self.activation(z_c)
        c = c_hat + f * (c_tm1 - c_hat)  # = f * c_{t-1} + (1 - f) * c~_t
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}
