"""Stacked bidirectional recurrent layers built from the rnn_apps cells (or any Keras RNN cell)."""

from __future__ import annotations

import keras

from rnn_apps.cells import CELLS, get_cell
from rnn_apps.checks import check_rate, check_units
from rnn_apps.layers.projected import ProjectedRNN

MERGE_MODES = ("concat", "sum", "ave", "mul")


def resolve_cell(cell):
    """Return a cell class from a registry name (``"lstm"``), a registered name or a class."""
    if isinstance(cell, str):
        if cell.lower() in CELLS:
            return get_cell(cell)
        found = keras.saving.get_registered_object(cell) or getattr(keras.layers, cell, None)
        if isinstance(found, type) and issubclass(found, keras.layers.Layer):
            return found
        raise ValueError(
            f"Unknown cell {cell!r}; expected one of {sorted(CELLS)}, a registered Keras cell name or a cell class."
        )
    if isinstance(cell, type) and issubclass(cell, keras.layers.Layer):
        cell_name(cell)  # fail early: Bidirectional copies the layer through its config
        return cell
    raise ValueError(
        f"`cell` must be one of {sorted(CELLS)} or a Keras RNN cell class; received {cell!r} "
        f"of type {type(cell).__name__}."
    )


def cell_name(cell_cls) -> str:
    """The name under which ``cell_cls`` is stored in a config (inverse of :func:`resolve_cell`)."""
    for key, value in CELLS.items():
        if value is cell_cls:
            return key
    registered = keras.saving.get_registered_name(cell_cls)
    if cell_cls in (keras.saving.get_registered_object(registered), getattr(keras.layers, registered, None)):
        return registered
    raise ValueError(
        f"Cell class {cell_cls.__name__} cannot be stored in a config (keras.layers.Bidirectional copies "
        "its layer through the config): register it with @keras.saving.register_keras_serializable()."
    )


class StackedBidirectionalBase(keras.layers.Layer):
    """Shared machinery of :class:`DeepBidirectionalRNN` and ``PyramidalBidirectionalRNN``.

    Builds ``num_layers`` named ``keras.layers.Bidirectional(ProjectedRNN(cell))`` sublayers
    (``bidirectional_0`` ... at the bottom, each wrapping ``forward_rnn_k``/``backward_rnn_k`` with
    their own weights) and ``keras.layers.Dropout`` sublayers ``dropout_1`` ... between them.
    Subclasses may shorten the sequence between layers by overriding ``_reduce``,
    ``_reduce_shape`` and ``_reduce_mask``.
    """

    def __init__(
        self,
        cell="lstm",
        units=128,
        num_layers=2,
        merge_mode="concat",
        dropout=0.0,
        return_sequences=True,
        return_state=False,
        cell_kwargs=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell_class = resolve_cell(cell)
        self.units = check_units(units)
        self.num_layers = check_units(num_layers, "num_layers")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"`merge_mode` must be one of {MERGE_MODES}; received {merge_mode!r}.")
        self.merge_mode = merge_mode
        self.dropout = check_rate(dropout, "dropout")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        if cell_kwargs is not None and not isinstance(cell_kwargs, dict):
            raise ValueError(f"`cell_kwargs` must be a dict or None; received {cell_kwargs!r}.")
        if cell_kwargs and "units" in cell_kwargs:  # the layer gives every cell its units
            raise ValueError(f"`cell_kwargs` must not hold `units` (give the layer's `units`); received "
                             f"{cell_kwargs!r}.")
        self.cell_kwargs = dict(cell_kwargs or {})
        self.seed = seed
        self.supports_masking = True

        self.bidirectional_layers = []
        self.dropout_layers = []
        for k in range(self.num_layers):
            top = k == self.num_layers - 1
            # ProjectedRNN: keras.layers.RNN with the same weights and numbers, whose input projection of all
            # steps is one matrix product (measured faster in benchmarks/train.py)
            rnn = ProjectedRNN(
                self.cell_class(self.units, **self.cell_kwargs),
                return_sequences=self.return_sequences or not top,
                return_state=self.return_state and top,
                name=f"rnn_{k}",
            )
            self.bidirectional_layers.append(
                keras.layers.Bidirectional(rnn, merge_mode=self.merge_mode, name=f"bidirectional_{k}")
            )
            if k > 0:
                layer_seed = None if seed is None else seed + k
                self.dropout_layers.append(keras.layers.Dropout(self.dropout, seed=layer_seed, name=f"dropout_{k}"))
        self._num_states = len(self.bidirectional_layers[-1].forward_layer.state_size)

    # --- hooks for sequence reduction (identity here) -------------------------------------------
    def _reduce(self, x, mask):
        return x, mask

    def _reduce_shape(self, shape):
        return shape

    def _reduce_mask(self, mask):
        return mask

    # --- Keras API -------------------------------------------------------------------------------
    def get_layer(self, name):
        """Return the sublayer called ``name`` (``"bidirectional_0"``, ``"dropout_1"``, ...)."""
        for layer in [*self.bidirectional_layers, *self.dropout_layers]:
            if layer.name == name:
                return layer
        names = [layer.name for layer in [*self.bidirectional_layers, *self.dropout_layers]]
        raise ValueError(f"No sublayer named {name!r}; available: {names}.")

    def _check_input_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 3 (batch, time, features); received shape {shape}."
            )
        if shape[-1] is None:
            raise ValueError(f"{type(self).__name__} needs a known feature dimension; received shape {shape}.")
        return shape

    def build(self, input_shape):
        shape = self._check_input_shape(input_shape)
        for k, layer in enumerate(self.bidirectional_layers):
            if k > 0:
                shape = self._reduce_shape(shape)
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
            if self.return_state and k == self.num_layers - 1:
                shape = shape[0]
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = self._check_input_shape(input_shape)
        for _ in range(self.num_layers - 1):
            shape = self._reduce_shape((shape[0], shape[1], self._merged_size()))
        batch, time = shape[0], shape[1]
        out = (batch, time, self._merged_size()) if self.return_sequences else (batch, self._merged_size())
        if self.return_state:
            return [out] + [(batch, self.units)] * (2 * self._num_states)
        return out

    def _merged_size(self):
        return 2 * self.units if self.merge_mode == "concat" else self.units

    def call(self, inputs, mask=None, training=None):
        x = inputs
        for k, layer in enumerate(self.bidirectional_layers):
            if k > 0:
                x = self.dropout_layers[k - 1](x, training=training)
                x, mask = self._reduce(x, mask)
            x = layer(x, mask=mask, training=training)
        if self.return_state:
            return [x[0], *x[1:]]
        return x

    def compute_mask(self, inputs, mask=None):
        out_mask = None
        if mask is not None and self.return_sequences:
            for _ in range(self.num_layers - 1):
                mask = self._reduce_mask(mask)
            out_mask = mask
        if self.return_state:
            return [out_mask] + [None] * (2 * self._num_states)
        return out_mask

    def get_config(self):
        config = {
            "cell": cell_name(self.cell_class),
            "units": self.units,
            "num_layers": self.num_layers,
            "merge_mode": self.merge_mode,
            "dropout": self.dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "cell_kwargs": self.cell_kwargs,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="rnn_apps")
class DeepBidirectionalRNN(StackedBidirectionalBase):
    r"""A stack of bidirectional recurrent layers, each reading the outputs of the one below.

    Layer k runs one cell forward and another (with its own weights) backward over the sequence
    below and merges their outputs (Schuster & Paliwal, 1997; deep stacking as in Graves et al.,
    2013, "Speech recognition with deep recurrent neural networks")::

        y^0_t = x_t
        y^k_t = merge(→h^k_t, ←h^k_t),   →h^k_t = cell→_k(y^{k-1}_t, →h^k_{t-1}),
                                         ←h^k_t = cell←_k(y^{k-1}_t, ←h^k_{t+1})

    Dropout (rate ``dropout``) is applied to y^{k-1} before layer k for k ≥ 1 in training.
    Masks (right-padded, e.g. from ``keras.layers.Masking`` or ``Embedding(mask_zero=True)``) are
    passed to every layer, so padded steps do not change the outputs at valid steps.

    Sublayers are named: ``bidirectional_0`` (bottom) ... ``bidirectional_{L-1}`` (top), each
    wrapping ``forward_rnn_k`` and ``backward_rnn_k``, and ``dropout_1`` ... ``dropout_{L-1}``;
    use :meth:`get_layer` or ``bidirectional_layers``.

    Args:
        cell: ``"simple_rnn"``, ``"lstm"``, ``"peephole_lstm"``, ``"coupled_lstm"``, ``"gru"``,
            or a cell class (e.g. ``rnn_apps.cells.GRUCell`` or ``keras.layers.LSTMCell``).
        units: Positive int, units of every cell (each direction).
        num_layers: Positive int, number of bidirectional layers.
        merge_mode: How the two directions are combined: ``"concat"`` (2·units features),
            ``"sum"``, ``"ave"`` or ``"mul"`` (units features).
        dropout: Rate of the dropout between layers (not on the input or the output).
        return_sequences: Whether the top layer returns the whole sequence (batch, time, features)
            or only the last step (batch, features); lower layers always return sequences.
        return_state: Whether to also return the top layer's final states: ``[output,
            *forward_states, *backward_states]`` (e.g. h, c forward then h, c backward for LSTM).
        cell_kwargs: Dict of extra arguments for every cell (e.g. ``{"recurrent_dropout": 0.1}``).
        seed: Seed of the dropout layers.

    Call arguments:
        inputs: (batch, time, features) tensor.
        mask: Optional (batch, time) boolean mask, True at valid steps.
        training: Whether dropout is applied.
    """

    def __init__(self, cell="lstm", units=128, num_layers=2, return_sequences=True, **kwargs):
        super().__init__(cell=cell, units=units, num_layers=num_layers, return_sequences=return_sequences, **kwargs)
