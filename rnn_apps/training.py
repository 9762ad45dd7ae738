"""Shared training machinery: distribution strategies, resumable checkpoints, seeds and logs.

Every app trains through :func:`fit_resumable`, which gives the same conveniences everywhere:
a progress bar, validation metrics each epoch, a checkpoint every ``save_every`` steps and at each
epoch end (model variables, optimizer state and the global step, written atomically), ``resume=True``
continuing an interrupted run from its last checkpoint at the same data position, optional TensorBoard
logs, and ``--strategy default|mirrored|multi-worker`` on ``tf.distribute``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import time
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from rnn_apps.datasets import distribute_batches

from rnn_apps.checkpoints import CheckpointManager, TrainingError  # noqa: F401 (also public here)

STRATEGIES = ("default", "mirrored", "multi-worker")


def get_strategy(name: str = "default"):
    """Return a ``tf.distribute`` strategy by name.

    ``default``: one device. ``mirrored``: every local GPU (or the CPU devices when there is none).
    ``multi-worker``: ``MultiWorkerMirroredStrategy`` configured by the ``TF_CONFIG`` environment variable.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi-worker":
        from rnn_apps.keras_compat import patch_multi_worker_reduce

        patch_multi_worker_reduce()
        example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                   '"task": {"type": "worker", "index": 0}}\'')
        if "TF_CONFIG" not in os.environ:
            raise TrainingError(
                f"--strategy multi-worker needs the TF_CONFIG environment variable describing the cluster, {example}"
            )
        check_tf_config(os.environ["TF_CONFIG"], example)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")


def check_tf_config(value: str, example: str = "") -> dict:
    """The ``TF_CONFIG`` of ``--strategy multi-worker``: a JSON object with a ``cluster`` (refused otherwise)."""
    try:
        config = json.loads(value)
    except ValueError as e:
        raise TrainingError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}); it must describe "
                            f"the cluster, {example}".rstrip(", ")) from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise TrainingError(f"TF_CONFIG must be a JSON object with a \"cluster\", {example}".rstrip(", "))
    return config


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints and exports (worker 0, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", lambda: None)():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


def set_seed(seed: Optional[int], deterministic: bool = True) -> None:
    """Seed Python, NumPy and the backend; with ``deterministic``, make TF's ops deterministic too.

    With a seed, two CPU runs of the same command give the same losses.
    """
    if seed is None:
        return
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # pragma: no cover - older TF
            pass


def _make_callback_class():
    import keras

    class _CheckpointCallback(keras.callbacks.Callback):
        """Saves every ``save_every`` steps and at each epoch end; logs epoch metrics as JSON lines."""

        def __init__(self, manager, save_every, step_offset, log_path, chief, meta):
            super().__init__()
            self.manager, self.save_every, self.chief = manager, save_every, chief
            self.step = step_offset
            self.log_path, self.meta = log_path, meta
            self._t0 = time.time()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.chief and self.save_every and self.step % self.save_every == 0:
                self.manager.save(self.model, self.step, self.meta)

        def on_epoch_end(self, epoch, logs=None):
            if not self.chief:
                return
            self.manager.save(self.model, self.step, self.meta)
            row = {"epoch": epoch + 1, "step": self.step, "seconds": round(time.time() - self._t0, 1)}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return _CheckpointCallback




HISTORY_FILE = "history.jsonl"
BEST_WEIGHTS = "best.weights.h5"
BEST_EPOCHS_DIR = "best-epochs"
AVERAGED_WEIGHTS = "averaged.weights.h5"


class StopEarly(Exception):
    """Raised by the keep-best callback to end :func:`fit_resumable` before its last epoch."""


def check_tensorboard() -> None:
    """Refuse TensorBoard logs when the ``tensorboard`` package (which Keras's callback writes them with) is
    not installed: without it the callback fails after the first epoch's training.

    Raises:
        TrainingError: the package is missing.
    """
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise TrainingError("TensorBoard logs need the tensorboard package, which is not installed: "
                            "pip install tensorboard, or leave out --tensorboard.")


def check_patience(patience, keep_best=True) -> None:
    """Refuse a ``patience`` that is not a whole number of epochs >= 0 (0: never stop early), or one given to a
    run that keeps its last epoch: the one check of ``--patience`` (with ``--keep-last``), which an app calls
    before it writes anything, and :func:`fit_resumable` again.

    Args:
        patience: Epochs without a better validation loss before training stops (0: never stop early).
        keep_best: Whether the run keeps its best epoch: a metric name (``"val_loss"``) or True; None or False
            (``--keep-last``) refuses a ``patience`` above 0. Default True: the patience alone is checked.

    Raises:
        TrainingError: a bad ``patience``, or ``patience`` above 0 with the last epoch kept.
    """
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
        raise TrainingError(f"patience must be a whole number of epochs >= 0 (0: never stop early); "
                            f"received {patience!r}.")
    if patience and not keep_best:
        # patience counts epochs without a better kept epoch; with the last epoch kept it never ran
        raise TrainingError(f"--patience {patience} stops on the validation loss of the best epoch, which this run "
                            "does not keep (--keep-last): use --keep-best, or leave out --patience.")


def monitor_mode(monitor: str) -> str:
    """``"min"`` for a loss (a name ending in ``loss``), else ``"max"`` (accuracy and the like)."""
    return "min" if monitor.endswith("loss") else "max"


def best_epoch(history: list, monitor: str = "val_loss"):
    """``(epoch, value)`` of the best logged epoch by ``monitor`` (the first of ties), or None when none logged it."""
    rows = [(int(r["epoch"]), float(r[monitor])) for r in history if monitor in r and "epoch" in r]
    if not rows:
        return None
    sign = 1.0 if monitor_mode(monitor) == "min" else -1.0
    return min(rows, key=lambda row: (sign * row[1], row[0]))


def best_epochs(history: list, monitor: str = "val_loss", n: int = 1) -> list:
    """The ``n`` best logged epochs by ``monitor``, best first (ties: the earlier epoch first)."""
    rows = [(int(r["epoch"]), float(r[monitor])) for r in history if monitor in r and "epoch" in r]
    sign = 1.0 if monitor_mode(monitor) == "min" else -1.0
    return [e for e, _ in sorted(rows, key=lambda row: (sign * row[1], row[0]))[: max(0, int(n))]]


def epoch_weights_path(run_dir: str, epoch: int) -> str:
    """Where :func:`fit_resumable` keeps the weights of one of the run's best epochs (``average_best``)."""
    return os.path.join(run_dir, BEST_EPOCHS_DIR, f"epoch-{int(epoch):04d}.weights.h5")


def average_weights(model, paths: Sequence[str]) -> None:
    r"""Give ``model`` the element-wise mean of the weight files ``paths`` (Keras ``.weights.h5``).

    Checkpoint averaging: :math:`\bar\theta = \frac1N \sum_i \theta_i` over the weights of N epochs of one
    run, a cheap ensemble that lands nearer the centre of a flat minimum and generalises better than any
    one of them (Vaswani et al., 2017, §6.1; Izmailov et al., 2018, "Averaging Weights Leads to Wider
    Optima"). Floating-point variables are averaged; others (such as a dropout layer's seed state) keep
    the value of the first file.

    Raises:
        TrainingError: no paths, or a file that does not exist.
    """
    paths = list(paths)
    if not paths:
        raise TrainingError("average_weights needs at least one weights file; received none.")
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise TrainingError(f"No such weights file: {missing[0]}.")
    total, first = None, None
    for p in paths:
        model.load_weights(p)
        values = [np.asarray(v.numpy()) for v in model.weights]
        if total is None:
            first = values
            total = [v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v for v in values]
        else:
            total = [t + v if np.issubdtype(v.dtype, np.floating) else t for t, v in zip(total, values)]
    for var, t, f in zip(model.weights, total, first):
        var.assign((t / len(paths)).astype(f.dtype) if np.issubdtype(f.dtype, np.floating) else f)


def _make_keep_best_class():
    import keras

    class _KeepBest(keras.callbacks.Callback):
        """Saves the weights of the best epoch by ``monitor``; raises :class:`StopEarly` after ``patience`` worse ones.

        Its state comes from the run's logged history, so a resumed run keeps and stops as an uninterrupted
        one would.
        """

        def __init__(self, path, monitor, patience, history, verbose, run_dir=None, keep_epochs=0):
            super().__init__()
            self.path, self.monitor, self.patience, self.verbose = path, monitor, int(patience), verbose
            # With keep_epochs, the weights of the keep_epochs best epochs stay in run_dir (for averaging).
            self.run_dir, self.keep_epochs = run_dir, int(keep_epochs)
            self.history = [dict(r) for r in history]
            self.sign = 1.0 if monitor_mode(monitor) == "min" else -1.0
            logged = [float(r[monitor]) for r in history if monitor in r]
            self.best = min((self.sign * v for v in logged), default=float("inf"))
            self.wait = len(logged) - 1 - int(np.argmin([self.sign * v for v in logged])) if logged else 0

        @property
        def exhausted(self) -> bool:
            return bool(self.patience) and self.wait >= self.patience

        def keep_epoch_weights(self, epoch):
            """Save this epoch's weights if it is among the best ``keep_epochs``; drop those that fell out."""
            if not self.keep_epochs or self.run_dir is None:
                return
            keep = best_epochs(self.history, self.monitor, self.keep_epochs)
            if epoch in keep:
                os.makedirs(os.path.join(self.run_dir, BEST_EPOCHS_DIR), exist_ok=True)
                self.model.save_weights(epoch_weights_path(self.run_dir, epoch))
            folder = os.path.join(self.run_dir, BEST_EPOCHS_DIR)
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if name.startswith("epoch-") and int(name[6:10]) not in keep:
                    os.remove(os.path.join(folder, name))

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.monitor)
            if value is None:
                return
            self.history.append({"epoch": epoch + 1, self.monitor: float(value)})
            self.keep_epoch_weights(epoch + 1)
            if self.sign * float(value) < self.best:
                self.best, self.wait = self.sign * float(value), 0
                self.model.save_weights(self.path)
            else:
                self.wait += 1
                if self.exhausted:
                    if self.verbose:
                        print(f"Early stop: {self.monitor} has not improved for {self.wait} epochs "
                              f"(best {self.sign * self.best:.4f}).")
                    raise StopEarly()

    return _KeepBest


LOCK_FILE = ".lock"
_held_locks: dict = {}  # run dir (real path) -> the open lock file this process holds


def lock_run_dir(run_dir: str) -> None:
    """Hold an exclusive lock on ``run_dir`` (``<run_dir>/.lock``, ``fcntl.flock``) until this process ends.

    Two trainings writing into one run directory would interleave its history and overwrite each other's
    checkpoints; the second is refused. The same process may take it again (a run resumed in-process).

    Raises:
        TrainingError: another process holds the lock.
    """
    if os.environ.get("TF_CONFIG"):  # the workers of a multi-worker cluster share their run directory by design
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    key = os.path.realpath(run_dir)
    if key in _held_locks:
        return
    path = os.path.join(run_dir, LOCK_FILE)
    f = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        pid = f.read().strip() or "unknown"
        f.close()
        raise TrainingError(f"{run_dir} is in use by another training run (pid {pid}).") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _held_locks[key] = f


def lock_holder(run_dir: str) -> Optional[str]:
    """The process id of another process that holds ``run_dir``'s lock (:func:`lock_run_dir`: a training is
    writing into it), as the lock file records it ("unknown" when unwritten); None when no other process does.

    Tried with a shared lock, released at once: a run that is not being trained is not held.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    if os.path.realpath(run_dir) in _held_locks:  # this process's own training
        return None
    try:
        f = open(os.path.join(run_dir, LOCK_FILE), encoding="utf-8")
    except OSError:  # never locked (a run from before the lock, or not a run)
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return f.read().strip() or "unknown"
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


def earlier_checkpoint(run_dir: str, stages: Sequence[str] = ()) -> Optional[str]:
    """The newest checkpoint of an earlier run in ``run_dir``: the run's own (``<run_dir>/checkpoints``), else one
    of its ``stages``, the subdirectories where a stage of the run keeps its own (sentiment's language model in
    ``<run_dir>/lm``); None when there is none."""
    for directory in (run_dir, *(os.path.join(run_dir, stage) for stage in stages)):
        latest = CheckpointManager(directory).latest()
        if latest is not None:
            return latest
    return None


def check_new_run(run_dir: str, resume: bool, stages: Sequence[str] = ()) -> None:
    """Refuse to start a new run (``resume`` False) in a ``run_dir`` that holds checkpoints of an earlier one
    (its own, or of one of its ``stages``: :func:`earlier_checkpoint`).

    :func:`run_settings` calls it before anything is written into ``run_dir``, so that a refused command leaves
    the earlier run as it was (refused only when the model was fitted, its vocabulary and config had already
    been rewritten for the new data, and its old weights were then exported with them).

    Raises:
        TrainingError: ``run_dir`` holds checkpoints and ``resume`` is False.
    """
    if not resume and earlier_checkpoint(run_dir, stages) is not None:
        raise TrainingError(f"{run_dir} already holds checkpoints of an earlier run. Pass --resume to continue it, "
                            "or choose another --run-dir.")


def discard_new_run(run_dir: str) -> None:
    """Release the lock on ``run_dir`` and remove the directory when it holds nothing else (a run refused
    before it wrote anything leaves no half run directory behind)."""
    f = _held_locks.pop(os.path.realpath(run_dir), None)
    if f is not None:
        f.close()
    try:
        if set(os.listdir(run_dir)) <= {LOCK_FILE}:
            if os.path.exists(os.path.join(run_dir, LOCK_FILE)):
                os.remove(os.path.join(run_dir, LOCK_FILE))
            os.rmdir(run_dir)
    except OSError:
        pass


# The settings passed to run_settings in this context that hold a command's defaults, not values its user gave
# (settings_not_given).
_not_given: contextvars.ContextVar = contextvars.ContextVar("rnn_apps_settings_not_given", default=frozenset())


@contextlib.contextmanager
def settings_not_given(names: Iterable[str]):
    """Within the block, the settings ``names`` that :func:`run_settings` receives are a command's own defaults,
    not values its user gave: a new run takes them; a resumed run keeps its own values and compares only the
    settings given. (``fine-tune APP --resume`` passes fine-tune's default learning rate, which differs from a
    run started with another; the user left the option out.)
    """
    token = _not_given.set(frozenset(names))
    try:
        yield
    finally:
        _not_given.reset(token)


def data_fingerprint(path: str) -> Optional[dict]:
    """``{"bytes": size, "sha256": hex digest}`` of a corpus file, None for anything else (a directory of
    photos, a TFDS name): what a resumed run checks to continue on the data it began on, wherever it lies."""
    import hashlib

    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def check_same_data(run_dir: str, saved: dict, data: str) -> None:
    """Refuse to resume the run whose config is ``saved`` on other data than it was trained on.

    A corpus file recorded with its fingerprint (:func:`data_fingerprint`) must hold the same bytes, at its
    old path or another (a copied or moved run goes on); an edited file is refused, as its steps and
    epochs no longer match the run's. Otherwise (a directory, a run begun before fingerprints) the path
    must be the same.
    """
    was, fingerprint = saved.get("data"), saved.get("data_fingerprint")
    if not was:
        return
    if fingerprint and os.path.isfile(data):
        now = data_fingerprint(data)
        if now != fingerprint:
            raise TrainingError(
                f"{run_dir} was trained on {was} as it was then ({fingerprint['bytes']:,} bytes); {data} holds other "
                f"data now ({now['bytes']:,} bytes{', other contents' * (now['bytes'] == fingerprint['bytes'])}). "
                "--resume continues a run on the data it began on: restore that file, or start a new run in another "
                "--run-dir.")
        return
    if os.path.realpath(was) != os.path.realpath(data):
        raise TrainingError(f"{run_dir} was trained on {was}; --resume continues it on the same data "
                            f"(received {data}).")


def run_settings(run_dir: str, defaults: dict, overrides: dict, resume: bool, config_file: str = "config.json",
                 resumable: Sequence[str] = (), app: str = "", data: Optional[str] = None,
                 resume_asked: Optional[bool] = None, stages: Sequence[str] = (),
                 check: Optional[Callable[[dict, dict], None]] = None):
    """The settings of a training run, and what its ``config_file`` saved (None for a new run).

    ``overrides`` (None values ignored) must be keys of ``defaults``. A new run (or ``resume`` without a
    saved config) gets ``defaults`` updated with ``overrides``; a resumed run gets its saved settings, in
    which only the ``resumable`` keys given in ``overrides`` are replaced (settings that may change
    between stretches of a run, such as its length); another setting given again with a value other than
    the run's is refused; settings named by :func:`settings_not_given` count as not given there. Creates
    ``run_dir``.

    ``app`` (the app's package name): a ``run_dir`` holding another app's run is refused, resumed or not, before
    anything is written. ``data``: the corpus of this stretch, as the run's config records it; a resumed run must
    continue on the data it was trained on (:func:`check_same_data`). Without ``--resume`` (``resume_asked``;
    default: ``resume``, which an app may narrow, as sentiment resumes saved settings only with their vocabulary), a
    ``run_dir`` holding checkpoints of an earlier run (its own, or in the subdirectories ``stages`` where stages of
    the run keep theirs) is refused before anything is written (:func:`check_new_run`): a refused command leaves the
    earlier run byte for byte as it was. ``check(saved, settings)``: the app's own refusals of a resumed run
    (raising :class:`TrainingError`), made likewise before anything is written, the lock included. Takes the run
    directory's lock (:func:`lock_run_dir`).

    Raises:
        ValueError: an override that is not a setting.
        TrainingError: ``run_dir`` is another app's run, holds checkpoints of an earlier run (not resumed), is
            in use by another training, was trained on other data than ``data``, or (resumed) was started with
            other values of settings given again.
    """
    from rnn_apps.apps.base import check_run_app

    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"Unknown training settings {sorted(unknown)}; expected some of {sorted(defaults)}.")
    path = os.path.join(run_dir, config_file)
    if app and not resume and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                existing = json.load(f)
        except (OSError, ValueError):
            existing = None  # unreadable: a new run replaces it, as before
        if isinstance(existing, dict):
            check_run_app(run_dir, existing, app)
    check_new_run(run_dir, resume if resume_asked is None else resume_asked, stages)
    os.makedirs(run_dir, exist_ok=True)
    given = {k: v for k, v in overrides.items() if v is not None}
    if resume and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if app:
            check_run_app(run_dir, saved, app)
        if data is not None:
            check_same_data(run_dir, saved, data)
        settings = dict(saved["settings"])
        # A command's default is not the user's word: the run keeps its own value, as for an option left out.
        given = {k: v for k, v in given.items() if k not in _not_given.get()}
        # A setting given again must be the run's own: silently keeping the saved one trained another model
        # than the one asked for ("--resume --cell gru" went on with the run's lstm).
        differing = {k: v for k, v in given.items() if k not in resumable and k in settings and settings[k] != v}
        if differing:
            was = ", ".join(f"{k} {settings[k]!r}" for k in differing)
            asked = ", ".join(f"{k} {v!r}" for k, v in differing.items())
            raise TrainingError(f"{run_dir} was started with {was}; --resume continues it with its own settings "
                                f"(received {asked}). Leave them out to resume, or start a new run in another "
                                "--run-dir.")
        # A setting the run's config lacks (it was started before the setting existed) is not applied: the run
        # goes on as it was trained, so one given now is refused rather than silently dropped.
        newer = {k: v for k, v in given.items() if k not in resumable and k not in settings}
        if newer:
            asked = ", ".join(f"{k} {v!r}" for k, v in newer.items())
            raise TrainingError(f"{run_dir} was started before the setting{'s' * (len(newer) > 1)} "
                                f"{', '.join(newer)} existed; --resume continues it as it was trained (received "
                                f"{asked}). Leave {'them' if len(newer) > 1 else 'it'} out to resume, or start a new "
                                "run in another --run-dir.")
        settings.update({k: given[k] for k in resumable if k in given})
        if check is not None:
            check(saved, settings)
        lock_run_dir(run_dir)
        return settings, saved
    lock_run_dir(run_dir)
    return {**defaults, **given}, None


def read_history(run_dir: str) -> list:
    """The epoch rows :func:`fit_resumable` logged in ``run_dir/history.jsonl`` (empty when there are none)."""
    path = os.path.join(run_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def training_seconds(history: list) -> float:
    """Wall time of a run's logged epochs, over all its resumptions.

    Each row's ``seconds`` counts from the start of its process, so a resumed run starts again from zero:
    the total is the sum of the last row of each stretch (time after a stretch's last epoch end is lost).
    """
    total, prev = 0.0, None
    for row in history:
        s = float(row.get("seconds", 0.0))
        if prev is not None and s < prev:
            total += prev
        prev = s
    return total + (prev or 0.0)


def last_metric(history: list, key: str):
    """The newest value of ``key`` in a run's epoch rows (``fit_resumable(...)["history"]``), or None."""
    for row in reversed(history):
        if key in row:
            return row[key]
    return None


def fit_resumable(
    model,
    make_train_dataset: Callable[[int], object],
    steps_per_epoch: int,
    epochs: int,
    run_dir: str,
    validation_data=None,
    resume: bool = False,
    save_every: int = 100,
    tensorboard: bool = False,
    callbacks=(),
    verbose: int = 1,
    strategy=None,
    meta: Optional[dict] = None,
    keep_best: Optional[str] = None,
    patience: int = 0,
    average_best: int = 0,
):
    """Train a compiled ``model`` for ``epochs`` epochs of ``steps_per_epoch`` steps, resumably.

    Args:
        model: A compiled Keras model (built under ``strategy.scope()`` when distributing).
        make_train_dataset: ``f(start_step)`` returning an endless ``tf.data.Dataset`` whose batches are
            those of global steps ``start_step, start_step + 1, ...`` (deterministic), so that a resumed
            run sees the same data as an uninterrupted one.
        steps_per_epoch: Steps in one epoch.
        epochs: Total epochs of the run (not "more epochs"): a resumed run stops at the same step.
        run_dir: Directory for checkpoints, ``history.jsonl`` and TensorBoard logs.
        validation_data: A finite dataset evaluated at each epoch end.
        resume: Continue from the newest checkpoint in ``run_dir``. Without it, a ``run_dir`` that
            already holds checkpoints is refused rather than overwritten.
        save_every: Also checkpoint every this many steps (0: epoch ends only).
        tensorboard: Write TensorBoard logs to ``<run_dir>/tensorboard``.
        keep_best: A validation metric (``"val_loss"``, ``"val_accuracy"``; lower is better for a loss,
            higher otherwise): each epoch that improves it saves the weights to ``<run_dir>/best.weights.h5``,
            and at the end ``model`` holds the best epoch's weights. None: the last epoch's weights.
        patience: With ``keep_best``, stop after this many epochs without improvement (0: never stop early).
            A resumed run that had stopped does not train again.
        average_best: With ``keep_best``, keep the weights of the this many best epochs in
            ``<run_dir>/best-epochs/`` and, when more than one, end with ``model`` holding their mean
            (:func:`average_weights`; also saved as ``<run_dir>/averaged.weights.h5``). 0: off.

    Returns:
        A dict with ``step`` (the final global step), ``epochs``, ``history`` (the epoch rows) and, with
        ``keep_best``, ``best_epoch`` and ``best`` (None when no epoch logged the metric), ``stopped_early``
        and ``averaged_epochs`` (the epochs averaged; empty when not averaging).
    """
    import keras

    if steps_per_epoch <= 0 or epochs <= 0:
        raise TrainingError(f"steps_per_epoch and epochs must be positive; received {steps_per_epoch}, {epochs}.")
    check_patience(patience)
    if patience and validation_data is None:
        # the validation loss it watches is never computed: the run would train every epoch, silently (said
        # before the --keep-last refusal: an app without validation data keeps no best epoch either)
        raise TrainingError(f"--patience {patience} stops on the validation loss, but this run has no validation "
                            "data (a --val-fraction of 0, or too little data to hold some out): give a "
                            "--val-fraction above 0, or leave out --patience.")
    check_patience(patience, keep_best)
    if tensorboard:
        check_tensorboard()
    if isinstance(average_best, bool) or not isinstance(average_best, (int, np.integer)) or average_best < 0:
        raise TrainingError(f"average_best must be a whole number of epochs >= 0 (0: off); received {average_best!r}.")
    if keep_best is not None and not (isinstance(keep_best, str) and keep_best.startswith("val_")):
        raise TrainingError(f"keep_best must name a validation metric such as 'val_loss'; received {keep_best!r}.")
    os.makedirs(run_dir, exist_ok=True)
    manager = CheckpointManager(run_dir)
    chief = is_chief(strategy) if strategy is not None else True
    start = 0
    if manager.latest() is not None:
        check_new_run(run_dir, resume)  # the apps have checked it before writing into run_dir (run_settings)
        start = manager.restore(model)
        if verbose:
            print(f"Resuming from step {start} ({manager.latest()}).")
    elif resume and verbose:
        print(f"No checkpoint in {run_dir}; starting from scratch.")
    total = steps_per_epoch * epochs
    if start >= total and verbose:  # said, rather than a run that ends at once as if it had trained
        print(f"{run_dir} has already trained {start:,} steps, as many as {epochs} epoch(s) of {steps_per_epoch:,} "
              "steps or more: nothing more is trained (resume with a larger --epochs to train on).")
    log_path = os.path.join(run_dir, HISTORY_FILE)
    # Each checkpoint records the plan it belongs to: an export of a run that stopped short says how far it got.
    plan = {"epochs": int(epochs), "total_steps": int(total)}
    cb = _make_callback_class()(manager, save_every, start, log_path, chief, {**(meta or {}), **plan})
    cbs = [cb, *callbacks]
    best_cb = None
    if keep_best is not None and validation_data is not None:
        # Only the chief writes into the run dir; other workers keep their (identical) best weights apart.
        best_path = os.path.join(run_dir if chief else _worker_dir(), BEST_WEIGHTS)
        if start == 0 and os.path.exists(best_path):
            os.remove(best_path)  # left by an earlier attempt that never reached a checkpoint
        prior = read_history(run_dir) if start else []
        best_cb = _make_keep_best_class()(best_path, keep_best, patience, prior, verbose,
                                          run_dir if chief else None, average_best)
        best = best_epoch(prior, keep_best)
        if best is not None and next(r["step"] for r in prior if r["epoch"] == best[0]) == start:
            # Resumed at the end of the best epoch: its checkpoint holds those weights (the run may have
            # stopped between writing the checkpoint and the best weights).
            model.save_weights(best_path)
        last = [r for r in prior if r.get("step") == start and "epoch" in r]
        if last and chief and not os.path.exists(epoch_weights_path(run_dir, last[-1]["epoch"])):
            best_cb.keep_epoch_weights(int(last[-1]["epoch"]))  # likewise for the kept epochs
        cbs.insert(1, best_cb)  # after the epoch's row is logged, before the user's callbacks
    if tensorboard:
        cbs.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq=50))
    step = start
    stopped = best_cb is not None and best_cb.exhausted  # a resumed run that had already stopped early
    make_dataset = make_train_dataset
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        make_dataset = lambda s: distribute_batches(strategy, lambda: make_train_dataset(s))  # noqa: E731
        # Keras builds the model's metrics and optimizer from a batch it pulls from the distributed
        # dataset and averages across replicas, which MultiWorkerMirroredStrategy cannot do with integer
        # inputs; give it a local batch instead (same shapes and dtypes).
        local_batch = next(iter(make_train_dataset(start)))
        symbolic_build = model._maybe_symbolic_build
        model._maybe_symbolic_build = lambda iterator=None, data_batch=None: symbolic_build(data_batch=local_batch)
    while step < total and not stopped:
        epoch, offset = divmod(step, steps_per_epoch)
        # A resumed run first finishes its interrupted epoch, then continues with whole epochs.
        last_epoch = epoch + 1 if offset else epochs
        steps = steps_per_epoch - offset
        try:
            model.fit(make_dataset(step), initial_epoch=epoch, epochs=last_epoch, steps_per_epoch=steps,
                      validation_data=validation_data, callbacks=cbs, verbose=verbose, shuffle=False)
        except StopEarly:
            stopped = True
        step = cb.step
    if chief:
        manager.mark_ended()  # reached its steps, or stopped early on purpose: not a run cut short
    history = read_history(run_dir)
    result = {"step": step, "epochs": epochs, "history": history}
    if keep_best is not None:
        best = best_epoch(history, keep_best) if validation_data is not None else None
        if best is not None and os.path.exists(best_cb.path):
            model.load_weights(best_cb.path)
        averaged = []
        if average_best > 1 and best is not None and chief:
            averaged = sorted(best_epochs(history, keep_best, average_best))
            average_weights(model, [epoch_weights_path(run_dir, e) for e in averaged])
            model.save_weights(os.path.join(run_dir, AVERAGED_WEIGHTS))
            if verbose:
                print(f"Weights averaged over epochs {', '.join(map(str, averaged))} (the {len(averaged)} best by {keep_best}).")
        result.update({"best_epoch": best[0] if best else None, "best": best[1] if best else None,
                       "stopped_early": stopped, "averaged_epochs": averaged})
    return result


def _worker_dir() -> str:
    """A private directory of this (non-chief) worker, outside the shared run dir."""
    import tempfile

    return tempfile.mkdtemp(prefix="rnn_apps_worker_")
