"""Chinese text shared by the poem and fill-in-the-blank apps: Han characters, scripts and input normalisation.

A user's text is normalised the same way in three places: in an exported model's graph
(:func:`normalize_graph`, TensorFlow's RE2 regular expressions), in the NumPy poem engine and in Python
(:func:`normalize`, Python's ``re``). The rules are written once, in :data:`INPUT_RULES`, in a form both
engines read alike: RE2's ``\\s`` is ``[\\t\\n\\f\\r ]`` while Python's also matches other white space, so the
white space is spelled out. In order: white space removed, ？！?!… and ``.`` to 。, ；;：:、, to ，, quotation
and title marks dropped.

Nothing here imports TensorFlow at import time (the NumPy engine must start without it).
"""

from __future__ import annotations

import functools
import re
from typing import Container

SCRIPTS = ("simplified", "traditional")
COMMA, PERIOD = "，", "。"
PUNCT = (COMMA, PERIOD)
HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"  # CJK ideographs, their extensions
QUOTES = "「」『』《》〈〉“”‘’\"'"
SENTENCE_ENDS = "？！?!…"
PAUSES = "；;：:、,"

# (pattern, replacement), applied in order; valid and equal in meaning for RE2 and Python's re.
INPUT_RULES = (
    (r"[\t\n\f\r ]+", ""),
    (f"[{SENTENCE_ENDS}]+|\\.", PERIOD),
    (f"[{PAUSES}]", COMMA),
    (f"[{QUOTES}]", ""),
)
_COMPILED_RULES = tuple((re.compile(p), r) for p, r in INPUT_RULES)
_IS_HAN = re.compile(f"[{HAN_RANGES}]")


def is_han(ch: str) -> bool:
    """Whether ``ch`` is a CJK ideograph (the characters a poem line is made of)."""
    return bool(_IS_HAN.fullmatch(ch))


@functools.lru_cache(maxsize=4)
def _opencc(config: str):
    import opencc  # imported lazily: only needed when text is converted

    return opencc.OpenCC(config)


def convert_script(text: str, script: str) -> str:
    """Convert ``text`` to ``script`` ("simplified" or "traditional") with OpenCC."""
    if script == "simplified":
        return _opencc("t2s").convert(text)
    if script == "traditional":
        return _opencc("s2t").convert(text)
    raise ValueError(f"script must be one of {SCRIPTS}; received {script!r}.")


@functools.lru_cache(maxsize=1)
def simplified_only_characters() -> frozenset:
    """The characters that only simplified script writes: those OpenCC's ``STCharacters.txt`` converts to
    traditional without keeping them among the candidates (无 -> 無, 发 -> 發 髮), unlike 台 (臺 台 颱) or 里
    (裏 里), which traditional script writes too."""
    from rnn_apps.textio import opencc_candidates

    return frozenset(c for c, cands in opencc_candidates("traditional").items() if c not in cands)


def written_script(text: str):
    """The script ``text`` is written in: ``"traditional"`` when OpenCC changes it into simplified (its phrases,
    so 乾坤 and 著作 stay) and it holds no character that only simplified script writes (東風, 樓台: 台 is
    traditional too), ``"simplified"`` when it holds such characters and none that changes into simplified
    (东风), None for a mix (東风) or neither (春眠, characters both scripts share, or no Chinese at all)."""
    to_simplified = convert_script(text, "simplified") != text
    simplified = any(c in simplified_only_characters() for c in text)
    if to_simplified != simplified:
        return "traditional" if to_simplified else "simplified"
    return None


def normalize(text: str) -> str:
    """``text`` after :data:`INPUT_RULES` (Python's ``re``), before any script conversion."""
    for pattern, replacement in _COMPILED_RULES:
        text = pattern.sub(replacement, text)
    return text


def conversion_table(script: str, known: Container[str]):
    """A ``tf.lookup`` table from a character the model does not know to its form in ``script`` ("" if none).

    Built from OpenCC's character table (:func:`rnn_apps.textio.opencc_char_table`); an exported model
    converts input of the other script with it, character by character, in its graph.
    """
    import tensorflow as tf

    from rnn_apps.textio import opencc_char_table

    conv = opencc_char_table(script, known)
    keys = list(conv) or ["\u0000"]
    vals = [conv[k] for k in conv] or ["\u0000"]
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(vals)), "")


def normalize_graph(text, table):
    """Text [B] -> (characters, converted): ragged [B, None] strings and bools, in the graph.

    :data:`INPUT_RULES` applied with ``tf.strings.regex_replace``, then each character looked up in
    ``table`` (:func:`conversion_table`); ``converted`` marks the characters it changed.
    """
    import tensorflow as tf

    t = text
    for pattern, replacement in INPUT_RULES:
        t = tf.strings.regex_replace(t, pattern, replacement)
    chars = tf.strings.unicode_split(t, "UTF-8", errors="replace")
    flat = chars.flat_values
    conv = table.lookup(flat)
    return chars.with_flat_values(tf.where(conv != "", conv, flat)), chars.with_flat_values(conv != "")
