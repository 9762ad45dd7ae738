"""The sentiment app on tiny data: loaders, cleaning, split, LM pre-training, training, export, CLI, resume."""

import json
import os
import random

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.apps.sentiment import data as sdata
from rnn_apps.cli import cli
from sentiment_reviews import NEG, POS, TINY, review, review_sets
from standalone import run_script

@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    """(directory, tar.gz with both splits, tar.gz with the train split only)."""
    return review_sets(tmp_path_factory.mktemp("imdb"))


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


def test_a_damaged_archive_is_named_an_archive_not_read_as_a_table(imdb, tmp_path):
    """Damaged near its start, an aclImdb archive is no tar to tarfile: it was read as a CSV, whose first line
    was then "not UTF-8 text" with advice to convert it from Latin-1."""
    data = open(imdb[2], "rb").read()
    damaged = data[:40] + bytes(200) + data[240:]
    for name in ("reviews.tar.gz", "reviews-download"):  # by its name, and by its gzip header
        (tmp_path / name).write_bytes(damaged)
        with pytest.raises(sdata.SentimentDataError, match=r"Cannot read .* as a \.tar\(\.gz\) archive"):
            sdata.load_reviews(str(tmp_path / name))


def test_a_compressed_table_of_reviews_is_refused_with_how_to_decompress_it(tmp_path):
    """A gzipped CSV of reviews was taken for an aclImdb archive ("Cannot read ... as a .tar(.gz) archive:
    truncated header"): a compressed file that decompresses to no tar is now refused with the command."""
    import gzip

    path = tmp_path / "reviews.csv.gz"
    path.write_bytes(gzip.compress(b"text,label\ngood film,1\nbad film,0\n"))
    with pytest.raises(sdata.SentimentDataError, match=r"reviews\.csv\.gz is gzip-compressed; decompress it first "
                                                       r"\(gunzip -k .*reviews\.csv\.gz\)"):
        sdata.load_reviews(str(path))
    # a zip file raised KeyError: 'zip' (the archive check knew gzip, bzip2 and xz only)
    import zipfile

    path = tmp_path / "reviews.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("reviews.csv", "text,label\ngood film,1\nbad film,0\n")
    with pytest.raises(sdata.SentimentDataError, match=r"reviews\.zip is zip-compressed; decompress it first "
                                                       r"\(unzip .*reviews\.zip\)"):
        sdata.load_reviews(str(path))


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
        ("good,1\nbad, but, why,0\n", r"mine2.csv:2: expected 2 columns .*found 4\. Put texts that hold commas in "
                                         r"double quotes"),
        # a text and its label, then another column: the extra column is the matter, not the quoting
        ("good,1,x\nbad,0,x\n", r"mine2.csv:1: expected 2 columns .*found 3\. Remove the other columns, or add a "
                                 r"header naming the text and label columns"),
        ("good,1\n,0\n", r"mine2.csv:2: the text is empty"),
    ):
        (tmp_path / "mine2.csv").write_text(content, encoding="utf-8")
        with pytest.raises(sdata.SentimentDataError, match=message):
            sdata.read_labelled_file(str(tmp_path / "mine2.csv"))
    (tmp_path / "mine2.csv").write_bytes(b"good,1\nok,1\nna\xefve,0\n")
    with pytest.raises(sdata.SentimentDataError, match=r"line 3 is not UTF-8"):
        sdata.read_labelled_file(str(tmp_path / "mine2.csv"))


@pytest.mark.parametrize("content, message", [
    ("0,a bad film\n1,a good film\n", "mine.csv:1: the columns look swapped: the text column holds '0', a label, and "
     "the label column 'a bad film' (without a header the columns are read as text, label). Swap the columns, or give "
     "a header row that names them, e.g. label,text."),
    ("text,label\nneg,bad\n", "mine.csv:2: the columns look swapped: the text column holds 'neg', a label, and the "
     "label column 'bad' (the header names column 1 the text and column 2 the label). Swap the columns, or the names "
     "in the header."),
])
def test_csv_with_its_columns_swapped_says_so(tmp_path, content, message):
    """A short text in the label column was only 'not one of 0, 1, ...', which did not point at the swap."""
    f = tmp_path / "mine.csv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(sdata.SentimentDataError) as e:
        sdata.read_labelled_file(str(f))
    assert str(e.value) == f"{f}:{message[len('mine.csv:'):]}"


@pytest.mark.parametrize("content, message", [
    # a quote left open: the row that opened it, as classify --file says (was "the row has 1 columns; the header
    # names more", the rest of the file read as one cell)
    ('text,label\n"an unclosed quote,pos\ngreat film,pos\n', ":2: not valid CSV (a quote opened in this row is never "
     "closed)."),
    ('text,label\n"abc"def,pos\n', ':2: not valid CSV (text follows a closing quote; a quote inside a quoted text is '
     'written twice: "He said ""wow"".").'),
    # a cell over the csv module's limit: the line its row starts on (was the line the limit was reached on,
    # worded "field larger than field limit (131072)")
    pytest.param('text,label\ngreat film,pos\n"' + "a long review\n" * 11_000 + '",pos\n', ":3: not valid CSV (a cell "
                 "of this row runs past 131,072 characters: a quote opened in it may never be closed).",
                 id="a-cell-too-long"),
    # a header without a label column was read as data: "label 'stars' is not one of 0, 1, neg, pos ..."
    ("text,stars\ngreat film,5\n", ":1: the header names no label column (its columns: 'text', 'stars'); name the "
     "labels' column one of label, sentiment, polarity, class (labels 0, 1, neg, pos, negative or positive), or leave "
     "the header out and write the columns text, label."),
    ("sentiment,comment\npos,great film\n", ":1: the header names no text column (its columns: 'sentiment', "
     "'comment'); name the reviews' column one of text, review, sentence, content, or leave the header out and write "
     "the columns text, label."),
    ("label,text\n1,Good film\n0\n", ":3: the row has 1 column; the header has 2 (the reviews in column 2, the labels "
     "in column 1)."),
])
def test_training_and_evaluation_csv_errors_are_as_exact_as_classifys(tmp_path, content, message):
    """fine-tune and evaluate read a CSV with the reader classify --file uses (rnn_apps.apps.sentiment.data
    ._table_rows), and say what is wrong as exactly."""
    f = tmp_path / "mine.csv"
    f.write_text(content, encoding="utf-8")
    for read in (sdata.read_labelled_file, lambda path: sdata.load_reviews(path, "train")):
        with pytest.raises(sdata.SentimentDataError) as e:
            read(str(f))
        assert str(e.value) == f"{f}{message}"
    if "not valid CSV" in message:  # classify --file's reader says the same
        f.write_text(content.replace("text,label", "text"), encoding="utf-8")
        with pytest.raises(sdata.SentimentDataError) as e:
            sdata.read_review_column(str(f))
        assert str(e.value) == f"{f}{message}"


def test_a_first_row_of_data_that_holds_a_column_name_is_data(tmp_path):
    """Only a first row whose second cell is no label is a header lacking a column: 'text,pos' is a review."""
    f = tmp_path / "mine.csv"
    f.write_text("text,pos\nawful,neg\n", encoding="utf-8")
    assert [(r.text, r.label) for r in sdata.read_labelled_file(str(f))] == [("text", 1), ("awful", 0)]


def test_reviews_of_one_label_are_refused_with_the_counts(tmp_path):
    reviews = [sdata.Review(f"fine film {i}", 1) for i in range(3)]
    with pytest.raises(sdata.SentimentDataError, match=r"^mine.csv: its labelled reviews are 3 positive and 0 negative; "
                                                       r"a classifier needs reviews of both labels .* Add negative "):
        sdata.check_both_labels(reviews, "mine.csv")
    with pytest.raises(sdata.SentimentDataError, match=r"are 0 positive and 1 negative; .* Lower it\.$"):
        sdata.check_both_labels([sdata.Review("bad", 0)], "mine.csv", "the training reviews", "Lower it.")
    sdata.check_both_labels(reviews + [sdata.Review("bad", 0)], "mine.csv")


def test_training_on_reviews_of_one_label_is_refused_before_the_run_dir(tmp_path):
    """With --ngram-features 0 such a file trained a classifier that always answered its one label."""
    from rnn_apps.apps.sentiment import task

    data = tmp_path / "mine.csv"
    data.write_text("text,label\n" + "".join(f"a fine film {i},pos\n" for i in range(8)), encoding="utf-8")
    run_dir = tmp_path / "run"
    with pytest.raises(sdata.SentimentDataError, match="8 positive and 0 negative"):
        task.train(str(data), str(run_dir), epochs=1, verbose=0, **TINY)  # TINY: no n-gram branch
    assert not run_dir.exists()


def test_tfds_loader_with_mock_data_and_offline_error(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(sdata, "_tfds_prepared", lambda tfds, data_dir: True)  # the mock data stands for it
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        reviews = sdata.load_tfds_imdb("train")
        labelled, _ = sdata.load_reviews("tfds:imdb_reviews", "train")
    assert len(reviews) == 5 == len(labelled)
    assert all(r.label in (0, 1) and isinstance(r.text, str) for r in reviews)
    with pytest.raises(sdata.SentimentDataError, match="needs a network; offline, pass --data"):
        sdata.load_tfds_imdb("test", data_dir=str(tmp_path), download=False)


def test_tfds_can_prepare_imdb_and_a_missing_module_is_not_blamed_on_the_network(tmp_path, monkeypatch):
    """TFDS 4.9's builder imports importlib_resources, which TFDS declares for Python < 3.9 only
    (tensorflow/datasets#11212): `--data tfds:imdb_reviews` failed before any download, and the message
    blamed the network."""
    tfds = pytest.importorskip("tensorflow_datasets")
    assert tfds.builder("imdb_reviews", data_dir=str(tmp_path)).code_path  # what download_and_prepare reads first

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

    monkeypatch.setattr(tfds, "load", missing)
    monkeypatch.setattr(sdata, "_tfds_prepared", lambda tfds, data_dir: True)
    with pytest.raises(sdata.SentimentDataError) as e:
        sdata.load_tfds_imdb("test", data_dir=str(tmp_path))
    assert "pip install importlib_resources" in str(e.value) and "network" not in str(e.value)


def test_tfds_offline_is_said_at_once_not_after_minutes_of_retries(tmp_path, monkeypatch):
    """Offline, TFDS retried the download for 3.5 minutes before the error; the host is now asked once first."""
    import socket

    tfds = pytest.importorskip("tensorflow_datasets")
    asked = []

    def unreachable(address, timeout=None):
        asked.append((address, timeout))
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(tfds, "load", lambda *a, **k: pytest.fail("tfds.load ran: it retries for minutes offline"))
    with pytest.raises(sdata.SentimentDataError) as e:
        sdata.load_tfds_imdb("test", data_dir=str(tmp_path))
    assert asked == [(("ai.stanford.edu", 80), 10)]
    assert str(e.value) == ("TensorFlow Datasets downloads 'imdb_reviews' from ai.stanford.edu on first use, which "
                            "cannot be reached ([Errno -2] Name or service not known); offline, pass --data with the "
                            "path of aclImdb_v1.tar.gz or of its extracted aclImdb directory instead.")


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


def test_bucket_batches_of_a_small_set_are_near_batch_size():
    # 200 reviews of 20-400 words in buckets 16 words wide made one short batch per bucket (8 rows on average)
    lengths = np.random.default_rng(0).integers(20, 401, size=200)
    narrow = sdata.BucketBatches(lengths, batch_size=64, seed=1)
    assert 200 / narrow.steps_per_epoch < 10
    plan = sdata.BucketBatches(lengths, batch_size=64, seed=1, min_rows=64)
    batches = plan.epoch_batches(0)
    assert plan.steps_per_epoch == len(batches) <= 5 and sorted(np.concatenate(batches)) == list(range(200))
    assert max(plan.width(b) for b in batches) == lengths.max()  # the wide last bucket stops at the longest
    assert all(plan.width(b) >= lengths[b].max() for b in batches)
    # an empty review (0 tokens: punctuation only) shares the first bucket, and the widening ends
    few = sdata.BucketBatches([0, 5, 30, 200], batch_size=64, seed=1, min_rows=64)
    assert few.steps_per_epoch == 1 and few.width(np.arange(4)) == 200
    # a set large enough for the narrow buckets keeps them (runs resume with the batches they had)
    many = np.random.default_rng(0).integers(20, 401, size=20000)
    assert ([b.tolist() for b in sdata.BucketBatches(many, 64, seed=1, min_rows=64).epoch_batches(0)]
            == [b.tolist() for b in sdata.BucketBatches(many, 64, seed=1).epoch_batches(0)])


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
texts = ["A wonderful, brilliant film. Loved it!", "Awful and boring, a waste.", "!"]
out = m.signatures["serving_default"](text=tf.constant(texts))
try:  # the graph refuses an empty review itself, in the command's words
    m.signatures["serving_default"](text=tf.constant(["good", " "]))
    empty = "accepted"
except tf.errors.InvalidArgumentError as e:
    empty = e.message
example = tf.train.Example(features=tf.train.Features(feature={
    "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode() for t in texts[:1]]))}))
cls = m.signatures["classify"](inputs=tf.constant([example.SerializeToString()] * 2))
words = m.signatures["words"](text=tf.constant(texts))
print(json.dumps({
    "prob_dtype": out["probability"].dtype.name, "prob_shape": out["probability"].shape.as_list(),
    "prob": out["probability"].numpy().tolist(), "label": [x.decode() for x in out["label"].numpy()],
    "classes": [[c.decode() for c in row] for row in cls["classes"].numpy()], "scores": cls["scores"].numpy().tolist(),
    "scores_dtype": cls["scores"].dtype.name, "words": words["words"].numpy().tolist(), "empty": empty,
}))
"""


def test_savedmodel_loads_without_rnn_apps(tiny_model, tmp_path):
    out = run_script(_LOAD_WITHOUT_RNN_APPS, tmp_path, tiny_model)
    assert out["prob_dtype"] == "float32" and out["prob_shape"] == [3]
    assert all(0.0 <= p <= 1.0 for p in out["prob"])
    assert out["label"] == ["positive" if p >= 0.5 else "negative" for p in out["prob"]]
    assert out["classes"] == [["negative", "positive"]] * 2 and out["scores_dtype"] == "float32"
    assert out["scores"][0][1] == pytest.approx(out["prob"][0], abs=1e-6)
    assert out["scores"][0][0] == pytest.approx(1 - out["prob"][0], abs=1e-6)
    assert out["words"] == [6, 5, 0]
    assert "text[1] is empty: give a review to classify." in out["empty"]


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


# (Every command's --help, with its example: tests/test_cli.py walks them all.)


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


def test_a_review_that_cannot_be_classified_does_not_cost_the_others_their_answers(runner, tiny_model, tmp_path):
    """One line of another language in a file of reviews stopped the command with no answer at all: it is named
    on stderr, the others are answered (in --json, an "error" row in its place), and the status is 1."""
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("Loved it, wonderful!\n这部电影 很好看\nAwful and boring.\n", encoding="utf-8")
    alone = runner.invoke(cli, ["classify", "--model", tiny_model, "--json", "Loved it, wonderful!", "Awful and boring."])
    want = json.loads(alone.stdout)
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--file", str(reviews), "--json"])
    rows = json.loads(r.stdout)
    assert r.exit_code == 1 and r.stderr.strip() == f"Error: {reviews}, line 2: the model knows none of its 2 words; " \
        "it reads film reviews in English. Check the spelling and the language."
    assert [row.pop("read_from") for row in rows] == [f"{reviews}, line {n}" for n in (1, 2, 3)]
    assert [rows[0], rows[2]] == want and rows[1]["text"] == "这部电影 很好看" and "knows none" in rows[1]["error"]
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--file", str(reviews)])
    assert r.exit_code == 1 and len(r.stdout.splitlines()) == 2 and "Loved it" in r.stdout.splitlines()[0]
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "这部电影", "!"])  # none left: one error naming both
    assert r.exit_code == 1 and "None of the 2 reviews can be classified:" in r.stderr and not r.stdout


def test_classify_cli_errors(runner, tiny_model, tmp_path):
    def fails(args, message, **kw):
        r = runner.invoke(cli, ["classify", "--model", tiny_model, *args], **kw)
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, r.output

    fails(["good", ""], "Review 2 is empty")
    fails(["  "], "Review 1 is empty")
    fails(["!!! ..."], "Review 1 has no words")
    # every word unknown (another language): refused, not answered from the bias alone
    fails(["Loved it, wonderful!", "这部电影 很好看"], "Review 2: the model knows none of its 2 words; it reads film reviews in English")
    fails(["这部电影 很好看", "!"], "Review 1: the model knows none")  # the first in the input, not the shortest
    fails(["ok", "bad \udcff bytes"], "Review 2 is not valid UTF-8")
    fails([], "Give reviews to classify")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine review\nna\xefve \xff\n")
    fails(["--file", str(bad)], f"{bad}, line 2: not UTF-8 text")
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"Loved it\nwonderful\x00 awful\n")
    fails(["--file", str(nul)], f"{nul}, line 2 holds a NUL character")  # the model would stop reading at it
    # a review of a file is named by its line, blank lines counted (not by its place among the reviews)
    gaps = tmp_path / "gaps.txt"
    gaps.write_text("A fine film.\n\n\n这部电影 很好看\nGood.\n", encoding="utf-8")
    fails(["--file", str(gaps)], f"{gaps}, line 4: the model knows none of its 2 words")
    fails(["-"], "standard input, line 3: the model knows none", input="A fine film.\n\n这部电影 很好看\n".encode())
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("A fine film.\n".encode("utf-16"))
    fails(["--file", str(utf16)], "is UTF-16 text; save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)")
    fails(["-"], "standard input, line 1: not UTF-8", input=b"\xc3(\n")
    fails(["--file", str(tmp_path / "missing.txt")], "No such file")
    r = runner.invoke(cli, ["classify", "--model", str(tmp_path), "good"])
    assert r.exit_code == 1 and "No SavedModel" in r.output


def test_classify_reads_the_text_column_of_a_table(runner, tiny_model, tmp_path):
    """A .csv was read line by line: its header scored as a review, every review with ',pos' attached, a
    quoted review of two lines split in two. Its text column is read now, each review named by its line; a row
    with an empty review is named too (it was left out without a word)."""
    table = tmp_path / "mine.csv"
    table.write_text('id,review,label\n1,"A fine film,\nwith a good cast.",pos\n\n2,Dull.,neg\n3,,pos\n',
                     encoding="utf-8")
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--file", str(table), "--json"])
    assert r.exit_code == 1, r.output
    assert f"{table}, line 6 is empty: give a review to classify." in r.stderr
    rows = json.loads(r.stdout)
    assert [(row.get("text", row.get("source")), row.get("read_from")) for row in rows] == [
        ("A fine film,\nwith a good cast.", f"{table}, line 2"), ("Dull.", f"{table}, line 5"),
        ("", f"{table}, line 6")]
    assert "is empty" in rows[2]["error"]
    none = tmp_path / "none.csv"
    none.write_text("a,b\nA fine film.,pos\n", encoding="utf-8")
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--file", str(none)])
    assert r.exit_code == 1 and "whose header names no text column (its first row: 'a', 'b')" in r.output
    # a quote left open read every later row into one review; a short row was skipped: both are errors now
    for content, message in [('text,label\n"unterminated,pos\nBad,neg\n', ":2: not valid CSV (a quote opened in "
                                                                         "this row is never closed)."),
                             ("label,text\n1,Good film\n0\n", ":3: the row has 1 column; the header has 2 (the "
                                                                "reviews in column 2).")]:
        table.write_text(content, encoding="utf-8")
        r = runner.invoke(cli, ["classify", "--model", tiny_model, "--file", str(table)])
        assert r.exit_code == 1 and r.output.strip() == f"Error: {table}{message}", r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("review\n这部电影 很好看\n", encoding="utf-8")
    r = runner.invoke(cli, ["classify", "--model", tiny_model, "--file", str(bad)])
    assert r.exit_code == 1 and f"{bad}, line 2: the model knows none" in r.output


def test_evaluate_cli(runner, tiny_model, imdb):
    tree, full_tar, train_tar = imdb
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", full_tar, "--model", tiny_model, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["reviews"] == 12 and 0 <= out["accuracy"] <= 1
    assert out["true_positive"] + out["false_negative"] == 6 == out["true_negative"] + out["false_positive"]
    assert out["accuracy"] == pytest.approx((out["true_positive"] + out["true_negative"]) / 12)
    assert "rnn_accuracy" not in out  # one branch only (tests/test_sentiment_ngrams.py has the other case)
    from rnn_apps.apps.sentiment.classify import SentimentClassifier, SentimentError

    clf = SentimentClassifier(tiny_model)
    with pytest.raises(SentimentError, match="no n-gram branch"):
        clf.branch_probabilities(["good"])
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", tree, "--model", tiny_model, "--split", "val"])
    assert r.exit_code == 0 and r.stdout.startswith("accuracy: ") and "12 reviews: the val part of" in r.stdout, r.output
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", train_tar, "--model", tiny_model])
    assert r.exit_code == 1 and "no test reviews" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", full_tar, "--model", tiny_model])
    assert "reviews: the test split of" in r.stdout, r.output


def test_evaluate_a_source_without_splits_says_it_read_every_review(runner, tiny_model, tmp_path):
    """A CSV has no test or train split: --split test (the default) or train scored the whole file and called
    it "test reviews"; it says "every review" and "split": "all" now."""
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text('text,label\n"A wonderful, moving film.",pos\nDull and far too long.,neg\n', encoding="utf-8")
    for split in ("test", "train"):
        r = runner.invoke(cli, ["evaluate", "sentiment", "--data", str(csv_path), "--model", tiny_model,
                                "--split", split])
        assert r.exit_code == 0 and "(2 reviews: every review of mine.csv;" in r.stdout, r.output
    r = runner.invoke(cli, ["evaluate", "sentiment", "--data", str(csv_path), "--model", tiny_model, "--json"])
    assert json.loads(r.stdout)["split"] == "all"


def test_fine_tune_from_exported_model_on_csv(runner, tiny_model, tmp_path):
    rng = random.Random(9)
    rows = ["text,label"] + [f'"{review(rng, POS if i % 2 else NEG, 6)}",{"pos" if i % 2 else "neg"}' for i in range(16)]
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
    import yaml

    # Its card names the user's reviews, not IMDB (in its text or its hub entries), and where it started.
    card = (out_dir / "README.md").read_text(encoding="utf-8")
    assert "IMDB" not in card and "imdb" not in card and "Large Movie Review" not in card and "movie reviews" not in card
    assert "# Sentiment model (fine-tuned on `mine.csv`)" in card and "Training data: `mine.csv`." in card
    assert f"Fine-tuned on `mine.csv`, starting from the weights of `sentiment/{os.path.basename(tiny_model)}`." in card
    front = yaml.safe_load(card.split("\n---\n", 1)[0][4:])
    assert "datasets" not in front and front["rnn_apps"]["data"] == "mine.csv"
    assert front["model-index"][0]["results"][0]["task"]["name"] == "Review sentiment"
    from rnn_apps.apps.sentiment.export import load_base

    old, new = load_base(tiny_model), load_base(res["exported"])
    assert new["vocabulary"] == old["vocabulary"] and new["config"]["units"] == 8
    assert new["config"]["layer_lr_decay"] == 3.0 and new["config"]["adversarial"] == 2.0
    assert new["config"]["keep_best"] is False
    assert len(new["weights"]) == len(old["weights"]) and len(new["lm_weights"]) == 5
    assert any(not np.allclose(a, b) for a, b in zip(new["weights"], old["weights"]))
    r = runner.invoke(cli, ["classify", "--model", res["exported"], "great"])
    assert r.exit_code == 0 and r.output.split()[0] in ("positive", "negative")


def test_fine_tune_on_reviews_of_one_label_is_one_line(runner, tiny_model, tmp_path):
    """Fine-tuning a model with an n-gram branch skipped the branch's check, and trained on one label."""
    mine = tmp_path / "mine.csv"
    mine.write_text("text,label\n" + "".join(f'"{review(random.Random(i), NEG, 6)}",neg\n' for i in range(8)),
                    encoding="utf-8")
    r = runner.invoke(cli, ["fine-tune", "sentiment", "--data", str(mine), "--model", tiny_model, "--out",
                            str(tmp_path / "ft"), "--run-dir", str(tmp_path / "run"), "--epochs", "1"])
    assert r.exit_code == 1 and r.output.strip().splitlines() == [
        f"Error: {mine}: its labelled reviews are 0 positive and 8 negative; a classifier needs reviews of both labels "
        "to learn to tell them apart. Add positive (label 1 or pos) reviews."], r.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "ft").exists()


def test_fine_tune_without_validation_reviews_warns_and_its_card_says_so(runner, tiny_model, tmp_path):
    """Two reviews, one of each label: --val-fraction holds out none. The command exported without a word, and
    the card said "Kept: the weights of the epoch with the lowest validation loss" over a table of nan."""
    mine = tmp_path / "two.csv"
    mine.write_text(f"text,label\n{review(random.Random(1), POS, 6)},pos\n{review(random.Random(2), NEG, 6)},neg\n",
                    encoding="utf-8")
    out_dir = tmp_path / "ft"
    r = runner.invoke(cli, ["fine-tune", "sentiment", "--data", str(mine), "--model", tiny_model, "--out", str(out_dir),
                            "--run-dir", str(tmp_path / "run"), "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert ("Warning: no validation reviews: --val-fraction held out none of the 2 labelled reviews, so nothing was "
            "validated") in r.stderr
    card = (out_dir / "README.md").read_text(encoding="utf-8")
    assert "2 reviews for training and none for validation (10% of each class of 2 labelled reviews rounds to none)" \
        in card
    assert "* Kept: the last epoch's weights." in card and "lowest validation loss" not in card
    assert "nan" not in card and "| ? |" not in card
    r = runner.invoke(cli, ["export", "sentiment", "--run-dir", str(tmp_path / "run"), "--export", str(out_dir)])
    assert r.exit_code == 0 and "Warning: no validation reviews" in r.stderr, r.output


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
    # the shipped corpus by its file's name, not by its path on the machine that trained
    assert "Training data: `aclImdb-train.tar.gz`. " in card and os.path.dirname(tiny_run[0]) not in card


def test_export_from_model_keeps_weights_and_answers(runner, tiny_model, tmp_path):
    """`export sentiment --from-model`, as every other app's export has it: the same answers from this
    version's graph; a card written from the model's own record where the folder has none."""
    import tensorflow as tf

    r = runner.invoke(cli, ["export", "sentiment", "--from-model", tiny_model, "--export", str(tmp_path / "s"),
                            "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.output)["exported"]
    assert again == str(tmp_path / "s" / "1") and os.path.isfile(tmp_path / "s" / "README.md")
    texts = tf.constant(["a good film , really great", "bad and boring", "zzz qqq"])
    a, b = (tf.saved_model.load(d).signatures["serving_default"](text=texts) for d in (tiny_model, again))
    for k in a:
        if a[k].dtype == tf.string:
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
        else:
            np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=1e-6)
    r = runner.invoke(cli, ["export", "sentiment", "--from-model", tiny_model, "--run-dir", str(tmp_path)])
    assert r.exit_code == 2 and "Give one of --run-dir (a training run) or --from-model" in r.output


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


def test_the_library_takes_any_sequence_of_reviews_but_not_one_string(tiny_model):
    """classify() of a NumPy array of reviews raised "The truth value of an array ... is ambiguous", and
    probabilities("Dull.") answered five probabilities, one a letter."""
    import numpy as np

    from rnn_apps.apps.sentiment.classify import SentimentClassifier

    clf = SentimentClassifier(tiny_model)
    texts = ["A fine film with a good cast.", "Dull."]
    as_list = [p.probability for p in clf.classify(texts)]
    assert [p.probability for p in clf.classify(np.array(texts))] == as_list
    assert [p.probability for p in clf.classify(tuple(texts))] == as_list
    np.testing.assert_array_equal(clf.probabilities(np.array(texts)), clf.probabilities(texts))
    for call in (clf.classify, clf.probabilities):
        with pytest.raises(TypeError, match=r"^texts must be a list of strings, not one string\.$"):
            call("Dull.")


def test_an_integer_setting_refuses_a_fraction():
    """A Python caller's max_length 2.5 was taken (and cut the translation short without saying so); the
    command line and the server take integers only."""
    from rnn_apps import limits

    for value in (2.5, 0.1, 159.9):
        with pytest.raises(limits.LimitError,
                           match=rf"^max_length must be an integer from 0 to 160 .*received {value}\.$"):
            limits.check_number(limits.APPS["translate"], "max_length", value)
    for value in (2, 2.0, 160):
        limits.check_number(limits.APPS["translate"], "max_length", value)
    import numpy as np

    seeds = limits.Range(0, 2**63 - 1, integer=True)  # an integer is whole: none rounded through a float
    assert seeds.contains(np.int64(2**53 + 1)) and seeds.contains(2**63 - 1) and not seeds.contains(2.5)
    # a beam (translate, caption) of NumPy's integer type is an integer too (np.int64(2) was refused)
    assert limits.as_integer(np.int64(2), "beam") == 2 and type(limits.as_integer(np.int32(3), "beam")) is int
    for value in (2.5, True, "2", None):
        with pytest.raises(limits.LimitError, match=rf"^beam must be an integer; received {value!r}\.$"):
            limits.as_integer(value, "beam")
    # what is not a number is refused in words (math.isfinite raised "must be real number, not str")
    import re

    for value in ("0.8", None, True, [1]):
        with pytest.raises(limits.LimitError, match=rf"^max_length must be an integer from 0 to 160 .*received "
                                                    rf"{re.escape(repr(value))}\.$"):
            limits.check_number(limits.APPS["translate"], "max_length", value)
    with pytest.raises(limits.LimitError, match=r"^count must be a number; received 'x'\.$"):
        limits.check_number(limits.APPS["translate"], "count", "x")  # an input without a range
    limits.check_number(limits.APPS["translate"], "max_length", np.float32(3.0))
    with pytest.raises(limits.LimitError, match=r"^count must be a finite number; received NaN\.$"):
        limits.check_number(limits.APPS["translate"], "count", np.float32("nan"))  # NumPy's NaN too
    with pytest.raises(limits.LimitError, match=r"^seed must be an integer from 0 to "):  # was an OverflowError
        limits.check_number(limits.APPS["poetry"], "seed", 10**400)
