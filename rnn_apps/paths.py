"""Where the shipped models are found."""

from __future__ import annotations

import os
from pathlib import Path


def models_root() -> str:
    """The models directory: ``$RNN_APPS_MODELS``, else ``./models`` when it exists, else the checkout's."""
    env = os.environ.get("RNN_APPS_MODELS")
    if env:
        return env
    if os.path.isdir("models") and os.listdir("models"):
        return os.path.abspath("models")
    return str(Path(__file__).resolve().parent.parent / "models")


def default_model_dir(app: str) -> str:
    """``<models>/<app>``: the newest version there is used."""
    return os.path.join(models_root(), app)
