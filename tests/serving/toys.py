"""Toy SavedModels of every app and HTTP helpers for the serving tests (their fixtures: conftest.py)."""

import json
import os
import urllib.error
import urllib.request

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("flask")
pytest.importorskip("waitress")


MAX_BODY = 8192
POEM_TAIL = "，春风又绿江南岸"


# --------------------------------------------------------------------------- toy models


def save_poetry(path, tail=POEM_TAIL):
    """``prompt`` -> ``text``; asserts on an 'X'; a second signature with scalar inputs."""

    class Poetry(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt")])
        def serve(self, prompt):
            bad = tf.reduce_any(tf.strings.regex_full_match(prompt, ".*X.*"))
            tf.debugging.Assert(tf.logical_not(bad), ["unknown characters: X"])
            return {"text": tf.strings.join([prompt, tail])}

        @tf.function(input_signature=[
            tf.TensorSpec([None], tf.string, name="prompt"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ])
        def sample(self, prompt, temperature, seed):
            n = tf.shape(prompt)[0]
            text = tf.strings.join([prompt, tf.strings.as_string(seed)], separator="#")
            return {"text": text, "temperature": tf.fill([n], temperature)}

    m = Poetry()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "sample": m.sample})


def save_sentiment(path):
    class Sentiment(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            good = tf.strings.regex_full_match(tf.strings.lower(text), ".*good.*")
            return {"probability": tf.where(good, 0.9, 0.1),
                    "label": tf.where(good, "positive", "negative")}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def words(self, text):  # as the real model's: the words of each text
            toks = tf.strings.split(text)
            is_word = tf.ragged.map_flat_values(lambda t: tf.strings.regex_full_match(t, r".*[\pL\pN].*"), toks)
            n = tf.reduce_sum(tf.cast(is_word, tf.int32), axis=1)
            # the toy knows every ASCII word; others (电影) are unknown, as <unk> in the real model
            known = tf.ragged.map_flat_values(lambda t: tf.strings.regex_full_match(t, r"[ -~]*[A-Za-z0-9][ -~]*"),
                                              toks)
            return {"words": n, "known_words": tf.reduce_sum(tf.cast(known, tf.int32), axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):  # as the real model's: tf.Example protos with a "text" feature
            text = tf.io.parse_example(inputs, {"text": tf.io.FixedLenFeature([], tf.string)})["text"]
            p = self.serve(text)["probability"]
            return {"classes": tf.broadcast_to(tf.constant([["negative", "positive"]]), [tf.shape(p)[0], 2]),
                    "scores": tf.stack([1.0 - p, p], axis=1)}

    m = Sentiment()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "words": m.words, "classify": m.classify})
    set_method_name(path, "classify", "tensorflow/serving/classify")  # as the real model's export does


def set_method_name(path, signature, method_name):
    """Give a saved signature another method name (``tf.saved_model.save`` writes predict for all)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(str(path), "saved_model.pb")
    sm = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        sm.ParseFromString(f.read())
    sm.meta_graphs[0].signature_def[signature].method_name = method_name
    with open(pb, "wb") as f:
        f.write(sm.SerializeToString())


def save_caption(path):
    """Decodes real image bytes, so the input must arrive base64-decoded."""

    class Caption(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
        def serve(self, image):
            def one(b):
                img = tf.io.decode_image(b, channels=3, expand_animations=False)
                s = tf.shape(img)
                return tf.strings.format("a {}x{} picture", (s[1], s[0]))

            return {"caption": tf.map_fn(one, image, fn_output_signature=tf.string)}

    m = Caption()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})


def save_echo(path):
    """Binary in/out (two outputs), plus a numeric signature for dtype casting."""

    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
        def serve(self, data):
            return {"data": tf.identity(data), "data_bytes": tf.identity(data)}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x"),
                                      tf.TensorSpec([], tf.int32, name="k")])
        def scale(self, x, k):
            return {"y": x * tf.cast(k, tf.float32)}

    m = Echo()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "scale": m.scale})


def save_fill(path):
    """``text`` -> ``text`` with every blank mark replaced by 月."""

    class Fill(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"text": tf.strings.regex_replace(text, "□", "月")}

    m = Fill()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})


def save_translate(path):
    """Knows two words; ``tokenize`` as the real model's (tokens, unknown tokens and their counts)."""

    class Translate(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"translation": tf.strings.upper(text)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def tokenize(self, text):
            toks = tf.strings.split(text)
            known = tf.ragged.map_flat_values(lambda t: tf.logical_or(tf.equal(t, "hello"), tf.equal(t, "world")),
                                              toks)
            unk = tf.ragged.boolean_mask(toks, tf.logical_not(known))
            return {"tokens": toks.to_tensor(""), "length": toks.row_lengths(),
                    "unknown_tokens": unk.to_tensor(""), "unknown_count": unk.row_lengths()}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([], tf.int32, name="max_length"),
                                      tf.TensorSpec([], tf.int32, name="beam_size")])
        def translate(self, text, max_length, beam_size):  # as the real model's signature
            return {"translation": tf.strings.upper(text), "length": tf.strings.length(text)}

    m = Translate()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "tokenize": m.tokenize,
                                             "translate": m.translate})


def save_forecast(path):
    class Forecast(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="history")])
        def serve(self, history):
            return {"forecast": tf.reduce_mean(history, axis=1, keepdims=True)}

    m = Forecast()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})


def save_batch_echo(path):
    """``x`` -> ``x`` and the size of the batch the model was called with (shows server-side batching)."""

    class BatchEcho(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="x")])
        def serve(self, x):
            bad = tf.reduce_any(tf.strings.regex_full_match(x, ".*X.*"))
            tf.debugging.Assert(tf.logical_not(bad), ["unknown characters: X"])
            n = tf.shape(x)[0]
            return {"x": tf.identity(x), "batch": tf.fill([n], n)}

    m = BatchEcho()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})


def save_counter(path):
    """Counts its calls: the first request after warm-up sees how many warm-up requests ran."""

    class Counter(tf.Module):
        def __init__(self):
            super().__init__()
            self.n = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="x")])
        def serve(self, x):
            self.n.assign_add(1)
            return {"calls": tf.fill([tf.shape(x)[0]], self.n.read_value())}

    m = Counter()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})


# the settings the library wrappers read (the translation direction, the sentiment model's words)
TOY_CONFIG = {"translate": {"direction": "en-zh"}, "sentiment": {"max_len": 400}}


def mark_app(version_dir, app):
    """Declare a toy model's app, as each app's export does (``assets.extra/<app>.json``)."""
    extra = os.path.join(str(version_dir), "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, f"{app}.json"), "w") as f:
        json.dump({"format": f"rnn_apps.{app}/1", "config": TOY_CONFIG.get(app, {})}, f)


PNG_4x3 = None


def png_4x3():
    global PNG_4x3
    if PNG_4x3 is None:
        PNG_4x3 = tf.io.encode_png(tf.zeros([3, 4, 3], tf.uint8)).numpy()
    return PNG_4x3


def call(server, method, path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode("utf-8"))
    req = urllib.request.Request(server.base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode("utf-8"))


def predict(server, model, body, version=None):
    v = f"/versions/{version}" if version else ""
    return call(server, "POST", f"/v1/models/{model}{v}:predict", body)


def raw_call(server, method, path, data=b"", headers=None):
    """A request with exactly these headers (urllib adds none of its own beyond Host and length)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=data, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, dict(r.getheaders()), (json.loads(body) if body.strip() else None)
    finally:
        conn.close()


def png_header(width, height):
    """A PNG signature and IHDR chunk of the given size: all a header reader sees of a huge image."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def save_beam_echo(path):
    """A captioner's ``caption`` inputs (image bytes, a beam per image) that, like the real graph, applies the
    call's largest beam to every image, and says so: ``beam`` [B] and the size of the call ``batch`` [B]."""

    class BeamEcho(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image"),
                                      tf.TensorSpec([None], tf.int32, name="beam_size")])
        def caption(self, image, beam_size):
            n = tf.shape(image)[0]
            k = tf.reduce_max(tf.concat([beam_size, [1]], 0))
            return {"caption": tf.identity(image), "beam": tf.fill([n], k), "batch": tf.fill([n], n)}

    m = BeamEcho()
    tf.saved_model.save(m, path, signatures={"caption": m.caption})
    mark_app(path, "caption")


def save_padded_tokens(path):
    """``text`` -> its words ``tokens`` [B, T], padded with "" to the longest text of the call (as a model's
    ``tokenize``), and the size of the call ``batch`` [B]."""

    class Tokens(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            n = tf.shape(text)[0]
            return {"tokens": tf.strings.split(text).to_tensor(""), "batch": tf.fill([n], n)}

    m = Tokens()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})
