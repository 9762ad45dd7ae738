"""LSTM cell with coupled input and forget gates (CIFG)."""

from __future__ import annotations

import keras

from rnn_apps.cells.lstm import LSTMCell


@keras.saving.register_keras_serializable(package="rnn_apps")
class CoupledLSTMCell(LSTMCell):
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

    It shares :class:`LSTMCell`'s code (constructor, weights, fused gate products) with three blocks
    instead of four.

    Args, call arguments and returns: those of :class:`LSTMCell` (states ``[h, c]``; ``(h_t, [h_t, c_t])``).
    """

    _blocks = 3  # gate column blocks f | c | o
    _forget_block = 0

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        z_f, z_c, z_o = self._gates(inputs, h_tm1, training)
        f = self.recurrent_activation(z_f)
        c_hat = self.activation(z_c)
        c = c_hat + f * (c_tm1 - c_hat)  # = f * c_{t-1} + (1 - f) * c~_t
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]
