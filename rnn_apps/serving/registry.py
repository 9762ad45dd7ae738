"""The models directory of ``rnn-apps serve``: versions found, loaded (and warmed up) on demand or by the
poller, and their signatures."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from rnn_apps import limits
from rnn_apps.serving.checks import app_settings, languages, model_app
from rnn_apps.serving.continuous import Decoder
from rnn_apps.serving.errors import ApiError, shown, tf_message
from rnn_apps.serving.form import DEFAULT_SIGNATURE, page_form
from rnn_apps.serving.predict import check_limits, run_signature

log = logging.getLogger("rnn_apps.serve")

PREDICT_METHOD = "tensorflow/serving/predict"
VERSION_DIR = re.compile(r"[0-9]+")
WARMUP_ROWS = 8  # continuous batching's step function is compiled at load for batches up to this size


class Signature:
    """One signature of a loaded SavedModel: the callable and its input/output specs."""

    def __init__(self, name: str, fn, tensor_names: Optional[dict] = None):
        import tensorflow as tf

        self.name = name
        self.fn = fn
        args, kwargs = fn.structured_input_signature
        specs: Dict[str, Any] = dict(kwargs)
        for i, spec in enumerate(args):  # signatures are keyword-only, but be lenient
            specs[getattr(spec, "name", None) or f"input_{i}"] = spec
        self.inputs = specs
        outs = fn.structured_outputs
        if not isinstance(outs, dict):
            flat = tf.nest.flatten(outs)
            outs = {f"output_{i}": t for i, t in enumerate(flat)}
        self.outputs = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in outs.items()}
        tensor_names = tensor_names or {}
        self.input_tensor_names = tensor_names.get("inputs", {})
        self.output_tensor_names = tensor_names.get("outputs", {})
        self.method_name = tensor_names.get("method_name") or PREDICT_METHOD

    @property
    def padded_outputs(self) -> bool:
        """Whether an output has a non-batch axis of unknown size (a caption's words, a text's tokens): the model
        pads it to the longest row of the call, so a row's answer depends on the other rows of its call."""
        return any(s.shape.rank is None or (s.shape.rank >= 2 and None in s.shape.as_list()[1:])
                   for s in self.outputs.values())

    def metadata(self) -> dict:
        return {
            "inputs": {k: _tensor_info(s, self.input_tensor_names.get(k, "")) for k, s in self.inputs.items()},
            "outputs": {k: _tensor_info(s, self.output_tensor_names.get(k, "")) for k, s in self.outputs.items()},
            "method_name": self.method_name,
        }


def _tensor_info(spec, tensor_name: str) -> dict:
    from tensorflow.core.framework import types_pb2

    shape = spec.shape
    if shape.rank is None:
        tensor_shape = {"dim": [], "unknown_rank": True}
    else:
        dims = [{"size": str(-1 if d is None else int(d)), "name": ""} for d in shape.as_list()]
        tensor_shape = {"dim": dims, "unknown_rank": False}
    return {
        "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
        "tensor_shape": tensor_shape,
        "name": tensor_name,
    }


def signature_defs(path: str) -> dict:
    """Tensor names and method names from ``saved_model.pb`` (what TF Serving reports)."""
    try:
        from tensorflow.core.protobuf import saved_model_pb2

        sm = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            sm.ParseFromString(f.read())
        out = {}
        for key, sd in sm.meta_graphs[0].signature_def.items():
            out[key] = {
                "inputs": {k: v.name for k, v in sd.inputs.items()},
                "outputs": {k: v.name for k, v in sd.outputs.items()},
                "method_name": sd.method_name,
            }
        return out
    except Exception:  # names are cosmetic: never fail a load over them
        return {}


def _poem_reading(app: Optional[str], settings: dict):
    """A poem model's reading of a text (:class:`rnn_apps.apps.poetry.constants.ModelReading`), from its
    vocabulary and script; None for other models or when its export does not state them."""
    vocab, config = settings.get("vocab"), settings.get("config")
    if app != "poetry" or not isinstance(vocab, dict) or not isinstance(vocab.get("tokens"), list):
        return None
    from rnn_apps.apps.poetry.constants import ModelReading

    script = config.get("script", "simplified") if isinstance(config, dict) else "simplified"
    return ModelReading([str(t) for t in vocab["tokens"]], str(script))


def _examples_as_input(sig: Signature, inputs: dict) -> dict:
    """A classify or regress warm-up request's tf.Example protos as the signature's one input (string), as
    TF Serving feeds them; other requests as they are."""
    import tensorflow as tf

    from rnn_apps.serving.warmup import EXAMPLES

    if EXAMPLES not in inputs:
        return inputs
    if len(sig.inputs) != 1 or next(iter(sig.inputs.values())).dtype != tf.string:
        raise ApiError(400, f"a classify, regress or multi-inference request needs a signature with one string "
                            f"input (serialized tf.Example protos); {sig.name} takes {sorted(sig.inputs)}")
    return {next(iter(sig.inputs)): inputs[EXAMPLES]}


def _check_dtypes(sig: Signature, inputs: dict) -> None:
    """Refuse an input whose type is not the signature's: TF Serving does not convert the tensors of a
    warm-up request, so a file that loads here must not fail there."""
    import tensorflow as tf

    for name, value in inputs.items():
        want = sig.inputs[name].dtype
        got = tf.string if value.dtype.kind in "OSU" else tf.as_dtype(value.dtype)
        if got != want:
            raise ApiError(400, f"input {name} is {got.name}; the signature takes {want.name}")


class LoadedModel:
    """A loaded version of a model (kept alive while any request uses it)."""

    def __init__(self, name: str, version: int, path: str):
        import tensorflow as tf

        self.name = name
        self.version = version
        self.path = path
        self.obj = tf.saved_model.load(path)
        self.decoder = Decoder.of(self.obj)  # step-by-step decoding for continuous batching, if the model has it
        names = signature_defs(path)
        self.signatures = {k: Signature(k, fn, names.get(k)) for k, fn in self.obj.signatures.items()}
        self.app = model_app(path)
        self.limits = limits.for_app(self.app)
        self.settings = app_settings(path, self.app)  # assets.extra/<app>.json
        self.languages = languages(self.settings)  # (source, target) of a translation model
        # what the try-it page shows, stated by the export or derived once here (served with the metadata)
        self.form = page_form(path, self.app, {k: s.metadata() for k, s in self.signatures.items()}, self.settings)
        self.reading = _poem_reading(self.app, self.settings)  # a poem model's reading of texts, or None

    def warm_up(self) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests`` (TF Serving's warm-up), or, for a model of a
        known app without that file, the app's typical requests; returns how many ran.

        A failing request from the file fails the load (as in TF Serving); a built-in one only logs.
        """
        from rnn_apps.serving import warmup

        try:
            requests = warmup.read_warmup(self.path)
        except warmup.WarmupError as e:
            raise RuntimeError(f"warm-up file: {e}") from None
        from_file = requests is not None
        if requests is None:
            try:
                requests = warmup.default_requests(self.app, self.settings, signatures=self.signatures) if self.app else []
            except Exception as e:  # noqa: BLE001 - odd settings: serve without the built-in warm-up
                log.warning("model %s version %d: no built-in warm-up (%s: %s)", self.name, self.version,
                            type(e).__name__, e)
                requests = []
        done, started = 0, set()
        for sig_name, inputs in requests:
            try:
                sig = self.signature(sig_name)
                inputs = _examples_as_input(sig, inputs)
                if set(inputs) != set(sig.inputs):
                    raise ApiError(400, f"inputs {sorted(inputs)} do not match the signature's {sorted(sig.inputs)}")
                if from_file:
                    _check_dtypes(sig, inputs)
                self._warm_up_checks(inputs)
                run_signature(sig, inputs)
                if self.decoder is not None and self.decoder.supports(sig.name) and sig.name not in started:
                    self._warm_up_decoder(sig, inputs, compile_steps=not started)
                    started.add(sig.name)
                done += 1
            except ApiError as e:
                if from_file:
                    raise RuntimeError(f"warm-up request {done + 1} ({sig_name}) failed: {e.message}") from None
                log.warning("model %s version %d: built-in warm-up request failed: %s", self.name, self.version,
                            e.message)
        return done

    def _warm_up_checks(self, inputs: dict) -> None:
        """Run the input checks of a request (some call signatures of their own, e.g. ``unknown_characters``:
        their first call would otherwise add a few hundred milliseconds to the first request)."""
        try:
            check_limits(self, inputs)
        except ApiError:
            pass  # a warm-up request beyond the app's limits still warms the model itself

    def _warm_up_decoder(self, sig: Signature, inputs: dict, compile_steps: bool) -> None:
        """Warm up continuous batching's start function of ``sig`` and, with ``compile_steps``, compile its
        step function for the batch sizes it will run; a model whose functions fail here is served without
        continuous batching (merged calls instead)."""
        try:
            state = self.decoder.start(sig, inputs)
            if compile_steps:
                self.decoder.warm_up(state, WARMUP_ROWS)
        except Exception as e:  # noqa: BLE001 - the signatures themselves work: serve them
            log.warning("model %s version %d: continuous batching is off (its step function failed: %s)",
                        self.name, self.version, e)
            self.decoder = None

    def signature(self, name: Optional[str]) -> Signature:
        key = name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            known = ", ".join(sorted(self.signatures)) or "none"
            raise ApiError(404, f"Serving signature name: \"{key}\" not found in signature def "
                                f"of model {self.name} version {self.version} (signatures: {known})")
        return self.signatures[key]


class _Entry:
    """Load state of one version: START -> LOADING -> AVAILABLE | END (failed)."""

    def __init__(self, name: str, version: int, path: str, fingerprint: tuple, warmup: bool = True):
        self.name = name
        self.warmup = warmup
        self.version = version
        self.path = path
        self.fingerprint = fingerprint  # a changed one (files replaced) makes a fresh entry
        self.lock = threading.Lock()
        self.state = "START"
        self.model: Optional[LoadedModel] = None
        self.error = ""

    def load(self) -> LoadedModel:
        if self.model is not None:
            return self.model
        with self.lock:
            if self.model is not None:
                return self.model
            if self.state == "END":  # failed; retried once its files change (see scan)
                raise self._unavailable()
            self.state = "LOADING"
            t0 = time.time()
            try:
                model = LoadedModel(self.name, self.version, self.path)
                warmed = model.warm_up() if self.warmup else 0
            except Exception as e:  # noqa: BLE001 - any load failure is reported, never fatal
                self.error = f"{type(e).__name__}: {tf_message(e)}"[:2000]
                self.state = "END"
                log.warning("model %s version %d failed to load: %s", self.name, self.version, self.error)
                raise self._unavailable() from None
            self.model = model
            self.error = ""
            self.state = "AVAILABLE"
            log.info("loaded model %s version %d in %.1fs%s", self.name, self.version, time.time() - t0,
                     f" ({warmed} warm-up requests)" if warmed else "")
            return model

    def _unavailable(self) -> ApiError:
        return ApiError(503, f"Model {self.name} version {self.version} failed to load: {self.error}")

    def status(self) -> dict:
        failed = self.state == "END"
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": self.error if failed else ""},
        }


def _fingerprint(vdir: str) -> Optional[tuple]:
    """Identity of a version's files, or None when it is not a (complete) version."""
    try:
        st = os.stat(os.path.join(vdir, "saved_model.pb"))
    except OSError:
        return None
    fp = [(st.st_ino, st.st_mtime_ns, st.st_size)]
    # the weights, and the files a load reads besides the graph: a version that failed to load (say, over
    # its warm-up file or its settings in assets.extra) is retried when any of them changes
    for sub in ("variables", "assets", "assets.extra"):
        try:
            for f in sorted(os.listdir(os.path.join(vdir, sub))):
                vs = os.stat(os.path.join(vdir, sub, f))
                fp.append((sub, f, vs.st_ino, vs.st_mtime_ns, vs.st_size))
        except OSError:
            pass
    return tuple(fp)


def holds_versions(path: str) -> bool:
    """Whether ``path`` is the directory of one model's versions (TF Serving's ``--model_base_path``): it holds
    a version, an integer-named directory with ``saved_model.pb``, where a models directory holds models."""
    try:
        children = os.listdir(path)
    except OSError:
        return False
    return any(VERSION_DIR.fullmatch(c) and int(c) > 0 and _fingerprint(os.path.join(path, c)) is not None
               for c in children)


class ModelRegistry:
    """Versions found under ``models_dir`` and their (lazily) loaded SavedModels. Thread-safe.

    ``models_dir`` holds models (``<name>/<version>/saved_model.pb``), or is itself the directory of one model's
    versions (``<version>/saved_model.pb``), as TF Serving's ``--model_base_path``: that model is then served
    alone, under the directory's name (``one_model``), and ``models_dir`` becomes the directory above it.

    With ``background=True`` a poller calls :meth:`scan` and :meth:`load_newest`; otherwise a
    request for the default version loads the newest version itself.
    """

    def __init__(self, models_dir: str, background: bool = False, warmup: bool = True):
        path = os.path.abspath(models_dir)
        self.one_model: Optional[str] = os.path.basename(path) if holds_versions(path) else None
        self.models_dir = os.path.dirname(path) if self.one_model else path
        self.background = background
        self.warmup = warmup
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()  # one scan at a time, so an older one never wins
        self._entries: Dict[str, Dict[int, _Entry]] = {}

    # -- discovery
    def scan(self) -> None:
        with self._scan_lock:
            self._scan()

    def _scan(self) -> None:
        found: Dict[str, Dict[int, Tuple[str, tuple]]] = {}
        try:
            names = [self.one_model] if self.one_model else sorted(os.listdir(self.models_dir))
        except OSError:
            names = []
        for name in names:
            mdir = os.path.join(self.models_dir, name)
            if (name.startswith(".") and name != self.one_model) or not os.path.isdir(mdir):
                continue
            try:
                children = os.listdir(mdir)
            except OSError:
                continue
            versions = {}
            for child in children:
                if not VERSION_DIR.fullmatch(child) or int(child) <= 0:
                    continue  # e.g. .tmp-* of an export in progress
                vdir = os.path.join(mdir, child)
                fp = _fingerprint(vdir)
                if fp is not None:
                    versions[int(child)] = (vdir, fp)
            if versions:
                found[name] = versions
        with self._lock:
            new: Dict[str, Dict[int, _Entry]] = {}
            for name, versions in found.items():
                old = self._entries.get(name, {})
                new[name] = {v: (old[v] if v in old and old[v].fingerprint == fp else _Entry(name, v, p, fp, self.warmup))
                             for v, (p, fp) in versions.items()}
            self._entries = new

    def load_newest(self) -> None:
        """Load the newest version of every model if not tried yet; called by the poller."""
        for name in self.names():
            entries = self._model_entries(name)
            if not entries:
                continue
            newest = entries[max(entries)]
            if newest.state == "START":
                try:
                    newest.load()
                except ApiError:
                    pass

    def names(self) -> List[str]:
        with self._lock:
            return sorted(self._entries)

    def _model_entries(self, name: str) -> Dict[int, _Entry]:
        with self._lock:
            return dict(self._entries.get(name, {}))

    def entries(self, name: str) -> Dict[int, _Entry]:
        """Versions of ``name``; rescans once before answering "not found"."""
        entries = self._model_entries(name)
        if not entries:
            self.scan()
            entries = self._model_entries(name)
            if not entries:
                raise ApiError(404, f"Could not find any versions of model {shown(name)}")
        return entries

    def entry(self, name: str, version: int) -> _Entry:
        entries = self.entries(name)
        if version not in entries:
            self.scan()
            entries = self.entries(name)
            if version not in entries:
                raise ApiError(404, f"Servable not found for request: Specific({shown(name)}, {version})")
        return entries[version]

    # -- serving
    def get(self, name: str, version: Optional[int] = None) -> LoadedModel:
        if version is not None:
            return self.entry(name, version).load()
        entries = self.entries(name)
        ordered = [entries[v] for v in sorted(entries, reverse=True)]
        if not self.background and ordered[0].state == "START":
            try:
                return ordered[0].load()
            except ApiError:
                pass
        for e in ordered:  # newest already-loaded version (a newer one may still be loading)
            if e.model is not None:
                return e.model
        errors = []
        for e in ordered:  # nothing loaded yet: load newest first, falling back on failure
            try:
                return e.load()
            except ApiError as err:
                errors.append(err.message)
        raise ApiError(503, "; ".join(errors))

    def status(self, name: str, version: Optional[int] = None) -> List[dict]:
        """The state of each version of ``name`` (or of ``version``) now: START, LOADING, AVAILABLE or END.

        As TF Serving's status request, it neither waits for a version that is loading nor starts a load (a
        status request would otherwise take as long as a load, seconds): the poller loads the newest version
        of each model, and a predict or metadata request loads a version not loaded yet.
        """
        if version is not None:
            return [self.entry(name, version).status()]
        entries = self.entries(name)
        return [entries[v].status() for v in sorted(entries, reverse=True)]

    def listing(self) -> List[dict]:
        out = []
        for name in self.names():
            entries = self._model_entries(name)
            versions = sorted(entries, reverse=True)
            out.append({
                "name": name,
                "versions": [str(v) for v in versions],
                "states": {str(v): entries[v].state for v in versions},
            })
        return out
