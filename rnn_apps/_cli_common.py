"""Old home of the command-line helpers, kept while command modules move to :mod:`rnn_apps.cli.common` and
:mod:`rnn_apps.cli.options` (the public names)."""

from __future__ import annotations

from rnn_apps.cli.common import (  # noqa: F401  (re-exported under the old names)
    FiniteFloatRange, echo_json as _echo_json, friendly_errors as _friendly_errors, gather_texts as _gather_texts,
    progress_to_stderr as _progress_to_stderr, raised_loading_a_saved_model as _raised_loading_a_saved_model,
    report as _report, verbosity as _verbosity,
)
from rnn_apps.cli.options import keep_best as _KEEP_BEST, strategy as _STRATEGY  # noqa: F401

_PATIENCE = __import__("click").option(
    "--patience", type=__import__("click").IntRange(min=0), default=None,
    help="Stop after this many epochs without a lower validation loss (default 0: train every epoch).",
)
