"""Model warm-up in TensorFlow Serving's format: ``assets.extra/tf_serving_warmup_requests``.

The file is a TFRecord file of ``tensorflow.serving.PredictionLog`` protos, each holding a
``PredictLog`` whose ``PredictRequest`` names a signature and carries its input tensors
(https://www.tensorflow.org/tfx/serving/saved_model_warmup); this module writes those. It reads, as TF
Serving replays, also classify, regress and multi-inference logs (``tf.Example`` protos for a signature's
one input) and a predict-streamed log of one request. TF Serving and ``rnn-apps serve`` replay
the requests after loading a version and before it becomes AVAILABLE, so the first real request does not
pay for tracing and (for the poem model) XLA compilation.

The few wrapper messages are written and read here by hand (protobuf wire format: field number << 3 |
wire type 2, then a varint length), so no ``tensorflow-serving-api`` package is needed; the tensors are
TensorFlow's own ``TensorProto``. Field numbers, from tensorflow_serving/apis: PredictionLog.predict_log
= 6, PredictLog.request = 1, PredictRequest.model_spec = 1 and .inputs = 2 (map entries: key 1, value 2),
ModelSpec.name = 1 and .signature_name = 3.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # as TF Serving

Request = Tuple[str, Dict[str, np.ndarray]]  # (signature name, inputs)


def _small_png() -> bytes:
    """A 64x64 PNG (a red square on white) for the caption model's warm-up."""
    import io

    from PIL import Image

    im = Image.new("RGB", (64, 64), "white")
    im.paste((200, 30, 30), (16, 16, 48, 48))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fields(data: bytes) -> Iterator[Tuple[int, bytes]]:
    """(field number, payload) of each length-delimited field; other wire types are skipped."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 2:
            n, i = _read_varint(data, i)
            if i + n > len(data):
                raise ValueError("truncated field")
            yield number, data[i:i + n]
            i += n
        elif wire == 0:
            _, i = _read_varint(data, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _read_varint(data: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def encode_request(model_name: str, signature: str, inputs: Dict[str, np.ndarray]) -> bytes:
    """A serialized PredictionLog holding one PredictRequest."""
    import tensorflow as tf

    spec = _field(1, model_name.encode()) + _field(3, signature.encode())
    body = _field(1, spec)
    for name in sorted(inputs):
        tensor = tf.make_tensor_proto(inputs[name]).SerializeToString()
        body += _field(2, _field(1, name.encode()) + _field(2, tensor))
    return _field(6, _field(1, body))


# PredictionLog's kinds of request that TF Serving replays (prediction_log.proto): classify_log = 2,
# regress_log = 3, multi_inference_log = 4, predict_log = 6, predict_streamed_log = 7 (session_run_log = 5
# it refuses, as here). Classify and regress requests carry tf.Example protos instead of named tensors.
_EXAMPLE_LOGS = {2: "classify", 3: "regress"}
_MULTI_INFERENCE_LOG, _PREDICT_LOG, _PREDICT_STREAMED_LOG = 4, 6, 7
# The input of a classify or regress request: its serialized tf.Example protos, fed to the signature's one
# input (TF Serving's RunClassify and RunRegress), whose name only the signature knows.
EXAMPLES = "<serialized tf.Example protos>"


class WarmupError(ValueError):
    """A warm-up file that cannot be read (the message names the file and the record)."""


def _model_spec_signature(spec: bytes) -> str:
    return next((p.decode("utf-8", "replace") for n, p in _fields(spec) if n == 3), "")


def _predict_request(request: bytes) -> Request:
    """(signature, inputs) of a serialized PredictRequest."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    signature, inputs = "", {}
    for number, payload in _fields(request):
        if number == 1:
            signature = _model_spec_signature(payload)
        elif number == 2:
            entry = dict(_fields(payload))
            inputs[entry.get(1, b"").decode()] = tf.make_ndarray(tensor_pb2.TensorProto.FromString(entry.get(2, b"")))
    return signature or "serving_default", inputs


def _examples(input_message: bytes) -> np.ndarray:
    """The serialized tf.Example protos of an ``Input`` message (input.proto: example_list = 1 holding
    examples = 1; example_list_with_context = 2 holding examples = 1 and context = 2). With a context, each
    example is the context's bytes followed by its own, as TF Serving feeds them: parsed, the example's
    features add to the context's and win over them."""
    out: List[bytes] = []
    for number, payload in _fields(input_message):
        if number == 1:
            out += [p for n, p in _fields(payload) if n == 1]
        elif number == 2:
            fields = list(_fields(payload))
            context = next((p for n, p in fields if n == 2), b"")
            out += [context + p for n, p in fields if n == 1]
    return np.array(out, dtype=object)


def _example_request(request: bytes) -> Request:
    """(signature, {EXAMPLES: protos}) of a serialized ClassificationRequest or RegressionRequest
    (model_spec = 1, input = 2)."""
    signature, examples = "", np.array([], dtype=object)
    for number, payload in _fields(request):
        if number == 1:
            signature = _model_spec_signature(payload)
        elif number == 2:
            examples = _examples(payload)
    return signature or "serving_default", {EXAMPLES: examples}


def decode_requests(record: bytes) -> List[Request]:
    """The requests of a serialized PredictionLog: one, or one per task of a multi-inference request.

    Raises:
        ValueError: the record is not a PredictionLog of a kind TF Serving replays.
    """
    for number, payload in _fields(record):
        request = next((p for n, p in _fields(payload) if n == 1), b"")
        if number == _PREDICT_LOG:
            return [_predict_request(request)]
        if number == _PREDICT_STREAMED_LOG:  # one PredictRequest, as TF Serving requires
            requests = [p for n, p in _fields(payload) if n == 1]
            if len(requests) != 1:
                raise ValueError(f"a predict_streamed_log must hold one request; this one holds {len(requests)}")
            return [_predict_request(requests[0])]
        if number in _EXAMPLE_LOGS:
            return [_example_request(request)]
        if number == _MULTI_INFERENCE_LOG:  # MultiInferenceRequest: tasks = 1 (model_spec = 1), input = 2
            fields = list(_fields(request))
            examples = next((_examples(p) for n, p in fields if n == 2), np.array([], dtype=object))
            tasks = [next((p for n, p in _fields(t) if n == 1), b"") for n, t in fields if n == 1]
            return [(_model_spec_signature(spec) or "serving_default", {EXAMPLES: examples}) for spec in tasks]
    raise ValueError("the record holds no request TF Serving replays (a predict, classify, regress or "
                     "multi-inference log)")


def write_warmup(model_dir: str, model_name: str, requests: List[Request]) -> str:
    """Write ``requests`` as ``<model_dir>/assets.extra/tf_serving_warmup_requests``; returns the path."""
    import tensorflow as tf

    extra = os.path.join(model_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    path = os.path.join(extra, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as w:
        for signature, inputs in requests[:MAX_RECORDS]:
            w.write(encode_request(model_name, signature, inputs))
    return path


def read_warmup(model_dir: str) -> Optional[List[Request]]:
    """The warm-up requests of a version, or None when it has no warm-up file.

    Raises:
        WarmupError: the file is not a TFRecord file, a record is not a request TF Serving replays, or it
            holds more than ``MAX_RECORDS`` records (TF Serving refuses those files too).
    """
    import tensorflow as tf

    path = os.path.join(model_dir, "assets.extra", WARMUP_FILE)
    if not os.path.isfile(path):
        return None
    out: List[Request] = []
    records = iter(tf.data.TFRecordDataset(path))
    for i in range(MAX_RECORDS + 1):
        try:
            record = next(records)
        except StopIteration:
            return out
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.InvalidArgumentError):
            raise WarmupError(f"{path}: record {i + 1} is cut short or corrupt, or the file is not a TFRecord "
                              "file") from None
        if i == MAX_RECORDS:
            raise WarmupError(f"{path} holds more than {MAX_RECORDS:,} records, the most TF Serving replays "
                              "(it refuses the version too)")
        try:
            out += decode_requests(record.numpy())
        except Exception as e:  # noqa: BLE001 - a damaged tensor raises protobuf's DecodeError, not a ValueError
            raise WarmupError(f"{path}, record {i + 1}: {e}") from None
    return out


def default_requests(app: str, settings: Optional[dict] = None,
                     signatures: Optional[Iterable[str]] = None) -> List[Request]:
    """Typical requests for every signature an app's export serves, with the defaults of its command.

    Each signature's first call pays for building (and, for the poem model, XLA-compiling) its program:
    0.25-1.9 s measured for the shipped models' signatures (docs/serve.md). So every signature gets a
    request, and the poem model's two generating signatures one per batch size its XLA decoder pads to
    (1, 2, 4 and 8 rows). A poem start is one the model knows (its graph refuses unknown characters, and a
    request from the warm-up file that fails makes the version fail to load); the other apps' graphs answer
    any text.

    Args:
        app: the app's name (``rnn_apps.limits.APPS``); another name gets no requests.
        settings: the version's ``assets.extra/<app>.json``: its ``config`` and ``decoding`` (the
            forecast's window, the default beam widths) and the poem model's ``vocab``.
        signatures: keep only requests to these signatures (a version exported before a signature existed
            has not got it).
    """
    settings = settings or {}
    config = settings.get("config") if isinstance(settings.get("config"), dict) else {}
    decoding = settings.get("decoding") if isinstance(settings.get("decoding"), dict) else {}
    beam = decoding.get("default_beam", 1)
    # the defaults as the app's limits allow them (odd settings must not make the warm-up itself fail)
    beam = min(beam, 16) if isinstance(beam, int) and not isinstance(beam, bool) and beam >= 1 else 1

    def strings(*values):
        return np.array([v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=object)

    requests: List[Request] = []
    if app == "poetry":
        from rnn_apps.apps.poetry.constants import AUTO_FORM, DEFAULT_SAMPLING

        # a prompt the model knows (a model trained on other poems may lack 春; "" is any model's)
        start = "春" if "春" in _tokens(settings.get("vocab")) else ""
        for n in (1, 2, 4, 8):
            requests.append(("serving_default", {"prompt": strings(*[start] * n)}))
        for n in (1, 2, 4, 8):
            requests.append(("generate", {
                "prompt": strings(*[start] * n), "form": strings(*[AUTO_FORM] * n), "acrostic": strings(*[""] * n),
                "rhyme": strings(*[""] * n), "metre": strings(*[""] * n),
                "temperature": np.full([n], DEFAULT_SAMPLING["temperature"], np.float32),
                "top_k": np.full([n], DEFAULT_SAMPLING["top_k"], np.int32),
                "top_p": np.full([n], DEFAULT_SAMPLING["top_p"], np.float32),
                "seed": np.arange(1, n + 1, dtype=np.int64),
                "max_length": np.full([n], DEFAULT_SAMPLING["max_length"], np.int32)}))
        poem = strings("床前明月光，疑是地上霜。")
        requests += [("score", {"text": poem}), ("unknown_characters", {"text": poem})]
    elif app == "sentiment":
        review = "A moving, beautifully acted film."
        requests += [(name, {"text": strings(review)}) for name in ("serving_default", "words", "branches")]
        requests.append(("classify", {"inputs": strings(_text_example(review))}))
    elif app == "translate":
        source = str(config.get("direction", "en-zh")).split("-")[0]
        text = strings("你好。" if source == "zh" else "How are you?")
        beam_size = np.array(beam, np.int32)
        requests += [("serving_default", {"text": text}),
                     ("translate", {"text": text, "beam_size": beam_size, "max_length": np.array(0, np.int32)}),
                     ("attention", {"text": text, "beam_size": beam_size}),
                     ("tokenize", {"text": text})]
    elif app == "fill":
        text = strings("床前明月□，疑是地上霜。")
        requests += [("serving_default", {"text": text}), ("fill", {"text": text, "top_k": np.array(5, np.int32)})]
    elif app == "caption":
        png = _small_png()
        beam_size = np.array([beam], np.int32)
        requests += [("serving_default", {"image": strings(png)}),
                     ("caption", {"image": strings(png), "beam_size": beam_size}),
                     ("attention", {"image": strings(png), "beam_size": beam_size}),
                     ("caption_pixels", {"pixels": _png_pixels(png)[None], "beam_size": beam_size})]
    elif app == "forecast":
        window = config.get("window", 48)
        window = window if isinstance(window, int) and not isinstance(window, bool) and 1 <= window <= 100_000 else 48
        requests.append(("serving_default", {"history": np.zeros([1, window], np.float32)}))
    if signatures is not None:
        keep = set(signatures)
        requests = [r for r in requests if r[0] in keep]
    return requests


def _tokens(vocab) -> List[str]:
    """The tokens of a vocabulary as an export stores it (``{"tokens": [...]}``, or a bare list), or []."""
    tokens = vocab.get("tokens") if isinstance(vocab, dict) else vocab
    return [t for t in tokens if isinstance(t, str)] if isinstance(tokens, list) else []


def _text_example(text: str) -> bytes:
    """A serialized ``tf.Example`` with a bytes feature ``text``: the input of the sentiment ``classify``
    signature (TF Serving's classify method)."""
    import tensorflow as tf

    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature={"text": feature})).SerializeToString()


def _png_pixels(png: bytes) -> np.ndarray:
    """The RGB pixels (uint8 [H, W, 3]) of a PNG."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"), np.uint8)
