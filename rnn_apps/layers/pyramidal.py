"""Pyramidal bidirectional encoder of Listen, Attend and Spell."""

from __future__ import annotations

import keras
from keras import ops

from rnn_apps.layers.deep_bidirectional import StackedBidirectionalBase


@keras.saving.register_keras_serializable(package="rnn_apps")
class PyramidalBidirectionalRNN(StackedBidirectionalBase):
    r"""Pyramidal bidirectional RNN (Chan et al., 2016, "Listen, Attend and Spell").

    Like :class:`DeepBidirectionalRNN`, but every layer above the first reads pairs of consecutive
    outputs of the layer below, concatenated, so each layer halves the time resolution::

        y^0_t = x_t
        y^1_t = BiRNN_0(y^0)_t
        y^k_t = BiRNN_{k-1}([y^{k-1}_{2t}, y^{k-1}_{2t+1}])   for k ≥ 2

    With L layers a sequence of T steps becomes ceil(T / 2^(L-1)) steps. **Odd lengths are padded**:
    when a layer's input has an odd number of steps, a step of zeros is appended before pairing,
    so the last step is kept (paired with zeros) rather than dropped.

    **Masks**: a pair is valid if its first step is valid (reduced mask = ``mask[:, ::2]``), so a
    sequence with n valid steps keeps ceil(n / 2) valid steps, matching the padding of odd lengths
    above. Outputs at masked steps are set to zero before pairing, so a right-padded batch gives,
    at each valid step, the same outputs as the unpadded sequences run alone. ``compute_mask``
    returns the reduced mask.

    Dropout (rate ``dropout``) is applied to a layer's outputs before they are paired for the next
    layer. Sublayers are named ``bidirectional_0`` ... (see :class:`DeepBidirectionalRNN`).

    Args:
        cell: ``"simple_rnn"``, ``"lstm"``, ``"peephole_lstm"``, ``"coupled_lstm"``, ``"gru"``,
            or a cell class.
        units: Positive int, units of every cell (each direction).
        num_layers: Positive int, number of bidirectional layers (num_layers - 1 halvings).
        merge_mode: ``"concat"``, ``"sum"``, ``"ave"`` or ``"mul"``.
        dropout: Rate of the dropout between layers.
        return_state: Whether to also return the top layer's final states
            ``[output, *forward_states, *backward_states]``.
        cell_kwargs: Dict of extra arguments for every cell.
        seed: Seed of the dropout layers.

    Call arguments:
        inputs: (batch, time, features) tensor.
        mask: Optional (batch, time) boolean mask, True at valid steps (right padding).
        training: Whether dropout is applied.

    Returns:
        (batch, ceil(time / 2^(num_layers-1)), features) tensor (plus states if ``return_state``).
    """

    def __init__(self, cell="lstm", units=128, num_layers=3, **kwargs):
        if kwargs.pop("return_sequences", True) is not True:
            raise ValueError("PyramidalBidirectionalRNN always returns sequences; received return_sequences=False.")
        super().__init__(cell=cell, units=units, num_layers=num_layers, return_sequences=True, **kwargs)

    def _reduce_shape(self, shape):
        batch, time, features = shape
        return (batch, None if time is None else (time + 1) // 2, 2 * features)

    def _reduce_mask(self, mask):
        return None if mask is None else mask[:, ::2]

    def _reduce(self, x, mask):
        features = x.shape[-1]
        if mask is not None:
            x = x * ops.expand_dims(ops.cast(mask, x.dtype), -1)
        time = x.shape[1]
        if time is None:  # unknown length: pad dynamically
            time = ops.shape(x)[1]
        if not isinstance(time, int) or time % 2:
            x = ops.pad(x, [[0, 0], [0, time % 2], [0, 0]])
        x = ops.reshape(x, (ops.shape(x)[0], -1, 2 * features))
        return x, self._reduce_mask(mask)

    def get_config(self):
        config = super().get_config()
        config.pop("return_sequences", None)
        return config
