"""Shared training machinery: kill -9 and --resume, seeds, tf.distribute strategies, atomic export."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rnn_apps import export as shared_export
from rnn_apps import datasets, training

TINY = ["--embedding-dim", "8", "--units", "16", "--layers", "1", "--tokens-per-batch", "128",
        "--min-count", "1", "--val-fraction", "0.1", "--seed", "3", "--dropout", "0.2"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _train_cmd(poems_file, run_dir, *extra):
    return [sys.executable, "-m", "rnn_apps.cli", "train", "poetry", "--data", poems_file, "--run-dir", str(run_dir),
            "--epochs", "3", "--save-every", "2", *TINY, *extra]


def _final_state(run_dir):
    ckpt = training.CheckpointManager(str(run_dir)).latest()
    with np.load(os.path.join(ckpt, "state.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    with open(os.path.join(ckpt, "meta.json")) as f:
        return json.load(f)["step"], arrays


def _history(run_dir):
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, poems_file):
    """SIGKILL mid-epoch, then --resume: same step count, same weights and optimizer state, same losses."""
    full = tmp_path / "full"
    r = subprocess.run(_train_cmd(poems_file, full, "--json"), env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    steps_full, state_full = _final_state(full)
    steps_per_epoch = _history(full)[0]["step"]
    assert steps_full == 3 * steps_per_epoch and steps_per_epoch >= 4

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(poems_file, killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = steps_per_epoch + 2  # a checkpoint in the middle of the second epoch
    latest = killed / "checkpoints" / "latest.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= target:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = json.loads(latest.read_text())["step"]
    assert step_at_kill < steps_full

    # Without --resume the run directory is protected.
    r = subprocess.run(_train_cmd(poems_file, killed), env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "--resume" in r.stderr

    r = subprocess.run(_train_cmd(poems_file, killed, "--resume"), env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Resuming from step {step_at_kill}" in r.stdout
    steps_resumed, state_resumed = _final_state(killed)
    assert steps_resumed == steps_full
    assert state_resumed.keys() == state_full.keys()
    for k in state_full:  # model weights, RNG states and optimizer moments/iterations
        np.testing.assert_allclose(state_resumed[k], state_full[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # The epoch after the kill reports the same losses as the uninterrupted run (the seed makes CPU runs repeatable).
    h_full, h_res = _history(full), _history(killed)
    assert h_full[-1]["step"] == h_res[-1]["step"]
    assert h_res[-1]["val_loss"] == pytest.approx(h_full[-1]["val_loss"], rel=1e-5)


_DISTRIBUTED = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
if sys.argv[1] != "multi-worker":
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from rnn_apps import datasets, training
from rnn_apps.apps.poetry import task, data as pdata
strategy_name, out = sys.argv[1], sys.argv[2]
if strategy_name == "multi-worker":
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()])
cfg = {**task.DEFAULTS, "embedding_dim": 8, "units": 16, "num_layers": 1, "dropout": 0.0, "min_count": 1,
       "tokens_per_batch": 256, "seed": 5, "learning_rate": 1e-2}
vocab, tr, va, _ = task.prepare_corpus(sys.argv[3], cfg)
plan = pdata.BatchPlan(tr, cfg["tokens_per_batch"], seed=1, multiple=2)  # same batches in both runs
training.set_seed(5)
strategy = training.get_strategy(strategy_name)
from rnn_apps.apps.poetry.model import build_char_rnn
with strategy.scope():
    model = build_char_rnn(len(vocab), 8, 16, 1, "lstm", 0.0)
    task.compile_model(model, cfg["learning_rate"], 1.0, 100)
    model.build((None, None))
res = training.fit_resumable(model, lambda s: task.batch_dataset(plan, s, None), 4, 1, out, verbose=0, save_every=0,
                             strategy=strategy)
np.savez(os.path.join(out, "final.npz"), *[v.numpy() for v in model.trainable_variables])
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "step": res["step"]}))
"""


@pytest.mark.slow
def test_mirrored_strategy_matches_single_device(tmp_path, poems_file):
    """MirroredStrategy over two logical CPU devices gives the single-device result (within float tolerance)."""
    script = tmp_path / "dist.py"
    script.write_text(_DISTRIBUTED)
    finals = {}
    for name in ("default", "mirrored"):
        out = tmp_path / name
        r = subprocess.run([sys.executable, str(script), name, str(out), poems_file], env=ENV, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        info = json.loads(r.stdout.strip().splitlines()[-1])
        assert info["step"] == 4
        assert info["replicas"] == (2 if name == "mirrored" else 1)
        with np.load(out / "final.npz") as z:
            finals[name] = [z[k] for k in sorted(z.files, key=lambda s: int(s.split("_")[1]))]
    assert len(finals["default"]) == len(finals["mirrored"]) > 0
    for a, b in zip(finals["default"], finals["mirrored"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_strategy_matches_single_device(tmp_path, poems_file):
    """Two worker processes on loopback (TF_CONFIG) train like one device on the whole batch."""
    script = tmp_path / "dist.py"
    script.write_text(_DISTRIBUTED)
    single = tmp_path / "single"
    r = subprocess.run([sys.executable, str(script), "default", str(single), poems_file], env=ENV, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen([sys.executable, str(script), "multi-worker", str(tmp_path / f"worker{i}"),
                                       poems_file], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert all(o["replicas"] == 2 and o["step"] == 4 for o in outs)
    with np.load(single / "final.npz") as a, np.load(tmp_path / "worker0" / "final.npz") as b, \
            np.load(tmp_path / "worker1" / "final.npz") as c:
        assert len(a.files) == len(b.files) > 0
        for k in a.files:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(c[k], b[k], rtol=1e-6, atol=1e-7)  # workers stay in sync


def test_unknown_strategy_and_missing_tf_config():
    with pytest.raises(training.TrainingError, match="Unknown strategy"):
        training.get_strategy("tpu-pod")
    env_backup = os.environ.pop("TF_CONFIG", None)
    try:
        with pytest.raises(training.TrainingError, match="TF_CONFIG"):
            training.get_strategy("multi-worker")
    finally:
        if env_backup is not None:
            os.environ["TF_CONFIG"] = env_backup


def _write_dummy(path):
    os.makedirs(path)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"model")


def test_atomic_export_never_shows_half_written_versions(tmp_path):
    app = tmp_path / "poetry"
    v1 = shared_export.atomic_export(_write_dummy, str(app))
    assert v1.endswith(os.sep + "1") and shared_export.list_versions(str(app)) == [1]

    def crash(path):
        _write_dummy(path)
        assert shared_export.list_versions(str(app)) == [1]  # the new version is not visible while written
        raise KeyboardInterrupt("killed during export")

    with pytest.raises(KeyboardInterrupt):
        shared_export.atomic_export(crash, str(app))
    assert shared_export.list_versions(str(app)) == [1]
    assert sorted(os.listdir(app)) == ["1"]  # no temporary left behind
    assert open(os.path.join(v1, "saved_model.pb"), "rb").read() == b"model"

    # A leftover temporary directory from a SIGKILLed export is ignored, and versions are never overwritten.
    os.makedirs(app / ".tmp-2-999")
    (app / ".tmp-2-999" / "saved_model.pb").write_bytes(b"half")
    assert shared_export.latest_version_dir(str(app)) == v1
    v2 = shared_export.atomic_export(_write_dummy, str(app), extra_files={"card.json": {"a": 1}})
    assert shared_export.list_versions(str(app)) == [1, 2]
    assert shared_export.read_extra(v2, "card.json") == {"a": 1}
    with pytest.raises(FileExistsError):
        shared_export.atomic_export(_write_dummy, str(app), version=2)


def _version_of(app_dir, version, app):
    extra = app_dir / str(version) / "assets.extra"
    extra.mkdir(parents=True)
    (app_dir / str(version) / "saved_model.pb").write_bytes(b"model")
    (extra / f"{app}.json").write_text("{}", encoding="utf-8")


def _card(app_dir, app, version="1"):
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "README.md").write_text(f'---\nlibrary_name: "tensorflow"\nrnn_apps:\n  app: "{app}"\n  version: '
                                       f'"{version}"\n---\n# A {app} model\n', encoding="utf-8")


def test_an_export_goes_only_where_its_app_is(tmp_path):
    """check_export_target, which every app's export passes (atomic_export with an app's <app>.json): the
    directories of the project's layout are accepted, another app's versions and README.md are refused."""
    check = shared_export.check_export_target
    check(str(tmp_path / "new" / "poetry"), "poetry")  # not there yet
    shapes = tmp_path / "caption-shapes"  # the caption app's second directory, its card written as either name
    _version_of(shapes, 2, "caption")
    _card(shapes, "caption-shapes", "2")
    check(str(shapes), "caption")
    _card(shapes, "caption", "2")
    check(str(shapes), "caption")
    zh_en = tmp_path / "translate-zh-en"
    _version_of(zh_en, 3, "translate")
    _card(zh_en, "translate-zh-en", "3")
    check(str(zh_en), "translate")
    old = tmp_path / "old" / "poetry"  # a card written before cards named their app, beside poetry's versions
    _version_of(old, 1, "poetry")
    (old / "README.md").write_text("---\nlicense: mit\n---\n# Poems\n", encoding="utf-8")
    (old / "2").mkdir()  # a numbered directory holding no model yet
    check(str(old), "poetry")

    with pytest.raises(FileExistsError, match=r"holds caption models \(version 2 has assets.extra/caption.json\), "
                                              r"not poetry ones"):
        check(str(shapes), "poetry")
    with pytest.raises(FileExistsError, match=r"holds translate models .*, not caption ones"):
        check(str(zh_en), "caption")
    cards = tmp_path / "cards"
    _card(cards, "translate-zh-en")
    with pytest.raises(FileExistsError) as e:
        check(str(cards), "caption")
    assert str(e.value) == (f"{cards / 'README.md'} is the model card of 'translate-zh-en', not of caption; the "
                            "export would replace it with the caption model's card: export to a directory of its "
                            "own (e.g. models/caption) or move that README.md away.")
    plain = tmp_path / "plain"  # front matter of no rnn-apps card, and no version of the app beside it
    plain.mkdir()
    (plain / "README.md").write_text("---\nlicense: mit\n---\n# Poems\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="is not a model card of poetry"):
        check(str(plain), "poetry")

    # atomic_export checks before it writes anything; an export that names no app's settings is not checked
    before = sorted(os.listdir(shapes))
    with pytest.raises(FileExistsError, match="holds caption models"):
        shared_export.atomic_export(_write_dummy, str(shapes), extra_files={"poetry.json": {"config": {}}})
    assert sorted(os.listdir(shapes)) == before
    assert shared_export.atomic_export(_write_dummy, str(shapes), extra_files={"notes.json": {}}).endswith("3")


def test_an_export_holds_no_optimizer_state(tmp_path):
    """A module that holds a model just trained would save Adam's moments too (three times the weights):
    save_module refuses that, and inference_view gives the same network without them."""
    import keras
    import tensorflow as tf

    from rnn_apps.apps.base import save_module

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs))
    model.compile(optimizer="adam", loss="mse")
    x = np.arange(12, dtype="float32").reshape(4, 3)
    model.fit(x, np.ones((4, 2), "float32"), epochs=1, verbose=0)  # creates the optimizer's variables

    def module_of(net):
        module = tf.Module()
        module.net = net
        module.call = tf.function(lambda t: net(t), input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        return module

    with pytest.raises(RuntimeError, match="optimizer's state"):
        save_module(module_of(model), {}, str(tmp_path / "a"), 1, "x.json", {})
    assert not os.path.exists(tmp_path / "a" / "1") and os.listdir(tmp_path / "a") == []  # nothing left behind
    view = shared_export.inference_view(model)
    assert getattr(view, "optimizer", None) is None and [id(v) for v in view.weights] == [id(v) for v in model.weights]
    path = save_module(module_of(view), {}, str(tmp_path / "b"), 1, "x.json", {})
    names = [n for n, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))]
    assert not [n for n in names if "optimizer" in n] and len([n for n in names if "VARIABLE_VALUE" in n]) == 2
    loaded = tf.saved_model.load(path)  # held: its variables go with it
    np.testing.assert_allclose(loaded.call(tf.constant(x)).numpy(), model.predict(x, verbose=0), rtol=1e-6)
    uncompiled = keras.Model(inputs, model.outputs)
    assert shared_export.inference_view(uncompiled) is uncompiled

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, t):
            return self.dense(t)

    sub = Subclassed()
    sub.compile(optimizer="adam", loss="mse")
    sub.fit(x, np.ones((4, 2), "float32"), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Subclassed .* is compiled and not a functional model"):
        shared_export.inference_view(sub)


def test_checkpoint_refuses_a_different_model(tmp_path):
    from rnn_apps.apps.poetry.model import build_char_rnn

    m1 = build_char_rnn(30, 4, 8, 1)
    m1.build((None, None))
    mgr = training.CheckpointManager(str(tmp_path))
    mgr.save(m1, 5)
    m2 = build_char_rnn(30, 4, 12, 1)
    m2.build((None, None))
    with pytest.raises(training.TrainingError, match="shape"):
        mgr.restore(m2)
    m3 = build_char_rnn(30, 4, 8, 1)
    m3.build((None, None))
    assert mgr.restore(m3) == 5
    for a, b in zip(m1.weights, m3.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_training_seconds_adds_up_resumed_stretches():
    rows = [{"seconds": 10.0}, {"seconds": 25.0}, {"seconds": 7.0}, {"seconds": 15.0}, {"seconds": 4.0}]
    assert training.training_seconds(rows) == 25.0 + 15.0 + 4.0
    assert training.training_seconds([]) == 0.0


@pytest.mark.parametrize("tell_length", [True, False])
def test_generator_dataset_tells_keras_where_validation_ends(tell_length):
    """A finite generator of unknown length makes Keras run into its end and warn; with its length, no warning."""
    import warnings

    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=(12, 1)).astype(np.float32)
    spec = (tf.TensorSpec((None, 3), tf.float32), tf.TensorSpec((None, 1), tf.float32))

    def batches(epochs):
        e = 0
        while epochs is None or e < epochs:
            for i in range(0, 12, 4):
                yield x[i:i + 4], y[i:i + 4]
            e += 1

    train = datasets.generator_dataset(lambda: batches(None), spec)
    val = datasets.generator_dataset(lambda: batches(1), spec, 3 if tell_length else None)
    assert int(val.cardinality()) == (3 if tell_length else tf.data.UNKNOWN_CARDINALITY)
    assert int(train.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(train, steps_per_epoch=3, epochs=2, validation_data=val, verbose=0)
    ran_out = [w for w in caught if "ran out of data" in str(w.message)]
    assert len(history.history["val_loss"]) == 2
    assert (not ran_out) if tell_length else ran_out


def _line_fit(run_dir, epochs, keep_best=None, patience=0, resume=False, callbacks=(), average_best=0):
    """A one-weight model y = w·x trained towards w = 3 while validation wants w = 1: val loss is lowest at epoch 2."""
    import keras
    import tensorflow as tf

    x = np.linspace(-1.0, 1.0, 32, dtype=np.float32)[:, None]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.15), "mse")
    train = lambda start: tf.data.Dataset.from_tensor_slices((x, 3 * x)).batch(16).repeat().skip(start)  # noqa: E731
    val = tf.data.Dataset.from_tensor_slices((x, x)).batch(16)
    result = training.fit_resumable(model, train, 2, epochs, str(run_dir), validation_data=val, resume=resume,
                                    save_every=0, verbose=0, keep_best=keep_best, patience=patience, callbacks=callbacks,
                                    average_best=average_best)
    return result, float(model.weights[0].numpy().ravel()[0])


def test_keep_best_restores_the_best_epoch_and_stops_after_patience(tmp_path):
    plain, w_last = _line_fit(tmp_path / "plain", 6)
    val = [r["val_loss"] for r in plain["history"]]
    best = int(np.argmin(val)) + 1
    assert 1 < best < 6 and "best_epoch" not in plain  # the set-up: a minimum in the middle
    _, w_best_ref = _line_fit(tmp_path / "short", best)  # an independent run that simply stops there

    kept, w = _line_fit(tmp_path / "kept", 6, keep_best="val_loss")
    assert [r["val_loss"] for r in kept["history"]] == pytest.approx(val)
    assert (kept["best_epoch"], kept["stopped_early"]) == (best, False)
    assert kept["best"] == pytest.approx(min(val))
    assert w == pytest.approx(w_best_ref) and w != pytest.approx(w_last)
    assert os.path.exists(tmp_path / "kept" / training.BEST_WEIGHTS)

    stopped, w = _line_fit(tmp_path / "stop", 6, keep_best="val_loss", patience=1)
    assert len(stopped["history"]) == best + 1 and stopped["step"] == 2 * (best + 1)
    assert (stopped["best_epoch"], stopped["stopped_early"]) == (best, True) and w == pytest.approx(w_best_ref)
    # Resuming a run that stopped early trains no further and still hands back the best epoch.
    again, w = _line_fit(tmp_path / "stop", 6, keep_best="val_loss", patience=1, resume=True)
    assert len(again["history"]) == best + 1 and again["stopped_early"] and w == pytest.approx(w_best_ref)

    # By accuracy-like metrics higher is better.
    assert training.best_epoch([{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}, {"epoch": 3, "val_acc": 0.7}],
                               "val_acc") == (2, 0.7)
    assert training.best_epoch([{"epoch": 1, "loss": 0.5}], "val_loss") is None


@pytest.mark.parametrize("cut_after, lose_best_file", [(3, False), (2, True)])
def test_keep_best_survives_an_interrupted_run(tmp_path, cut_after, lose_best_file):
    """Stopped after epoch ``cut_after`` and resumed: the same epochs, the same stop, the same kept weights, even
    when the run died between the best epoch's checkpoint and its best weights."""
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == cut_after:
                raise KeyboardInterrupt

    full, w_full = _line_fit(tmp_path / "full", 6, keep_best="val_loss", patience=2)
    assert full["best_epoch"] == 2
    with pytest.raises(KeyboardInterrupt):
        _line_fit(tmp_path / "cut", 6, keep_best="val_loss", patience=2, callbacks=[Interrupt()])
    if lose_best_file:
        os.remove(tmp_path / "cut" / training.BEST_WEIGHTS)
    resumed, w = _line_fit(tmp_path / "cut", 6, keep_best="val_loss", patience=2, resume=True)
    assert [r["val_loss"] for r in resumed["history"]] == pytest.approx([r["val_loss"] for r in full["history"]])
    assert (resumed["best_epoch"], resumed["stopped_early"], resumed["step"]) == (
        full["best_epoch"], full["stopped_early"], full["step"])
    assert full["stopped_early"] and w == pytest.approx(w_full)


@pytest.mark.parametrize("interrupt", [False, True])
def test_average_best_ends_with_the_mean_of_the_best_epochs(tmp_path, interrupt):
    """average_best=3: the weights end as the mean of the three best epochs' weights, each taken from an
    independent run that simply stops at that epoch; only those epochs' files are kept; a resumed run agrees."""
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == 4:
                raise KeyboardInterrupt

    if interrupt:
        with pytest.raises(KeyboardInterrupt):
            _line_fit(tmp_path / "avg", 6, keep_best="val_loss", average_best=3, callbacks=[Interrupt()])
    result, w = _line_fit(tmp_path / "avg", 6, keep_best="val_loss", average_best=3, resume=interrupt)
    val = [r["val_loss"] for r in result["history"]]
    best3 = sorted(int(i) + 1 for i in np.argsort(val, kind="stable")[:3])
    assert result["averaged_epochs"] == best3
    w_epochs = [_line_fit(tmp_path / f"short{e}", e)[1] for e in best3]
    assert w == pytest.approx(np.mean(w_epochs), rel=1e-6)
    assert w != pytest.approx(w_epochs[0])
    kept = sorted(os.listdir(tmp_path / "avg" / training.BEST_EPOCHS_DIR))
    assert kept == [f"epoch-{e:04d}.weights.h5" for e in best3]
    assert os.path.exists(tmp_path / "avg" / training.AVERAGED_WEIGHTS)


def test_average_weights_refuses_nothing_and_missing_files(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(training.TrainingError, match="at least one"):
        training.average_weights(model, [])
    with pytest.raises(training.TrainingError, match="No such weights file"):
        training.average_weights(model, [str(tmp_path / "nope.weights.h5")])


@pytest.mark.parametrize("kwargs, message", [
    ({"average_best": -1}, "average_best must be a whole number"),
    ({"patience": -1}, "patience must be a whole number"),
    ({"patience": 1.5}, "patience must be a whole number"),
    ({"patience": True}, "patience must be a whole number"),
    ({"keep_best": "loss"}, "keep_best must name a validation metric"),
    # the validation loss it watches is never computed without validation data: it stopped nothing, silently
    ({"keep_best": "val_loss", "patience": 2}, "--patience 2 stops on the validation loss, but this run has no"),
])
def test_keep_best_refuses_bad_settings(tmp_path, kwargs, message):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(training.TrainingError, match=message):
        training.fit_resumable(model, lambda s: None, 2, 2, str(tmp_path / "run"), **kwargs)
    assert not os.path.exists(tmp_path / "run")


def test_train_poetry_patience_stops_early_keeps_the_best_epoch_and_survives_resume(tmp_path, poems_file):
    """--patience N on a command that used to end with its last epoch: the run stops after N epochs without a lower
    validation loss, ends (and reports) with its best epoch's weights, records N so that --resume keeps it (another
    N is refused), and a run saved before the setting resumes without it, training every epoch."""
    from click.testing import CliRunner

    from rnn_apps.apps.poetry import task
    from rnn_apps.cli import cli

    # A learning rate this high overfits 27 poems at once: the validation loss is lowest early and rises.
    tiny = ["--embedding-dim", "8", "--units", "16", "--layers", "1", "--tokens-per-batch", "512", "--min-count", "1",
            "--val-fraction", "0.1", "--seed", "3", "--dropout", "0", "--learning-rate", "0.05"]
    run = tmp_path / "run"
    args = ["train", "poetry", "--data", poems_file, "--run-dir", str(run), "--epochs", "6", *tiny, "--json"]
    r = CliRunner().invoke(cli, [*args, "--patience", "2"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    history = _history(run)
    best, epochs_run = res["best_epoch"], len(history)
    assert res["stopped_early"] and epochs_run == best + 2 < 6 and res["step"] == history[-1]["step"]
    assert res["val_bits_per_char"] == history[best - 1]["val_bits_per_char"]  # the figure of the weights kept
    assert json.loads((run / "config.json").read_text())["settings"]["patience"] == 2
    final, _, _ = task.load_run_model(str(run))
    kept, _, _ = task.load_run_model(str(run), weights=str(run / training.BEST_WEIGHTS))
    for a, b in zip(final.weights, kept.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    r = CliRunner().invoke(cli, [*args, "--resume"])  # the run's own patience: it had stopped, it trains no further
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stopped_early"] and len(_history(run)) == epochs_run
    r = CliRunner().invoke(cli, [*args, "--resume", "--patience", "3"])
    assert r.exit_code == 1 and "was started with patience 2" in r.output, r.output

    # A run saved before --patience existed: its config has no such setting, and it goes on to its last epoch.
    config = json.loads((run / "config.json").read_text())
    del config["settings"]["patience"]
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    r = CliRunner().invoke(cli, [*args, "--resume", "--patience", "1"])  # refused, not silently dropped
    assert r.exit_code == 1 and "was started before the setting patience existed" in r.output, r.output
    r = CliRunner().invoke(cli, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    assert len(_history(run)) == 6 and "stopped_early" not in json.loads(r.stdout)

    with pytest.raises(training.TrainingError, match="patience must be a whole number"):
        task.train(poems_file, str(tmp_path / "bad"), epochs=1, verbose=0, patience=-1)
    assert not (tmp_path / "bad").exists()  # refused before the run directory is written
