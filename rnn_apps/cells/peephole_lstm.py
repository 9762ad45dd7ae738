"""LSTM cell with peephole connections from the cell state to the gates."""

from __future__ import annotations

import keras
from keras import initializers

from rnn_apps.cells.lstm import LSTMCell


@keras.saving.register_keras_serializable(package="rnn_apps")
class PeepholeLSTMCell(LSTMCell):
    r"""LSTM cell with peepholes (Gers & Schmidhuber, 2000, "Recurrent nets that time and count").

    The input and forget gates look at the previous cell state c_{t-1}, the output gate at the new
    cell state c_t, through diagonal (element-wise) weights p_i, p_f, p_o::

        i_t  = σ(x_t W_i + h_{t-1} U_i + p_i * c_{t-1} + b_i)
        f_t  = σ(x_t W_f + h_{t-1} U_f + p_f * c_{t-1} + b_f)
        c~_t = tanh(x_t W_c + h_{t-1} U_c + b_c)
        c_t  = f_t * c_{t-1} + i_t * c~_t
        o_t  = σ(x_t W_o + h_{t-1} U_o + p_o * c_t + b_o)
        h_t  = o_t * tanh(c_t)

    Weights: those of :class:`LSTMCell` (``kernel`` (input_dim, 4·units), ``recurrent_kernel``
    (units, 4·units), ``bias`` (4·units), gate columns i | f | c | o, the layout of
    ``keras.layers.LSTM``) plus ``input_peephole`` p_i, ``forget_peephole`` p_f and
    ``output_peephole`` p_o, each (units,). With the default zero ``peephole_initializer`` a new
    cell computes exactly what :class:`LSTMCell` computes with the same other weights.

    Args:
        units: Positive int, size of h and c.
        peephole_initializer: Initializer of the three peephole vectors (default zeros).
        **kwargs: The arguments of :class:`LSTMCell` (activations, initializers, regularizers,
            constraints, ``unit_forget_bias``, dropout, seed).

    Call arguments and returns: those of :class:`LSTMCell` (states ``[h, c]``; ``(h_t, [h_t, c_t])``).
    """

    def __init__(self, units, peephole_initializer="zeros", **kwargs):
        super().__init__(units, **kwargs)
        self.peephole_initializer = initializers.get(peephole_initializer)

    def build(self, input_shape):
        super().build(input_shape)
        u = self.units
        self.input_peephole = self.add_weight(name="input_peephole", shape=(u,), initializer=self.peephole_initializer)
        self.forget_peephole = self.add_weight(
            name="forget_peephole", shape=(u,), initializer=self.peephole_initializer
        )
        self.output_peephole = self.add_weight(
            name="output_peephole", shape=(u,), initializer=self.peephole_initializer
        )
        self.built = True

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        z_i, z_f, z_c, z_o = self._gates(inputs, h_tm1, training)
        i = self.recurrent_activation(z_i + self.input_peephole * c_tm1)
        f = self.recurrent_activation(z_f + self.forget_peephole * c_tm1)
        c = f * c_tm1 + i * self.activation(z_c)
        o = self.recurrent_activation(z_o + self.output_peephole * c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "peephole_initializer": initializers.serialize(self.peephole_initializer)}
