"""The app limits checked inside the exported graphs (rnn_apps.graph_limits): a SavedModel loaded with plain
``tf.saved_model.load`` (as TF Serving loads it) refuses what the command refuses, in the same words.

Every app's tiny untrained model (``TINY_RESULTS`` of the contract tests) is exported twice: as shipped,
and with the graph checks switched off (what the export was before them). Out-of-limit inputs must raise
InvalidArgumentError whose message is the one :mod:`rnn_apps.limits` gives for the same input (computed
here with its check functions); in-limit inputs must give the same outputs with and without the checks.
"""

import base64
import threading

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from rnn_apps import graph_limits, limits  # noqa: E402
from rnn_apps.apps import base  # noqa: E402
from test_app_contract import TINY_RESULTS  # noqa: E402
from test_caption import gif_of, webp_of  # noqa: E402
from toys import png_4x3, png_header, predict  # noqa: E402

L = limits.APPS


def _example(text: str) -> bytes:
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature={"text": feature})).SerializeToString()


def _refusal(check, *args, **kwargs) -> str:
    """The message of a check of rnn_apps.limits (what the command and the server say)."""
    with pytest.raises(limits.LimitError) as e:
        check(*args, **kwargs)
    return str(e.value)


def _encoded(fmt, size=(5, 3)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format=fmt)
    return buf.getvalue()


def _batch(app, n):
    return _refusal(limits.check_batch, L[app], n)


def _text(app, name, text, index=None):
    return _refusal(limits.check_text, L[app], name, text, index)


def _number(app, name, value):
    return _refusal(limits.check_number, L[app], name, value)


# signature, inputs, the message of rnn_apps.limits for them
REFUSED = {
    "poetry": [
        ("serving_default", {"prompt": ["春"] * 65}, _batch("poetry", 65)),
        ("serving_default", {"prompt": ["春" * 201]}, _text("poetry", "prompt", "春" * 201)),
        ("generate", {"temperature": [float("nan")]}, _number("poetry", "temperature", float("nan"))),
        ("generate", {"temperature": [0.8, -1.0]}, _number("poetry", "temperature", -1.0)),
        ("generate", {"top_p": [0.0]}, _number("poetry", "top_p", 0.0)),
        # positive, but so small that the logits divided by it overflow float32
        ("generate", {"temperature": [2e-38]}, _number("poetry", "temperature", 2e-38)),
        ("generate", {"top_p": [5e-7]}, _number("poetry", "top_p", 5e-7)),
        ("generate", {"top_k": [200_000]}, _number("poetry", "top_k", 200_000)),
        ("generate", {"max_length": [600]}, _number("poetry", "max_length", 600)),
        # the sampler reads a seed modulo 2**63: -1 would give the poem of 2**63 - 1
        ("generate", {"seed": [5, -1]}, _number("poetry", "seed", -1)),
        ("score", {"text": ["春", "春" * 4097]}, _text("poetry", "text", "春" * 4097, 1)),
        ("score", {"text": ["春", " "]}, _text("poetry", "text", " ", 1)),  # an empty poem has nothing to score
        ("generate", {"acrostic": ["春夏", "，。"]}, _text("poetry", "acrostic", "，。", 1)),
        ("generate", {"form": ["wujue", "sonnet"]}, _text("poetry", "form", "sonnet", 1)),
        ("generate", {"form": ["free"]}, _text("poetry", "form", "free")),  # the command's name for ""
        ("generate", {"rhyme": ["Pingshui"]}, _text("poetry", "rhyme", "Pingshui")),
        ("generate", {"metre": ["'\\"]}, _text("poetry", "metre", "'\\")),
    ],
    "sentiment": [
        ("serving_default", {"text": ["good"] * 257}, _batch("sentiment", 257)),
        ("serving_default", {"text": ["good", " \u3000\n"]}, _text("sentiment", "text", " \u3000\n", 1)),
        ("serving_default", {"text": [b"bad \xff bytes"]}, str(limits.not_utf8("text"))),
        ("classify", {"inputs": [_example("")]}, _text("sentiment", "inputs", "")),
        ("serving_default", {"text": ["good", "good\x00 awful"]}, _text("sentiment", "text", "good\x00 awful", 1)),
        ("words", {"text": ["good"] * 300}, _batch("sentiment", 300)),
    ],
    "fill": [
        ("serving_default", {"text": ["床前明月光"]}, _text("fill", "text", "床前明月光")),
        ("serving_default", {"text": ["床□", "月" * 512 + "□"]}, _text("fill", "text", "月" * 512 + "□", 1)),
        ("serving_default", {"text": ["月" + "□" * 65]}, _text("fill", "text", "月" + "□" * 65)),
        ("serving_default", {"text": ["□_"]}, _text("fill", "text", "□_")),
        ("serving_default", {"text": ["床\x00□"]}, _text("fill", "text", "床\x00□")),
        ("serving_default", {"text": ["床□"] * 65}, _batch("fill", 65)),
        ("fill", {"text": ["床□"], "top_k": 60}, _number("fill", "top_k", 60)),
    ],
    "caption": [
        ("serving_default", {"image": [png_header(12000, 12000)]},
         _refusal(limits.check_megapixels, L["caption"], "image", 12000, 12000)),
        ("caption", {"image": [png_4x3(), png_header(6000, 5000)], "beam_size": [1, 1]},
         _refusal(limits.check_megapixels, L["caption"], "image", 6000, 5000, where="image[1]")),
        ("caption", {"image": [png_4x3()], "beam_size": [20_000]}, _number("caption", "beam_size", 20_000)),
        ("attention", {"image": [png_4x3()], "beam_size": [0]}, _number("caption", "beam_size", 0)),
        ("caption", {"image": [png_4x3()] * 17, "beam_size": [1] * 17}, _batch("caption", 17)),
        ("caption_pixels", {"pixels": np.zeros([1, 8, 8, 3], np.uint8), "beam_size": [17]},
         _number("caption", "beam_size", 17)),
        # what TensorFlow decodes: a GIF's largest frame (its screen says 1×1), every frame, a WebP's canvas
        ("serving_default", {"image": [png_4x3(), gif_of((8000, 8000))]},
         _refusal(limits.check_megapixels, L["caption"], "image", 8000, 8000, where="image[1]")),
        ("serving_default", {"image": [gif_of((4000, 4000), (4000, 4000))]},
         _refusal(limits.check_frames, L["caption"], "image", 2, 32_000_000)),
        ("serving_default", {"image": [webp_of(16383, 16383)]},
         _refusal(limits.check_megapixels, L["caption"], "image", 16383, 16383)),
    ],
    "forecast": [
        ("serving_default", {"history": [[1.0] * 6, [1.0] * 5 + [float("nan")]]},
         _number("forecast", "history", float("nan"))),
        ("serving_default", {"history": [[1.0] * 5 + [3e38]]}, _number("forecast", "history", 3e38)),
        ("serving_default", {"history": np.ones([1025, 6], np.float32)}, _batch("forecast", 1025)),
        ("serving_default", {"history": np.ones([1, 100_001], np.float32)},
         limits.too_many_values_message("history", 100_001, 100_000)),
    ],
    "translate": [
        ("serving_default", {"text": ["where is the station ?", "  "]}, _text("translate", "text", "  ", 1)),
        ("translate", {"text": ["where"], "beam_size": 17, "max_length": 0}, _number("translate", "beam_size", 17)),
        ("translate", {"text": ["where"], "beam_size": 1, "max_length": 161}, _number("translate", "max_length", 161)),
        ("attention", {"text": ["w" * 100_001], "beam_size": 1}, _text("translate", "text", "w" * 100_001)),
    ],
}

# signature -> inputs within the limits (the defaults of ``_call`` fill in the rest)
ACCEPTED = {
    "poetry": [("generate", {"prompt": ["明月", ""], "seed": [1, 2]}),
               # the smallest positive temperature and top_p: 1e-6 as float32 holds it (9.99999997e-07)
               ("generate", {"prompt": ["明", "月"], "temperature": [1e-6, 0.0], "top_p": [1e-6, 1e-6], "seed": [1, 2]}),
               ("generate", {"prompt": ["明", "月"], "acrostic": ["", "月，"], "form": ["", "wujue"], "seed": [1, 2]}),
               # every option of form, rhyme and metre that the limits accept
               ("generate", {"prompt": ["明"] * 6, "form": ["", "auto", "wujue", "qijue", "wulv", "qilv"],
                             "rhyme": ["", "pingshui", "xinyun", "none", "", "pingshui"],
                             "metre": ["", "strict", "loose", "none", "strict", ""], "seed": [1, 2, 3, 4, 5, 6]}),
               ("score", {"text": ["床前明月光，疑是地上霜。"]}),
               ("unknown_characters", {"text": ["明月", "X", "", " "]})],  # blank prompts are asked this
    "sentiment": [("serving_default", {"text": ["good film", "the bad"]}), ("classify", {"inputs": [_example("good")]}),
                  ("words", {"text": ["the film", "good"]})],
    "fill": [("serving_default", {"text": ["床前□月光", "□前明月光，疑是地上□。"]}),
             ("fill", {"text": ["明□"], "top_k": 3})],
    "caption": [("serving_default", {"image": [png_4x3()]}),
                ("serving_default", {"image": [_encoded("GIF"), _encoded("WEBP"), _encoded("BMP")]}),
                ("caption", {"image": [png_4x3(), png_4x3()], "beam_size": [2, 2]}),
                ("caption_pixels", {"pixels": np.zeros([2, 8, 8, 3], np.uint8), "beam_size": [1, 1]})],
    "forecast": [("serving_default", {"history": np.arange(16, dtype=np.float32).reshape(2, 8)})],
    "translate": [("translate", {"text": ["where is the station ?"], "beam_size": 2, "max_length": 0}),
                  ("tokenize", {"text": ["where", ""]})],
}

DEFAULTS = {"poetry": {"generate": {"form": "", "acrostic": "", "temperature": 0.8, "top_k": 0, "top_p": 0.9,
                                    "seed": 1, "max_length": 16, "rhyme": "", "metre": "", "prompt": "明"}}}


def _call(loaded, signature, inputs):
    fn = loaded.signatures[signature]
    specs = fn.structured_input_signature[1]
    given = dict(inputs)
    rows = max((len(v) for v in given.values() if np.ndim(v) >= 1), default=1)
    for name, value in DEFAULTS.get(loaded.app, {}).get(signature, {}).items():
        given.setdefault(name, [value] * rows)
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v, specs[k].dtype) for k, v in given.items()}).items()}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """app -> (the export with its graph checks, the same model exported without them)."""
    root = tmp_path_factory.mktemp("graph_limits")
    out = {}
    for app in sorted(TINY_RESULTS):
        fields, kwargs = TINY_RESULTS[app]()
        checked = base.TrainResult(fields, app=app).export(str(root / "checked" / app), **kwargs)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(graph_limits, "checked", lambda lim, check_batch=True, **inputs: dict(inputs))
            plain = base.TrainResult(fields, app=app).export(str(root / "plain" / app), **kwargs)
        out[app] = (checked, plain)
    return out


_LOADED = {}


def _loaded(exports, app, which=0):
    """The export (0: with the checks, 1: without), loaded once."""
    if (app, which) not in _LOADED:
        loaded = tf.saved_model.load(exports[app][which])
        loaded.app = app
        _LOADED[app, which] = loaded
    return _LOADED[app, which]


@pytest.mark.parametrize("app, case", [(app, i) for app in sorted(REFUSED) for i in range(len(REFUSED[app]))])
def test_the_graph_refuses_what_the_command_refuses_in_its_words(exports, app, case):
    signature, inputs, words = REFUSED[app][case]
    loaded = _loaded(exports, app)
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        _call(loaded, signature, inputs)
    assert graph_limits.message(e.value) == words


@pytest.mark.parametrize("app", sorted(ACCEPTED))
def test_inputs_within_the_limits_give_what_they_gave_without_the_checks(exports, app):
    checked, plain = _loaded(exports, app), _loaded(exports, app, 1)
    for signature, inputs in ACCEPTED[app]:
        got, before = _call(checked, signature, inputs), _call(plain, signature, inputs)
        assert sorted(got) == sorted(before)
        for k in got:
            np.testing.assert_array_equal(got[k], before[k], err_msg=f"{app} {signature} {k}")


def test_the_options_accepted_are_the_poem_models():
    from rnn_apps.apps.poetry import constants, prosody

    choices = L["poetry"].choices
    assert set(choices["form"].values) | {""} == set(constants.FORMS) | {constants.AUTO_FORM}
    assert choices["rhyme"].values == prosody.RHYMES and choices["metre"].values == prosody.METRES
    assert all(c.blank for c in choices.values())  # "" means free form, or the default rhyme and metre
    assert prosody.DEFAULT_RHYME in choices["rhyme"].blank and prosody.DEFAULT_METRE in choices["metre"].blank


def test_signatures_keep_their_inputs_and_outputs(exports):
    for app in exports:
        a, b = _loaded(exports, app), _loaded(exports, app, 1)
        assert sorted(a.signatures) == sorted(b.signatures)
        for name in a.signatures:
            assert a.signatures[name].structured_input_signature == b.signatures[name].structured_input_signature
            assert a.signatures[name].structured_outputs == b.signatures[name].structured_outputs


def _graph_words(images, lim=L["caption"]):
    """The words of the graph's check of encoded images (None: passed), run as a SavedModel runs it."""
    check = tf.function(lambda image: graph_limits.checked(lim, image=image)["image"],
                        input_signature=[tf.TensorSpec([None], tf.string)])
    try:
        check(tf.constant(images))
    except tf.errors.InvalidArgumentError as e:
        return graph_limits.message(e)
    return None


def _server_words(images, lim=L["caption"]):
    """What rnn-apps serve says of the same images (None: passed), with the command's header reader."""
    from rnn_apps.serving.checks import check_request

    try:
        check_request(lim, {"image": np.array(images, dtype=object)})
    except limits.LimitError as e:
        return str(e)
    return None


def _webp(chunk: bytes, width: int, height: int) -> bytes:
    """A WebP of another kind ("VP8 ": lossy; "VP8X": extended, here with EXIF) whose header says width × height."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    if chunk == b"VP8X":
        exif = Image.Exif()
        exif[0x0112] = 1
        Image.new("RGB", (1, 1)).save(buf, format="WEBP", exif=exif.tobytes())
    else:
        Image.new("RGB", (1, 1)).save(buf, format="WEBP")
    data = bytearray(buf.getvalue())
    assert data[12:16] == chunk
    if chunk == b"VP8X":
        data[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    else:
        data[26:30] = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return bytes(data)


@pytest.mark.parametrize("images", [
    [png_4x3(), gif_of((8000, 8000))],  # the screen says 1×1: the frame is what TensorFlow decodes
    [gif_of((4000, 4000), (4000, 4000))],  # TensorFlow decodes every frame
    [gif_of((5, 5), (10, 7000), (6000, 5))],  # the largest width and height, of different frames
    ["webp-VP8L"], ["webp-VP8 "], ["webp-VP8X"],
    [png_4x3(), _encoded("GIF"), _encoded("WEBP"), _encoded("BMP"), _encoded("JPEG"), gif_of((4000, 3000))],
], ids=["gif-frame", "gif-frames", "gif-largest", "webp-lossless", "webp-lossy", "webp-extended", "accepted"])
def test_the_graph_measures_images_as_the_server_does(images):
    images = [{"webp-VP8L": webp_of(16383, 16383), "webp-VP8 ": _webp(b"VP8 ", 16383, 16383),
               "webp-VP8X": _webp(b"VP8X", 9000, 9000)}.get(x, x) if isinstance(x, str) else x for x in images]
    words = _server_words(images)
    assert (words is None) == (images[-1] == gif_of((4000, 3000)))
    assert _graph_words(images) == words


def test_the_graph_refuses_a_gif_of_too_many_blocks_as_the_server_does(monkeypatch):
    monkeypatch.setattr(limits, "MAX_GIF_BLOCKS", 40)
    choppy = gif_of((8, 8), data=b"\x01\x00\x02\x00\x00" * 20 + b"\x00")  # pieces of changing lengths
    smooth = gif_of((64, 64), data=(b"\xff" + b"\0" * 255) * 3000 + b"\x00")  # one run of full pieces
    assert _server_words([smooth, choppy]) == limits.gif_blocks_message("image[1]", 40)
    assert _graph_words([smooth, choppy]) == limits.gif_blocks_message("image[1]", 40)
    assert _server_words([smooth]) is None and _graph_words([smooth]) is None


def test_the_graph_walks_a_gifs_blocks_as_the_header_reader_does():
    """GIFs damaged at random: the graph finds the frames the command's reader finds (where it reads them)."""
    import io
    import random

    from PIL import Image

    from rnn_apps.apps.caption.images import CaptionError, image_header

    buf = io.BytesIO()
    frames = [Image.new("P", (9 + 5 * k, 20 - 3 * k), k) for k in range(4)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], comment=b"hi", loop=0)
    bases = [buf.getvalue(), gif_of((40, 30), (7, 90)),
             gif_of((3, 3), data=(b"\xff" + b"\1" * 255) * 3 + b"\x05abcde\x00")]
    rng = random.Random(5)
    gifs, expected = [], []
    for _ in range(300):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(10, len(data))] = rng.choice([0, 0x21, 0x2C, 0x3B, 0x80, 0xFF, rng.randrange(256)])
        data = bytes(data[:rng.randint(13, len(data))] if rng.random() < 0.3 else data)
        try:
            expected.append(list(image_header(data)[1:]))
        except CaptionError:
            continue
        gifs.append(data)
    assert len(gifs) > 100
    measured = tf.function(graph_limits._image_size)(tf.constant(gifs))
    assert np.stack([m.numpy() for m in measured[:5]], axis=1).tolist() == expected


@pytest.mark.parametrize("value, text", [(0.1, "0.1"), (-1.0, "-1.0"), (20000.0, "20000.0"), (1.5e-05, "1.5e-05"),
                                         (float("inf"), "inf"), (1e20, "1e+20"), (12.25, "12.25")])
def test_numbers_are_written_as_python_writes_the_number_typed(value, text):
    assert str(value) == text
    assert graph_limits._formatted(tf.constant(value, tf.float32), "").numpy().decode() == text


@pytest.mark.parametrize("n", [0, 7, 999, 1000, 65_536, 12_345_678, 2**62])
def test_thousands_are_grouped_as_python_groups_them(n):
    assert graph_limits._formatted(tf.constant(n, tf.int64), ",").numpy().decode() == f"{n:,}"


def test_rnn_apps_serve_still_refuses_first_with_a_400(exports, tmp_path):
    """The server checks in Python before the model runs; the graph's checks change nothing there. (The
    tiny models do not know the characters and words of the exports' warm-up requests: no warm-up.)"""
    import shutil

    from rnn_apps.serve import make_server

    for app in ("poetry", "sentiment", "fill", "caption", "forecast"):
        shutil.copytree(exports[app][0], tmp_path / "m" / app / "1")
    srv = make_server(str(tmp_path / "m"), host="127.0.0.1", port=0, poll_seconds=0, warmup=False)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.port}"
    try:
        cases = [
            ("poetry", {"instances": ["春"] * 65}, _batch("poetry", 65)),
            ("poetry", {"signature_name": "generate", "instances": [
                {**DEFAULTS["poetry"]["generate"], "temperature": -1.0}]}, _number("poetry", "temperature", -1.0)),
            ("poetry", {"signature_name": "generate", "instances": [
                {**DEFAULTS["poetry"]["generate"], "form": "sonnet"}]}, _text("poetry", "form", "sonnet")),
            ("sentiment", {"instances": ["good", "  "]}, _text("sentiment", "text", "  ", 1)),
            ("fill", {"instances": ["月" * 512 + "□"]}, _text("fill", "text", "月" * 512 + "□")),
            ("fill", {"signature_name": "fill", "inputs": {"text": ["床□"], "top_k": 60}},
             _number("fill", "top_k", 60)),
            ("caption", {"instances": [{"b64": base64.b64encode(
                png_header(12000, 12000) + b"\0" * 12 + b"IEND" + b"\0" * 4).decode()}]},  # a whole PNG's end
             _refusal(limits.check_megapixels, L["caption"], "image", 12000, 12000)),
            ("caption", {"signature_name": "caption", "inputs": {
                "image": [{"b64": base64.b64encode(png_4x3()).decode()}], "beam_size": [20_000]}},
             _number("caption", "beam_size", 20_000)),
            ("forecast", {"instances": [[1.0] * 5 + [float("nan")]]}, None),
        ]
        for model, body, words in cases:
            status, err = predict(srv, model, body)
            assert status == 400, (model, body, err)
            if words is not None:
                assert err["error"] == words, (model, err)
    finally:
        srv.shutdown()
        t.join(10)


def test_merged_batches_and_chunks_stay_within_the_models_examples_per_request():
    """The graph refuses more than its app's max_batch: the server merges and cuts requests within it."""
    from rnn_apps.serving.batching import Deadline, Scheduler, SchedulerConfig

    seen = []
    sched = Scheduler(SchedulerConfig(max_batch_size=64, batch_timeout=0.2, light_rows=64, light_bytes=1 << 20),
                      on_batch=lambda model, n: seen.append(n))

    def run(a):
        return {"y": a["x"] * 2}

    threads = [threading.Thread(target=lambda: sched.run(("m",), "m", run, {"x": np.arange(3)}, Deadline(60),
                                                         max_rows=4)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    out = sched.run(("m",), "m", run, {"x": np.arange(10)}, Deadline(60), large=True, max_rows=4)
    np.testing.assert_array_equal(out["y"], np.arange(10) * 2)
    assert seen and max(seen) <= 4, seen
