"""Atomic, rotating checkpoints of a model's full training state (model and optimizer variables, global step).

:func:`rnn_apps.training.fit_resumable` writes them; ``rnn_apps.training`` re-exports
:class:`CheckpointManager` and :class:`TrainingError`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Optional

import numpy as np


class TrainingError(RuntimeError):
    """A training run that cannot start or continue (with a message that says what to do)."""


def atomic_write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file, fsynced and renamed into place."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def state_arrays(model) -> dict:
    """Every model variable and, once built, every optimizer variable, as NumPy arrays by position."""
    arrays = {}
    for i, v in enumerate(model.variables):
        arrays[f"model/{i}"] = np.asarray(v.numpy())
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        for i, v in enumerate(optimizer.variables):
            arrays[f"optimizer/{i}"] = np.asarray(v.numpy())
    return arrays


# The keys of a checkpoint's ``meta`` that ``latest.json`` repeats: the plan of the training that wrote it (its
# epochs and steps in all), so that what a run has done is read from one file written atomically.
PLAN_KEYS = ("epochs", "total_steps")


class CheckpointManager:
    """Atomic, rotating checkpoints of a compiled model's full training state in ``<run_dir>/checkpoints``.

    A checkpoint is a directory ``ckpt-<step>`` holding ``state.npz`` (every model variable, the random
    generators' states included, and every optimizer variable, the iteration count included) and
    ``meta.json``; it is written under a temporary name and renamed into place, and ``latest.json`` is
    replaced atomically, so a crash at any moment leaves the previous checkpoint usable.

    ``latest.json`` names the newest checkpoint and its step, the plan of the training that wrote it
    (:data:`PLAN_KEYS`, when its ``meta`` holds them) and, once that training has returned
    (:meth:`mark_ended`), ``"ended": true``: :meth:`progress` reads it.
    """

    def __init__(self, run_dir: str, keep: int = 2):
        self.dir = os.path.join(run_dir, "checkpoints")
        self.keep = keep

    def latest(self) -> Optional[str]:
        path = os.path.join(self.dir, "latest.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            name = json.load(f)["checkpoint"]
        full = os.path.join(self.dir, name)
        return full if os.path.isdir(full) else None

    def save(self, model, step: int, meta: Optional[dict] = None) -> str:
        os.makedirs(self.dir, exist_ok=True)
        name = f"ckpt-{step:09d}"
        final = os.path.join(self.dir, name)
        if os.path.isdir(final):
            return final
        tmp = os.path.join(self.dir, f".tmp-{name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        with open(os.path.join(tmp, "state.npz"), "wb") as f:
            np.savez(f, **state_arrays(model))
            f.flush()
            os.fsync(f.fileno())
        atomic_write_json(os.path.join(tmp, "meta.json"), {"step": int(step), "time": time.time(), **(meta or {})})
        os.rename(tmp, final)
        plan = {k: (meta or {})[k] for k in PLAN_KEYS if k in (meta or {})}
        atomic_write_json(os.path.join(self.dir, "latest.json"), {"checkpoint": name, "step": int(step), **plan})
        ckpts = sorted(d for d in os.listdir(self.dir) if d.startswith("ckpt-"))
        for old in ckpts[: -self.keep]:
            shutil.rmtree(os.path.join(self.dir, old), ignore_errors=True)
        return final

    def progress(self) -> Optional[dict]:
        """What ``latest.json`` says of the run (None without a checkpoint): ``checkpoint``, ``step``, and when
        recorded (runs since they were), the plan's ``epochs`` and ``total_steps`` and ``ended``."""
        path = os.path.join(self.dir, "latest.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def mark_ended(self) -> None:
        """Record in ``latest.json`` that the training which wrote the newest checkpoint has returned: it
        reached its planned steps, or stopped early on purpose (a run killed, or still training, has no mark;
        the next checkpoint written, by a resumed run, drops it)."""
        progress = self.progress()
        if progress is not None:
            atomic_write_json(os.path.join(self.dir, "latest.json"), {**progress, "ended": True})

    def restore(self, model, path: Optional[str] = None) -> int:
        """Load the checkpoint into ``model`` (and its optimizer); return its global step."""
        path = path or self.latest()
        if path is None:
            raise TrainingError(f"No checkpoint to resume from in {self.dir}.")
        with np.load(os.path.join(path, "state.npz")) as data:
            mv = [k for k in data.files if k.startswith("model/")]
            if len(mv) != len(model.variables):
                raise TrainingError(
                    f"Checkpoint {path} holds {len(mv)} model variables but the model has {len(model.variables)}: "
                    "it was written by a different model configuration."
                )
            for i, v in enumerate(model.variables):
                arr = data[f"model/{i}"]
                if tuple(arr.shape) != tuple(v.shape):
                    raise TrainingError(f"Checkpoint variable {v.path} has shape {arr.shape}, model expects {tuple(v.shape)}.")
                v.assign(arr)
            ov = [k for k in data.files if k.startswith("optimizer/")]
            if ov and getattr(model, "optimizer", None) is not None:
                if not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                if len(ov) != len(model.optimizer.variables):
                    raise TrainingError(f"Checkpoint {path}: optimizer state does not match this optimizer.")
                for i, v in enumerate(model.optimizer.variables):
                    v.assign(data[f"optimizer/{i}"])
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            return int(json.load(f)["step"])
