"""Serve exported SavedModels with TensorFlow Serving's REST API.

``rnn-apps serve`` exposes every SavedModel under a models directory laid out the way
TensorFlow Serving expects::

    <models>/<name>/<version>/saved_model.pb      (version: positive integer directory name)

with the same REST endpoints and JSON formats as ``tensorflow/serving`` on port 8501, so
a client written against TF Serving works unchanged (and the same directory can be handed
to TF Serving in production; see docs/serve.md):

* ``GET  /v1/models/{name}[/versions/{v}]``            model status
* ``GET  /v1/models/{name}[/versions/{v}]/metadata``   signature metadata
* ``POST /v1/models/{name}[/versions/{v}]:predict``    row (``instances``) or columnar (``inputs``)

plus two additions that TF Serving lacks: ``GET /v1/models`` (names and versions) and
``GET /`` (a self-contained page with a small form per model).

Only integer-named version directories that contain ``saved_model.pb`` are versions, so an
export in progress (``.tmp-*`` directory, renamed into place when complete) is never served.
The directory is polled every ``poll_seconds``: new versions are loaded in the background
and become the default once loaded (the previous version keeps serving meanwhile); a
version that fails to load is reported as ``END`` with its error by the status API and
answered with 503, and it is retried when its files change (e.g. a fixed export renamed
into place). Versions stay loaded once loaded; deleting a version directory unloads it.

The HTTP side is a small Flask app served by waitress (multithreaded, pure Python).
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import logging
import os
import re
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rnn_apps import limits
from rnn_apps.serving.checks import check_known_words, check_request, model_app

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
_VERSION_DIR = re.compile(r"[0-9]+")
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def _tf_message(err: Exception) -> str:
    """The useful part of a TF runtime error: drop the node trace and ``[Op:...]`` suffix."""
    msg = getattr(err, "message", None) or str(err)
    msg = msg.split("\n\t [[", 1)[0]
    msg = re.sub(r"\s*\[Op:[^\]]*\]\s*(name:.*)?$", "", msg.strip())
    kept, in_trace = [], False
    for line in msg.split("\n"):  # drop "Graph execution error:" and "Detected at node ..." traces
        if line.strip() == "Graph execution error:":
            continue
        if line.startswith("Detected at node"):
            in_trace = True
            continue
        if in_trace and (line.startswith((" ", "\t")) or line.strip() in ("", "<stack traces unavailable>")):
            continue
        in_trace = False
        kept.append(line)
    return "\n".join(kept).strip() or msg.strip()


# --------------------------------------------------------------------------- loaded models


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


def _signature_def_names(path: str) -> dict:
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


class LoadedModel:
    """A loaded version of a model (kept alive while any request uses it)."""

    def __init__(self, name: str, version: int, path: str):
        import tensorflow as tf

        self.name = name
        self.version = version
        self.path = path
        self.obj = tf.saved_model.load(path)
        names = _signature_def_names(path)
        self.signatures = {k: Signature(k, fn, names.get(k)) for k, fn in self.obj.signatures.items()}
        self.app = model_app(path)
        self.limits = limits.for_app(self.app)

    def warm_up(self) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests`` (TF Serving's warm-up), or, for a model of a
        known app without that file, the app's typical requests; returns how many ran.

        A failing request from the file fails the load (as in TF Serving); a built-in one only logs.
        """
        from rnn_apps.serving import warmup

        requests = warmup.read_warmup(self.path)
        from_file = requests is not None
        if requests is None:
            config = {}
            if self.app:
                try:
                    with open(os.path.join(self.path, "assets.extra", f"{self.app}.json"), encoding="utf-8") as f:
                        config = json.load(f).get("config", {})
                except (OSError, ValueError, AttributeError):
                    config = {}
            requests = warmup.default_requests(self.app, config) if self.app else []
        done = 0
        for sig_name, inputs in requests:
            try:
                sig = self.signature(sig_name)
                if set(inputs) != set(sig.inputs):
                    raise ApiError(400, f"inputs {sorted(inputs)} do not match the signature's {sorted(sig.inputs)}")
                _run(sig, inputs)
                done += 1
            except ApiError as e:
                if from_file:
                    raise RuntimeError(f"warm-up request {done + 1} ({sig_name}) failed: {e.message}") from None
                log.warning("model %s version %d: built-in warm-up request failed: %s", self.name, self.version,
                            e.message)
        return done

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
                self.error = f"{type(e).__name__}: {_tf_message(e)}"[:2000]
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
    try:
        var_dir = os.path.join(vdir, "variables")
        for f in sorted(os.listdir(var_dir)):
            vs = os.stat(os.path.join(var_dir, f))
            fp.append((f, vs.st_ino, vs.st_mtime_ns, vs.st_size))
    except OSError:
        pass
    return tuple(fp)


class ModelRegistry:
    """Versions found under ``models_dir`` and their (lazily) loaded SavedModels. Thread-safe.

    With ``background=True`` a poller calls :meth:`scan` and :meth:`load_newest`; otherwise a
    request for the default version loads the newest version itself.
    """

    def __init__(self, models_dir: str, background: bool = False, warmup: bool = True):
        self.models_dir = os.path.abspath(models_dir)
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
            names = sorted(os.listdir(self.models_dir))
        except OSError:
            names = []
        for name in names:
            mdir = os.path.join(self.models_dir, name)
            if name.startswith(".") or not os.path.isdir(mdir):
                continue
            try:
                children = os.listdir(mdir)
            except OSError:
                continue
            versions = {}
            for child in children:
                if not _VERSION_DIR.fullmatch(child) or int(child) <= 0:
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
                raise ApiError(404, f"Could not find any versions of model {name}")
        return entries

    def entry(self, name: str, version: int) -> _Entry:
        entries = self.entries(name)
        if version not in entries:
            self.scan()
            entries = self.entries(name)
            if version not in entries:
                raise ApiError(404, f"Servable not found for request: Specific({name}, {version})")
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
        if version is not None:
            e = self.entry(name, version)
            try:
                e.load()
            except ApiError:
                pass
            return [e.status()]
        entries = self.entries(name)
        try:
            self.get(name)  # make sure what answers by default is loaded
        except ApiError:
            pass
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


# --------------------------------------------------------------------------- JSON <-> tensors


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_b64(value: dict, name: str) -> bytes:
    data = value["b64"]
    if not isinstance(data, str):
        raise _bad_request(f"input '{name}': \"b64\" must be a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    if _URLSAFE_B64.fullmatch(data):  # tolerate the URL-safe alphabet and missing padding
        try:
            stripped = data.rstrip("=")
            return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
        except (binascii.Error, ValueError):
            pass
    raise _bad_request(f"input '{name}': invalid base64 (characters outside A-Z a-z 0-9 + / - _, "
                       f"or a wrong length)")


def _flatten(value, name: str, leaf) -> Tuple[tuple, list]:
    """Shape and leaves of a rectangular nested list; ``leaf`` converts each leaf."""
    if isinstance(value, list):
        if not value:
            return (0,), []
        shape, leaves = None, []
        for item in value:
            s, l = _flatten(item, name, leaf)
            if shape is None:
                shape = s
            elif s != shape:
                raise _bad_request(f"input '{name}': nested lists must be rectangular (ragged value)")
            leaves.extend(l)
        return (len(value),) + shape, leaves
    return (), [leaf(value)]


def _string_leaf(name: str):
    def leaf(v):
        if isinstance(v, str):
            try:
                return v.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad_request(f"input '{name}': the text holds a lone surrogate escape (e.g. \\ud800), "
                                   f"which is not Unicode text") from None
        if _is_b64(v):
            return _decode_b64(v, name)
        raise _bad_request(f"input '{name}' expects strings (or {{\"b64\": ...}}), got {json.dumps(v)[:80]}")
    return leaf


def _numeric_leaf(name: str, dtype):
    is_bool = dtype.is_bool
    is_int = dtype.is_integer

    def leaf(v):
        if is_bool:
            if isinstance(v, bool):
                return v
        elif isinstance(v, bool) or isinstance(v, (int, float)):
            if is_int and isinstance(v, float):
                if not v.is_integer():
                    raise _bad_request(f"input '{name}' expects integers ({dtype.name}), got {v}")
                return int(v)
            return v
        raise _bad_request(f"input '{name}' expects {dtype.name} values, got {json.dumps(v)[:80]}")
    return leaf


def to_array(value, spec, name: str) -> np.ndarray:
    """Convert a JSON value to an array of ``spec``'s dtype, checking type and shape."""
    import tensorflow as tf

    dtype = spec.dtype
    if dtype == tf.string:
        shape, leaves = _flatten(value, name, _string_leaf(name))
        arr = np.empty(len(leaves), dtype=object)
        arr[:] = leaves
        arr = arr.reshape(shape)
    elif dtype.is_bool or dtype.is_integer or dtype.is_floating:
        shape, leaves = _flatten(value, name, _numeric_leaf(name, dtype))
        try:
            arr = np.asarray(leaves, dtype=dtype.as_numpy_dtype).reshape(shape)
        except (OverflowError, ValueError, TypeError) as e:
            raise _bad_request(f"input '{name}': cannot convert to {dtype.name}: {e}") from None
        if dtype.is_integer and leaves:
            lo, hi = dtype.min, dtype.max
            if any(not (lo <= x <= hi) for x in leaves):
                raise _bad_request(f"input '{name}': value out of range for {dtype.name}")
    else:
        raise _bad_request(f"input '{name}' has dtype {dtype.name}, which JSON cannot express")
    if not spec.shape.is_compatible_with(arr.shape):
        raise _bad_request(f"input '{name}' has shape {list(arr.shape)} but the signature expects "
                           f"{_shape_str(spec.shape)}")
    return arr


def _shape_str(shape) -> str:
    if shape.rank is None:
        return "any shape"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape.as_list()) + "]"


def _string_out(b: bytes, force_b64: bool):
    if not force_b64:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(b).decode("ascii")}


def _map_nested(obj, fn):
    if isinstance(obj, list):
        return [_map_nested(x, fn) for x in obj]
    return fn(obj)


def to_json(arr: np.ndarray, name: str):
    """Convert an output array to JSON values the way TF Serving prints them."""
    arr = np.asarray(arr)
    if arr.dtype == object or arr.dtype.kind in "SU":
        force = name.endswith("_bytes")  # TF Serving's convention for binary outputs
        return _map_nested(arr.tolist(), lambda b: _string_out(b if isinstance(b, bytes) else str(b).encode(), force))
    if arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float32)
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 8:
        # shortest repr of float32 values (0.9, not 0.8999999761581421), as TF Serving prints them
        return np.vectorize(float, otypes=[object])(arr.astype(np.float32).astype(str)).tolist()
    if arr.dtype.kind == "c":
        raise ApiError(500, f"output '{name}' is complex, which JSON cannot express")
    return arr.tolist()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# --------------------------------------------------------------------------- predict


def _row_inputs(sig: Signature, instances) -> Tuple[dict, int]:
    if not isinstance(instances, list) or not instances:
        raise _bad_request("\"instances\" must be a non-empty list")
    names = list(sig.inputs)
    keyed = [isinstance(x, dict) and not _is_b64(x) for x in instances]
    if all(keyed):
        rows = instances
    elif any(keyed):
        raise _bad_request("\"instances\" mixes named-input objects and bare values")
    elif len(names) == 1:
        rows = [{names[0]: x} for x in instances]
    else:
        raise _bad_request(f"the signature has {len(names)} inputs ({', '.join(names)}): each instance must "
                           f"be an object keyed by input name")
    for row in rows:
        _check_names(sig, row)
    arrays = {}
    for name, spec in sig.inputs.items():
        values = [row[name] for row in rows]
        if spec.shape.rank == 0:  # a scalar input (e.g. temperature): the same for every instance
            if any(v != values[0] for v in values[1:]):
                raise _bad_request(f"scalar input '{name}' must have the same value in every instance "
                                   f"(or use the columnar \"inputs\" format)")
            arrays[name] = to_array(values[0], spec, name)
        else:
            arrays[name] = to_array(values, spec, name)
    return arrays, len(rows)


def _check_names(sig: Signature, given: dict) -> None:
    unknown = sorted(set(given) - set(sig.inputs))
    missing = sorted(set(sig.inputs) - set(given))
    expected = ", ".join(sorted(sig.inputs))
    if unknown:
        raise _bad_request(f"unknown input name(s): {', '.join(unknown)}; signature '{sig.name}' expects: {expected}")
    if missing:
        raise _bad_request(f"missing input(s): {', '.join(missing)}; signature '{sig.name}' expects: {expected}")


def _columnar_inputs(sig: Signature, inputs) -> dict:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        _check_names(sig, inputs)
        return {name: to_array(inputs[name], spec, name) for name, spec in sig.inputs.items()}
    if len(sig.inputs) != 1:
        raise _bad_request(f"the signature has {len(sig.inputs)} inputs ({', '.join(sig.inputs)}): "
                           f"\"inputs\" must be an object keyed by input name")
    (name, spec), = sig.inputs.items()
    return {name: to_array(inputs, spec, name)}


def _run(sig: Signature, arrays: dict) -> Dict[str, np.ndarray]:
    import tensorflow as tf

    try:
        tensors = {k: tf.constant(v, dtype=sig.inputs[k].dtype) for k, v in arrays.items()}
        out = sig.fn(**tensors)
    except tf.errors.InvalidArgumentError as e:
        raise _bad_request(_tf_message(e)) from None
    except (tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError) as e:
        raise _bad_request(_tf_message(e)) from None
    except tf.errors.OpError as e:
        raise ApiError(500, _tf_message(e)) from None
    except (TypeError, ValueError) as e:
        raise _bad_request(str(e)) from None
    if not isinstance(out, dict):
        out = {f"output_{i}": t for i, t in enumerate(tf.nest.flatten(out))}
    return {k: v.numpy() for k, v in out.items()}


def predict(model: LoadedModel, body, execute=None) -> dict:
    """Answer a TF Serving predict request (already parsed JSON) with ``model``.

    The inputs are checked against the model's app limits (:mod:`rnn_apps.limits`) before the model runs;
    ``execute(signature, arrays)`` runs it (default: at once; the server passes its scheduler).
    """
    execute = execute or _run
    if not isinstance(body, dict):
        raise _bad_request("the request body must be a JSON object with \"instances\" or \"inputs\"")
    sig_name = body.get("signature_name") or DEFAULT_SIGNATURE
    if not isinstance(sig_name, str):
        raise _bad_request("\"signature_name\" must be a string")
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise _bad_request("the request must have exactly one of \"instances\" (row format) or "
                           "\"inputs\" (columnar format)")
    sig = model.signature(sig_name)
    if has_rows:
        arrays, batch = _row_inputs(sig, body["instances"])
        _check_limits(model, arrays)
        outputs = execute(sig, arrays)
        for name, arr in outputs.items():
            if arr.ndim == 0 or arr.shape[0] != batch:
                raise _bad_request(f"Tensor name: {name} has inconsistent batch size: "
                                   f"{arr.shape[0] if arr.ndim else 'scalar'} expecting: {batch} "
                                   f"(use the columnar \"inputs\" format)")
        converted = {name: to_json(arr, name) for name, arr in outputs.items()}
        if len(converted) == 1:
            (preds,) = converted.values()
            return {"predictions": preds}
        return {"predictions": [{k: converted[k][i] for k in converted} for i in range(batch)]}
    arrays = _columnar_inputs(sig, body["inputs"])
    _check_limits(model, arrays)
    outputs = execute(sig, arrays)
    converted = {name: to_json(arr, name) for name, arr in outputs.items()}
    if len(converted) == 1:
        (value,) = converted.values()
        return {"outputs": value}
    return {"outputs": converted}


def _check_limits(model: LoadedModel, arrays: dict) -> None:
    try:
        check_request(model.limits, arrays)
        if model.limits is not None and model.limits.known_words and "tokenize" in model.signatures:
            check_known_words(model.limits, arrays, lambda a: _run(model.signatures["tokenize"], a))
    except limits.LimitError as e:
        raise _bad_request(str(e)) from None


# --------------------------------------------------------------------------- HTTP app

_ROUTE = re.compile(
    r"^(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$"
)


def create_app(registry: ModelRegistry, max_body_bytes: int = 16 * 1024 * 1024,
               rescan_on_request: bool = False, *, scheduler=None, metrics=None,
               cors_origins: Sequence[str] = (), loopback: bool = False):
    """The Flask WSGI app answering TF Serving's REST API from ``registry``.

    Args:
        registry: The models.
        max_body_bytes: The largest request body, after gzip inflation (413 above).
        rescan_on_request: Rescan the models directory on every request (no poller).
        scheduler: Runs the model calls (:class:`rnn_apps.serving.batching.Scheduler`; default one with
            the default settings).
        metrics: Where request counts and latencies go (:class:`rnn_apps.serving.metrics.Metrics`).
        cors_origins: Web origins (``https://app.example``, or ``*``) whose pages may call the API; a
            browser request from any other origin is refused with 403.
        loopback: The server listens on loopback only: requests must name a loopback Host.
    """
    from importlib import resources

    from flask import Flask, Response, g, request
    from werkzeug.exceptions import HTTPException

    from rnn_apps.serving import guard
    from rnn_apps.serving.batching import Deadline, ScheduleError, Scheduler, SchedulerConfig
    from rnn_apps.serving.metrics import Metrics

    scheduler = scheduler or Scheduler(SchedulerConfig())
    metrics = metrics or Metrics()
    cors_origins = tuple(cors_origins)
    index_html = resources.files("rnn_apps.serving").joinpath("index.html").read_text(encoding="utf-8")
    app = Flask("rnn_apps.serve")
    app.config["rnn_apps.metrics"] = metrics

    def reply(obj, status: int = 200, headers: Optional[dict] = None):
        body = json.dumps(obj, ensure_ascii=False, indent=1, default=_json_default, allow_nan=True)
        # a lone surrogate becomes its JSON escape (\ud800) instead of failing to encode
        resp = Response((body + "\n").encode("utf-8", "backslashreplace"), status=status,
                        mimetype="application/json")
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return reply({"error": e.message}, e.status, e.headers)

    @app.errorhandler(guard.GuardError)
    def _guard_error(e: guard.GuardError):
        return reply({"error": e.message}, e.status)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        headers = {k: v for k, v in e.get_headers() if k.lower() == "allow"}
        return reply({"error": f"{e.name}: {e.description}"}, e.code or 500, headers)

    @app.errorhandler(Exception)
    def _internal(e: Exception):
        log.exception("internal error")
        return reply({"error": f"Internal error: {type(e).__name__}: {e}"}, 500)

    @app.before_request
    def _checks():
        g.t0 = time.perf_counter()
        guard.check_host(request.headers.get("Host"), loopback)
        origin = request.headers.get("Origin")
        if origin and not guard.origin_allowed(origin, request.headers.get("Host"), request.scheme, cors_origins):
            raise guard.GuardError(403, f"cross-origin request from {origin} refused (the server allows "
                                        f"{', '.join(cors_origins) or 'no other origin'}; see --cors-origin)")
        if request.method == "OPTIONS":
            return Response(status=204, headers=guard.preflight_headers(origin or "", cors_origins))
        length = request.content_length
        if length is not None and length > max_body_bytes:
            raise ApiError(413, f"request body of {length} bytes exceeds the limit of {max_body_bytes} bytes")
        if rescan_on_request:
            registry.scan()
        return None

    @app.after_request
    def _after(resp):
        origin = request.headers.get("Origin")
        if origin and cors_origins:
            resp.headers.update(guard.cors_headers(origin, cors_origins))
        if getattr(g, "metric", None) is not None:
            metrics.request(*g.metric, resp.status_code, time.perf_counter() - g.t0)
        return resp

    @app.get("/")
    def _page():
        return Response(index_html, mimetype="text/html")

    @app.get("/v1/models")
    def _models():
        return reply({"models": registry.listing()})

    @app.get("/monitoring/prometheus/metrics")
    def _metrics():
        def states():
            return [(m["name"], int(v), st) for m in registry.listing() for v, st in m["states"].items()]

        return Response(metrics.render(states), mimetype="text/plain; version=0.0.4")

    def execute_for(model: LoadedModel, deadline: Deadline):
        def execute(sig: Signature, arrays: dict):
            try:
                return scheduler.run((model.name, model.version, id(model), sig.name), model.name,
                                     lambda a: _run(sig, a), arrays, deadline)
            except ScheduleError as e:
                raise ApiError(e.status, e.message) from None
        return execute

    @app.route("/v1/models/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def _model(rest: str):
        m = _ROUTE.match(rest)
        if not m:
            raise ApiError(404, f"Malformed request: {request.method} /v1/models/{rest}")
        name, suffix = m.group("name"), m.group("suffix") or ""
        g.metric = (name, {"": "status", "/metadata": "metadata"}.get(suffix, suffix[1:]))
        post = suffix in (":predict", ":classify", ":regress")
        if request.method != ("POST" if post else "GET") and not (request.method == "HEAD" and not post):
            allow = "POST" if post else "GET, HEAD"
            raise ApiError(405, f"Method {request.method} not allowed for {request.path} (use {allow})",
                           {"Allow": allow})
        if m.group("label") is not None:
            registry.entries(name)  # 404 for an unknown model first
            raise ApiError(404, f"Unrecognized servable version label: {m.group('label')} "
                                f"(this server has no version labels; use /versions/N)")
        version = None
        if m.group("version") is not None:
            v = m.group("version")
            if not _VERSION_DIR.fullmatch(v) or int(v) <= 0:
                raise ApiError(404, f"Malformed version: {v} (versions are positive integers)")
            version = int(v)
        if suffix == "":
            return reply({"model_version_status": registry.status(name, version)})
        model = registry.get(name, version)
        if suffix == "/metadata":
            return reply({
                "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
                "metadata": {"signature_def": {"signature_def": {
                    k: s.metadata() for k, s in sorted(model.signatures.items())}}},
            })
        if suffix != ":predict":
            raise _bad_request(f"{suffix[1:]} is not supported by this server; use :predict "
                               f"(signatures here have method_name {PREDICT_METHOD})")
        raw = guard.inflate(request.get_data(cache=False), request.headers.get("Content-Encoding"), max_body_bytes)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:  # ValueError: JSONDecodeError, or an integer of 4,300+ digits
            raise _bad_request(f"JSON Parse error: {e}") from None
        except RecursionError:
            raise _bad_request("JSON Parse error: nested too deeply") from None
        deadline = Deadline(scheduler.config.request_timeout, request.environ.get("waitress.client_disconnected"))
        try:
            return reply(predict(model, body, execute_for(model, deadline)))
        except RecursionError:
            raise _bad_request("the request's lists are nested too deeply for the signature") from None

    return app


# --------------------------------------------------------------------------- server


def _json_error_channel():
    """A waitress channel whose own errors (413 over the body limit, bad headers) are JSON too."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self):
            e = self.request.error
            message = e.reason + (f": {e.body}" if e.body else "")
            if e.code == 413:
                message = f"request body too large: {e.body}"
            body = json.dumps({"error": message}).encode("utf-8") + b"\n"
            self.status = f"{e.code} {e.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    return JsonErrorChannel


class ModelServer:
    """A running (bound) server; ``serve_forever`` in one thread, ``shutdown`` from another."""

    def __init__(self, models_dir: str, host: str = "127.0.0.1", port: int = 8501,
                 max_body_bytes: int = 16 * 1024 * 1024, poll_seconds: float = 2.0, threads: int = 16,
                 *, cors_origins: Sequence[str] = (), max_connections: int = 100, idle_timeout: int = 30,
                 warmup: bool = True, **scheduling):
        import waitress
        from waitress.server import BaseWSGIServer

        from rnn_apps.serving.batching import Scheduler, SchedulerConfig
        from rnn_apps.serving.guard import guard_server, is_loopback
        from rnn_apps.serving.metrics import Metrics

        self.registry = ModelRegistry(models_dir, background=poll_seconds > 0, warmup=warmup)
        self.registry.scan()
        self.poll_seconds = poll_seconds
        self.metrics = Metrics()
        self.scheduler = Scheduler(SchedulerConfig(**scheduling), on_batch=self.metrics.batch)
        self.app = create_app(self.registry, max_body_bytes, rescan_on_request=poll_seconds <= 0,
                              scheduler=self.scheduler, metrics=self.metrics, cors_origins=cors_origins,
                              loopback=is_loopback(host))
        try:
            self._server = waitress.create_server(
                self.app, host=host, port=port, threads=threads,
                max_request_body_size=max_body_bytes, ident="rnn-apps-serve",
                expose_tracebacks=False, clear_untrusted_proxy_headers=True,
                # idle sockets are closed after idle_timeout s, and evicted at once when the limit is reached
                connection_limit=max_connections, channel_timeout=idle_timeout,
                channel_request_lookahead=1,  # lets a request see that its client hung up (deadline checks)
                cleanup_interval=max(1, min(idle_timeout // 2, 10)),
            )
        except (OSError, ValueError) as e:  # waitress: ValueError for a host it cannot resolve
            why = getattr(e, "strerror", None) or str(e)
            busy = getattr(e, "errno", None) == errno.EADDRINUSE
            raise ServeError(f"cannot listen on {host}:{port}: {why}"
                             + (" (another program uses this port; choose another with --port)" if busy else "")
                             ) from None
        self._map = getattr(self._server, "_map", None) or getattr(self._server, "map")
        channel = _json_error_channel()
        for d in list(self._map.values()):
            if isinstance(d, BaseWSGIServer):
                guard_server(d, channel)
        port_ = getattr(self._server, "effective_port", None)
        if port_ is None:  # MultiSocketServer (a host name resolving to several addresses)
            port_ = self._server.effective_listen[0][1]
        self.host = host
        self.port = int(port_)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._poller: Optional[threading.Thread] = None
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _poll(self) -> None:
        first = True
        while first or not self._stop.wait(self.poll_seconds):
            first = False
            try:
                self.registry.scan()
                self.registry.load_newest()
            except Exception:  # noqa: BLE001 - the poller must survive anything
                log.exception("model directory poll failed")

    def serve_forever(self) -> None:
        from waitress import wasyncore

        if self._closed:
            raise RuntimeError("server is shut down")
        self._stopped.clear()
        if self.poll_seconds > 0 and self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="serve-poller", daemon=True)
            self._poller.start()
        adj = self._server.adj
        try:
            while not self._stop.is_set() and self._map:
                wasyncore.loop(timeout=min(adj.asyncore_loop_timeout, 0.5), map=self._map,
                               use_poll=adj.asyncore_use_poll, count=1)
        finally:
            self._close()
            self._stopped.set()

    def _close(self) -> None:
        from waitress import wasyncore

        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        finally:
            wasyncore.close_all(self._map)

    def shutdown(self) -> None:
        """Stop serving; returns once the listening socket is closed."""
        self._stop.set()
        pull = getattr(self._server, "pull_trigger", None)
        if pull is not None:
            try:
                pull()
            except OSError:
                pass
        if not self._stopped.wait(10):
            log.warning("server loop did not stop in time")
        self._close()
        if self._poller is not None:
            self._poller.join(timeout=self.poll_seconds + 5)


def make_server(models_dir: str, host: str = "127.0.0.1", port: int = 8501,
                max_body_bytes: int = 16 * 1024 * 1024, poll_seconds: float = 2.0,
                threads: int = 16, **options) -> ModelServer:
    """Bind a server for every SavedModel under ``models_dir`` (``port=0``: any free port).

    The server is listening on return (``.port`` is the bound port); call ``serve_forever()``
    to answer requests and ``shutdown()`` from another thread to stop.

    Args:
        options: ``cors_origins``, ``max_connections``, ``idle_timeout`` (s), ``warmup`` (bool), and the
            scheduling settings of :class:`rnn_apps.serving.batching.SchedulerConfig`
            (``enable_batching``, ``max_batch_size``, ``batch_timeout``, ``request_timeout``,
            ``heavy_slots``, ``heavy_queue``, ``light_rows``, ``light_bytes``).

    Raises:
        ServeError: the port is taken, the host cannot be bound, or the port is out of range.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServeError(f"port must be an integer from 0 to 65535; received {port!r}.")
    return ModelServer(models_dir, host, port, max_body_bytes, poll_seconds, threads, **options)


class ServeError(ValueError):
    """The server cannot start (the message says why)."""


def run_server(models_dir: str, host: str = "127.0.0.1", port: int = 8501,
               max_body_bytes: int = 16 * 1024 * 1024, poll_seconds: float = 2.0, **options) -> None:
    """Serve until Ctrl-C, printing where (``options``: as :func:`make_server`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.path.isdir(models_dir):
        raise ServeError(f"models directory not found: {models_dir}")
    server = make_server(models_dir, host, port, max_body_bytes, poll_seconds, **options)
    names = server.registry.names()
    print(f"Serving {len(names)} model(s) from {server.registry.models_dir}"
          f"{': ' + ', '.join(names) if names else ' (new ones are picked up as they appear)'}")
    print(f"TF Serving REST API at {server.url}v1/models/<name>, try-it page at {server.url}, "
          f"metrics at {server.url}monitoring/prometheus/metrics")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Warning: listening on {host} without authentication: anyone who can reach this "
              f"port can run the models.")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        print("Stopped.")
