"""Where the shipped models are found, and which model each app uses by default."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from rnn_apps.export import list_versions

MODELS_ENV = "RNN_APPS_MODELS"
LOCAL_MODELS = "models"


def models_root() -> str:
    """The shipped models directory: ``$RNN_APPS_MODELS``, else the checkout's ``models/``.

    A ``./models`` in the working directory is not it: that one holds the user's own exports, which
    :func:`default_model_dir` prefers app by app.
    """
    return os.environ.get(MODELS_ENV) or str(Path(__file__).resolve().parent.parent / "models")


def default_model_dir(app: str) -> str:
    """The app directory whose newest version an app uses when no model is named.

    ``$RNN_APPS_MODELS/<app>`` when that variable is set (the user chose the models directory). Otherwise
    ``./models/<app>`` when it holds a model (a complete version directory: an export of the user's own into
    the working directory's ``models/``), else the shipped ``<checkout>/models/<app>``. The choice is made per
    app: exporting one app into ``./models`` leaves every other app on its shipped model, and an empty or
    half-written ``./models/<app>`` does not hide the shipped one. A ``./models/<app>`` that is not the
    shipped one is named on standard error (once a process), so that a command's answer is never taken for
    the shipped model's.
    """
    shipped = os.path.join(models_root(), app)
    if not os.environ.get(MODELS_ENV):
        local = os.path.abspath(os.path.join(LOCAL_MODELS, app))
        if list_versions(local):
            if os.path.realpath(local) != os.path.realpath(shipped) and list_versions(shipped):
                _say_working_directory_model(local, shipped)
            return local
    return shipped


@functools.lru_cache(maxsize=None)  # once per model and process: a command may resolve its default twice
def _say_working_directory_model(local: str, shipped: str) -> None:
    print(f"Note: using {local} (a model in the working directory's models/), not the shipped {shipped}.",
          file=sys.stderr)
