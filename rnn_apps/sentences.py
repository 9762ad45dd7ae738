"""Texts cut into sentences (and long sentences into pieces) for a model that reads one sentence at a
time, and the answers joined again: what ``rnn-apps translate`` and ``rnn-apps serve`` both do with a
paragraph, so that both give the same translation of it.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

MAX_SENTENCE_TOKENS = 60  # a sentence longer than this (in the model's tokens) is cut into pieces


# Words ending in a full stop that do not end a sentence ("Mr. Smith", "e.g. this"), lower-cased. A single
# letter followed by a full stop (an initial: "J. K. Rowling") is one too.
ABBREVIATIONS = frozenset("mr mrs ms dr prof st jr sr mt vs etc e.g i.e a.m p.m u.s u.k no fig approx dept".split())

# An English sentence ends at . ! ? (a run of them), with the closing quotes or brackets after them, before
# white space.
_EN_END = re.compile(r"[.!?]+([\"')\]’”]*)\s+")


# A Chinese sentence ends at 。！？!? or an ellipsis (…… or …), or at a half-width full stop typed after a
# character ("我爱你. 我想你."; not the stop of "Mr." or "3.5"), with the closing quotes after them.
_ZH_END = re.compile(r"(?:[。！？!?]+|…+|(?<=[\u3400-\u9fff\uf900-\ufaff])\.+)[”’」』\"']*")


def split_sentences(text: str, language: str) -> list[str]:
    """Cut a paragraph into sentences: after 。！？!?, an ellipsis or a full stop after a character (Chinese), or after . ! ? and white space (English), but
    not after a full stop that ends one of :data:`ABBREVIATIONS` or an initial ("Mr. Smith", "J. K. Rowling"),
    nor after a quoted question or exclamation that a lower-case word goes on ('"Are you OK?" he asked.');
    closing quotes stay with their sentence."""
    if language == "zh":
        parts, start = [], 0
        for m in _ZH_END.finditer(text):
            parts.append(text[start:m.end()])
            start = m.end()
        parts.append(text[start:])
        return [p.strip() for p in parts if p.strip()]
    text = text.strip()
    parts, start = [], 0
    for m in _EN_END.finditer(text):
        marks = m.group().split()[0] if m.group().split() else ""
        word = text[start:m.start()].split()[-1:] or [""]
        stem = word[0].lstrip("\"'(“‘[").lower()
        if marks == "." and (stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha())):
            continue
        if m.group(1) and marks[0] in "?!" and text[m.end():m.end() + 1].islower():
            continue
        parts.append(text[start:m.end()])
        start = m.end()
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def sentence_pieces(text: str, language: str, count_tokens: Callable[[Sequence[str]], Sequence[int]],
                    n_tokens: Optional[int] = None, max_tokens: int = MAX_SENTENCE_TOKENS) -> list[str]:
    """The pieces of ``text`` a model reads one at a time: its sentences (:func:`split_sentences`), a
    sentence longer than ``max_tokens`` tokens cut into pieces of whole words (English) or characters
    (Chinese) of about ``max_tokens`` tokens each.

    The translators were trained on pairs of one sentence (Tatoeba): given several sentences at once they
    translate the first ones and drop the rest, so every text of more than one sentence is cut.

    Args:
        text: The text.
        language: Its language, ``en`` or ``zh`` (how sentences end and what a piece is made of).
        count_tokens: The model's token count of each of several texts (e.g. its ``tokenize`` signature).
        n_tokens: The token count of ``text`` when already known.
        max_tokens: The most tokens of a piece read whole.

    Returns:
        The pieces, stripped, none empty (``[text.strip()]`` for a short text of one sentence).
    """
    sentences = split_sentences(text, language)
    if len(sentences) <= 1:
        if n_tokens is None:
            n_tokens = int(count_tokens([text])[0])
        if n_tokens <= max_tokens:
            return [text.strip()]
        sentences = sentences or [text.strip()]
    out = []
    for sentence, n in zip(sentences, count_tokens(sentences) if sentences else []):
        if n <= max_tokens:
            out.append(sentence)
            continue
        units = sentence.split() if language == "en" else list(sentence)
        step = max(1, int(len(units) * max_tokens / max(int(n), 1)))
        sep = " " if language == "en" else ""
        out.extend(sep.join(units[i:i + step]) for i in range(0, len(units), step))
    return [p for p in out if p.strip()] or [text.strip()]


def join_pieces(parts: Sequence[str], language: str) -> str:
    """The answers to the pieces of one text as one text: joined by spaces, or without them for Chinese."""
    return ("" if language == "zh" else " ").join(p for p in parts if p)
