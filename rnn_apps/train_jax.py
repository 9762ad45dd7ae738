"""Training on an accelerator with Keras 3 on JAX, for apps whose networks have a backend-agnostic twin.

The package trains on TensorFlow (``rnn-apps train``), which a GPU machine may not have. An app that can
build its network from Keras's built-in layers with the weight layout of its ``rnn_apps`` layers (the
built-in ``LSTM`` keeps kernel, recurrent kernel and bias with the gates in the order i, f, c, o, as
``rnn_apps.cells.LSTMCell`` does) trains that twin here on JAX and exports the weights with TensorFlow
afterwards: ``rnn_apps.apps.poetry.train_jax`` and ``rnn_apps.apps.fill.train_jax`` (their docstrings have
the commands). This module holds what they share: the schedule, fixed-shape batches and the loop.

The loop: Adam with ``WARMUP_STEPS`` of linear warm-up, then a cosine decay to ``FINAL_LR_FRACTION`` of the
peak learning rate (Loshchilov & Hutter, 2017, "SGDR"), gradients clipped to a global norm of 1 (Pascanu et
al., 2013), the loss the mean cross-entropy of a batch's weighted targets. Batches have a few fixed shapes
(pieces bucketed by length), so the step compiles once per shape. The number of epochs is planned from the
second epoch's duration to fit a time budget; the weights of the epoch with the lowest validation
cross-entropy are kept.

Nothing here imports TensorFlow, and JAX only inside :func:`fit`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Callable, Optional, Sequence

import numpy as np

WARMUP_STEPS = 150
FINAL_LR_FRACTION = 0.05

Batch = tuple  # (inputs [B, T] int32, targets [B, T] int32, weights [B, T] float32)


def file_key(path: str) -> str:
    """A weight's path as an ``.npz`` key ("/" cannot be one on every system)."""
    return path.replace("/", "__")


def named_weights(weights, keys: Sequence[str]) -> dict:
    """``{file key: array}`` of ``weights`` in ``model.weights`` order, named by position with ``keys`` (Keras
    numbers a process's cells, so ``lstm_cell_1`` in one process may be ``lstm_cell_3`` in another)."""
    if len(weights) != len(keys):
        raise ValueError(f"expected {len(keys)} weights ({', '.join(keys)}); got {len(weights)}")
    return {file_key(k): np.asarray(w) for k, w in zip(keys, weights)}


def load_weights(path: str, keys: Sequence[str]) -> list:
    """The arrays of an ``.npz`` written with :func:`named_weights`, in ``keys`` order."""
    w = np.load(path)
    missing = [k for k in keys if file_key(k) not in w]
    if missing:
        raise KeyError(f"{path} has no weight {missing[0]!r}: it was written for another network")
    return [w[file_key(k)] for k in keys]


def tied_logits(embedding, embedding_dim: int, name: str = "logits"):
    """A layer computing ``(h P) Eᵀ`` with ``embedding``'s matrix E, as :class:`rnn_apps.layers.TiedLogits`
    (its one weight ``projection`` P, none when h is as wide as E's rows; no bias), from Keras alone."""
    import keras

    class TiedLogits(keras.layers.Layer):
        def build(self, shape):
            self.projection = (self.add_weight(name="projection", shape=(shape[-1], embedding_dim),
                                               initializer="glorot_uniform")
                               if shape[-1] != embedding_dim else None)

        def call(self, h):
            if self.projection is not None:
                h = keras.ops.matmul(h, self.projection)
            return keras.ops.matmul(h, keras.ops.transpose(embedding.embeddings))

        def compute_mask(self, inputs, mask=None):
            return None

    return TiedLogits(name=name)


def pieces(flat: np.ndarray, lengths: np.ndarray) -> list:
    """The sequences of an ``np.savez`` of concatenated token ids and their lengths."""
    ends = np.cumsum(lengths)
    return [flat[e - n:e].astype(np.int32) for e, n in zip(ends, lengths)]


def pack(seqs) -> tuple:
    """``(concatenated ids, lengths)`` of ``seqs``, the ids as int16 when they fit (half the bytes to carry)."""
    flat = np.concatenate([np.asarray(s) for s in seqs])
    dtype = np.int16 if flat.size == 0 or int(flat.max()) <= np.iinfo(np.int16).max else np.int32
    return flat.astype(dtype), np.array([len(s) for s in seqs])


def bucketed(lengths: Sequence[int], buckets: Sequence[int], tokens: int, rng=None) -> list:
    """``(T, indices)`` of every batch: a sequence of length n goes to the smallest bucket T >= n, a batch of
    bucket T holds ``tokens // T`` of them (the last of a bucket fewer); shuffled with ``rng``."""
    by = {T: [] for T in buckets}
    for i, n in enumerate(lengths):
        if n > buckets[-1]:
            raise ValueError(f"a piece of {n} targets is longer than {buckets[-1]}")
        by[next(T for T in buckets if n <= T)].append(i)
    out = []
    for T, ix in by.items():
        ix = np.array(ix, int)
        if rng is not None:
            ix = rng.permutation(ix)
        rows = max(1, tokens // T)
        out += [(T, ix[k:k + rows]) for k in range(0, len(ix), rows)]
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def learning_rate(step: int, total_steps: int, peak: float) -> float:
    """Linear warm-up over ``WARMUP_STEPS``, then a cosine decay to ``FINAL_LR_FRACTION`` of ``peak``."""
    if step < WARMUP_STEPS:
        return peak * step / WARMUP_STEPS
    done = min(1.0, (step - WARMUP_STEPS) / max(1, total_steps - WARMUP_STEPS))
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * done)))


def fit(model, keys: Sequence[str], epoch_batches: Callable[[np.random.Generator], list], val_batches: list, *,
        out: str, name: str, peak_lr: float, budget: float, max_epochs: int, seed: int, args: dict,
        init: Optional[str] = None) -> dict:
    """Train ``model`` on the JAX backend; keep ``out/<name>.npz`` (best validation epoch) and ``out/<name>.json``.

    Args:
        model: A Keras model, ids -> logits, built on the JAX backend.
        keys: Its weights' names in ``model.weights`` order (the ``.npz`` keys).
        epoch_batches: An epoch's batches (inputs, targets, weights) from a generator the loop seeds.
        val_batches: The validation batches (fixed).
        out, name: Where the kept weights and the record go.
        peak_lr: Adam's peak learning rate.
        budget: Seconds of training, compilation included; the epochs are planned to fit it.
        max_epochs: At most this many epochs.
        seed: Seeds Keras (initial weights, dropout) and the batches' order.
        args: The settings to record with the result.
        init: An ``.npz`` of start weights (else Keras's initial weights).

    Returns:
        ``{"best_val_ce", "best_val_bpc", "history", "args"}``; a history row has the epoch, step, seconds and
        the training and validation cross-entropy per target (``*_ce`` in nats, ``*_bpc`` in bits) and
        accuracy (the share of targets whose most probable token is right; training: with dropout).
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise SystemExit("train needs JAX (pip install jax, or jax[cuda12] on a GPU machine).") from None
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"train needs Keras on JAX; this Keras runs on {keras.backend.backend()}: set "
                         "KERAS_BACKEND=jax before starting Python.")
    t_start = time.time()
    os.makedirs(out, exist_ok=True)
    if init:
        model.set_weights(load_weights(init, keys))
    opt = keras.optimizers.Adam(learning_rate=peak_lr, global_clipnorm=1.0)
    opt.build(model.trainable_variables)
    lr_at = [i for i, v in enumerate(opt.variables) if v.name.split("/")[-1] == "learning_rate"]
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    ov = [v.value for v in opt.variables]

    def sums(logits, y, w):
        logz = jax.nn.logsumexp(logits, axis=-1)
        ce = jnp.sum((logz - jnp.take_along_axis(logits, y[..., None], axis=-1)[..., 0]) * w)
        return ce, jnp.sum((jnp.argmax(logits, axis=-1) == y) * w), jnp.sum(w)

    def loss_fn(tv, ntv, x, y, w):
        logits, ntv = model.stateless_call(tv, ntv, x, training=True)
        ce, right, n = sums(logits, y, w)
        return ce / jnp.maximum(n, 1.0), (ntv, right, n)

    @jax.jit
    def train_step(tv, ntv, ov, x, y, w):
        (loss, (ntv, right, n)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, x, y, w)
        tv, ov = opt.stateless_apply(ov, grads, tv)
        return tv, ntv, ov, loss * n, right, n

    @jax.jit
    def eval_step(tv, ntv, x, y, w):
        logits, _ = model.stateless_call(tv, ntv, x, training=False)
        return sums(logits, y, w)

    def validate(tv, ntv):
        totals = np.sum([[float(v) for v in eval_step(tv, ntv, *b)] for b in val_batches], axis=0)
        return totals[0] / totals[2], totals[1] / totals[2]

    def keep(tv, record):
        np.savez(os.path.join(out, name + ".npz"), **named_weights(tv, keys))
        with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(record, f)

    best, _ = validate(tv, ntv) if init else (float("inf"), 0.0)
    print(f"[{name}] start: validation cross-entropy {best:.4f}", flush=True)
    rng = np.random.default_rng(seed)
    history, epoch, epochs, step, total = [], 0, max_epochs, 0, None
    while epoch < epochs:
        batches = epoch_batches(rng)
        total = total or len(batches) * epochs
        t0, tot, hits, cnt = time.time(), 0.0, 0.0, 0.0
        for b in batches:
            for i in lr_at:
                ov[i] = jnp.asarray(learning_rate(step, total, peak_lr), ov[i].dtype)
            tv, ntv, ov, loss, right, n = train_step(tv, ntv, ov, *b)
            tot, hits, cnt, step = tot + float(loss), hits + float(right), cnt + float(n), step + 1
        epoch += 1
        ce, acc = validate(tv, ntv)
        history.append({"epoch": epoch, "step": step, "train_ce": tot / cnt, "train_accuracy": hits / cnt,
                        "val_ce": ce, "val_accuracy": acc,
                        "train_bpc": tot / cnt / math.log(2.0), "val_bpc": ce / math.log(2.0),
                        "seconds": round(time.time() - t0, 1)})
        print(f"[{name}] {json.dumps(history[-1])}", flush=True)
        if epoch == 2:  # the first epoch compiles: plan the schedule from the second one's pace
            left = budget - (time.time() - t_start) - 30
            epochs = max(epoch, min(max_epochs, epoch + int(left / (history[-1]["seconds"] * 1.08))))
            total = len(batches) * epochs
        if ce < best:
            best = ce
            keep(tv, {"best_val_ce": best, "best_val_bpc": best / math.log(2.0), "epoch": epoch,
                      "history": history, "args": args})
        if time.time() - t_start > budget:
            break
    return {"best_val_ce": best, "best_val_bpc": best / math.log(2.0), "history": history, "args": args}


def command_parser(prog: str, description: str, name: str, learning_rate: float, tokens: int):
    """The ``prepare | train | export`` command line of an app's JAX recipe; returns ``(parser, train
    subparser)``, to which the app adds its own training flags."""
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="encode the corpus and write the model's weights (TensorFlow)")
    for flag in ("--model", "--data", "--out"):
        p.add_argument(flag, required=True)
    t = sub.add_parser("train", help="train on Keras 3 with JAX")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--name", default=name)
    t.add_argument("--init", default="", help="start from these weights (prepare's init.npz)")
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--learning-rate", type=float, default=learning_rate)
    t.add_argument("--tokens", type=int, default=tokens)
    t.add_argument("--budget", type=float, default=420.0, help="seconds of training, compilation included")
    t.add_argument("--max-epochs", type=int, default=200)
    t.add_argument("--seed", type=int, default=1234)
    e = sub.add_parser("export", help="export trained weights as a SavedModel (TensorFlow)")
    for flag in ("--weights", "--history", "--like", "--data", "--export", "--run-dir", "--trained-on"):
        e.add_argument(flag, required=True)
    e.add_argument("--version", type=int, default=None)
    return ap, t


def write_run_record(run_dir: str, record: dict, history: Sequence[dict], columns: dict) -> None:
    """Write ``run_dir`` for the card of a model trained here: ``record`` as its config and the epochs of
    ``history`` (``fit``'s records) as the package's history lines, seconds summed, each ``columns`` key taken
    from its value's field.

    A ``run_dir`` that holds checkpoints of a training run is refused before anything is written: its config
    and history would be replaced, and ``rnn-apps`` would then resume that run with this one's record.
    """
    from rnn_apps.apps.base import write_run_config
    from rnn_apps.training import HISTORY_FILE, check_new_run

    check_new_run(run_dir, resume=False)
    os.makedirs(run_dir, exist_ok=True)
    write_run_config(run_dir, record)
    with open(os.path.join(run_dir, HISTORY_FILE), "w", encoding="utf-8") as f:
        seconds = 0.0
        for row in history:
            seconds += row["seconds"]
            f.write(json.dumps({"epoch": row["epoch"], "step": row["step"], "seconds": round(seconds, 1),
                                **{name: row[field] for name, field in columns.items()}}) + "\n")


def run_step(step: Callable[[], None]) -> None:
    """Run a command's step; a missing or foreign file, or a run directory in use, ends it with one line, not a
    traceback."""
    from rnn_apps.checkpoints import TrainingError

    try:
        step()
    except (OSError, ValueError, KeyError, TrainingError) as e:
        raise SystemExit(f"Error: {e}") from None
