"""The long-memory demo (``rnn-apps demo long-memory``): the adding problem over the project's cells."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.apps.demos import long_memory as lm
from rnn_apps.cli import cli


def test_quick_run_shapes():
    r = lm.run_long_memory(cells=["simple_rnn", "lstm"], lengths=[4, 9], steps=3, batch_size=8, units=4, seed=1,
                           val_size=32)
    for cell in ("simple_rnn", "lstm"):
        for t in ("4", "9"):
            assert 0.0 <= r["accuracy"][cell][t] <= 1.0
        for key in ("gradient_norm", "gradient_norm_init"):
            prof = r[key][cell]
            assert len(prof) == 9 and all(math.isfinite(v) and v > 0 for v in prof), (cell, key, prof)
    assert "T=9" in lm.format_table(r)


def test_adding_batch():
    x, y = lm.make_batch(np.random.default_rng(0), 16, 10)
    assert x.shape == (16, 10, 2) and y.shape == (16,)
    assert (x[:, :, 1].sum(axis=1) == 2).all() and (x[:, :5, 1].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y, (x[:, :, 0] * x[:, :, 1]).sum(axis=1), rtol=1e-6)


@pytest.mark.parametrize("cell,keras_layer", [("simple_rnn", "SimpleRNN"), ("lstm", "LSTM")])
def test_gradient_profile_matches_keras_builtin(cell, keras_layer):
    """The profile through the project's cell equals the one through Keras's own layer with the same weights."""
    import keras

    keras.utils.set_random_seed(3)
    length = 12
    ours = lm.build_model(cell, 5, length)
    inputs = keras.Input((length, lm.INPUT_DIM))
    h = getattr(keras.layers, keras_layer)(5, name="rnn")(inputs)
    ref = keras.Model(inputs, keras.layers.Dense(1, name="out")(h))
    ref.set_weights(ours.get_weights())
    x, y = lm.make_batch(np.random.default_rng(4), 32, length)
    a = np.array(lm.gradient_norm_profile(ours, x, y))
    b = np.array(lm.gradient_norm_profile(ref, x, y))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-9)
    assert a.shape == (length,) and (a > 0).all()


def test_cli_quick_json_and_plot(tmp_path):
    """(A repeated cell or length is trained once: --cells lstm,lstm trained the LSTM twice.)"""
    assert lm.check_cells(["lstm", "LSTM", "gru"]) == ["lstm", "gru"] and lm.check_lengths([6, 3, 6]) == [6, 3]
    out = tmp_path / "lm.png"
    r = CliRunner().invoke(cli, ["demo", "long-memory", "--quick", "--cells", "gru,GRU", "--lengths", "3,6,3",
                                 "--json", "--plot", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert set(data["accuracy"]) == {"gru"} and set(data["accuracy"]["gru"]) == {"3", "6"}
    assert len(data["gradient_norm"]["gru"]) == 6
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,words", [
    (["--cells", "lstm,nope"], "unknown cell 'nope'"),
    (["--lengths", "10,1"], "at least 2"),
    (["--lengths", ""], "at least one"),
])
def test_cli_bad_arguments(args, words):
    r = CliRunner().invoke(cli, ["demo", "long-memory", "--quick", *args])
    assert r.exit_code == 2 and words in r.output, r.output


def test_cli_help():
    r = CliRunner().invoke(cli, ["demo", "long-memory", "--help"])
    assert r.exit_code == 0 and "Examples" in r.output
