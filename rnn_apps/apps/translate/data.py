"""Sentence pairs for translation: reading, script normalisation, the train/validation split and batches.

The corpus format is the tab-separated one of the Tatoeba Project as distributed by manythings.org/anki:
one pair a line, ``english<TAB>chinese[<TAB>attribution]`` (UTF-8; extra columns are ignored). The
English-Chinese file mixes simplified and traditional script; :func:`normalize_zh` converts Chinese to
simplified (OpenCC), so a model learns one script and writes simplified Chinese.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

DIRECTIONS = ("en-zh", "zh-en")


class TranslationDataError(ValueError):
    """A corpus that cannot be read (with the file and line at fault)."""


@dataclass(frozen=True)
class Pair:
    en: str
    zh: str

    def side(self, language: str) -> str:
        return self.en if language == "en" else self.zh


def parse_direction(direction: str) -> tuple[str, str]:
    """``"en-zh"`` -> ``("en", "zh")``; raises TranslationDataError for anything else."""
    if direction not in DIRECTIONS:
        raise TranslationDataError(f"direction must be one of {', '.join(DIRECTIONS)}; received {direction!r}.")
    src, tgt = direction.split("-")
    return src, tgt


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def normalize_zh(text: str) -> str:
    """Chinese text in simplified script (OpenCC t2s), whitespace trimmed."""
    return _t2s().convert(text.strip())


_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def looks_chinese(text: str) -> bool:
    return bool(_HAN.search(text))


def load_pairs(path: str, normalize: bool = True) -> list[Pair]:
    """Read sentence pairs from a TSV file (``english<TAB>chinese[<TAB>...]``).

    Blank lines are skipped; a byte-order mark is ignored. With ``normalize`` the Chinese side is
    converted to simplified script.

    Raises:
        FileNotFoundError: no such file.
        TranslationDataError: a line without two non-empty columns, or not UTF-8 (naming the line).
    """
    pairs = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise TranslationDataError(f"{path} is a directory; give a TSV file of english<TAB>chinese pairs.") from None
    with f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise TranslationDataError(f"{path}, line {n}: not UTF-8 text ({e.reason}).") from None
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
                raise TranslationDataError(
                    f"{path}, line {n}: expected 'english<TAB>chinese' (two non-empty tab-separated columns); "
                    f"received {line[:80]!r}."
                )
            en, zh = cols[0].strip(), cols[1].strip()
            pairs.append(Pair(en, normalize_zh(zh) if normalize else zh))
    if not pairs:
        raise TranslationDataError(f"{path} holds no sentence pairs.")
    return pairs


def split_pairs(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """A seeded split that keeps every pair of one English sentence on the same side.

    Tatoeba often gives several translations of one sentence; grouping them by the (lowercased) English
    sentence keeps the validation sentences unseen in training.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise TranslationDataError(f"val_fraction must be in [0, 1); received {val_fraction}.")
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.en.lower(), []).append(i)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_val = int(round(val_fraction * len(keys)))
    val_keys = {keys[i] for i in order[:n_val]}
    train = [p for p in pairs if p.en.lower() not in val_keys]
    val = [p for p in pairs if p.en.lower() in val_keys]
    return train, val


@dataclass
class PairBatches:
    """Deterministic, resumable batches of (source, target) id sequences, similar lengths together.

    Each epoch has ``steps_per_epoch`` batches of at most ``batch_size`` pairs; the order of an epoch depends
    only on ``seed`` and the epoch number (pairs are shuffled, sorted by length inside windows of 50
    batches, and the batches shuffled), so a run resumed at step ``s`` sees the batches an uninterrupted
    run would have seen.

    ``sources`` hold the source ids followed by ``<eos>``; ``targets`` ``<bos> ids <eos>``: a batch is
    ``((source, target_in), target_out, weights)`` with target_in/out the target without its last/first id.
    """

    sources: list
    targets: list
    batch_size: int = 64
    seed: int = 0
    shuffle: bool = True
    window: int = 50
    multiple: int = 1
    _lengths: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if not self.sources or len(self.sources) != len(self.targets):
            raise ValueError(f"Need equally many sources and targets (> 0); received {len(self.sources)} and {len(self.targets)}.")
        self._lengths = np.array([max(len(s), len(t)) for s, t in zip(self.sources, self.targets)])
        self.steps_per_epoch = -(-len(self.sources) // self.batch_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        n = len(self.sources)
        if not self.shuffle:
            order = np.argsort(self._lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(n)
        w = self.batch_size * self.window
        batches = []
        for i in range(0, n, w):
            chunk = perm[i : i + w]
            chunk = chunk[np.argsort(self._lengths[chunk], kind="stable")]
            batches.extend(chunk[j : j + self.batch_size] for j in range(0, len(chunk), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def make(self, index):
        """Arrays ``((source, target_in), target_out, weights)`` of one batch; padding (id 0) has weight 0.

        With ``multiple`` > 1 the batch is filled up with empty, zero-weight rows to a multiple of it.
        """
        src = [self.sources[i] for i in index]
        tgt = [self.targets[i] for i in index]
        S = max(len(s) for s in src)
        T = max(len(t) for t in tgt) - 1
        m = max(1, int(self.multiple))
        rows = -(-len(index) // m) * m
        x = np.zeros((rows, S), np.int32)
        y_in = np.zeros((rows, T), np.int32)
        y_out = np.zeros((rows, T), np.int32)
        for r, (s, t) in enumerate(zip(src, tgt)):
            x[r, : len(s)] = s
            y_in[r, : len(t) - 1] = t[:-1]
            y_out[r, : len(t) - 1] = t[1:]
        return (x, y_in), y_out, (y_out != 0).astype(np.float32)

    def iterate(self, start_step: int = 0, epochs: Optional[int] = None) -> Iterator:
        epoch, skip = divmod(start_step, self.steps_per_epoch)
        while epochs is None or epoch < epochs:
            for index in self.epoch_batches(epoch)[skip:]:
                yield self.make(index)
            epoch, skip = epoch + 1, 0


def split_sentences(text: str, language: str) -> list[str]:
    """Cut a paragraph into sentences (after . ! ? 。！？ and their runs, keeping closing quotes)."""
    if language == "zh":
        parts = re.findall(r"[^。！？!?]*[。！？!?]+[”’」』\"']*|[^。！？!?]+$", text)
    else:
        parts = re.findall(r".*?[.!?]+[\"')\]]*(?=\s|$)|.+?$", text.strip(), re.S)
    return [p.strip() for p in parts if p.strip()]
