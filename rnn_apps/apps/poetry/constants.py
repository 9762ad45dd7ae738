"""What the poem model's generation accepts (forms, defaults, limits), importable without TensorFlow.

Shared by the SavedModel export (:mod:`rnn_apps.apps.poetry.export`), the NumPy engine
(:mod:`rnn_apps.apps.poetry.fast`) and the library front end (:mod:`rnn_apps.apps.poetry.generate`).
"""

from __future__ import annotations

from rnn_apps.apps.base import read_meta

FORMS = {"": (0, 0), "wujue": (5, 4), "qijue": (7, 4), "wulv": (5, 8), "qilv": (7, 8)}
AUTO_FORM = "auto"  # the form input that draws one of the four forms for each poem with its seed
FORM_NAMES = {"wujue": "五言绝句", "qijue": "七言绝句", "wulv": "五言律诗", "qilv": "七言律诗"}
CONFIG_NAME = "poetry.json"
DEFAULT_SAMPLING = {"temperature": 0.8, "top_k": 0, "top_p": 0.9, "max_length": 128}
MAX_LENGTH = 512
MAX_INPUT_CHARS = 4096


def load_config(model_dir: str) -> dict:
    """The settings, vocabulary and card of an exported poem model (``assets.extra/poetry.json``)."""
    return read_meta(model_dir, CONFIG_NAME, "poem")
