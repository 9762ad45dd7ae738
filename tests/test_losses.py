"""rnn_apps.losses: the XLA-compiled token cross-entropy equals the NumPy equation and Keras's loss (values,
gradients, weights, masks, reductions)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from rnn_apps.losses import SparseCrossEntropy, sparse_cross_entropy  # noqa: E402


def _data(seed=0, shape=(3, 5), vocab=40):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, vocab, shape).astype(np.int32)
    logits = (rng.normal(size=shape + (vocab,)) * 4).astype(np.float32)
    w = (rng.random(shape) > 0.3).astype(np.float32)
    return y, logits, w


def test_values_are_the_equation():
    y, logits, _ = _data()
    z = logits.astype(np.float64)
    m = z.max(-1, keepdims=True)
    want = (np.log(np.exp(z - m).sum(-1)) + m[..., 0]) - np.take_along_axis(z, y[..., None], -1)[..., 0]
    got = sparse_cross_entropy(y, tf.constant(logits)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # targets of shape (..., 1), as Keras accepts them
    np.testing.assert_allclose(sparse_cross_entropy(y[..., None], tf.constant(logits)).numpy(), got)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", "sum", None])
def test_loss_and_gradient_equal_keras(reduction):
    y, logits, w = _data(1)
    ours, theirs = SparseCrossEntropy(reduction=reduction), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=reduction)
    z = tf.Variable(logits)
    results = []
    for loss in (ours, theirs):
        with tf.GradientTape() as tape:
            value = loss(y, z, sample_weight=w)
            total = tf.reduce_sum(value)
        results.append((value.numpy(), tape.gradient(total, z).numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-7)
    # the gradient is softmax - onehot, weighted (NumPy)
    if reduction == "sum":
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        want = (p - np.eye(logits.shape[-1])[y]) * w[..., None]
        np.testing.assert_allclose(results[0][1], want, rtol=1e-4, atol=1e-6)


def test_a_keras_mask_on_the_logits_is_applied_as_keras_does():
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]], np.int32)
    emb = keras.layers.Embedding(10, 10, mask_zero=True)
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Dense(10)(emb(inputs)))
    y = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 1]], np.int32)
    out = model(ids)
    assert float(SparseCrossEntropy()(y, out)) == pytest.approx(
        float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, out)), rel=1e-5)


def test_a_model_trains_the_same_with_either_loss():
    y, _, w = _data(2, shape=(8, 6), vocab=12)
    x = np.random.default_rng(3).normal(size=(8, 6, 4)).astype(np.float32)
    losses = []
    for loss in (SparseCrossEntropy(), keras.losses.SparseCategoricalCrossentropy(from_logits=True)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6, 4)), keras.layers.Dense(12)])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
        losses.append([model.train_on_batch(x, y, sample_weight=w) for _ in range(5)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    assert losses[0][-1] < losses[0][0]


def test_settings_it_does_not_take_are_refused_and_the_config_round_trips():
    with pytest.raises(ValueError, match="from_logits=False"):
        SparseCrossEntropy(from_logits=False)
    with pytest.raises(ValueError, match="ignore_class=0"):
        SparseCrossEntropy(ignore_class=0)
    loss = SparseCrossEntropy(reduction="sum", name="ce")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is SparseCrossEntropy and again.reduction == "sum" and again.name == "ce"
