"""Long texts cut into sentences (and long sentences into pieces) for a model that reads one sentence at a
time, and the answers joined again: what ``rnn-apps translate`` and ``rnn-apps serve`` both do with a
paragraph, so that both give the same translation of it.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

MAX_SENTENCE_TOKENS = 60  # a sentence longer than this (in the model's tokens) is cut into pieces


def split_sentences(text: str, language: str) -> list[str]:
    """Cut a paragraph into sentences (after . ! ? 。！？ and their runs, keeping closing quotes)."""
    if language == "zh":
        parts = re.findall(r"[^。！？!?]*[。！？!?]+[”’」』\"']*|[^。！？!?]+$", text)
    else:
        parts = re.findall(r".*?[.!?]+[\"')\]]*(?=\s|$)|.+?$", text.strip(), re.S)
    return [p.strip() for p in parts if p.strip()]


def sentence_pieces(text: str, language: str, count_tokens: Callable[[Sequence[str]], Sequence[int]],
                    n_tokens: Optional[int] = None, max_tokens: int = MAX_SENTENCE_TOKENS) -> list[str]:
    """The pieces of ``text`` a model reads one at a time: the text itself when it has at most ``max_tokens``
    tokens, else its sentences, a sentence longer than that cut into pieces of whole words (English) or
    characters (Chinese) of about ``max_tokens`` tokens each.

    Args:
        text: The text.
        language: Its language, ``en`` or ``zh`` (how sentences end and what a piece is made of).
        count_tokens: The model's token count of each of several texts (e.g. its ``tokenize`` signature).
        n_tokens: The token count of ``text`` when already known.
        max_tokens: The most tokens of a piece read whole.

    Returns:
        The pieces, stripped, none empty (``[text.strip()]`` for a short text).
    """
    if n_tokens is None:
        n_tokens = int(count_tokens([text])[0])
    if n_tokens <= max_tokens:
        return [text.strip()]
    sentences = split_sentences(text, language)
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
