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
of ``keras.layers.RNN(LSTMCell)`` to float32 rounding (tests/test_projected_rnn.py). Both loops run as XLA
computations by default (``compiled``), which spares each step TensorFlow's dispatch of its small operations.
"""

from __future__ import annotations

import functools

from rnn_apps import precision


@functools.lru_cache(maxsize=None)
def _compiled_loops():
    """:func:`_forward` and :func:`_backward`, each one XLA computation, built on first use (TensorFlow is
    imported only then)."""
    import tensorflow as tf

    return tf.function(_forward, jit_compile=True), tf.function(_backward, jit_compile=True)


def lstm_sequence(z_x, recurrent_kernel, h0, c0, mask=None, zero_output_for_mask=False, compiled=True,
                  product_dtype="float32", bfloat16_loops=True):
    """Run the LSTM over projected inputs; return every step's output and the last states.

    With a ``mask``, a masked step keeps the states of the step before and repeats the output of the step
    before (zeros before the first unmasked step), or writes zeros with ``zero_output_for_mask``: the rules
    of ``keras.layers.RNN``. Writing m_t for the mask, h~_t, c~_t for the cell's new states::

        h_t = m_t h~_t + (1 - m_t) h_{t-1},   c_t likewise,   y_t = m_t h~_t + (1 - m_t) y_{t-1}  (y_{-1} = 0)

    and the backward pass sends (1 - m_t) of each gradient on to step t-1 unchanged.

    Args:
        z_x: ``x_t W + b`` of every step, time-major: (time, batch, 4·units), gate blocks i | f | c | o.
        recurrent_kernel: U, (units, 4·units) in the same block order.
        h0, c0: Initial states, (batch, units) each.
        mask: Optional (time, batch) booleans, True where a step is real.
        zero_output_for_mask: Zeros, not the previous output, at masked steps.
        compiled: Run both loops as XLA computations (the default): XLA fuses each step's gate arithmetic
            into a few kernels and runs the loop without TensorFlow's per-op dispatch, which at 256 units
            and batch 64 made the forward and backward passes 1.18-1.29x faster (T 128 and 200, with and
            without a mask); at 512 units, where the products dominate, 1.03-1.08x. False: TensorFlow graphs
            without XLA, also with bfloat16 loops (same numbers to float32 rounding).
        product_dtype: ``"bfloat16"``: U's gradient ``H_prevᵀ ∂Z`` takes bfloat16 operands, and with
            ``bfloat16_loops`` the products of ``h_{t-1}`` and ``∂z_t`` with U in the loops too
            (:mod:`rnn_apps.precision`); everything else stays float32.
        bfloat16_loops: With ``product_dtype`` bfloat16, whether the loops' products take bfloat16 operands
            as well (the default); the loops then run as TensorFlow graphs, whose oneDNN kernels multiply
            bfloat16 faster, not as XLA computations, whose CPU products gain nothing from it, and each step's
            arithmetic between the products runs as one small XLA computation (``_compiled_steps``). Measured on
            the training steps of benchmarks/train.py's app models (timed in alternation, one run of 6 rounds
            under load from a training run), as speed-ups over the step with float32 products: fill 1.26x
            against 1.21x with XLA's loops and float32 products in them, translation 1.28x against 1.23x,
            the sentiment language model 1.11x against 1.06x.

    Returns:
        ``(Y, h_T, c_T)``: the outputs (time, batch, units) and the last states (batch, units); all
        differentiable with respect to ``z_x``, ``recurrent_kernel``, ``h0`` and ``c0``.
    """
    import tensorflow as tf

    keep = None if mask is None else tf.cast(mask, z_x.dtype)[:, :, None]  # (time, batch, 1)
    bfloat16_loops = bfloat16_loops and product_dtype not in ("float32", None)
    if compiled and not bfloat16_loops:
        forward, backward = _compiled_loops()
    else:  # TensorFlow graphs; with bfloat16 products, each step's arithmetic one XLA computation (if compiled)
        forward = functools.partial(_forward, compiled_steps=compiled and bfloat16_loops)
        backward = functools.partial(_backward, compiled_steps=compiled and bfloat16_loops)
    loop_dtype = product_dtype if bfloat16_loops else z_x.dtype
    zero = bool(zero_output_for_mask)

    # The two loops are computations of their own, joined here by the custom gradient, outside them, and the
    # forward one sees its inputs through stop_gradient: a GradientTape then records this one operation, not
    # the loop itself. A persistent tape recorded the loop, whose intermediates (lists of tensors) cannot
    # leave an XLA computation: the layer failed in training under such a tape.
    @tf.custom_gradient
    def run(z_x, u, h0, c0):
        # the loops' product operand, rounded once a sequence (the loops round only h_{t-1} and ∂z_t, in
        # precision.product)
        u_loop = tf.cast(u, loop_dtype)
        y_all, h_last, c_last, gates, c_new_all, h_all, c_all = forward(
            *(tf.stop_gradient(v) for v in (z_x, u_loop, h0, c0)), keep, zero)

        def grad(d_y, d_h_last, d_c_last):
            d_y = tf.zeros_like(y_all) if d_y is None else d_y
            d_h_last = tf.zeros_like(h0) if d_h_last is None else d_h_last
            d_c_last = tf.zeros_like(c0) if d_c_last is None else d_c_last
            # the backward loop sees its inputs through stop_gradient too: a tape outside this gradient (a
            # gradient penalty's) must not record the XLA loop, whose tensor lists cannot leave it; it records
            # _first_order_only instead, which refuses in words
            d_z, d_h0, d_c0 = backward(*(tf.stop_gradient(v) for v in (u_loop, h0, c0)), keep, zero, gates,
                                       c_new_all, c_all, *(tf.stop_gradient(v) for v in (d_y, d_h_last, d_c_last)))
            # one product over all steps instead of one accumulation per step (see the module's docstring), outside
            # the loops: TensorFlow's kernels run it faster than XLA's, in bfloat16 too
            h_prev_all = tf.concat([h0[None], h_all[:-1]], 0)
            units = tf.shape(u)[0]
            d_u = precision.product(tf.reshape(h_prev_all, [-1, units]), tf.reshape(d_z, [-1, 4 * units]),
                                    product_dtype, transpose_a=True)
            return _first_order_only((d_z, d_u, d_h0, d_c0), (d_y, d_h_last, d_c_last, u, h0, c0))

        return (y_all, h_last, c_last), grad

    # a read of the variable, outside the custom gradient: it then sees a tensor, and the gradient returned
    # for it reaches the variable through the read
    y_all, h_last, c_last = run(z_x, tf.identity(recurrent_kernel), h0, c0)
    # the loop's outputs leave its tensor list without their static length: the inputs' (time, batch) is
    # theirs, and layers after this one read it (TimeDistributed looped over the batch for an unknown length)
    y_all.set_shape(z_x.shape[:2].concatenate(recurrent_kernel.shape[:1]))
    return y_all, h_last, c_last


def _first_order_only(grads, sources):
    """``grads`` as they are, joined to the tensors they were computed from (``sources``) by an operation whose
    own gradient refuses in words: the backward loop is an XLA computation over tensor lists, which cannot be
    differentiated again (TensorFlow's "XLA compilation requires a fixed tensor list size"), and a tape
    outside the gradient would otherwise see gradients that do not depend on anything: second derivatives of
    zero, without a word."""
    import tensorflow as tf

    n = len(grads)

    @tf.custom_gradient
    def joined(*xs):
        def second_order(*_):
            raise ValueError(
                "The training path of rnn_apps.layers.ProjectedRNN (an LSTMCell's backward pass written out, "
                "rnn_apps.layers.lstm_sequence) is differentiated once; for second derivatives (a gradient "
                "penalty) run the cell in keras.layers.RNN, which computes the same outputs.")
        return [tf.identity(x) for x in xs[:n]], second_order

    return tuple(joined(*grads, *sources))


def _step_forward(z, h, c, y, m, zero_output_for_mask):
    """One forward step's arithmetic after its product (``z`` the pre-activations): the carried ``h, c``, the
    output ``y``, the gates [i, f, g, o] and c~ for the backward pass; ``m`` the step's 0/1 mask, or None."""
    import tensorflow as tf

    z_i, z_f, z_g, z_o = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
    c_new = f * c + i * g
    h_new = o * tf.tanh(c_new)
    if m is not None:
        h, c = m * h_new + (1.0 - m) * h, m * c_new + (1.0 - m) * c
        y = m * h_new + (0.0 if zero_output_for_mask else (1.0 - m) * y)
    else:
        h, c, y = h_new, c_new, h_new
    return h, c, y, tf.concat([i, f, g, o], -1), c_new


def _step_backward(gates, c_new, c_prev, d_h, d_c, d_y_t, m, zero_output_for_mask):
    """One backward step's arithmetic before its product: ∂z_t, ∂c_{t-1}, what ∂h_{t-1} gets besides
    ∂z_t Uᵀ (the masked share of ∂h_t), and the output's gradient carried to step t-1."""
    import tensorflow as tf

    i, f, g, o = tf.split(gates, 4, axis=-1)
    tanh_c = tf.tanh(c_new)
    if m is not None:
        d_h_new, d_c_new = m * (d_h + d_y_t), m * d_c
    else:
        d_h_new, d_c_new = d_h + d_y_t, d_c
    d_c_new = d_c_new + d_h_new * o * (1.0 - tanh_c * tanh_c)
    dz = tf.concat([d_c_new * g * i * (1.0 - i), d_c_new * c_prev * f * (1.0 - f),
                    d_c_new * i * (1.0 - g * g), d_h_new * tanh_c * o * (1.0 - o)], -1)
    d_c_prev = d_c_new * f
    if m is not None:
        d_c_prev += (1.0 - m) * d_c
        d_y_carry = tf.zeros_like(d_y_t) if zero_output_for_mask else (1.0 - m) * d_y_t
        return dz, d_c_prev, (1.0 - m) * d_h, d_y_carry
    return dz, d_c_prev, None, tf.zeros_like(d_y_t)


@functools.lru_cache(maxsize=None)
def _compiled_steps():
    """:func:`_step_forward` and :func:`_step_backward`, each a small XLA computation, for the loops that run
    as TensorFlow graphs (with bfloat16 products): one call per step instead of TensorFlow's dispatch of
    about twenty small operations (splits, activations, products of gates, concatenations). Measured against
    those operations, the two timed in alternation (7 rounds, nothing else running) on the training steps of
    benchmarks/train.py's app models: 1.09x the sentiment language model's step, 1.06x fill's, 1.04x
    translation's, 1.01x the poem model's."""
    import tensorflow as tf

    return (tf.function(_step_forward, jit_compile=True, autograph=False),
            tf.function(_step_backward, jit_compile=True, autograph=False))


def _forward(z_x, u, h0, c0, keep, zero_output_for_mask, compiled_steps=False):
    """The forward loop of :func:`lstm_sequence` with ``keep`` the mask as 0/1 floats (time, batch, 1), or None:
    ``(Y, h_T, c_T)`` and what the backward loop needs (every step's gates, c~, carried h and c).
    ``compiled_steps``: each step's arithmetic as an XLA computation (:func:`_compiled_steps`)."""
    import tensorflow as tf

    step_math = _compiled_steps()[0] if compiled_steps else _step_forward
    steps = tf.shape(z_x)[0]
    arrays = [tf.TensorArray(z_x.dtype, size=steps) for _ in range(5)]  # gates, c~, h (carried), c, y

    def step(t, h, c, y, gates, c_new_all, h_all, c_all, y_all):
        z = z_x[t] + precision.product(h, u, u.dtype.name)
        h, c, y, step_gates, c_new = step_math(z, h, c, y, None if keep is None else keep[t], zero_output_for_mask)
        return (t + 1, h, c, y, gates.write(t, step_gates), c_new_all.write(t, c_new),
                h_all.write(t, h), c_all.write(t, c), y_all.write(t, y))

    _, h_last, c_last, _, *arrays = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, c0, tf.zeros_like(h0), *arrays))
    gates, c_new_all, h_all, c_all, y_all = (a.stack() for a in arrays)
    return y_all, h_last, c_last, gates, c_new_all, h_all, c_all


def _backward(u, h0, c0, keep, zero_output_for_mask, gates, c_new_all, c_all, d_y, d_h_last, d_c_last,
              compiled_steps=False):
    """The backward loop of :func:`lstm_sequence` (the equations of the module's docstring): the gradients of
    ``z_x`` (every step's ∂z, from which the caller computes U's), ``h0`` and ``c0``. ``compiled_steps`` as in
    :func:`_forward`."""
    import tensorflow as tf

    step_math = _compiled_steps()[1] if compiled_steps else _step_backward
    steps = tf.shape(gates)[0]
    c_prev_all = tf.concat([c0[None], c_all[:-1]], 0)
    u_t = tf.transpose(u)
    d_z = tf.TensorArray(gates.dtype, size=steps)

    def step(t, d_h, d_c, d_y_carry, d_z):
        # d_h, d_c: gradients reaching the carried states h_t, c_t; d_y_carry: the output y_t's share
        # of later outputs (masked steps repeat it)
        dz, d_c_prev, d_h_kept, d_y_carry = step_math(
            gates[t], c_new_all[t], c_prev_all[t], d_h, d_c, d_y[t] + d_y_carry,
            None if keep is None else keep[t], zero_output_for_mask)
        d_h_prev = precision.product(dz, u_t, u_t.dtype.name)
        if d_h_kept is not None:
            d_h_prev += d_h_kept
        return t - 1, d_h_prev, d_c_prev, d_y_carry, d_z.write(t, dz)

    _, d_h0, d_c0, _, d_z = tf.while_loop(
        lambda t, *_: t >= 0, step, (steps - 1, d_h_last, d_c_last, tf.zeros_like(h0), d_z))
    return d_z.stack(), d_h0, d_c0
