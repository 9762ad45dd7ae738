"""keras.layers.RNN with the input projection of all time steps hoisted out of the recurrence."""

from __future__ import annotations

import keras
from keras import activations, ops

from rnn_apps import precision
from rnn_apps.cells import LSTMCell
from rnn_apps.keras_compat import backend_rnn
from rnn_apps.layers.lstm_sequence import lstm_sequence


@keras.saving.register_keras_serializable(package="rnn_apps")
class ProjectedRNN(keras.layers.RNN):
    r"""``keras.layers.RNN`` that multiplies the inputs of all time steps by the kernel in one product.

    A gated cell's pre-activations are ``z_t = x_t W + b + h_{t-1} U``. Only ``h_{t-1} U`` depends on the
    previous step, so for the whole sequence ``X`` (batch, time, input_dim) this layer computes
    ``X W + b`` as one matrix product before the recurrence, and the loop is left with ``h_{t-1} U`` and
    the gates (the "input projection" of cuDNN's RNNs, Appleyard et al. 2016, "Optimizing performance of
    recurrent neural networks on GPUs"). In backpropagation the kernel's gradient is then one product
    ``Xᵀ ∂Z`` instead of one per step. The numbers are those of ``keras.layers.RNN(cell)``: same
    weights (the cell's, under the same names), same dropout masks (one per sequence, so dropping the
    inputs of all steps at once is the same), same masking, ``go_backwards``, ``initial_state``,
    ``return_state`` and ``unroll``.

    The cell must offer ``project_inputs`` and ``step_projected`` (``rnn_apps.cells.LSTMCell`` and
    ``rnn_apps.cells.GRUCell`` do; ``cell.supports_projected_inputs`` says so); any other cell runs
    exactly as in ``keras.layers.RNN``.

    In training, ``training_precision = "bfloat16"`` (set by :func:`rnn_apps.precision.set_training_precision`)
    rounds the operands of the input projection and, with an LSTM cell on its written-out training path, of
    the recurrent products to bfloat16 (:mod:`rnn_apps.precision`); the default ``"float32"`` changes nothing.

    Args:
        cell: A recurrent cell (see above).
        **kwargs: The arguments of ``keras.layers.RNN``.

    Example:
        >>> from rnn_apps.cells import LSTMCell
        >>> layer = ProjectedRNN(LSTMCell(256), return_sequences=True)
    """

    training_precision = "float32"  # a training run's setting, not the model's: not in get_config

    def _fused_lstm(self, training) -> bool:
        """Whether training runs :func:`rnn_apps.layers.lstm_sequence.lstm_sequence` (the LSTM's backward
        pass written out, both loops compiled by XLA, or TensorFlow graphs with bfloat16 products; measured
        faster in benchmarks/train.py, where the ``tf_recurrence`` contender runs its float32 loops as a
        TensorFlow graph): a not unrolled ``rnn_apps.cells.LSTMCell``
        with its default activations and no recurrent dropout, on TensorFlow, masked or not. Inference keeps
        the loop of ``keras.layers.RNN`` (the exported graphs stay as they were)."""
        cell = self.cell
        return (training is True and not self.unroll and type(cell) is LSTMCell
                and keras.backend.backend() == "tensorflow"
                and cell.activation is activations.tanh and cell.recurrent_activation is activations.sigmoid
                and not 0.0 < cell.recurrent_dropout < 1.0)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if not getattr(cell, "supports_projected_inputs", False):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        # in the cell's dtype, as calling the cell (a layer) would cast them: project_inputs and step_projected
        # are methods, which cast nothing (RNN.call casts the states, and the outputs to the layer's dtype)
        sequences = ops.cast(sequences, cell.compute_dtype)
        if training and 0.0 < cell.dropout < 1.0:
            # RNN.call has already made the sequence's mask from its first step; the cell reuses it at
            # every step, so one broadcast product drops the same inputs
            kept = ops.cast(cell.get_dropout_mask(sequences[:, 0, :]), sequences.dtype)  # made in the layer's dtype
            sequences = sequences * ops.expand_dims(kept, 1)
        # time-major before the projection: the transposes then move the narrow inputs and outputs,
        # not the projected (time, batch, gates·units) tensor and its gradient
        # bfloat16 products are TensorFlow's (rnn_apps.precision): other backends keep float32
        products = precision.training_products(self, training)
        time_major = ops.swapaxes(sequences, 0, 1)
        # the precision is passed only when it is not float32: a cell that overrides project_inputs(inputs) runs
        # as before
        projected = (cell.project_inputs(time_major) if products == "float32"
                     else cell.project_inputs(time_major, product_dtype=products))
        if mask is not None:
            mask = ops.swapaxes(mask, 0, 1)
        if self._fused_lstm(training):
            if self.go_backwards:
                projected = ops.flip(projected, axis=0)
                mask = None if mask is None else ops.flip(mask, axis=0)
            outputs, h_last, c_last = lstm_sequence(projected, cell.recurrent_kernel.value, initial_state[0],
                                                    initial_state[1], mask, self.zero_output_for_mask,
                                                    product_dtype=products)
            return outputs[-1], ops.swapaxes(outputs, 0, 1), [h_last, c_last]

        def step(x_proj, states):
            output, new_states = cell.step_projected(x_proj, states, training=training)
            if not isinstance(new_states, (list, tuple)):
                new_states = [new_states]
            return output, new_states

        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        last_output, outputs, states = backend_rnn(
            step,
            projected,
            initial_state,
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            time_major=True,
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )
        return last_output, ops.swapaxes(outputs, 0, 1), states
