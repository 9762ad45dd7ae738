"""Recurrent layers built from the rnn_apps cells, and Keras's ``Conv2D`` and ``BatchNormalization`` with faster
training steps."""

from rnn_apps.layers.attention import GlobalAttention
from rnn_apps.layers.convolution import Conv2D
from rnn_apps.layers.deep_bidirectional import DeepBidirectionalRNN
from rnn_apps.layers.normalization import BatchNormalization
from rnn_apps.layers.projected import ProjectedRNN
from rnn_apps.layers.pyramidal import PyramidalBidirectionalRNN
from rnn_apps.layers.tied import TiedLogits
from rnn_apps.layers.visual_attention import VisualAttention

__all__ = ["BatchNormalization", "Conv2D", "DeepBidirectionalRNN", "GlobalAttention", "ProjectedRNN",
           "PyramidalBidirectionalRNN", "TiedLogits", "VisualAttention"]
