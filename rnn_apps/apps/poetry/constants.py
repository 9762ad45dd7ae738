"""What the poem model's generation accepts (forms, defaults, limits), importable without TensorFlow.

Shared by the SavedModel export (:mod:`rnn_apps.apps.poetry.export`), the NumPy engine
(:mod:`rnn_apps.apps.poetry.fast`) and the library front end (:mod:`rnn_apps.apps.poetry.generate`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from rnn_apps import chinese
from rnn_apps.apps.base import read_meta
from rnn_apps.vocab import SPECIALS

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


class ModelReading:
    """A poem model's reading of a text, from its export's vocabulary alone (no network, no TensorFlow): the
    characters after its input rules (:func:`rnn_apps.chinese.normalize`), with a character of the other
    script that it does not know converted to its own (OpenCC's table, as the graph's ``_chars`` converts it).

    One reading serves the NumPy engine, :class:`~rnn_apps.apps.poetry.generate.PoemGenerator` on either
    engine and the server's request checks, so that all of them read a start or an acrostic alike.

    Args:
        tokens: The vocabulary's tokens in id order, the specials first (``assets.extra/poetry.json``'s
            ``vocab.tokens``).
        script: The model's script, ``"simplified"`` or ``"traditional"``.
    """

    def __init__(self, tokens: Sequence[str], script: str):
        self.known = frozenset(t for i, t in enumerate(tokens) if i >= len(SPECIALS))
        self.script = script
        # OpenCC's table takes a while to build: only a text with a character the model does not know needs it
        self._conversion: Optional[dict] = None

    def __call__(self, text: str) -> list[str]:
        chars = list(chinese.normalize(text))
        if any(c not in self.known for c in chars):
            if self._conversion is None:
                from rnn_apps.textio import opencc_char_table

                self._conversion = opencc_char_table(self.script, self.known)
            chars = [self._conversion.get(c, c) for c in chars]
        return chars

    def unknown(self, text: str) -> str:
        """The characters of ``text`` the model does not know, after conversion, in order."""
        return "".join(c for c in self(text) if c not in self.known)
