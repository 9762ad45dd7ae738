"""Deterministic, resumable batches of token sequences bucketed by length (the poem and fill apps' plans)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np


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


def batch_dataset(plan: BatchPlan, start_step: int, epochs: Optional[int]):
    """A ``tf.data`` pipeline of ``plan``'s (inputs, targets, weights) from ``start_step`` (endless when
    ``epochs`` is None); for every plan whose batches are three [batch, time] arrays (int32, int32, float32)."""
    import tensorflow as tf

    from rnn_apps.datasets import generator_dataset

    spec = (
        tf.TensorSpec((None, None), tf.int32),
        tf.TensorSpec((None, None), tf.int32),
        tf.TensorSpec((None, None), tf.float32),
    )
    total = None if epochs is None else plan.steps_per_epoch * epochs - start_step
    return generator_dataset(lambda: plan.iterate(start_step, epochs), spec, total)
