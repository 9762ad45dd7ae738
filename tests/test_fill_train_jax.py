"""rnn_apps.apps.fill.train_jax: the network it trains on JAX, its batches, and prepare -> export.

The training loop needs Keras on JAX (``KERAS_BACKEND=jax``), which the tests do not have; what it trains is
checked here on TensorFlow: the built-in-layer network with the fill model's weights gives the fill model's
logits at every predicted position of a padded batch, for both kinds.
"""

import json
import os

import numpy as np
import pytest

from rnn_apps.apps.fill import train_jax

POEMS = os.path.join(os.path.dirname(__file__), "fixtures", "poems.txt")


@pytest.mark.parametrize("kind", ["bidirectional", "forward"])
def test_the_built_in_layer_network_gives_the_fill_models_logits(kind):
    from rnn_apps.apps.fill.model import build

    ours = build(kind, 40, embedding_dim=8, units=6)
    ours.build((None, None))
    rng = np.random.default_rng(0)
    weights = [rng.normal(scale=0.4, size=w.shape).astype(np.float32) for w in ours.weights]
    ours.set_weights(weights)
    assert [w.path.split("/")[0] for w in ours.weights] == [k.split("/")[0] for k in train_jax.weight_keys(kind)]
    theirs = train_jax.build_model(kind, 40, embedding_dim=8, units=6)
    assert [tuple(w.shape) for w in theirs.weights] == [w.shape for w in weights]
    theirs.set_weights(weights)
    ids = rng.integers(5, 40, size=(3, 12)).astype(np.int32)
    ids[0, 7:] = 0  # right padding: the backward direction must start at each row's end
    ids[1, 4:] = 0
    a, b = np.asarray(theirs(ids, training=False)), np.asarray(ours(ids, training=False))
    # Positions whose prediction uses only real characters; at the last real one the right context is a pad
    # step's output, which neither model uses in training (the <eos> there is never predicted).
    real = ids > 0
    used = real & np.concatenate([real[:, 1:], np.zeros((3, 1), bool)], axis=1)
    np.testing.assert_allclose(a[used], b[used], rtol=1e-5, atol=1e-5)


def test_batches_hold_every_piece_once_and_mask_only_predicted_positions():
    rng = np.random.default_rng(1)
    seqs = [np.concatenate([[2], rng.integers(5, 60, size=n), [3]]).astype(np.int32)
            for n in rng.integers(1, 128, size=300)]
    out = train_jax.batches(seqs, 1024, 0.3, np.random.default_rng(2))
    assert {y.shape for _, y, _ in out} <= {(1024 // T, T) for T in train_jax.BUCKETS}
    rows = sorted(tuple(y[r][y[r] > 0]) for _, y, _ in out for r in range(len(y)) if y[r].any())
    assert rows == sorted(tuple(s) for s in seqs)
    x = np.concatenate([x.reshape(-1) for x, _, _ in out])
    y = np.concatenate([y.reshape(-1) for _, y, _ in out])
    w = np.concatenate([w.reshape(-1) for _, _, w in out])
    assert ((w > 0) == (y > train_jax.MASK_ID)).all()
    masked = x != y
    assert (x[masked] == train_jax.MASK_ID).all() and (w[masked] > 0).all()
    assert 0.25 < masked.sum() / w.sum() < 0.35
    with pytest.raises(ValueError, match="longer than 129"):
        train_jax.batches([np.arange(1, 140)], 1024, 0.1, rng)


def test_weight_keys_name_the_kind():
    assert len(train_jax.weight_keys("bidirectional")) == 8 and len(train_jax.weight_keys("forward")) == 5
    with pytest.raises(ValueError, match="kind must be one of"):
        train_jax.weight_keys("sideways")


def test_prepare_then_export_keeps_the_model(tmp_path):
    """A tiny fill model's weights, written by prepare and exported again, give the same fills; the run dir
    holds what the card reads (the JAX training in between is left out: its weights come back in the same
    file layout)."""
    import tensorflow as tf

    from rnn_apps.apps.fill import task
    from rnn_apps.apps.fill.export import export_result

    r = task.train(POEMS, str(tmp_path / "run0"), epochs=1, verbose=0, save_every=0, embedding_dim=16, units=12,
                   min_count=1, val_fraction=0.2, tokens_per_batch=2048, max_steps=2, seed=3)
    model = export_result(r, str(tmp_path / "models0" / "fill"), 1)
    stats = train_jax.prepare(model, POEMS, str(tmp_path / "gpu"))
    data = np.load(tmp_path / "gpu" / "data.npz")
    assert int(data["vocab_size"]) == stats["vocab_size"] and str(data["kind"]) == "bidirectional"
    assert int(data["train_len"].sum()) == stats["train_tokens"] + 2 * len(data["train_len"])  # with bookends
    row = {"train_ce": 3.0, "train_accuracy": 0.2, "val_ce": 3.2, "val_accuracy": 0.18, "seconds": 2.0}
    record = {"args": {"kind": "bidirectional", "dropout": 0.1, "learning_rate": 1e-3, "tokens": 2048,
                       "init": "init.npz"}, "epoch": 2,
              "history": [dict(row, epoch=1, step=5), dict(row, epoch=2, step=10, val_ce=3.1)]}
    with open(tmp_path / "h.json", "w") as f:
        json.dump(record, f)
    out = train_jax.export(str(tmp_path / "gpu" / "init.npz"), str(tmp_path / "h.json"), model, POEMS,
                           str(tmp_path / "models" / "fill"), str(tmp_path / "run"), "a test machine")
    text = tf.constant(["床前明月□，疑是地上霜。", "春眠不觉□，处处闻啼鸟。"])
    a, b = tf.saved_model.load(model), tf.saved_model.load(out)
    for key in ("text", "probabilities"):
        np.testing.assert_array_equal(a.signatures["serving_default"](text=text)[key].numpy(),
                                      b.signatures["serving_default"](text=text)[key].numpy())
    run = json.load(open(tmp_path / "run" / "config.json"))
    assert run["trained_on"] == "a test machine" and run["init_from"] == os.path.abspath(model)
    rows = [json.loads(line) for line in open(tmp_path / "run" / "history.jsonl")]
    assert [r["seconds"] for r in rows] == [2.0, 4.0] and rows[-1]["val_loss"] == 3.1
    assert set(rows[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    # the record is not written over a training run (rnn-apps would resume that run with this record)
    from rnn_apps.checkpoints import TrainingError

    before = {p.name: p.read_bytes() for p in (tmp_path / "run0").iterdir() if p.is_file()}
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        train_jax.export(str(tmp_path / "gpu" / "init.npz"), str(tmp_path / "h.json"), model, POEMS,
                         str(tmp_path / "models" / "fill"), str(tmp_path / "run0"), "a test machine")
    assert {p.name: p.read_bytes() for p in (tmp_path / "run0").iterdir() if p.is_file()} == before
