"""bfloat16 products in training steps (rnn_apps.precision): the operands are rounded, nothing else is, and only
training steps are affected."""

import json
from unittest import mock

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from rnn_apps import precision
from rnn_apps.cells import LSTMCell
from rnn_apps.layers import ProjectedRNN, TiedLogits
from rnn_apps.layers.lstm_sequence import lstm_sequence

BF16_EPS = 2.0 ** -8  # bfloat16 keeps 8 significant bits


def _bf16(x):
    """NumPy's rounding to bfloat16 (ml_dtypes, round to nearest even), back in float64."""
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)


def _relative_error(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def test_product_multiplies_operands_rounded_to_bfloat16():
    """The product equals NumPy's product of the bfloat16-rounded operands (to the rounding of its result),
    and differs from the float32 product by more than that: the operands really are rounded."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 64)).astype("float32")
    b = rng.normal(size=(64, 5)).astype("float32")
    got = precision.product(tf.constant(a), tf.constant(b), "bfloat16").numpy()
    assert got.dtype == np.float32
    # the kernel accumulates in float32 and rounds the result to bfloat16 once; another order of the sums may
    # round a result the other way (one unit in its last place)
    reference = _bf16(_bf16(a) @ _bf16(b))
    np.testing.assert_allclose(got, reference, rtol=2 * BF16_EPS, atol=1e-6 * np.abs(reference).max())
    assert np.mean(got == reference) > 0.9
    exact = a.astype(np.float64) @ b
    assert _relative_error(got, exact) > 10 * _relative_error(got, reference)
    np.testing.assert_array_equal(precision.product(tf.constant(a), tf.constant(b)).numpy(),
                                  tf.matmul(a, b).numpy())  # float32: TensorFlow's product as it is
    # (batch, time, k) @ (k, n)^T: one 2-D product, the static shape kept for the layers after it
    x = rng.normal(size=(2, 3, 64)).astype("float32")
    spec = tf.TensorSpec((None, 3, 64), tf.float32)
    traced = tf.function(lambda x: precision.product(x, tf.constant(b.T), "bfloat16", transpose_b=True))
    assert traced.get_concrete_function(spec).structured_outputs.shape.as_list() == [None, 3, 5]
    np.testing.assert_allclose(traced(x).numpy(), _bf16(_bf16(x) @ _bf16(b)), rtol=2 * BF16_EPS, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_lstm_sequence_with_bfloat16_products_stays_near_float32(masked):
    """Outputs, last states and gradients (inputs, U, initial states) stay within bfloat16's rounding of the
    float32 recurrence's, and are not the float32 numbers. With the loops' products in float32 (XLA's loops),
    only U's gradient is rounded."""
    T, B, U = 6, 4, 8
    rng = np.random.default_rng(3)
    z_x = tf.constant(rng.normal(size=(T, B, 4 * U)).astype("float32"))
    u = tf.Variable(rng.normal(scale=0.4, size=(U, 4 * U)).astype("float32"))
    h0, c0 = (tf.constant(rng.normal(size=(B, U)).astype("float32")) for _ in range(2))
    mask = tf.constant(rng.random((T, B)) > 0.2) if masked else None
    weights = [tf.constant(rng.normal(size=s).astype("float32")) for s in ((T, B, U), (B, U), (B, U))]

    def run(**kwargs):
        with tf.GradientTape() as tape:
            tape.watch([z_x, h0, c0])
            outs = lstm_sequence(z_x, u, h0, c0, mask, **kwargs)
            loss = sum(tf.reduce_sum(o * w) for o, w in zip(outs, weights))
        return [np.asarray(v) for v in [*outs, *tape.gradient(loss, [z_x, u, h0, c0])]]

    exact = run()
    low = run(product_dtype="bfloat16", bfloat16_loops=True)
    for a, b in zip(low, exact):
        assert a.dtype == np.float32
        assert 1e-5 < _relative_error(a, b) < 0.02
    # each step's arithmetic there is one XLA computation: the same numbers as TensorFlow's operations give
    from rnn_apps.layers import lstm_sequence as module

    with mock.patch.object(module, "_compiled_steps", lambda: (module._step_forward, module._step_backward)):
        for a, b in zip(run(product_dtype="bfloat16", bfloat16_loops=True), low):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    compiled = module._compiled_steps()
    assert all(getattr(f, "_jit_compile", None) for f in compiled)  # XLA computations
    taken = []
    with mock.patch.object(module, "_compiled_steps", lambda: taken.append(1) or compiled):
        run(product_dtype="bfloat16", bfloat16_loops=True)
        assert len(taken) == 2  # one for each loop
        run(product_dtype="bfloat16", bfloat16_loops=True, compiled=False)  # no XLA asked: TensorFlow's ops
        assert len(taken) == 2
    outer_only = run(product_dtype="bfloat16", bfloat16_loops=False)
    for i, (a, b) in enumerate(zip(outer_only, exact)):
        if i == 4:  # U's gradient
            assert 1e-5 < _relative_error(a, b) < 0.02
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _char_model(vocab=40, seed=0):
    from rnn_apps.apps.poetry.model import build_char_rnn

    keras.utils.set_random_seed(seed)
    model = build_char_rnn(vocab, embedding_dim=16, units=24, num_layers=2, dropout=0.0)
    model.build((None, None))
    return model


def test_only_training_steps_of_the_supporting_layers_change():
    """set_training_precision reaches the two recurrent layers and the tied output layer; inference gives the
    float32 model's numbers exactly, training steps numbers within bfloat16's rounding; the weights stay float32."""
    ids = np.random.default_rng(1).integers(0, 40, size=(3, 11))
    ref, model = _char_model(), _char_model()
    assert precision.set_training_precision(model, "bfloat16") == 3
    assert {type(layer) for layer in precision.supporting_layers(model)} == {ProjectedRNN, TiedLogits}
    np.testing.assert_array_equal(model(ids, training=False).numpy(), ref(ids, training=False).numpy())
    low, exact = model(ids, training=True).numpy(), ref(ids, training=True).numpy()
    assert 1e-5 < _relative_error(low, exact) < 0.02
    assert {w.dtype for w in model.weights} == {"float32"}
    assert precision.set_training_precision(model, "float32") == 3
    np.testing.assert_array_equal(model(ids, training=True).numpy(), exact)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'bfloat16'; received 'float16'"):
        precision.set_training_precision(model, "float16")
    assert precision.supporting_layers(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])) == []
    layer = ProjectedRNN(LSTMCell(3))
    layer.training_precision = "bfloat16"
    assert "training_precision" not in layer.get_config()  # the run's setting, not the model's


def test_resolve_auto_takes_bfloat16_only_where_measured_faster():
    with mock.patch.object(precision, "bfloat16_speedup", lambda: 1.9):
        dtype, why = precision.resolve("auto")
        assert dtype == "bfloat16" and "measured 1.90x as fast as float32" in why
        assert precision.resolve("float32")[0] == "float32"
    with mock.patch.object(precision, "bfloat16_speedup", lambda: 0.5):
        dtype, why = precision.resolve("auto")
        assert dtype == "float32" and "bfloat16 measured 0.50x as fast" in why
        assert precision.resolve("bfloat16")[0] == "bfloat16"  # asked for: taken even where slower
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16; received 'half'"):
        precision.resolve("half")
    speedup = precision.bfloat16_speedup(size=64, repeats=2)  # a real measurement, whatever this CPU gives
    assert np.isfinite(speedup) and speedup > 0


def test_train_poetry_precision_option(tmp_path, poems_file):
    """--precision reaches the training steps (the run says so); a bfloat16 run learns as the float32 one does:
    the same seed gives a validation loss within a few per cent."""
    from click.testing import CliRunner

    from rnn_apps.cli import cli

    tiny = ["--embedding-dim", "16", "--units", "32", "--layers", "2", "--tokens-per-batch", "512", "--min-count",
            "1", "--val-fraction", "0.1", "--seed", "3", "--dropout", "0", "--epochs", "3", "--json"]
    runs = {}
    for name in ("float32", "bfloat16"):
        r = CliRunner().invoke(cli, ["train", "poetry", "--data", poems_file, "--run-dir", str(tmp_path / name),
                                     "--precision", name, *tiny])
        assert r.exit_code == 0, r.output
        runs[name] = json.loads(r.stdout)["val_bits_per_char"]
        said = "Training steps with bfloat16 matrix products (as asked)."
        assert (said in r.stderr) == (name == "bfloat16") and "float32 matrix products" not in r.stderr
    assert runs["bfloat16"] != runs["float32"] and abs(runs["bfloat16"] - runs["float32"]) < 0.05 * runs["float32"]
    r = CliRunner().invoke(cli, ["train", "poetry", "--data", poems_file, "--precision", "half"])
    assert r.exit_code == 2 and "'half' is not one of 'auto', 'float32', 'bfloat16'" in r.output


def test_a_resumed_run_keeps_the_precision_it_was_trained_with(tmp_path, capsys):
    """auto measures once a run and the checkpoints record the choice: resumed with auto, the run goes on as its
    newest checkpoint was trained even where the measurement would now say otherwise (a resumed run then
    computes what an uninterrupted one does), a checkpoint written before runs recorded it means float32, and a
    precision given to the resumed run wins."""
    from rnn_apps.apps.base import RunOptions, run_precision
    from rnn_apps.checkpoints import CheckpointManager

    model = _char_model()
    run_dir = str(tmp_path / "run")
    with mock.patch.object(precision, "bfloat16_speedup", lambda: 1.9):
        assert run_precision(model, run_dir, RunOptions(precision="auto")) == "bfloat16"
        assert not (tmp_path / "run").exists()  # nothing written before the training writes its checkpoints
        CheckpointManager(run_dir).save(model, 3, {"precision": "bfloat16"})
    with mock.patch.object(precision, "bfloat16_speedup", lambda: 0.5):
        capsys.readouterr()
        assert run_precision(model, run_dir, RunOptions(precision="auto", resume=True)) == "bfloat16"
        assert "Training steps with bfloat16 matrix products, as the run was trained." in capsys.readouterr().err
        assert {layer.training_precision for layer in precision.supporting_layers(model)} == {"bfloat16"}
        assert run_precision(model, run_dir, RunOptions(precision="float32", resume=True)) == "float32"
        assert {layer.training_precision for layer in precision.supporting_layers(model)} == {"float32"}
        CheckpointManager(run_dir).save(model, 6)  # as runs wrote them before the option
        assert run_precision(model, run_dir, RunOptions(precision="auto", resume=True)) == "float32"
    with mock.patch.object(precision, "bfloat16_speedup", lambda: 1.9):
        assert run_precision(model, run_dir, RunOptions(precision="bfloat16", resume=True)) == "bfloat16"
        # the workers of a multi-worker run would each measure: auto keeps float32 there
        workers = RunOptions(precision="auto", strategy="multi-worker")
        assert run_precision(model, str(tmp_path / "new"), workers) == "float32"
        gpu = mock.patch("tensorflow.config.list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
        with gpu:
            dtype, why = precision.resolve("auto")
            assert dtype == "float32" and "a GPU is visible" in why
    capsys.readouterr()
    dense = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert run_precision(dense, str(tmp_path / "other"), RunOptions(precision="bfloat16")) == "float32"
    assert "this model has no layers whose products take bfloat16" in capsys.readouterr().err


def test_bidirectional_layers_and_the_second_derivative_refusal():
    """A stacked bidirectional encoder (fill's, sentiment's, translation's) has every direction's layer set,
    forward and backward (go_backwards); its bfloat16 training outputs stay near float32's; a second derivative
    through the bfloat16 path is refused in words, as through the float32 one."""
    from rnn_apps.layers import DeepBidirectionalRNN

    def make():
        keras.utils.set_random_seed(4)
        inputs = keras.Input((7, 5))
        return keras.Model(inputs, DeepBidirectionalRNN(units=6, num_layers=2)(inputs))

    ref, model = make(), make()
    assert precision.set_training_precision(model, "bfloat16") == 4
    assert sorted(layer.go_backwards for layer in precision.supporting_layers(model)) == [False, False, True, True]
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 7, 5)).astype("float32"))
    assert 1e-5 < _relative_error(model(x, training=True).numpy(), ref(x, training=True).numpy()) < 0.02
    np.testing.assert_array_equal(model(x, training=False).numpy(), ref(x, training=False).numpy())
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = tf.reduce_sum(model(x, training=True) ** 2)
        g = tf.reduce_sum(inner.gradient(y, x) ** 2)
    with pytest.raises(ValueError, match="is differentiated once"):
        outer.gradient(g, x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_step(x, h, c, W, U, b, mm):
    """The LSTM's step in float64 with ``mm`` for its two products (Keras's gate order i, f, c, o)."""
    i, f, g, o = np.split(mm(x, W) + b + mm(h, U), 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c)


def _gru_step(x, h, W, U, b, reset_after, mm):
    """The GRU's step in float64 with ``mm`` for its products (Keras's layouts: bias rows (input, recurrent)
    with ``reset_after``, gate order z, r, h)."""
    if reset_after:
        x_z, x_r, x_h = np.split(mm(x, W) + b[0], 3, axis=-1)
        h_z, h_r, h_h = np.split(mm(h, U) + b[1], 3, axis=-1)
        z, r = _sigmoid(x_z + h_z), _sigmoid(x_r + h_r)
        hh = np.tanh(x_h + r * h_h)
    else:
        x_z, x_r, x_h = np.split(mm(x, W) + b, 3, axis=-1)
        n = h.shape[-1]
        h_z, h_r = np.split(mm(h, U[:, :2 * n]), 2, axis=-1)
        z, r = _sigmoid(x_z + h_z), _sigmoid(x_r + h_r)
        hh = np.tanh(x_h + mm(r * h, U[:, 2 * n:]))
    return hh + z * (h - hh)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before"])
def test_a_cells_step_with_bfloat16_products(kind):
    """``step_projected(project_inputs(x, product_dtype), states, product_dtype=...)``, the step the captioners'
    decoder takes in bfloat16 training steps, is the cell's equations with every product's operands and result
    rounded to bfloat16 (NumPy); in float32 it is the cell's own call."""
    from rnn_apps.cells import GRUCell

    rng = np.random.default_rng(3)
    cell = LSTMCell(16) if kind == "lstm" else GRUCell(16, reset_after=kind == "gru")
    cell.build((None, 24))
    cell.bias.assign(rng.normal(size=cell.bias.shape).astype("float32"))  # not the zeros it starts with
    x, h, c = (rng.normal(size=(5, n)).astype("float32") for n in (24, 16, 16))
    states = [h, c] if kind == "lstm" else [h]
    got, new_states = cell.step_projected(cell.project_inputs(x, product_dtype="bfloat16"), states,
                                          product_dtype="bfloat16")
    np.testing.assert_array_equal(new_states[0].numpy(), got.numpy())
    W, U, b = (v.numpy().astype(np.float64) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))

    def reference(mm):
        if kind == "lstm":
            return _lstm_step(x, h, c, W, U, b, mm)
        return _gru_step(x, h, W, U, b, kind == "gru", mm)

    rounded = reference(lambda a, w: _bf16(_bf16(a) @ _bf16(w)))
    exact = reference(lambda a, w: np.asarray(a, np.float64) @ w)
    assert _relative_error(got, rounded) < 0.1 * _relative_error(got, exact)
    assert 1e-4 < _relative_error(got, exact) < 0.02
    plain, _ = cell.step_projected(cell.project_inputs(x), states)
    np.testing.assert_allclose(plain.numpy(), cell(x, states)[0].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(plain.numpy(), exact, rtol=1e-5, atol=1e-5)


def _near_in_training_only(model, ref, inputs):
    """The model set to bfloat16 products gives the float32 model's numbers exactly in inference, numbers near
    them (not equal) in training steps, and keeps float32 weights."""
    np.testing.assert_array_equal(model(inputs, training=False).numpy(), ref(inputs, training=False).numpy())
    assert 1e-5 < _relative_error(model(inputs, training=True).numpy(), ref(inputs, training=True).numpy()) < 0.02
    assert {w.dtype for w in model.weights} == {"float32"}


@pytest.mark.parametrize("cell,output", [("lstm", "tied"), ("gru", "direct"), ("peephole_lstm", "direct")])
def test_the_captioners_attention_decoder(cell, output):
    """The decoder's cell step (LSTM, GRU) and output layer take bfloat16 products in training; a cell without
    a projected step (the peephole LSTM) keeps its own call, and the output layer still changes; the one-step
    interface of the exported greedy and beam loops is never affected."""
    from rnn_apps.apps.caption.model import AttentionDecoder

    class Captioner(keras.Model):  # the decoder on given annotation vectors
        def __init__(self):
            super().__init__()
            self.decoder = AttentionDecoder(23, embedding_dim=8, units=12, cell=cell, attention_units=6,
                                            output=output)

        def call(self, inputs, training=False):
            return self.decoder(inputs[0], inputs[1], training=training)

    def make():
        keras.utils.set_random_seed(5)
        model = Captioner()
        model((np.zeros((1, 9, 10), np.float32), np.zeros((1, 7), np.int32)))
        return model

    rng = np.random.default_rng(6)
    inputs = (tf.constant(rng.normal(size=(3, 9, 10)).astype("float32")), tf.constant(rng.integers(0, 23, (3, 7))))
    ref, model = make(), make()
    assert precision.set_training_precision(model, "bfloat16") == 1
    decoder_cell, asked = model.decoder.cell, []
    if decoder_cell.supports_projected_inputs:
        own = decoder_cell.step_projected
        # (the GRU's own call takes this step too, with float32 products)
        decoder_cell.step_projected = lambda *a, **k: asked.append(k.get("product_dtype", "float32")) or own(*a, **k)
    _near_in_training_only(model, ref, inputs)
    # one bfloat16 step per caption word in the training call
    assert asked.count("bfloat16") == (7 if cell != "peephole_lstm" else 0)
    memory, states = model.decoder.start(inputs[0])
    np.testing.assert_array_equal(model.decoder.step(inputs[1][:, 0], states, memory, training=True)[0].numpy(),
                                  ref.decoder.step(inputs[1][:, 0], states, memory, training=True)[0].numpy())


def test_the_translators_output_head():
    """Seq2Seq: the encoder's four directional layers, the decoder and the attentional and output layers (the
    model itself) take bfloat16 products in training steps only."""
    from rnn_apps.apps.translate.model import build_model

    cfg = {"embedding_dim": 8, "encoder_units": 6, "encoder_layers": 2, "decoder_units": 10, "cell": "lstm",
           "attention": "luong", "attention_units": 5, "dropout": 0.0}

    def make():
        keras.utils.set_random_seed(7)
        return build_model(19, 17, cfg)

    ref, model = make(), make()
    assert precision.set_training_precision(model, "bfloat16") == 6
    assert model in precision.supporting_layers(model)
    rng = np.random.default_rng(8)
    source, target = rng.integers(1, 19, (4, 6)), rng.integers(1, 17, (4, 5))
    source[0, 4:] = 0  # a padded sentence
    inputs = (tf.constant(source), tf.constant(target))
    _near_in_training_only(model, ref, inputs)
    # the output head alone: the recurrent layers back to float32, the model's own products still bfloat16
    for layer in precision.supporting_layers(model):
        layer.training_precision = "float32" if layer is not model else "bfloat16"
    _near_in_training_only(model, ref, inputs)


def test_a_convolution_with_bfloat16_operands():
    """rnn_apps.layers.Conv2D: in float32 it is keras.layers.Conv2D, number for number; with bfloat16 its training
    step equals the convolution of the bfloat16-rounded image and kernel (its result rounded once), further
    from the exact one; inference stays float32 and the weights, bias and gradients too."""
    from rnn_apps.layers import Conv2D

    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 9, 8, 5)).astype("float32")
    kwargs = dict(filters=6, kernel_size=3, padding="same", activation="relu")
    layer, ref = Conv2D(**kwargs), keras.layers.Conv2D(**kwargs)
    for each in (layer, ref):
        each.build(x.shape)
    ref.set_weights([rng.normal(size=w.shape).astype("float32") for w in ref.weights])
    layer.set_weights(ref.get_weights())
    for training in (False, True):
        np.testing.assert_array_equal(layer(x, training=training).numpy(), ref(x, training=training).numpy())

    assert precision.set_training_precision(keras.Sequential([layer]), "bfloat16") == 1
    kernel, bias = (w.numpy() for w in ref.weights)

    def conv(image, k):  # float64, no rounding but the one asked
        return tf.nn.conv2d(image, k, 1, "SAME").numpy() + bias

    got = layer(x, training=True).numpy()
    reference = np.maximum(_bf16(conv(_bf16(x), _bf16(kernel)) - bias) + bias, 0.0)
    np.testing.assert_allclose(got, reference, rtol=2 * BF16_EPS, atol=1e-6 * np.abs(reference).max())
    exact = np.maximum(conv(x.astype(np.float64), kernel.astype(np.float64)), 0.0)
    assert _relative_error(got, exact) > 10 * _relative_error(got, reference)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), ref(x, training=False).numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True))
    assert {g.dtype for g in tape.gradient(loss, layer.trainable_weights)} == {tf.float32}
    assert {w.dtype for w in layer.weights} == {"float32"}
