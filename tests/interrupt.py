"""A Keras callback that interrupts training at a given step, for the tests that resume an interrupted run."""

import keras


class Stop(Exception):
    """Raised by :class:`StopAt`."""


class StopAt(keras.callbacks.Callback):
    """Raise :class:`Stop` after the ``step``-th training batch this callback sees."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            raise Stop()
