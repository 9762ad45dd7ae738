"""Atomic SavedModel export in TensorFlow Serving's layout ``<models>/<app>/<version>/``.

An export is written to a hidden temporary directory beside the versions and renamed into place only
when complete, so a crash during export leaves the previous version intact and no half-written version
is ever visible to ``rnn-apps serve``, TensorFlow Serving or ``generate-poem``. The temporary directory of
an export that was killed (its process is gone) is removed by the next export into the same app directory.

An export whose ``extra_files`` hold an app's ``<app>.json`` also gets TF Serving's warm-up file,
``assets.extra/tf_serving_warmup_requests``: the app's typical requests, replayed by the server before
the version serves (:mod:`rnn_apps.serving.warmup`), and ``assets.extra/page_form.json``: the form the
server's try-it page shows for it (:mod:`rnn_apps.serving.form`). Such an export is refused, before
anything is written, into a directory that is another's: one holding a version of another app, or a
``README.md`` that is not a card of the app (:func:`check_export_target`).
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
    from rnn_apps.paths import MODELS_ENV, models_root

    parts = os.path.normpath(path).split(os.sep)
    if not os.path.exists(path) and not os.path.isabs(path) and len(parts) > 1 and parts[0] == "models":
        shipped = os.path.join(models_root(), *parts[1:])
        if os.path.exists(shipped):
            path = shipped
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    latest = latest_version_dir(path)
    if latest is None:
        # A default model is looked up in $RNN_APPS_MODELS alone when it is set: say so, or the user cannot
        # tell why this directory was read.
        env = os.environ.get(MODELS_ENV)
        why = (f" (${MODELS_ENV}={env} is the models directory; unset it for the shipped models)"
               if env and os.path.abspath(path).startswith(os.path.join(os.path.abspath(env), "")) else "")
        raise FileNotFoundError(
            f"No SavedModel at {path}{why}: expected a directory with saved_model.pb, or one holding numbered "
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
        FileExistsError: the version already exists (versions are never overwritten), or ``app_dir`` is not
            the directory of the app whose ``<app>.json`` is among ``extra_files`` (:func:`check_export_target`).
    """
    app = _export_app(extra_files or {})
    if app:
        check_export_target(app_dir, app)
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


def _export_app(extra_files: dict) -> str:
    """The app (package name) whose ``<app>.json`` is among an export's extra files, else ""."""
    from rnn_apps.limits import APPS

    return next((app for app in APPS if f"{app}.json" in extra_files), "")


def version_app(version_dir: str, app: str = "") -> str:
    """The app (package name) a version directory holds a model of: ``app`` when its ``assets.extra`` holds
    ``<app>.json``, else the first app whose ``<app>.json`` it holds; "" for none (not an rnn-apps export)."""
    from rnn_apps.limits import APPS

    extra = os.path.join(version_dir, EXTRA_DIR)
    for name in ([app] if app else []) + [a for a in APPS if a != app]:
        if os.path.isfile(os.path.join(extra, f"{name}.json")):
            return name
    return ""


def check_export_target(app_dir: str, app: str) -> None:
    """Refuse to export a model of ``app`` (a package name: ``poetry``, ``translate`` ...) into ``app_dir`` when
    that directory is another's; nothing is written.

    An export adds a version beside those in ``app_dir``, and the export commands then write its ``README.md``,
    the model card (:func:`rnn_apps.cards.write_card`). A version of another app beside it would leave one of
    the two apps with a newest version it cannot read, and a README of anything else would be replaced by this
    model's card. So ``app_dir`` may hold no numbered directory with another app's ``assets.extra/<app>.json``
    (a SavedModel without any app's is not an rnn-apps export, and is left to its owner), and a ``README.md``
    only if it is a card of ``app``: its front matter's ``rnn_apps: {app: ...}`` names a model directory
    whose card ``app`` writes (:data:`rnn_apps.cards.CARD_MODULES`: ``caption-shapes`` is the caption app's),
    or, written before cards named their app, it names none and lies beside versions of ``app``.

    Raises:
        FileExistsError: ``app_dir`` holds a version of another app, or a README.md that is not a model card
            of ``app``.
    """
    try:
        names = os.listdir(app_dir)
    except OSError:  # no such directory yet (the export creates it), or not a directory (the export says so)
        return
    own = False
    for name in sorted((n for n in names if n.isdigit()), key=int):
        version_dir = os.path.join(app_dir, name)
        if not os.path.isdir(version_dir):
            continue
        found = version_app(version_dir, app)
        if found == app:
            own = True
        elif found:
            raise FileExistsError(
                f"{app_dir} holds {found} models (version {name} has {EXTRA_DIR}/{found}.json), not {app} ones: "
                f"export the {app} model to a directory of its own (e.g. models/{app}).")
    readme = os.path.join(app_dir, "README.md")
    if not os.path.isfile(readme):
        return
    from rnn_apps.cards import CARD_MODULES, card_record, read_card_front

    card_of = card_record(read_card_front(readme)).get("app")
    if card_of is None and own:  # a card written before cards named their app, beside this app's versions
        return
    if isinstance(card_of, str) and CARD_MODULES.get(card_of) == app:
        return
    received = (f"the model card of {card_of!r}, not of {app}" if card_of is not None
                else f"not a model card of {app} (its front matter names no rnn_apps app)")
    raise FileExistsError(
        f"{readme} is {received}; the export would replace it with the {app} model's card: export to a "
        f"directory of its own (e.g. models/{app}) or move that README.md away.")


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
        try:
            from rnn_apps.serving.registry import signature_defs

            signatures = signature_defs(model_dir)
            if not signatures:  # unreadable: no file, so that the server falls back on its built-in requests
                raise ValueError("the SavedModel's signatures could not be read")
            requests = warmup.default_requests(app, card if isinstance(card, dict) else {}, signatures=signatures)
            warmup.write_warmup(model_dir, model_name, requests)
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
