"""`rnn-apps serve`: TF Serving's REST API over toy SavedModels built here (not the shipped models)."""

import base64
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("flask")
pytest.importorskip("waitress")

from rnn_apps.serve import make_server  # noqa: E402

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
            is_word = tf.ragged.map_flat_values(lambda t: tf.strings.regex_full_match(t, r".*\w.*"), toks)
            n = tf.reduce_sum(tf.cast(is_word, tf.int32), axis=1)
            return {"words": n, "known_words": n}

    m = Sentiment()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "words": m.words})


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


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    models = root / "models"
    save_poetry(str(models / "poetry" / "1"))
    save_sentiment(str(models / "sentiment" / "1"))
    save_caption(str(models / "caption" / "1"))
    save_echo(str(models / "echo" / "1"))
    save_fill(str(models / "fill" / "1"))
    save_forecast(str(models / "forecast" / "1"))
    save_translate(str(models / "translate" / "1"))
    for app in ("poetry", "sentiment", "caption", "fill", "forecast", "translate"):
        mark_app(models / app / "1", app)
    (models / "broken" / "1").mkdir(parents=True)
    (models / "broken" / "1" / "saved_model.pb").write_bytes(b"this is not a protobuf")
    shutil.copytree(models / "poetry" / "1", models / "rolling" / "1")
    save_poetry(str(root / "staging" / "rolling-2"), tail="，v2")
    (models / "notes.txt").write_text("not a model")
    return root


@pytest.fixture(scope="module")
def server(models):
    srv = make_server(str(models / "models"), host="127.0.0.1", port=0,
                      max_body_bytes=MAX_BODY, poll_seconds=0.2)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.port}"
    yield srv
    srv.shutdown()
    t.join(10)
    assert not t.is_alive()


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


# --------------------------------------------------------------------------- status, metadata


def test_listing_ignores_non_models(server):
    status, data = call(server, "GET", "/v1/models")
    assert status == 200
    names = [m["name"] for m in data["models"]]
    assert names == ["broken", "caption", "echo", "fill", "forecast", "poetry", "rolling", "sentiment", "translate"]
    assert data["models"][5]["versions"] == ["1"]


def test_status(server):
    expected = {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert call(server, "GET", "/v1/models/poetry") == (200, expected)
    assert call(server, "GET", "/v1/models/poetry/versions/1") == (200, expected)


def test_metadata(server):
    status, md = call(server, "GET", "/v1/models/poetry/metadata")
    assert status == 200
    assert md["model_spec"] == {"name": "poetry", "signature_name": "", "version": "1"}
    sigs = md["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) == {"serving_default", "sample"}
    sd = sigs["serving_default"]
    assert sd["method_name"] == "tensorflow/serving/predict"
    prompt = sd["inputs"]["prompt"]
    assert prompt["dtype"] == "DT_STRING"
    assert prompt["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    assert prompt["name"].endswith(":0")
    assert sd["outputs"]["text"]["dtype"] == "DT_STRING"
    temp = sigs["sample"]["inputs"]["temperature"]
    assert temp["dtype"] == "DT_FLOAT" and temp["tensor_shape"] == {"dim": [], "unknown_rank": False}
    assert sigs["sample"]["inputs"]["seed"]["dtype"] == "DT_INT64"
    assert call(server, "GET", "/v1/models/poetry/versions/1/metadata")[1] == md
    assert md["metadata"]["page_form"] == {
        "format": "rnn_apps.page_form/1", "signature": "serving_default", "action": "Write a poem",
        "fields": [{"input": "prompt", "widget": "textarea", "label": "prompt",
                    "placeholder": "a character or a line to start from, e.g. 春"}]}


def test_page_form_in_metadata_for_every_app_and_none(server):
    """What the page shows comes from the metadata: the app's form, or widgets from dtype and shape."""
    def form(name):
        status, md = call(server, "GET", f"/v1/models/{name}/metadata")
        assert status == 200
        f = md["metadata"]["page_form"]
        return f["action"], [(x["input"], x["widget"]) for x in f["fields"]]

    assert form("caption") == ("Caption", [("image", "image")])
    assert form("fill") == ("Fill the blanks", [("text", "textarea")])
    assert form("forecast") == ("Forecast", [("history", "numbers")])
    assert form("sentiment") == ("Classify", [("text", "textarea")])
    assert form("translate") == ("Translate", [("text", "textarea")])
    assert form("echo") == ("Run", [("data", "line")])  # no app: from the signature alone


def test_page_form_stated_derived_and_checked(tmp_path):
    from rnn_apps.serving import form as F
    from rnn_apps.serving.checks import app_settings

    sigs = {"serving_default": {"inputs": {
                "text": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}], "unknown_rank": False}},
                "k": {"dtype": "DT_INT32", "tensor_shape": {"dim": [], "unknown_rank": False}}}},
            "other": {"inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {
                "dim": [{"size": "-1"}, {"size": "-1"}], "unknown_rank": False}}}}}
    d = str(tmp_path)
    # no app, no stated form: widgets from dtype and shape
    assert F.page_form(d, None, sigs)["fields"] == [F.field("text", "line"), F.field("k", "number")]
    # the app's settings shape the hint; an input the signature lacks is dropped, a missing one added
    os.makedirs(os.path.join(d, "assets.extra"))
    with open(os.path.join(d, "assets.extra", "translate.json"), "w") as f:
        json.dump({"config": {"direction": "zh-en"}}, f)
    derived = F.page_form(d, "translate", sigs, app_settings(d, "translate"))
    assert derived["action"] == "Translate"
    assert derived["fields"][0]["placeholder"] == "Chinese text to translate into English"
    assert [x["input"] for x in derived["fields"]] == ["text", "k"]
    # a stated form wins, for another signature
    stated = F.make_form("Go", [F.field("x", "numbers", label="values")], signature="other")
    F.write_form(d, stated)
    assert F.page_form(d, "translate", sigs) == stated
    # a form naming a signature the model lacks falls back to serving_default
    F.write_form(d, F.make_form("Go", [F.field("x", "numbers")], signature="gone"))
    assert F.page_form(d, None, sigs)["signature"] == "serving_default"
    # a broken stated form is ignored (the app's is used)
    with open(os.path.join(d, "assets.extra", F.FORM_FILE), "w") as f:
        f.write('{"format": "rnn_apps.page_form/1", "signature": "x", "action": "Go", "fields": [{"widget": 3}]}')
    assert F.page_form(d, "translate", sigs)["action"] == "Translate"
    for bad in ({"format": "other"}, {**stated, "fields": [{"input": "x", "widget": "slider"}]}, []):
        with pytest.raises(F.FormError):
            F.check_form(bad)
    assert F.app_form("no-such-app") is None


# --------------------------------------------------------------------------- predict


def test_predict_poetry(server):
    assert predict(server, "poetry", {"instances": ["春", "月"]}) == (
        200, {"predictions": ["春" + POEM_TAIL, "月" + POEM_TAIL]})
    assert predict(server, "poetry", {"instances": [{"prompt": "春"}]}, version=1) == (
        200, {"predictions": ["春" + POEM_TAIL]})
    assert predict(server, "poetry", {"inputs": {"prompt": ["春"]}}) == (200, {"outputs": ["春" + POEM_TAIL]})
    assert predict(server, "poetry", {"inputs": ["春"]}) == (200, {"outputs": ["春" + POEM_TAIL]})


def test_predict_scalar_inputs_second_signature(server):
    body = {"signature_name": "sample", "inputs": {"prompt": ["春", "夏"], "temperature": 0.5, "seed": 7}}
    assert predict(server, "poetry", body) == (
        200, {"outputs": {"text": ["春#7", "夏#7"], "temperature": [0.5, 0.5]}})
    rows = {"signature_name": "sample", "instances": [
        {"prompt": "春", "temperature": 0.8, "seed": 3}, {"prompt": "夏", "temperature": 0.8, "seed": 3}]}
    assert predict(server, "poetry", rows) == (200, {"predictions": [
        {"text": "春#3", "temperature": 0.8}, {"text": "夏#3", "temperature": 0.8}]})
    rows["instances"][1]["temperature"] = 0.9
    status, err = predict(server, "poetry", rows)
    assert status == 400 and "temperature" in err["error"]


def test_predict_sentiment(server):
    assert predict(server, "sentiment", {"instances": ["A good film", "dull"]}) == (200, {"predictions": [
        {"probability": 0.9, "label": "positive"}, {"probability": 0.1, "label": "negative"}]})
    assert predict(server, "sentiment", {"inputs": {"text": ["good"]}}) == (
        200, {"outputs": {"probability": [0.9], "label": ["positive"]}})


def test_predict_caption_b64(server):
    img = {"b64": base64.b64encode(png_4x3()).decode()}
    assert predict(server, "caption", {"instances": [img]}) == (200, {"predictions": ["a 4x3 picture"]})
    assert predict(server, "caption", {"inputs": {"image": [img, img]}}) == (
        200, {"outputs": ["a 4x3 picture", "a 4x3 picture"]})
    # the same base64 text sent as a plain string is not an image: the model's error, as a 400
    status, err = predict(server, "caption", {"instances": [img["b64"]]})
    assert status == 400 and err["error"]


def test_predict_binary_outputs(server):
    raw = b"\xff\x00\xfe"
    b64 = base64.b64encode(raw).decode()
    assert predict(server, "echo", {"instances": [{"b64": b64}, "héllo"]}) == (200, {"predictions": [
        {"data": {"b64": b64}, "data_bytes": {"b64": b64}},
        {"data": "héllo", "data_bytes": {"b64": base64.b64encode("héllo".encode()).decode()}}]})


def test_predict_numeric_casting(server):
    body = {"signature_name": "scale", "inputs": {"x": [[1, 2], [0.5, -1]], "k": 3}}
    assert predict(server, "echo", body) == (200, {"outputs": [[3.0, 6.0], [1.5, -3.0]]})
    for bad in ({"x": [["a", "b"]], "k": 3},        # string for a float input
                {"x": [[1, 2]], "k": 1.5},          # non-integer for an int input
                {"x": [[1, 2]], "k": "3"},          # string for an int input
                {"x": [[1, 2, 3]], "k": 1},         # wrong shape
                {"x": [[1, 2], [3]], "k": 1}):      # ragged
        status, err = predict(server, "echo", {"signature_name": "scale", "inputs": bad})
        assert status == 400, (bad, err)
        assert err["error"]
    status, err = predict(server, "poetry", {"instances": [1.5]})
    assert status == 400 and "prompt" in err["error"]


def test_model_error_is_400_with_message(server):
    status, err = predict(server, "poetry", {"instances": ["春X"]})
    assert status == 400
    assert "unknown characters: X" in err["error"]
    assert "Detected at node" not in err["error"] and "Graph execution error" not in err["error"]


# --------------------------------------------------------------------------- errors


def test_errors(server):
    status, err = call(server, "POST", "/v1/models/poetry:predict", raw=b"{not json")
    assert status == 400 and "JSON" in err["error"]
    status, err = predict(server, "poetry", {"instances": [{"poem": "春"}]})
    assert status == 400 and "poem" in err["error"] and "prompt" in err["error"]
    status, err = predict(server, "poetry", {"inputs": {"prompt": ["春"], "extra": [1]}})
    assert status == 400 and "extra" in err["error"]
    status, err = predict(server, "poetry", {"signature_name": "sample", "inputs": {"prompt": ["春"]}})
    assert status == 400 and "missing" in err["error"]
    assert predict(server, "poetry", {"instances": ["a"], "inputs": ["a"]})[0] == 400
    assert predict(server, "poetry", {"something": 1})[0] == 400
    assert predict(server, "poetry", {"instances": []})[0] == 400
    assert predict(server, "nosuchmodel", {"instances": ["a"]})[0] == 404
    assert call(server, "GET", "/v1/models/nosuchmodel")[0] == 404
    assert call(server, "GET", "/v1/models/nosuchmodel/metadata")[0] == 404
    assert predict(server, "poetry", {"instances": ["a"]}, version=7)[0] == 404
    assert call(server, "GET", "/v1/models/poetry/versions/7")[0] == 404
    status, err = predict(server, "poetry", {"signature_name": "nope", "instances": ["a"]})
    assert status == 404 and "nope" in err["error"]
    status, err = call(server, "GET", "/v1/models/poetry:predict")
    assert status == 405 and "error" in err
    assert call(server, "POST", "/v1/models/poetry", {"instances": ["a"]})[0] == 405
    assert call(server, "GET", "/v1/nothing/here")[0] == 404


def test_body_over_limit_is_413(server):
    big = {"instances": ["春" * (MAX_BODY // 2)]}
    status, err = predict(server, "poetry", big)
    assert status == 413 and "error" in err
    # the server is fine afterwards
    assert predict(server, "poetry", {"instances": ["春"]})[0] == 200


def wait_for(cond, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_unloadable_version_reports_error(server, models):
    status, data = call(server, "GET", "/v1/models/broken")
    assert status == 200
    (st,) = data["model_version_status"]
    assert st["version"] == "1" and st["state"] == "END"
    assert st["status"]["error_code"] != "OK" and st["status"]["error_message"]
    status, err = predict(server, "broken", {"instances": ["a"]})
    assert status == 503 and "failed to load" in err["error"]
    assert predict(server, "poetry", {"instances": ["春"]})[0] == 200
    # a fixed export renamed into place over the broken one is retried
    bdir = models / "models" / "broken"
    shutil.copytree(models / "models" / "poetry" / "1", bdir / ".tmp-fixed")
    os.rename(bdir / "1", models / "broken-1-old")
    os.rename(bdir / ".tmp-fixed", bdir / "1")
    assert wait_for(lambda: predict(server, "broken", {"instances": ["春"]})[0] == 200)
    assert call(server, "GET", "/v1/models/broken")[1]["model_version_status"][0]["state"] == "AVAILABLE"


# --------------------------------------------------------------------------- new versions


def test_new_version_picked_up_and_partial_ignored(server, models):
    mdir = models / "models" / "rolling"
    staged = models / "staging" / "rolling-2"
    # an export in progress (partial content under a temporary name) and a numbered dir without
    # saved_model.pb are not versions
    (mdir / ".tmp-xyz").mkdir()
    shutil.copy(staged / "saved_model.pb", mdir / ".tmp-xyz" / "saved_model.pb")
    shutil.copytree(staged / "variables", mdir / "3" / "variables")
    time.sleep(0.6)  # a few polls
    status, data = call(server, "GET", "/v1/models/rolling")
    assert [s["version"] for s in data["model_version_status"]] == ["1"]
    assert predict(server, "rolling", {"instances": ["春"]})[1] == {"predictions": ["春" + POEM_TAIL]}
    assert predict(server, "rolling", {"instances": ["春"]}, version=3)[0] == 404

    # the atomic export: copy under a temporary name, then rename into place
    shutil.copytree(staged, mdir / ".tmp-2")
    os.rename(mdir / ".tmp-2", mdir / "2")
    assert wait_for(lambda: predict(server, "rolling", {"instances": ["春"]})[1] == {"predictions": ["春，v2"]}), \
        "version 2 was not picked up"
    status, data = call(server, "GET", "/v1/models/rolling")
    assert [(s["version"], s["state"]) for s in data["model_version_status"]] == [
        ("2", "AVAILABLE"), ("1", "AVAILABLE")]
    assert predict(server, "rolling", {"instances": ["春"]}, version=1)[1] == {"predictions": ["春" + POEM_TAIL]}
    assert call(server, "GET", "/v1/models/rolling/metadata")[1]["model_spec"]["version"] == "2"


def test_rescan_on_request_without_poller(models, tmp_path):
    mdir = tmp_path / "models"
    shutil.copytree(models / "models" / "poetry" / "1", mdir / "p" / "1")
    srv = make_server(str(mdir), port=0, poll_seconds=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.port}"
    try:
        assert predict(srv, "p", {"instances": ["春"]})[1] == {"predictions": ["春" + POEM_TAIL]}
        shutil.copytree(models / "staging" / "rolling-2", mdir / "p" / ".tmp-2")
        os.rename(mdir / "p" / ".tmp-2", mdir / "p" / "2")
        assert predict(srv, "p", {"instances": ["春"]})[1] == {"predictions": ["春，v2"]}
        shutil.copytree(models / "models" / "sentiment" / "1", mdir / "s" / "1")
        assert predict(srv, "s", {"instances": ["good"]})[0] == 200
    finally:
        srv.shutdown()
        t.join(10)


# --------------------------------------------------------------------------- load


def test_concurrent_requests(server):
    errors = []
    img = {"b64": base64.b64encode(png_4x3()).decode()}
    cases = [
        ("poetry", {"instances": ["春"]}, {"predictions": ["春" + POEM_TAIL]}),
        ("sentiment", {"instances": ["good"]}, {"predictions": [{"probability": 0.9, "label": "positive"}]}),
        ("caption", {"instances": [img]}, {"predictions": ["a 4x3 picture"]}),
    ]

    def worker(i):
        for j in range(50):
            name, body, expected = cases[(i + j) % len(cases)]
            try:
                got = predict(server, name, body)
                if got != (200, expected):
                    errors.append(got)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


# --------------------------------------------------------------------------- the page


def test_index_page_is_self_contained(server):
    with urllib.request.urlopen(server.base + "/", timeout=30) as r:
        assert r.status == 200 and r.headers.get_content_type() == "text/html"
        html = r.read().decode("utf-8")
    assert "fetch(" in html and "<script src" not in html and "http://" not in html and "https://" not in html


def _chrome_paths():
    for browser in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                    shutil.which("google-chrome")):
        if browser and os.path.exists(browser):
            break
    else:
        browser = None
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver")
                                              else None)
    return browser, driver


def test_browser_page(server):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        pytest.skip("selenium is not installed (see .ci/install-browser.sh)")
    browser, driver_path = _chrome_paths()
    if not browser or not driver_path:
        pytest.skip("chromium and/or chromedriver not installed (apt-get install chromium chromium-driver; "
                    "see .ci/install-browser.sh)")
    opts = Options()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    except Exception as e:  # noqa: BLE001 - a browser that cannot start here is an environment problem
        pytest.skip(f"could not start headless chromium: {str(e).splitlines()[0]}")
    try:
        driver.get(server.base + "/")
        wait = WebDriverWait(driver, 30)
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#model-poetry textarea[name=prompt]"))
        box.send_keys("春")
        driver.find_element(By.CSS_SELECTOR, "#model-poetry button.run").click()
        wait.until(lambda d: POEM_TAIL in d.find_element(By.CSS_SELECTOR, "#model-poetry .result").text)
        assert driver.find_element(By.CSS_SELECTOR, "#model-poetry .result").text == "春" + POEM_TAIL
        assert driver.find_element(By.CSS_SELECTOR, "#model-sentiment button.run").text == "Classify"
        assert driver.find_element(By.CSS_SELECTOR, "#model-caption input[type=file]")
        # a list of numbers from the forecast's page form (its signature takes [batch, T])
        history = driver.find_element(By.CSS_SELECTOR, "#model-forecast input[name=history]")
        history.send_keys("1, 2, 6")
        driver.find_element(By.CSS_SELECTOR, "#model-forecast button.run").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#model-forecast .result").text == "3")
        # the model's own error is shown, not swallowed
        box.clear()
        box.send_keys("X")
        driver.find_element(By.CSS_SELECTOR, "#model-poetry button.run").click()
        wait.until(lambda d: "unknown characters: X" in d.find_element(By.CSS_SELECTOR, "#model-poetry .result").text)
    finally:
        driver.quit()


# --------------------------------------------------------------------------- hostile and heavy requests


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


@pytest.mark.parametrize("model, body, words", [
    ("poetry", {"instances": ["春"] * 65}, "at most 64"),
    ("poetry", {"signature_name": "sample", "inputs": {"prompt": ["春"], "temperature": -1.0, "seed": 1}},
     "temperature must be in [0, 10]"),
    ("sentiment", {"instances": ["good", "  "]}, "text[1] is empty"),
    ("fill", {"instances": ["月" * 512 + "□"]}, "513 characters; at most 512"),
    ("fill", {"instances": ["床前明月光"]}, "no blank"),
    ("fill", {"instances": ["□" * 65]}, "65 blanks; at most 64"),
    ("caption", {"instances": [{"b64": base64.b64encode(png_header(12000, 12000)).decode()}]}, "144 megapixels"),
    ("caption", {"instances": [{"b64": base64.b64encode(png_4x3()).decode()},
                               {"b64": base64.b64encode(png_header(12000, 12000)).decode()}]},
     "image[1]: the image is 12,000×12,000 pixels (144 megapixels)"),
    ("caption", {"instances": [{"b64": "!!!!"}]}, "invalid base64"),
    ("translate", {"instances": ["hello", "qzx vvv"]}, "text[1]: the model knows none of its words (qzx, vvv)"),
    ("translate", {"instances": ["... !"]}, "no words"),
    ("translate", {"instances": [""]}, "empty"),
])
def test_app_limits_are_400_before_the_model_runs(server, model, body, words):
    status, err = predict(server, model, body)
    assert status == 400 and words in err["error"], err


def _without_where(message, where):
    assert message.startswith(where), (message, where)
    return message[len(where):]


@pytest.mark.parametrize("app, texts, kwargs, body, where", [
    ("sentiment", ["good", "  "], {}, {"instances": ["good", "  "]}, ("Review 2", "text[1]")),
    ("sentiment", ["good", "!!! ..."], {}, {"instances": ["good", "!!! ..."]}, ("Review 2", "text[1]")),
    ("sentiment", ["good", "bad \udcff bytes"], {},  # a command-line argument that was not UTF-8; base64 bytes
     {"instances": ["good", {"b64": base64.b64encode(b"bad \xff bytes").decode()}]}, ("Review 2", "text[1]")),
    ("translate", ["hello", ""], {}, {"instances": ["hello", ""]}, ("Text 2", "text[1]")),
    ("translate", ["... !"], {}, {"instances": ["... !"]}, ("Text 1", "text[0]")),
    ("translate", ["hello", "qzx vvv"], {}, {"instances": ["hello", "qzx vvv"]}, ("Text 2", "text[1]")),
    ("translate", ["hello"], {"beam": 99},
     {"signature_name": "translate", "inputs": {"text": ["hello"], "beam_size": 99, "max_length": 0}},
     ("beam", "beam_size")),
    ("translate", ["hello"], {"max_length": 999},
     {"signature_name": "translate", "inputs": {"text": ["hello"], "beam_size": 1, "max_length": 999}},
     ("max_length", "max_length")),
])
def test_cli_and_rest_say_the_same(server, models, app, texts, kwargs, body, where):
    """The same bad input through the library the commands call and through REST: the same message, but
    for how the input is named (``Review 2`` / ``text[1]``)."""
    from rnn_apps.apps.sentiment.classify import SentimentClassifier, SentimentError
    from rnn_apps.apps.translate.translate import TranslateError, Translator

    model_dir = str(models / "models" / app / "1")
    wrapper, error = ((SentimentClassifier(model_dir).classify, SentimentError) if app == "sentiment"
                      else (Translator(model_dir).translate, TranslateError))
    with pytest.raises(error) as e:
        wrapper(texts, **kwargs)
    status, err = predict(server, app, body)
    assert status == 400
    assert _without_where(str(e.value), where[0]) == _without_where(err["error"], where[1])


@pytest.mark.parametrize("text", ["  ", "床前明月光", "月" + "□" * 65, "月" * 512 + "□", "□，□。"])
def test_fill_cli_and_rest_say_the_same(server, text):
    from rnn_apps.apps.fill.data import FillError, parse_text

    with pytest.raises(FillError) as e:
        parse_text(text, "Text 1")  # as rnn-apps fill-poem checks its first text
    status, err = predict(server, "fill", {"instances": [text]})
    assert status == 400
    assert _without_where(str(e.value), "Text 1") == _without_where(err["error"], "text")


def test_caption_cli_and_rest_say_the_same_of_a_huge_image(server):
    from rnn_apps.apps.caption.images import CaptionError, prepare_image

    png = png_header(12000, 12000) + b"\0" * 12 + b"IEND" + b"\0" * 4
    with pytest.raises(CaptionError) as e:
        prepare_image(png, "photo.png")
    status, err = predict(server, "caption", {"instances": [{"b64": base64.b64encode(png).decode()}]})
    assert status == 400
    assert _without_where(str(e.value), "photo.png") == _without_where(err["error"], "image")


@pytest.mark.parametrize("kwargs, body, where", [
    ({"temperature": -1.0}, {"signature_name": "sample", "inputs": {"prompt": ["春"], "temperature": -1.0, "seed": 1}},
     ("temperature", "temperature")),
    ({"temperature": float("nan")}, {"signature_name": "sample", "inputs": {  # JSON NaN, as Python writes it
        "prompt": ["春"], "temperature": float("nan"), "seed": 1}}, ("temperature", "temperature")),
    ({"start": "春" * 201}, {"instances": ["春" * 201]}, ("The start", "prompt")),
])
def test_poem_cli_and_rest_say_the_same(server, kwargs, body, where):
    from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator

    gen = PoemGenerator.__new__(PoemGenerator)  # these checks come before the model is used
    with pytest.raises(PoemError) as e:
        gen.generate(**kwargs)
    status, err = predict(server, "poetry", body)
    assert status == 400
    assert _without_where(str(e.value), where[0]) == _without_where(err["error"], where[1])


@pytest.mark.parametrize("option, value", [("--temperature", "-1"), ("--temperature", "nan")])
def test_command_options_and_rest_say_the_same(server, option, value):
    from click.testing import CliRunner

    from rnn_apps.cli import cli

    r = CliRunner().invoke(cli, ["generate-poem", option, value])
    status, err = predict(server, "poetry", json.loads(
        '{"signature_name": "sample", "inputs": {"prompt": ["春"], "seed": 1, "temperature": %s}}'
        % {"nan": "NaN"}.get(value, value)))
    assert r.exit_code == 2 and status == 400
    assert f"Error: Invalid value for '{option}': {err['error']}" in r.output


def save_poem_knowing(path, known="春花秋月"):
    """A poem model that knows four characters (``unknown_characters`` as the real model's) and writes the
    prompt back."""

    class Poem(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt")])
        def serve(self, prompt):
            return {"text": prompt}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def unknown_characters(self, text):
            return {"unknown": tf.strings.regex_replace(text, f"[{known}]", "")}

    m = Poem()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "unknown_characters": m.unknown_characters})
    mark_app(path, "poetry")


def test_poem_cli_and_rest_say_the_same_of_unknown_characters(start, tmp_path):
    from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator

    save_poem_knowing(str(tmp_path / "m" / "poem" / "1"))
    srv = start([], tmp_path)
    gen = PoemGenerator(str(tmp_path / "m" / "poem" / "1"), engine="tensorflow")
    with pytest.raises(PoemError) as e:
        gen.generate(start="春风")
    status, err = predict(srv, "poem", {"instances": ["春风"]})
    assert status == 400 and "does not know: 风" in err["error"]
    assert _without_where(str(e.value), "The start") == _without_where(err["error"], "prompt")
    assert predict(srv, "poem", {"instances": ["春花", "秋月"]}) == (200, {"predictions": ["春花", "秋月"]})
    status, err = predict(srv, "poem", {"instances": ["春花", "秋风"]})
    assert status == 400 and err["error"].startswith("prompt[1] '秋风' has characters this model does not know: 风.")


def test_long_texts_are_translated_in_sentences_over_rest_as_by_the_command(server, models):
    """A paragraph over REST is cut into the command's sentences and pieces, and put together the same way."""
    from rnn_apps.apps.translate.translate import Translator
    from rnn_apps.sentences import MAX_SENTENCE_TOKENS, sentence_pieces

    paragraph = " ".join(["hello world and more words here."] * 30 + ["hello"] * 100)  # 280 tokens, 31 sentences
    assert len(paragraph.split()) > 2 * MAX_SENTENCE_TOKENS and len(paragraph) > 500
    cli = Translator(str(models / "models" / "translate" / "1")).translate([paragraph, "hello world"])
    assert cli[0].sentences > 30 and cli[1].sentences == 1
    expected = [r.translation for r in cli]
    # the toy model upper-cases each piece; Chinese output is joined without spaces
    assert expected[0].startswith("HELLO WORLD AND MORE WORDS HERE.HELLO WORLD") and " " in expected[0]
    assert predict(server, "translate", {"instances": [paragraph, "hello world"]}) == (
        200, {"predictions": expected})
    status, out = predict(server, "translate", {"signature_name": "translate", "inputs": {
        "text": [paragraph], "beam_size": 1, "max_length": 0}})
    assert status == 200 and out["outputs"]["translation"] == expected[:1]
    # a count output is the sum over the pieces (the toy's length: characters of a piece)
    pieces = sentence_pieces(paragraph, "en", lambda xs: [len(x.split()) for x in xs])
    assert len(pieces) == cli[0].sentences and "".join(pieces).upper() == expected[0]
    assert out["outputs"]["length"] == [sum(len(p) for p in pieces)]


def test_non_finite_numbers_are_400(server):
    # JSON has no NaN, but Python's and JavaScript's encoders write it; the server must not pass it on
    nan_history = b'{"instances": [[1.0, NaN, 2.0]]}'
    status, _, err = raw_call(server, "POST", "/v1/models/forecast:predict", nan_history)
    assert status == 400 and "finite" in err["error"]
    nan_temp = b'{"signature_name": "sample", "inputs": {"prompt": ["a"], "temperature": NaN, "seed": 1}}'
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", nan_temp)
    assert status == 400 and "temperature" in err["error"]
    assert predict(server, "forecast", {"instances": [[1.0, 3.0]]}) == (200, {"predictions": [[2.0]]})
    assert predict(server, "translate", {"instances": ["hello world"]}) == (200, {"predictions": ["HELLO WORLD"]})
    # a model of no known app keeps TF Serving's behaviour
    assert predict(server, "echo", {"signature_name": "scale", "inputs": {"x": [[1, 2]], "k": 2}})[0] == 200


@pytest.mark.parametrize("raw, words", [
    (b'{"instances": ["\\ud800"]}', "surrogate"),
    (b'{"instances": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested"),
    (b"[" * 8000, "JSON"),
    (b'{"instances": [' + b"9" * 5000 + b"]}", "JSON"),
    (b'{"instances": ["a"], "signature_name": 7}', "signature_name"),
], ids=["lone-surrogate", "deep-instances", "deep-document", "5000-digit-integer", "bad-signature-name"])
def test_malformed_json_is_400_not_500(server, raw, words):
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", raw)
    assert status == 400 and words in err["error"], err


def test_non_ascii_version_is_404(server):
    assert call(server, "GET", "/v1/models/poetry/versions/%C2%B2")[0] == 404
    assert call(server, "GET", "/v1/models/poetry/versions/%D9%A1")[0] == 404  # Arabic-Indic one


def test_gzip_bodies(server):
    import gzip

    body = json.dumps({"instances": ["春"]}).encode()
    status, _, out = raw_call(server, "POST", "/v1/models/poetry:predict", gzip.compress(body),
                              {"Content-Encoding": "gzip"})
    assert (status, out) == (200, {"predictions": ["春" + POEM_TAIL]})
    bomb = gzip.compress(b'{"instances": ["' + b"a" * (50 * MAX_BODY) + b'"]}')
    assert len(bomb) < MAX_BODY  # passes the body limit compressed, not inflated
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", bomb, {"Content-Encoding": "gzip"})
    assert status == 413 and "inflates" in err["error"]
    assert raw_call(server, "POST", "/v1/models/poetry:predict", b"not gzip", {"Content-Encoding": "gzip"})[0] == 400
    assert raw_call(server, "POST", "/v1/models/poetry:predict", body, {"Content-Encoding": "br"})[0] == 415


def test_cross_site_requests_and_foreign_host_are_refused(server):
    body = json.dumps({"instances": ["春"]}).encode()
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", body,
                              {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert status == 403 and "evil.example" in err["error"]
    same = f"http://127.0.0.1:{server.port}"
    assert raw_call(server, "POST", "/v1/models/poetry:predict", body, {"Origin": same})[0] == 200
    status, _, err = raw_call(server, "GET", "/v1/models", headers={"Host": "evil.example"})
    assert status == 403 and "loopback" in err["error"]
    assert raw_call(server, "GET", "/v1/models", headers={"Host": f"localhost:{server.port}"})[0] == 200


@pytest.fixture()
def start(models):
    """Start a server with options over (a copy of) some toy models; stopped at the end of the test."""
    started = []

    def run(names, tmp, **options):
        for name in names:
            shutil.copytree(models / "models" / name, tmp / "m" / name)
        srv = make_server(str(tmp / "m"), port=0, poll_seconds=0, **options)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        srv.base = f"http://127.0.0.1:{srv.port}"
        started.append((srv, t))
        return srv

    yield run
    for srv, t in started:
        srv.shutdown()
        t.join(10)


def test_cors_origin_option(start, tmp_path):
    srv = start(["poetry"], tmp_path, cors_origins=["https://app.example"])
    status, headers, _ = raw_call(srv, "OPTIONS", "/v1/models/poetry:predict", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    body = json.dumps({"instances": ["春"]}).encode()
    status, headers, _ = raw_call(srv, "POST", "/v1/models/poetry:predict", body, {"Origin": "https://app.example"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert raw_call(srv, "POST", "/v1/models/poetry:predict", body, {"Origin": "https://other.example"})[0] == 403


def test_idle_connections_cannot_lock_others_out(start, tmp_path):
    import socket

    srv = start(["poetry"], tmp_path, max_connections=8, idle_timeout=600)
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
    try:
        time.sleep(1.5)  # the idle ones are quiet for longer than the grace period
        # without eviction this waits for idle_timeout (600 s) and the urlopen timeout (60 s) fails it
        assert predict(srv, "poetry", {"instances": ["春"]}) == (200, {"predictions": ["春" + POEM_TAIL]})
    finally:
        for s in idle:
            s.close()


def test_metrics(server):
    predict(server, "poetry", {"instances": ["春"]})
    predict(server, "poetry", {"instances": ["春X"]})
    with urllib.request.urlopen(server.base + "/monitoring/prometheus/metrics", timeout=30) as r:
        assert r.headers.get_content_type() == "text/plain"
        text = r.read().decode()
    lines = text.splitlines()

    def value(prefix):
        return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(prefix))

    ok = ':tensorflow:serving:request_count{model_name="poetry",API="predict",entrypoint="REST",status="200"}'
    bad = ':tensorflow:serving:request_count{model_name="poetry",API="predict",entrypoint="REST",status="400"}'
    assert value(ok) >= 1 and value(bad) >= 1
    lat = ':tensorflow:serving:request_latency_count{model_name="poetry",API="predict",entrypoint="REST"}'
    assert value(lat) >= value(ok) + value(bad)
    assert value(':tensorflow:serving:batching_session:processed_batch_size_count{model_name="poetry"}') >= 1
    assert ':tensorflow:core:servable_state{model_name="poetry",version="1",state="AVAILABLE"} 1' in lines
    predict(server, "no-such-model-x1", {"instances": ["a"]})  # made-up names share one empty label
    with urllib.request.urlopen(server.base + "/monitoring/prometheus/metrics", timeout=30) as r:
        lines = r.read().decode().splitlines()
    assert not any("no-such-model-x1" in x for x in lines)
    assert value(':tensorflow:serving:request_count{model_name="",API="predict",entrypoint="REST",status="404"}') >= 1
    for line in lines:  # every sample line parses as name{labels} value
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_server_side_batching_merges_concurrent_requests(models, start, tmp_path):
    save_batch_echo(str(tmp_path / "m" / "b" / "1"))
    srv = start([], tmp_path, max_batch_size=4, batch_timeout=0.5)
    sizes = []
    for _ in range(5):  # rounds of 8 clients at once, until calls were merged (usually the first)
        barrier = threading.Barrier(8)
        results = {}

        def client(i):
            text = "X" if i == 5 else f"r{i}"
            barrier.wait()
            results[i] = predict(srv, "b", {"instances": [text]})

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # every client gets its own row back; only the bad request fails, even if it shared a call
        status, err = results.pop(5)
        assert status == 400 and "unknown characters: X" in err["error"]
        for i, (status, out) in results.items():
            assert status == 200
            (row,) = out["predictions"]
            assert row["x"] == f"r{i}" and 1 <= row["batch"] <= 4
            sizes.append(row["batch"])
        if max(sizes) > 1:
            break
    assert max(sizes) > 1
    assert srv.scheduler._queues == {}  # idle queues are not kept


def test_batch_queue_merges_waiting_requests_and_isolates_failures():
    import numpy as np

    from rnn_apps.serving.batching import BatchQueue, Deadline

    calls, go, entered = [], threading.Event(), threading.Event()

    def run(arrays):
        x = arrays["x"]
        calls.append(x.tolist())
        if len(calls) == 1:  # hold the first call until the others wait
            entered.set()
            go.wait(30)
        if b"X" in x.tolist():
            raise ValueError("bad row")
        return {"y": np.char.upper(x.astype("S")).astype(object), "n": np.full(len(x), len(x))}

    q = BatchQueue(max_batch_size=4, timeout=0.0)
    out, errors = {}, {}

    def submit(key):
        try:
            out[key] = q.submit(run, {"x": np.array([key], dtype=object)}, Deadline(60))
        except ValueError as e:
            errors[key] = str(e)

    first = threading.Thread(target=submit, args=(b"a",))
    first.start()
    assert entered.wait(30)
    others = [threading.Thread(target=submit, args=(k,)) for k in (b"b", b"X", b"c", b"d", b"e")]
    for t in others:
        t.start()
    while len(q._pending) < 5:
        time.sleep(0.01)
    go.set()
    for t in [first] + others:
        t.join(30)
    # the 5 waiting requests: one merged call of 4 (it fails: X), each of those alone, then the fifth
    assert calls == [[b"a"], [b"b", b"X", b"c", b"d"], [b"b"], [b"X"], [b"c"], [b"d"], [b"e"]]
    assert errors == {b"X": "bad row"}
    assert {k: v["y"].tolist() for k, v in out.items()} == {k: [k.upper()] for k in (b"a", b"b", b"c", b"d", b"e")}


def test_no_batching_option(tmp_path, start):
    save_batch_echo(str(tmp_path / "m" / "b" / "1"))
    srv = start([], tmp_path, enable_batching=False)
    results = []

    def client(i):
        results.append(predict(srv, "b", {"instances": [f"r{i}"]}))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6 and all(r[0] == 200 and r[1]["predictions"][0]["batch"] == 1 for r in results)


def test_large_request_runs_in_chunks_with_the_same_answer(tmp_path, start):
    save_batch_echo(str(tmp_path / "m" / "b" / "1"))
    srv = start([], tmp_path, max_batch_size=4, light_rows=4)
    status, out = predict(srv, "b", {"instances": [f"r{i}" for i in range(10)]})
    assert status == 200
    assert [p["x"] for p in out["predictions"]] == [f"r{i}" for i in range(10)]
    assert [p["batch"] for p in out["predictions"]] == [4] * 8 + [2] * 2


# --------------------------------------------------------------------------- scheduler (no HTTP)


def test_scheduler_heavy_lane_deadline_and_light_requests():
    import numpy as np

    from rnn_apps.serving.batching import Deadline, ScheduleError, Scheduler, SchedulerConfig

    sched = Scheduler(SchedulerConfig(enable_batching=False, heavy_slots=1, heavy_queue=1, light_rows=2,
                                      max_batch_size=4))
    release, entered = threading.Event(), threading.Event()

    def slow(arrays):
        entered.set()
        release.wait(30)
        return {"y": arrays["x"]}

    heavy = {"x": np.arange(3)}
    first = threading.Thread(target=lambda: sched.run(("m",), "m", slow, heavy, Deadline(60)))
    first.start()
    assert entered.wait(30)
    try:
        # a short request is not queued behind the long one
        out = sched.run(("m",), "m", lambda a: {"y": a["x"] * 2}, {"x": np.arange(2)}, Deadline(60))
        assert out["y"].tolist() == [0, 2]
        # a second heavy request waits for the slot and is cancelled at its deadline
        with pytest.raises(ScheduleError) as e:
            sched.run(("m",), "m", slow, heavy, Deadline(0.3))
        assert e.value.status == 504
        # ... or when its client hangs up
        with pytest.raises(ScheduleError) as e:
            sched.run(("m",), "m", slow, heavy, Deadline(60, client_gone=lambda: True))
        assert e.value.status == 499
    finally:
        release.set()
        first.join(30)


def test_scheduler_sheds_load_and_stops_between_chunks():
    import numpy as np

    from rnn_apps.serving.batching import Deadline, ScheduleError, Scheduler, SchedulerConfig

    sched = Scheduler(SchedulerConfig(heavy_slots=1, heavy_queue=0, light_rows=2, max_batch_size=2))
    calls = []
    gone = []

    def run(arrays):
        calls.append(len(arrays["x"]))
        gone.append(True)  # the client hangs up during the first chunk
        return {"y": arrays["x"]}

    with pytest.raises(ScheduleError) as e:
        sched.run(("m",), "m", run, {"x": np.arange(10)}, Deadline(60, client_gone=lambda: len(gone) > 0))
    assert e.value.status == 499 and calls == [2]  # the other 4 chunks never ran
    hold, entered = threading.Event(), threading.Event()

    def blocking(arrays):
        entered.set()
        hold.wait(30)
        return {"y": arrays["x"]}

    t = threading.Thread(target=lambda: sched.run(("m",), "m", blocking, {"x": np.arange(3)}, Deadline(60)))
    t.start()
    assert entered.wait(30)
    try:
        with pytest.raises(ScheduleError) as e:  # heavy_queue=0: nobody may wait for the busy slot
            sched.run(("m",), "m", blocking, {"x": np.arange(3)}, Deadline(60))
        assert e.value.status == 503
        with pytest.raises(ScheduleError) as e:  # one example, but known to be large (its app's limits)
            sched.run(("m",), "m", blocking, {"x": np.arange(1)}, Deadline(60), large=True)
        assert e.value.status == 503
        assert sched.run(("m",), "m", lambda a: {"y": a["x"]}, {"x": np.arange(1)}, Deadline(60))["y"].tolist() == [0]
    finally:
        hold.set()
        t.join(30)


# --------------------------------------------------------------------------- warm-up and export


def test_warmup_file_round_trip_and_wire_format(tmp_path):
    import numpy as np

    from rnn_apps.serving import warmup

    reqs = [("serving_default", {"prompt": np.array(["春".encode(), b"\xff"], dtype=object)}),
            ("fill", {"text": np.array([b"a"], dtype=object), "top_k": np.array(3, np.int32)}),
            ("serving_default", {"history": np.array([[1.5, -2.0]], np.float32)})]
    warmup.write_warmup(str(tmp_path), "m", reqs)
    back = warmup.read_warmup(str(tmp_path))
    assert [s for s, _ in back] == [s for s, _ in reqs]
    for (_, a), (_, b) in zip(reqs, back):
        assert sorted(a) == sorted(b)
        for k in a:
            assert b[k].dtype.kind == a[k].dtype.kind and b[k].tolist() == a[k].tolist()
    # the same bytes parsed by the protobuf library, from a descriptor of TF Serving's messages
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorflow.core.framework import tensor_pb2

    fd = descriptor_pb2.FileDescriptorProto(name="t.proto", package="tensorflow.serving",
                                            dependency=["tensorflow/core/framework/tensor.proto"])

    def msg(name, *fields):
        m = fd.message_type.add(name=name)
        for fname, number, tname in fields:
            m.field.add(name=fname, number=number, label=1, type=11 if tname else 9,
                        type_name=tname or None)
        return m

    msg("ModelSpec", ("name", 1, None), ("signature_name", 3, None))
    req = msg("PredictRequest", ("model_spec", 1, ".tensorflow.serving.ModelSpec"))
    entry = req.nested_type.add(name="InputsEntry", options=descriptor_pb2.MessageOptions(map_entry=True))
    entry.field.add(name="key", number=1, label=1, type=9)
    entry.field.add(name="value", number=2, label=1, type=11, type_name=".tensorflow.TensorProto")
    req.field.add(name="inputs", number=2, label=3, type=11,
                  type_name=".tensorflow.serving.PredictRequest.InputsEntry")
    msg("PredictLog", ("request", 1, ".tensorflow.serving.PredictRequest"))
    msg("PredictionLog", ("predict_log", 6, ".tensorflow.serving.PredictLog"))
    pool = descriptor_pool.DescriptorPool()
    for dep in _proto_deps(tensor_pb2.DESCRIPTOR):
        pool.Add(dep)
    pool.Add(fd)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.PredictionLog"))
    log = cls.FromString(warmup.encode_request("poetry", "fill", reqs[1][1]))
    r = log.predict_log.request
    assert (r.model_spec.name, r.model_spec.signature_name) == ("poetry", "fill")
    assert sorted(r.inputs) == ["text", "top_k"]
    assert tf.make_ndarray(r.inputs["top_k"]).tolist() == 3


def _proto_deps(fdesc, seen=None):
    """FileDescriptorProtos of ``fdesc`` and its imports, dependencies first."""
    from google.protobuf import descriptor_pb2

    seen = set() if seen is None else seen
    out = []
    for dep in fdesc.dependencies:
        out += _proto_deps(dep, seen)
    if fdesc.name not in seen:
        seen.add(fdesc.name)
        p = descriptor_pb2.FileDescriptorProto()
        fdesc.CopyToProto(p)
        out.append(p)
    return out


def test_server_replays_warmup_before_serving(tmp_path, start):
    import numpy as np

    from rnn_apps.serving import warmup

    vdir = tmp_path / "m" / "c" / "1"
    save_counter(str(vdir))
    warmup.write_warmup(str(vdir), "c", [("serving_default", {"x": np.array([b"a"] * n, dtype=object)})
                                         for n in (1, 2, 3)])
    srv = start([], tmp_path)
    assert predict(srv, "c", {"instances": ["q"]}) == (200, {"predictions": [4]})
    # a warm-up request that fails makes the version fail to load, as in TF Serving
    bad = tmp_path / "m" / "c" / "2"
    save_counter(str(bad))
    warmup.write_warmup(str(bad), "c", [("serving_default", {"nope": np.array([b"a"], dtype=object)})])
    status, err = predict(srv, "c", {"instances": ["q"]}, version=2)
    assert status == 503 and "warm-up" in err["error"]


def test_no_warmup_option(tmp_path, start):
    import numpy as np

    from rnn_apps.serving import warmup

    vdir = tmp_path / "m" / "c" / "1"
    save_counter(str(vdir))
    warmup.write_warmup(str(vdir), "c", [("serving_default", {"x": np.array([b"a"], dtype=object)})])
    srv = start([], tmp_path, warmup=False)
    assert predict(srv, "c", {"instances": ["q"]}) == (200, {"predictions": [1]})


def test_export_writes_warmup_and_removes_stale_temporaries(tmp_path):
    import subprocess
    import sys

    from rnn_apps import export
    from rnn_apps.serving import warmup

    app = tmp_path / "fill"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = app / f".tmp-1-{int(dead.stdout)}"  # an export killed mid-way (its process is gone)
    running = app / f".tmp-1-{os.getppid()}"  # an export still running (its process is alive)
    for d in (stale, running):
        d.mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"half")
    v = export.atomic_export(lambda p: save_fill(p), str(app), extra_files={"fill.json": {"config": {}}})
    assert not stale.exists() and running.exists()
    (sig, inputs), = warmup.read_warmup(v)
    assert sig == "serving_default" and inputs["text"].tolist() == ["床前明月□，疑是地上霜。".encode()]
    v2 = export.atomic_export(lambda p: save_fill(p), str(app), extra_files={"notes.json": {}})
    assert warmup.read_warmup(v2) is None  # not an app's export: no warm-up written
    # the export states what the page shows; a form the exporter gives is kept as it is
    from rnn_apps.serving import form

    assert export.read_extra(v, form.FORM_FILE) == form.app_form("fill")
    assert not os.path.exists(os.path.join(v2, "assets.extra", form.FORM_FILE))
    own = form.make_form("Complete", [form.field("text", "line")])
    v3 = export.atomic_export(lambda p: save_fill(p), str(app), extra_files={"fill.json": {}, form.FORM_FILE: own})
    assert export.read_extra(v3, form.FORM_FILE) == own


def test_large_by_app_limits():
    import numpy as np

    from rnn_apps import limits
    from rnn_apps.serving.checks import is_large

    fill = limits.APPS["fill"]
    texts = lambda *t: {"text": np.array([x.encode() for x in t], dtype=object)}  # noqa: E731
    assert not is_large(fill, texts("床前明月□" * 25))  # 125 characters
    assert is_large(fill, texts("床前明月□" * 26))
    assert is_large(fill, texts("床前明月□" * 13, "床前明月□" * 13))  # counted over the whole request
    assert not is_large(limits.APPS["sentiment"], {"text": np.array([b"a" * 10000], dtype=object)})
    assert not is_large(None, texts("床前明月□" * 100))


def test_scheduler_settings_are_checked():
    from rnn_apps.serving.batching import SchedulerConfig

    for bad in ({"max_batch_size": 0}, {"heavy_slots": 1.5}, {"heavy_queue": -1}, {"batch_timeout": -0.1},
                {"request_timeout": float("nan")}, {"light_rows": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SchedulerConfig(**bad)
