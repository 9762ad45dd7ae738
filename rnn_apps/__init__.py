"""rnn-apps: recurrent-network cells written from the equations, and the apps built on them."""

__version__ = "0.1.0"
