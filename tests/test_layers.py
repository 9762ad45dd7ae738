"""Tests of DeepBidirectionalRNN and PyramidalBidirectionalRNN: shapes, masking, gradients, config."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnn_apps.cells import GRUCell, LSTMCell
from rnn_apps.layers import DeepBidirectionalRNN, PyramidalBidirectionalRNN

B, D, U = 3, 3, 4
ATOL = 1e-5


def rand(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def randomize(layer, seed):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.7, 0.7, size=w.shape).astype("float32") for w in layer.get_weights()])


def mask_of(lengths, steps):
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def ceil_div(n, k):
    return -(-n // k)


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,steps,expected",
    [
        (dict(num_layers=3), 5, (B, 5, 2 * U)),
        (dict(num_layers=2, return_sequences=False), 5, (B, 2 * U)),
        (dict(num_layers=2, merge_mode="sum"), 4, (B, 4, U)),
        (dict(num_layers=1, merge_mode="ave", cell="simple_rnn"), 1, (B, 1, U)),
    ],
)
def test_deep_output_shapes(kwargs, steps, expected):
    layer = DeepBidirectionalRNN(units=U, **kwargs)
    out = layer(rand((B, steps, D), 0))
    assert tuple(out.shape) == expected == tuple(layer.compute_output_shape((B, steps, D)))


@pytest.mark.parametrize("steps", [1, 2, 5, 7, 8, 9])
def test_pyramidal_output_shapes_halve_time_with_odd_lengths_padded(steps):
    layer = PyramidalBidirectionalRNN("gru", U, num_layers=3)
    out = layer(rand((B, steps, D), 0))
    expected = (B, ceil_div(steps, 4), 2 * U)  # 3 layers: two halvings, rounding up
    assert tuple(out.shape) == expected == tuple(layer.compute_output_shape((B, steps, D)))


def test_symbolic_shapes_with_unknown_time():
    inputs = keras.Input((None, D))
    deep = DeepBidirectionalRNN("gru", U, num_layers=2, merge_mode="sum")(inputs)
    pyr = PyramidalBidirectionalRNN("lstm", U, num_layers=3)(inputs)
    assert tuple(deep.shape) == (None, None, U) and tuple(pyr.shape) == (None, None, 2 * U)
    model = keras.Model(inputs, [deep, pyr])
    a, b = model(rand((2, 7, D), 1))
    assert a.shape == (2, 7, U) and b.shape == (2, 2, 2 * U)


# ---------------------------------------------------------------------------------------------
# Structure: the layers compute what hand-stacked Keras layers compute
# ---------------------------------------------------------------------------------------------


def test_deep_equals_hand_stacked_bidirectional_layers():
    deep = DeepBidirectionalRNN("lstm", U, num_layers=2, dropout=0.5)
    x = rand((B, 5, D), 2)
    deep.build(x.shape)
    randomize(deep, 3)
    stack = keras.Sequential(
        [
            keras.Input((5, D)),
            keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True)),
            keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True)),
        ]
    )
    stack.set_weights(deep.get_weights())
    np.testing.assert_allclose(deep(x, training=False), stack(x), atol=ATOL, rtol=0)
    # and the forward and backward weights are separate variables with different values
    for bi in deep.bidirectional_layers:
        fw, bw = bi.forward_layer.trainable_weights, bi.backward_layer.trainable_weights
        assert {id(v) for v in fw}.isdisjoint({id(v) for v in bw})
        assert all(np.abs(np.asarray(f) - np.asarray(b)).max() > 0 for f, b in zip(fw, bw))


@pytest.mark.parametrize("cell,builtin", [("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU)])
def test_deep_trains_as_hand_stacked_builtin_layers_with_masks(cell, builtin):
    """In training (the projected input and, for the LSTM, the written-out backward pass of ProjectedRNN) a
    masked batch gives the outputs and gradients of hand-stacked Keras built-in layers with the same weights."""
    deep = DeepBidirectionalRNN(cell, U, num_layers=2)
    x = tf.constant(rand((B, 6, D), 4))
    mask = tf.constant(mask_of([6, 4, 2], 6))
    deep.build(x.shape)
    randomize(deep, 5)
    extra = {"reset_after": True} if builtin is keras.layers.GRU else {}
    stack = [keras.layers.Bidirectional(builtin(U, return_sequences=True, **extra)) for _ in range(2)]
    h = x
    for bi in stack:
        h = bi(h, mask=mask)
    weights = deep.get_weights()  # each layer's forward then backward weights, as Bidirectional orders them
    for k, bi in enumerate(stack):
        bi.set_weights(weights[k * len(weights) // 2:(k + 1) * len(weights) // 2])

    def loss_and_grads(run, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = run()
            loss = tf.reduce_sum(tf.where(mask[..., None], y, 0.0) ** 2)
        return y, tape.gradient(loss, [x] + weights)

    y1, g1 = loss_and_grads(lambda: deep(x, mask=mask, training=True), deep.trainable_weights)

    def run_stack():
        h = x
        for bi in stack:
            h = bi(h, mask=mask, training=True)
        return h

    y2, g2 = loss_and_grads(run_stack, [w for bi in stack for w in bi.trainable_weights])
    np.testing.assert_allclose(np.where(mask[..., None], y1, 0), np.where(mask[..., None], y2, 0), atol=ATOL, rtol=0)
    assert len(g1) == len(g2)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_pyramidal_equals_hand_stacked_layers_with_pairing():
    pyr = PyramidalBidirectionalRNN("gru", U, num_layers=2)
    x = rand((B, 5, D), 4)
    pyr.build(x.shape)
    randomize(pyr, 5)
    first = keras.layers.Bidirectional(keras.layers.GRU(U, return_sequences=True))
    second = keras.layers.Bidirectional(keras.layers.GRU(U, return_sequences=True))
    first.build((B, 5, D))
    second.build((B, 3, 4 * U))
    first.set_weights(pyr.get_layer("bidirectional_0").get_weights())
    second.set_weights(pyr.get_layer("bidirectional_1").get_weights())
    y = np.asarray(first(x))
    y = np.concatenate([y, np.zeros((B, 1, 2 * U), "float32")], axis=1)  # odd length: pad one zero step
    paired = y.reshape(B, 3, 4 * U)  # step t = [y_2t, y_2t+1]
    np.testing.assert_allclose(pyr(x), second(paired), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------------

LAYERS = {
    "deep_lstm": lambda **kw: DeepBidirectionalRNN("lstm", U, num_layers=2, **kw),
    "deep_gru_last": lambda: DeepBidirectionalRNN(GRUCell, U, num_layers=2, return_sequences=False),
    "pyramidal_lstm": lambda: PyramidalBidirectionalRNN("lstm", U, num_layers=3),
    "pyramidal_gru_sum": lambda: PyramidalBidirectionalRNN("gru", U, num_layers=3, merge_mode="sum"),
}


def valid_steps(name, length):
    if name.startswith("pyramidal"):
        return ceil_div(length, 4)
    return None if name.endswith("_last") else length


@pytest.mark.parametrize("name", list(LAYERS))
def test_padded_batch_equals_each_example_alone(name):
    """Right-padded batch + mask: every valid output equals the unpadded example run alone."""
    lengths, steps = [7, 5, 2], 7
    layer = LAYERS[name]()
    x = rand((B, steps, D), 6)  # the padded steps hold random garbage, not zeros
    layer.build(x.shape)
    randomize(layer, 7)
    batch_out = np.asarray(layer(x, mask=mask_of(lengths, steps)))
    for b, n in enumerate(lengths):
        alone = np.asarray(layer(x[b : b + 1, :n]))[0]
        k = valid_steps(name, n)
        if k is None:
            np.testing.assert_allclose(batch_out[b], alone, atol=ATOL, rtol=0)
        else:
            assert alone.shape[0] == k
            np.testing.assert_allclose(batch_out[b, :k], alone, atol=ATOL, rtol=0)
    # the mask is what makes this work: without it the padded examples change
    unmasked = np.asarray(layer(x))
    assert np.abs(unmasked[1] - batch_out[1]).max() > 1e-3


@pytest.mark.parametrize("name", ["deep_lstm", "pyramidal_lstm"])
def test_masking_layer_propagates_and_compute_mask(name):
    lengths, steps = [7, 4, 1], 7
    inputs = keras.Input((steps, D))
    layer = LAYERS[name]()
    outputs = layer(keras.layers.Masking()(inputs))
    model = keras.Model(inputs, outputs)
    randomize(layer, 8)
    x = rand((B, steps, D), 9)
    x[~mask_of(lengths, steps)] = 0.0
    out = model(x)
    full = mask_of(lengths, steps)
    expected_mask = full if name.startswith("deep") else full[:, ::2][:, ::2]  # pair valid if 1st step valid
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(x, full)), expected_mask)
    np.testing.assert_array_equal(np.asarray(out._keras_mask), expected_mask)
    alone = np.asarray(layer(x[1:2, :4]))[0]
    np.testing.assert_allclose(np.asarray(out)[1, : alone.shape[0]], alone, atol=ATOL, rtol=0)


def test_pyramidal_reduced_mask_counts():
    layer = PyramidalBidirectionalRNN("gru", U, num_layers=3)
    for n in range(1, 10):
        mask = mask_of([n], 9)
        assert np.asarray(layer.compute_mask(None, mask)).sum() == ceil_div(n, 4)


# ---------------------------------------------------------------------------------------------
# Gradients, dropout, return_state
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: DeepBidirectionalRNN("lstm", U, num_layers=3, dropout=0.2),
        lambda: PyramidalBidirectionalRNN(
            "peephole_lstm", U, num_layers=3, cell_kwargs={"peephole_initializer": "ones"}
        ),
        lambda: PyramidalBidirectionalRNN("coupled_lstm", U, num_layers=2, merge_mode="mul"),
    ],
    ids=["deep_lstm", "pyramidal_peephole", "pyramidal_coupled"],
)
def test_gradients_reach_every_layer_and_direction(make):
    layer = make()
    x = tf.constant(rand((B, 6, D), 10))
    mask = mask_of([6, 4, 3], 6)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, mask=mask, training=True) ** 2)
    weights = layer.trainable_weights
    n_cell_weights = len(layer.bidirectional_layers[0].forward_layer.trainable_weights)
    assert len(weights) == layer.num_layers * 2 * n_cell_weights
    grads = tape.gradient(loss, [x] + weights)
    assert np.abs(np.asarray(grads[0])).max() > 0
    for bi in layer.bidirectional_layers:
        for direction in (bi.forward_layer, bi.backward_layer):
            for var in direction.trainable_weights:
                g = grads[1 + [id(w) for w in weights].index(id(var))]
                assert g is not None and np.abs(np.asarray(g)).max() > 0, var.path


def test_dropout_between_layers_only_in_training():
    x = rand((B, 5, D), 11)
    layer = DeepBidirectionalRNN("gru", U, num_layers=2, dropout=0.5, seed=1)
    inference = np.asarray(layer(x, training=False))
    assert np.abs(np.asarray(layer(x, training=True)) - inference).max() > 1e-3
    no_drop = DeepBidirectionalRNN("gru", U, num_layers=2, dropout=0.0)
    no_drop.build(x.shape)
    no_drop.set_weights(layer.get_weights())
    np.testing.assert_allclose(no_drop(x, training=True), inference, atol=ATOL, rtol=0)


def test_return_state_gives_top_layer_final_states():
    layer = DeepBidirectionalRNN("lstm", U, num_layers=2, return_sequences=False, return_state=True)
    x = rand((B, 5, D), 12)
    out = layer(x, mask=mask_of([5, 3, 1], 5))
    assert len(out) == 5 and all(tuple(s.shape) == (B, U) for s in out[1:])
    output, fw_h, fw_c, bw_h, bw_c = (np.asarray(o) for o in out)
    np.testing.assert_allclose(output, np.concatenate([fw_h, bw_h], axis=-1), atol=ATOL, rtol=0)
    assert np.abs(fw_c - fw_h).max() > 0
    shapes = layer.compute_output_shape(x.shape)
    assert [tuple(s) for s in shapes] == [(B, 2 * U)] + [(B, U)] * 4


def test_named_sublayers():
    layer = PyramidalBidirectionalRNN("gru", U, num_layers=3, dropout=0.1)
    assert [bi.name for bi in layer.bidirectional_layers] == ["bidirectional_0", "bidirectional_1", "bidirectional_2"]
    assert layer.get_layer("bidirectional_1").forward_layer.name == "forward_rnn_1"
    assert layer.get_layer("bidirectional_1").backward_layer.name == "backward_rnn_1"
    assert layer.get_layer("dropout_2").rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="'nope'"):
        layer.get_layer("nope")


# ---------------------------------------------------------------------------------------------
# Config and saving
# ---------------------------------------------------------------------------------------------

CONFIG_LAYERS = {  # keyword arguments (e.g. name=) are passed on to the layer
    "deep_lstm": lambda **kw: DeepBidirectionalRNN("lstm", U, 2, dropout=0.1, return_state=True, **kw),
    "deep_gru_class": lambda **kw: DeepBidirectionalRNN(GRUCell, U, 2, cell_kwargs={"reset_after": False}, **kw),
    "deep_keras_cell": lambda **kw: DeepBidirectionalRNN(keras.layers.LSTMCell, U, 2, merge_mode="ave", **kw),
    "pyramidal_coupled": lambda **kw: PyramidalBidirectionalRNN(
        "coupled_lstm", U, 3, cell_kwargs={"dropout": 0.1}, **kw
    ),
    "pyramidal_simple": lambda **kw: PyramidalBidirectionalRNN("simple_rnn", U, 2, merge_mode="sum", **kw),
}


def as_list(out):
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


@pytest.mark.parametrize("name", list(CONFIG_LAYERS))
def test_config_round_trip(name):
    layer = CONFIG_LAYERS[name]()
    x = rand((B, 5, D), 13)
    layer.build(x.shape)
    randomize(layer, 14)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    for a, b in zip(as_list(clone(x)), as_list(layer(x))):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["deep_lstm", "deep_gru_class", "pyramidal_coupled"])
def test_keras_model_save_load_round_trip(name, tmp_path):
    inputs = keras.Input((5, D))
    layer = CONFIG_LAYERS[name](name="encoder")
    outputs = layer(keras.layers.Masking()(inputs))
    model = keras.Model(inputs, outputs)
    randomize(layer, 15)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer("encoder")) is type(layer)
    x = rand((B, 5, D), 16)
    x[1, 3:] = 0.0
    for a, b in zip(as_list(loaded(x)), as_list(model(x))):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [DeepBidirectionalRNN, PyramidalBidirectionalRNN])
@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(units=0), "received 0"),
        (dict(units="8"), "'8'"),
        (dict(num_layers=0), "`num_layers`.*received 0"),
        (dict(num_layers=2.5), "`num_layers`.*2.5"),
        (dict(dropout=1.5), "`dropout`.*1.5"),
        (dict(merge_mode="bad"), "'bad'"),
        (dict(merge_mode=None), "None"),
        (dict(cell="nope"), "'nope'"),
        (dict(cell=3), "received 3"),
        (dict(cell_kwargs=[1]), r"\[1\]"),
        (dict(cell_kwargs={"units": 3}), r"`cell_kwargs` must not hold `units`"),  # was Python's TypeError
    ],
)
def test_bad_arguments(cls, kwargs, message):
    args = {"cell": "lstm", "units": U, **kwargs}
    with pytest.raises(ValueError, match=message):
        cls(**args)


@pytest.mark.parametrize("cls", [DeepBidirectionalRNN, PyramidalBidirectionalRNN])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4, 5)])
def test_wrong_input_rank(cls, shape):
    with pytest.raises(ValueError, match=r"rank 3.*received shape " + re.escape(str(tuple(shape)))):
        cls("gru", U)(np.zeros(shape, "float32"))


def test_pyramidal_rejects_return_sequences_false():
    with pytest.raises(ValueError, match="return_sequences=False"):
        PyramidalBidirectionalRNN("gru", U, return_sequences=False)


def test_cell_class_resolution_errors_are_clear():
    class Unregistered(LSTMCell):
        pass

    with pytest.raises(ValueError, match="Unregistered.*register"):
        DeepBidirectionalRNN(Unregistered, U, num_layers=1)
