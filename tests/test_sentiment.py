"""The sentiment app on tiny data: loaders, cleaning, split, LM pre-training, training, export, CLI, resume."""

import json
import os
import random
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.apps.sentiment import data as sdata
from rnn_apps.cli import cli

POS = "great wonderful loved brilliant superb enjoyable masterpiece".split()
NEG = "awful boring hated terrible dull waste worst".split()
FILLER = "the movie film plot acting story was and it this a of i really".split()
TINY = dict(max_tokens=60, embedding_dim=8, units=8, num_layers=2, max_len=24, batch_size=8, learning_rate=3e-2, dropout=0.1,
            val_fraction=0.25, seed=3, lm_seq_len=16, lm_tokens_per_batch=128, lm_num_sampled=8, lm_val_fraction=0.1,
            ngram_features=0)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _review(rng, words, n):
    body = [rng.choice(FILLER) for _ in range(n)]
    for _ in range(3):
        body.insert(rng.randrange(len(body) + 1), rng.choice(words))
    text = " ".join(body)
    return text[:1].upper() + text[1:] + ". I don't know!<br /><br />" + " ".join(rng.choice(words) for _ in range(2)) + "."


def write_aclimdb(root, n_train=24, n_test=6, n_unsup=10, seed=0, splits=("train", "test")):
    """A tiny tree in the original layout: aclImdb/{train,test}/{pos,neg}/ID_RATING.txt, train/unsup/ID_0.txt."""
    rng = random.Random(seed)
    base = os.path.join(root, "aclImdb")
    for split in splits:
        n = n_train if split == "train" else n_test
        for group, words, ratings in (("pos", POS, (7, 8, 9, 10)), ("neg", NEG, (1, 2, 3, 4))):
            os.makedirs(os.path.join(base, split, group))
            for i in range(n):
                with open(os.path.join(base, split, group, f"{i}_{rng.choice(ratings)}.txt"), "w", encoding="utf-8") as f:
                    f.write(_review(rng, words, rng.randrange(5, 20)))
    if "train" in splits:
        os.makedirs(os.path.join(base, "train", "unsup"))
        for i in range(n_unsup):
            with open(os.path.join(base, "train", "unsup", f"{i}_0.txt"), "w", encoding="utf-8") as f:
                f.write(_review(rng, rng.choice([POS, NEG]), rng.randrange(5, 20)))
    with open(os.path.join(base, "README"), "w") as f:
        f.write("tiny")
    return base


def write_tar(tree_parent, path):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(os.path.join(tree_parent, "aclImdb"), arcname="aclImdb")
    return str(path)


@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    """(directory, tar.gz with both splits, tar.gz with the train split only)."""
    root = tmp_path_factory.mktemp("imdb")
    write_aclimdb(str(root / "full"))
    write_aclimdb(str(root / "trainonly"), splits=("train",))
    full_tar = write_tar(str(root / "full"), root / "aclImdb_v1.tar.gz")
    train_tar = write_tar(str(root / "trainonly"), root / "aclImdb-train.tar.gz")
    return str(root / "full"), full_tar, train_tar


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, imdb):
    """A tiny classifier: one epoch of LM pre-training on train+unsup text, then four classifier epochs."""
    from rnn_apps.apps.sentiment import task

    run_dir = str(tmp_path_factory.mktemp("sentiment_run"))
    result = task.train(imdb[2], run_dir, epochs=4, verbose=0, save_every=0, pretrain_epochs=1, **TINY)
    return run_dir, result


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_run):
    from rnn_apps.apps.sentiment.export import export_sentiment

    run_dir, result = tiny_run
    app = tmp_path_factory.mktemp("models") / "sentiment"
    return export_sentiment(result["model"], result["vocabulary"], result["config"], str(app), lm=result["lm"])


def _h5_datasets(h5, prefix=""):
    import h5py

    out = []
    for k, v in h5.items():
        out += [prefix + k] if isinstance(v, h5py.Dataset) else _h5_datasets(v, prefix + k + "/")
    return out


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


# ------------------------------------------------------------------------------------------ data


def test_clean_review_replaces_br_and_keeps_the_rest():
    assert sdata.clean_review("Great!<br /><br />Really <BR>good<br/>.  Ok") == "Great! Really good . Ok"
    assert sdata.clean_review("  <i>Don't</i> miss   it:\n10/10 ") == "<i>Don't</i> miss it: 10/10"


def test_aclimdb_directory_and_tar_give_the_same_reviews(imdb):
    tree, full_tar, train_tar = imdb
    from_dir = sdata.read_aclimdb(tree, "train", ("pos", "neg", "unsup"))
    from_tar = sdata.read_aclimdb(full_tar, "train", ("pos", "neg", "unsup"))
    assert from_dir == from_tar and len(from_dir) == 58
    assert sdata.read_aclimdb(os.path.join(tree, "aclImdb"), "train") == [r for r in from_dir if r.label is not None]
    r = next(x for x in from_dir if x.id.startswith("train/pos/"))
    assert r.label == 1 and 7 <= r.rating <= 10 and "<br" not in r.text and "don't" in r.text
    assert all(x.label is None and x.rating == 0 for x in from_dir if "/unsup/" in x.id)
    assert {x.label for x in sdata.read_aclimdb(full_tar, "test")} == {0, 1}
    with pytest.raises(sdata.SentimentDataError, match="no test reviews.*holds the train split"):
        sdata.read_aclimdb(train_tar, "test")
    labelled, unlabelled = sdata.load_reviews(train_tar, "train", unsup=True)
    assert len(labelled) == 48 and len(unlabelled) == 10


def test_unreadable_sources_give_clear_errors(tmp_path):
    bad = tmp_path / "aclImdb" / "train" / "pos"
    bad.mkdir(parents=True)
    (bad / "1_9.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(sdata.SentimentDataError, match=r"1_9.txt: line 1 is not UTF-8"):
        sdata.read_aclimdb(str(tmp_path), "train")
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8bnot really")
    with pytest.raises(sdata.SentimentDataError):
        sdata.read_aclimdb(str(tmp_path / "junk.tar.gz"))
    with pytest.raises(sdata.SentimentDataError, match="No such file"):
        sdata.load_reviews(str(tmp_path / "nope"))


def test_validation_split_is_stratified_and_deterministic(imdb):
    reviews = sdata.read_aclimdb(imdb[0], "train")
    train, val = sdata.split_train_val(reviews, 0.25, seed=5)
    shuffled = list(reviews)
    random.Random(1).shuffle(shuffled)
    assert sdata.split_train_val(shuffled, 0.25, seed=5) == (train, val)  # independent of reading order
    assert sum(r.label for r in val) == 6 and len(val) == 12 and not set(val) & set(train)
    assert sdata.split_train_val(reviews, 0.25, seed=6)[1] != val


def test_block_validation_keeps_each_film_on_one_side():
    """aclImdb numbers a film's reviews consecutively: ``blocks`` holds out whole runs of them, ``random`` does not."""
    rng = random.Random(0)
    reviews, film_of = [], {}
    for label, group in ((0, "neg"), (1, "pos")):
        i, film = 0, 0
        while i < 2000:
            for _ in range(rng.randint(1, 30)):  # a film has 1 to 30 reviews, numbered one after the other
                r = sdata.Review(f"review {group} {i}", label, 7, f"train/{group}/{i}_7")
                reviews.append(r)
                film_of[r.id] = (group, film)
                i += 1
            film += 1

    def films_on_both_sides(train, val):
        return len({film_of[r.id] for r in train} & {film_of[r.id] for r in val})

    train, val = sdata.split_train_val(reviews, 0.1, seed=5, by="blocks")
    numbers = lambda rs, g: sorted(int(r.id.split("/")[2].split("_")[0]) for r in rs if r.id.split("/")[1] == g)
    for group in ("neg", "pos"):
        held = numbers(val, group)
        assert len(held) == 200 and not set(held) & set(numbers(train, group))
        blocks = {n // 20 for n in held}  # 200 held out in blocks of 20 (validation gets 10 of them)
        assert len(blocks) == 10 and held == sorted(n for b in blocks for n in range(20 * b, 20 * b + 20))
    assert films_on_both_sides(train, val) <= 2 * 20  # only films across a block's two edges
    shuffled = list(reviews)
    rng.shuffle(shuffled)
    assert sdata.split_train_val(shuffled, 0.1, seed=5, by="blocks") == (train, val)
    assert sdata.split_train_val(reviews, 0.1, seed=6, by="blocks")[1] != val
    assert films_on_both_sides(*sdata.split_train_val(reviews, 0.1, seed=5)) > 3 * 2 * 20  # most of its ~260 films
    with pytest.raises(sdata.SentimentDataError, match="one of blocks, random; received 'films'"):
        sdata.split_train_val(reviews, 0.1, by="films")


def test_csv_and_tsv_loaders(tmp_path):
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text('review,sentiment\n"Loved it, truly",positive\nMeh<br />bad,NEG\n\n"Fine",1\n', encoding="utf-8")
    rows = sdata.read_labelled_file(str(csv_file))
    assert [(r.text, r.label) for r in rows] == [("Loved it, truly", 1), ("Meh bad", 0), ("Fine", 1)]
    assert rows[2].id == "mine.csv:5"
    tsv = tmp_path / "mine.tsv"
    tsv.write_text('Great "quoted" film\tpos\nAwful\t0\n', encoding="utf-8")
    assert [(r.text, r.label) for r in sdata.read_labelled_file(str(tsv))] == [('Great "quoted" film', 1), ("Awful", 0)]
    for content, message in (
        ("good,1\nbad,maybe\n", r"mine2.csv:2: label 'maybe' is not one of"),
        ("good,1\nbad, but, why,0\n", r"mine2.csv:2: expected 2 columns"),
        ("good,1\n,0\n", r"mine2.csv:2: the text is empty"),
    ):
        (tmp_path / "mine2.csv").write_text(content, encoding="utf-8")
        with pytest.raises(sdata.SentimentDataError, match=message):
            sdata.read_labelled_file(str(tmp_path / "mine2.csv"))
    (tmp_path / "mine2.csv").write_bytes(b"good,1\nok,1\nna\xefve,0\n")
    with pytest.raises(sdata.SentimentDataError, match=r"line 3 is not UTF-8"):
        sdata.read_labelled_file(str(tmp_path / "mine2.csv"))


def test_tfds_loader_with_mock_data_and_offline_error(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        reviews = sdata.load_tfds_imdb("train")
        labelled, _ = sdata.load_reviews("tfds:imdb_reviews", "train")
    assert len(reviews) == 5 == len(labelled)
    assert all(r.label in (0, 1) and isinstance(r.text, str) for r in reviews)
    with pytest.raises(sdata.SentimentDataError, match="needs a network; offline, pass --data"):
        sdata.load_tfds_imdb("test", data_dir=str(tmp_path), download=False)


def test_bucket_batches_resume_at_any_step():
    lengths = [3, 17, 40, 5, 33, 8, 64, 2, 21, 30, 12, 9]
    plan = sdata.BucketBatches(lengths, batch_size=3, seed=4, multiple=2)
    full = [b.tolist() for b in plan.iterate(0, 2)]
    assert len(full) == 2 * plan.steps_per_epoch
    assert [b.tolist() for b in plan.iterate(3, 2)] == full[3:]
    assert sorted(i for b in full[: plan.steps_per_epoch] for i in b) == list(range(12))
    seqs = [np.arange(1, n + 1, dtype=np.int32) for n in lengths]
    x, y, w = next(sdata.classifier_batches(plan, seqs, [1, 0] * 6))
    assert x.shape[0] % 2 == 0 and x.shape[1] % 16 == 0 and w.sum() <= 3
    x, y, w = next(sdata.lm_batches(plan, seqs))
    n = int((x[0] > 0).sum())
    assert y[0, 0, 0] == x[0, 1] and y[0, 1, 1] == x[0, 0] and w[0, :, 0].sum() == n - 1 == w[0, :, 1].sum()


# ------------------------------------------------------------------------------------------ model


def test_standardize_vectorize_and_head_tail():
    import tensorflow as tf

    from rnn_apps.apps.sentiment import model as smodel

    out = smodel.standardize(tf.constant(["I DON'T like it.<br />'Quoted' — Ça va, 7/10!", b"bad \xff bytes"])).numpy()
    assert out[0].decode().split() == ["i", "don't", "like", "it", "quoted", "ça", "va", "7", "10"]
    assert out[1].decode().split() == ["bad", "bytes"]
    vec = smodel.make_vectorizer([f"w{i}" for i in range(1, 30)])
    texts = [" ".join(f"w{i}" for i in range(1, 30)), "w3 unknownword", ""]
    ids = smodel.encode_texts(vec, texts, max_len=8)
    assert ids[0].tolist() == [2, 3, 25, 26, 27, 28, 29, 30]  # the first 2 and the last 6 of 29 words
    assert ids[1].tolist() == [4, 1] and ids[2].tolist() == []
    dense = smodel.dense_ids(vec, tf.constant(["", ""]), 8).numpy()
    assert dense.shape == (2, 1) and dense.sum() == 0


def test_language_model_never_sees_the_word_it_predicts():
    import keras

    from rnn_apps.apps.sentiment.model import BiLanguageModel, build_classifier

    keras.utils.set_random_seed(0)
    clf = build_classifier(30, 6, 5, num_layers=2, dropout=0.0, word_dropout=0.0)
    lm = BiLanguageModel(clf, num_sampled=4)
    ids = np.array([[5, 6, 7, 8, 9, 10, 0, 0]], np.int32)
    base = np.asarray(lm(ids))
    changed = ids.copy()
    changed[0, 3] = 20
    h = np.asarray(lm(changed))
    np.testing.assert_allclose(h[0, :3, 0], base[0, :3, 0], atol=1e-6)  # forward LM at t < 3 reads only t' <= t
    assert np.abs(h[0, 3:6, 0] - base[0, 3:6, 0]).max() > 1e-6
    np.testing.assert_allclose(h[0, 4:6, 1], base[0, 4:6, 1], atol=1e-6)  # backward LM at t > 3 reads only t' >= t
    assert np.abs(h[0, :4, 1] - base[0, :4, 1]).max() > 1e-6
    # layer 0 of the LM is exactly the classifier's bidirectional layer 0
    emb = clf.get_layer("embedding")(ids)
    bi = clf.get_layer("encoder").bidirectional_layers[0]
    both = np.asarray(bi(emb, mask=ids != 0))
    f = np.asarray(bi.forward_layer(emb, mask=ids != 0))
    np.testing.assert_allclose(both[0, :6, :5], f[0, :6], atol=1e-6)


# ------------------------------------------------------------------------------------------ training and export


def test_tiny_training_pretrains_learns_and_exports(tiny_run, tiny_model):
    import tensorflow as tf

    from rnn_apps import export as shared_export

    run_dir, result = tiny_run
    assert result["stats"]["unlabelled_reviews"] == 10 and result["stats"]["lm_train_tokens"] > 0
    assert result["lm_val_perplexity"] is not None and result["lm_val_perplexity"] < 60
    rows = result["history"]
    assert len(rows) == 4 and all("val_accuracy" in r for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"] and result["val_accuracy"] >= 0.9
    # keep_best (the default): the model holds the epoch of the lowest validation loss, and says which.
    best = int(np.argmin([r["val_loss"] for r in rows])) + 1
    assert (result["best_epoch"], result["stopped_early"]) == (best, False)
    assert result["val_accuracy"] == rows[best - 1]["val_accuracy"]
    import h5py

    with h5py.File(os.path.join(run_dir, "best.weights.h5")) as b, h5py.File(os.path.join(run_dir, "final.weights.h5")) as f:
        arrays = lambda h: [np.asarray(h[k]) for k in sorted(_h5_datasets(h))]  # noqa: E731
        assert len(arrays(b)) > 0 and all(np.array_equal(x, y) for x, y in zip(arrays(b), arrays(f)))
    assert os.path.exists(os.path.join(run_dir, "lm", "head.npz"))
    meta = shared_export.read_extra(tiny_model, "sentiment.json")
    assert meta["config"]["max_len"] == 24 and len(meta["vocabulary"]) + 2 == result["stats"]["vocab_size"]
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(tiny_model, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    sigs = sm.meta_graphs[0].signature_def
    assert sigs["classify"].method_name == "tensorflow/serving/classify"
    assert set(sigs["classify"].inputs) == {"inputs"} and set(sigs["classify"].outputs) == {"classes", "scores"}
    assert set(sigs["serving_default"].outputs) == {"probability", "label"}
    assert tf.saved_model.experimental.read_fingerprint(tiny_model).saved_model_checksum > 0
    # Only inference state is saved (no optimizer moments), and the weights are the trained ones.
    names = [n for n, _ in tf.train.list_variables(os.path.join(tiny_model, "variables", "variables"))]
    assert names and not [n for n in names if "optimizer" in n]
    loaded = tf.saved_model.load(tiny_model)
    for saved, trained in zip(loaded.model_weights, result["model"].weights):
        np.testing.assert_array_equal(saved.numpy(), np.asarray(trained))


_LOAD_WITHOUT_RNN_APPS = r"""
import sys
sys.modules["rnn_apps"] = None  # the SavedModel must not need the package
import json
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
texts = ["A wonderful, brilliant film. Loved it!", "Awful and boring, a waste.", ""]
out = m.signatures["serving_default"](text=tf.constant(texts))
example = tf.train.Example(features=tf.train.Features(feature={
    "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode() for t in texts[:1]]))}))
cls = m.signatures["classify"](inputs=tf.constant([example.SerializeToString()] * 2))
words = m.signatures["words"](text=tf.constant(texts))
print(json.dumps({
    "prob_dtype": out["probability"].dtype.name, "prob_shape": out["probability"].shape.as_list(),
    "prob": out["probability"].numpy().tolist(), "label": [x.decode() for x in out["label"].numpy()],
    "classes": [[c.decode() for c in row] for row in cls["classes"].numpy()], "scores": cls["scores"].numpy().tolist(),
    "scores_dtype": cls["scores"].dtype.name, "words": words["words"].numpy().tolist(),
}))
"""


def test_savedmodel_loads_without_rnn_apps(tiny_model, tmp_path):
    script = tmp_path / "load.py"
    script.write_text(_LOAD_WITHOUT_RNN_APPS)
    r = subprocess.run([sys.executable, str(script), tiny_model], env=ENV, capture_output=True, text=True, timeout=300,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["prob_dtype"] == "float32" and out["prob_shape"] == [3]
    assert all(0.0 <= p <= 1.0 for p in out["prob"])
    assert out["label"] == ["positive" if p >= 0.5 else "negative" for p in out["prob"]]
    assert out["classes"] == [["negative", "positive"]] * 2 and out["scores_dtype"] == "float32"
    assert out["scores"][0][1] == pytest.approx(out["prob"][0], abs=1e-6)
    assert out["scores"][0][0] == pytest.approx(1 - out["prob"][0], abs=1e-6)
    assert out["words"] == [6, 5, 0]


def test_savedmodel_predictions_equal_the_keras_model(tiny_run, tiny_model):
    import tensorflow as tf

    from rnn_apps.apps.sentiment import model as smodel

    _, result = tiny_run
    texts = ["great movie, loved it", "Boring plot.<br />Worst acting!", " ".join(["the film was dull"] * 20), "zzz"]
    vec = smodel.make_vectorizer(result["vocabulary"])
    ids = smodel.dense_ids(vec, tf.constant(texts), result["config"]["max_len"])
    assert ids.shape[1] == 24  # the long review is cut to max_len
    expected = result["model"].predict(ids, verbose=0)[:, 0]
    got = tf.saved_model.load(tiny_model).signatures["serving_default"](text=tf.constant(texts))["probability"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_help(runner):
    for sub in (["classify"], ["train", "sentiment"], ["fine-tune", "sentiment"], ["evaluate", "sentiment"],
                ["export", "sentiment"]):
        r = runner.invoke(cli, [*sub, "--help"])
        assert r.exit_code == 0 and "Example" in r.output, sub


def test_classify_cli(runner, tiny_model, tmp_path):
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--json", "Loved it, wonderful!", "Awful, boring."])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["label"] for x in rows] == ["positive", "negative"]
    assert rows[0]["probability"] > 0.5 > rows[1]["probability"] and rows[0]["truncated"] is False
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "Loved it, wonderful!"])
    label, prob = r.output.split()
    assert r.exit_code == 0 and label == rows[0]["label"] and float(prob) == pytest.approx(rows[0]["probability"], abs=1e-3)
    reviews = tmp_path / "reviews.txt"
    reviews.write_bytes(b"\xef\xbb\xbfLoved it, wonderful!\r\n\r\nAwful, boring.\n")
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--file", str(reviews), "--json"])
    assert r.exit_code == 0 and [x["label"] for x in json.loads(r.stdout)] == [x["label"] for x in rows]
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "-", "--json"], input=b"Awful, boring.\nLoved it!\n")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 2
    # A 1 MB review: read by its head and tail, answered, flagged.
    big = " ".join(["the plot was great"] * 65000)
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--json", big])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["truncated"] is True and "read its first 6 and last 18" in r.stderr


def test_classify_cli_errors(runner, tiny_model, tmp_path):
    def fails(args, message, **kw):
        r = runner.invoke(cli, ["classify", "--model", tiny_model, *args], **kw)
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, r.output

    fails(["good", ""], "Review 2 is empty")
    fails(["  "], "Review 1 is empty")
    fails(["!!! ..."], "Review 1 has no words")
    fails(["ok", "bad \udcff bytes"], "Review 2 is not valid UTF-8")
    fails([], "Give reviews to classify")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine review\nna\xefve \xff\n")
    fails(["--file", str(bad)], f"{bad}, line 2: not UTF-8 text")
    fails(["-"], "standard input, line 1: not UTF-8", input=b"\xc3(\n")
    fails(["--file", str(tmp_path / "missing.txt")], "No such file")
    r = runner.invoke(cli, ["classify", "--model", str(tmp_path), "good"])
    assert r.exit_code == 1 and "No SavedModel" in r.output


def test_evaluate_cli(runner, tiny_model, imdb):
    tree, full_tar, train_tar = imdb
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", full_tar, "--model", tiny_model, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["reviews"] == 12 and 0 <= out["accuracy"] <= 1
    assert out["true_positive"] + out["false_negative"] == 6 == out["true_negative"] + out["false_positive"]
    assert out["accuracy"] == pytest.approx((out["true_positive"] + out["true_negative"]) / 12)
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", tree, "--model", tiny_model, "--split", "val"])
    assert r.exit_code == 0 and r.stdout.startswith("accuracy: ") and "12 val reviews" in r.stdout, r.output
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", train_tar, "--model", tiny_model])
    assert r.exit_code == 1 and "no test reviews" in r.output and "Traceback" not in r.output


def test_fine_tune_from_exported_model_on_csv(runner, tiny_model, tmp_path):
    rng = random.Random(9)
    rows = ["text,label"] + [f'"{_review(rng, POS if i % 2 else NEG, 6)}",{"pos" if i % 2 else "neg"}' for i in range(16)]
    mine = tmp_path / "mine.csv"
    mine.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out_dir = tmp_path / "ft"
    r = runner.invoke(cli, ["fine-tune", "sentiment", "--data", str(mine), "--model", tiny_model, "--out", str(out_dir),
                            "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--seed", "1",
                            "--pretrain-epochs", "1", "--layer-lr-decay", "3", "--adversarial", "2", "--keep-last",
                            "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert "best_epoch" not in res and not (tmp_path / "run" / "best.weights.h5").exists()  # --keep-last
    assert res["exported"].startswith(str(out_dir)) and res["stats"]["train_reviews"] == 14
    assert os.path.exists(out_dir / "README.md")
    from rnn_apps.apps.sentiment.export import load_base

    old, new = load_base(tiny_model), load_base(res["exported"])
    assert new["vocabulary"] == old["vocabulary"] and new["config"]["units"] == 8
    assert new["config"]["layer_lr_decay"] == 3.0 and new["config"]["adversarial"] == 2.0
    assert new["config"]["keep_best"] is False
    assert len(new["weights"]) == len(old["weights"]) and len(new["lm_weights"]) == 5
    assert any(not np.allclose(a, b) for a, b in zip(new["weights"], old["weights"]))
    r = runner.invoke(cli, ["classify", "--model", res["exported"], "great"])
    assert r.exit_code == 0 and r.output.split()[0] in ("positive", "negative")


def test_export_cli_writes_next_version_and_card(runner, tiny_run, tiny_model):
    run_dir, _ = tiny_run
    models = os.path.dirname(os.path.dirname(tiny_model))
    notes = os.path.join(os.path.dirname(models), "notes.md")
    with open(notes, "w", encoding="utf-8") as f:
        f.write("Trained in **one** stretch on a tiny corpus.\n")
    r = runner.invoke(cli, ["export", "sentiment", "--run-dir", run_dir, "--models", models, "--notes", notes])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == os.path.join(models, "sentiment", "2")
    card = open(os.path.join(models, "sentiment", "README.md"), encoding="utf-8").read()
    assert "val accuracy" in card and "LM epoch" in card and "MB on disk" in card
    assert "## How this version was trained\n\nTrained in **one** stretch on a tiny corpus.\n" in card


def test_pretraining_may_grow_on_resume_until_the_classifier_starts(tiny_run, tmp_path, imdb):
    import shutil

    from rnn_apps import training
    from rnn_apps.apps.sentiment import task

    run_dir, result = tiny_run
    finished = tmp_path / "finished"
    shutil.copytree(run_dir, finished)
    before = sorted(os.listdir(finished))
    with pytest.raises(training.TrainingError, match="begun training its classifier.*resume that one with --pretrain-epochs 2"):
        task.train(imdb[2], str(finished), epochs=4, resume=True, verbose=0, pretrain_epochs=2)
    assert sorted(os.listdir(finished)) == before
    # What the message says: a new run dir with the settings, vocabulary and language model.
    more = tmp_path / "more"
    more.mkdir()
    for name in (task.CONFIG_FILE, task.VOCAB_FILE):
        shutil.copy(finished / name, more / name)
    shutil.copytree(finished / task.LM_DIR, more / task.LM_DIR)
    grown = task.train(imdb[2], str(more), epochs=1, resume=True, verbose=0, save_every=0, pretrain_epochs=2)
    lm_rows = training.read_history(str(more / task.LM_DIR))
    old_rows = training.read_history(os.path.join(run_dir, task.LM_DIR))
    assert [r["epoch"] for r in lm_rows] == [1, 2] and lm_rows[0] == old_rows[0]  # epoch 1 kept, epoch 2 trained
    assert grown["config"]["pretrain_epochs"] == 2 and len(grown["history"]) == 1
    assert json.loads((more / task.CONFIG_FILE).read_text())["settings"]["pretrain_epochs"] == 2
    with pytest.raises(training.TrainingError, match="may grow on --resume, not fall to 1"):
        task.train(imdb[2], str(more), epochs=1, resume=True, verbose=0, pretrain_epochs=1)
    # A run started without pre-training has a vocabulary of the labelled reviews only.
    none = tmp_path / "none"
    none.mkdir()
    cfg = json.loads((finished / task.CONFIG_FILE).read_text())
    cfg["settings"]["pretrain_epochs"] = 0
    (none / task.CONFIG_FILE).write_text(json.dumps(cfg))
    shutil.copy(finished / task.VOCAB_FILE, none / task.VOCAB_FILE)
    with pytest.raises(training.TrainingError, match="started without language-model pre-training"):
        task.train(imdb[2], str(none), epochs=1, resume=True, verbose=0, pretrain_epochs=1)


def test_resume_after_interruption_matches_uninterrupted_run(runner, tmp_path, imdb):
    """A run stopped mid-epoch (after a checkpoint) and resumed ends with the weights of one never stopped."""
    import keras

    from rnn_apps import training
    from rnn_apps.apps.sentiment import task

    settings = {**TINY, "num_layers": 1, "dropout": 0.2, "layer_lr_decay": 2.0, "adversarial": 1.0}

    class Stop(Exception):
        pass

    class StopAt(keras.callbacks.Callback):
        def __init__(self, step):
            super().__init__()
            self.step, self.seen = step, 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == self.step:
                raise Stop()

    def final(run_dir):
        ckpt = training.CheckpointManager(str(run_dir)).latest()
        with np.load(os.path.join(ckpt, "state.npz")) as z:
            return {k: z[k] for k in z.files}

    # The uninterrupted run goes through the CLI (same settings), and exports.
    r = runner.invoke(cli, ["train", "sentiment", "--data", imdb[0], "--run-dir", str(tmp_path / "full"), "--epochs", "2",
                            "--save-every", "2", "--max-tokens", "60", "--embedding-dim", "8", "--units", "8",
                            "--layers", "1", "--max-len", "24", "--batch-size", "8", "--learning-rate", "3e-2",
                            "--dropout", "0.2", "--val-fraction", "0.25", "--seed", "3", "--layer-lr-decay", "2",
                            "--adversarial", "1", "--json",
                            "--export", str(tmp_path / "models" / "sentiment")])
    assert r.exit_code == 0, r.output
    full = json.loads(r.stdout)
    assert full["exported"] == str(tmp_path / "models" / "sentiment" / "1") and 0 <= full["val_accuracy"] <= 1
    assert full["lm_val_perplexity"] is None and os.path.exists(tmp_path / "models" / "sentiment" / "README.md")
    card = (tmp_path / "models" / "sentiment" / "README.md").read_text(encoding="utf-8")
    assert "learns at 1/2 of the rate of the layer above (head 0.03, top recurrent layer 0.015, embedding 0.0075)" in card
    assert "moved ε = 1 embedding standard deviations" in card
    assert "in seeded blocks of up to 100 consecutive reviews" in card  # --val-split blocks, the default
    assert full["best_epoch"] in (1, 2) and full["stopped_early"] is False
    assert f"Kept: the weights of the epoch with the lowest validation loss (epoch {full['best_epoch']} of 2)" in card
    steps = full["step"] // 2
    with pytest.raises(Stop):
        task.train(imdb[0], str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, callbacks=[StopAt(steps + 3)],
                   **settings)
    with pytest.raises(training.TrainingError, match="--resume"):
        task.train(imdb[0], str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, **settings)
    resumed = task.train(imdb[0], str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, resume=True, **settings)
    assert resumed["step"] == full["step"]
    a, b = final(tmp_path / "full"), final(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    with open(tmp_path / "full" / "history.jsonl") as f:
        full_history = [json.loads(line) for line in f]
    assert resumed["history"][-1]["val_loss"] == pytest.approx(full_history[-1]["val_loss"], rel=1e-5)


def test_adversarial_training_step_follows_the_equations():
    """ε > 0: one SGD step equals -lr·(∇L(e) + ∇L(e + r)), r = ε·σ_E·g/‖g‖ computed here in NumPy."""
    import keras
    import tensorflow as tf

    from rnn_apps.apps.sentiment.model import build_classifier

    keras.utils.set_random_seed(0)
    ids = np.array([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11], [12, 2, 0, 0, 0]], np.int32)
    y = np.array([[1.0], [0.0], [1.0]], np.float32)
    eps, lr = 3.0, 0.1
    model = build_classifier(30, 6, 5, num_layers=2, dropout=0.0, word_dropout=0.0, adversarial_epsilon=eps)
    emb = model.get_layer("embedding")
    np.testing.assert_allclose(np.asarray(model.from_embeddings(emb(ids), ids != 0)), np.asarray(model(ids)), atol=1e-6)
    variables = model.trainable_variables
    before = [v.numpy() for v in variables]

    def loss_of(e):
        p = model.from_embeddings(e, ids != 0, training=True)
        return tf.reduce_mean(keras.losses.binary_crossentropy(y, p))

    with tf.GradientTape() as tape:
        e = emb(ids)
        clean = loss_of(e)
    g_e, *g_clean = tape.gradient(clean, [e, *variables])
    g = g_e.numpy() * (ids != 0)[..., None]
    r = eps * emb.embeddings.numpy().std() * g / np.sqrt((g ** 2).sum(axis=(1, 2), keepdims=True))
    assert np.abs(r[ids == 0]).max() == 0
    np.testing.assert_allclose(np.sqrt((r ** 2).sum(axis=(1, 2))), eps * emb.embeddings.numpy().std(), rtol=1e-4)
    with tf.GradientTape() as tape:
        adv = loss_of(emb(ids) + r)
    g_adv = tape.gradient(adv, variables)
    assert float(adv) > float(clean)  # the perturbation is the harmful direction
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="binary_crossentropy")
    history = model.fit(ids, y, batch_size=3, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(float(clean + adv), rel=1e-5)
    for v, w, a, b in zip(variables, before, g_clean, g_adv):
        expected = w - lr * (tf.convert_to_tensor(a) + tf.convert_to_tensor(b)).numpy()
        np.testing.assert_allclose(v.numpy(), expected, atol=1e-6, err_msg=v.path)
    with pytest.raises(ValueError, match="adversarial_epsilon must be a finite number >= 0"):
        model.adversarial_epsilon = -1.0


_ADVERSARIAL_MIRRORED = r"""
import json
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from rnn_apps import training
from rnn_apps.apps.sentiment.model import build_classifier
rng = np.random.default_rng(0)
ids = rng.integers(2, 30, size=(8, 7)).astype("int32")
ids[::3, 4:] = 0
y = (rng.random((8, 1)) > 0.5).astype("float32")
finals, losses = {}, {}
for name in ("default", "mirrored"):
    strategy = training.get_strategy(name)
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = build_classifier(30, 6, 5, num_layers=1, dropout=0.0, word_dropout=0.0, adversarial_epsilon=2.0)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    start = [v.numpy() for v in model.trainable_variables]
    h = model.fit(ids, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    finals[name] = [v.numpy() for v in model.trainable_variables]
    losses[name] = h.history["loss"]
    replicas = strategy.num_replicas_in_sync
diff = max(float(np.abs(a - b).max()) for a, b in zip(finals["default"], finals["mirrored"]))
moved = max(float(np.abs(a - b).max()) for a, b in zip(finals["mirrored"], start))
print(json.dumps({"replicas": replicas, "diff": diff, "moved": moved, "losses": losses}))
"""


def test_adversarial_training_under_mirrored_strategy_matches_one_device(tmp_path):
    """Two logical CPU devices: the adversarial step's weights and reported loss equal the single-device run's."""
    script = tmp_path / "adv.py"
    script.write_text(_ADVERSARIAL_MIRRORED)
    r = subprocess.run([sys.executable, str(script)], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["replicas"] == 2 and info["diff"] < 1e-5 and info["moved"] > 1e-3
    np.testing.assert_allclose(info["losses"]["mirrored"], info["losses"]["default"], rtol=1e-5)


def test_discriminative_learning_rates_follow_the_layers(tmp_path):
    """ULMFiT's rates: head 1, top layer 1/d, each layer below 1/d of the one above, embedding lowest."""
    from rnn_apps import training
    from rnn_apps.apps.sentiment import task
    from rnn_apps.apps.sentiment.model import build_classifier

    for _ in range(2):  # a second model in the same process names its variables the same way
        model = build_classifier(50, 4, 4, num_layers=2)
        task.compile_classifier(model, 1e-3, 1.0, 10, layer_lr_decay=2.0)
        rates = {v.path.split("/")[0] + ("/" + v.path.split("/")[1] if v.path.startswith("encoder") else ""):
                 model.optimizer.multiplier(v.path) for v in model.trainable_variables}
        assert rates == {"embedding": 0.125, "encoder/bidirectional_0": 0.25, "encoder/bidirectional_1": 0.5,
                         "classifier": 1.0}
    task.compile_classifier(model, 1e-3, 1.0, 10)
    assert {model.optimizer.multiplier(v.path) for v in model.trainable_variables} == {1.0}
    with pytest.raises(ValueError, match="layer_lr_decay must be a finite number >= 1"):
        task.layer_lr_multipliers(2, 0.5)
    for option, value, message in (("--layer-lr-decay", "0.5", "layer_lr_decay must be a finite number >= 1"),
                                   ("--adversarial", "-1", "adversarial_epsilon must be a finite number >= 0"),
                                   ("--adversarial", "nan", "adversarial_epsilon must be a finite number >= 0")):
        r = CliRunner().invoke(cli, ["train", "sentiment", "--data", "no-such-reviews.csv", "--run-dir",
                                     str(tmp_path / "run"), option, value])
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "run").exists()  # refused before any work
    with pytest.raises(training.TrainingError, match="one of blocks, random; received 'films' \\(--val-split\\)"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), val_split="films")
    assert not (tmp_path / "run").exists()
    with pytest.raises(training.TrainingError, match="patience must be a whole number of epochs >= 0"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), patience=-2)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ n-gram branch


def test_nb_ratios_and_branch_logits_match_numpy():
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams

    x = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1], [0, 0, 1, 1]], np.float32)
    y = np.array([1, 1, 0, 0, 1], np.float32)
    p = 1 + x[y == 1].sum(0)
    q = 1 + x[y == 0].sum(0)
    expected = np.log(p / p.sum()) - np.log(q / q.sum())
    np.testing.assert_allclose(ngrams.nb_ratios(tf.sparse.from_dense(x), y), expected, rtol=1e-6)
    vec = ngrams.make_ngram_vectorizer(2, vocabulary=["good", "bad movie", "bad", "not"])
    w = np.array([0.5, 2.0, -3.0, -1.0, 0.25], np.float32)  # index 0: an n-gram outside the vocabulary
    # "Not bad movie!" -> not, bad, movie, "not bad", "bad movie": known not, bad, bad movie; unknown movie, not bad.
    # "good good" -> good (counted once: multi-hot) and the unknown "good good".
    z = ngrams.ngram_logits(vec, w, 0.1, ["Not bad movie!", "good good", ""])
    np.testing.assert_allclose(z, [0.25 - 1.0 - 3.0 + 0.5 + 0.1, 2.0 + 0.5 + 0.1, 0.1], rtol=1e-6)


def test_weighted_nb_ratios_match_numpy():
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams

    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0]], np.float32)
    y = np.array([1, 0, 1, 0], np.float32)
    s = np.array([1.0, 1.0, 0.5, 0.25], np.float32)
    p = 1 + (s * y) @ x
    q = 1 + (s * (1 - y)) @ x
    np.testing.assert_allclose(ngrams.nb_ratios(tf.sparse.from_dense(x), y, sample_weights=s),
                               np.log(p / p.sum()) - np.log(q / q.sum()), rtol=1e-6)


def test_self_training_learns_words_seen_only_in_unlabelled_reviews():
    from rnn_apps.apps.sentiment import ngrams

    rng = random.Random(0)
    texts = [_review(rng, POS if i % 2 else NEG, 8) for i in range(40)]
    labels = [i % 2 for i in range(40)]
    # "zorbly" and "blech" never occur in a labelled review; in unlabelled ones they go with the label words.
    unlabelled = [_review(rng, POS, 8) + " zorbly" for _ in range(15)] + [_review(rng, NEG, 8) + " blech" for _ in range(15)]
    plain = ngrams.fit_ngram_branch(texts, labels, 2000, 1, tokens="punctuation")
    assert "zorbly" not in plain[0]
    off = ngrams.fit_ngram_branch(texts, labels, 2000, 1, tokens="punctuation", unlabelled=unlabelled, unlabelled_weight=0)
    assert off[0] == plain[0] and np.array_equal(off[1], plain[1])
    vocab, weights, bias = ngrams.fit_ngram_branch(texts, labels, 2000, 1, tokens="punctuation", unlabelled=unlabelled,
                                                   unlabelled_weight=0.5)
    w = dict(zip(vocab, weights[1:]))
    assert w["zorbly"] > 0.05 and w["blech"] < -0.05
    assert w["great"] > 0 and w["awful"] < 0
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="number in \\[0, 1\\]"):
            ngrams.fit_ngram_branch(texts, labels, 2000, 1, unlabelled=unlabelled, unlabelled_weight=bad)


def test_combiner_is_the_logistic_regression_optimum_and_cross_validates():
    from rnn_apps.apps.sentiment import ngrams

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(np.float64)
    a = (2 * y - 1) * 1.5 + rng.normal(0, 2, 400)  # two noisy views of the label
    b = (2 * y - 1) * 1.0 + rng.normal(0, 1.5, 400)
    coef = ngrams.fit_combiner(np.stack([a, b], 1), y, l2=0.0)
    design = np.stack([a, b, np.ones_like(a)], 1)
    p = 1 / (1 + np.exp(-(design @ coef.astype(np.float64))))
    np.testing.assert_allclose(design.T @ (p - y) / len(y), 0, atol=1e-5)  # the gradient vanishes at the optimum
    both = ngrams.accuracy(p, y)
    assert both > max(ngrams.accuracy(a > 0, y), ngrams.accuracy(b > 0, y)) + 0.02
    p_rnn = 1 / (1 + np.exp(-a))
    cv = ngrams.cross_validated_accuracy(p_rnn, b, y, folds=2, seed=1)
    assert abs(cv - both) < 0.05
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        ngrams.fit_combiner(np.zeros((3, 3)), np.zeros(3))


def _python_tokens(text, tokens):
    """An independent reference of the branch's tokens (ASCII text): words, and with "punctuation" each mark."""
    import re

    text = text.lower().replace("<br />", " ")
    if tokens == "punctuation":
        text = re.sub(r"([^a-z0-9\s'])", r" \1 ", text)
    else:
        text = re.sub(r"[^a-z0-9']+", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def test_punctuation_tokens_match_a_python_reference():
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams

    texts = ["Awful!! 2/10... Don't 'quote' me :) <br />Great?", "a_b (c) [d] $5 & #1", "  ", ""]
    got = [t.decode().split() for t in ngrams.ngram_standardize(tf.constant(texts)).numpy()]
    assert got == [_python_tokens(t, "punctuation") for t in texts]
    assert got[0] == ["awful", "!", "!", "2", "/", "10", ".", ".", ".", "don't", "quote", "me", ":", ")", "great", "?"]
    # Non-ASCII letters stay in words; a dash and curly quotes are marks; bad UTF-8 becomes U+FFFD, not an error.
    out = ngrams.ngram_standardize(tf.constant(["Naïve—café \u2018ok\u2019", b"bad \xff byte",
                                                "no\u00a0break\x0btab\u200bzero"])).numpy()
    assert out[0].decode().split() == ["naïve", "—", "café", "ok"]
    assert out[1].decode().split() == ["bad", "\ufffd", "byte"]
    assert out[2].decode().split() == ["no", "break", "tab", "zero"]  # Unicode spaces and controls separate
    vec = ngrams.make_ngram_vectorizer(2, vocabulary=["!", "awful !", "! !", "awful"], tokens="punctuation")
    w = np.array([0.5, 1.0, -2.0, 0.25, -3.0], np.float32)
    # "Awful!!" -> awful, !, "awful !", "! !" (each once) and nothing unknown; "awful" alone -> awful.
    np.testing.assert_allclose(ngrams.ngram_logits(vec, w, 0.0, ["Awful!!", "awful", "!?"]),
                               [1.0 - 2.0 + 0.25 - 3.0, -3.0, 1.0 + 0.5], rtol=1e-6)
    words = ngrams.make_ngram_vectorizer(2, vocabulary=["!", "awful"], tokens="words")
    np.testing.assert_allclose(ngrams.ngram_logits(words, w[:3], 0.0, ["Awful!!"]), [-2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="one of words, punctuation; received 'chars'"):
        ngrams.make_ngram_vectorizer(2, tokens="chars")


def test_ngram_branch_saved_without_tokens_reads_as_words(tmp_path):
    from rnn_apps.apps.sentiment import ngrams, task

    branch = ngrams.NgramBranch(["good", "bad"], np.array([0.0, 1.0, -1.0]), 0.5, 1, np.array([1.0, 1.0, 0.0]),
                                tokens="punctuation")
    branch.save(str(tmp_path / "b"))
    assert ngrams.NgramBranch.load(str(tmp_path / "b")).tokens == "punctuation"
    meta = json.loads((tmp_path / "b" / ngrams.META_FILE).read_text())
    del meta["tokens"]  # what branches fitted before the setting existed saved
    (tmp_path / "b" / ngrams.META_FILE).write_text(json.dumps(meta))
    assert ngrams.NgramBranch.load(str(tmp_path / "b")).tokens == "words"
    with pytest.raises(ValueError, match="received 'chars'"):
        ngrams.NgramBranch(["good"], np.zeros(2), 0.0, 1, np.zeros(3), tokens="chars")
    from rnn_apps.training import TrainingError

    with pytest.raises(TrainingError, match="--ngram-tokens"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), ngram_tokens="chars")
    with pytest.raises(TrainingError, match="--ngram-self-training"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), ngram_self_training=2.0)
    assert not (tmp_path / "run").exists()


def _python_ngram_logit(branch, text):
    """An independent reference: uni- and bigrams in plain Python, summed branch weights."""
    words = _python_tokens(text, branch.tokens)
    grams = set(words) | {f"{u} {v}" for u, v in zip(words, words[1:])}
    index = {g: i + 1 for i, g in enumerate(branch.vocabulary)}
    known = {index[g] for g in grams if g in index}
    return float(sum(branch.weights[i] for i in known) + (branch.weights[0] if len(known) < len(grams) else 0)
                 + branch.bias)


@pytest.fixture(scope="module")
def ngram_run(tmp_path_factory, imdb):
    from rnn_apps.apps.sentiment import task

    run_dir = str(tmp_path_factory.mktemp("sentiment_ngram_run"))
    old = task.MIN_COMBINER_REVIEWS
    task.MIN_COMBINER_REVIEWS = 8  # the tiny data has 12 validation reviews
    try:
        result = task.train(imdb[0], run_dir, epochs=2, verbose=0, save_every=0,
                            **{**TINY, "num_layers": 1, "ngram_features": 500, "ngram_order": 2, "val_fraction": 0.25})
    finally:
        task.MIN_COMBINER_REVIEWS = old
    return run_dir, result


def test_ngram_branch_trains_exports_and_combines(ngram_run, tmp_path):
    import tensorflow as tf

    from rnn_apps.apps.sentiment import ngrams, task
    from rnn_apps.apps.sentiment import model as smodel
    from rnn_apps.apps.sentiment.export import export_sentiment, load_base

    run_dir, result = ngram_run
    branch = result["ngram"]
    assert branch is not None and 0 < len(branch.vocabulary) <= 499 and branch.order == 2
    assert branch.tokens == "punctuation" and any(g.endswith(" !") for g in branch.vocabulary)  # the default
    assert branch.figures["self_training"] == {"unlabelled_reviews": 10, "weight": 0.5}  # train/unsup, by default
    assert any(" " in g for g in branch.vocabulary)  # bigrams are in
    assert branch.figures["combiner_fitted_on_validation"] and branch.figures["val_reviews"] == 12
    assert branch.figures["ngram_val_accuracy"] >= 0.9  # the tiny reviews carry their label words
    saved = task.load_run_ngram(run_dir)
    assert saved.vocabulary == branch.vocabulary and np.array_equal(saved.weights, branch.weights)
    np.testing.assert_array_equal(saved.combiner, branch.combiner)
    path = export_sentiment(result["model"], result["vocabulary"], result["config"], str(tmp_path / "sentiment"),
                            ngram=branch)
    assert open(os.path.join(path, "assets", ngrams.VOCAB_FILE), encoding="utf-8").read().split("\n")[0] == branch.vocabulary[0]
    texts = ["Great movie, loved it!", "the plot was awful<br />worst acting!!", "zzz", ""]
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["branches"](text=tf.constant(texts))
    serving = loaded.signatures["serving_default"](text=tf.constant(texts))
    vec = smodel.make_vectorizer(result["vocabulary"])
    p_rnn = result["model"].predict(smodel.dense_ids(vec, tf.constant(texts), result["config"]["max_len"]), verbose=0)[:, 0]
    z = np.array([_python_ngram_logit(branch, t) for t in texts])
    np.testing.assert_allclose(out["rnn_probability"].numpy(), p_rnn, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["ngram_probability"].numpy(), 1 / (1 + np.exp(-z)), rtol=1e-4, atol=1e-6)
    expected = ngrams.combine(branch.combiner, p_rnn, z)
    np.testing.assert_allclose(serving["probability"].numpy(), expected, rtol=1e-4, atol=1e-5)
    assert [x.decode() for x in serving["label"].numpy()] == ["positive" if p >= 0.5 else "negative" for p in expected]
    base = load_base(path)
    assert base["ngram"].vocabulary == branch.vocabulary and np.allclose(base["ngram"].weights, branch.weights)
    assert base["ngram"].tokens == "punctuation"
    # The SavedModel carries the n-gram list as an asset and needs neither rnn_apps nor the run directory.
    script = tmp_path / "load.py"
    script.write_text("import sys, json\nsys.modules['rnn_apps'] = None\nimport tensorflow as tf\n"
                      "m = tf.saved_model.load(sys.argv[1])\n"
                      "o = m.signatures['branches'](text=tf.constant(sys.argv[2:]))\n"
                      "print(json.dumps({k: v.numpy().tolist() for k, v in o.items()}))\n")
    r = subprocess.run([sys.executable, str(script), path, *texts[:2]], env=ENV, capture_output=True, text=True,
                       timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["probability"], expected[:2], rtol=1e-4, atol=1e-5)


def test_fine_tune_keeps_the_base_ngram_branch(ngram_run, tmp_path):
    from rnn_apps.apps.sentiment import task
    from rnn_apps.apps.sentiment.export import export_sentiment

    _, result = ngram_run
    base = export_sentiment(result["model"], result["vocabulary"], result["config"], str(tmp_path / "base"),
                            ngram=result["ngram"])
    rng = random.Random(4)
    rows = ["text\tlabel"] + [f"{_review(rng, POS if i % 2 else NEG, 6)}\t{i % 2}" for i in range(20)]
    mine = tmp_path / "mine.tsv"
    mine.write_text("\n".join(rows) + "\n", encoding="utf-8")
    tuned = task.train(str(mine), str(tmp_path / "run"), epochs=1, verbose=0, save_every=0, init_from=base, seed=2)
    assert tuned["ngram"].vocabulary == result["ngram"].vocabulary
    np.testing.assert_array_equal(tuned["ngram"].weights, result["ngram"].weights)
    # Two validation reviews are too few to refit the combiner: the base's is kept.
    np.testing.assert_array_equal(tuned["ngram"].combiner, result["ngram"].combiner)
