"""Poem corpora: reading, cleaning, script conversion, splitting and batching for the Char-RNN.

A corpus is either the chinese-poetry project's format (JSON lines, or a JSON array, of objects with a
``paragraphs`` list; optionally gzip-compressed), or a user's plain UTF-8 text file with one poem per line,
or poems separated by blank lines.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from rnn_apps.vocab import Vocabulary

SCRIPTS = ("simplified", "traditional")
COMMA, PERIOD = "，", "。"
PUNCT = (COMMA, PERIOD)

_BRACKETS = re.compile(r"（[^（）]*）|\([^()]*\)|\[[^\[\]]*\]|〖[^〖〗]*〗|\{[^{}]*\}|【[^【】]*】")
_DROP = re.compile(r"[「」『』《》〈〉“”‘’\"'\s·・]")
_TO_PERIOD = re.compile(r"[？！?!…]+")
_TO_COMMA = re.compile(r"[；;：:、,]")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_VALID = re.compile(f"[{_HAN}，。]+")
_IS_HAN = re.compile(f"[{_HAN}]")


class CorpusError(ValueError):
    """A corpus file that cannot be read or holds no usable poem."""


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


def is_han(ch: str) -> bool:
    """Whether ``ch`` is a CJK ideograph (the characters a poem line is made of)."""
    return bool(_IS_HAN.fullmatch(ch))


def clean_poem(text: str) -> str | None:
    """Normalise one poem to Han characters with ，and 。; None if it is not a usable poem.

    Editorial annotations in brackets are removed, quotation and title marks dropped, ？！… become 。 and
    ；：、 become ，. A poem with other symbols (such as □ for a lost character) is rejected, since a model
    must not learn to write them.
    """
    t = _BRACKETS.sub("", text)
    t = _DROP.sub("", t)
    t = _TO_PERIOD.sub(PERIOD, t)
    t = _TO_COMMA.sub(COMMA, t)
    t = re.sub(r"[，。]{2,}", lambda m: m.group(0)[-1], t)  # collapse doubled punctuation
    t = t.lstrip("，。")
    if not t:
        return None
    if t[-1] == COMMA:
        t = t[:-1] + PERIOD
    elif t[-1] != PERIOD:
        t += PERIOD
    if len(t) < 6 or not _VALID.fullmatch(t):
        return None
    return t


def _open_text(path: str):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _poem_from_obj(obj) -> str | None:
    if isinstance(obj, dict):
        lines = obj.get("paragraphs", obj.get("content"))
        if isinstance(lines, list) and all(isinstance(x, str) for x in lines):
            return "".join(lines)
        if isinstance(lines, str):
            return lines
    return None


def read_raw_poems(path: str) -> list[str]:
    """Read the poems of a corpus file as raw strings (before cleaning).

    Raises:
        CorpusError: the file is missing, not UTF-8, or not in a supported format.
    """
    if not os.path.isfile(path):
        raise CorpusError(f"No such corpus file: {path}")
    try:
        with _open_text(path) as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}).") from None
    except (OSError, EOFError) as e:
        raise CorpusError(f"Cannot read {path}: {e}") from None
    stripped = text.lstrip("\ufeff \n\r\t")
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            objs = json.loads(stripped) if stripped.startswith("[") else None
        except json.JSONDecodeError:
            objs = None
        if objs is None:  # JSON lines
            objs = []
            for n, line in enumerate(stripped.splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    objs.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{path}:{n}: not a JSON object ({e.msg}).") from None
        poems = [p for p in map(_poem_from_obj, objs) if p]
        if not poems:
            raise CorpusError(f"{path}: no object with a 'paragraphs' list of strings.")
        return poems
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    if len(blocks) > 1:
        return [re.sub(r"\s+", "", b) for b in blocks if b.strip()]
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_poems(path: str, script: str = "simplified") -> list[str]:
    """Read, convert to ``script`` and clean the poems of ``path``; unusable poems are skipped.

    Raises:
        CorpusError: no usable poem in the file.
    """
    if script not in SCRIPTS:
        raise ValueError(f"script must be one of {SCRIPTS}; received {script!r}.")
    raw = read_raw_poems(path)
    poems = [p for p in (clean_poem(convert_script(r, script)) for r in raw) if p]
    if not poems:
        raise CorpusError(
            f"{path}: none of its {len(raw)} poems is usable (a poem needs at least 6 Chinese characters "
            "with ，/。 punctuation)."
        )
    return poems


def split_poems(poems: Sequence[str], val_fraction: float = 0.05, seed: int = 1234):
    """Split into (train, validation) with a seeded permutation; validation gets ``val_fraction``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); received {val_fraction}.")
    order = np.random.default_rng(seed).permutation(len(poems))
    n_val = int(round(len(poems) * val_fraction))
    if val_fraction > 0 and len(poems) > 1:
        n_val = max(1, n_val)
    val = [poems[i] for i in order[:n_val]]
    train = [poems[i] for i in order[n_val:]]
    return train, val


def encode_poems(poems: Sequence[str], vocab: Vocabulary, max_len: int = 128) -> list[np.ndarray]:
    """Encode each poem as ``<bos> chars <eos>`` and cut long ones into pieces of ``max_len + 1`` tokens.

    Consecutive pieces overlap by one token so that every target is predicted exactly once.
    """
    out = []
    for p in poems:
        ids = np.asarray([vocab.bos_id] + vocab.encode(p) + [vocab.eos_id], dtype=np.int32)
        step = max_len
        for s in range(0, max(1, len(ids) - 1), step):
            piece = ids[s : s + max_len + 1]
            if len(piece) >= 2:
                out.append(piece)
    return out


@dataclass
class BatchPlan:
    """Deterministic, resumable batches of token sequences, bucketed by length.

    Every epoch has the same number of batches (``steps_per_epoch``); the order within an epoch depends
    only on ``seed`` and the epoch number, so a run resumed at global step ``s`` sees exactly the batches
    an uninterrupted run would have seen from step ``s`` on. With ``multiple`` (the number of replicas of a
    ``tf.distribute`` strategy) every batch has a multiple of that many rows (short ones are filled with
    empty, zero-weight rows), so each replica gets an equal share.
    """

    sequences: list
    tokens_per_batch: int = 8192
    bucket: int = 16
    seed: int = 0
    max_batch: int = 512
    multiple: int = 1

    def __post_init__(self):
        if not self.sequences:
            raise ValueError("No sequences to batch.")
        lengths = np.array([len(s) - 1 for s in self.sequences])
        self._padded = ((lengths + self.bucket - 1) // self.bucket) * self.bucket
        self._buckets = {L: np.flatnonzero(self._padded == L) for L in np.unique(self._padded)}
        m = max(1, int(self.multiple))
        self._sizes = {
            L: int(max(m, (min(self.max_batch, self.tokens_per_batch // L) // m) * m)) for L in self._buckets
        }
        self.steps_per_epoch = sum(-(-len(ix) // self._sizes[L]) for L, ix in self._buckets.items())

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for L in sorted(self._buckets):
            ix = rng.permutation(self._buckets[L])
            size = self._sizes[L]
            batches.extend(ix[i : i + size] for i in range(0, len(ix), size))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def make(self, index: np.ndarray):
        """Arrays (inputs, targets, weights) for one batch; pad id 0 has weight 0."""
        seqs = [self.sequences[i] for i in index]
        T = int(max(self._padded[i] for i in index))
        rows = -(-len(seqs) // max(1, int(self.multiple))) * max(1, int(self.multiple))
        x = np.zeros((rows, T), np.int32)
        y = np.zeros((rows, T), np.int32)
        for r, s in enumerate(seqs):
            x[r, : len(s) - 1] = s[:-1]
            y[r, : len(s) - 1] = s[1:]
        w = (y != 0).astype(np.float32)
        return x, y, w

    def iterate(self, start_step: int = 0, epochs: int | None = None) -> Iterator:
        """Yield batches from global step ``start_step`` on (for ``epochs`` epochs in all, or forever)."""
        epoch, skip = divmod(start_step, self.steps_per_epoch)
        while epochs is None or epoch < epochs:
            for index in self.epoch_batches(epoch)[skip:]:
                yield self.make(index)
            epoch, skip = epoch + 1, 0
