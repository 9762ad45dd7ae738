"""Where the shipped models are found, and which model each app uses by default."""

from __future__ import annotations

import os
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
    half-written ``./models/<app>`` does not hide the shipped one.
    """
    if not os.environ.get(MODELS_ENV):
        local = os.path.abspath(os.path.join(LOCAL_MODELS, app))
        if list_versions(local):
            return local
    return os.path.join(models_root(), app)
