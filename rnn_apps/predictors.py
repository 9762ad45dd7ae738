"""The inference wrapper of each app, found by the app's name.

One app that needs another's model (``rnn-apps caption --lang zh`` translates its captions with the
translation model; ``rnn-apps fill-poem`` weighs its candidates with the poem model's ``reader()``) asks
for it here by name instead of importing the other app; the wrapper's module is
imported only when it is asked for, so neither app (nor TensorFlow) is loaded before it is needed.
"""

from __future__ import annotations

import importlib

# app name -> "module:class" of its rnn_apps.apps.base.Predictor.
PREDICTORS = {
    "caption": "rnn_apps.apps.caption.captioner:ImageCaptioner",
    "fill": "rnn_apps.apps.fill.filler:Filler",
    "poetry": "rnn_apps.apps.poetry.generate:PoemGenerator",
    "sentiment": "rnn_apps.apps.sentiment.classify:SentimentClassifier",
    "translate": "rnn_apps.apps.translate.translate:Translator",
}


def predictor_class(app: str) -> type:
    """The inference wrapper class of ``app`` (e.g. ``"translate"`` -> ``Translator``).

    Raises:
        ValueError: no app of that name has one.
    """
    try:
        spec = PREDICTORS[app]
    except (KeyError, TypeError):
        raise ValueError(f"No app named {app!r} has an inference wrapper; expected one of {sorted(PREDICTORS)}.") from None
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def load_predictor(app: str, model_dir: str | None = None, **kwargs):
    """The inference wrapper of ``app`` on ``model_dir`` (default: the shipped model); ``kwargs`` go to it."""
    return predictor_class(app)(model_dir, **kwargs)
