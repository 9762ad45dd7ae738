"""Keep TensorFlow's native start-up chatter (CUDA probes, absl notices) off a command's stderr."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null inside the block (Python exceptions still propagate)."""
    if os.environ.get("RNN_APPS_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. under a test runner)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly():
    """Import TensorFlow and initialise its devices without the native start-up messages.

    Set ``RNN_APPS_VERBOSE=1`` to see them.
    """
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_logical_devices()
    return tf
