"""TF Serving's predict request: row (``instances``) or columnar (``inputs``) format, checked against the
model's app limits, run, and converted back to JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Tuple

import numpy as np

from rnn_apps import limits
from rnn_apps.serving.checks import check_known_words, check_request
from rnn_apps.serving.codec import _is_b64, to_array, to_json
from rnn_apps.serving.errors import ApiError, _bad_request, _tf_message

from rnn_apps.serving.registry import DEFAULT_SIGNATURE

if TYPE_CHECKING:
    from rnn_apps.serving.registry import LoadedModel, Signature


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
