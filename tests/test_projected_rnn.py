"""ProjectedRNN computes what keras.layers.RNN computes with the same cell weights (outputs and gradients)."""

import keras
import numpy as np
import pytest
from unittest import mock
import tensorflow as tf

from rnn_apps.cells import GRUCell, LSTMCell, PeepholeLSTMCell
from rnn_apps.layers import ProjectedRNN

B, T, D, U = 3, 5, 4, 6
CELLS = {
    "lstm": lambda **kw: LSTMCell(U, **kw),
    "gru": lambda **kw: GRUCell(U, **kw),
    "gru_reset_before": lambda **kw: GRUCell(U, reset_after=False, **kw),
    "peephole_lstm": lambda **kw: PeepholeLSTMCell(U, **kw),  # no projection: runs keras.layers.RNN's loop
}


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 3:] = False  # right padding
    mask[2, :2] = False  # left padding
    return x, mask


def _pair(make_cell, seed=0, **layer_kwargs):
    """keras.layers.RNN and ProjectedRNN around cells with the same (random, non-zero) weights."""
    ref = keras.layers.RNN(make_cell(), **layer_kwargs)
    new = ProjectedRNN(make_cell(), **layer_kwargs)
    ref.build((None, T, D))
    new.build((None, T, D))
    rng = np.random.default_rng(seed)
    values = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights]
    ref.set_weights(values)
    new.set_weights(values)
    return ref, new


def _run(layer, x, mask, training=False, initial_state=None):
    x = tf.constant(x)
    weights = layer.trainable_weights
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, mask=None if mask is None else tf.constant(mask), training=training, initial_state=initial_state)
        outs = out if isinstance(out, (list, tuple)) else [out]
        loss = sum(tf.reduce_sum(o * (k + 1.5)) for k, o in enumerate(outs))
    grads = tape.gradient(loss, [x, *weights])
    return [np.asarray(o) for o in outs], [np.asarray(g) for g in grads]


def _assert_same(a, b):
    outs_a, grads_a = a
    outs_b, grads_b = b
    assert len(outs_a) == len(outs_b)
    for p, q in zip(outs_a, outs_b):
        np.testing.assert_allclose(q, p, rtol=1e-5, atol=1e-5)
    for p, q in zip(grads_a, grads_b):
        np.testing.assert_allclose(q, p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("settings", [
    dict(return_sequences=True),
    dict(return_sequences=False, return_state=True),
    dict(return_sequences=True, go_backwards=True, return_state=True),
])
def test_same_outputs_and_gradients_as_keras_rnn(cell, masked, settings):
    x, mask = _inputs()
    ref, new = _pair(CELLS[cell], **settings)
    _assert_same(_run(ref, x, mask if masked else None), _run(new, x, mask if masked else None))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_initial_state_and_unroll(cell):
    x, mask = _inputs(1)
    states = [tf.constant(np.full((B, U), 0.3, "float32"))] * (2 if cell == "lstm" else 1)
    ref, new = _pair(CELLS[cell], return_sequences=True, unroll=True)
    _assert_same(_run(ref, x, mask, initial_state=states), _run(new, x, mask, initial_state=states))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_same_dropout_masks_in_training(cell):
    """Input and recurrent dropout: with equal seeds the two layers drop the same units (one mask per sequence)."""
    x, mask = _inputs(2)
    ref, new = _pair(lambda: CELLS[cell](dropout=0.3, recurrent_dropout=0.2, seed=5), return_sequences=True)
    a, b = _run(ref, x, mask, training=True), _run(new, x, mask, training=True)
    _assert_same(a, b)
    no_dropout = _run(ref, x, mask, training=False)
    assert not np.allclose(a[0][0], no_dropout[0][0])  # dropout did act


@pytest.mark.parametrize("settings", [
    dict(return_sequences=True),
    dict(return_sequences=False, return_state=True),
    dict(return_sequences=True, go_backwards=True, return_state=True),
])
@pytest.mark.parametrize("initial", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_lstm_training_path(settings, initial, masked):
    """In training an LSTM runs lstm_sequence (the backward pass written out): the outputs and the gradients
    of the inputs, every weight and the initial states equal keras.layers.LSTM's (independent), with and
    without a mask (left and right padding)."""
    x, mask = _inputs(5)
    mask = tf.constant(mask) if masked else None
    builtin = keras.layers.LSTM(U, **settings)
    new = ProjectedRNN(LSTMCell(U, dropout=0.3), **settings)  # input dropout: same in training as the cell's own
    builtin.build((None, T, D))
    new.build((None, T, D))
    rng = np.random.default_rng(5)
    values = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in builtin.weights]
    builtin.set_weights(values)
    new.set_weights(values)
    new.cell.dropout = 0.0  # the gradient check below needs the same numbers as the built-in layer
    states = [tf.Variable(rng.normal(size=(B, U)).astype("float32")) for _ in range(2)] if initial else None
    calls = []
    from rnn_apps.layers import lstm_sequence as fused_module

    def spy(*args, **kwargs):
        calls.append(1)
        return fused_module.lstm_sequence(*args, **kwargs)

    def run(layer, training):
        x_t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            out = layer(x_t, training=training, initial_state=states, mask=mask)
            outs = out if isinstance(out, (list, tuple)) else [out]
            loss = sum(tf.reduce_sum(o * (k + 1.5) * tf.cast(tf.range(o.shape[-1]) % 3 - 1, o.dtype))
                       for k, o in enumerate(outs))
        grads = tape.gradient(loss, [x_t, *layer.trainable_weights, *(states or [])])
        return [np.asarray(o) for o in outs], [np.asarray(g) for g in grads]

    with mock.patch("rnn_apps.layers.projected.lstm_sequence", spy):
        fused = run(new, training=True)
        assert calls, "the fused path did not run"
        calls.clear()
        run(new, training=False)
        assert not calls, "inference must keep keras.layers.RNN's loop"
    _assert_same(run(builtin, training=True), fused)


def test_fused_lstm_bidirectional_masked_training():
    """keras.layers.Bidirectional (zeros at masked steps) in training: the fused path equals the generic loop."""
    x, mask = _inputs(7)
    ref = keras.layers.Bidirectional(keras.layers.RNN(LSTMCell(U), return_sequences=True))
    new = keras.layers.Bidirectional(ProjectedRNN(LSTMCell(U), return_sequences=True))
    ref.build((None, T, D))
    new.build((None, T, D))
    rng = np.random.default_rng(7)
    new.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ref.set_weights(new.get_weights())
    _assert_same(_run(ref, x, mask, training=True), _run(new, x, mask, training=True))


def test_fused_lstm_dropout_matches_generic_loop():
    """With input dropout in training, the fused path drops the same inputs as keras.layers.RNN's loop."""
    x, _ = _inputs(6)
    ref, new = _pair(lambda: LSTMCell(U, dropout=0.4, seed=3), return_sequences=True)
    _assert_same(_run(ref, x, None, training=True), _run(new, x, None, training=True))


def test_matches_keras_builtin_lstm():
    """Independent reference: keras.layers.LSTM with the same weights (same layout, gates i | f | c | o)."""
    x, mask = _inputs(3)
    builtin = keras.layers.LSTM(U, return_sequences=True)
    builtin.build((None, T, D))
    new = ProjectedRNN(LSTMCell(U), return_sequences=True)
    new.build((None, T, D))
    new.set_weights(builtin.get_weights())
    _assert_same(_run(builtin, x, mask), _run(new, x, mask))


def test_bidirectional_and_weight_names():
    """Bidirectional copies the layer by its config; the weights keep keras.layers.RNN's names."""
    x, mask = _inputs(4)
    ref = keras.layers.RNN(LSTMCell(U, name="cell"), return_sequences=True, name="rnn")
    new = ProjectedRNN(LSTMCell(U, name="cell"), return_sequences=True, name="rnn")
    ref, new = keras.layers.Bidirectional(ref, name="bi"), keras.layers.Bidirectional(new, name="bi")
    ref.build((None, T, D))
    new.build((None, T, D))
    assert isinstance(new.backward_layer, ProjectedRNN)
    assert [w.path for w in new.weights] == [w.path for w in ref.weights]
    new.set_weights(ref.get_weights())
    _assert_same(_run(ref, x, mask), _run(new, x, mask))


def test_serialization_round_trip():
    layer = ProjectedRNN(GRUCell(U), return_sequences=True, go_backwards=True)
    copy = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(copy, ProjectedRNN) and isinstance(copy.cell, GRUCell)
    assert copy.go_backwards and copy.return_sequences


def test_projection_support_flags():
    assert LSTMCell(2).supports_projected_inputs and GRUCell(2).supports_projected_inputs
    assert not PeepholeLSTMCell(2).supports_projected_inputs  # its call adds peepholes: the generic loop runs


@pytest.mark.parametrize("masked, zeros", [(False, False), (True, False), (True, True)])
def test_lstm_sequence_compiled_by_xla_equals_the_tensorflow_graph(masked, zeros):
    """The XLA-compiled loops (the default) give the graph's outputs, last states and gradients."""
    from rnn_apps.layers.lstm_sequence import lstm_sequence

    rng = np.random.default_rng(7)
    z_x = tf.constant(rng.normal(size=(T, B, 4 * U)).astype("float32"))
    u = tf.Variable(rng.normal(scale=0.4, size=(U, 4 * U)).astype("float32"))
    h0, c0 = (tf.constant(rng.normal(size=(B, U)).astype("float32")) for _ in range(2))
    mask = tf.constant(_inputs()[1].T) if masked else None
    weights = [tf.constant(rng.normal(size=s).astype("float32")) for s in ((T, B, U), (B, U), (B, U))]

    def run(compiled):
        with tf.GradientTape() as tape:
            tape.watch([z_x, h0, c0])
            outs = lstm_sequence(z_x, u, h0, c0, mask, zeros, compiled=compiled)
            loss = sum(tf.reduce_sum(o * w) for o, w in zip(outs, weights))
        return [np.asarray(o) for o in outs], [np.asarray(g) for g in tape.gradient(loss, [z_x, u, h0, c0])]

    (graph_outs, graph_grads), (xla_outs, xla_grads) = run(False), run(True)
    for a, b in zip(graph_outs + graph_grads, xla_outs + xla_grads):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    assert np.abs(graph_grads[1]).sum() > 0


def test_training_under_a_persistent_tape_and_in_float64():
    """In training, ProjectedRNN and DeepBidirectionalRNN failed under a persistent GradientTape (the XLA loop's
    intermediates cannot leave it: "XLA compilation requires a fixed tensor list size"), and a float64 layer
    over a float32 cell failed ("expected to be a double tensor") where keras.layers.RNN computes in the cell's
    dtype and casts the outputs."""
    from rnn_apps.layers import DeepBidirectionalRNN

    x = tf.random.normal((2, 5, 3), seed=1)
    for layer in (ProjectedRNN(LSTMCell(4, seed=2)), DeepBidirectionalRNN("lstm", 4, 1)):
        with tf.GradientTape(persistent=True) as tape:
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        once = tape.gradient(loss, layer.trainable_weights)
        again = tape.gradient(loss, layer.trainable_weights)  # a persistent tape answers twice
        with tf.GradientTape() as plain:
            reference = tf.reduce_sum(layer(x, training=True) ** 2)
        for a, b, c in zip(once, again, plain.gradient(reference, layer.trainable_weights)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-7)
    x64 = np.random.default_rng(0).normal(size=(2, 5, 3))
    for cell in (LSTMCell, GRUCell):
        keras_rnn = keras.layers.RNN(cell(4, seed=3), dtype="float64")
        ours = ProjectedRNN(cell(4, seed=3), dtype="float64")
        expected = keras_rnn(x64)
        ours.build(x64.shape)
        ours.set_weights(keras_rnn.get_weights())
        for training in (False, True):
            got = ours(x64, training=training)
            assert got.dtype == expected.dtype == tf.float64
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
        dropped = ProjectedRNN(cell(4, dropout=0.5, seed=3), dtype="float64")(x64, training=True)  # its mask too
        assert dropped.dtype == tf.float64 and np.isfinite(dropped).all()


def test_training_outputs_keep_their_static_length_for_the_layers_after_them():
    """In training the written-out loop gave (batch, None, units): Keras's TimeDistributed then looped over the
    batch instead of the steps, so the training loss differed from evaluate's at a learning rate of 0 (or
    failed, "Dimensions must be equal"), where keras.layers.RNN kept (batch, T, units)."""
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    inp = keras.Input((5, 3))
    h = ProjectedRNN(LSTMCell(6, seed=1), return_sequences=True)(inp)
    per_step = keras.layers.TimeDistributed(keras.layers.Dense(1))(h)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling1D()(per_step))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    y = np.zeros((4, 1), "float32")
    assert model.train_on_batch(x, y) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    seen = []
    layer = ProjectedRNN(LSTMCell(6, seed=1), return_sequences=True)
    tf.function(lambda t: seen.append(layer(t, training=True).shape))(tf.constant(x[:2]))
    assert seen and all(tuple(s) == (2, 5, 6) for s in seen)


def test_a_second_derivative_of_the_training_path_is_refused_in_words():
    """A gradient penalty (the gradient of a gradient) failed inside TensorFlow ("XLA compilation requires a fixed
    tensor list size"); it now says what to use. keras.layers.RNN with the same cell gives second derivatives."""
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 6, 3)).astype("float32"))
    layer = ProjectedRNN(LSTMCell(5, seed=1), return_sequences=True)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        penalty = tf.reduce_sum(inner.gradient(loss, x) ** 2)  # the first derivative is as before
    with pytest.raises(ValueError, match=r"differentiated once; for second derivatives \(a gradient penalty\) run the "
                                         r"cell in keras.layers.RNN"):
        outer.gradient(penalty, layer.trainable_weights)
    reference = keras.layers.RNN(LSTMCell(5, seed=1), return_sequences=True)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    with tf.GradientTape() as plain:
        plain.watch(x)
        expected = tf.reduce_sum(reference(x, training=True) ** 2)
    np.testing.assert_allclose(penalty, tf.reduce_sum(plain.gradient(expected, x) ** 2), rtol=1e-5)
