"""Shared plumbing for the cells: argument checks, dropout masks and config helpers."""

from __future__ import annotations

import keras
from keras import activations, constraints, initializers, ops, regularizers

from rnn_apps.checks import check_rate, check_units
from rnn_apps.keras_compat import DropoutRNNCell


def check_step_input(cell_name: str, input_shape) -> int:
    """Check a cell's per-step input shape (batch, features) and return the feature size."""
    shape = tuple(input_shape)
    if len(shape) != 2:
        raise ValueError(
            f"{cell_name} expects inputs of rank 2 (batch, features) per step, i.e. rank 3 "
            f"(batch, time, features) inside keras.layers.RNN; received per-step shape {shape}, "
            f"which inside keras.layers.RNN comes from a sequence of rank {len(shape) + 1}."
        )
    if shape[-1] is None:
        raise ValueError(f"{cell_name} needs a known feature dimension; received input shape {shape}.")
    return int(shape[-1])


class BaseCell(DropoutRNNCell, keras.layers.Layer):
    """Common constructor arguments and config of every rnn_apps cell.

    Subclasses set ``state_size``/``output_size``, create weights in ``build`` and implement ``call``.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)

    def _weight(self, name, shape, kind):
        """Create a weight of kind 'kernel', 'recurrent' or 'bias' with that kind's settings."""
        init = {"kernel": self.kernel_initializer, "recurrent": self.recurrent_initializer, "bias": self.bias_initializer}
        reg = {"kernel": self.kernel_regularizer, "recurrent": self.recurrent_regularizer, "bias": self.bias_regularizer}
        con = {"kernel": self.kernel_constraint, "recurrent": self.recurrent_constraint, "bias": self.bias_constraint}
        return self.add_weight(
            name=name, shape=shape, initializer=init[kind], regularizer=reg[kind], constraint=con[kind]
        )

    def _drop_inputs(self, inputs, h_tm1, training):
        """Apply the (per-sequence, cached) dropout masks of Gal & Ghahramani (2016)."""
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        return inputs, self._drop_state(h_tm1, training)

    def _drop_state(self, h_tm1, training):
        """Apply the (per-sequence, cached) recurrent dropout mask to h_{t-1}."""
        if training and 0.0 < self.recurrent_dropout < 1.0:
            h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        return h_tm1

    @property
    def supports_projected_inputs(self) -> bool:
        """Whether the cell has ``project_inputs`` and ``step_projected`` (see ``rnn_apps.layers.ProjectedRNN``)."""
        return False

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, s), dtype=self.compute_dtype) for s in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
