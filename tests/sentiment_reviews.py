"""Tiny review sets in the layouts the sentiment app reads, shared by the sentiment tests."""

import os
import random
import tarfile

POS = "great wonderful loved brilliant superb enjoyable masterpiece".split()
NEG = "awful boring hated terrible dull waste worst".split()
FILLER = "the movie film plot acting story was and it this a of i really".split()
TINY = dict(max_tokens=60, embedding_dim=8, units=8, num_layers=2, max_len=24, batch_size=8, learning_rate=3e-2, dropout=0.1,
            val_fraction=0.25, seed=3, lm_seq_len=16, lm_tokens_per_batch=128, lm_num_sampled=8, lm_val_fraction=0.1,
            ngram_features=0)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def review(rng, words, n):
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
                    f.write(review(rng, words, rng.randrange(5, 20)))
    if "train" in splits:
        os.makedirs(os.path.join(base, "train", "unsup"))
        for i in range(n_unsup):
            with open(os.path.join(base, "train", "unsup", f"{i}_0.txt"), "w", encoding="utf-8") as f:
                f.write(review(rng, rng.choice([POS, NEG]), rng.randrange(5, 20)))
    with open(os.path.join(base, "README"), "w") as f:
        f.write("tiny")
    return base


def write_tar(tree_parent, path):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(os.path.join(tree_parent, "aclImdb"), arcname="aclImdb")
    return str(path)


def review_sets(root) -> tuple:
    """(directory, tar.gz with both splits, tar.gz with the train split only) under ``root`` (a pathlib.Path)."""
    write_aclimdb(str(root / "full"))
    write_aclimdb(str(root / "trainonly"), splits=("train",))
    full_tar = write_tar(str(root / "full"), root / "aclImdb_v1.tar.gz")
    train_tar = write_tar(str(root / "trainonly"), root / "aclImdb-train.tar.gz")
    return str(root / "full"), full_tar, train_tar
