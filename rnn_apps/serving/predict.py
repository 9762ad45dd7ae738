"""TF Serving's predict request: row (``instances``) or columnar (``inputs``) format, checked against the
model's app limits, run, and converted back to JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Tuple

import numpy as np

from rnn_apps import limits
from rnn_apps.sentences import join_pieces, sentence_pieces
from rnn_apps.serving.checks import (check_counted_words, check_known_chars, check_known_words, check_request,
                                    name_undecodable_image)
from rnn_apps.serving.codec import as_dtypes, is_b64, to_array, to_json
from rnn_apps.serving.errors import ApiError, bad_request, tf_message

from rnn_apps.serving.form import DEFAULT_SIGNATURE

if TYPE_CHECKING:
    from rnn_apps.serving.registry import LoadedModel, Signature


def _row_inputs(sig: Signature, instances, finite: bool) -> Tuple[dict, int]:
    if not isinstance(instances, list) or not instances:
        raise bad_request("\"instances\" must be a non-empty list")
    names = list(sig.inputs)
    keyed = [isinstance(x, dict) and not is_b64(x) for x in instances]
    if all(keyed):
        rows = instances
    elif any(keyed):
        raise bad_request("\"instances\" mixes named-input objects and bare values")
    elif len(names) == 1:
        rows = [{names[0]: x} for x in instances]
    else:
        raise bad_request(f"the signature has {len(names)} inputs ({', '.join(names)}): each instance must "
                           f"be an object keyed by input name")
    for row in rows:
        _check_names(sig, row)
    arrays = {}
    for name, spec in sig.inputs.items():
        values = [row[name] for row in rows]
        if spec.shape.rank == 0:  # a scalar input (e.g. temperature): the same for every instance
            if any(v != values[0] for v in values[1:]):
                raise bad_request(f"scalar input '{name}' must have the same value in every instance "
                                   f"(or use the columnar \"inputs\" format)")
            arrays[name] = to_array(values[0], spec, name, finite=finite, exact=True)
        else:
            arrays[name] = to_array(values, spec, name, finite=finite, exact=True)
    return arrays, len(rows)


def _check_names(sig: Signature, given: dict) -> None:
    unknown = sorted(set(given) - set(sig.inputs))
    missing = sorted(set(sig.inputs) - set(given))
    expected = ", ".join(sorted(sig.inputs))
    if unknown:
        raise bad_request(f"unknown input name(s): {', '.join(unknown)}; signature '{sig.name}' expects: {expected}")
    if missing:
        raise bad_request(f"missing input(s): {', '.join(missing)}; signature '{sig.name}' expects: {expected}")


def _columnar_inputs(sig: Signature, inputs, finite: bool) -> dict:
    if isinstance(inputs, dict) and not is_b64(inputs):
        _check_names(sig, inputs)
        return {name: to_array(inputs[name], spec, name, finite=finite, exact=True)
                for name, spec in sig.inputs.items()}
    if len(sig.inputs) != 1:
        raise bad_request(f"the signature has {len(sig.inputs)} inputs ({', '.join(sig.inputs)}): "
                           f"\"inputs\" must be an object keyed by input name")
    (name, spec), = sig.inputs.items()
    return {name: to_array(inputs, spec, name, finite=finite, exact=True)}


def _check_rows(model: LoadedModel, sig: Signature, arrays: dict) -> None:
    """Refuse columnar inputs of a known app's model whose batch axes disagree, naming an input whose number of
    rows differs from that of most inputs, and one of those.

    TF Serving hands columnar inputs to the graph as they are (its format lets inputs differ in their first
    dimension), and so does this server for a model of no known app. Every input with a batch axis of an
    app's model holds one row per example, though, and its graph would otherwise broadcast a lone row over
    the others (a ``seed`` of one value for two prompts) or fail in its own words ("Incompatible shapes").
    An input the model applies to its whole call (``same_in_call``, a caption's ``beam_size``) may be given
    once for all examples (and one given no value is left to the check that says it must be given).
    """
    if model.limits is None:
        return
    once = model.limits.same_in_call
    # By name: a loaded signature does not keep the order of its inputs, and a message should not change.
    rows = {name: arrays[name].shape[0] for name in sorted(arrays)
            if arrays[name].ndim >= 1 and not (name in once and arrays[name].shape[0] <= 1)}
    if len(set(rows.values())) <= 1:
        return
    # The examples are counted by the inputs given per example where there are any (a beam of 2 for 3 images
    # is the beam's fault); a tie goes to the first input by name.
    counts = [n for name, n in rows.items() if name not in once] or list(rows.values())
    common = max(counts, key=counts.count)
    odd = next(name for name, n in rows.items() if n != common)
    other = next(name for name, n in rows.items() if n == common)
    also = f" ({odd} may also be given once, for all of them)" if odd in once else ""
    raise bad_request(f"input '{odd}' has {rows[odd]:,} row{'' if rows[odd] == 1 else 's'} but input '{other}' has "
                      f"{common:,}: every input of signature '{sig.name}' with a batch axis holds one row per example, "
                      f"so all of them must have the same number of rows{also}.")


def run_signature(sig: Signature, arrays: dict) -> Dict[str, np.ndarray]:
    return run_function(sig.fn, arrays, {k: s.dtype for k, s in sig.inputs.items()})


def run_function(fn, arrays: dict, dtypes: dict) -> Dict[str, np.ndarray]:
    """``fn(**arrays)`` with each input as a tensor of ``dtypes[name]``; the outputs as NumPy arrays.

    TensorFlow's errors become API errors: a failed check of the inputs (an assertion in the graph, a
    bad value) is the client's 400, anything else a 500.
    """
    import tensorflow as tf

    try:
        tensors = {k: tf.constant(v, dtype=dtypes[k]) for k, v in arrays.items()}
        out = fn(**tensors)
    except tf.errors.InvalidArgumentError as e:
        from rnn_apps import graph_limits  # an input check in the graph: the command's words, unescaped

        raise bad_request(graph_limits.message(e) or tf_message(e)) from None
    except (tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError) as e:
        raise bad_request(tf_message(e)) from None
    except tf.errors.OpError as e:
        raise ApiError(500, tf_message(e)) from None
    except (TypeError, ValueError) as e:
        raise bad_request(str(e)) from None
    if not isinstance(out, dict):
        out = {f"output_{i}": t for i, t in enumerate(tf.nest.flatten(out))}
    return {k: v.numpy() for k, v in out.items()}


def predict(model: LoadedModel, body, execute=None) -> dict:
    """Answer a TF Serving predict request (already parsed JSON) with ``model``.

    The inputs are checked against the model's app limits (:mod:`rnn_apps.limits`) before the model runs;
    ``execute(signature, arrays)`` runs it (default: at once; the server passes its scheduler).
    """
    execute = execute or run_signature
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object with \"instances\" or \"inputs\"")
    sig_name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(sig_name, str):  # null, false, 0 or [] name no signature (TF Serving refuses them too)
        raise bad_request("\"signature_name\" must be a string")
    sig_name = sig_name or DEFAULT_SIGNATURE
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise bad_request("the request must have exactly one of \"instances\" (row format) or "
                           "\"inputs\" (columnar format)")
    sig = model.signature(sig_name)
    # The checks see the numbers as sent (float64), to quote them; the model gets its dtypes after them.
    finite = model.limits is not None  # a model of a known app never gets NaN or infinities
    if has_rows:
        arrays, batch = _row_inputs(sig, body["instances"], finite)
        check_limits(model, arrays, sig_name)
        arrays = _fit_request(model, as_dtypes(arrays, sig.inputs))
        outputs = _run(model, sig, arrays, execute)
        for name, arr in outputs.items():
            if arr.ndim == 0 or arr.shape[0] != batch:
                raise bad_request(f"Tensor name: {name} has inconsistent batch size: "
                                   f"{arr.shape[0] if arr.ndim else 'scalar'} expecting: {batch} "
                                   f"(use the columnar \"inputs\" format)")
        converted = {name: to_json(arr, name) for name, arr in outputs.items()}
        if len(converted) == 1:
            (preds,) = converted.values()
            return {"predictions": preds}
        return {"predictions": [{k: converted[k][i] for k in converted} for i in range(batch)]}
    arrays = _columnar_inputs(sig, body["inputs"], finite)
    _check_rows(model, sig, arrays)
    if arrays and all(a.ndim >= 1 and a.shape[0] == 0 for a in arrays.values() if a.ndim >= 1) \
            and any(a.ndim >= 1 for a in arrays.values()):
        # as for "instances": []; the graphs' own answers to no rows range from empty lists to obscure errors
        raise bad_request("\"inputs\" holds no examples (empty lists)")
    check_limits(model, arrays, sig_name)
    arrays = _fit_request(model, as_dtypes(arrays, sig.inputs))
    outputs = _run(model, sig, arrays, execute)
    converted = {name: to_json(arr, name) for name, arr in outputs.items()}
    if len(converted) == 1:
        (value,) = converted.values()
        return {"outputs": value}
    return {"outputs": converted}


def check_limits(model: LoadedModel, arrays: dict, signature: Optional[str] = None) -> None:
    """Refuse (400) inputs outside the model's app limits, with the command's messages; some checks call the
    model's own signatures (``unknown_characters``, ``tokenize``, ``words``).

    Those signatures exist to say what the model makes of a text, unknown words included, so a request to
    one of them (``signature``) is not refused for what it would report.
    """
    lim = model.limits
    if lim is not None and signature in limits.ANY_TEXT_SIGNATURES:  # a blank text too, as the graph checks it
        lim = limits.any_text(lim)
    try:
        check_request(lim, arrays)
        if lim is not None and lim.known_words and "tokenize" in model.signatures and signature != "tokenize":
            check_known_words(lim, arrays, lambda a: run_signature(model.signatures["tokenize"], a), model.languages)
        if lim is not None and lim.counted_words and "words" in model.signatures and signature != "words":
            check_counted_words(lim, arrays, lambda a: run_signature(model.signatures["words"], a))
        if lim is not None and lim.known_chars and "unknown_characters" in model.signatures \
                and signature != "unknown_characters":
            check_known_chars(lim, arrays, lambda a: run_signature(model.signatures["unknown_characters"], a))
    except limits.LimitError as e:
        raise bad_request(str(e)) from None


def _fit_request(model: LoadedModel, arrays: dict) -> dict:
    """A poem model's request as the command would write its poems: a start and an acrostic that disagree at
    a line head are refused, and an ``auto`` form is drawn where they fit
    (:func:`rnn_apps.apps.poetry.generate.fit_generate_request`); other requests as they came."""
    if model.reading is None:
        return arrays
    from rnn_apps.apps.poetry.generate import PoemError, fit_generate_request

    try:
        return fit_generate_request(arrays, model.reading)
    except PoemError as e:
        raise bad_request(str(e)) from None


def _run(model: LoadedModel, sig: Signature, arrays: dict, execute) -> Dict[str, np.ndarray]:
    """:func:`_run_in_pieces`; when the model refuses the request, the image it could not decode, if that was
    the cause, is named by its row (TensorFlow's decoder names none)."""
    try:
        return _run_in_pieces(model, sig, arrays, execute)
    except ApiError as e:
        if e.status == 400:
            try:
                name_undecodable_image(model.limits, arrays)
            except limits.LimitError as named:
                raise bad_request(str(named)) from None
            except Exception:  # noqa: BLE001 - the search for the row failed otherwise: the model's 400 stands
                pass
        raise


def _run_in_pieces(model: LoadedModel, sig: Signature, arrays: dict, execute) -> Dict[str, np.ndarray]:
    """``execute(sig, arrays)``, with long texts cut into sentences first where the app says so
    (``limits.sentences``: a translation), as the command does (:func:`rnn_apps.sentences.sentence_pieces`).

    Each text becomes its pieces, in order (other batched inputs are repeated for each piece); the model
    answers every piece, and the answers of one text are put together again: texts joined
    (:func:`rnn_apps.sentences.join_pieces`), numbers (a count such as ``length``) summed.
    """
    name = model.limits.sentences.get(sig.name) if model.limits is not None else None
    source, target = model.languages
    if not name or not source or "tokenize" not in model.signatures or arrays.get(name) is None \
            or arrays[name].ndim != 1 or arrays[name].size == 0:
        return execute(sig, arrays)
    tokenize = model.signatures["tokenize"]

    def count_tokens(texts):
        return run_signature(tokenize, {"text": np.array([t.encode("utf-8") for t in texts], dtype=object)})["length"]

    texts = [t.decode("utf-8") for t in arrays[name]]
    pieces = [sentence_pieces(t, source, count_tokens, n) for t, n in zip(texts, count_tokens(texts))]
    if all(len(p) == 1 for p in pieces):
        return execute(sig, arrays)  # nothing to cut: the texts as they came
    sizes = [len(p) for p in pieces]
    split = {k: (np.repeat(a, sizes, axis=0) if a.ndim >= 1 and a.shape[0] == len(texts) else a)
             for k, a in arrays.items()}
    split[name] = np.array([p.encode("utf-8") for ps in pieces for p in ps], dtype=object)
    outputs = execute(sig, split)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    joined = {}
    for k, out in outputs.items():
        if out.ndim != 1 or out.shape[0] != ends[-1]:
            raise ApiError(500, f"output {k} of signature {sig.name} cannot be put together from the pieces "
                                f"of long texts (shape {list(out.shape)})")
        if out.dtype == object:
            joined[k] = np.array([join_pieces([x.decode("utf-8", "replace") for x in out[a:b]], target).encode("utf-8")
                                  for a, b in zip(starts, ends)], dtype=object)
        else:
            joined[k] = np.array([out[a:b].sum() for a, b in zip(starts, ends)], dtype=out.dtype)
    return joined
