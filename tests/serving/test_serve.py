"""`rnn-apps serve`: TF Serving's REST API over toy SavedModels built here (not the shipped models)."""

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("flask")
pytest.importorskip("waitress")

from rnn_apps.serve import make_server  # noqa: E402
from toys import (  # noqa: E402
    MAX_BODY, POEM_TAIL, png_4x3, call, mark_app, predict,
)

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
    # the poller loads the newest version of every model; status reports it as it is, loaded or not yet
    assert wait_for(lambda: call(server, "GET", "/v1/models/poetry") == (200, expected))
    assert call(server, "GET", "/v1/models/poetry/versions/1") == (200, expected)


def test_status_answers_at_once_with_the_state_and_loads_nothing(models, tmp_path, monkeypatch):
    """As TF Serving's: a status request neither waits for a version that is loading nor starts a load."""
    from rnn_apps.serving import registry

    gate, loads = threading.Event(), []

    class SlowLoad(registry.LoadedModel):
        def __init__(self, name, version, path):
            if path.startswith(str(tmp_path)):  # not the other tests' server, which may be loading too
                loads.append((name, version))
                gate.wait(60)  # a load of minutes, until the test lets it end
            super().__init__(name, version, path)

    monkeypatch.setattr(registry, "LoadedModel", SlowLoad)
    shutil.copytree(models / "models" / "poetry" / "1", tmp_path / "m" / "p" / "1")

    def status_at_once(srv, path):
        t0 = time.perf_counter()
        status, data = call(srv, "GET", path)
        assert status == 200 and time.perf_counter() - t0 < 5, (status, data)
        return [(s["version"], s["state"]) for s in data["model_version_status"]]

    servers = []
    try:
        # with the poller: the version is loading, and status says so
        srv = make_server(str(tmp_path / "m"), port=0, poll_seconds=0.05)
        servers.append((srv, threading.Thread(target=srv.serve_forever, daemon=True)))
        servers[-1][1].start()
        srv.base = f"http://127.0.0.1:{srv.port}"
        assert wait_for(lambda: loads)
        assert status_at_once(srv, "/v1/models/p") == [("1", "LOADING")]
        assert status_at_once(srv, "/v1/models/p/versions/1") == [("1", "LOADING")]
        gate.set()
        assert wait_for(lambda: status_at_once(srv, "/v1/models/p") == [("1", "AVAILABLE")])
        # without the poller (--poll-seconds 0) a version loads on its first request, not on a status request
        del loads[:]
        srv = make_server(str(tmp_path / "m"), port=0, poll_seconds=0)
        servers.append((srv, threading.Thread(target=srv.serve_forever, daemon=True)))
        servers[-1][1].start()
        srv.base = f"http://127.0.0.1:{srv.port}"
        assert status_at_once(srv, "/v1/models/p") == [("1", "START")]
        assert status_at_once(srv, "/v1/models/p/versions/1") == [("1", "START")]
        assert loads == []
        assert predict(srv, "p", {"instances": ["春"]}) == (200, {"predictions": ["春" + POEM_TAIL]})
        assert status_at_once(srv, "/v1/models/p") == [("1", "AVAILABLE")] and len(loads) == 1
    finally:
        gate.set()
        for srv, t in servers:
            srv.shutdown()
            t.join(10)


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
    # a poem model without `generate` (the toy's): the prompt of serving_default
    assert md["metadata"]["page_form"] == {
        "format": "rnn_apps.page_form/1", "signature": "serving_default", "action": "Write a poem",
        "fields": [{"input": "prompt", "widget": "textarea", "label": "prompt",
                    "placeholder": "a character or a line to start from, e.g. 春 (or nothing)"}]}


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
    assert form("translate") == ("Translate", [("text", "textarea"), ("beam_size", "number"), ("max_length", "number")])
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
    for bad in ({"format": "other"}, {**stated, "fields": [{"input": "x", "widget": "slider"}]}, [],
                {**stated, "fields": [{"input": "x", "widget": "line", "colour": "red"}]},
                {**stated, "fields": [{"input": "x", "widget": "choice"}]},
                {**stated, "fields": [{"input": "x", "widget": "line", "choices": [{"value": "a", "label": "A"}]}]},
                {**stated, "fields": [{"input": "x", "widget": "choice", "choices": [{"value": "a"}]}]},
                {**stated, "fields": [{"input": "x", "widget": "choice", "value": "b",
                                       "choices": [{"value": "a", "label": "A"}]}]},
                {**stated, "fields": [{"input": "x", "widget": "line", "value": 3}]},
                {**stated, "fields": [{"input": "x", "widget": "line", "if_empty": "random"}]},
                {**stated, "fields": [{"input": "x", "widget": "number", "if_empty": "zero"}]},
                {**stated, "fields": [{"input": "x", "widget": "number", "more": "yes"}]},
                {**stated, "show": ""}):
        with pytest.raises(F.FormError):
            F.check_form(bad)
    assert F.app_form("no-such-app") is None


def test_page_form_options_defaults_and_order(tmp_path):
    """A poem model with `generate` gets the command's options with its defaults, in the form's order."""
    from rnn_apps import limits
    from rnn_apps.apps.poetry import constants, prosody
    from rnn_apps.serving import form as F

    def spec(dtype):
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": "-1"}], "unknown_rank": False}}

    strings = ("acrostic", "form", "metre", "prompt", "rhyme")
    inputs = {k: spec("DT_STRING" if k in strings else "DT_FLOAT") for k in sorted(
        strings + ("max_length", "seed", "temperature", "top_k", "top_p", "extra"))}  # alphabetical, as served
    sigs = {"generate": {"inputs": inputs, "outputs": {"text": spec("DT_STRING"), "characters": spec("DT_INT32")}},
            "serving_default": {"inputs": {"prompt": spec("DT_STRING")}}}
    form = F.page_form(str(tmp_path), "poetry", sigs)
    assert form["signature"] == "generate" and form["show"] == "text"
    names = [f["input"] for f in form["fields"]]
    assert names[:3] == ["prompt", "form", "acrostic"] and names[-1] == "extra"  # not named: last, by its dtype
    by = {f["input"]: f for f in form["fields"]}
    assert [f["input"] for f in form["fields"] if f.get("more")] == [
        "rhyme", "metre", "temperature", "top_p", "top_k", "max_length", "seed"]
    # every option is one the server accepts, and every option it accepts is offered
    for name in ("form", "rhyme", "metre"):
        offered = [c["value"] for c in by[name]["choices"]]
        accepted = limits.APPS["poetry"].choices[name]
        assert all(accepted.contains(v) for v in offered)
        assert set(accepted.values) <= set(offered)
    assert "" in [c["value"] for c in by["form"]["choices"]]  # free form
    assert (by["form"]["value"], by["rhyme"]["value"], by["metre"]["value"]) == (
        constants.AUTO_FORM, prosody.DEFAULT_RHYME, prosody.DEFAULT_METRE)
    assert {k: by[k]["value"] for k in constants.DEFAULT_SAMPLING} == constants.DEFAULT_SAMPLING
    assert by["seed"]["if_empty"] == "random" and "value" not in by["seed"]
    # without `generate` (before version 7): the prompt only; an output the signature lacks is not shown
    old = F.page_form(str(tmp_path), "poetry", {"serving_default": sigs["serving_default"]})
    assert old["signature"] == "serving_default" and [f["input"] for f in old["fields"]] == ["prompt"]
    F.write_form(str(tmp_path), F.app_form("poetry"))
    sigs["generate"]["outputs"] = {"poem": spec("DT_STRING")}
    assert "show" not in F.page_form(str(tmp_path), "poetry", sigs)


@pytest.mark.parametrize("app, settings, signature, options, shown", [
    ("translate", {"config": {"direction": "en-zh"}, "decoding": {"default_beam": 4}}, "translate",
     {"beam_size": 4, "max_length": 0}, "translation"),
    ("caption", {"decoding": {"default_beam": 5}}, "caption", {"beam_size": 5}, "caption"),
    ("caption", {}, "caption", {"beam_size": 1}, "caption"),  # no default beam stated: greedy, as the command
    ("fill", {}, "fill", {"top_k": 5}, None),
])
def test_page_form_options_of_the_other_apps(tmp_path, app, settings, signature, options, shown):
    """Translation, captions and fill: the command's options (beam, length, candidates) with its defaults, each
    within what the server accepts; a model without that signature keeps the one-field form."""
    from rnn_apps import limits
    from rnn_apps.serving import form as F

    def spec(dtype, rank=1):
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": "-1"}] * rank, "unknown_rank": False}}

    main = {"translate": "text", "caption": "image", "fill": "text"}[app]
    inputs = {main: spec("DT_STRING"), **{k: spec("DT_INT32", 0) for k in options}}
    sigs = {signature: {"inputs": dict(sorted(inputs.items())), "outputs": {shown or "text": spec("DT_STRING")}},
            "serving_default": {"inputs": {main: spec("DT_STRING")}}}
    form = F.page_form(str(tmp_path), app, sigs, settings)
    assert form["signature"] == signature and form.get("show") == shown
    assert [f["input"] for f in form["fields"]] == [main, *options]
    values = {f["input"]: f["value"] for f in form["fields"][1:]}
    assert values == options and all(f.get("more") for f in form["fields"][1:])
    for name, value in values.items():
        limits.check_number(limits.APPS[app], name, value)  # the default is one the server accepts
    old = F.page_form(str(tmp_path), app, {"serving_default": sigs["serving_default"]}, settings)
    assert old["signature"] == "serving_default" and [f["input"] for f in old["fields"]] == [main]


def test_the_shipped_models_state_their_apps_forms():
    from rnn_apps.serving import form as F
    from rnn_apps.serving.checks import app_settings, model_app

    root = os.path.join(os.path.dirname(__file__), "..", "..", "models")
    seen = 0
    for name in sorted(os.listdir(root)):
        for version in sorted(os.listdir(os.path.join(root, name))):
            d = os.path.join(root, name, version)
            if version.isdigit():  # not a card's examples/
                app = model_app(d)
                assert F._stated_form(d) == F.app_form(app, app_settings(d, app)), d
                seen += 1
    assert seen >= 8


def test_the_shipped_models_warm_up_every_signature():
    """Each shipped version's TF Serving warm-up file holds the app's requests for every one of its
    signatures (each request's inputs are the signature's), so no signature's first call pays for building
    its program."""
    from rnn_apps.serving import warmup
    from rnn_apps.serving.checks import app_settings, model_app
    from rnn_apps.serving.registry import signature_defs

    root = os.path.join(os.path.dirname(__file__), "..", "..", "models")
    seen = 0
    for name in sorted(os.listdir(root)):
        for version in sorted(os.listdir(os.path.join(root, name))):
            d = os.path.join(root, name, version)
            if version.isdigit():
                app = model_app(d)
                sigs = {k: v for k, v in signature_defs(d).items() if not k.startswith("__")}  # not the init op
                shipped = warmup.read_warmup(d)
                assert {s for s, _ in shipped} == set(sigs), d
                for sig, inputs in shipped:
                    assert set(inputs) == set(sigs[sig]["inputs"]), (d, sig)
                expected = warmup.default_requests(app, app_settings(d, app), signatures=sigs)
                assert [(s, sorted(i)) for s, i in shipped] == [(s, sorted(i)) for s, i in expected], d
                seen += 1
    assert seen >= 8


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
    status, err = predict(server, "poetry", {"inputs": {"prompt": []}})
    assert status == 400 and err["error"] == '"inputs" holds no examples (empty lists)', err
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
    assert wait_for(lambda: call(server, "GET", "/v1/models/broken")[1]["model_version_status"][0]["state"] == "END")
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


def test_the_directory_of_one_models_versions_serves_that_model_under_its_name(models, tmp_path, monkeypatch,
                                                                               capsys):
    """`--models models/poetry`, one level too deep, is TF Serving's --model_base_path: that model, alone, under
    its directory's name; its new versions are picked up as a models directory's are."""
    from rnn_apps.serve import ModelServer, ServeError, run_server

    mdir = tmp_path / "models"
    shutil.copytree(models / "models" / "poetry" / "1", mdir / "p" / "1")
    shutil.copytree(models / "models" / "sentiment" / "1", mdir / "s" / "1")
    srv = make_server(str(mdir / "p"), port=0, poll_seconds=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.port}"
    try:
        assert srv.registry.names() == ["p"]
        assert predict(srv, "p", {"instances": ["春"]})[1] == {"predictions": ["春" + POEM_TAIL]}
        assert predict(srv, "s", {"instances": ["good"]})[0] == 404  # beside it: not served
        shutil.copytree(models / "staging" / "rolling-2", mdir / "p" / "2")
        assert predict(srv, "p", {"instances": ["春"]})[1] == {"predictions": ["春，v2"]}
    finally:
        srv.shutdown()
        t.join(10)
    # what the command prints (the server stops at once here)
    monkeypatch.setattr(ModelServer, "serve_forever", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    run_server(str(mdir / "p"), port=0, warmup=False)
    out = capsys.readouterr().out
    assert out.startswith(f"{mdir / 'p'} holds the versions of one model: serving it as model p, alone (to serve "
                          f"every model beside it, pass --models {mdir}).\n"), out
    (tmp_path / "empty").mkdir()
    run_server(str(tmp_path / "empty"), port=0, warmup=False)
    assert (f"Serving 0 model(s) from {tmp_path / 'empty'} (new ones are picked up as they appear)\n"
            in capsys.readouterr().out)
    with pytest.raises(ServeError) as e:  # two levels too deep: a version
        run_server(str(mdir / "p" / "1"), port=0)
    assert str(e.value) == (f"{mdir / 'p' / '1'} is one version of a model (it holds saved_model.pb), not a models "
                            f"directory: pass the directory of the models, {mdir}, or that of this model's "
                            f"versions, {mdir / 'p'}.")
    # make_server returned a server that answered 404 to everything
    with pytest.raises(ServeError, match=r"^models directory not found: .*missing$"):
        make_server(str(tmp_path / "missing"), port=0)
    with pytest.raises(ServeError, match=r"^.*1 is one version of a model \(it holds saved_model\.pb\)"):
        make_server(str(mdir / "p" / "1"), port=0)


def test_thread_counts_are_set_before_tensorflow_starts(tmp_path):
    """--intra-op-threads and --inter-op-threads size TensorFlow's pools, as TF Serving's flags do; once
    TensorFlow runs in a process they cannot change, which is said plainly (TensorFlow raises a RuntimeError)."""
    from rnn_apps.serve import ServeError

    code = ("import tensorflow as tf\nfrom rnn_apps.serve import make_server\n"
            f"s = make_server({str(tmp_path)!r}, port=0, poll_seconds=0, intra_op_threads=1, inter_op_threads=2)\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())\ns.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["1", "2"], done.stderr[-2000:]

    tf.constant(1.0) + 1.0  # TensorFlow runs in this process
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with pytest.raises(ServeError) as e:
        make_server(str(tmp_path), port=0, poll_seconds=0, intra_op_threads=current + 3)
    assert str(e.value).startswith(f"cannot use {current + 3} intra-op thread(s): TensorFlow already runs in this "
                                   "process with "), e.value
    assert str(e.value).endswith("the thread counts must be set before TensorFlow starts."), e.value
    with pytest.raises(ServeError, match=r"^inter_op threads must be a whole number >= 0 .*received -1\.$"):
        make_server(str(tmp_path), port=0, poll_seconds=0, inter_op_threads=-1)
    srv = make_server(str(tmp_path), port=0, poll_seconds=0, intra_op_threads=current)  # what it already has
    srv.shutdown()


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


@pytest.fixture()
def driver():
    """A headless Chromium driven by Selenium (the test skips with a reason when there is none)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
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
        chrome = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    except Exception as e:  # noqa: BLE001 - a browser that cannot start here is an environment problem
        pytest.skip(f"could not start headless chromium: {str(e).splitlines()[0]}")
    yield chrome
    chrome.quit()


def test_browser_page(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

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


def save_poem_with_options(path):
    """A poem model's ``generate`` (the real one's inputs) that writes back what it was asked."""
    strings = ("prompt", "form", "acrostic")

    class Poem(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=n) for n in strings] + [
            tf.TensorSpec([None], tf.float32, name="temperature"), tf.TensorSpec([None], tf.int32, name="top_k"),
            tf.TensorSpec([None], tf.float32, name="top_p"), tf.TensorSpec([None], tf.int64, name="seed"),
            tf.TensorSpec([None], tf.int32, name="max_length"), tf.TensorSpec([None], tf.string, name="rhyme"),
            tf.TensorSpec([None], tf.string, name="metre")])
        def generate(self, prompt, form, acrostic, temperature, top_k, top_p, seed, max_length, rhyme, metre):
            text = tf.strings.join([prompt, form, acrostic, rhyme, metre, tf.strings.as_string(temperature, precision=2),
                                    tf.strings.as_string(seed)], separator="|")
            return {"text": text, "characters": tf.strings.length(prompt)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt")])
        def serve(self, prompt):
            return {"text": prompt}

    m = Poem()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "generate": m.generate})
    mark_app(path, "poetry")


def test_browser_page_poem_options(start, tmp_path, driver):
    """The poem form offers the command's options with its defaults; a seed left empty is drawn and shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    save_poem_with_options(str(tmp_path / "m" / "poem" / "1"))
    srv = start([], tmp_path)
    driver.get(srv.base + "/")
    wait = WebDriverWait(driver, 30)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#model-poem textarea[name=prompt]"))
    form = Select(driver.find_element(By.CSS_SELECTOR, "#model-poem select[name=form]"))
    assert form.first_selected_option.get_attribute("value") == "auto"
    assert [o.get_attribute("value") for o in form.options] == ["auto", "wujue", "qijue", "wulv", "qilv", ""]
    rhyme = driver.find_element(By.CSS_SELECTOR, "#model-poem details.more select[name=rhyme]")
    assert not rhyme.is_displayed()  # under "more settings", closed at first

    def run():
        old = driver.find_element(By.CSS_SELECTOR, "#model-poem pre.request").get_attribute("textContent")
        driver.find_element(By.CSS_SELECTOR, "#model-poem button.run").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#model-poem pre.request").get_attribute(
            "textContent") != old and "|" in d.find_element(By.CSS_SELECTOR, "#model-poem .result").text)
        request = driver.find_element(By.CSS_SELECTOR, "#model-poem pre.request").get_attribute("textContent")
        body = json.loads(request.split("\n", 1)[1])
        return driver.find_element(By.CSS_SELECTOR, "#model-poem .result").text, body

    box.send_keys("春")
    form.select_by_value("wujue")
    driver.find_element(By.CSS_SELECTOR, "#model-poem input[name=acrostic]").send_keys("明月")
    text, body = run()
    assert body["signature_name"] == "generate"
    row = body["instances"][0]
    seed = row["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert text == f"春|wujue|明月|pingshui|loose|0.80|{seed}"  # the text output alone, not the characters
    driver.find_element(By.CSS_SELECTOR, "#model-poem details.more summary").click()
    Select(rhyme).select_by_value("xinyun")
    driver.find_element(By.CSS_SELECTOR, "#model-poem input[name=seed]").send_keys("7")
    form.select_by_value("")
    text, _ = run()
    assert text == "春||明月|xinyun|loose|0.80|7"
    # the server's refusal is shown: an acrostic of marks only
    acrostic = driver.find_element(By.CSS_SELECTOR, "#model-poem input[name=acrostic]")
    acrostic.clear()
    acrostic.send_keys("，。")
    driver.find_element(By.CSS_SELECTOR, "#model-poem button.run").click()
    wait.until(lambda d: "acrostic has no Chinese characters" in d.find_element(
        By.CSS_SELECTOR, "#model-poem .result").text)



def save_translate_with_options(path):
    """A translation model's ``translate`` (the real one's inputs) that writes back what it was asked; its
    export states a default beam of 3."""

    class Translate(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([], tf.int32, name="max_length"),
                                      tf.TensorSpec([], tf.int32, name="beam_size")])
        def translate(self, text, max_length, beam_size):
            text = tf.strings.join([text, tf.strings.as_string(beam_size), tf.strings.as_string(max_length)], "|")
            return {"translation": text, "length": tf.strings.length(text)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"translation": text}

    m = Translate()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve, "translate": m.translate})
    with open(os.path.join(path, "assets.extra", "translate.json"), "w") as f:
        json.dump({"format": "rnn_apps.translate/1", "config": {"direction": "en-zh"},
                   "decoding": {"default_beam": 3, "max_beam": 16}}, f)


def test_browser_page_translate_options(start, tmp_path, driver):
    """The translation form sends the command's beam and length (the model's defaults unless changed) in the
    columnar format its scalar inputs need, and shows the translation alone."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path = str(tmp_path / "m" / "tr" / "1")
    os.makedirs(os.path.join(path, "assets.extra"))
    save_translate_with_options(path)
    srv = start([], tmp_path)
    driver.get(srv.base + "/")
    wait = WebDriverWait(driver, 30)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#model-tr textarea[name=text]"))
    beam = driver.find_element(By.CSS_SELECTOR, "#model-tr details.more input[name=beam_size]")
    assert beam.get_attribute("value") == "3" and not beam.is_displayed()

    def run():
        old = driver.find_element(By.CSS_SELECTOR, "#model-tr pre.request").get_attribute("textContent")
        driver.find_element(By.CSS_SELECTOR, "#model-tr button.run").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#model-tr pre.request").get_attribute(
            "textContent") != old and "|" in d.find_element(By.CSS_SELECTOR, "#model-tr .result").text)
        request = driver.find_element(By.CSS_SELECTOR, "#model-tr pre.request").get_attribute("textContent")
        return driver.find_element(By.CSS_SELECTOR, "#model-tr .result").text, json.loads(request.split("\n", 1)[1])

    box.send_keys("Good morning.")
    text, body = run()
    assert body == {"signature_name": "translate",
                    "inputs": {"text": ["Good morning."], "beam_size": 3, "max_length": 0}}
    assert text == "Good morning.|3|0"
    driver.find_element(By.CSS_SELECTOR, "#model-tr details.more summary").click()
    beam.clear()
    beam.send_keys("1")
    assert run()[0] == "Good morning.|1|0"
    beam.clear()
    beam.send_keys("99")  # the server's refusal is shown, in the command's words
    driver.find_element(By.CSS_SELECTOR, "#model-tr button.run").click()
    wait.until(lambda d: "beam_size must be" in d.find_element(By.CSS_SELECTOR, "#model-tr .result").text)