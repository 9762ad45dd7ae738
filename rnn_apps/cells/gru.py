"""Gated recurrent unit cell written from the equations."""

from __future__ import annotations

import keras
from keras import ops

from rnn_apps import precision
from rnn_apps.cells.base import BaseCell, check_step_input


@keras.saving.register_keras_serializable(package="rnn_apps")
class GRUCell(BaseCell):
    r"""Gated recurrent unit (Cho et al., 2014, "Learning phrase representations using RNN
    encoder-decoder for statistical machine translation").

    For input x_t and previous state h_{t-1}, with ``reset_after=True`` (the default, the variant
    of cuDNN and ``keras.layers.GRU``; the reset gate is applied after the recurrent product, which
    has its own bias b^h)::

        z_t  = σ(x_t W_z + b^x_z + h_{t-1} U_z + b^h_z)              update gate
        r_t  = σ(x_t W_r + b^x_r + h_{t-1} U_r + b^h_r)              reset gate
        h~_t = tanh(x_t W_h + b^x_h + r_t * (h_{t-1} U_h + b^h_h))   candidate
        h_t  = z_t * h_{t-1} + (1 - z_t) * h~_t

    With ``reset_after=False`` (the original paper) there is one bias and the reset gate scales
    h_{t-1} before the product::

        z_t  = σ(x_t W_z + h_{t-1} U_z + b_z)
        r_t  = σ(x_t W_r + h_{t-1} U_r + b_r)
        h~_t = tanh(x_t W_h + (r_t * h_{t-1}) U_h + b_h)
        h_t  = z_t * h_{t-1} + (1 - z_t) * h~_t

    σ is ``recurrent_activation`` and tanh is ``activation``. The weights use the layout of
    ``keras.layers.GRU`` so they can be copied either way: ``kernel`` (input_dim, 3·units),
    ``recurrent_kernel`` (units, 3·units), gate columns in the order z | r | h; ``bias`` is
    (2, 3·units) with row 0 the input bias b^x and row 1 the recurrent bias b^h when
    ``reset_after`` is True, else (3·units,).

    Args:
        units: Positive int, size of h.
        reset_after: Where the reset gate is applied (see above).
        activation: Activation of the candidate (default tanh).
        recurrent_activation: Activation of the gates (default sigmoid).
        use_bias: Whether the gates have biases.
        kernel_*, recurrent_*, bias_* ``initializer``, ``regularizer``, ``constraint``: as in Keras's cells.
        dropout: Fraction of the inputs dropped (one mask per sequence).
        recurrent_dropout: Fraction of h_{t-1} dropped in the recurrent products (one mask per
            sequence); the carried h_{t-1} in the last equation is not dropped.
        seed: Seed for the dropout masks.

    Call arguments:
        inputs: (batch, input_dim) tensor for one time step.
        states: list ``[h_{t-1}]`` of one (batch, units) tensor (a bare tensor is accepted too).
        training: Whether dropout is applied.

    Returns:
        ``(h_t, [h_t])``, or ``(h_t, h_t)`` when ``states`` was a bare tensor (as Keras's cell).
    """

    def __init__(self, units, reset_after=True, **kwargs):
        if not isinstance(reset_after, bool):
            raise ValueError(f"`reset_after` must be True or False; received {reset_after!r}.")
        super().__init__(units, **kwargs)
        self.reset_after = reset_after
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        input_dim = check_step_input(type(self).__name__, input_shape)
        u = self.units
        self.kernel = self._weight("kernel", (input_dim, 3 * u), "kernel")
        self.recurrent_kernel = self._weight("recurrent_kernel", (u, 3 * u), "recurrent")
        if self.use_bias:
            self.bias = self._weight("bias", (2, 3 * u) if self.reset_after else (3 * u,), "bias")
        else:
            self.bias = None
        self.built = True

    @property
    def supports_projected_inputs(self) -> bool:
        """True when ``call`` is this class's, i.e. ``step_projected`` computes the same step."""
        return type(self).call is GRUCell.call

    def project_inputs(self, inputs, product_dtype: str = "float32"):
        """The input part of the pre-activations, ``x W + b^x`` (``x W + b`` without ``reset_after``).

        For inputs of shape (..., input_dim); ``rnn_apps.layers.ProjectedRNN`` calls it once on a whole
        sequence so that the recurrence is left with the products of h_{t-1} alone. ``product_dtype``
        ``"bfloat16"`` rounds the product's operands (:func:`rnn_apps.precision.matmul`).
        """
        x_proj = precision.matmul(inputs, self.kernel, product_dtype)
        if self.use_bias:
            # ops.add (not +) gives TensorFlow a BiasAdd, which its CPU kernels fuse into the MatMul
            x_proj = ops.add(x_proj, ops.unstack(self.bias, axis=0)[0] if self.reset_after else self.bias)
        return x_proj

    def call(self, inputs, states, training=False):
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        return self.step_projected(self.project_inputs(inputs), states, training)

    def step_projected(self, x_proj, states, training=False, product_dtype="float32"):
        """One step from ``x_proj = project_inputs(x_t)`` (input dropout, if any, already applied to x_t);
        ``product_dtype`` as in :meth:`project_inputs`, for the products of h_{t-1}."""
        nested = isinstance(states, (list, tuple))
        h_tm1 = states[0] if nested else states
        h_in = self._drop_state(h_tm1, training)
        x_z, x_r, x_h = ops.split(x_proj, 3, axis=-1)
        if self.reset_after:
            h_proj = precision.matmul(h_in, self.recurrent_kernel, product_dtype)
            if self.use_bias:
                h_proj = ops.add(h_proj, ops.unstack(self.bias, axis=0)[1])
            h_z, h_r, h_h = ops.split(h_proj, 3, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            hh = self.activation(x_h + r * h_h)
        else:
            # one split of the recurrent kernel (its gradient is one concat; slices would each
            # need a full-size StridedSliceGrad at every step)
            u_zr, u_h = ops.split(self.recurrent_kernel, [2 * self.units], axis=-1)
            h_z, h_r = ops.split(precision.matmul(h_in, u_zr, product_dtype), 2, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            hh = self.activation(x_h + precision.matmul(r * h_in, u_h, product_dtype))
        h = hh + z * (h_tm1 - hh)  # = z * h_{t-1} + (1 - z) * h~_t
        return h, ([h] if nested else h)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
