"""Data of the fill-in-the-blank model: the poem corpus, a ``<mask>`` token, batches with masked context.

The corpus, its cleaning, script conversion and seeded split are the poem app's
(:mod:`rnn_apps.poems`), so the validation poems are the poem model's and were never trained on.
A poem is encoded as ``<bos> chars <eos>``; the model predicts every character from the characters on both
sides of it (never from itself), and in training about ``mask_rate`` of the input characters are replaced by
``<mask>`` so that other blanks in the context (several □ in one poem) are handled.
"""

from __future__ import annotations

import re
from typing import Iterator, Sequence

import numpy as np

from rnn_apps import limits
from rnn_apps.batches import BatchPlan
from rnn_apps.chinese import is_han
from rnn_apps.poems import encode_poems
from rnn_apps.vocab import SPECIALS, Vocabulary

MASK = "<mask>"
MASK_ID = len(SPECIALS)  # the first ordinary token of every fill vocabulary
BLANKS = limits.BLANK_MARKS
MAX_CHARS = limits.APPS["fill"].max_chars["text"]  # the limits `rnn-apps serve` applies too
MAX_BLANKS = limits.APPS["fill"].max_blanks["text"][1]


class FillError(ValueError):
    """Input the fill-in-the-blank model cannot take (with a message that says what to do)."""


def build_vocab(poems: Sequence[str], min_count: int = 3) -> Vocabulary:
    """A vocabulary of the training poems' characters with ``<mask>`` at id 4."""
    base = Vocabulary.build(poems, min_count=min_count)
    return Vocabulary([MASK] + base.tokens[len(SPECIALS):])


def check_vocab(vocab: Vocabulary) -> None:
    if len(vocab.tokens) <= MASK_ID or vocab.tokens[MASK_ID] != MASK:
        raise ValueError(f"A fill vocabulary has {MASK!r} at id {MASK_ID}.")


def blank_ids(vocab: Vocabulary) -> np.ndarray:
    """Boolean [V]: the tokens a blank may be filled with: characters only. A blank (□) stands for a missing
    character; ，。 are predicted in training like any position, but a blank at the end of an unpunctuated
    line ("白日依山□") would otherwise be filled with 。, the likeliest token after a line's last character."""
    return np.array([i > MASK_ID and is_han(t) for i, t in enumerate(vocab.tokens)])


def encode(poems: Sequence[str], vocab: Vocabulary, max_len: int = 128) -> list[np.ndarray]:
    """``<bos> chars <eos>`` id arrays; long poems cut into pieces of at most ``max_len + 1`` tokens."""
    return encode_poems(poems, vocab, max_len)


def mask_inputs(x: np.ndarray, weights: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Replace about ``rate`` of the predicted positions (``weights > 0``) of ``x`` by ``<mask>``."""
    if rate <= 0:
        return x
    hit = (rng.random(x.shape) < rate) & (weights > 0)
    return np.where(hit, MASK_ID, x).astype(x.dtype)


class FillBatchPlan(BatchPlan):
    """The poem app's deterministic, resumable length buckets; a batch is (inputs, targets, weights).

    Targets are the sequences themselves; weights are 1 where a character or ，。 (not ``<unk>``, not the
    bookends, not padding) is to be predicted. Inputs are the sequences with about ``mask_rate`` of those
    positions replaced by ``<mask>``, drawn from a generator seeded by (seed, epoch, batch), so that a resumed
    run sees the same batches.
    """

    mask_rate: float = 0.12

    def make(self, index: np.ndarray, rng: np.random.Generator | None = None):
        seqs = [self.sequences[i] for i in index]
        T = int(max(len(s) for s in seqs))
        T = -(-T // self.bucket) * self.bucket
        m = max(1, int(self.multiple))
        rows = -(-len(seqs) // m) * m
        y = np.zeros((rows, T), np.int32)
        for r, s in enumerate(seqs):
            y[r, : len(s)] = s
        w = (y > MASK_ID).astype(np.float32)
        x = mask_inputs(y, w, self.mask_rate, rng) if rng is not None else y.copy()
        return x, y, w

    def iterate(self, start_step: int = 0, epochs: int | None = None) -> Iterator:
        epoch, skip = divmod(start_step, self.steps_per_epoch)
        while epochs is None or epoch < epochs:
            for b, index in enumerate(self.epoch_batches(epoch)):
                if b < skip:
                    continue
                yield self.make(index, np.random.default_rng([self.seed, epoch, b, 7]))
            epoch, skip = epoch + 1, 0


def make_plan(seqs, tokens_per_batch: int, seed: int, mask_rate: float, multiple: int = 1) -> FillBatchPlan:
    plan = FillBatchPlan(seqs, tokens_per_batch, seed=seed, multiple=multiple)
    plan.mask_rate = float(mask_rate)
    return plan


# --------------------------------------------------------------------------------------------- user input

_WS = re.compile(r"\s+")


def parse_text(text: str, where: str = "The text") -> str:
    """Check one user text and return it without whitespace, every blank mark written □.

    The checks and their messages are :mod:`rnn_apps.limits`' (``rnn-apps serve`` says the same);
    ``where`` names the text in them (``Text 2``).

    Raises:
        FillError: empty, longer than :data:`MAX_CHARS`, no blank, more than :data:`MAX_BLANKS`, or nothing
            but blanks and punctuation.
    """
    if not isinstance(text, str):
        raise FillError(f"Expected text, received {type(text).__name__}.")
    with limits.errors_as(FillError):
        limits.check_text(limits.APPS["fill"], "text", text, where=where)
    t = _WS.sub("", text)
    for b in BLANKS[1:]:
        t = t.replace(b, BLANKS[0])
    return t


def hide_one(poems: Sequence[str], seed: int = 0):
    """For each poem, one position of a Han character chosen uniformly at random (seeded); -1 if none.

    Returns (texts with that character replaced by □, positions, hidden characters).
    """
    rng = np.random.default_rng(seed)
    texts, positions, answers = [], [], []
    for p in poems:
        cand = [i for i, c in enumerate(p) if is_han(c)]
        if not cand:
            texts.append(p)
            positions.append(-1)
            answers.append("")
            continue
        i = int(cand[rng.integers(len(cand))])
        texts.append(p[:i] + BLANKS[0] + p[i + 1 :])
        positions.append(i)
        answers.append(p[i])
    return texts, positions, answers
