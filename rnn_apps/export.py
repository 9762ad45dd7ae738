"""Atomic SavedModel export in TensorFlow Serving's layout ``<models>/<app>/<version>/``.

An export is written to a hidden temporary directory beside the versions and renamed into place only
when complete, so a crash during export leaves the previous version intact and no half-written version
is ever visible to ``rnn-apps serve``, TensorFlow Serving or ``generate-poem``. The temporary directory of
an export that was killed (its process is gone) is removed by the next export into the same app directory.

An export whose ``extra_files`` hold an app's ``<app>.json`` also gets TF Serving's warm-up file,
``assets.extra/tf_serving_warmup_requests``: the app's typical requests, replayed by the server before
the version serves (:mod:`rnn_apps.serving.warmup`), and ``assets.extra/page_form.json``: the form the
server's try-it page shows for it (:mod:`rnn_apps.serving.form`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from typing import Callable, Optional

EXTRA_DIR = "assets.extra"
_TMP_DIR = re.compile(r"\.tmp-[0-9]+-(?P<pid>[0-9]+)")
STALE_TMP_SECONDS = 24 * 3600  # a temporary directory this old is stale even if its pid was reused


def list_versions(app_dir: str) -> list[int]:
    """The complete versions under ``app_dir`` (integer-named directories holding ``saved_model.pb``)."""
    if not os.path.isdir(app_dir):
        return []
    out = []
    for name in os.listdir(app_dir):
        if name.isdigit() and os.path.isfile(os.path.join(app_dir, name, "saved_model.pb")):
            out.append(int(name))
    return sorted(out)


def latest_version_dir(app_dir: str) -> Optional[str]:
    """The newest complete version directory of ``app_dir``, or None."""
    versions = list_versions(app_dir)
    return os.path.join(app_dir, str(versions[-1])) if versions else None


def resolve_model_dir(path: str) -> str:
    """Accept a version directory or an app directory (newest version); raise FileNotFoundError otherwise.

    A relative ``models/<app>...`` that is not in the working directory names a shipped model (as the
    commands' --help examples do): it is read from the shipped models directory
    (:func:`rnn_apps.paths.models_root`), so the examples work from any directory.
    """
    from rnn_apps.paths import models_root

    parts = os.path.normpath(path).split(os.sep)
    if not os.path.exists(path) and not os.path.isabs(path) and len(parts) > 1 and parts[0] == "models":
        shipped = os.path.join(models_root(), *parts[1:])
        if os.path.exists(shipped):
            path = shipped
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    latest = latest_version_dir(path)
    if latest is None:
        raise FileNotFoundError(
            f"No SavedModel at {path}: expected a directory with saved_model.pb, or one holding numbered "
            "version directories (TF Serving layout models/<app>/<version>/)."
        )
    return latest


def atomic_export(
    write: Callable[[str], None],
    app_dir: str,
    version: Optional[int] = None,
    extra_files: Optional[dict] = None,
) -> str:
    """Run ``write(tmp_dir)`` and move the result to ``app_dir/<version>`` atomically.

    Args:
        write: Writes a SavedModel into the directory it is given (e.g. ``tf.saved_model.save``).
        app_dir: The app's directory, e.g. ``models/poetry``.
        version: The version number; default one more than the newest existing version.
        extra_files: ``{name: str | bytes | dict}`` written under ``assets.extra/`` (dicts as JSON).

    Returns:
        The final version directory.

    Raises:
        FileExistsError: the version already exists (versions are never overwritten).
    """
    os.makedirs(app_dir, exist_ok=True)
    if version is None:
        existing = list_versions(app_dir)
        version = (existing[-1] + 1) if existing else 1
    if not isinstance(version, int) or version <= 0:
        raise ValueError(f"version must be a positive integer; received {version!r}.")
    final = os.path.join(app_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} already exists; versions are never overwritten (choose another version).")
    remove_stale_exports(app_dir)
    tmp = os.path.join(app_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if extra_files:
            extra = os.path.join(tmp, EXTRA_DIR)
            os.makedirs(extra, exist_ok=True)
            for name, content in extra_files.items():
                if isinstance(content, dict):
                    content = json.dumps(content, ensure_ascii=False, indent=1)
                mode = "wb" if isinstance(content, bytes) else "w"
                with open(os.path.join(extra, name), mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
                    f.write(content)
        _write_warmup(tmp, os.path.basename(os.path.normpath(app_dir)), extra_files or {})
        if not os.path.isfile(os.path.join(tmp, "saved_model.pb")):
            raise RuntimeError(f"The export wrote no saved_model.pb into {tmp}.")
        _fsync_tree(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def inference_view(model):
    """``model``'s network without its training state, for a SavedModel module to hold.

    A compiled Keras model tracks its optimizer, so a ``tf.Module`` that holds a model just trained would also
    save the optimizer's variables (Adam's two moments: the SavedModel three times the size, for nothing at
    inference). An uncompiled model is returned as it is; a compiled functional model gets a new functional
    model over the same layers, so the same variables and no optimizer.

    Args:
        model: A built Keras model.

    Raises:
        ValueError: ``model`` is compiled and not functional (its network cannot be viewed without it).
    """
    import keras

    if getattr(model, "optimizer", None) is None:
        return model
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs:
        raise ValueError(f"{type(model).__name__} {model.name!r} is compiled and not a functional model; export "
                         "a copy built without compile() that holds its weights.")
    return keras.Model(inputs, outputs, name=model.name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's process) or cannot tell: keep its directory
    return True


def remove_stale_exports(app_dir: str) -> list[str]:
    """Remove the ``.tmp-<version>-<pid>`` directories of exports whose process is gone (killed mid-export)
    or that are older than :data:`STALE_TMP_SECONDS`; returns the removed paths. A running export's
    directory (its process is alive) is left alone."""
    removed = []
    try:
        names = os.listdir(app_dir)
    except OSError:
        return removed
    for name in names:
        m = _TMP_DIR.fullmatch(name)
        if not m:
            continue
        path = os.path.join(app_dir, name)
        try:
            age = time.time() - os.stat(path).st_mtime
        except OSError:
            continue
        pid = int(m.group("pid"))
        if pid != os.getpid() and (not _pid_alive(pid) or age > STALE_TMP_SECONDS):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _write_warmup(model_dir: str, model_name: str, extra_files: dict) -> None:
    """TF Serving's warm-up file and the try-it page's form for an app's export (an ``<app>.json`` among
    the extra files), unless the extra files hold them."""
    from rnn_apps.limits import APPS
    from rnn_apps.serving import form, warmup

    for app in APPS:
        card = extra_files.get(f"{app}.json")
        if card is None:
            continue
        if form.FORM_FILE not in extra_files:  # what `rnn-apps serve`'s page shows for the model
            form.write_form(model_dir, form.app_form(app, card if isinstance(card, dict) else {}))
        if warmup.WARMUP_FILE in extra_files:
            return
        config = card.get("config", {}) if isinstance(card, dict) else {}
        try:
            warmup.write_warmup(model_dir, model_name, warmup.default_requests(app, config))
        except Exception as e:  # noqa: BLE001 - a model without warm-up still serves (its first request is slower)
            warnings.warn(f"could not write the warm-up requests: {type(e).__name__}: {e}")
        return


def _fsync_tree(path: str) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def read_extra(model_dir: str, name: str):
    """Read ``assets.extra/<name>`` of an exported model (JSON files are parsed)."""
    path = os.path.join(model_dir, EXTRA_DIR, name)
    with open(path, encoding="utf-8") as f:
        return json.load(f) if name.endswith(".json") else f.read()


WEIGHT_DTYPES = ("float32", "float16")


class StoredWeights:
    """A Keras model's weights as an exported ``tf.Module`` stores them, in ``dtype``, computed with in float32.

    ``variables`` (in ``model.weights`` order) are ``tf.Variable`` copies of the weights, float16 ones
    halving a SavedModel's size; inside :meth:`scope` the Keras model reads them, cast to its own dtypes,
    through a ``keras.StatelessScope``, so the exported graph computes in float32 on the stored values.
    Other model state (such as dropout seeds, unused at inference) enters the graph as constants. A
    ``StoredWeights`` is not trackable: a module that holds one saves only the ``variables`` it assigns to
    itself, not the Keras model's own float32 variables.

    Args:
        model: A built Keras model.
        dtype: ``"float32"`` or ``"float16"``.
    """

    def __init__(self, model, dtype: str = "float32"):
        import numpy as np
        import tensorflow as tf

        if dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}; received {dtype!r}.")
        self.model, self.dtype = model, dtype
        self.variables = [
            tf.Variable(tf.cast(v, dtype) if v.dtype == "float32" else tf.convert_to_tensor(v), trainable=False,
                        name=v.path.replace("/", "_"))
            for v in model.weights
        ]
        weights = {id(v) for v in model.weights}
        self.other_state = [(v, np.asarray(v.numpy())) for v in model.variables if id(v) not in weights]

    def scope(self):
        """A scope in which the Keras model reads the stored weights (cast to its own dtypes)."""
        import keras
        import tensorflow as tf

        mapping = [(v, tf.cast(w, v.dtype)) for v, w in zip(self.model.weights, self.variables)]
        mapping += [(v, tf.constant(value)) for v, value in self.other_state]
        return keras.StatelessScope(state_mapping=mapping)
