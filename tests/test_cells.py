"""Tests of the recurrent cells: equality with Keras's built-ins, NumPy references, config, errors.

Every equality check here is paired with something that makes it able to fail: random weights and
biases (a constant initializer would hide a wrong gate order), a test that swapping two gate blocks
breaks equality, and NumPy references that disagree when the peepholes/coupling are left out.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnn_apps.cells import (
    CELLS,
    CoupledLSTMCell,
    GRUCell,
    LSTMCell,
    PeepholeLSTMCell,
    SimpleRNNCell,
    get_cell,
)

B, T, D, U = 3, 5, 4, 6
LENGTHS = [5, 3, 1]  # right-padded: example b is valid for its first LENGTHS[b] steps
ATOL = 1e-5


def rand(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).uniform(-scale, scale, size=shape)).astype("float32")


def random_weights(layer, seed):
    """Seeded random values for every weight of ``layer`` (biases included, not constants)."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.7, 0.7, size=w.shape).astype("float32") for w in layer.get_weights()]


def right_padded_mask(lengths=LENGTHS, steps=T):
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


# builtin layer factory (keyword args go to the layer) and the custom cell twin
PAIRS = {
    "lstm": (lambda **kw: keras.layers.LSTM(U, **kw), lambda: LSTMCell(U)),
    "gru_reset_after": (lambda **kw: keras.layers.GRU(U, reset_after=True, **kw), lambda: GRUCell(U, reset_after=True)),
    "gru_reset_before": (
        lambda **kw: keras.layers.GRU(U, reset_after=False, **kw),
        lambda: GRUCell(U, reset_after=False),
    ),
    "simple_rnn": (lambda **kw: keras.layers.SimpleRNN(U, **kw), lambda: SimpleRNNCell(U)),
}

SCENARIOS = {
    # name: (layer kwargs, use mask, use initial_state, wrap in Bidirectional)
    "sequences": (dict(return_sequences=True), False, False, False),
    "last": (dict(return_sequences=False), False, False, False),
    "backwards_sequences": (dict(return_sequences=True, go_backwards=True), False, False, False),
    "backwards_last": (dict(return_sequences=False, go_backwards=True), False, False, False),
    "mask_sequences": (dict(return_sequences=True), True, False, False),
    "mask_last_backwards": (dict(return_sequences=False, go_backwards=True), True, False, False),
    "initial_state": (dict(return_sequences=True), False, True, False),
    "initial_state_mask": (dict(return_sequences=False), True, True, False),
    "bidirectional": (dict(return_sequences=True), False, False, True),
    "bidirectional_mask_last": (dict(return_sequences=False), True, False, True),
}


def make_pair(pair, scenario):
    """Builtin and custom layers for a scenario, built, the custom one holding the builtin's weights."""
    builtin_factory, cell_factory = PAIRS[pair]
    layer_kwargs, _, _, bidirectional = SCENARIOS[scenario]
    builtin = builtin_factory(return_state=True, **layer_kwargs)
    custom = keras.layers.RNN(cell_factory(), return_state=True, **layer_kwargs)
    if bidirectional:
        builtin, custom = keras.layers.Bidirectional(builtin), keras.layers.Bidirectional(custom)
    builtin.build((B, T, D))
    custom.build((B, T, D))
    return builtin, custom


def call_args(pair, scenario, seed=1):
    _, use_mask, use_initial_state, _ = SCENARIOS[scenario]
    kwargs = {}
    if use_mask:
        kwargs["mask"] = right_padded_mask()
    if use_initial_state:
        n_states = 2 if pair == "lstm" else 1
        kwargs["initial_state"] = [rand((B, U), seed + 10 + k) for k in range(n_states)]
    return kwargs


def outputs_of(layer, x, **kwargs):
    out = layer(x, **kwargs)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def assert_all_close(a, b, atol=ATOL):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        np.testing.assert_allclose(u, v, atol=atol, rtol=0)


# ---------------------------------------------------------------------------------------------
# Equality with the built-in layers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("pair", list(PAIRS))
def test_builtin_weights_into_custom_cell_give_equal_outputs_and_states(pair, scenario):
    builtin, custom = make_pair(pair, scenario)
    builtin.set_weights(random_weights(builtin, seed=7))
    custom.set_weights(builtin.get_weights())
    x = rand((B, T, D), 3)
    kwargs = call_args(pair, scenario)
    expected = outputs_of(builtin, x, **kwargs)
    got = outputs_of(custom, x, **kwargs)
    n_states = (2 if pair == "lstm" else 1) * (2 if SCENARIOS[scenario][3] else 1)
    assert len(got) == len(expected) == 1 + n_states
    assert_all_close(got, expected)


@pytest.mark.parametrize("pair", list(PAIRS))
def test_custom_weights_into_builtin_give_equal_outputs(pair):
    builtin, custom = make_pair(pair, "mask_sequences")
    custom.set_weights(random_weights(custom, seed=11))
    builtin.set_weights(custom.get_weights())
    x = rand((B, T, D), 4)
    mask = right_padded_mask()
    assert_all_close(outputs_of(builtin, x, mask=mask), outputs_of(custom, x, mask=mask))


@pytest.mark.parametrize("scenario", ["sequences", "mask_last_backwards", "initial_state", "bidirectional_mask_last"])
@pytest.mark.parametrize("pair", list(PAIRS))
def test_gradients_equal_builtin(pair, scenario):
    """Backpropagation through time: gradients w.r.t. the inputs and every weight agree."""
    builtin, custom = make_pair(pair, scenario)
    builtin.set_weights(random_weights(builtin, seed=5))
    custom.set_weights(builtin.get_weights())
    x = tf.constant(rand((B, T, D), 6))
    kwargs = call_args(pair, scenario)
    if "initial_state" in kwargs:
        kwargs["initial_state"] = [tf.constant(s) for s in kwargs["initial_state"]]

    def grads(layer):
        with tf.GradientTape() as tape:
            watched = [x, *kwargs.get("initial_state", [])]
            tape.watch(watched)
            outs = layer(x, **kwargs)
            # a random projection of every output and state, so each element has its own weight
            loss = sum(tf.reduce_sum(o * rand(o.shape, 100 + k)) for k, o in enumerate(outs))
        return [np.asarray(g) for g in tape.gradient(loss, watched + list(layer.trainable_weights))]

    expected, got = grads(builtin), grads(custom)
    assert len(got) == len(expected) == 1 + len(kwargs.get("initial_state", [])) + len(builtin.trainable_weights)
    assert all(np.abs(g).max() > 0 for g in expected)
    assert_all_close(got, expected)


def swap_blocks(w, n_blocks, a, b):
    """Swap column blocks a and b (gate order) of a weight whose last axis holds n_blocks gates."""
    blocks = np.split(w, n_blocks, axis=-1)
    blocks[a], blocks[b] = blocks[b], blocks[a]
    return np.concatenate(blocks, axis=-1)


@pytest.mark.parametrize("pair", list(PAIRS))
def test_sanity_wrong_gate_order_breaks_equality(pair):
    """The equality above can fail: the builtin's weights with two gate blocks swapped disagree."""
    builtin, custom = make_pair(pair, "sequences")
    weights = random_weights(builtin, seed=9)
    builtin.set_weights(weights)
    if pair == "simple_rnn":  # no gates: transposing the recurrent kernel must be noticed instead
        wrong = [weights[0], weights[1].T, weights[2]]
    elif pair == "lstm":  # i <-> f
        wrong = [swap_blocks(w, 4, 0, 1) for w in weights]
    else:  # z <-> r
        wrong = [swap_blocks(w, 3, 0, 1) for w in weights]
    custom.set_weights(wrong)
    x = rand((B, T, D), 3)
    assert np.abs(outputs_of(builtin, x)[0] - outputs_of(custom, x)[0]).max() > 1e-3
    custom.set_weights(weights)
    assert_all_close(outputs_of(custom, x), outputs_of(builtin, x))


# ---------------------------------------------------------------------------------------------
# NumPy references for the cells without a built-in twin
# ---------------------------------------------------------------------------------------------


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_peephole_lstm(x, kernel, recurrent, bias, p_i, p_f, p_o, h, c):
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
        i = sigmoid(z_i + p_i * c)
        f = sigmoid(z_f + p_f * c)
        c = f * c + i * np.tanh(z_c)
        o = sigmoid(z_o + p_o * c)
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def numpy_coupled_lstm(x, kernel, recurrent, bias, h, c):
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        z_f, z_c, z_o = np.split(z, 3, axis=-1)
        f = sigmoid(z_f)
        c = f * c + (1.0 - f) * np.tanh(z_c)
        o = sigmoid(z_o)
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def test_peephole_lstm_matches_numpy_reference():
    layer = keras.layers.RNN(PeepholeLSTMCell(U), return_sequences=True, return_state=True)
    layer.build((B, T, D))
    weights = random_weights(layer, seed=21)  # kernel, recurrent, bias, p_i, p_f, p_o: all nonzero
    layer.set_weights(weights)
    assert [w.shape for w in weights[3:]] == [(U,)] * 3 and all(np.abs(w).min() > 0 for w in weights[3:])
    x = rand((B, T, D), 22)
    h0, c0 = rand((B, U), 23), rand((B, U), 24)
    got = outputs_of(layer, x, initial_state=[h0, c0])
    expected = numpy_peephole_lstm(x.astype("float64"), *[w.astype("float64") for w in weights], h0, c0)
    assert_all_close(got, list(expected))
    # each peephole matters: zeroing any one of them in the reference changes the result
    for k in (3, 4, 5):
        w = [v.astype("float64") for v in weights]
        w[k] = np.zeros_like(w[k])
        assert np.abs(numpy_peephole_lstm(x, *w, h0, c0)[0] - got[0]).max() > 1e-3


def test_peephole_lstm_with_zero_peepholes_equals_lstm():
    lstm = keras.layers.RNN(LSTMCell(U), return_sequences=True, return_state=True)
    peep = keras.layers.RNN(PeepholeLSTMCell(U), return_sequences=True, return_state=True)
    lstm.build((B, T, D))
    peep.build((B, T, D))
    weights = random_weights(lstm, seed=31)
    lstm.set_weights(weights)
    assert all(np.all(w == 0) for w in peep.get_weights()[3:])  # default peephole_initializer
    peep.set_weights(weights + peep.get_weights()[3:])
    x, mask = rand((B, T, D), 32), right_padded_mask()
    assert_all_close(outputs_of(peep, x, mask=mask), outputs_of(lstm, x, mask=mask))
    peep.set_weights(weights + [np.full((U,), 0.5, "float32")] * 3)
    assert np.abs(outputs_of(peep, x)[0] - outputs_of(lstm, x)[0]).max() > 1e-3


def test_coupled_lstm_matches_numpy_reference():
    layer = keras.layers.RNN(CoupledLSTMCell(U), return_sequences=True, return_state=True)
    layer.build((B, T, D))
    assert [w.shape for w in layer.get_weights()] == [(D, 3 * U), (U, 3 * U), (3 * U,)]
    weights = random_weights(layer, seed=41)
    layer.set_weights(weights)
    x = rand((B, T, D), 42)
    h0, c0 = rand((B, U), 43), rand((B, U), 44)
    got = outputs_of(layer, x, initial_state=[h0, c0])
    expected = numpy_coupled_lstm(x.astype("float64"), *[w.astype("float64") for w in weights], h0, c0)
    assert_all_close(got, list(expected))
    # the block order matters: f and o swapped in the reference disagree
    wrong = [swap_blocks(w.astype("float64"), 3, 0, 2) for w in weights]
    assert np.abs(numpy_coupled_lstm(x, *wrong, h0, c0)[0] - got[0]).max() > 1e-3


def test_coupled_lstm_unit_forget_bias():
    layer = keras.layers.RNN(CoupledLSTMCell(U))
    layer.build((B, T, D))
    np.testing.assert_array_equal(layer.get_weights()[2], np.r_[np.ones(U), np.zeros(2 * U)])


@pytest.mark.parametrize("cell_cls", [PeepholeLSTMCell, CoupledLSTMCell])
def test_gradients_match_finite_differences(cell_cls):
    """No built-in twin for these two: check the tape's BPTT gradients numerically (float64)."""
    layer = keras.layers.RNN(cell_cls(3, dtype="float64"), return_sequences=True, dtype="float64")
    layer.build((2, 4, 2))
    rng = np.random.default_rng(51)
    layer.set_weights([rng.uniform(-0.7, 0.7, w.shape) for w in layer.get_weights()])
    x = tf.constant(rng.normal(size=(2, 4, 2)))
    coeffs = rng.normal(size=(2, 4, 3))

    def loss():
        return tf.reduce_sum(layer(x) * coeffs)

    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, layer.trainable_weights)
    eps = 1e-6
    for var, grad in zip(layer.trainable_weights, grads):
        flat = var.numpy().ravel()
        for idx in rng.choice(flat.size, size=min(3, flat.size), replace=False):
            for sign, store in ((1, "plus"), (-1, "minus")):
                bumped = flat.copy()
                bumped[idx] += sign * eps
                var.assign(bumped.reshape(var.shape))
                if store == "plus":
                    plus = float(loss())
                else:
                    minus = float(loss())
            var.assign(flat.reshape(var.shape))
            numeric = (plus - minus) / (2 * eps)
            assert abs(numeric - grad.numpy().ravel()[idx]) < 1e-6, var.path


# ---------------------------------------------------------------------------------------------
# Config and saving
# ---------------------------------------------------------------------------------------------

ALL_CELLS = {
    "simple_rnn": lambda: SimpleRNNCell(U, activation="relu", dropout=0.1, seed=3),
    "lstm": lambda: LSTMCell(U, unit_forget_bias=False, recurrent_dropout=0.2),
    "peephole_lstm": lambda: PeepholeLSTMCell(U, peephole_initializer="random_normal"),
    "coupled_lstm": lambda: CoupledLSTMCell(U, recurrent_activation="hard_sigmoid"),
    "gru": lambda: GRUCell(U, kernel_initializer="he_normal"),
    "gru_reset_before": lambda: GRUCell(U, reset_after=False, use_bias=False),
}


@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_get_config_from_config_round_trip(name):
    cell = ALL_CELLS[name]()
    config = cell.get_config()
    clone = type(cell).from_config(config)
    assert clone.get_config() == config
    a = keras.layers.RNN(cell, return_sequences=True)
    b = keras.layers.RNN(clone, return_sequences=True)
    a.build((B, T, D))
    b.build((B, T, D))
    a.set_weights(random_weights(a, seed=61))
    b.set_weights(a.get_weights())
    x = rand((B, T, D), 62)
    assert_all_close(outputs_of(b, x), outputs_of(a, x))


@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_keras_model_save_load_round_trip(name, tmp_path):
    inputs = keras.Input((T, D))
    rnn = keras.layers.RNN(ALL_CELLS[name](), return_sequences=True, name="rnn")
    model = keras.Model(inputs, rnn(keras.layers.Masking()(inputs)))
    rnn.set_weights(random_weights(rnn, seed=71))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = rand((B, T, D), 72)
    x[1, 3:] = 0.0  # padded steps, masked by Masking
    assert type(loaded.get_layer("rnn").cell) is type(rnn.cell)
    assert_all_close([np.asarray(loaded(x))], [np.asarray(model(x))])
    assert_all_close(loaded.get_layer("rnn").get_weights(), rnn.get_weights(), atol=0)


def test_registry():
    assert set(CELLS) == {"simple_rnn", "lstm", "peephole_lstm", "coupled_lstm", "gru"}
    assert get_cell("GRU") is GRUCell and get_cell("peephole_lstm") is PeepholeLSTMCell
    with pytest.raises(ValueError, match="'nope'"):
        get_cell("nope")


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
def test_dropout_only_in_training(name):
    cell_cls = get_cell(name)
    dropped = keras.layers.RNN(cell_cls(U, dropout=0.4, recurrent_dropout=0.4, seed=1), return_sequences=True)
    plain = keras.layers.RNN(cell_cls(U), return_sequences=True)
    dropped.build((B, T, D))
    plain.build((B, T, D))
    dropped.set_weights(random_weights(dropped, seed=81))
    plain.set_weights(dropped.get_weights())
    x = rand((B, T, D), 82)
    inference = np.asarray(dropped(x, training=False))
    np.testing.assert_allclose(inference, np.asarray(plain(x)), atol=ATOL, rtol=0)
    assert np.abs(np.asarray(dropped(x, training=True)) - inference).max() > 1e-3


def test_dropout_masks_shared_across_time_steps():
    """Identity input weights, no recurrence, linear: h_t = x_t * mask_in; constant x_t shows the mask."""
    cell = SimpleRNNCell(D, activation=None, dropout=0.5, seed=2)
    layer = keras.layers.RNN(cell, return_sequences=True)
    layer.build((8, T, D))
    layer.set_weights([np.eye(D, dtype="float32"), np.zeros((D, D), "float32"), np.zeros(D, "float32")])
    out = np.asarray(layer(np.ones((8, T, D), "float32"), training=True))
    assert 0 < (out == 0).mean() < 1
    for t in range(1, T):
        np.testing.assert_array_equal(out[:, t], out[:, 0])

    # recurrent mask: no input weights, identity recurrence; a shared mask keeps the same zeros
    cell = SimpleRNNCell(D, activation=None, recurrent_dropout=0.5, seed=3)
    layer = keras.layers.RNN(cell, return_sequences=True)
    layer.build((8, T, D))
    layer.set_weights([np.zeros((D, D), "float32"), np.eye(D, dtype="float32"), np.zeros(D, "float32")])
    out = np.asarray(layer(np.ones((8, T, D), "float32"), initial_state=[np.ones((8, D), "float32")], training=True))
    assert 0 < (out[:, 0] == 0).mean() < 1
    for t in range(1, T):
        np.testing.assert_array_equal(out[:, t] == 0, out[:, 0] == 0)


# ---------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("units", [0, -3, 2.5, "8", None, True])
@pytest.mark.parametrize("name", list(CELLS))
def test_bad_units(name, units):
    with pytest.raises(ValueError, match=re.escape(repr(units))):
        get_cell(name)(units)


@pytest.mark.parametrize("arg,value", [("dropout", 1.5), ("recurrent_dropout", -0.1), ("dropout", "half")])
@pytest.mark.parametrize("name", list(CELLS))
def test_bad_dropout(name, arg, value):
    received = repr(value) if isinstance(value, str) else str(value)
    with pytest.raises(ValueError, match=rf"`{arg}`.*{re.escape(received)}"):
        get_cell(name)(4, **{arg: value})


def test_bad_cell_specific_arguments():
    with pytest.raises(ValueError, match="'yes'"):
        GRUCell(4, reset_after="yes")
    with pytest.raises(ValueError, match="recurrent_activation='sigmoid'"):
        SimpleRNNCell(4, recurrent_activation="sigmoid")


@pytest.mark.parametrize("shape,rank", [((2, 4), 2), ((2, 3, 4, 5), 4)])
@pytest.mark.parametrize("name", list(CELLS))
def test_wrong_input_rank(name, shape, rank):
    layer = keras.layers.RNN(get_cell(name)(4))
    with pytest.raises(ValueError, match=f"rank {rank}"):
        layer(np.zeros(shape, "float32"))


@pytest.mark.parametrize("name", list(CELLS))
def test_set_weights_with_wrong_shapes(name):
    layer = keras.layers.RNN(get_cell(name)(4))
    layer.build((B, T, D))
    good = layer.get_weights()
    bad = [np.zeros((good[0].shape[0] + 1,) + good[0].shape[1:], "float32")] + good[1:]
    with pytest.raises(ValueError) as info:
        layer.set_weights(bad)
    assert str(good[0].shape) in str(info.value) and str(bad[0].shape) in str(info.value)
