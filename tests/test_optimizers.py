"""DiscriminativeAdam against Keras's own Adam run at each layer's learning rate."""

import contextlib

import numpy as np
import pytest

import keras

from rnn_apps.optimizers import DiscriminativeAdam


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    names = ("embedding/embeddings", "encoder/bidirectional_0/kernel", "encoder_2/kernel", "classifier/kernel")
    out = []
    for n in names:
        *scopes, name = n.split("/")
        with contextlib.ExitStack() as stack:
            for scope in scopes:
                stack.enter_context(keras.name_scope(scope))
            out.append(keras.Variable(rng.normal(size=(3, 4)).astype("float32"), name=name))
    assert [v.path for v in out] == list(names)
    return out, names


class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, schedule, factor):
        self.schedule, self.factor = schedule, factor

    def __call__(self, step):
        return self.factor * self.schedule(step)


def test_each_variable_moves_as_adam_at_its_own_learning_rate():
    multipliers = {"embedding": 0.25, "encoder": 0.5, "encoder/bidirectional_0": 0.1}
    schedule = keras.optimizers.schedules.CosineDecay(0.0, 20, warmup_target=0.01, warmup_steps=3)
    opt = DiscriminativeAdam(schedule, lr_multipliers=multipliers)
    ours, paths = _variables()
    expected_m = [0.25, 0.1, 1.0, 1.0]  # longest prefix wins; "encoder" does not match "encoder_2"
    assert [opt.multiplier(p) for p in paths] == expected_m
    # The reference: one plain Keras Adam per variable, its learning rate the schedule times the multiplier.
    refs, _ = _variables()
    ref_opts = [keras.optimizers.Adam(Scaled(schedule, m)) for m in expected_m]
    rng = np.random.default_rng(1)
    for _ in range(12):
        grads = [rng.normal(size=(3, 4)).astype("float32") for _ in ours]
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], ours))
        for o, g, v in zip(ref_opts, grads, refs):
            o.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
    for a, b in zip(ours, refs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # and the multipliers made a difference: the frozen-ish embedding moved less than the head
    start, _ = _variables()
    moved = [float(np.abs(np.asarray(a) - np.asarray(s)).mean()) for a, s in zip(ours, start)]
    assert moved[0] < 0.5 * moved[3] and moved[1] < 0.2 * moved[3]


def test_zero_multiplier_freezes_inside_model_fit():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="tanh", name="encoder")(inputs)
    out = keras.layers.Dense(1, name="classifier")(hidden)
    model = keras.Model(inputs, out)
    model.compile(DiscriminativeAdam(0.05, lr_multipliers={"encoder": 0.0}, clipnorm=1.0), loss="mse")
    before = [np.asarray(w).copy() for w in model.weights]
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model.fit(x, x.sum(1, keepdims=True), epochs=3, batch_size=8, verbose=0)
    after = [np.asarray(w) for w in model.weights]
    np.testing.assert_array_equal(after[0], before[0])  # encoder kernel
    np.testing.assert_array_equal(after[1], before[1])  # encoder bias
    assert not np.allclose(after[2], before[2])  # classifier kernel trained


def test_config_round_trips_and_bad_multipliers_are_refused():
    opt = DiscriminativeAdam(2e-3, lr_multipliers={"encoder/": 0.4}, clipnorm=1.0)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(again, DiscriminativeAdam)
    assert again.lr_multipliers == {"encoder": 0.4} and again.clipnorm == 1.0
    with pytest.raises(ValueError, match="finite number >= 0"):
        DiscriminativeAdam(lr_multipliers={"encoder": -1.0})
    with pytest.raises(ValueError, match="non-empty"):
        DiscriminativeAdam(lr_multipliers={"": 0.5})
