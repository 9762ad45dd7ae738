"""The captioning app on tiny models: scenes, parsing, attention, loaders, export, beam search, resume, CLI."""

import io
import json
import os
import struct
import warnings
import subprocess
import sys
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.apps.caption import data as cdata
from rnn_apps.apps.caption import scenes as sc
from rnn_apps.apps.caption.images import CaptionError, image_header, prepare_image
from rnn_apps.cli import cli

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
TINY = dict(image_size=32, filters=(4, 8), feature_dim=8, units=16, embedding_dim=8, attention_units=8, batch_size=8,
            steps_per_epoch=3, val_count=16, max_shapes=1, seed=3)


def _png_bytes(pixels) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming a size (no pixel data needed to test the header check)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def gif_of(*frames, screen=(1, 1), data=b"\x02\x4c\x01\x00") -> bytes:
    """A GIF whose screen says ``screen`` and whose frames have the sizes ``frames``, each with the pieces of
    ``data`` (by default one pixel's: all a header reader needs; TensorFlow decodes every frame, at the largest
    width and height of them all, whatever the screen says). Also used by the serving tests."""
    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\0" * 6  # a two-colour table
    for w, h in frames:
        out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension, as animations have
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02" + data  # LZW code size 2, then the data
    return out + b";"


def webp_of(width: int, height: int) -> bytes:
    """A lossless WebP whose header says ``width`` × ``height`` (a tiny image's, patched: the header is what is
    read before decoding). Also used by the serving tests."""
    from PIL import Image, features

    if not features.check("webp"):
        pytest.skip("Pillow without WebP")
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8L"
    struct.pack_into("<I", data, 21, (width - 1) | (height - 1) << 14)
    return bytes(data)


# ------------------------------------------------------------------------------------------ scenes


def test_scenes_are_deterministic_and_every_phrasing_parses_back():
    a = sc.generate_scenes(40, 5)
    b = sc.generate_scenes(40, 5)
    assert all((x.image == y.image).all() and x.shapes == y.shapes for x, y in zip(a, b))
    assert any((x.image != y.image).any() for x, y in zip(a, sc.generate_scenes(40, 6)))
    assert {len(s.shapes) for s in a} == {1, 2, 3}
    for s in a:
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        xs = [o.x for o in s.shapes]
        assert xs == sorted(xs)
        caps = s.captions()
        assert len(caps) == (3 if len(s.shapes) == 1 else 6) and len(set(caps)) == len(caps)
        for c in caps:
            assert sc.parse_caption(c) is not None, c
            assert sc.caption_matches(c, s), c
            assert sc.caption_matches(c.upper() + ".", s)
    images, captions, scenes = sc.scene_batch(16, [1, 1, 0])
    assert images.shape == (16, 64, 64, 3) and all(sc.caption_matches(c, s) for c, s in zip(captions, scenes))


def test_exact_match_reads_facts_not_strings():
    facts = sc.Facts((("small", "red", "circle"), ("large", "blue", "square"), ("small", "green", "triangle")),
                     ("left", "above"))
    fwd = "a small red circle to the left of a large blue square above a small green triangle"
    rev = "a picture of a small green triangle below a large blue square to the right of a small red circle"
    assert sc.parse_caption(fwd) == facts and sc.facts_match(sc.parse_caption(rev), facts)
    assert sc.render_caption(facts) == fwd
    for wrong in (
        "a small red circle to the left of a large blue square below a small green triangle",  # relation
        "a small red circle to the left of a large blue square above a large green triangle",  # size
        "a small red circle to the left of a large blue square",  # a shape missing
        "a small green triangle above a large blue square to the left of a small red circle",  # wrong order
    ):
        assert not sc.facts_match(sc.parse_caption(wrong), facts), wrong
    for bad in ("", "a small red", "a tiny red circle", "a small red circle next to a large blue square",
                "there is", "a small red circle to the left of"):
        assert sc.parse_caption(bad) is None, bad
    with pytest.raises(ValueError, match="max_shapes"):
        sc.generate_scenes(1, 0, {"max_shapes": 5})


def test_scene_rules_hold_for_four_shapes():
    for s in sc.generate_scenes(30, 11, {"max_shapes": 4, "min_shapes": 4}):
        assert len(s.shapes) == 4
        for a, b in zip(s.shapes, s.shapes[1:]):
            assert b.x - a.x >= 5 and abs(abs(b.x - a.x) - abs(b.y - a.y)) >= 6


# ------------------------------------------------------------------------------------------ attention layer


def test_visual_attention_matches_numpy_reference():
    import keras

    from rnn_apps.layers.visual_attention import VisualAttention

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    query = rng.normal(size=(2, 6)).astype("float32")
    mask = np.ones((2, 3, 4), bool)
    mask[1, 0, :] = False
    for gate in (False, True):
        layer = VisualAttention(7, gate=gate)
        ctx, w = layer(feats, query, mask=mask)
        ctx, w = np.asarray(ctx), np.asarray(w)
        Wa, b, Wh, v = (np.asarray(x) for x in (layer.feature_kernel, layer.bias, layer.query_kernel, layer.score_vector))
        a = feats.reshape(2, 12, 5)
        e = (np.tanh(a @ Wa + b + (query @ Wh)[:, None, :]) @ v)[..., 0]
        e = np.where(mask.reshape(2, 12), e, -np.inf)
        alpha = np.exp(e - e.max(1, keepdims=True))
        alpha /= alpha.sum(1, keepdims=True)
        z = (alpha[:, :, None] * a).sum(1)
        if gate:
            z = z / (1 + np.exp(-(query @ np.asarray(layer.gate_kernel) + np.asarray(layer.gate_bias))))
        np.testing.assert_allclose(w, alpha.reshape(2, 3, 4), atol=1e-5)
        np.testing.assert_allclose(ctx, z, atol=1e-5)
        assert np.allclose(w.sum((1, 2)), 1) and (w[1, 0] == 0).all()
        keys = layer.project_keys(feats)
        np.testing.assert_allclose(np.asarray(layer(feats, query, keys=keys, mask=mask)[0]), ctx, atol=1e-6)
        clone = VisualAttention.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(VisualAttention(3, gate=True)))
    assert restored.units == 3 and restored.gate
    with pytest.raises(ValueError, match="rank 3"):
        VisualAttention(4)(np.zeros((2, 5), "float32"), query)
    with pytest.raises(ValueError, match="positive integer"):
        VisualAttention(0)



def test_attention_decoder_teacher_forcing_equals_its_steps():
    """Training runs the output layer once over all steps; decoding calls ``step`` per word. Both must give
    the same logits, for both output layers, and the gradient must reach every weight."""
    import tensorflow as tf

    from rnn_apps.apps.caption.model import AttentionDecoder

    rng = np.random.default_rng(1)
    feats = rng.normal(size=(3, 6, 5)).astype("float32")
    ids = rng.integers(0, 11, size=(3, 4)).astype("int32")
    for output in ("direct", "tied"):
        dec = AttentionDecoder(11, embedding_dim=4, units=7, attention_units=3, dropout=0.3, output=output)
        forced = np.asarray(dec(feats, ids))
        memory, states = dec.start(feats)
        stepped = []
        for t in range(ids.shape[1]):
            logits, states, _ = dec.step(ids[:, t], states, memory)
            stepped.append(np.asarray(logits))
        np.testing.assert_allclose(forced, np.stack(stepped, 1), atol=1e-6)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(dec(feats, ids, training=True) ** 2)
        grads = tape.gradient(loss, dec.trainable_weights)
        assert all(g is not None and np.abs(np.asarray(tf.convert_to_tensor(g))).sum() > 0 for g in grads)

def test_coordinate_channels():
    from rnn_apps.apps.caption.model import CoordinateChannels

    out = np.asarray(CoordinateChannels()(np.zeros((1, 3, 5, 2), "float32")))
    assert out.shape == (1, 3, 5, 4)
    np.testing.assert_allclose(out[0, 0, :, 2], [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(out[0, :, 0, 3], [-1, 0, 1])


# ------------------------------------------------------------------------------------------ data


def test_bleu_and_tokens():
    from rnn_apps.apps.caption.evaluate import corpus_bleu

    refs = [[["a", "small", "red", "circle"]], [["the", "cat", "sat", "on", "the", "mat"]]]
    assert corpus_bleu(refs, [r[0] for r in refs])["bleu4"] == pytest.approx(1.0)
    b = corpus_bleu([[["the", "cat", "is", "on", "the", "mat"], ["there", "is", "a", "cat", "on", "the", "mat"]]],
                    [["the", "the", "the", "the", "the", "the", "the"]])
    assert b["bleu1"] == pytest.approx(2 / 7)  # Papineni et al.'s clipped-count example
    assert corpus_bleu(refs, [["a"], ["mat"]])["bleu1"] < 0.1  # brevity penalty
    assert cdata.tokenize("A dog's ball, in the PARK!") == ["a", "dog's", "ball", "in", "the", "park"]
    from rnn_apps.vocab import Vocabulary

    vocab = Vocabulary(["a", "dog"])
    x, y, w = cdata.encode_captions(["A dog.", "dog a dog a dog"], vocab, 4)
    assert x.tolist() == [[2, 4, 5, 0], [2, 5, 4, 5]] and y.tolist() == [[4, 5, 3, 0], [5, 4, 5, 3]]
    assert w.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def _images(folder, names):
    os.makedirs(folder, exist_ok=True)
    for i, n in enumerate(names):
        with open(os.path.join(folder, n), "wb") as f:
            f.write(_png_bytes(np.full((6, 6, 3), 40 * i, np.uint8)))


def test_flickr_loaders(tmp_path):
    root = tmp_path / "f8k"
    _images(root / "Flicker8k_Dataset", ["1.jpg", "2.jpg", "3.jpg"])
    (root / "Flickr8k.token.txt").write_text(
        "1.jpg#0\tA dog runs .\n1.jpg#1\tA brown dog runs fast .\n2.jpg#0\tTwo kids play .\n"
        "3.jpg#0\tA red car .\n4.jpg#0\tMissing image .\n", encoding="utf-8")
    (root / "Flickr_8k.trainImages.txt").write_text("1.jpg\n2.jpg\n")
    (root / "Flickr_8k.devImages.txt").write_text("3.jpg\n")
    kind, rows = cdata.load_caption_set(str(root))
    assert kind == "flickr" and [os.path.basename(r.path) for r in rows] == ["1.jpg", "2.jpg", "3.jpg"]
    assert rows[0].captions == ["A dog runs .", "A brown dog runs fast ."]
    train, val = cdata.split_rows(rows, 0.5, 1)
    assert [os.path.basename(r.path) for r in val] == ["3.jpg"] and len(train) == 2
    # Kaggle's captions.txt (CSV with a header; commas inside captions)
    k = tmp_path / "kaggle"
    _images(k / "Images", ["a.jpg", "b.jpg"])
    (k / "captions.txt").write_text('image,caption\na.jpg,"A man, smiling ."\na.jpg,A man .\nb.jpg,A tree .\n')
    _, rows = cdata.load_caption_set(str(k))
    assert rows[0].captions == ["A man, smiling .", "A man ."] and len(rows) == 2
    train, val = cdata.split_rows(rows, 0.5, 1)
    assert len(train) == 1 and len(val) == 1
    # Flickr30k's results.csv
    f30 = tmp_path / "f30k"
    _images(f30 / "flickr30k_images", ["x.jpg"])
    (f30 / "results.csv").write_text("image_name| comment_number| comment\nx.jpg| 0| A cat .\nx.jpg| 1| A cat sleeps .\n")
    assert cdata.load_caption_set(str(f30))[1][0].captions == ["A cat .", "A cat sleeps ."]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Flickr8k.token.txt").write_text("no tab here\n")
    with pytest.raises(cdata.CaptionDataError, match="line 1"):
        cdata.load_caption_set(str(bad))
    with pytest.raises(cdata.CaptionDataError, match="neither"):
        cdata.load_caption_set(str(tmp_path))


def test_coco_loader(tmp_path):
    root = tmp_path / "coco"
    _images(root / "val2017", ["000000000001.jpg", "000000000002.jpg"])
    (root / "annotations").mkdir()
    ann = {"images": [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000002.jpg"},
                      {"id": 3, "file_name": "gone.jpg"}],
           "annotations": [{"image_id": 1, "caption": "A plate of food."}, {"image_id": 2, "caption": "A bus."},
                           {"image_id": 1, "caption": "Food on a plate. "}, {"image_id": 3, "caption": "Gone."}]}
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(ann))
    kind, rows = cdata.load_caption_set(str(root))
    assert kind == "coco" and len(rows) == 2
    assert rows[0].captions == ["A plate of food.", "Food on a plate."] and rows[0].split == "val"
    (root / "annotations" / "captions_val2017.json").write_text("{not json")
    with pytest.raises(cdata.CaptionDataError, match="not a COCO captions file"):
        cdata.load_coco(str(root))


def test_image_headers_and_limits(monkeypatch):
    from PIL import Image

    def encoded(fmt, size=(7, 5)):
        buf = io.BytesIO()
        Image.new("RGB", size, (200, 10, 10)).save(buf, format=fmt)
        return buf.getvalue()

    from PIL import features

    for fmt in ("PNG", "JPEG", "GIF", "BMP") + (("WEBP",) if features.check("webp") else ()):
        assert image_header(encoded(fmt))[:3] == (fmt, 7, 5)
    if features.check("webp"):
        buf = io.BytesIO()
        Image.new("RGB", (300, 200)).save(buf, format="WEBP", lossless=True)
        assert image_header(buf.getvalue())[:3] == ("WEBP", 300, 200)
    for data, msg in ((b"", "empty"), (b"hello world, not an image", "not a PNG"), (b"\xff\xd8\xff\xe0\x00", "JPEG"),
                      (_png_header_only(10_000, 10_000) + b"\0" * 12 + b"IEND" + b"\0" * 4, "megapixels"),
                      (_png_bytes(np.zeros((9, 9, 3)))[:-12], "IEND"), (_png_header_only(0, 3) + b"IEND", "0×3")):
        with pytest.raises(CaptionError, match=msg):
            prepare_image(data, "x.png")
    assert prepare_image(_png_bytes(np.zeros((1, 1, 3))), "one.png").notes  # a 1×1 image: a note, no error
    from rnn_apps.apps.caption import images

    # a 30-megapixel photo, over the server's 25: the command reads it at a reduced scale (it was refused as a
    # GIF's frames), with the real limits
    camera = prepare_image(encoded("JPEG", (6000, 5000)), "camera.jpg")
    assert camera.format == "PNG" and camera.notes == ["camera.jpg: 6,000×5,000 pixels; read at a reduced scale."]
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    monkeypatch.setattr(images, "DOWNSCALE_TO", 16)
    big = prepare_image(encoded("JPEG", (100, 80)), "big.jpg")
    assert big.format == "PNG" and image_header(big.data)[1:3] == (16, 13) and "reduced scale" in big.notes[0]
    # A JPEG whose header claims 65000×65000 pixels: refused in the project's words, before Pillow opens it.
    huge = bytearray(encoded("JPEG", (16, 16)))
    sof = huge.find(b"\xff\xc0")
    struct.pack_into(">HH", huge, sof + 5, 65000, 65000)
    with pytest.raises(CaptionError, match=r"huge.jpg: the image is 65,000×65,000 pixels \(4225 megapixels\); JPEG "
                                           r"images above 150 megapixels are refused"):
        prepare_image(bytes(huge), "huge.jpg")
    # Between Pillow's warning (89 megapixels) and the bound: read at a reduced scale, no warning.
    monkeypatch.setattr(images, "MAX_JPEG_PIXELS", 10_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 100×80 is above Pillow's warning, below its error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_image(encoded("JPEG", (100, 80)), "big.jpg").format == "PNG"


def test_a_gif_is_measured_by_the_frames_tensorflow_decodes():
    """TensorFlow decodes every frame of a GIF (the model keeps the first), at the largest width and height of its
    frames, whatever its screen says: the header reader measures that, not the screen."""
    from PIL import Image

    tf = pytest.importorskip("tensorflow")

    def frames(size, colour):  # a frame's blocks, as Pillow writes them
        buf = io.BytesIO()
        Image.new("P", size, colour).save(buf, format="GIF")
        d = buf.getvalue()
        return d[13 + (3 << ((d[10] & 7) + 1) if d[10] & 0x80 else 13):-1]

    head = gif_of()[:-1]  # a 1×1 screen
    for gif, frame in ((head + frames((40, 30), 1) + b";", (40, 30)),
                       (head + frames((4, 4), 1) + frames((50, 60), 2) + frames((7, 90), 3) + b";", (50, 90)),
                       (head + b"\x21\xfe\x02hi\x00" + frames((9, 5), 1) + frames((30, 3), 2), (30, 5))):
        decoded = tf.io.decode_gif(gif).shape
        header = image_header(gif)
        assert (header.width, header.height, header.frames) == (frame[0], frame[1], decoded[0])
        assert decoded[1:3] == (frame[1], frame[0])
        assert tf.io.decode_image(gif, channels=3, expand_animations=False).shape[:2] == (frame[1], frame[0])
    assert image_header(gif_of((10, 20), (30, 5))).frame_pixels == 10 * 20 + 30 * 5


@pytest.mark.parametrize("data, words", [
    # the screen says 1×1; the frame is 8000×8000 (what TensorFlow would decode: 64 megapixels)
    (gif_of((8000, 8000)), r"x.gif: the image is 8,000×8,000 pixels \(64 megapixels\); images above 25"),
    # each frame within the limit; giflib holds both in memory
    (gif_of((4000, 4000), (4000, 4000)), r"x.gif: the GIF's 2 frames hold 32 megapixels in all, and every frame is "
                                         r"decoded; images above 25 megapixels in all their frames are refused"),
    (gif_of((40, 30))[:30], r"x.gif: truncated GIF \(no whole frame\); the file is cut short or damaged\."),
    (gif_of()[:-1] + b"\x00" + gif_of((40, 30))[19:], r"x.gif: corrupt GIF \(no frame before its end\); give a PNG"),
    (gif_of((40, 30))[:12], r"x.gif: truncated GIF; the file is cut short"),
], ids=["frame", "frames", "cut-frame", "no-frame", "cut-screen"])
def test_huge_or_cut_gifs_are_refused_from_their_headers(data, words):
    with pytest.raises(CaptionError, match=words):
        prepare_image(data, "x.gif")


def test_a_huge_webp_is_refused_from_its_header():
    assert image_header(webp_of(16383, 16383))[:3] == ("WEBP", 16383, 16383)
    with pytest.raises(CaptionError, match=r"x.webp: the image is 16,383×16,383 pixels \(268 megapixels\)"):
        prepare_image(webp_of(16383, 16383), "x.webp")
    assert prepare_image(webp_of(300, 200), "x.webp").width == 300


def test_a_gif_of_too_many_blocks_is_refused_but_runs_of_full_pieces_count_once(monkeypatch):
    """Finding a GIF's frames means walking its blocks (here and in the graph, one at a time): they are bounded.
    Encoders cut data into 255-byte pieces; a run of pieces of one length counts as one block."""
    from rnn_apps import limits

    monkeypatch.setattr(limits, "MAX_GIF_BLOCKS", 40)
    full = (b"\xff" + b"\0" * 255) * 5000 + b"\x07" + b"\0" * 7 + b"\x00"  # 1.3 MB: a run, a short piece, the end
    header = prepare_image(gif_of((64, 64), data=full), "x.gif")
    assert (header.width, header.height) == (64, 64) and image_header(gif_of((64, 64), data=full)).blocks == 7
    assert image_header(gif_of(*[(8, 8)] * 5)).blocks == 5 * 6  # an extension and a frame: 3 blocks each
    choppy = b"\x01\x00\x02\x00\x00" * 20 + b"\x00"  # pieces of changing lengths: each counts
    with pytest.raises(CaptionError, match="x.gif: the GIF holds more than 40 blocks"):
        prepare_image(gif_of((8, 8), data=choppy), "x.gif")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_photo_is_turned_upright_as_its_exif_orientation_says(fmt):
    """Phones store the pixels sideways and set EXIF orientation 6; the model must see what a viewer shows."""
    from PIL import Image

    upright = np.zeros((40, 60, 3), np.uint8)  # 60 wide, 40 tall: red on top, blue below
    upright[:20, :, 0] = 255
    upright[20:, :, 2] = 255
    # stored turned 90° counter-clockwise (40 wide, 60 tall); orientation 6: a viewer turns it 90° clockwise
    stored = np.rot90(upright, k=1)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored)).save(buf, format=fmt, exif=exif.tobytes(), quality=95)
    img = prepare_image(buf.getvalue(), "phone." + fmt.lower())
    assert (img.format, img.width, img.height) == ("PNG", 60, 40) and "EXIF orientation (6)" in img.notes[0]
    seen = np.asarray(Image.open(io.BytesIO(img.data)).convert("RGB")).astype(int)
    assert np.abs(seen - upright).mean() < 8  # JPEG's loss only
    buf = io.BytesIO()
    Image.fromarray(upright).save(buf, format=fmt)  # no EXIF: the bytes as given
    plain = buf.getvalue()
    assert prepare_image(plain, "plain").data == plain


# ------------------------------------------------------------------------------------------ tiny models


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from rnn_apps.apps.caption import task

    run_dir = str(tmp_path_factory.mktemp("caption_run"))
    result = task.train(None, run_dir, epochs=1, synthetic=True, verbose=0, **TINY)
    return run_dir, result


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_run):
    from rnn_apps.apps.caption import task

    _, r = tiny_run
    models = tmp_path_factory.mktemp("models")
    return task.export_run(r["model"], r["vocab"], r["config"], True, str(models / "caption"))


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    paths = []
    for i, s in enumerate(sc.generate_scenes(3, 99, {"image_size": 32, "max_shapes": 1})):
        p = folder / f"scene{i}.png"
        p.write_bytes(_png_bytes(s.image))
        paths.append(str(p))
    return paths


def test_export_loads_without_rnn_apps(tiny_model, scene_files):
    code = f"""
import sys, tensorflow as tf
m = tf.saved_model.load({tiny_model!r})
data = tf.constant([open(p, "rb").read() for p in {scene_files!r}])
out = m.signatures["serving_default"](image=data)
att = m.signatures["attention"](image=data, beam_size=tf.constant([2, 2, 2]))
assert not any(k.startswith("rnn_apps") for k in sys.modules), "rnn_apps was imported"
print(out["caption"].shape[0], tuple(att["attention"].shape)[2:], att["words"].shape[0])
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd="/", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[0] == "3" and "(16, 16)" in r.stdout


def test_beam_one_is_greedy_and_attention_sums_to_one(tiny_run, scene_files):
    import tensorflow as tf

    from rnn_apps.apps.caption.export import CaptionModule
    from rnn_apps.apps.caption.images import decode_images

    _, r = tiny_run
    module = CaptionModule(r["model"], r["vocab"], r["config"])
    pixels = decode_images(tf.constant([open(p, "rb").read() for p in scene_files] * 2), 32)
    feats, novelty = module._features(pixels)
    assert novelty is None  # a model without prototypes scores no novelty
    g_ids, g_alpha, g_lp = module._greedy(feats)
    b_ids, b_alpha, b_lp = module._beam(feats, tf.constant(1))
    assert g_ids.numpy().tolist() == b_ids.numpy().tolist()
    np.testing.assert_allclose(g_lp.numpy(), b_lp.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(g_alpha.numpy(), b_alpha.numpy(), atol=1e-6)
    np.testing.assert_allclose(g_alpha.numpy().sum(-1), 1.0, atol=1e-5)
    _, _, lp3 = module._beam(feats, tf.constant(3))
    assert lp3.shape == (6,)
    out = module.caption_pixels(tf.zeros([0, 10, 10, 3], tf.uint8), tf.zeros([0], tf.int32))
    assert out["caption"].shape == (0,)


def test_resume_continues_like_an_uninterrupted_run_and_inject_variant_exports(tmp_path, scene_files):
    """A run stopped mid-epoch and resumed ends with the weights of one never stopped (first-step injection
    variant, quicker to build than attention); its export captions and reports uniform attention."""
    import keras

    from rnn_apps import training
    from rnn_apps.apps.caption import task
    from rnn_apps.apps.caption.captioner import ImageCaptioner

    settings = {**TINY, "steps_per_epoch": 3, "val_count": 8, "variant": "inject"}

    class Stop(Exception):
        pass

    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1 and self.params.get("steps") == 3 and not getattr(self, "done", False):
                self.done = True
                raise Stop()

    full = task.train(None, str(tmp_path / "full"), epochs=2, synthetic=True, verbose=0, save_every=2, **settings)
    orig_fit = training.fit_resumable

    def fit_with_stop(*a, **kw):
        return orig_fit(*a, **{**kw, "callbacks": [StopAt()]})

    training.fit_resumable = fit_with_stop
    try:
        with pytest.raises(Stop):
            task.train(None, str(tmp_path / "cut"), epochs=2, synthetic=True, verbose=0, save_every=2, **settings)
    finally:
        training.fit_resumable = orig_fit
    assert training.CheckpointManager(str(tmp_path / "cut")).latest().endswith("ckpt-000000002")
    resumed = task.train(None, str(tmp_path / "cut"), epochs=2, synthetic=True, verbose=0, save_every=2, resume=True)
    assert resumed["step"] == full["step"] == 6
    for a, b in zip(full["model"].weights, resumed["model"].weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5, err_msg=a.path)
    with pytest.raises(training.TrainingError, match="--resume"):
        task.train(None, str(tmp_path / "cut"), epochs=2, synthetic=True, verbose=0, **settings)
    path = task.export_run(resumed["model"], resumed["vocab"], resumed["config"], True, str(tmp_path / "models" / "caption"))
    res = ImageCaptioner(path).caption_files(scene_files, beam=2, attention=True)
    assert len(res) == 3 and all(np.allclose(x.attention, 1 / 256) for x in res if len(x.words))


def test_train_on_a_flickr_folder(tmp_path):
    from rnn_apps.apps.caption import task

    root = tmp_path / "f8k"
    _images(root / "Images", [f"{i}.jpg" for i in range(6)])
    lines = ["image,caption"] + [f"{i}.jpg,A {c} thing number {i} ." for i in range(6) for c in ("red", "blue")]
    (root / "captions.txt").write_text("\n".join(lines) + "\n")
    r = task.train(str(root), str(tmp_path / "run"), epochs=1, verbose=0, variant="inject", image_size=32, filters=(4,),
                   feature_dim=8,
                   units=8, embedding_dim=8, attention_units=8, batch_size=4, min_count=1, max_len=10,
                   val_fraction=0.34, steps_per_epoch=2)
    assert r["step"] == 2 and r["stats"]["source"] == "flickr" and r["stats"]["val_images"] == 2
    assert r["val_loss"] is not None and "thing" in r["vocab"] and "images_missing" not in r["stats"]
    # captions of images that are not in the folder are left out, and the run says how many
    (root / "captions.txt").write_text("\n".join(lines + ["gone.jpg,A lost thing .", "GONE2.JPG,Another ."]) + "\n")
    assert cdata.load_caption_set(str(root))[1].missing == 2


def test_a_caption_set_with_a_corrupt_or_empty_image_is_refused_before_training(tmp_path):
    """A JPEG cut short, or an empty file, stopped training at its batch with TensorFlow's 50-line traceback
    ("jpeg::Uncompress failed"); every image is now read once before any work and the files are named."""
    from rnn_apps.apps.caption import task

    root = tmp_path / "f8k"
    _images(root / "Images", [f"{i}.jpg" for i in range(6)])
    from PIL import Image

    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (root / "Images" / "2.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 3])  # its header whole
    (root / "Images" / "4.jpg").write_bytes(b"")
    (root / "captions.txt").write_text("image,caption\n" + "".join(f"{i}.jpg,A thing .\n" for i in range(6)))
    with pytest.raises(cdata.CaptionDataError) as e:
        task.train(str(root), str(tmp_path / "run"), epochs=1, verbose=0, variant="inject", image_size=32,
                   filters=(4,), feature_dim=8, units=8, embedding_dim=8, attention_units=8, batch_size=4, min_count=1,
                   max_len=10, steps_per_epoch=2)
    message = str(e.value)
    assert message.startswith(f"2 of the 6 images of {root} cannot be used (")
    assert "Images/2.jpg: the image data cannot be decoded" in message and "Images/4.jpg: the file is empty" in message
    assert message.endswith("Replace them, or remove their captions.")


def test_caption_words_keep_accented_letters_and_unspaced_scripts_are_refused():
    """"Un café sur la place" was learned as "un caf sur la place" (words of ASCII letters only), and captions in
    Chinese trained a model whose vocabulary held nothing but its four special tokens, without a word."""
    assert cdata.tokenize("Un café, très naïve; the dog's ball.") == ["un", "café", "très", "naïve", "the", "dog's",
                                                                      "ball"]
    with pytest.raises(cdata.CaptionDataError, match=r"^2 of the 3 training captions are written in Chinese or "
                                                     r"Japanese script; the captioner writes words separated by spaces"):
        cdata.check_caption_words(["一只狗在草地上跑", "两个孩子在海边玩", "A dog runs ."])
    cdata.check_caption_words(["一只狗在草地上跑", "A dog runs .", "A cat sits ."])  # mostly English: learned
    with pytest.raises(cdata.CaptionDataError, match=r"^None of the 2 training captions holds a word"):
        cdata.check_caption_words(["...", " - "])


def test_patience_stops_a_caption_set_run_early_and_is_refused_for_synthetic_scenes(tmp_path):
    """--patience N on a caption set: the run stops after N epochs without a lower validation loss, with its best
    epoch, and --resume keeps the setting; synthetic scenes keep no best epoch, so patience is refused there (by the
    library, and by the command as a usage error like the other options of a caption set)."""
    from rnn_apps import training
    from rnn_apps.apps.caption import task

    # The dev photos' captions say "blue", the training ones "red": the better the model learns the training
    # captions, the worse it does on the dev ones, so the validation loss soon rises.
    root = tmp_path / "f8k"
    _images(root / "Flicker8k_Dataset", [f"{i}.jpg" for i in range(6)])
    (root / "Flickr8k.token.txt").write_text("".join(f"{i}.jpg#0\tA {'blue' if i >= 4 else 'red'} thing .\n"
                                                     for i in range(6)))
    (root / "Flickr_8k.trainImages.txt").write_text("0.jpg\n1.jpg\n2.jpg\n3.jpg\n")
    (root / "Flickr_8k.devImages.txt").write_text("4.jpg\n5.jpg\n")
    run = str(tmp_path / "run")
    settings = dict(variant="inject", image_size=32, filters=(4,), feature_dim=8, units=8, embedding_dim=8,
                    attention_units=8, batch_size=4, min_count=1, max_len=10, steps_per_epoch=2, learning_rate=0.05,
                    average_best=0, seed=3)
    r = task.train(str(root), run, epochs=8, verbose=0, patience=2, **settings)
    assert r["stopped_early"] and len(r["history"]) == r["best_epoch"] + 2 < 8
    assert r["val_loss"] == r["history"][r["best_epoch"] - 1]["val_loss"]
    from rnn_apps.apps.caption.commands import _train_summary  # what train caption --json prints

    assert {k: _train_summary(r)[k] for k in ("best_epoch", "stopped_early")} == {
        "best_epoch": r["best_epoch"], "stopped_early": True}
    again = task.train(str(root), run, epochs=8, verbose=0, resume=True)  # it had stopped: it trains no further
    assert again["stopped_early"] and again["step"] == r["step"]

    with pytest.raises(cdata.CaptionDataError, match="patience applies to a caption set"):
        task.train(None, str(tmp_path / "scenes"), epochs=1, synthetic=True, verbose=0, patience=1, **TINY)
    assert not (tmp_path / "scenes").exists()
    with pytest.raises(training.TrainingError, match="patience must be a whole number"):
        task.train(str(root), str(tmp_path / "bad"), epochs=1, verbose=0, patience=-1)
    r = CliRunner().invoke(cli, ["train", "caption", "--synthetic", "--patience", "2", "--run-dir",
                                 str(tmp_path / "cli")])
    assert r.exit_code == 2 and "--patience is not used with --synthetic" in r.output, r.output
    assert not (tmp_path / "cli").exists()


# ------------------------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_cli_captions_json_beam_and_attention_plot(runner, tiny_model, scene_files, tmp_path):
    r = runner.invoke(cli, ["caption", *scene_files[:2], "--model", tiny_model, "--beam", "2", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["image"] for x in rows] == scene_files[:2] and all(isinstance(x["caption"], str) for x in rows)
    out = tmp_path / "att.png"
    r = runner.invoke(cli, ["caption", scene_files[0], "--model", tiny_model, "--plot-attention", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(cli, ["caption", *scene_files[:2], "--model", tiny_model, "--plot-attention", str(out)])
    assert r.exit_code == 0 and (tmp_path / "att-2.png").exists()


def test_cli_bad_images_give_one_line_errors(runner, tiny_model, tmp_path):
    truncated = _png_bytes(np.random.default_rng(0).integers(0, 255, (40, 40, 3)))
    cases = {
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + os.urandom(64),
        "notes.txt": b"just some text\n",
        "huge.png": _png_header_only(10_000, 10_000) + b"\0" * 12 + b"IEND" + b"\0" * 4,
        "truncated.png": truncated[: len(truncated) // 2],
        "empty.jpg": b"",
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        r = runner.invoke(cli, ["caption", str(p), "--model", tiny_model])
        assert r.exit_code == 1, (name, r.output)
        assert "Error:" in r.output and "Traceback" not in r.output and name in r.output, (name, r.output)
        assert name != "huge.png" or "megapixels" in r.output, r.output
    for args in (["caption", str(tmp_path / "missing.png")], ["caption", str(tmp_path)], ["caption"]):
        r = runner.invoke(cli, [*args, "--model", tiny_model])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    one = tmp_path / "one.png"
    one.write_bytes(_png_bytes(np.full((1, 1, 3), 255)))
    r = runner.invoke(cli, ["caption", str(one), "--model", tiny_model])
    assert r.exit_code == 0 and "guess" in r.output, r.output
    r = runner.invoke(cli, ["caption", str(one), "--model", tiny_model, "--beam", "99"])
    assert r.exit_code == 2 and "Invalid value for '--beam': the beam width must be" in r.output


def test_cli_one_bad_image_does_not_cost_the_others_their_captions(runner, tiny_model, scene_files, tmp_path):
    """One truncated file among several stopped the whole command: the others are captioned, the bad one is
    named on standard error (and as an error row in --json), and the status is 1."""
    good = _png_bytes(np.random.default_rng(0).integers(0, 255, (40, 40, 3)))
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good[: len(good) // 2])
    text = tmp_path / "notes.jpg"
    text.write_bytes(b"just some text\n")
    alone = runner.invoke(cli, ["caption", *scene_files[:2], "--model", tiny_model, "--json"])
    r = runner.invoke(cli, ["caption", scene_files[0], str(bad), scene_files[1], str(text), "--model", tiny_model,
                            "--json"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    rows = json.loads(r.stdout)
    assert [row["image"] for row in rows] == [scene_files[0], str(bad), scene_files[1], str(text)]
    assert [rows[0], rows[2]] == json.loads(alone.stdout)
    assert set(rows[1]) == {"image", "error"} and "truncated PNG" in rows[1]["error"]
    assert "not a PNG, JPEG" in rows[3]["error"]
    assert f"Error: {rows[1]['error']}" in r.stderr and f"Error: {rows[3]['error']}" in r.stderr
    r = runner.invoke(cli, ["caption", str(bad), scene_files[0], "--model", tiny_model])
    assert r.exit_code == 1 and r.stdout.startswith(f"{scene_files[0]}: ")
    r = runner.invoke(cli, ["caption", str(bad), str(text), "--model", tiny_model])
    assert r.exit_code == 1 and "None of the 2 images can be captioned" in r.output


def test_a_truncated_image_is_named_before_any_captioning(tiny_model, monkeypatch):
    """Its header is whole, so the header check lets it through; the graph's decoder is run on every image
    before the first batch, so the captions of the others are not computed and thrown away."""
    from rnn_apps.apps.caption.captioner import ImageCaptioner

    good = _png_bytes(np.random.default_rng(1).integers(0, 255, (40, 40, 3)))
    cap = ImageCaptioner(tiny_model)
    calls = []
    monkeypatch.setattr(cap, "_call", lambda chunk, *a: calls.append(len(chunk)) or [])
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(buf, "JPEG")
    cut = buf.getvalue()[: len(buf.getvalue()) // 2]  # its header (size, SOF) whole, its scan cut short
    images = [prepare_image(good, f"good{i}.png") for i in range(5)] + [prepare_image(cut, "cut.jpg")]
    with pytest.raises(CaptionError, match="cut.jpg: the image data cannot be decoded"):
        cap.caption_images(images, batch_size=2)
    assert calls == []


def test_pixels_and_bytes_of_the_wrong_kind_are_refused_in_words(tiny_model):
    """caption_pixels took NaN and 256 (a cast to uint8 made them 0: a caption of another image), and a 3-D
    array or beam 0 failed deep in the graph; caption_bytes failed on a bytearray with TensorFlow's error,
    which printed the image's bytes, and read a str as a corrupt image."""
    from rnn_apps.apps.caption.captioner import ImageCaptioner

    cap = ImageCaptioner(tiny_model)
    image = np.random.default_rng(3).integers(0, 256, (2, 40, 40, 3))
    refusals = [
        (image[0], r"^pixels must be RGB images \[batch, height, width, 3\]; received shape \[40, 40, 3\] "
                   r"\(one image: pixels\[None\]\)\.$"),
        (image[..., :2], r"received shape \[2, 40, 40, 2\]\.$"),
        (np.where(image == image.max(), np.nan, image), r"^pixels must be whole numbers from 0 to 255; received "
                                                         r"nan\.$"),
        (image + 1, r"received values from 1 to 256\.$"),
        (image // 2 + 0.5, r"^pixels must be whole numbers from 0 to 255; received \d+\.5\.$"),
        (image > 9, r"^pixels must be numbers from 0 to 255; received bool values\.$"),
    ]
    for pixels, message in refusals:
        with pytest.raises(CaptionError, match=message):
            cap.caption_pixels(pixels)
    for beam, message in ((0, r"must be an integer from 1 to 16 \(1 is greedy\); received 0\."),
                          (2.5, r"must be an integer; received 2\.5\.")):
        with pytest.raises(CaptionError, match=f"^beam {message}$"):
            cap.caption_pixels(image, beam=beam)
    assert cap.caption_pixels(image.astype(np.float32)) == cap.caption_pixels(image.astype(np.uint8))
    assert cap.caption_pixels(image[:0]) == []

    data = _png_bytes(image[0])
    as_bytes = [c.caption for c in cap.caption_bytes([data])]
    assert [c.caption for c in cap.caption_bytes([bytearray(data)])] == as_bytes
    assert [c.caption for c in cap.caption_bytes([memoryview(data)])] == as_bytes
    with pytest.raises(CaptionError, match=r"^image 2 is a str; give the bytes of an image file\.$"):
        cap.caption_bytes([data, "photo.png"])
    with pytest.raises(TypeError, match=r"^data must be a list of images' bytes, not one image's\.$"):
        cap.caption_bytes(memoryview(data))  # was read byte by byte: "image 1 is a int"
    with pytest.raises(CaptionError, match=r"^batch_size must be a positive integer; received 0\.$"):
        cap.caption_bytes([data], batch_size=0)


def test_cli_evaluate_synthetic_json(runner, tiny_model):
    r = runner.invoke(cli, ["evaluate", "caption", "--synthetic", "--seed", "5", "--count", "12", "--model", tiny_model,
                            "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert 0 <= out["bleu4"] <= 1 and 0 <= out["exact_match"] <= 1 and out["scenes"] == 12
    r = runner.invoke(cli, ["evaluate", "caption", "--model", tiny_model])
    assert r.exit_code == 1 and "--synthetic" in r.output
    # Options of the other mode were ignored without a word: refused before any work.
    r = runner.invoke(cli, ["evaluate", "caption", "--synthetic", "--count", "12", "--split", "test", "--limit", "5",
                            "--model", tiny_model])
    assert r.exit_code == 2 and ("--split and --limit are not used with --synthetic; --split, --limit and --examples "
                                 "choose among the images of --data.") in r.output
    r = runner.invoke(cli, ["evaluate", "caption", "--data", os.path.dirname(tiny_model), "--count", "12"])
    assert r.exit_code == 2 and "--count is not used with --data; --seed and --count make the scenes" in r.output
    r = runner.invoke(cli, ["train", "caption", "--synthetic", "--min-count", "2", "--val-fraction", "0.2"])
    assert r.exit_code == 2 and "--min-count and --val-fraction are not used with --synthetic" in r.output
    r = runner.invoke(cli, ["train", "caption", "--data", os.path.dirname(tiny_model), "--max-shapes", "2"])
    assert r.exit_code == 2 and "--max-shapes is not used with --data" in r.output


def test_cli_backbone_weights_missing_is_a_clear_error(runner, tmp_path):
    base = ["train", "caption", "--synthetic", "--run-dir", str(tmp_path / "run"), "--backbone", "mobilenet_v2"]
    r = runner.invoke(cli, [*base, "--backbone-weights", str(tmp_path / "missing.h5")])
    assert r.exit_code == 1 and "not found" in r.output and "Traceback" not in r.output, r.output
    r = runner.invoke(cli, base + ["--run-dir", str(tmp_path / "run2")])
    assert r.exit_code == 1 and "--backbone-weights" in r.output, r.output


def test_backbone_loads_weights_from_a_file(tmp_path):
    import keras

    from rnn_apps.apps.caption.model import build_encoder

    src = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    path = str(tmp_path / "mnv2.weights.h5")
    src.save_weights(path)
    enc = build_encoder(32, feature_dim=8, backbone="mobilenet_v2", backbone_weights=path)
    assert enc.output.shape[1:] == (1, 8)
    base = [layer for layer in enc.layers if isinstance(layer, keras.Model)][0]
    for a, b in zip(base.weights, src.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))
    assert not base.trainable


def test_captions_that_do_not_parse_as_scenes_carry_a_note(tiny_model, scene_files, tmp_path):
    """A synthetic-scene model's caption that does not read back as shapes is flagged, and only then."""
    from rnn_apps.apps.caption.captioner import ImageCaptioner

    blank = tmp_path / "blank.png"
    blank.write_bytes(_png_bytes(np.full((8, 8, 3), 255, np.uint8)))
    results = ImageCaptioner(tiny_model).caption_files(scene_files + [str(blank)])
    for r in results:
        flagged = any("does not read as a description of shapes" in n for n in r.notes)
        assert flagged == (sc.parse_caption(r.caption) is None), (r.caption, r.notes)
