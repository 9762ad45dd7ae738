"""Sentiment training: resuming an interrupted run, adversarial training, mirrored strategy, layer-wise rates."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.cli import cli
from interrupt import Stop, StopAt
from sentiment_reviews import ENV, TINY, review_sets

pytestmark = pytest.mark.slow  # trains real models end to end


@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    return review_sets(tmp_path_factory.mktemp("imdb"))


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_resume_after_interruption_matches_uninterrupted_run(runner, tmp_path, imdb):
    """A run stopped mid-epoch (after a checkpoint) and resumed ends with the weights of one never stopped."""
    from rnn_apps import training
    from rnn_apps.apps.sentiment import task

    settings = {**TINY, "num_layers": 1, "dropout": 0.2, "layer_lr_decay": 2.0, "adversarial": 1.0}

    def final(run_dir):
        ckpt = training.CheckpointManager(str(run_dir)).latest()
        with np.load(os.path.join(ckpt, "state.npz")) as z:
            return {k: z[k] for k in z.files}

    # The uninterrupted run goes through the CLI (same settings), and exports.
    r = runner.invoke(cli, ["train", "sentiment", "--data", imdb[0], "--run-dir", str(tmp_path / "full"), "--epochs", "2",
                            "--save-every", "2", "--max-tokens", "60", "--embedding-dim", "8", "--units", "8",
                            "--layers", "1", "--max-len", "24", "--batch-size", "8", "--learning-rate", "3e-2",
                            "--dropout", "0.2", "--val-fraction", "0.25", "--seed", "3", "--layer-lr-decay", "2",
                            "--adversarial", "1", "--json",
                            "--export", str(tmp_path / "models" / "sentiment")])
    assert r.exit_code == 0, r.output
    full = json.loads(r.stdout)
    assert full["exported"] == str(tmp_path / "models" / "sentiment" / "1") and 0 <= full["val_accuracy"] <= 1
    assert full["lm_val_perplexity"] is None and os.path.exists(tmp_path / "models" / "sentiment" / "README.md")
    card = (tmp_path / "models" / "sentiment" / "README.md").read_text(encoding="utf-8")
    assert "learns at 1/2 of the rate of the layer above (head 0.03, top recurrent layer 0.015, embedding 0.0075)" in card
    assert "moved ε = 1 embedding standard deviations" in card
    assert "in seeded blocks of up to 100 consecutive reviews" in card  # --val-split blocks, the default
    assert full["best_epoch"] in (1, 2) and full["stopped_early"] is False
    assert f"Kept: the weights of the epoch with the lowest validation loss (epoch {full['best_epoch']} of 2)" in card
    steps = full["step"] // 2
    with pytest.raises(Stop):
        task.train(imdb[0], str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, callbacks=[StopAt(steps + 3)],
                   **settings)
    with pytest.raises(training.TrainingError, match="--resume"):
        task.train(imdb[0], str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, **settings)
    resumed = task.train(imdb[0], str(tmp_path / "cut"), epochs=2, verbose=0, save_every=2, resume=True, **settings)
    assert resumed["step"] == full["step"]
    a, b = final(tmp_path / "full"), final(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    with open(tmp_path / "full" / "history.jsonl") as f:
        full_history = [json.loads(line) for line in f]
    assert resumed["history"][-1]["val_loss"] == pytest.approx(full_history[-1]["val_loss"], rel=1e-5)


def test_adversarial_training_step_follows_the_equations():
    """ε > 0: one SGD step equals -lr·(∇L(e) + ∇L(e + r)), r = ε·σ_E·g/‖g‖ computed here in NumPy."""
    import keras
    import tensorflow as tf

    from rnn_apps.apps.sentiment.model import build_classifier

    keras.utils.set_random_seed(0)
    ids = np.array([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11], [12, 2, 0, 0, 0]], np.int32)
    y = np.array([[1.0], [0.0], [1.0]], np.float32)
    eps, lr = 3.0, 0.1
    model = build_classifier(30, 6, 5, num_layers=2, dropout=0.0, word_dropout=0.0, adversarial_epsilon=eps)
    emb = model.get_layer("embedding")
    np.testing.assert_allclose(np.asarray(model.from_embeddings(emb(ids), ids != 0)), np.asarray(model(ids)), atol=1e-6)
    variables = model.trainable_variables
    before = [v.numpy() for v in variables]

    def loss_of(e):
        p = model.from_embeddings(e, ids != 0, training=True)
        return tf.reduce_mean(keras.losses.binary_crossentropy(y, p))

    with tf.GradientTape() as tape:
        e = emb(ids)
        clean = loss_of(e)
    g_e, *g_clean = tape.gradient(clean, [e, *variables])
    g = g_e.numpy() * (ids != 0)[..., None]
    r = eps * emb.embeddings.numpy().std() * g / np.sqrt((g ** 2).sum(axis=(1, 2), keepdims=True))
    assert np.abs(r[ids == 0]).max() == 0
    np.testing.assert_allclose(np.sqrt((r ** 2).sum(axis=(1, 2))), eps * emb.embeddings.numpy().std(), rtol=1e-4)
    with tf.GradientTape() as tape:
        adv = loss_of(emb(ids) + r)
    g_adv = tape.gradient(adv, variables)
    assert float(adv) > float(clean)  # the perturbation is the harmful direction
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="binary_crossentropy")
    history = model.fit(ids, y, batch_size=3, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(float(clean + adv), rel=1e-5)
    for v, w, a, b in zip(variables, before, g_clean, g_adv):
        expected = w - lr * (tf.convert_to_tensor(a) + tf.convert_to_tensor(b)).numpy()
        np.testing.assert_allclose(v.numpy(), expected, atol=1e-6, err_msg=v.path)
    with pytest.raises(ValueError, match="adversarial_epsilon must be a finite number >= 0"):
        model.adversarial_epsilon = -1.0


_ADVERSARIAL_MIRRORED = r"""
import json
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from rnn_apps import training
from rnn_apps.apps.sentiment.model import build_classifier
rng = np.random.default_rng(0)
ids = rng.integers(2, 30, size=(8, 7)).astype("int32")
ids[::3, 4:] = 0
y = (rng.random((8, 1)) > 0.5).astype("float32")
finals, losses = {}, {}
for name in ("default", "mirrored"):
    strategy = training.get_strategy(name)
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = build_classifier(30, 6, 5, num_layers=1, dropout=0.0, word_dropout=0.0, adversarial_epsilon=2.0)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    start = [v.numpy() for v in model.trainable_variables]
    h = model.fit(ids, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    finals[name] = [v.numpy() for v in model.trainable_variables]
    losses[name] = h.history["loss"]
    replicas = strategy.num_replicas_in_sync
diff = max(float(np.abs(a - b).max()) for a, b in zip(finals["default"], finals["mirrored"]))
moved = max(float(np.abs(a - b).max()) for a, b in zip(finals["mirrored"], start))
print(json.dumps({"replicas": replicas, "diff": diff, "moved": moved, "losses": losses}))
"""


def test_adversarial_training_under_mirrored_strategy_matches_one_device(tmp_path):
    """Two logical CPU devices: the adversarial step's weights and reported loss equal the single-device run's."""
    script = tmp_path / "adv.py"
    script.write_text(_ADVERSARIAL_MIRRORED)
    r = subprocess.run([sys.executable, str(script)], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["replicas"] == 2 and info["diff"] < 1e-5 and info["moved"] > 1e-3
    np.testing.assert_allclose(info["losses"]["mirrored"], info["losses"]["default"], rtol=1e-5)


def test_discriminative_learning_rates_follow_the_layers(tmp_path):
    """ULMFiT's rates: head 1, top layer 1/d, each layer below 1/d of the one above, embedding lowest."""
    from rnn_apps import training
    from rnn_apps.apps.sentiment import task
    from rnn_apps.apps.sentiment.model import build_classifier

    for _ in range(2):  # a second model in the same process names its variables the same way
        model = build_classifier(50, 4, 4, num_layers=2)
        task.compile_classifier(model, 1e-3, 1.0, 10, layer_lr_decay=2.0)
        rates = {v.path.split("/")[0] + ("/" + v.path.split("/")[1] if v.path.startswith("encoder") else ""):
                 model.optimizer.multiplier(v.path) for v in model.trainable_variables}
        assert rates == {"embedding": 0.125, "encoder/bidirectional_0": 0.25, "encoder/bidirectional_1": 0.5,
                         "classifier": 1.0}
    task.compile_classifier(model, 1e-3, 1.0, 10)
    assert {model.optimizer.multiplier(v.path) for v in model.trainable_variables} == {1.0}
    with pytest.raises(ValueError, match="layer_lr_decay must be a finite number >= 1"):
        task.layer_lr_multipliers(2, 0.5)
    # out of range on the command line: a usage error naming the option, before any work
    for option, value in (("--layer-lr-decay", "0.5"), ("--adversarial", "-1"), ("--adversarial", "nan")):
        r = CliRunner().invoke(cli, ["train", "sentiment", "--data", "no-such-reviews.csv", "--run-dir",
                                     str(tmp_path / "run"), option, value])
        assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "run").exists()  # refused before any work
    with pytest.raises(training.TrainingError, match="one of blocks, random; received 'films' \\(--val-split\\)"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), val_split="films")
    assert not (tmp_path / "run").exists()
    with pytest.raises(training.TrainingError, match="patience must be a whole number of epochs >= 0"):
        task.train("no-such-reviews.csv", str(tmp_path / "run"), patience=-2)
    assert not (tmp_path / "run").exists()
