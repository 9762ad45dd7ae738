r"""The LSTM recurrence over a whole sequence with its backward pass written out (the training fast path).

Automatic differentiation of a loop over time steps accumulates the recurrent kernel's gradient step by
step: at every step a small product ``h_{t-1}ᵀ ∂z_t`` (units x 4·units) is computed and added to a
running sum, so the backward pass reads and writes the whole (units, 4·units) matrix once per step.
Here the backward loop carries only what is truly recurrent (``∂h`` and ``∂c``) and stores each step's
``∂z_t``; the kernel's gradient is then one large product over all steps,

    ∂U = H_prevᵀ ∂Z,    H_prev = [h_0, h_1, ..., h_{T-1}]  (time·batch, units),

which the CPU's matrix-product kernels run near their peak. The forward loop is that of
:class:`rnn_apps.cells.LSTMCell`; it keeps the gates and cell states that the backward pass needs.

Backward equations for one step (σ the sigmoid, with i, f, g, o the gate activations of the forward step,
``∂h_t`` the output's gradient plus what step t+1 sends back, ``∂c_t`` likewise)::

    ∂o_t = ∂h_t ⊙ tanh(c_t)
    ∂c_t += ∂h_t ⊙ o_t ⊙ (1 - tanh²(c_t))
    ∂i_t = ∂c_t ⊙ g_t,   ∂g_t = ∂c_t ⊙ i_t,   ∂f_t = ∂c_t ⊙ c_{t-1}
    ∂z_t = [∂i ⊙ i(1-i), ∂f ⊙ f(1-f), ∂g ⊙ (1-g²), ∂o ⊙ o(1-o)]
    ∂h_{t-1} = ∂z_t Uᵀ,   ∂c_{t-1} = ∂c_t ⊙ f_t

The same structure as cuDNN's RNN kernels (Appleyard, Kočiský & Blunsom, 2016, "Optimizing Performance of
Recurrent Neural Networks on GPUs"). It needs TensorFlow (``tf.custom_gradient``); the results equal those
of ``keras.layers.RNN(LSTMCell)`` to float32 rounding (tests/test_projected_rnn.py).
"""

from __future__ import annotations


def lstm_sequence(z_x, recurrent_kernel, h0, c0):
    """Run the LSTM over projected inputs; return every step's h and the last c.

    Args:
        z_x: ``x_t W + b`` of every step, time-major: (time, batch, 4·units), gate blocks i | f | c | o.
        recurrent_kernel: U, (units, 4·units) in the same block order.
        h0, c0: Initial states, (batch, units) each.

    Returns:
        ``(H, c_T)``: H (time, batch, units) holds h_1..h_T; c_T (batch, units) is the last cell state.
        Both are differentiable with respect to every argument (backward pass above).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def run(z_x, u, h0, c0):
        steps = tf.shape(z_x)[0]
        units = tf.shape(u)[0]
        gates = tf.TensorArray(z_x.dtype, size=steps)
        cells = tf.TensorArray(z_x.dtype, size=steps)
        hidden = tf.TensorArray(z_x.dtype, size=steps)

        def forward(t, h, c, gates, cells, hidden):
            z_i, z_f, z_g, z_o = tf.split(z_x[t] + tf.matmul(h, u), 4, axis=-1)
            i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
            c = f * c + i * g
            h = o * tf.tanh(c)
            return t + 1, h, c, gates.write(t, tf.concat([i, f, g, o], -1)), cells.write(t, c), hidden.write(t, h)

        _, _, c_last, gates, cells, hidden = tf.while_loop(
            lambda t, *_: t < steps, forward, (tf.constant(0), h0, c0, gates, cells, hidden))
        gates, cells, hidden = gates.stack(), cells.stack(), hidden.stack()

        def grad(d_hidden, d_c_last):
            if d_c_last is None:  # the caller used only H
                d_c_last = tf.zeros_like(c0)
            cells_prev = tf.concat([c0[None], cells[:-1]], 0)
            u_t = tf.transpose(u)
            d_z = tf.TensorArray(z_x.dtype, size=steps)

            def backward(t, d_h_next, d_c_next, d_z):
                i, f, g, o = tf.split(gates[t], 4, axis=-1)
                tanh_c = tf.tanh(cells[t])
                d_h = d_hidden[t] + d_h_next
                d_c = d_c_next + d_h * o * (1.0 - tanh_c * tanh_c)
                dz = tf.concat([d_c * g * i * (1.0 - i), d_c * cells_prev[t] * f * (1.0 - f),
                                d_c * i * (1.0 - g * g), d_h * tanh_c * o * (1.0 - o)], -1)
                return t - 1, tf.matmul(dz, u_t), d_c * f, d_z.write(t, dz)

            _, d_h0, d_c0, d_z = tf.while_loop(
                lambda t, *_: t >= 0, backward, (steps - 1, tf.zeros_like(h0), d_c_last, d_z))
            d_z = d_z.stack()
            hidden_prev = tf.concat([h0[None], hidden[:-1]], 0)
            # one product over all steps instead of one accumulation per step (see the module's docstring)
            d_u = tf.matmul(tf.reshape(hidden_prev, [-1, units]), tf.reshape(d_z, [-1, 4 * units]), transpose_a=True)
            return d_z, d_u, d_h0, d_c0

        return (hidden, c_last), grad

    # a read of the variable, outside `run`: tf.custom_gradient then sees a tensor, and the gradient
    # returned for it reaches the variable through the read
    return run(z_x, tf.identity(recurrent_kernel), h0, c0)
