"""Captions of photos: the TFLite-to-Keras backbone converter, the feature cache, training on cached features,
fine-tuning with new words, and BLEU/CIDEr-D scoring (pycocoevalcap)."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.apps.caption import data as cdata
from rnn_apps.cli import cli

pytestmark = pytest.mark.slow  # trains real models end to end

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
TFLITE = os.path.join(SHARED, "mobilenet_v2_1.0_224_quant.tflite")
FLICKR = os.path.join(SHARED, "flickr8k")
# A photo-style captioner small enough for a test: MobileNetV2 at 64 px (2×2 grid), a tiny decoder.
TINY_PHOTO = dict(backbone="mobilenet_v2", image_size=64, feature_dim=8, units=16,
                  embedding_dim=8, attention_units=8, output="tied", batch_size=4, min_count=1, max_len=8,
                  steps_per_epoch=3, seed=5, flip_prob=0.5)


def _jpeg(pixels) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _flickr_dir(root, captions: dict, dev=()):
    """A Flickr8k-style directory: JPEGs of random pixels, the token file and the train/dev lists."""
    images = root / "Flicker8k_Dataset"
    images.mkdir(parents=True)
    rng = np.random.default_rng(len(captions))
    for name in captions:
        (images / name).write_bytes(_jpeg(rng.integers(0, 255, (40, 40, 3))))
    lines = [f"{n}#{k}\t{c}" for n, caps in captions.items() for k, c in enumerate(caps)]
    (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "Flickr_8k.trainImages.txt").write_text("\n".join(n for n in captions if n not in dev) + "\n")
    (root / "Flickr_8k.devImages.txt").write_text("\n".join(dev) + "\n")
    return str(root)


# ------------------------------------------------------------------------------------------ converter


def _interpreter_probabilities(path, images):
    from rnn_apps.backbones import tflite_interpreter

    it = tflite_interpreter(path)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    probs = []
    for img in images:
        it.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
        it.invoke()
        p = it.get_tensor(out["index"])[0].astype(np.float32)
        scale, zero = out["quantization"]
        probs.append((p - zero) * scale if scale else p)
    return np.array(probs)


@pytest.mark.skipif(not (os.path.isfile(TFLITE) and os.path.isdir(FLICKR)), reason="needs ../shared/data (MobileNetV2 TFLite, Flickr8k)")
def test_converted_mobilenet_agrees_with_the_tflite_interpreter_on_photos():
    """Keras MobileNetV2 filled from the quantised TFLite model classifies real photos as TFLite does."""
    import tensorflow as tf

    from rnn_apps.backbones import mobilenet_v2_from_tflite, read_tflite_convolutions

    folder = os.path.join(FLICKR, "Flicker8k_Dataset")
    names = sorted(os.listdir(folder))[:12]
    images = np.stack([tf.io.decode_jpeg(open(os.path.join(folder, n), "rb").read()).numpy() for n in names])
    assert images.shape[1:] == (224, 224, 3)
    reference = _interpreter_probabilities(TFLITE, images)
    model = mobilenet_v2_from_tflite(TFLITE)
    grids = model(images.astype(np.float32) / 127.5 - 1.0).numpy()
    assert grids.shape == (12, 7, 7, 1280)
    convs = read_tflite_convolutions(TFLITE)
    assert len(convs.kernels) == 53 and convs.kernels[-1].shape == (1, 1, 1280, 1001)  # 52 + the classifier
    logits = grids.mean(axis=(1, 2)) @ convs.kernels[-1][0, 0] + convs.biases[-1]
    ours = tf.nn.softmax(logits).numpy()
    agree = (ours.argmax(1) == reference.argmax(1)).mean()
    assert agree >= 10 / 12, (ours.argmax(1), reference.argmax(1))
    # the quantised model's probabilities (in steps of 1/256) and the float model's are close
    assert np.abs(ours - reference).sum(axis=1).mean() < 0.35


def test_converter_on_a_float_tflite_model_gives_the_keras_model_back(tmp_path):
    """A Keras MobileNetV2 with non-trivial batch norms, converted to TFLite (which folds them into the
    convolutions) and back, computes what the original computes."""
    import keras
    import tensorflow as tf

    from rnn_apps.backbones import mobilenet_v2_from_tflite

    keras.utils.set_random_seed(3)
    src = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    rng = np.random.default_rng(0)
    for layer in src.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 2.0, n)])
    path = tmp_path / "mnv2.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(src).convert())
    back = mobilenet_v2_from_tflite(str(path), image_size=32)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    want = src(x, training=False).numpy()
    np.testing.assert_allclose(back(x, training=False).numpy(), want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_converter_refuses_what_it_cannot_use(tmp_path):
    import keras
    import tensorflow as tf

    from rnn_apps.backbones import BackboneError, make_backbone, mobilenet_v2_from_tflite

    other = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3)])
    path = tmp_path / "other.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(other).convert())
    with pytest.raises(BackboneError, match="convolutions"):
        mobilenet_v2_from_tflite(str(path), image_size=32)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(BackboneError, match="not a TensorFlow Lite model"):
        make_backbone("mobilenet_v2", 32, str(junk))
    with pytest.raises(BackboneError, match="not found"):
        make_backbone("mobilenet_v2", 32, str(tmp_path / "missing.tflite"))


# ------------------------------------------------------------------------------------------ feature cache


def test_feature_cache_resumes_after_a_crash_and_refuses_other_images(tmp_path):
    import tensorflow as tf

    from rnn_apps.apps.caption.features import FeatureCacheError, cache_features

    rng = np.random.default_rng(1)
    paths = []
    for i in range(7):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(_jpeg(rng.integers(0, 255, (12, 12, 3))))
        paths.append(str(p))
    extract = lambda px: tf.nn.avg_pool2d(px, 4, 4, "VALID")  # noqa: E731 - [B, 8, 8, 3] -> [B, 2, 2, 3]
    ident = {"backbone": "pool"}
    whole = cache_features(paths, extract, (2, 2, 3), str(tmp_path / "whole"), 8, ident, batch_size=3, verbose=0)
    assert whole.shape == (7, 2, 2, 3) and whole.dtype == np.float16
    from rnn_apps.apps.caption.features import mean_features  # the same batches, averaged, not cached

    np.testing.assert_allclose(mean_features(paths, extract, 8, verbose=0), whole.astype(np.float32).mean(axis=(1, 2)),
                               rtol=2e-3)
    # A corrupt image in the second batch stops the first attempt after one batch of three.
    good = open(paths[4], "rb").read()
    with open(paths[4], "wb") as f:
        f.write(b"\xff\xd8\xff broken")
    with pytest.raises(tf.errors.InvalidArgumentError):
        cache_features(paths, extract, (2, 2, 3), str(tmp_path / "c"), 8, ident, batch_size=3, verbose=0)
    with open(tmp_path / "c" / "features.json") as f:
        assert json.load(f)["done"] == 3
    np.testing.assert_array_equal(np.load(tmp_path / "c" / "features.npy")[:3], whole[:3])
    with open(paths[4], "wb") as f:
        f.write(good)
    # Mark the finished rows: a resumed cache must keep them, not compute them again.
    marked = np.lib.format.open_memmap(str(tmp_path / "c" / "features.npy"), mode="r+")
    marked[:3] = 7.0
    marked.flush()
    del marked
    resumed = cache_features(paths, extract, (2, 2, 3), str(tmp_path / "c"), 8, ident, batch_size=3, verbose=0)
    assert (resumed[:3] == 7.0).all()
    np.testing.assert_array_equal(resumed[3:], whole[3:])
    with pytest.raises(FeatureCacheError):
        cache_features(paths[:5], extract, (2, 2, 3), str(tmp_path / "c"), 8, ident, verbose=0)
    with pytest.raises(FeatureCacheError):
        cache_features(paths, extract, (2, 2, 3), str(tmp_path / "c"), 8, {"backbone": "other"}, verbose=0)


# ------------------------------------------------------------------------------------------ scores


def test_coco_scores_match_an_independent_bleu_and_rank_captions():
    from rnn_apps.apps.caption.evaluate import coco_scores, corpus_bleu

    refs = [["A dog runs on the grass .", "A brown dog is running in a field ."],
            ["Two children play in the water .", "Kids splash in a pool ."],
            ["A man rides a bike down the street .", "A cyclist on a city road ."]]
    hyps = ["a dog is running on the grass", "two kids play in the pool", "a man rides a bike on the road"]
    s = coco_scores(refs, hyps)
    ours = corpus_bleu([[cdata.tokenize(r) for r in rs] for rs in refs], [cdata.tokenize(h) for h in hyps])
    for n in range(1, 5):
        assert s[f"bleu{n}"] == pytest.approx(ours[f"bleu{n}"], abs=1e-3)
    assert coco_scores(refs, [r[0] for r in refs])["bleu4"] == pytest.approx(1.0, abs=1e-6)
    swapped = coco_scores(refs, [hyps[1], hyps[2], hyps[0]])
    assert swapped["cider_d"] < s["cider_d"] and swapped["bleu2"] < s["bleu2"]


# ------------------------------------------------------------------------------------------ training and CLI


@pytest.fixture(scope="module")
def tiny_photo(tmp_path_factory):
    """TINY_PHOTO with a MobileNetV2 weights file whose batch norms hold the statistics of random images, so
    that its features are of order 1 (with Keras's initial statistics they shrink to about 1e-12)."""
    import keras

    keras.utils.set_random_seed(11)
    src = keras.applications.MobileNetV2(input_shape=(64, 64, 3), include_top=False, weights=None)
    for layer in src.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # one training-mode call sets the moving statistics to the batch's
    src(np.random.default_rng(0).uniform(-1, 1, (16, 64, 64, 3)).astype(np.float32), training=True)
    path = str(tmp_path_factory.mktemp("backbone") / "mnv2.weights.h5")
    src.save_weights(path)
    return {**TINY_PHOTO, "backbone_weights": path}


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    caps = {f"{i}.jpg": [f"a {c} dog number {i % 3} runs", f"the {c} dog plays"] for i, c in
            enumerate(["black", "brown", "white", "black", "brown", "white", "black", "brown"])}
    return _flickr_dir(tmp_path_factory.mktemp("photos"), caps, dev=("6.jpg", "7.jpg"))


@pytest.fixture(scope="module")
def photo_model(tmp_path_factory, photo_set, tiny_photo):
    from rnn_apps.apps.caption import task

    run_dir = str(tmp_path_factory.mktemp("photo_run"))
    r = task.train(photo_set, run_dir, epochs=2, verbose=0, **tiny_photo)
    models = tmp_path_factory.mktemp("models")
    return run_dir, r, task.export_run(r["model"], r["vocab"], r["config"], False, str(models / "caption"))


def test_training_on_cached_features_exports_the_whole_captioner(photo_set, photo_model):
    import tensorflow as tf

    from rnn_apps.apps.caption import task

    run_dir, r, path = photo_model
    assert r["step"] == 6 and r["stats"]["train_images"] == 6 and r["stats"]["val_images"] == 2
    assert r["best_epoch"] in (1, 2)
    for cache in ("features", "features-mirrored"):
        with open(os.path.join(run_dir, cache, "features.json")) as f:
            assert json.load(f)["done"] == 8  # every image once, not once per caption or epoch
    # the mirrored photos' features are those of the photos turned left-right
    mirrored = np.load(os.path.join(run_dir, "features-mirrored", "features.npy")).astype(np.float32)
    images = tf.stack([tf.image.resize(tf.cast(tf.io.decode_jpeg(open(os.path.join(photo_set, "Flicker8k_Dataset",
                                                                                   f"{i}.jpg"), "rb").read()), tf.float32),
                                       [64, 64], antialias=True) for i in range(8)])
    backbone = task.load_run_model(run_dir)[0].encoder.backbone
    want = backbone(tf.reverse(images, axis=[2]) / 127.5 - 1.0).numpy()
    np.testing.assert_allclose(mirrored, want, rtol=1e-2, atol=1e-2 * np.abs(want).max())
    flips = [task.flip_mask(r["config"], step, 4) for step in range(6)]
    assert 0 < np.mean(flips) < 1 and np.array_equal(flips[2], task.flip_mask(r["config"], 2, 4))
    # The export runs the backbone on the image bytes; its captions are those of the trained head and decoder
    # on the cached grids (same decoder, same greedy search).
    loaded = tf.saved_model.load(path)
    files = [os.path.join(photo_set, "Flicker8k_Dataset", f"{i}.jpg") for i in range(8)]
    out = loaded.signatures["caption"](image=tf.constant([open(p, "rb").read() for p in files]),
                                       beam_size=tf.ones([8], tf.int32))
    model, vocab, cfg, _ = task.load_run_model(run_dir)
    grids = np.load(os.path.join(run_dir, "features", "features.npy")).astype(np.float32)
    feats = model.encoder.head(grids).numpy()
    direct = model.encoder(tf.stack([tf.image.resize(tf.cast(tf.io.decode_jpeg(open(p, "rb").read()), tf.float32),
                                                     [64, 64], antialias=True) for p in files])).numpy()
    np.testing.assert_allclose(feats, direct, rtol=1e-2, atol=1e-2)  # float16 cache
    assert len(out["caption"].numpy()) == 8
    meta = json.load(open(os.path.join(path, "assets.extra", "caption.json")))
    assert meta["config"]["backbone_weights"] == "mnv2.weights.h5" and meta["config"]["output"] == "tied"
    assert np.abs(feats).mean() > 1e-3 and np.abs(grids).mean() > 1e-2  # features of a real size, not underflow


def test_resume_of_a_cached_run_matches_an_uninterrupted_one(tmp_path, photo_set, photo_model, tiny_photo):
    """A run on cached features stopped mid-epoch and resumed (its checkpoints hold the head and decoder,
    the backbone is built again) ends with the weights of the run never stopped."""
    import keras

    from rnn_apps import training
    from rnn_apps.apps.caption import task

    _, whole, _ = photo_model

    class Stop(Exception):
        pass

    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1 and not getattr(self, "done", False):
                self.done = True
                raise Stop()

    orig_fit = training.fit_resumable
    training.fit_resumable = lambda *a, **kw: orig_fit(*a, **{**kw, "callbacks": [StopAt()]})
    run = str(tmp_path / "run")
    try:
        with pytest.raises(Stop):
            task.train(photo_set, run, epochs=2, verbose=0, save_every=2, **tiny_photo)
    finally:
        training.fit_resumable = orig_fit
    assert training.CheckpointManager(run).latest().endswith("ckpt-000000002")
    resumed = task.train(photo_set, run, epochs=2, resume=True, verbose=0, save_every=2, **tiny_photo)
    assert resumed["step"] == 6 and resumed["best_epoch"] == whole["best_epoch"]
    for a, b in zip(resumed["model"].weights, whole["model"].weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5, err_msg=a.path)


def test_export_average_best_is_the_mean_of_the_best_epochs(tmp_path, photo_model):
    """export --average-best 2: the exported weights are the NumPy mean of the two kept epochs' weights."""
    from rnn_apps import training
    from rnn_apps.apps.caption import task
    from rnn_apps.apps.caption.export import load_weights_from_export

    run_dir, whole, _ = photo_model
    assert whole["averaged_epochs"] == [1, 2]  # training averaged them too (default average_best 3, 2 epochs)
    r = CliRunner().invoke(cli, ["export", "caption", "--run-dir", run_dir, "--models", str(tmp_path),
                                 "--average-best", "2"])
    assert r.exit_code == 0, r.output
    exported = load_weights_from_export(r.stdout.strip().splitlines()[-1])["weights"]
    model, _, cfg, _ = task.load_run_model(run_dir)
    trainee = task.feature_model(model, cfg)
    per_epoch = []
    for e in (1, 2):
        trainee.load_weights(training.epoch_weights_path(run_dir, e))
        per_epoch.append([np.array(v.numpy()) for v in trainee.weights])
    for v, a, b in zip(trainee.weights, *per_epoch):
        v.assign((a + b) / 2 if np.issubdtype(a.dtype, np.floating) else a)
    assert any(not np.allclose(a, b) for a, b in zip(*per_epoch))
    for want, got in zip(model.weights, exported):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6, atol=1e-7, err_msg=want.path)
    r = CliRunner().invoke(cli, ["export", "caption", "--run-dir", run_dir, "--models", str(tmp_path),
                                 "--average-best", "5"])
    assert r.exit_code == 1 and "--average-best 5" in r.output and "Traceback" not in r.output


def test_fine_tune_keeps_the_vocabulary_and_adds_new_words(tmp_path, photo_model):
    from rnn_apps.apps.caption import task
    from rnn_apps.apps.caption.export import load_weights_from_export

    _, _, base_path = photo_model
    caps = {f"z{i}.jpg": [f"a zebra number {i % 2} grazes", "the zebra stands on grass"] for i in range(6)}
    mine = _flickr_dir(tmp_path / "mine", caps, dev=("z5.jpg",))
    runner = CliRunner()
    out = tmp_path / "tuned"
    r = runner.invoke(cli, ["fine-tune", "caption", "--data", mine, "--model", base_path, "--out", str(out),
                            "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--min-count", "2", "--batch-size",
                            "4", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    base, tuned = load_weights_from_export(base_path), load_weights_from_export(str(out))
    old = base["vocab"].tokens
    assert tuned["vocab"].tokens[: len(old)] == old  # every old id kept
    added = tuned["vocab"].tokens[len(old):]
    assert {"zebra", "grazes", "grass", "stands"} <= set(added) and summary["stats"]["added_words"] == len(added)
    assert "number" not in added and "0" not in added  # known words stay, rarer-than-min-count words are not added
    # the backbone, never trained here, is the base model's
    cfg = tuned["config"]
    assert cfg["units"] == base["config"]["units"] and cfg["output"] == "tied"
    n = len(base["weights"])
    for a, b in zip(base["weights"][:10], tuned["weights"][:10]):
        np.testing.assert_array_equal(a, b)
    assert len(tuned["weights"]) == n
    r = runner.invoke(cli, ["caption", os.path.join(mine, "Flicker8k_Dataset", "z0.jpg"), "--model", str(out)])
    assert r.exit_code == 0 and r.output.strip(), r.output  # a caption, or a note that there is none
    task_result = task.load_run_model(str(tmp_path / "run"))
    assert len(task_result[1]) == len(tuned["vocab"])


def test_cli_evaluate_on_a_caption_set(photo_set, photo_model):
    _, _, path = photo_model
    runner = CliRunner()
    r = runner.invoke(cli, ["evaluate", "caption", "--data", photo_set, "--model", path, "--split", "val", "--beam", "2",
                            "--examples", "1", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["images"] == 2 and out["split"] == "val" and set(out) >= {"bleu1", "bleu4", "cider_d", "distinct_share"}
    assert 0 <= out["bleu4"] <= out["bleu1"] <= 1 and out["cider_d"] >= 0
    assert out["examples"][0]["image"] == "6.jpg" and len(out["examples"][0]["references"]) == 2
    r = runner.invoke(cli, ["evaluate", "caption", "--data", photo_set, "--model", path, "--split", "test"])
    assert r.exit_code == 1 and "no test split" in r.output and "Traceback" not in r.output, r.output
    r = runner.invoke(cli, ["evaluate", "caption", "--data", photo_set, "--model", path, "--limit", "0"])
    assert r.exit_code == 2 and "--limit" in r.output and "x>=1" in r.output, r.output  # refused before any work


def test_tflite_backbone_weights_on_the_command_line(tmp_path):
    """train caption --backbone-weights takes a .tflite file; one that is not a model is a one-line error."""
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    caps = {f"{i}.jpg": ["a dog runs"] for i in range(3)}
    root = _flickr_dir(tmp_path / "set", caps, dev=("2.jpg",))
    r = CliRunner().invoke(cli, ["train", "caption", "--data", root, "--run-dir", str(tmp_path / "run"), "--backbone",
                                 "mobilenet_v2", "--backbone-weights", str(bad), "--image-size", "32"])
    assert r.exit_code == 1 and "TensorFlow Lite" in r.output and "Traceback" not in r.output, r.output


def test_the_cards_greedy_column_is_decoded_greedily(tmp_path, photo_set, photo_model, monkeypatch):
    """The photo card's "greedy" column held the model's default decoding (beam 5 for the shipped model)."""
    from rnn_apps.apps.caption import captioner, task
    from rnn_apps.apps.caption.photo_card import caption_examples

    _, r, _ = photo_model
    path = task.export_run(r["model"], r["vocab"], r["config"], False, str(tmp_path / "caption"), default_beam=3)
    real = captioner.ImageCaptioner.caption_files
    beams = []

    def spy(self, paths, beam=None, **kwargs):
        beams.append(beam)
        return [type(c)(**{**vars(c), "caption": f"beam {beam}"}) for c in real(self, paths, beam=beam, **kwargs)]

    monkeypatch.setattr(captioner.ImageCaptioner, "caption_files", spy)
    rows = caption_examples(path, photo_set, ["0.jpg", "1.jpg"], translate_model=str(tmp_path / "none"))
    assert [(x["greedy"], x["beam3"]) for x in rows] == [("beam 1", "beam 3")] * 2 and beams == [1, 3]


def test_card_of_a_model_on_the_users_own_photos_names_them_not_flickr8k(tmp_path, photo_set, photo_model):
    """A photo model trained on a user's own caption set: its card names that set, not Flickr8k (its terms,
    splits, published scores, hub entries or changelog), nor the project's machine; it says the machine its run
    recorded."""
    import yaml

    from rnn_apps import cards

    run_dir, _, path = photo_model
    ev = tmp_path / "dev.json"
    ev.write_text(json.dumps({"beam": 1, "bleu1": 0.5, "bleu2": 0.4, "bleu3": 0.3, "bleu4": 0.2, "cider_d": 0.1,
                              "distinct_share": 0.5, "distinct_captions": 1, "images": 2}), encoding="utf-8")
    out = cards.write_card("caption", path, out=str(tmp_path / "card.md"), run_dir=run_dir, data=photo_set,
                           evals=str(ev))
    text = open(out["card"], encoding="utf-8").read()
    name = os.path.basename(os.path.normpath(photo_set))
    # (Flickr8k photos checked the backbone's conversion, a fact of the encoder whatever the captions trained on.)
    about_data = text.replace("on Flickr8k photos the converted model's ImageNet class agrees", "")
    for shipped in ("Flickr8k", "flickr8k", "official", "Show, Attend and Tell, soft", "project's", "2-core",
                    "## Versions"):
        assert shipped not in about_data, shipped
    assert f"visual attention, `{name}`)" in text and f"* **`{name}`**: photos with their captions" in text
    assert "steps) on a machine with " in text
    front = yaml.safe_load(text.split("\n---\n", 1)[0][4:])
    assert "license" not in front and "datasets" not in front and front["rnn_apps"]["data"] == name


def test_default_beam_drives_serving_default_and_a_huge_beam_is_refused(tmp_path, photo_set, photo_model):
    import tensorflow as tf

    from rnn_apps.apps.caption import task
    from rnn_apps.apps.caption.captioner import ImageCaptioner

    _, r, greedy_path = photo_model
    path = task.export_run(r["model"], r["vocab"], r["config"], False, str(tmp_path / "caption"), default_beam=3)
    files = [os.path.join(photo_set, "Flicker8k_Dataset", f"{i}.jpg") for i in range(4)]
    images = tf.constant([open(p, "rb").read() for p in files])
    loaded = tf.saved_model.load(path)
    by_default = loaded.signatures["serving_default"](image=images)["caption"].numpy()
    beam3 = loaded.signatures["caption"](image=images, beam_size=tf.fill([4], 3))["caption"].numpy()
    assert list(by_default) == list(beam3)
    assert ImageCaptioner(path).default_beam == 3 and ImageCaptioner(greedy_path).default_beam == 1
    assert [c.caption.encode() for c in ImageCaptioner(path).caption_files(files)] == list(beam3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"beam_size must be an integer from 1 to 16"):
        loaded.signatures["caption"](image=images, beam_size=tf.fill([4], 20_000))
    with pytest.raises(cdata.CaptionDataError, match="default_beam"):
        task.export_run(r["model"], r["vocab"], r["config"], False, str(tmp_path / "bad"), default_beam=0)


# ------------------------------------------------------------------------------------------ novelty

def test_novelty_prototypes_and_scores_against_scipy():
    """Spherical k-means finds the directions of well-separated clusters; novelty is 1 - the largest cosine
    similarity to a prototype (scipy's cosine distance); the threshold is the validation photos' largest."""
    from scipy.spatial.distance import cdist

    from rnn_apps.apps.caption import novelty

    rng = np.random.default_rng(0)
    directions = np.eye(6)[:3] * 5.0
    x = np.concatenate([d + rng.normal(0, 0.3, (40, 6)) for d in directions]) * rng.uniform(0.5, 3, (120, 1))
    protos = novelty.fit_prototypes(x, 3, seed=1)
    assert protos.shape == (3, 6) and np.allclose(np.linalg.norm(protos, axis=1), 1, atol=1e-6)
    found = protos @ (directions / 5.0).T  # each prototype points along one cluster's direction, all found
    assert sorted(found.argmax(1).tolist()) == [0, 1, 2] and found.max(1).min() > 0.98
    probe = rng.normal(size=(9, 6))
    want = cdist(probe, protos, "cosine").min(axis=1)
    np.testing.assert_allclose(novelty.novelty(probe, protos), want, rtol=1e-5, atol=1e-6)
    assert novelty.threshold([0.2, 0.41234, 0.3]) == 0.4124  # rounded up: the largest stays at or below it
    cal = novelty.calibrate(x[::2], x[1::2], k=3, known=np.eye(6, dtype=np.float32)[3:4])
    assert cal["prototypes"].shape == (4, 6) and cal["val_images"] == 60 and cal["train_images"] == 60
    assert np.array_equal(cal["prototypes"][0], np.eye(6)[3])  # what the model knew comes first, kept
    assert cal["threshold"] >= novelty.novelty(x[1::2], cal["prototypes"]).max()
    with pytest.raises(ValueError, match="at least k=5 rows"):
        novelty.fit_prototypes(x[:4], 5)
    with pytest.raises(ValueError, match="validation photos; received none"):
        novelty.threshold([])


def test_export_with_novelty_scores_images_as_numpy_does_and_flags_unfamiliar_ones(tmp_path, photo_set,
                                                                                  photo_model):
    """A photo model exported with novelty: the ``caption`` signature's novelty is 1 - the largest cosine
    between the backbone's mean features (computed here with Keras) and the prototypes; the captions are
    those of the export without it; ``rnn-apps caption`` notes an image above the threshold."""
    import tensorflow as tf

    from rnn_apps.apps.caption import novelty, task
    from rnn_apps.apps.caption.captioner import ImageCaptioner

    run_dir, r, plain_path = photo_model
    cal = task.run_novelty(r["model"], r["config"], False, photo_set, run_dir, verbose=0)  # from the run's cache
    assert cal["prototypes"].shape == (6, 1280) and cal["train_images"] == 6 and cal["val_images"] == 2
    path = task.export_run(r["model"], r["vocab"], r["config"], False, str(tmp_path / "caption"), novelty=cal)
    files = [os.path.join(photo_set, "Flicker8k_Dataset", f"{i}.jpg") for i in range(8)]
    images = tf.constant([open(p, "rb").read() for p in files])
    pixels = tf.stack([tf.image.resize(tf.cast(tf.io.decode_jpeg(open(p, "rb").read()), tf.float32), [64, 64],
                                       antialias=True) for p in files])
    mean = r["model"].encoder.backbone(pixels / 127.5 - 1.0).numpy().mean(axis=(1, 2))
    want = novelty.novelty(mean, cal["prototypes"])
    loaded, plain = tf.saved_model.load(path), tf.saved_model.load(plain_path)
    for beam in (1, 3):
        out = loaded.signatures["caption"](image=images, beam_size=tf.fill([8], beam))
        np.testing.assert_allclose(out["novelty"].numpy(), want, rtol=1e-3, atol=1e-3)
        same = plain.signatures["caption"](image=images, beam_size=tf.fill([8], beam))
        assert list(out["caption"].numpy()) == list(same["caption"].numpy())
        assert "novelty" not in same
    assert "novelty" in loaded.signatures["attention"].structured_outputs
    assert "novelty" in loaded.signatures["caption_pixels"].structured_outputs
    empty = loaded.signatures["caption"](image=tf.zeros([0], tf.string), beam_size=tf.zeros([0], tf.int32))
    assert empty["novelty"].shape == (0,)
    meta = json.load(open(os.path.join(path, "assets.extra", "caption.json")))
    assert meta["novelty"]["threshold"] == cal["threshold"] and meta["novelty"]["prototypes"] == 6
    # Set on the validation photos (6.jpg, 7.jpg), computed in float32 as the graph computes them (the run's
    # float16 cache gives the prototypes only): none of them is flagged.
    assert want[6:].max() <= cal["threshold"] + 1e-6
    results = ImageCaptioner(path).caption_files(files[6:])
    assert all(c.novelty is not None and not any("unlike the photos" in n for n in c.notes) for c in results)
    # A model whose threshold every image passes notes each one, in the text output and in --json.
    strict = task.export_run(r["model"], r["vocab"], r["config"], False, str(tmp_path / "strict"),
                             novelty={**cal, "threshold": -1.0})
    out = CliRunner().invoke(cli, ["caption", files[0], "--model", strict, "--json"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.stdout)[0]
    assert row["novelty"] == pytest.approx(float(want[0]), abs=1e-3)
    assert any("unlike the photos this model was trained on" in n for n in row["notes"]) and "Note:" in out.stderr


def test_cli_export_from_model_adds_or_keeps_novelty(tmp_path, photo_set, photo_model):
    """export caption --from-model MODEL --data SET writes the novelty of that set; --from-model without
    --data keeps the model's prototypes; the captions stay those of the model exported again."""
    import tensorflow as tf

    _, _, plain_path = photo_model
    runner = CliRunner()
    r = runner.invoke(cli, ["export", "caption", "--from-model", plain_path, "--data", photo_set,
                            "--export", str(tmp_path / "caption"), "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)["exported"]
    r = runner.invoke(cli, ["export", "caption", "--from-model", first, "--export", str(tmp_path / "caption"),
                            "--json"])
    assert r.exit_code == 0, r.output
    second = json.loads(r.stdout)["exported"]
    a, b = tf.saved_model.load(first), tf.saved_model.load(second)
    np.testing.assert_array_equal(a.prototypes.numpy(), b.prototypes.numpy())
    metas = [json.load(open(os.path.join(p, "assets.extra", "caption.json"))) for p in (first, second)]
    assert metas[0]["novelty"] == metas[1]["novelty"] and metas[0]["novelty"]["val_images"] == 2
    files = [os.path.join(photo_set, "Flicker8k_Dataset", f"{i}.jpg") for i in range(4)]
    images = tf.constant([open(p, "rb").read() for p in files])
    plain = tf.saved_model.load(plain_path).signatures["caption"](image=images, beam_size=tf.ones([4], tf.int32))
    again = b.signatures["caption"](image=images, beam_size=tf.ones([4], tf.int32))
    assert list(plain["caption"].numpy()) == list(again["caption"].numpy())
    # Its card: the body and stated figures of the card it was exported again from, the section on
    # unfamiliar images from the model's record and the benchmark's figures, the versions anew.
    source = tmp_path / "source.md"
    source.write_text("---\nmodel-index:\n  - name: \"rnn-apps-caption\"\n    results:\n      - task:\n"
                      "          type: \"image-to-text\"\n        dataset:\n          type: \"flickr8k\"\n"
                      "        metrics:\n          - type: \"bleu\"\n            value: 20.2\n"
                      "            name: \"BLEU-4\"\n---\n\n# Caption model\n\nIntro.\n\n"
                      "## Data and its terms\n\nPhotos.\n\n## Versions\n\n* 1: old.\n", encoding="utf-8")
    figures = tmp_path / "novelty.json"
    figures.write_text(json.dumps({"seed": 0, "threshold": 0.4, "groups": {
        "solid colour": {"images": 7, "flagged": 7, "novelty_min": 0.7, "novelty_median": 0.75, "novelty_max": 0.8,
                         "examples": {"solid (0, 0, 0)": {"caption": "a dog in the dark", "novelty": 0.8}}},
        "validation photo": {"images": 2, "flagged": 0, "novelty_min": 0.1, "novelty_median": 0.2,
                             "novelty_max": 0.3, "examples": {}}}}), encoding="utf-8")
    r = runner.invoke(cli, ["card", "caption", "--model", second, "-i", f"from_card={source}",
                            "-i", f"novelty={figures}"])
    assert r.exit_code == 0, r.output
    card = open(os.path.join(str(tmp_path / "caption"), "README.md"), encoding="utf-8").read()
    threshold = metas[1]["novelty"]["threshold"]
    assert "## Data and its terms\n\nPhotos." in card and "value: 20.2" in card
    assert f"Above **{threshold}**" in card and "| solid colour | 7 | 7 |" in card and "a dog in the dark" in card
    assert card.index("## Unfamiliar images") < card.index("## Versions") and "* 2: the same training run" in card
    for args, words in ((["--from-model", plain_path, "--run-dir", str(tmp_path)], "not both"),
                        (["--from-model", plain_path, "--default-beam", "3"], "--default-beam is not used with --from-model"),
                        ([], "Give one of --run-dir")):
        r = runner.invoke(cli, ["export", "caption", *args, "--export", str(tmp_path / "x")])
        assert r.exit_code == 2 and words in r.output, r.output


SHIPPED_TRANSLATE = os.path.join(os.path.dirname(__file__), "..", "models", "translate")


@pytest.mark.skipif(not os.path.isdir(SHIPPED_TRANSLATE), reason="needs the shipped translation model")
def test_cli_caption_in_chinese_through_the_translation_model(photo_set, photo_model):
    import re

    _, _, path = photo_model
    files = [os.path.join(photo_set, "Flicker8k_Dataset", f"{i}.jpg") for i in range(2)]
    runner = CliRunner()
    r = runner.invoke(cli, ["caption", *files, "--model", path, "--lang", "zh", "--json",
                            "--translate-model", SHIPPED_TRANSLATE])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["image"] for x in rows] == files
    for x in rows:
        assert isinstance(x["caption_zh"], str)
        assert bool(re.search(r"[\u4e00-\u9fff]", x["caption_zh"])) == bool(x["caption"]), x
    r = runner.invoke(cli, ["caption", files[0], "--model", path, "--lang", "zh", "--translate-model", path])
    assert r.exit_code == 1 and "Traceback" not in r.output and "translat" in r.output.lower(), r.output


SHIPPED_CAPTION = os.path.join(os.path.dirname(__file__), "..", "models", "caption")


@pytest.mark.skipif(not (os.path.isdir(SHIPPED_CAPTION) and os.path.isdir(FLICKR)),
                    reason="needs the shipped photo model and ../shared/data/flickr8k")
def test_the_shipped_photo_model_describes_photos():
    """The default model of `rnn-apps caption` is the photo model: under 30 MB, self-contained, and its captions
    of dev photos are sentences about people or animals in the model's own vocabulary, not one sentence for all."""
    from rnn_apps.apps.caption.captioner import ImageCaptioner
    from rnn_apps.export import resolve_model_dir

    path = resolve_model_dir(SHIPPED_CAPTION)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
    assert size <= 30 * 2**20
    with open(os.path.join(FLICKR, "Flickr_8k.devImages.txt")) as f:
        names = [line.strip() for line in f if line.strip()][:8]
    cap = ImageCaptioner()
    assert os.path.samefile(cap.model_dir, path) and cap.default_beam == 5 and not cap.meta.get("synthetic")
    assert cap.config["backbone_weights"] == "mobilenet_v2_1.0_224_quant.tflite"  # a name, not a path
    captions = [r.caption for r in cap.caption_files([os.path.join(FLICKR, "Flicker8k_Dataset", n) for n in names])]
    words = set(cap.meta["vocab"]["tokens"])
    assert len(set(captions)) >= 6, captions
    for c in captions:
        assert 3 <= len(c.split()) <= 21 and set(c.split()) <= words, c
    subjects = {"man", "woman", "boy", "girl", "dog", "dogs", "people", "child", "children", "person", "men", "women"}
    assert sum(bool(subjects & set(c.split())) for c in captions) >= 6, captions
