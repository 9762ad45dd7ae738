"""Recurrent cells written from the equations, weight-compatible with Keras's built-ins.

Each cell works inside ``keras.layers.RNN`` and ``keras.layers.Bidirectional``.
"""

from rnn_apps.cells.coupled_lstm import CoupledLSTMCell
from rnn_apps.cells.gru import GRUCell
from rnn_apps.cells.lstm import LSTMCell
from rnn_apps.cells.peephole_lstm import PeepholeLSTMCell
from rnn_apps.cells.simple_rnn import SimpleRNNCell

CELLS = {
    "simple_rnn": SimpleRNNCell,
    "lstm": LSTMCell,
    "peephole_lstm": PeepholeLSTMCell,
    "coupled_lstm": CoupledLSTMCell,
    "gru": GRUCell,
}


def get_cell(name: str):
    """Return the cell class registered under ``name`` (e.g. ``"lstm"``, ``"gru"``)."""
    try:
        return CELLS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"Unknown cell type {name!r}; expected one of {sorted(CELLS)}.") from None


__all__ = ["SimpleRNNCell", "LSTMCell", "PeepholeLSTMCell", "CoupledLSTMCell", "GRUCell", "CELLS", "get_cell"]
