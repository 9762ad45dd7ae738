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


def xla_cache_dir() -> str:
    """Where compiled XLA programs are kept between runs: $RNN_APPS_CACHE/xla, else ~/.cache/rnn-apps/xla."""
    root = os.environ.get("RNN_APPS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "rnn-apps"
    )
    return os.path.join(root, "xla")


def enable_xla_cache() -> None:
    """Let TensorFlow keep compiled XLA programs on disk, so a command compiles each one only once.

    The poem model decodes small batches with an XLA-compiled loop; compiling it costs seconds, which
    the cache saves on every later run. Must run before TensorFlow is imported. Does nothing when
    ``TF_XLA_FLAGS`` already names a cache, when ``RNN_APPS_CACHE=off``, or when the directory cannot
    be created.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" in flags or os.environ.get("RNN_APPS_CACHE") == "off":
        return
    path = xla_cache_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return
    os.environ["TF_XLA_FLAGS"] = (flags + " " if flags else "") + f"--tf_xla_persistent_cache_directory={path}"


def import_tensorflow_quietly(init_devices: bool = True):
    """Import TensorFlow and initialise its devices without the native start-up messages.

    Also turns on the on-disk XLA cache (:func:`enable_xla_cache`). Set ``RNN_APPS_VERBOSE=1`` to see
    the messages. ``init_devices=False`` leaves the devices (and with them the thread pools, which can be
    sized only before) to the first use.
    """
    if "tensorflow" not in sys.modules:
        enable_xla_cache()
    with native_stderr_silenced():
        import tensorflow as tf

        if init_devices:
            tf.config.list_logical_devices()
    return tf
