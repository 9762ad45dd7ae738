"""rnn_apps.layers.BatchNormalization: Keras's batch normalization, its training step as TensorFlow's fused
kernel."""

from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnn_apps.layers import BatchNormalization


def _pair(shape, **kwargs):
    """An rnn_apps.layers.BatchNormalization and a keras.layers.BatchNormalization with the same non-trivial
    weights."""
    rng = np.random.default_rng(1)
    fused, keras_bn = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    for layer in (fused, keras_bn):
        layer.build(shape)
    channels = shape[kwargs.get("axis", -1)]
    values = [rng.normal(size=channels).astype("float32") for _ in range(3)] + [
        rng.uniform(0.5, 2.0, size=channels).astype("float32")]
    for layer in (fused, keras_bn):
        for variable, value in zip((layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance), values):
            variable.assign(value)
    return fused, keras_bn


def _ops(layer, x, training):
    fn = tf.function(lambda x: layer(x, training=training))
    return {op.type for op in fn.get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).graph.get_operations()}


def test_a_training_step_is_the_batch_normalization_equations():
    """Outputs, gradients and moving averages of three training steps equal NumPy's equations (biased batch
    variance, as Keras keeps it) and keras.layers.BatchNormalization's, within float32 rounding; activations
    far from zero mean, where a one-pass variance would lose digits."""
    rng = np.random.default_rng(0)
    shape = (6, 5, 7, 4)
    fused, keras_bn = _pair(shape, momentum=0.9)
    upstream = rng.normal(size=shape)
    for step in range(3):
        x = (rng.normal(size=shape) * 3 + 40).astype("float32")
        gamma, beta = fused.gamma.numpy().astype(np.float64), fused.beta.numpy().astype(np.float64)
        moving = [fused.moving_mean.numpy().astype(np.float64), fused.moving_variance.numpy().astype(np.float64)]
        results = []
        for layer in (fused, keras_bn):
            xv = tf.Variable(x)
            with tf.GradientTape() as tape:
                y = layer(xv, training=True)
                loss = tf.reduce_sum(y * upstream.astype("float32"))
            grads = tape.gradient(loss, [xv, layer.gamma, layer.beta])
            results.append([y.numpy()] + [g.numpy() for g in grads])
        # NumPy in float64: y = γ x̂ + β, x̂ = (x - μ) / sqrt(σ² + ε), and the gradients of Σ y·upstream
        x64 = x.astype(np.float64)
        mu, var = x64.mean(axis=(0, 1, 2)), x64.var(axis=(0, 1, 2))
        inv = 1.0 / np.sqrt(var + fused.epsilon)
        xhat = (x64 - mu) * inv
        n = x64.size // shape[-1]
        dgamma, dbeta = (upstream * xhat).sum(axis=(0, 1, 2)), upstream.sum(axis=(0, 1, 2))
        dx = gamma * inv * (upstream - (dbeta + xhat * dgamma) / n)
        reference = [gamma * xhat + beta, dx, dgamma, dbeta]
        for got, want in zip(results[0], reference):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
        for got, want in zip(results[0], results[1]):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
        np.testing.assert_allclose(fused.moving_mean.numpy(), 0.9 * moving[0] + 0.1 * mu, rtol=1e-6)
        np.testing.assert_allclose(fused.moving_variance.numpy(), 0.9 * moving[1] + 0.1 * var, rtol=1e-5)
        np.testing.assert_allclose(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-5)
    # inference normalises with the moving averages, as Keras's layer does, in the same graph
    keras_bn.set_weights(fused.get_weights())
    x = rng.normal(size=shape).astype("float32")
    np.testing.assert_array_equal(fused(x, training=False).numpy(), keras_bn(x, training=False).numpy())


def test_only_4d_channels_last_training_steps_take_the_fused_kernel():
    """The training graph holds TensorFlow's FusedBatchNormV3 (and none of Keras's separate moments); inference,
    other ranks and axes, masks, renormalization and frozen layers are Keras's own computation, number for
    number."""
    x = tf.constant(np.random.default_rng(2).normal(size=(4, 3, 3, 5)).astype("float32"))
    fused, _ = _pair(x.shape)
    training_ops = _ops(fused, x, True)
    assert "FusedBatchNormV3" in training_ops and "SquaredDifference" not in training_ops
    assert "FusedBatchNormV3" not in _ops(fused, x, False)

    cases = [((4, 5), {}, None), ((4, 5, 3), {}, None), ((4, 5, 3, 3), {"axis": 1}, None),
             ((4, 3, 3, 5), {"renorm": True}, None), ((4, 3, 3, 5), {"synchronized": True}, None),
             ((4, 3, 3, 5), {"dtype": "float64"}, None), ((4, 6, 5), {}, np.arange(24).reshape(4, 6) % 3 > 0),
             ((4, 3, 3, 5), {}, np.arange(36).reshape(4, 3, 3) % 4 > 0)]
    for shape, kwargs, mask in cases:
        data = tf.constant(np.random.default_rng(3).normal(size=shape).astype(kwargs.get("dtype", "float32")))
        fused, keras_bn = _pair(shape, **kwargs)
        if mask is None:
            assert "FusedBatchNormV3" not in _ops(fused, data, True)
        np.testing.assert_array_equal(fused(data, training=True, mask=mask).numpy(),
                                      keras_bn(data, training=True, mask=mask).numpy())
        np.testing.assert_array_equal(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy())
    frozen, _ = _pair(x.shape)
    frozen.trainable = False
    assert "FusedBatchNormV3" not in _ops(frozen, x, True)


def test_weights_files_move_between_keras_layers_and_these(tmp_path):
    """Keras's weights files address a model's layers by class name: a .weights.h5 file of an encoder built
    with Keras's Conv2D and BatchNormalization (as the shipped captioners were trained) loads into today's
    encoder, which then gives the same inference numbers, and the other way round; the layers serialize under
    their own registered names."""
    from rnn_apps.apps.caption import model as caption_model
    from rnn_apps.layers import Conv2D

    x = np.random.default_rng(4).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")

    def keras_encoder(seed):
        with mock.patch.object(caption_model, "BatchNormalization", keras.layers.BatchNormalization), \
                mock.patch.object(caption_model, "Conv2D", keras.layers.Conv2D):
            keras.utils.set_random_seed(seed)
            return caption_model.build_encoder(32, filters=(4, 6), feature_dim=5)

    def encoder(seed):
        keras.utils.set_random_seed(seed)
        return caption_model.build_encoder(32, filters=(4, 6), feature_dim=5)

    old, new = keras_encoder(7), encoder(8)
    assert {type(layer) for layer in new.layers} >= {BatchNormalization, Conv2D}
    assert not {type(layer) for layer in old.layers} & {BatchNormalization, Conv2D}
    old(x, training=True)  # moves the moving averages away from their start
    old.save_weights(str(tmp_path / "old.weights.h5"))
    new.load_weights(str(tmp_path / "old.weights.h5"))
    np.testing.assert_array_equal(new(x, training=False).numpy(), old(x, training=False).numpy())
    new(x, training=True)
    new.save_weights(str(tmp_path / "new.weights.h5"))
    back = keras_encoder(9)
    back.load_weights(str(tmp_path / "new.weights.h5"))
    np.testing.assert_array_equal(back(x, training=False).numpy(), new(x, training=False).numpy())
    for cls in (BatchNormalization, Conv2D):
        layer = next(layer for layer in new.layers if type(layer) is cls)
        config = keras.saving.serialize_keras_object(layer)
        assert config["registered_name"] == f"rnn_apps>{cls.__name__}"
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is cls and again.get_config() == layer.get_config()


@pytest.mark.parametrize("precision_name", ["float32", "bfloat16"])
def test_the_captioning_encoder_trains(precision_name):
    """A few training steps of the small CNN with the fused layers (and bfloat16 convolutions) lower its loss on
    a fixed batch, with float32 weights."""
    from rnn_apps import precision
    from rnn_apps.apps.caption.model import build_encoder

    keras.utils.set_random_seed(9)
    encoder = build_encoder(16, filters=(4, 8), feature_dim=6)
    assert precision.set_training_precision(encoder, precision_name) == 3
    rng = np.random.default_rng(9)
    x = tf.constant(rng.uniform(0, 255, size=(8, 16, 16, 3)).astype("float32"))
    target = tf.constant(rng.uniform(size=(8, 64, 6)).astype("float32"))  # an 8x8 grid
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(encoder(x, training=True) - target))
        grads = tape.gradient(loss, encoder.trainable_variables)
        optimizer.apply_gradients(zip(grads, encoder.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert {w.dtype for w in encoder.weights} == {"float32"}
