"""rnn_apps.apps.poetry.train_jax: the parts that run here (TensorFlow) and the model it trains on JAX.

The training loop itself needs Keras on JAX (``KERAS_BACKEND=jax``), which the tests do not have; what it
trains is checked here: Keras's built-in LSTM model with the Char-RNN's weights gives the Char-RNN's logits,
its batches hold every target once, and weights go through prepare -> export unchanged.
"""

import json
import os

import numpy as np
import pytest

from rnn_apps.apps.poetry import train_jax


def test_the_built_in_lstm_model_gives_the_char_rnns_logits():
    from rnn_apps.apps.poetry.model import build_char_rnn

    ours = build_char_rnn(40, embedding_dim=8, units=12, num_layers=2)
    ours.build((None, None))
    rng = np.random.default_rng(0)
    weights = [rng.normal(scale=0.3, size=w.shape).astype(np.float32) for w in ours.weights]
    ours.set_weights(weights)
    theirs = train_jax.build_model(40, embedding_dim=8, units=12)
    assert [tuple(w.shape) for w in theirs.weights] == [w.shape for w in weights]
    theirs.set_weights(weights)
    ids = rng.integers(1, 40, size=(3, 11)).astype(np.int32)
    np.testing.assert_allclose(np.asarray(theirs(ids, training=False)), np.asarray(ours(ids, training=False)),
                               rtol=1e-5, atol=1e-5)


def test_batches_hold_every_target_once_in_fixed_shapes():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, 50, size=n).astype(np.int32) for n in rng.integers(2, 130, size=300)]
    out = train_jax.batches(seqs, tokens=1024, rng=np.random.default_rng(2))
    assert {x.shape for x, _, _ in out} <= {(1024 // T, T) for T in train_jax.BUCKETS}
    assert sum(w.sum() for _, _, w in out) == sum(len(s) - 1 for s in seqs)
    got = sorted(tuple(y[r][w[r] > 0]) for _, y, w in out for r in range(len(y)) if w[r].any())
    assert got == sorted(tuple(s[1:]) for s in seqs)
    for x, y, w in out:  # inputs are the targets shifted by one
        assert (x[:, 1:][w[:, 1:] > 0] == y[:, :-1][w[:, 1:] > 0]).all()
    with pytest.raises(ValueError, match="longer than 128"):
        train_jax.batches([np.arange(1, 140)], tokens=1024)


def test_learning_rate_warms_up_then_decays_to_five_percent():
    peak, total = 3e-3, 1000
    assert train_jax.learning_rate(0, total, peak) == 0.0
    assert train_jax.learning_rate(train_jax.WARMUP_STEPS, total, peak) == pytest.approx(peak)
    assert train_jax.learning_rate(total, total, peak) == pytest.approx(0.05 * peak)
    lrs = [train_jax.learning_rate(s, total, peak) for s in range(train_jax.WARMUP_STEPS, total + 1)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_prepare_then_export_keeps_the_model(tiny_poem_model, poems_file, tmp_path):
    """Weights written by prepare and exported again give the same SavedModel outputs (the JAX training in
    between is left out: its weights come back in the same file layout)."""
    import tensorflow as tf

    stats = train_jax.prepare(tiny_poem_model, poems_file, str(tmp_path / "gpu"))
    data = np.load(tmp_path / "gpu" / "data.npz")
    assert int(data["train_len"].sum()) - len(data["train_len"]) == stats["train_tokens"]
    assert int(data["vocab_size"]) == stats["vocab_size"]
    history = {"args": {"dropout": 0.2, "learning_rate": 1e-3, "tokens": 1024},
               "history": [{"epoch": 1, "step": 5, "train_bpc": 7.0, "val_bpc": 7.5, "seconds": 2.0},
                           {"epoch": 2, "step": 10, "train_bpc": 6.5, "val_bpc": 7.0, "seconds": 1.5}]}
    with open(tmp_path / "h.json", "w") as f:
        json.dump(history, f)
    out = train_jax.export(str(tmp_path / "gpu" / "init.npz"), str(tmp_path / "h.json"), tiny_poem_model, poems_file,
                           str(tmp_path / "models" / "poetry"), str(tmp_path / "run"), "a test machine")
    a, b = tf.saved_model.load(tiny_poem_model), tf.saved_model.load(out)
    text = tf.constant(["春风花草香，明月照高楼。"])
    np.testing.assert_array_equal(a.signatures["score"](text=text)["bits_per_char"].numpy(),
                                  b.signatures["score"](text=text)["bits_per_char"].numpy())
    run = json.load(open(tmp_path / "run" / "config.json"))
    assert run["trained_on"] == "a test machine" and run["settings"]["dropout"] == 0.2 and run["clipping"] == "global"
    rows = [json.loads(line) for line in open(tmp_path / "run" / "history.jsonl")]
    assert [r["seconds"] for r in rows] == [2.0, 3.5] and rows[-1]["val_bits_per_char"] == 7.0
    assert os.path.isdir(out)
