"""The poem model's loss and bits-per-character metric: one softmax, the numbers of Keras's loss and of NumPy."""

import math

import keras
import numpy as np

from rnn_apps.apps.poetry.model import build_char_rnn
from rnn_apps.apps.poetry.task import compile_model

V, B, T = 13, 3, 7


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, size=(B, T)).astype(np.int32)
    y = rng.integers(1, V, size=(B, T)).astype(np.int32)
    w = np.ones((B, T), np.float32)
    w[1, 4:] = 0.0  # padding
    return x, y, w


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return build_char_rnn(V, embedding_dim=4, units=5, num_layers=1, dropout=0.0)


def _numpy_bits(logits, y, w):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, y[..., None], -1)[..., 0]
    return float((ce * w).sum() / w.sum() / math.log(2.0)), float((ce * w).sum() / ce.size)


def test_evaluate_matches_numpy():
    x, y, w = _batch()
    model = compile_model(_model(), 1e-2, 1.0, 10)
    logits = np.asarray(model(x), np.float64)
    bits, loss = _numpy_bits(logits, y, w)
    out = model.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0)
    np.testing.assert_allclose(out["bits_per_char"], bits, rtol=1e-5)
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-5)


def test_training_matches_keras_loss():
    """Two Adam steps with the counting loss give the weights and losses of Keras's own loss."""
    x, y, w = _batch(1)
    ours = compile_model(_model(), 1e-2, 1.0, 10)
    ref = _model()
    ref.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, 10, alpha=0.05),
                                                clipnorm=1.0),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(2):
        bits_before, _ = _numpy_bits(np.asarray(ours(x), np.float64), y, w)
        a = ours.train_on_batch(x, y, sample_weight=w, return_dict=True)
        b = ref.train_on_batch(x, y, sample_weight=w, return_dict=True)
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["bits_per_char"], bits_before, rtol=1e-4)
    for p, q in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
