"""`rnn-apps serve` under hostile and heavy requests: limits, the same words as the commands, batching."""

import base64
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("flask")
pytest.importorskip("waitress")

from toys import (  # noqa: E402
    MAX_BODY, POEM_TAIL, save_batch_echo, save_beam_echo, save_padded_tokens, mark_app, png_4x3, call, predict,
    raw_call, png_header,
)
from test_caption import gif_of, webp_of  # noqa: E402


def whole_png_header(width, height):
    """A PNG header of the given size that ends as a whole PNG does (the header reader refuses a cut one)."""
    return png_header(width, height) + b"\0" * 12 + b"IEND" + b"\0" * 4


IMG = {"b64": base64.b64encode(png_4x3()).decode()}  # an image, for the caption toys (the server reads each one)


# --------------------------------------------------------------------------- hostile and heavy requests


@pytest.mark.parametrize("model, body, words", [
    ("poetry", {"instances": ["春"] * 65}, "at most 64"),
    ("poetry", {"signature_name": "sample", "inputs": {"prompt": ["春"], "temperature": -1.0, "seed": 1}},
     "temperature must be in [0, 10]"),
    ("sentiment", {"instances": ["good", "  "]}, "text[1] is empty"),
    ("sentiment", {"instances": ["good", "这部电影很好"]},
     "text[1]: the model knows none of its 1 word; it reads film reviews in English"),
    ("fill", {"instances": ["月" * 512 + "□"]}, "513 characters; at most 512"),
    ("fill", {"instances": ["床前明月光"]}, "no blank"),
    ("fill", {"instances": ["□" * 65]}, "65 blanks; at most 64"),
    ("caption", {"instances": [{"b64": base64.b64encode(whole_png_header(12000, 12000)).decode()}]}, "144 megapixels"),
    ("caption", {"instances": [{"b64": base64.b64encode(png_4x3()).decode()},
                               {"b64": base64.b64encode(whole_png_header(12000, 12000)).decode()}]},
     "image[1]: the image is 12,000×12,000 pixels (144 megapixels)"),
    ("caption", {"instances": [{"b64": "!!!!"}]}, "invalid base64"),
    ("translate", {"instances": ["hello", "qzx vvv"]}, "text[1]: the model knows none of its words (qzx, vvv)"),
    ("translate", {"instances": ["... !"]}, "no words"),
    ("translate", {"instances": [""]}, "empty"),
    ("forecast", {"instances": [[1.0, 3e38, 2.0]]}, "history must be in [-1,000,000,000,000,000, 1,000,000"),
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
    ("sentiment", ["这部 电影 很好", "good"], {}, {"instances": ["这部 电影 很好", "good"]}, ("Review 1", "text[0]")),
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


def test_an_image_whose_data_does_not_decode_is_named_by_its_row(server):
    """A whole header over damaged pixels passes the header checks; the model's decoder then refuses it in
    words that name no row, so the server finds the row and says what the command says."""
    from rnn_apps.apps.caption.images import CaptionError, check_decodable, check_image

    import numpy as np

    png = tf.io.encode_png(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).numpy()
    i = png.index(b"IDAT") + 8
    bad = png[:i] + bytes(40) + png[i + 40:]
    check_image(bad, "photo.png")  # the header reads
    with pytest.raises(CaptionError) as e:
        check_decodable(bad, "photo.png")
    status, err = predict(server, "caption", {"instances": [IMG, {"b64": base64.b64encode(bad).decode()}]})
    assert status == 400 and err["error"].startswith("image[1]: the image data cannot be decoded (Invalid PNG data")
    assert _without_where(str(e.value), "photo.png") == _without_where(err["error"], "image[1]")
    assert predict(server, "caption", {"instances": [IMG]})[0] == 200


def test_caption_cli_and_rest_say_the_same_of_a_huge_image(server):
    from rnn_apps.apps.caption.images import CaptionError, prepare_image

    png = whole_png_header(12000, 12000)
    with pytest.raises(CaptionError) as e:
        prepare_image(png, "photo.png")
    status, err = predict(server, "caption", {"instances": [{"b64": base64.b64encode(png).decode()}]})
    assert status == 400
    assert _without_where(str(e.value), "photo.png") == _without_where(err["error"], "image")


@pytest.mark.parametrize("data", [
    b"",
    b"\x89PNG\r\n\x1a\n" + b"\0" * 40,  # no IHDR chunk
    b"hello world, not an image",
    b"\xff\xd8\xff\xe0\x00\x10JFIF",  # a JPEG cut before its size
    png_4x3()[:-12],  # a PNG cut short (libpng would decode a partly blank image)
    gif_of((8000, 8000)),  # the screen says 1×1: the frame TensorFlow decodes is 8000×8000
    gif_of((4000, 4000), (4000, 4000)),  # two frames of 16 megapixels, both decoded
    gif_of((40, 30))[:30],  # cut in its first frame
    "webp",  # a 16383×16383 lossless WebP header
], ids=["empty", "png-no-ihdr", "not-an-image", "jpeg-cut", "png-cut", "gif-frame", "gif-frames", "gif-cut", "webp"])
def test_caption_cli_and_rest_say_the_same_of_each_bad_image_and_name_it(server, data):
    """Each image of a request is read by the command's header reader before the model runs: a 400 in the
    command's words, naming the image by its index, for what TensorFlow would refuse in its own words (or
    decode, at a cost in memory the limits exist to bound)."""
    from rnn_apps.apps.caption.images import CaptionError, prepare_image

    data = webp_of(16383, 16383) if data == "webp" else data
    with pytest.raises(CaptionError) as e:
        prepare_image(data, "photo")
    status, err = predict(server, "caption", {"instances": [{"b64": base64.b64encode(png_4x3()).decode()},
                                                            {"b64": base64.b64encode(data).decode()}]})
    assert status == 400, err
    assert _without_where(str(e.value), "photo") == _without_where(err["error"], "image[1]")


def test_images_of_every_format_read_are_still_captioned(server):
    import io

    from PIL import Image, features

    images = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP") + (("WEBP",) if features.check("webp") else ()):
        buf = io.BytesIO()
        Image.new("RGB", (4, 3), (200, 10, 10)).save(buf, format=fmt)
        images.append({"b64": base64.b64encode(buf.getvalue()).decode()})
    status, out = predict(server, "caption", {"instances": images})
    assert (status, out) == (200, {"predictions": ["a 4x3 picture"] * len(images)}), out


@pytest.mark.parametrize("model, leaf", [("sentiment", "good"), ("caption", {"b64": "iVBORw0KGgo="})])
def test_lists_nested_deeper_than_an_array_holds_are_400(server, model, leaf):
    value = leaf
    for _ in range(65):
        value = [value]
    status, err = predict(server, model, {"instances": value})
    assert (status, err["error"]) == (400, "input '%s' nests lists more than 64 deep; the signature expects "
                                           "[None]" % ("text" if model == "sentiment" else "image")), err


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


@pytest.mark.parametrize("option, value", [("--temperature", "-1"), ("--temperature", "1e308"),
                                           ("--temperature", "nan"), ("--temperature", "inf")])
def test_command_options_and_rest_say_the_same(server, option, value):
    from click.testing import CliRunner

    from rnn_apps.cli import cli

    r = CliRunner().invoke(cli, ["generate-poem", option, value])
    status, err = predict(server, "poetry", json.loads(
        '{"signature_name": "sample", "inputs": {"prompt": ["春"], "seed": 1, "temperature": %s}}'
        % {"nan": "NaN", "inf": "Infinity"}.get(value, value)))
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


def test_an_acrostic_of_marks_only_is_refused_by_cli_and_rest(start, tmp_path):
    # The model drops an acrostic's marks: one of marks only used to give a poem without an acrostic.
    from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator

    class Poem(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                      tf.TensorSpec([None], tf.string, name="acrostic")])
        def serve(self, prompt, acrostic):
            return {"text": prompt + acrostic}

    path = str(tmp_path / "m" / "poem" / "1")
    tf.saved_model.save(Poem(), path, signatures={"serving_default": Poem().serve})
    mark_app(path, "poetry")
    srv = start([], tmp_path)
    gen = PoemGenerator.__new__(PoemGenerator)  # the check comes before the model is used
    with pytest.raises(PoemError) as e:
        gen.generate(acrostic="，。", form="wujue")
    assert str(e.value).startswith("The acrostic has no Chinese characters")
    status, err = predict(srv, "poem", {"inputs": {"prompt": ["春"], "acrostic": ["，。"]}})
    assert status == 400
    assert _without_where(str(e.value), "The acrostic") == _without_where(err["error"], "acrostic")
    assert predict(srv, "poem", {"inputs": {"prompt": ["春"], "acrostic": ["夏，"]}}) == (200, {"outputs": ["春夏，"]})
    assert predict(srv, "poem", {"inputs": {"prompt": ["春"], "acrostic": [""]}}) == (200, {"outputs": ["春"]})


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
    assert status == 400 and err["error"] == "history must hold finite numbers only; received NaN.", err
    nan_temp = b'{"signature_name": "sample", "inputs": {"prompt": ["a"], "temperature": NaN, "seed": 1}}'
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", nan_temp)
    assert status == 400 and err["error"] == "temperature must be a finite number; received NaN.", err
    assert predict(server, "forecast", {"instances": [[1.0, 3.0]]}) == (200, {"predictions": [[2.0]]})
    assert predict(server, "translate", {"instances": ["hello world"]}) == (200, {"predictions": ["HELLO WORLD"]})
    # a model of no known app keeps TF Serving's behaviour
    assert predict(server, "echo", {"signature_name": "scale", "inputs": {"x": [[1, 2]], "k": 2}})[0] == 200


@pytest.mark.parametrize("model, raw, message", [
    # numbers beyond the range quote what was sent, not what float32 makes of it (inf, -5000000136282112.0)
    ("poetry", b'{"signature_name": "sample", "inputs": {"prompt": ["a"], "temperature": 1e308, "seed": 1}}',
     "temperature must be in [0, 10], 0 or at least 1e-06 (0 is greedy); received 1e+308."),
    ("forecast", b'{"instances": [[1.0, -5e15]]}',
     "history must be in [-1,000,000,000,000,000, 1,000,000,000,000,000] (larger values overflow float32 in the "
     "model); received -5000000000000000.0."),
    # numbers that are not finite once read are refused as such, as they were written
    ("poetry", b'{"signature_name": "sample", "inputs": {"prompt": ["a"], "temperature": Infinity, "seed": 1}}',
     "temperature must be a finite number; received Infinity."),
    ("poetry", b'{"signature_name": "sample", "inputs": {"prompt": ["a"], "temperature": 1e400, "seed": 1}}',
     "temperature must be a finite number; received 1e400."),
    ("forecast", b'{"instances": [[1.0, -Infinity]]}', "history must hold finite numbers only; received -Infinity."),
    ("forecast", b'{"inputs": [[2.5, 1E+0400]]}', "history must hold finite numbers only; received 1E+0400."),
], ids=["1e308", "-5e15", "Infinity", "1e400", "-Infinity-in-a-list", "1E+0400-in-a-list"])
def test_numbers_are_quoted_as_sent(server, model, raw, message):
    status, _, err = raw_call(server, "POST", f"/v1/models/{model}:predict", raw)
    assert status == 400 and err["error"] == message, err


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
    # several members, as `gzip -c a b` writes them, are read as one body; bytes after the last are refused
    half = len(body) // 2
    members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    status, _, out = raw_call(server, "POST", "/v1/models/poetry:predict", members, {"Content-Encoding": "gzip"})
    assert (status, out) == (200, {"predictions": ["春" + POEM_TAIL]})
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", gzip.compress(body) + b"\0garbage",
                              {"Content-Encoding": "gzip"})
    assert status == 400 and "gzip" in err["error"], err
    bombs = gzip.compress(b"a" * (MAX_BODY // 2 + 1)) * 2  # each member under the limit, together over it
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", bombs, {"Content-Encoding": "gzip"})
    assert status == 413 and "inflates" in err["error"]
    assert raw_call(server, "POST", "/v1/models/poetry:predict", body, {"Content-Encoding": "br"})[0] == 415


def test_a_body_of_exactly_the_limit_is_read(server):
    """--max-body-mb is the largest body allowed: waitress refused a body of exactly that size too."""
    body = json.dumps({"instances": ["春"]}).encode()
    at_limit = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(at_limit) == MAX_BODY
    assert raw_call(server, "POST", "/v1/models/poetry:predict", at_limit)[:3:2] == (200, {"predictions": ["春" + POEM_TAIL]})
    status, _, err = raw_call(server, "POST", "/v1/models/poetry:predict", at_limit + b" ")
    assert status == 413 and err["error"].endswith(f"exceeds the limit of {MAX_BODY} bytes"), err  # not MAX_BODY + 1


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
    # host names are case-insensitive
    assert raw_call(server, "GET", "/v1/models", headers={"Host": f"LocalHost:{server.port}"})[0] == 200


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


def _example(text: str) -> dict:
    """A serialized tf.Example with the feature "text", as a JSON b64 value."""
    ex = tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))}))
    return {"b64": base64.b64encode(ex.SerializeToString()).decode()}


@pytest.mark.parametrize("body, status, words", [
    # the texts inside tf.Example protos get the checks of plain texts
    ({"signature_name": "classify", "instances": [_example("这部电影很好")]}, 400,
     "inputs[0]: the model knows none of its 1 word"),
    ({"signature_name": "classify", "instances": [_example("good"), _example("!!! ...")]}, 400,
     "inputs[1] has no words to classify"),
    ({"signature_name": "classify", "instances": [_example("  ")]}, 400, "inputs is empty"),
    ({"signature_name": "classify", "instances": [{"b64": base64.b64encode(b"\xff\xfe junk").decode()}]}, 400,
     'serialized tf.Example protos with a string feature "text"'),
    # a review of 200 characters: its proto's length bytes are not UTF-8, the review is
    ({"signature_name": "classify", "instances": [_example("good " * 40)]}, 200, None),
    # a NUL would end the text for the model's string operations
    ({"instances": ["good", "good\u0000 terrible awful"]}, 400, "text[1] holds a NUL character (U+0000)"),
    # the signatures that report unknown words answer for them
    ({"signature_name": "words", "instances": ["这部电影很好", "!!!"]}, 200, None),
])
def test_sentiment_texts_are_checked_in_every_signature(server, body, status, words):
    got, out = predict(server, "sentiment", body)
    assert got == status, out
    if words:
        assert words in out["error"], out


def test_classify_and_regress_say_how_to_reach_the_signature_through_predict(server):
    """The sentiment model's ``classify`` signature has TF Serving's classify method: :classify is refused
    with the :predict request that runs it, and that request works."""
    status, md = call(server, "GET", "/v1/models/sentiment/metadata")
    assert md["metadata"]["signature_def"]["signature_def"]["classify"]["method_name"] == "tensorflow/serving/classify"
    status, err = call(server, "POST", "/v1/models/sentiment:classify", {"examples": [{"text": "good"}]})
    assert status == 400 and err["error"] == (
        'classify is not supported by this server; use :predict with "signature_name": "classify", the signature '
        'with method_name tensorflow/serving/classify. Its input "inputs" takes serialized tf.Example protos with '
        'a string feature "text", each as {"b64": "..."}, e.g. {"signature_name": "classify", "instances": '
        '[{"b64": "..."}]}. The answer is :predict\'s (its outputs classes, scores), not classify\'s "results".')
    status, out = predict(server, "sentiment", {"signature_name": "classify", "instances": [_example("good")]})
    assert status == 200 and out["predictions"][0]["classes"] == ["negative", "positive"], out
    assert out["predictions"][0]["scores"] == pytest.approx([0.1, 0.9])
    status, err = call(server, "POST", "/v1/models/sentiment:regress", {"examples": [{"text": "good"}]})
    assert status == 400 and err["error"] == (
        "regress is not supported by this server; use :predict (model sentiment version 1 has no signature with "
        "method_name tensorflow/serving/regress; its signatures: classify, serving_default, words)")
    status, err = call(server, "POST", "/v1/models/poetry:classify", {"examples": [{"prompt": "春"}]})
    assert status == 400 and "no signature with method_name tensorflow/serving/classify" in err["error"], err


def test_translate_tokenize_reports_unknown_words(server):
    status, out = predict(server, "translate", {"signature_name": "tokenize", "instances": ["qzx vvv"]})
    assert status == 200 and out["predictions"][0]["unknown_count"] == 2


@pytest.mark.parametrize("body, words", [
    ({"signature_name": "translate", "inputs": {"text": ["hello"], "beam_size": True, "max_length": 0}},
     "input 'beam_size' expects int32 values, got true"),
    ({"signature_name": "translate", "inputs": {"text": ["hello"], "beam_size": 2**70, "max_length": 0}},
     "input 'beam_size': 1180591620717411303424 is out of range for int32"),
    ({"signature_name": None, "instances": ["hello"]}, '"signature_name" must be a string'),
    ({"signature_name": 0, "instances": ["hello"]}, '"signature_name" must be a string'),
])
def test_json_values_of_the_wrong_kind_are_400(server, body, words):
    status, out = predict(server, "translate", body)
    assert status == 400 and words in out["error"], out


def _concurrently(srv, model, bodies, rounds=4):
    """Send ``bodies`` at once, ``rounds`` times; the answers of every round, in order."""
    answers = []
    for _ in range(rounds):
        barrier, results = threading.Barrier(len(bodies)), {}

        def client(i):
            barrier.wait()
            results[i] = predict(srv, model, bodies[i])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        answers.append([results[i] for i in range(len(bodies))])
    return answers


def test_requests_merge_only_with_requests_of_the_same_beam(start, tmp_path):
    """The captioner decodes a whole call with its largest beam: a request gets its own beam whatever else is
    sent at the same time, and must give one beam for all its images."""
    save_beam_echo(str(tmp_path / "m" / "c" / "1"))
    # one batch at a time: requests that arrive while it runs wait and merge (two threads could each run one alone)
    srv = start([], tmp_path, max_batch_size=8, batch_timeout=0.5, batch_threads=1)
    bodies = [{"signature_name": "caption", "instances": [{"image": IMG, "beam_size": 1 + 7 * (i % 2)}]}
              for i in range(8)]
    merged = 0
    for _ in range(10):  # rounds of 8 clients at once, until calls were merged (usually the first)
        for answers in _concurrently(srv, "c", bodies, rounds=1):
            for body, (status, out) in zip(bodies, answers):
                assert status == 200, out
                (row,) = out["predictions"]
                assert row["beam"] == body["instances"][0]["beam_size"]
                merged = max(merged, row["batch"])
        if merged > 1:
            break
    assert merged > 1  # requests of the same beam were merged
    status, err = predict(srv, "c", {"signature_name": "caption", "inputs": {"image": [IMG], "beam_size": []}})
    assert status == 400 and err["error"] == ("beam_size must be given, one value for all examples of a request "
                                              "(the model applies it to its whole call); received no values."), err
    # a large request runs in chunks: each chunk has the request's one beam
    status, out = predict(srv, "c", {"signature_name": "caption",
                                     "inputs": {"image": [IMG] * 12, "beam_size": [3] * 12}})
    assert status == 200 and out["outputs"]["beam"] == [3] * 12


@pytest.mark.parametrize("body, got", [
    ({"instances": [{"image": IMG, "beam_size": 3}, {"image": IMG, "beam_size": 1}]}, "3 and 1"),
    ({"inputs": {"image": [IMG] * 2, "beam_size": [1, 8]}}, "1 and 8"),
    ({"inputs": {"image": [IMG] * 4, "beam_size": [2, 2, 4, 3]}}, "2, 4 and 3"),
    ({"inputs": {"image": [IMG] * 7, "beam_size": list(range(1, 8))}}, "1, 2, 3, 4, 5, ..."),
], ids=["rows", "columns", "three-values", "many-values"])
def test_a_request_with_several_beams_is_told_its_examples_must_use_the_same(start, tmp_path, body, got):
    save_beam_echo(str(tmp_path / "m" / "c" / "1"))
    srv = start([], tmp_path)
    status, err = predict(srv, "c", {"signature_name": "caption", **body})
    assert status == 400 and err["error"] == (
        "every example of one request must use the same beam_size (the model applies it to its whole call; send "
        f"examples with another beam_size in another request); received {got}."), err


def test_padded_outputs_are_not_merged_and_chunks_are_padded_alike(start, tmp_path):
    """A model pads an output to the longest row of its call: such requests are not merged (each gets what it
    would get alone), and a large one's chunks are padded to the longest row of the whole request."""
    save_padded_tokens(str(tmp_path / "m" / "t" / "1"))
    srv = start([], tmp_path, max_batch_size=4, batch_timeout=0.3)
    texts = ["a", "b c d e", "f", "g h"] * 2
    bodies = [{"instances": [t]} for t in texts]
    for answers in _concurrently(srv, "t", bodies):
        for text, (status, out) in zip(texts, answers):
            assert status == 200, out
            (row,) = out["predictions"]
            assert row["tokens"] == text.split() and row["batch"] == 1
    # 9 rows: run in chunks of 4, 4 and 1, joined as one call over all rows would give them
    many = ["a"] * 8 + ["a b c"]
    status, out = predict(srv, "t", {"inputs": {"text": many}})
    assert status == 200, out
    assert out["outputs"]["tokens"] == [["a", "", ""]] * 8 + [["a", "b", "c"]]
    assert out["outputs"]["batch"] == [4] * 8 + [1]


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


def test_a_models_own_assertion_reads_as_its_message_and_the_value():
    """A model's tf.debugging.assert_* (the forecast model's window) is worded for the client, not as
    TensorFlow's dump of tensor names."""
    from rnn_apps.serving.errors import tf_message

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def forecast(history):
        tf.debugging.assert_greater_equal(tf.shape(history)[1], 48,
                                          message="history needs at least 48 values per row (the model's window)")
        return history

    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        forecast(tf.zeros([1, 3]))
    assert tf_message(e.value) == "history needs at least 48 values per row (the model's window); received 3."
    # the server tries the input checks' own wording first: this assertion is not one of them
    from rnn_apps import graph_limits

    assert graph_limits.message(e.value) is None


def test_a_models_assertion_with_data_reads_as_its_message_and_the_data():
    """tf.debugging.Assert(ok, [message, data]) (the poetry model's acrostic check) reaches the client as
    "message: data", without TensorFlow's brackets."""
    from rnn_apps import graph_limits
    from rnn_apps.serving.errors import tf_message

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def generate(acrostic):
        n = tf.strings.length(acrostic[0], unit="UTF8_CHAR")
        with tf.control_dependencies([tf.debugging.Assert(
                n <= 4, ["The acrostic has more characters than the form has lines:", acrostic[0]])]):
            return tf.identity(acrostic)

    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        generate(tf.constant(["春夏秋冬夏"]))
    assert graph_limits.message(e.value) is None
    assert tf_message(e.value) == "The acrostic has more characters than the form has lines: 春夏秋冬夏"


def test_a_long_model_name_is_not_echoed_whole(server):
    status, err = predict(server, "m" * 70_000, {"instances": ["a"]})
    assert status == 404 and len(err["error"]) < 200 and err["error"].endswith("m…"), err


def test_a_graph_check_the_server_lets_through_reads_as_the_commands_words(tmp_path, start):
    """A value the server's check passes but the graph's refuses (an export whose graph checks a narrower
    range) gets the graph check's words, not TensorFlow's "assertion failed: [...]" wrapping."""
    import dataclasses

    from rnn_apps import graph_limits, limits

    narrower = dataclasses.replace(limits.APPS["poetry"], ranges={"top_p": limits.Range(0.5, 1, meaning="1 is off")})

    class Poem(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="top_p")])
        def serve(self, top_p):
            return {"p": graph_limits.checked(narrower, top_p=top_p)["top_p"]}

    path = str(tmp_path / "m" / "p" / "1")
    m = Poem()
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})
    mark_app(path, "poetry")
    srv = start([], tmp_path)
    status, err = predict(srv, "p", {"instances": [0.25]})
    assert status == 400 and err["error"] == "top_p must be in [0.5, 1] (1 is off); received 0.25.", err


def save_per_example(path, app=None):
    """Three inputs of one value per example (as the poem model's ``generate``), and how many rows each had."""

    class Gen(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                      tf.TensorSpec([None], tf.int64, name="seed"),
                                      tf.TensorSpec([None], tf.float32, name="temperature")])
        def generate(self, prompt, seed, temperature):
            n = tf.shape(prompt)[0]
            return {"prompts": tf.fill([n], n), "seeds": tf.fill([n], tf.shape(seed)[0])}

    m = Gen()
    tf.saved_model.save(m, path, signatures={"generate": m.generate})
    if app:
        mark_app(path, app)


@pytest.mark.parametrize("rows, odd, n, common", [
    ({"prompt": 2, "seed": 1, "temperature": 2}, "seed", "1 row", 2),  # was a 200: the lone seed spread over both
    ({"prompt": 2, "seed": 3, "temperature": 2}, "seed", "3 rows", 2),  # was the graph's "Incompatible shapes"
    ({"prompt": 1, "seed": 2, "temperature": 2}, "prompt", "1 row", 2),
])
def test_columnar_inputs_of_an_apps_model_must_have_one_row_per_example(start, tmp_path, rows, odd, n, common):
    save_per_example(str(tmp_path / "m" / "poem" / "1"), app="poetry")
    save_per_example(str(tmp_path / "m" / "other" / "1"))  # a model of no known app
    srv = start([], tmp_path)
    inputs = {"prompt": ["春"] * rows["prompt"], "seed": list(range(rows["seed"])),
              "temperature": [0.5] * rows["temperature"]}
    status, err = predict(srv, "poem", {"signature_name": "generate", "inputs": inputs})
    assert status == 400 and err["error"].startswith(f"input '{odd}' has {n} but input '"), err
    assert err["error"].endswith(f"' has {common}: every input of signature 'generate' with a batch axis holds one "
                                 f"row per example, so all of them must have the same number of rows."), err
    # as TF Serving, whose columnar format lets inputs differ in their first dimension: the graph gets them as sent
    status, out = predict(srv, "other", {"signature_name": "generate", "inputs": inputs})
    assert status == 200 and out["outputs"]["seeds"] == [rows["seed"]] * rows["prompt"], out
    same = {"prompt": ["春", "月"], "seed": [1, 2], "temperature": [0.5, 0.5]}
    assert predict(srv, "poem", {"signature_name": "generate", "inputs": same}) == (
        200, {"outputs": {"prompts": [2, 2], "seeds": [2, 2]}})


def test_row_format_needs_every_input_in_every_instance_alike(start, tmp_path):
    save_per_example(str(tmp_path / "m" / "poem" / "1"), app="poetry")
    srv = start([], tmp_path)
    row = {"prompt": "春", "seed": 1, "temperature": 0.5}
    status, err = predict(srv, "poem", {"signature_name": "generate", "instances": [row, {"prompt": "月", "seed": 2}]})
    assert status == 400 and err["error"].startswith("missing input(s): temperature"), err
    status, err = predict(srv, "poem", {"signature_name": "generate",
                                        "instances": [row, {**row, "seed": [1, 2]}]})
    assert status == 400 and "seed" in err["error"], err


def test_a_caption_beam_may_be_given_once_for_all_images(start, tmp_path):
    save_beam_echo(str(tmp_path / "m" / "c" / "1"))
    srv = start([], tmp_path)
    status, out = predict(srv, "c", {"signature_name": "caption", "inputs": {"image": [IMG] * 2, "beam_size": [3]}})
    assert status == 200 and out["outputs"]["beam"] == [3, 3], out
    status, err = predict(srv, "c", {"signature_name": "caption",
                                     "inputs": {"image": [IMG] * 3, "beam_size": [3, 3]}})
    assert status == 400 and "(beam_size may also be given once, for all of them)" in err["error"], err


def test_a_score_request_holds_at_most_32768_characters_in_all(start, tmp_path):
    """64 texts of 4,096 characters took longer than the default deadline (504): the texts of one request are
    bounded in all, before the model runs."""
    from rnn_apps import limits

    class Score(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def score(self, text):
            return {"characters": tf.strings.length(text, unit="UTF8_CHAR")}

    path = str(tmp_path / "m" / "poem" / "1")
    m = Score()
    tf.saved_model.save(m, path, signatures={"score": m.score})
    mark_app(path, "poetry")
    srv = start([], tmp_path)
    assert limits.APPS["poetry"].max_total_chars["text"] == 32_768
    status, out = predict(srv, "poem", {"signature_name": "score", "instances": ["月" * 4096] * 8})
    assert status == 200 and out["predictions"] == [4096] * 8, out
    status, err = predict(srv, "poem", {"signature_name": "score", "instances": ["月" * 4096] * 8 + ["月"]})
    assert (status, err["error"]) == (400, "text holds 32,769 characters in all its texts; poetry accepts at most "
                                           "32,768 in one request (send the texts in several requests)."), err
    # one text too long is named first: the total is about the request
    status, err = predict(srv, "poem", {"signature_name": "score", "instances": ["月" * 4097] * 9})
    assert status == 400 and err["error"].startswith("text[0] has 4,097 characters; at most 4,096"), err


def test_a_blank_text_to_score_is_refused_but_its_unknown_characters_are_answered(start, tmp_path):
    """An empty poem has no characters to score (the model answered bits_per_char 10.05 for ""); which characters
    of a text the model does not know is answered for any text (the server asks it of blank prompts)."""

    class Poem(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def score(self, text):
            return {"characters": tf.strings.length(text, unit="UTF8_CHAR")}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def unknown_characters(self, text):
            return {"unknown": tf.strings.regex_replace(text, "[春月 ]", "")}

    path = str(tmp_path / "m" / "poem" / "1")
    m = Poem()
    tf.saved_model.save(m, path, signatures={"score": m.score, "unknown_characters": m.unknown_characters})
    mark_app(path, "poetry")
    srv = start([], tmp_path)
    for texts, where in (([""], "text"), (["春月", " \u3000\n"], "text[1]")):
        status, err = predict(srv, "poem", {"signature_name": "score", "instances": texts})
        assert (status, err["error"]) == (400, f"{where} is empty: give a poem to score."), err
    assert predict(srv, "poem", {"signature_name": "score", "instances": ["春月"]}) == (200, {"predictions": [2]})
    assert predict(srv, "poem", {"signature_name": "unknown_characters", "instances": ["", " ", "春X"]}) == (
        200, {"predictions": ["", "", "X"]})


def test_every_answered_request_is_counted_once_with_its_status(start, tmp_path, monkeypatch):
    """Requests refused before they reach a model (403, 413) are counted, and one whose client hung up during
    the model call counts as 499, not as the 200 the model's answer would have been."""
    import socket

    from rnn_apps.serving import routes

    srv = start(["poetry"], tmp_path, max_body_bytes=1024)
    real, hang, entered, closed = routes.run_signature, threading.Event(), threading.Event(), threading.Event()

    def run_signature(sig, arrays):
        if hang.is_set():  # the hung-up request: the client leaves while the model runs
            hang.clear()
            entered.set()
            closed.wait(30)
            time.sleep(1.0)  # for the server's loop to see the connection closed
        return real(sig, arrays)

    monkeypatch.setattr(routes, "run_signature", run_signature)
    body = json.dumps({"instances": ["春"]}).encode()
    predict_path = "/v1/models/poetry:predict"
    assert raw_call(srv, "POST", predict_path, body)[0] == 200
    assert raw_call(srv, "POST", predict_path, body, {"Origin": "http://evil.example"})[0] == 403
    assert raw_call(srv, "GET", "/v1/models/poetry", b"", {"Host": "evil.example"})[0] == 403
    assert raw_call(srv, "POST", predict_path, b" " * 2048)[0] == 413  # from Content-Length, before the app
    assert raw_call(srv, "GET", "/v1/models/poetry/nothing")[0] == 404  # no API of TF Serving's
    hang.set()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"POST {predict_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
              + body)
    assert entered.wait(30)
    s.close()
    closed.set()
    counts = {}
    for _ in range(100):  # until the hung-up request is counted
        time.sleep(0.1)
        with urllib.request.urlopen(srv.base + "/monitoring/prometheus/metrics", timeout=30) as r:
            lines = [x for x in r.read().decode().splitlines() if x.startswith(":tensorflow:serving:request_count{")]
        counts = {x.rsplit(" ", 1)[0].split("{", 1)[1]: int(x.rsplit(" ", 1)[1]) for x in lines}
        if sum(counts.values()) == 6:
            break

    def key(name, api, status):
        return f'model_name="{name}",API="{api}",entrypoint="REST",status="{status}"}}'

    assert counts == {key("poetry", "predict", 200): 1, key("poetry", "predict", 403): 1,
                      key("poetry", "status", 403): 1, key("poetry", "predict", 413): 1,
                      key("", "", 404): 1, key("poetry", "predict", 499): 1}, counts
