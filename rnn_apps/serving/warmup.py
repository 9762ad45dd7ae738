"""Model warm-up in TensorFlow Serving's format: ``assets.extra/tf_serving_warmup_requests``.

The file is a TFRecord file of ``tensorflow.serving.PredictionLog`` protos, each holding a
``PredictLog`` whose ``PredictRequest`` names a signature and carries its input tensors
(https://www.tensorflow.org/tfx/serving/saved_model_warmup). TF Serving and ``rnn-apps serve`` replay
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
from typing import Dict, Iterator, List, Optional, Tuple

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


def decode_request(record: bytes) -> Request:
    """(signature name, inputs) of a serialized PredictionLog (ValueError if it holds no PredictRequest)."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    request = None
    for number, payload in _fields(record):
        if number == 6:
            request = next((p for n, p in _fields(payload) if n == 1), None)
    if request is None:
        raise ValueError("the warm-up record holds no PredictLog request (only predict requests are replayed)")
    signature, inputs = "", {}
    for number, payload in _fields(request):
        if number == 1:
            signature = next((p.decode() for n, p in _fields(payload) if n == 3), "")
        elif number == 2:
            entry = dict(_fields(payload))
            inputs[entry.get(1, b"").decode()] = tf.make_ndarray(tensor_pb2.TensorProto.FromString(entry.get(2, b"")))
    return signature or "serving_default", inputs


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
    """The warm-up requests of a version, or None when it has no warm-up file."""
    import tensorflow as tf

    path = os.path.join(model_dir, "assets.extra", WARMUP_FILE)
    if not os.path.isfile(path):
        return None
    out = []
    for i, record in enumerate(tf.data.TFRecordDataset(path)):
        if i >= MAX_RECORDS:
            break
        out.append(decode_request(record.numpy()))
    return out


def default_requests(app: str, config: Optional[dict] = None) -> List[Request]:
    """Typical requests for an app's serving_default signature (several batch sizes where the model
    compiles one program per padded batch size: the poem model's XLA decoder pads to 1, 2, 4 or 8)."""
    config = config or {}

    def strings(*values):
        return np.array([v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=object)

    if app == "poetry":
        return [("serving_default", {"prompt": strings(*["春"] * n)}) for n in (1, 2, 4, 8)]
    if app == "sentiment":
        return [("serving_default", {"text": strings("A moving, beautifully acted film.")})]
    if app == "translate":
        source = str(config.get("direction", "en-zh")).split("-")[0]
        return [("serving_default", {"text": strings("你好。" if source == "zh" else "How are you?")})]
    if app == "fill":
        return [("serving_default", {"text": strings("床前明月□，疑是地上霜。")})]
    if app == "caption":
        return [("serving_default", {"image": strings(_small_png())})]
    if app == "forecast":
        window = int(config.get("window", 48))
        return [("serving_default", {"history": np.zeros([1, window], np.float32)})]
    return []
