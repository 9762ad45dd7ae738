"""Recurrent layers built from the rnn_apps cells."""

from rnn_apps.layers.deep_bidirectional import DeepBidirectionalRNN
from rnn_apps.layers.pyramidal import PyramidalBidirectionalRNN

__all__ = ["DeepBidirectionalRNN", "PyramidalBidirectionalRNN"]
