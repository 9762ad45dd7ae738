"""Token vocabularies saved as JSON (never pickle), shared by every app."""

from __future__ import annotations

import collections
import json
import os
from typing import Iterable, Sequence

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


class Vocabulary:
    """A token <-> id mapping with reserved ids 0..3 for ``<pad> <unk> <bos> <eos>``.

    Args:
        tokens: The ordinary tokens, in id order (specials are prepended).
    """

    FORMAT = "rnn_apps.vocabulary/1"

    def __init__(self, tokens: Sequence[str]):
        seen = set(SPECIALS)
        ordinary = []
        for t in tokens:
            if not isinstance(t, str) or not t:
                raise ValueError(f"Vocabulary tokens must be non-empty strings; received {t!r}.")
            if t not in seen:
                seen.add(t)
                ordinary.append(t)
        self.tokens = list(SPECIALS) + ordinary
        self.index = {t: i for i, t in enumerate(self.tokens)}

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    @classmethod
    def build(cls, texts: Iterable[Iterable[str]], min_count: int = 1, max_size: int | None = None):
        """Count tokens over ``texts`` and keep those seen ``min_count`` times (most frequent first)."""
        counts = collections.Counter()
        for t in texts:
            counts.update(t)
        ranked = sorted((tok for tok, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int], join: str = "") -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.tokens[i])
        return join.join(out)

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The distinct tokens not in the vocabulary, in order of first appearance."""
        seen, out = set(), []
        for t in tokens:
            if t not in self.index and t not in seen:
                seen.add(t)
                out.append(t)
        return out

    def extend(self, tokens: Iterable[str]) -> list[str]:
        """Append new tokens (keeping every existing id); return those added."""
        added = []
        for t in tokens:
            if t not in self.index:
                self.index[t] = len(self.tokens)
                self.tokens.append(t)
                added.append(t)
        return added

    def to_json(self) -> dict:
        return {"format": self.FORMAT, "specials": list(SPECIALS), "tokens": self.tokens}

    def save(self, path: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, ensure_ascii=False)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "Vocabulary":
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"Cannot read vocabulary {path}: {e}") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data, where: str = "the vocabulary") -> "Vocabulary":
        """The vocabulary of a :meth:`to_json` object (``where`` names its source in errors)."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT or not isinstance(data.get("tokens"), list):
            raise ValueError(f"{where} is not an rnn_apps vocabulary (expected format {cls.FORMAT!r}).")
        if data["tokens"][: len(SPECIALS)] != list(SPECIALS):
            raise ValueError(f"{where}: the first tokens must be {list(SPECIALS)}.")
        return cls(data["tokens"][len(SPECIALS) :])
