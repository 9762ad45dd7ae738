"""Long short-term memory cell written from the equations."""

from __future__ import annotations

import keras
from keras import initializers, ops

from rnn_apps import precision
from rnn_apps.cells.base import BaseCell, check_step_input


@keras.saving.register_keras_serializable(package="rnn_apps")
class LSTMCell(BaseCell):
    r"""LSTM cell (Hochreiter & Schmidhuber, 1997; forget gate of Gers et al., 2000).

    For input x_t and previous state (h_{t-1}, c_{t-1})::

        i_t  = σ(x_t W_i + h_{t-1} U_i + b_i)          input gate
        f_t  = σ(x_t W_f + h_{t-1} U_f + b_f)          forget gate
        c~_t = tanh(x_t W_c + h_{t-1} U_c + b_c)       candidate cell state
        o_t  = σ(x_t W_o + h_{t-1} U_o + b_o)          output gate
        c_t  = f_t * c_{t-1} + i_t * c~_t
        h_t  = o_t * tanh(c_t)

    σ is ``recurrent_activation`` and tanh is ``activation``. The weights use the layout of
    ``keras.layers.LSTM`` so they can be copied either way: ``kernel`` (input_dim, 4·units),
    ``recurrent_kernel`` (units, 4·units), ``bias`` (4·units), gate columns in the order i | f | c | o;
    states are ``[h, c]``.

    Args:
        units: Positive int, size of h and c.
        activation: Activation for the candidate and the output (default tanh).
        recurrent_activation: Activation of the gates (default sigmoid).
        use_bias: Whether the gates have a bias.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers.
        unit_forget_bias: If True, initialize the forget gate's bias to ones (Jozefowicz et al., 2015)
            and the rest of the bias with ``bias_initializer``, as ``keras.layers.LSTMCell`` does.
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

    _blocks = 4  # gate column blocks i | f | c | o
    _forget_block = 1

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        input_dim = check_step_input(type(self).__name__, input_shape)
        u = self.units
        n = self._blocks
        self.kernel = self._weight("kernel", (input_dim, n * u), "kernel")
        self.recurrent_kernel = self._weight("recurrent_kernel", (u, n * u), "recurrent")
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(n * u,),
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
            ones = initializers.get("ones")
            return ops.concatenate(
                [(ones if b == self._forget_block else base)((u,), dtype=dtype) for b in range(self._blocks)]
            )

        return init

    @property
    def supports_projected_inputs(self) -> bool:
        """True when ``call`` is this class's, i.e. ``step_projected`` computes the same step."""
        return type(self).call is LSTMCell.call

    def project_inputs(self, inputs, product_dtype: str = "float32"):
        """The input part of the pre-activations, ``x W + b``, for inputs of shape (..., input_dim).

        ``rnn_apps.layers.ProjectedRNN`` calls it once on a whole sequence (batch, time, input_dim), so that
        the recurrence is left with ``h_{t-1} U`` alone (the input projection of cuDNN's RNNs).
        ``product_dtype`` ``"bfloat16"`` rounds the product's operands (:func:`rnn_apps.precision.matmul`).
        """
        z = precision.matmul(inputs, self.kernel, product_dtype)
        if self.use_bias:
            # ops.add (not +) so TensorFlow gets a BiasAdd, which its CPU kernels fuse into the MatMul
            z = ops.add(z, self.bias)
        return z

    def _gates(self, inputs, h_tm1, training):
        """Pre-activations z = x W + h U + b, split into the gate blocks (i, f, c, o for the LSTM)."""
        inputs, h_tm1 = self._drop_inputs(inputs, h_tm1, training)
        # Keras's order: both products, then the bias. Adding the bias to x W first (as project_inputs does
        # for a whole sequence) measured 6 % slower to train and 16 % slower to run inside keras.layers.RNN
        # (benchmarks/cells.py --optimizer adam), although the step has the same operations either way.
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_tm1, self.recurrent_kernel)
        if self.use_bias:
            z = ops.add(z, self.bias)
        return ops.split(z, self._blocks, axis=-1)

    def _gates_projected(self, x_proj, h_tm1, product_dtype="float32"):
        z = x_proj + precision.matmul(h_tm1, self.recurrent_kernel, product_dtype)
        return ops.split(z, self._blocks, axis=-1)

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        z_i, z_f, z_c, z_o = self._gates(inputs, h_tm1, training)
        return self._update(z_i, z_f, z_c, z_o, c_tm1)

    def step_projected(self, x_proj, states, training=False, product_dtype="float32"):
        """One step from ``x_proj = project_inputs(x_t)`` (input dropout, if any, already applied to x_t);
        ``product_dtype`` as in :meth:`project_inputs`, for h_{t-1} U."""
        h_tm1, c_tm1 = states[0], states[1]
        z_i, z_f, z_c, z_o = self._gates_projected(x_proj, self._drop_state(h_tm1, training), product_dtype)
        return self._update(z_i, z_f, z_c, z_o, c_tm1)

    def _update(self, z_i, z_f, z_c, z_o, c_tm1):
        """The LSTM's equations from the gate pre-activations; returns ``(h_t, [h_t, c_t])``."""
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_tm1 + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}
