"""Helpers shared by the command modules (``rnn_apps.cli`` and each app's ``commands``).

Kept apart from :mod:`rnn_apps.cli` so that the app command modules can use them without importing
the click group that registers them (which would be circular under ``python -m rnn_apps.cli``).
"""

from __future__ import annotations

import functools
import json
import sys

import click


def _friendly_errors(fn):
    """Print known errors as one clear line (exit status 2) instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            from rnn_apps.errors import known_error_types

            if isinstance(e, known_error_types()) and not isinstance(e, click.ClickException):
                raise click.ClickException(str(e)) from None
            if _raised_loading_a_saved_model(e):
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise click.ClickException(
                    f"Could not load the model ({type(e).__name__}: {first[:300]}). Its directory is damaged or "
                    "incomplete: export it again, or choose another with --model.") from None
            raise

    return wrapper


def _raised_loading_a_saved_model(e: BaseException) -> bool:
    """Whether ``e`` came out of ``tf.saved_model.load`` (a truncated or corrupt SavedModel: its protobuf
    cannot be parsed, or its variables cannot be read). Any error there means the files are unusable."""
    import os

    tb = e.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename.replace(os.sep, "/")
        if path.endswith(("tensorflow/python/saved_model/load.py", "tensorflow/python/saved_model/loader_impl.py")):
            return True
        tb = tb.tb_next
    return False


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and infinities (a range check alone lets NaN through,
    since every comparison with NaN is false)."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        import math

        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


_STRATEGY = click.option(
    "--strategy", type=click.Choice(["default", "mirrored", "multi-worker"]), default="default", show_default=True,
    help="tf.distribute strategy: one device, all local GPUs/CPUs, or workers from TF_CONFIG.",
)

_KEEP_BEST = click.option(
    "--keep-best/--keep-last", default=None,
    help="Keep the weights of the epoch with the lowest validation loss (default) or those of the last epoch.",
)
_PATIENCE = click.option(
    "--patience", type=click.IntRange(min=0), default=None,
    help="Stop after this many epochs without a lower validation loss (default 0: train every epoch).",
)


def _verbosity() -> int:
    """Keras progress bars on a terminal, one line per epoch otherwise."""
    return 1 if sys.stderr.isatty() else 2


def _progress_to_stderr(enabled: bool):
    """With --json, progress goes to stderr so that stdout holds only the JSON."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        _echo_json(summary)
    else:
        for k, v in summary.items():
            click.echo(f"{k}: {v}")


def _gather_texts(texts, files, read_file, error, usage: str, nothing: str) -> list:
    """The TEXT arguments ('-': standard input) and then the ``--file`` paths' lines, in order.

    ``read_file(path, stdin)`` reads one file's texts; ``error`` (an app error class) carries ``usage``
    when nothing was given and ``nothing`` when all that was given is blank.
    """
    stdin = click.get_binary_stream("stdin")
    inputs = []
    for t in texts:
        inputs.extend(read_file("-", stdin) if t == "-" else [t])
    for path in files:
        inputs.extend(read_file(path, stdin))
    if not texts and not files:
        raise error(usage)
    if not inputs:
        raise error(nothing)
    return inputs
