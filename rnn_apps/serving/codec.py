"""JSON values <-> arrays, the way TF Serving's REST API converts them (``{"b64": ...}`` for bytes)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Tuple

import numpy as np

from rnn_apps import limits as L
from rnn_apps.serving.errors import ApiError, bad_request

_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")
# A number that may be beyond a double (1e400, or 309 digits and more): only then does the parser note how
# each fraction was written (noting it for every number would slow down a body of numbers by a third).
_HUGE_NUMBER = re.compile(r"[eE]\+?0*[1-9][0-9]{2}|[0-9]{309}")


class SentNumber(float):
    """A JSON number that is not finite once read (``NaN``, ``Infinity``, or ``1e400``, beyond a double), with
    ``text``, as the client wrote it, for the message that refuses it."""

    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def _fraction(text: str) -> float:
    number = float(text)
    return number if math.isfinite(number) else SentNumber(text)


def loads(text: str):
    """Parse a request body (``json.loads``, which also reads ``NaN`` and ``Infinity`` as some encoders write
    them); its non-finite numbers are :class:`SentNumber` so that a message can quote them as sent.

    Raises:
        ValueError: The text is not JSON.
        RecursionError: It is nested too deeply.
    """
    parse_float = _fraction if _HUGE_NUMBER.search(text) else float
    return json.loads(text, parse_constant=SentNumber, parse_float=parse_float)


def sent(number: float) -> str:
    """``number`` as the client wrote it where known (:class:`SentNumber`), else as the CLI's messages quote it."""
    return number.text if isinstance(number, SentNumber) else L.number_as_sent(number)


def is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_b64(value: dict, name: str) -> bytes:
    data = value["b64"]
    if not isinstance(data, str):
        raise bad_request(f"input '{name}': \"b64\" must be a base64 string")
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
    raise bad_request(f"input '{name}': invalid base64 (characters outside A-Z a-z 0-9 + / - _, "
                       f"or a wrong length)")


# The most dimensions of an array (NumPy 2: 64, NumPy 1: 32), so the deepest lists a value may nest.
_MAX_DIMS = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32


def _flatten(value, name: str, leaf, spec=None, depth: int = 0) -> Tuple[tuple, list]:
    """Shape and leaves of a rectangular nested list; ``leaf`` converts each leaf. Lists nested deeper than an
    array's dimensions can go (:data:`_MAX_DIMS`) are refused (400), with the shape ``spec`` (the signature's)
    expects."""
    if isinstance(value, list):
        if depth >= _MAX_DIMS:
            known = spec is not None and spec.shape.rank is not None
            raise bad_request(f"input '{name}' nests lists more than {_MAX_DIMS} deep" + (
                f"; the signature expects {_shape_str(spec.shape)}" if known else " (the most an array holds)"))
        if not value:
            return (0,), []
        shape, leaves = None, []
        for item in value:
            s, l = _flatten(item, name, leaf, spec, depth + 1)
            if shape is None:
                shape = s
            elif s != shape:
                raise bad_request(f"input '{name}': nested lists must be rectangular (ragged value)")
            leaves.extend(l)
        return (len(value),) + shape, leaves
    return (), [leaf(value)]


def _string_leaf(name: str):
    def leaf(v):
        if isinstance(v, str):
            try:
                return v.encode("utf-8")
            except UnicodeEncodeError:
                raise bad_request(f"input '{name}': the text holds a lone surrogate escape (e.g. \\ud800), "
                                   f"which is not Unicode text") from None
        if is_b64(v):
            return _decode_b64(v, name)
        raise bad_request(f"input '{name}' expects strings (or {{\"b64\": ...}}), got {json.dumps(v)[:80]}")
    return leaf


def _numeric_leaf(name: str, dtype, finite: bool, scalar: bool):
    is_bool = dtype.is_bool
    is_int = dtype.is_integer

    def leaf(v):
        if finite and isinstance(v, float) and not math.isfinite(v):
            raise bad_request(L.not_finite_message(name, sent(v)) if scalar
                              else L.not_finite_values_message(name, sent(v)))
        if is_bool:
            if isinstance(v, bool):
                return v
        elif isinstance(v, (int, float)) and not isinstance(v, bool):  # true and false are not numbers
            if is_int and isinstance(v, float):
                if not v.is_integer():
                    raise bad_request(f"input '{name}' expects integers ({dtype.name}), got {v}")
                return int(v)
            return v
        raise bad_request(f"input '{name}' expects {dtype.name} values, got {json.dumps(v)[:80]}")
    return leaf


def to_array(value, spec, name: str, *, finite: bool = False, exact: bool = False) -> np.ndarray:
    """Convert a JSON value to an array of ``spec``'s dtype, checking type and shape.

    Args:
        value: The JSON value (from :func:`loads`).
        spec: The signature input's ``tf.TensorSpec``.
        name: The input's name, for messages.
        finite: Refuse NaN and infinities (and numbers beyond a double, such as 1e400), quoting them as
            sent: a model of a known app never gets them (a model of no app does, as from TF Serving).
        exact: Floating-point values come back as float64, the JSON numbers themselves, so that a range
            check quotes what was sent (1e308, not float32's inf); :func:`as_dtypes` then converts them.
    """
    import tensorflow as tf

    dtype = spec.dtype
    if dtype == tf.string:
        shape, leaves = _flatten(value, name, _string_leaf(name), spec)
        arr = np.empty(len(leaves), dtype=object)
        arr[:] = leaves
        arr = arr.reshape(shape)
    elif dtype.is_bool or dtype.is_integer or dtype.is_floating:
        shape, leaves = _flatten(value, name, _numeric_leaf(name, dtype, finite, spec.shape.rank == 0), spec)
        if dtype.is_integer and leaves:  # before the conversion, which fails on its own terms for huge ints
            lo, hi = dtype.min, dtype.max
            bad = next((x for x in leaves if not lo <= x <= hi), None)
            if bad is not None:
                shown = str(bad) if len(str(bad)) <= 40 else str(bad)[:37] + "..."
                raise bad_request(f"input '{name}': {shown} is out of range for {dtype.name} ({lo} to {hi})")
        try:
            arr = np.asarray(leaves, dtype=np.float64 if exact and dtype.is_floating else dtype.as_numpy_dtype)
            arr = arr.reshape(shape)
        except (OverflowError, ValueError, TypeError) as e:
            raise bad_request(f"input '{name}': cannot convert to {dtype.name}: {e}") from None
    else:
        raise bad_request(f"input '{name}' has dtype {dtype.name}, which JSON cannot express")
    if not spec.shape.is_compatible_with(arr.shape):
        raise bad_request(f"input '{name}' has shape {list(arr.shape)} but the signature expects "
                           f"{_shape_str(spec.shape)}")
    return arr


def as_dtypes(arrays: dict, specs: dict) -> dict:
    """``arrays`` (from :func:`to_array` with ``exact``) in the dtypes of ``specs`` (input name -> TensorSpec)."""
    out = {}
    for name, arr in arrays.items():
        np_dtype = specs[name].dtype.as_numpy_dtype
        if arr.dtype != np_dtype and arr.dtype == np.float64:
            with np.errstate(over="ignore"):  # 1e308 for float32 (a model of no app): inf, as numpy casts it
                arr = arr.astype(np_dtype)
        out[name] = arr
    return out


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


def json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
