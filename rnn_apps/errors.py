"""Errors that the CLI reports as one line (they carry a message a person can act on)."""

from __future__ import annotations

import sys

# "module:class" of every app error. Looked up in sys.modules only: an exception of a class can exist only
# once its module is imported, so reporting an error never imports the other apps (nor TensorFlow).
_KNOWN = (
    "rnn_apps.apps.caption.data:CaptionDataError",
    "rnn_apps.apps.caption.features:FeatureCacheError",
    "rnn_apps.apps.caption.images:CaptionError",
    "rnn_apps.apps.fill.data:FillError",
    "rnn_apps.apps.forecast.data:ForecastDataError",
    "rnn_apps.apps.poetry.generate:PoemError",
    "rnn_apps.apps.sentiment.classify:SentimentError",
    "rnn_apps.apps.sentiment.data:SentimentDataError",
    "rnn_apps.apps.translate.data:TranslationDataError",
    "rnn_apps.apps.translate.translate:TranslateError",
    "rnn_apps.backbones:BackboneError",
    "rnn_apps.cards:CardError",
    "rnn_apps.poems:CorpusError",
    "rnn_apps.training:TrainingError",
)


def known_error_types() -> tuple:
    """The error classes the CLI prints as one line, among those already imported (and file errors)."""
    found = []
    for spec in _KNOWN:
        module, name = spec.split(":")
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return (*found, FileNotFoundError, FileExistsError)


def all_error_types() -> tuple:
    """Every app error class (imports every app): for tests that check the list is complete and right."""
    import importlib

    return tuple(getattr(importlib.import_module(spec.split(":")[0]), spec.split(":")[1]) for spec in _KNOWN)
