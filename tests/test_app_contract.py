"""The app contract (rnn_apps.apps.base), checked for every app: a new app inherits these tests.

Every app in ``rnn_apps.limits.APPS`` must have a tiny training result below (``TINY_RESULTS``); each then
gets the same checks: the result exports through ``TrainResult.export`` (the app's ``export_result``), the
export is read back by the app's ``load_config`` and by its inference wrapper (found by name in
``rnn_apps.predictors``), a model of another app is refused with a one-line error, its ``train`` follows
the shared signature, and its ``rnn-apps fine-tune APP`` takes the shared flags. The models are tiny and
untrained: the checks are about saving, finding and loading, not quality.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os

import numpy as np
import pytest

from rnn_apps import limits
from rnn_apps.apps import base
from rnn_apps.predictors import PREDICTORS, predictor_class

APPS_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "rnn_apps", "apps")
POEMS = ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]


def _poetry():
    from rnn_apps.apps.poetry import task
    from rnn_apps.apps.poetry.model import build_char_rnn
    from rnn_apps.vocab import Vocabulary

    vocab = Vocabulary.build(POEMS)
    cfg = {**task.DEFAULTS, "embedding_dim": 8, "units": 8, "num_layers": 1}
    model = build_char_rnn(len(vocab), 8, 8, 1, cfg["cell"], 0.0)
    model.build((None, None))
    return {"model": model, "vocab": vocab, "config": cfg}, {"jit_compile": False}


def _fill():
    from rnn_apps.apps.fill import data as fdata
    from rnn_apps.apps.fill import task
    from rnn_apps.apps.fill.model import build

    vocab = fdata.build_vocab(POEMS, min_count=1)
    cfg = {**task.DEFAULTS, "embedding_dim": 8, "units": 8}
    model = build(cfg["kind"], len(vocab), 8, 8, cfg["cell"], 0.0)
    model.build((None, None))
    return {"model": model, "vocab": vocab, "config": cfg, "step": 0, "stats": {}}, {}


def _sentiment():
    from rnn_apps.apps.sentiment import task
    from rnn_apps.apps.sentiment.model import build_from_config

    words = ["good", "bad", "film", "the"]
    cfg = {**task.DEFAULTS, "embedding_dim": 8, "units": 8, "max_len": 16, "ngram_features": 0}
    model = build_from_config(len(words) + 2, cfg)
    return {"model": model, "vocabulary": words, "config": cfg, "val_accuracy": 0.5}, {}


def _translate():
    from rnn_apps.apps.translate import task
    from rnn_apps.apps.translate.model import build_model
    from rnn_apps.vocab import Vocabulary

    src, tgt = Vocabulary("where is the station ?".split()), Vocabulary(list("车站在哪里？"))
    cfg = {**task.DEFAULTS, "embedding_dim": 8, "encoder_units": 8, "decoder_units": 8, "attention_units": 8}
    model = build_model(len(src), len(tgt), cfg)
    return {"model": model, "source_vocab": src, "target_vocab": tgt, "config": cfg, "truecase": {}}, {"default_beam": 1}


def _caption():
    from rnn_apps.apps.caption import task
    from rnn_apps.apps.caption.model import build_caption_model
    from rnn_apps.vocab import Vocabulary

    vocab = Vocabulary("a red circle on blue".split())
    cfg = {**task.DEFAULTS, "image_size": 32, "filters": [4, 8], "feature_dim": 8, "units": 8, "embedding_dim": 8,
           "attention_units": 8, "max_len": 8}
    model = build_caption_model(len(vocab), cfg, cfg["max_len"])
    return {"model": model, "vocab": vocab, "config": cfg, "synthetic": True}, {}


def _forecast():
    from rnn_apps.apps.forecast import task
    from rnn_apps.apps.forecast.model import build_model

    cfg = {**task.DEFAULTS, "window": 6, "horizon": 2, "units": 4, "season": None, "split": 20}
    model = build_model(cfg["window"], cfg["horizon"], cfg["mode"], cfg["cell"], cfg["units"])
    return {"model": model, "scale": 1.5, "config": cfg}, {"summary": {"step": 0}}


# app -> () -> (what its train() returns, minus what the export does not need; export arguments)
TINY_RESULTS = {"poetry": _poetry, "fill": _fill, "sentiment": _sentiment, "translate": _translate,
                "caption": _caption, "forecast": _forecast}
APPS = sorted(limits.APPS)


def _json(value):
    return json.loads(json.dumps(value))


def test_every_app_is_covered_by_the_contract_tests():
    assert sorted(TINY_RESULTS) == APPS
    assert set(PREDICTORS) <= set(APPS)


@pytest.mark.parametrize("app", APPS)
def test_export_is_read_back_by_load_config_and_the_predictor(app, tmp_path):
    """A training result exports through its app's export_result; load_config and the predictor read it."""
    app_dir = str(tmp_path / app)
    fields, kwargs = TINY_RESULTS[app]()
    cfg = fields["config"]
    path = base.TrainResult(fields, app=app).export(app_dir, **kwargs)
    assert path == os.path.join(app_dir, "1")
    meta = importlib.import_module(f"rnn_apps.apps.{app}.export").load_config(path)
    assert meta["config"] == _json(cfg)
    assert meta == base.read_meta(path, f"{app}.json", app)
    if app in PREDICTORS:
        predictor = predictor_class(app)(app_dir)  # an app directory: its newest version
        assert isinstance(predictor, base.Predictor) and predictor.app == app
        assert predictor.model_dir == path and predictor.meta == meta and predictor.config == meta["config"]
        assert "serving_default" in predictor.signatures
        assert predictor.loaded is predictor.loaded  # loaded once


@pytest.mark.parametrize("app", APPS)
def test_a_model_of_another_app_is_refused(app, tmp_path):
    other = "sentiment" if app != "sentiment" else "poetry"
    version = tmp_path / other / "1"
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / "assets.extra" / f"{other}.json").write_text(json.dumps({"config": {}}), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=f"assets.extra/{app}.json"):
        importlib.import_module(f"rnn_apps.apps.{app}.export").load_config(str(version))
    if app in PREDICTORS:
        with pytest.raises(FileNotFoundError, match=f"assets.extra/{app}.json"):
            predictor_class(app)(str(tmp_path / other))


def _listing(path) -> dict:
    """Every file under ``path`` with its bytes: what an export refused before writing must leave as it was."""
    return {os.path.relpath(os.path.join(r, f), path): open(os.path.join(r, f), "rb").read()
            for r, _, fs in os.walk(path) for f in fs}


@pytest.mark.parametrize("app", APPS)
def test_export_into_a_directory_of_another_app_is_refused_before_writing(app, tmp_path):
    """`rnn-apps export sentiment --export models/poetry` wrote version 2 of poetry (a sentiment model, which
    broke every default lookup of poetry) and replaced poetry's card; every app's export now refuses it."""
    other = "sentiment" if app != "sentiment" else "poetry"
    app_dir = tmp_path / other
    version = app_dir / "1"
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / "assets.extra" / f"{other}.json").write_text(json.dumps({"config": {}}), encoding="utf-8")
    (app_dir / "README.md").write_text(f'---\nrnn_apps:\n  app: "{other}"\n  version: "1"\n---\n# {other}\n',
                                       encoding="utf-8")
    before = _listing(app_dir)
    fields, kwargs = TINY_RESULTS[app]()
    with pytest.raises(FileExistsError) as e:
        base.TrainResult(fields, app=app).export(str(app_dir), **kwargs)
    assert str(e.value) == (f"{app_dir} holds {other} models (version 1 has assets.extra/{other}.json), not {app} "
                            f"ones: export the {app} model to a directory of its own (e.g. models/{app}).")
    assert _listing(app_dir) == before and sorted(os.listdir(app_dir)) == ["1", "README.md"]


@pytest.mark.parametrize("app", APPS)
def test_export_next_to_a_readme_that_is_not_its_card_is_refused_before_writing(app, tmp_path):
    """An export into a folder of the user's own rewrote its README.md as the model's card."""
    app_dir = tmp_path / "notes"
    app_dir.mkdir()
    (app_dir / "README.md").write_text("# My notes\n\nNot a model card.\n", encoding="utf-8")
    before = _listing(app_dir)
    fields, kwargs = TINY_RESULTS[app]()
    with pytest.raises(FileExistsError) as e:
        base.TrainResult(fields, app=app).export(str(app_dir), **kwargs)
    assert str(e.value) == (f"{app_dir / 'README.md'} is not a model card of {app} (its front matter names no "
                            f"rnn_apps app); the export would replace it with the {app} model's card: export to a "
                            f"directory of its own (e.g. models/{app}) or move that README.md away.")
    assert _listing(app_dir) == before


def test_predictors_are_found_by_name_only():
    with pytest.raises(ValueError, match="expected one of"):
        predictor_class("weather")
    for app, spec in PREDICTORS.items():
        cls = predictor_class(app)
        assert f"{cls.__module__}:{cls.__name__}" == spec and issubclass(cls, base.Predictor)


@pytest.mark.parametrize("app", APPS)
def test_train_follows_the_shared_signature(app):
    train = importlib.import_module(f"rnn_apps.apps.{app}.task").train
    params = list(inspect.signature(train).parameters.values())
    assert [p.kind for p in params[:2]] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 2
    assert params[2].name == "epochs" and params[-1].kind == inspect.Parameter.VAR_KEYWORD
    run_options = {f for f in base.RunOptions.__dataclass_fields__}
    assert not run_options & {p.name for p in params}, "run options come from rnn_apps.apps.base.RunOptions"


FINE_TUNE_OPTIONS = {"--data", "--model", "--export", "--run-dir", "--epochs", "--resume", "--learning-rate", "--seed",
                     "--json"}


@pytest.mark.parametrize("app", APPS)
def test_every_app_that_trains_has_a_fine_tune_command(app):
    """``rnn-apps fine-tune APP`` for every app, with the shared flags and --help examples."""
    from click.testing import CliRunner

    from rnn_apps.cli import cli

    commands = importlib.import_module(f"rnn_apps.apps.{app}.commands").COMMANDS
    assert [c.name for c in commands.get("fine-tune", [])] == [app]
    command = commands["fine-tune"][0]
    flags = {opt for p in command.params for opt in p.opts}
    assert FINE_TUNE_OPTIONS <= flags, FINE_TUNE_OPTIONS - flags
    r = CliRunner().invoke(cli, ["fine-tune", app, "--help"])
    assert r.exit_code == 0 and "Examples" in r.output and f"rnn-apps fine-tune {app} --data" in r.output


# The run flags of `train APP` and `fine-tune APP`. forecast's runs have none of the three: their epochs are a few short
# steps (checkpoints at epoch ends only), and a forecaster reads no validation loss to stop on but its back-test.
RUN_FLAGS = {"--save-every", "--tensorboard", "--patience"}
WITHOUT_RUN_FLAGS = {"forecast"}


@pytest.mark.parametrize("app", APPS)
def test_train_and_fine_tune_take_the_same_run_flags(app):
    """``--save-every``, ``--tensorboard`` and ``--patience`` mean the same in every training command: each
    ``train APP`` and ``fine-tune APP`` takes them all (forecast none), with ``--patience`` defaulting to None
    (the app's own default, kept by ``--resume``)."""
    commands = importlib.import_module(f"rnn_apps.apps.{app}.commands").COMMANDS
    for group in ("train", "fine-tune"):
        for command in commands.get(group, []):
            params = {opt: p for p in command.params for opt in p.opts}
            expected = set() if app in WITHOUT_RUN_FLAGS else RUN_FLAGS
            assert RUN_FLAGS & set(params) == expected, f"{group} {app}"
            if "--patience" in params:
                assert params["--patience"].default is None, f"{group} {app}"


def test_no_app_imports_another_app():
    apps = sorted(d for d in os.listdir(APPS_DIR) if os.path.isdir(os.path.join(APPS_DIR, d)) and d != "__pycache__")
    crossing = []
    for app in apps:
        folder = os.path.join(APPS_DIR, app)
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for module in modules:
                    parts = module.split(".")
                    if parts[:2] == ["rnn_apps", "apps"] and len(parts) > 2 and parts[2] not in (app, "base"):
                        crossing.append(f"{app}/{name}: {module}")
    assert not crossing


# ------------------------------------------------------------------------------------ training contract

def test_run_options_split_from_the_settings():
    run, settings = base.RunOptions.split({"resume": True, "units": 3, "verbose": 0, "callbacks": [1]}, save_every=7)
    assert run == base.RunOptions(resume=True, verbose=0, save_every=7, callbacks=(1,))
    assert settings == {"units": 3}
    assert base.RunOptions.split({"save_every": 0}, save_every=7)[0].save_every == 0
    assert base.RunOptions.split({"save_every": None, "units": None}, save_every=7) == (base.RunOptions(save_every=7),
                                                                                     {"units": None})
    assert run.fit_kwargs() == {"resume": True, "save_every": 7, "tensorboard": False, "callbacks": [1], "verbose": 0}


def test_train_result_is_a_dict_with_attributes():
    r = base.TrainResult(step=4, stats={"poems": 2})
    assert r["step"] == r.step == 4 and dict(r) == {"step": 4, "stats": {"poems": 2}}
    assert r.summary("step", optional=("stats", "seconds")) == {"step": 4, "stats": {"poems": 2}}
    with pytest.raises(AttributeError, match="no 'model'"):
        r.model
    with pytest.raises(KeyError, match="model"):
        r.summary("model")


def test_run_config_and_weights_round_trip(tmp_path):
    """fit_run writes the final weights; load_run_weights reads them, else the newest checkpoint."""
    import keras
    import tensorflow as tf

    from rnn_apps import training

    def make():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    def compile_fn(m):
        return base.compile_model(m, 1e-2, 1.0, 4, loss="mse")

    run_dir = str(tmp_path)
    base.write_run_config(run_dir, {"settings": {"units": 2}, "stats": {"rows": 8}})
    assert base.read_run_config(run_dir)["settings"] == {"units": 2}
    with pytest.raises(FileNotFoundError, match="is not a fill training run"):
        base.read_run_config(str(tmp_path / "nothing"), app="fill")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    model = compile_fn(make())
    result = base.fit_run(model, lambda start: tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat(), 2, 2,
                          run_dir, base.RunOptions(verbose=0, save_every=0), strategy=training.get_strategy())
    assert isinstance(result, base.TrainResult) and result.step == 4
    trained = [w.numpy() for w in model.weights]
    fresh = base.load_run_weights(make(), run_dir, compile_fn)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(trained, fresh.weights))
    os.remove(os.path.join(run_dir, base.FINAL_WEIGHTS))
    restored = base.load_run_weights(make(), run_dir, compile_fn)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(trained, restored.weights))


def _make():
    import keras

    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def _compile(m):
    return base.compile_model(m, 1e-2, 1.0, 4, loss="mse")


def _tiny_run(run_dir, *callbacks, epochs=2, keep_final=True):
    """A Dense model fit by fit_run for ``epochs`` epochs of 2 steps, a checkpoint each step, resumed from the run's
    newest checkpoint when it has one; ``callbacks`` may cut it short by raising."""
    import tensorflow as tf

    from rnn_apps import training

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    base.fit_run(_compile(_make()), lambda start: tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat(), 2,
                 epochs, run_dir, base.RunOptions(resume=True, verbose=0, save_every=1, callbacks=callbacks),
                 strategy=training.get_strategy(), final=base.FINAL_WEIGHTS if keep_final else None)


class _Killed(Exception):
    pass


def _kill_at(step):
    import keras

    class Kill(keras.callbacks.Callback):  # after the checkpoint of that step (the run's callback comes first)
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            Kill.seen += 1
            if Kill.seen == step:
                raise _Killed()

    return Kill()


def test_a_run_cut_short_is_loaded_with_a_note_of_its_step_and_plan(tmp_path, capsys):
    """A run killed at step 3 of 4 was exported silently: nothing said the weights were not those of its end."""
    run_dir = str(tmp_path)
    with pytest.raises(_Killed):
        _tiny_run(run_dir, _kill_at(3))
    capsys.readouterr()
    base.load_run_weights(_make(), run_dir, _compile)
    assert capsys.readouterr().err.splitlines() == [
        f"Note: {run_dir} stopped before the end of its training: exporting its newest checkpoint, step 3 of the 4 "
        "planned (2 epochs). --resume continues the run."]


def test_a_run_that_ended_is_loaded_without_a_note(tmp_path, capsys):
    """Its final weights, or (none kept) its last checkpoint; a run stopped early on purpose has ended too."""
    import keras

    from rnn_apps import training

    class StopAfterOneEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise training.StopEarly()

    for name, callbacks, keep_final in [("done", (), True), ("no-final", (), False),
                                        ("early", (StopAfterOneEpoch(),), True)]:
        _tiny_run(str(tmp_path / name), *callbacks, keep_final=keep_final)
        capsys.readouterr()
        base.load_run_weights(_make(), str(tmp_path / name), _compile)
        assert capsys.readouterr().err == "", name
    progress = training.CheckpointManager(str(tmp_path / "early")).progress()
    assert (progress["step"], progress["total_steps"], progress["ended"]) == (2, 4, True)


def test_final_weights_older_than_the_newest_checkpoint_are_named(tmp_path, capsys):
    """A run that ended, resumed for more epochs and killed: its final weights are not of its newest step."""
    run_dir = str(tmp_path)
    _tiny_run(run_dir, epochs=1)
    with pytest.raises(_Killed):
        _tiny_run(run_dir, _kill_at(1), epochs=3)  # resumed at step 2, killed after step 3 (of 6)
    capsys.readouterr()
    base.load_run_weights(_make(), run_dir, _compile)
    assert capsys.readouterr().err.splitlines() == [
        f"Note: {run_dir} stopped before the end of its training, at step 3 of the 6 planned (3 epochs): exporting "
        f"its {base.FINAL_WEIGHTS}, written before it stopped, not that checkpoint. --resume continues the run."]


def test_a_run_being_trained_or_without_a_checkpoint_is_refused(tmp_path):
    """Loading a run another process trains raced its checkpoint rotation ("No such file ... meta.json"); a run
    with no checkpoint yet was told "No checkpoint to resume from", though nothing was resumed."""
    import fcntl

    from rnn_apps import training

    run_dir = str(tmp_path / "run")
    _tiny_run(run_dir)
    with open(os.path.join(run_dir, training.LOCK_FILE), "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # per open file: as another process holds it
        f.write("4242")
        f.flush()
        with pytest.raises(training.TrainingError) as e:
            base.load_run_weights(_make(), run_dir, _compile)
    assert str(e.value) == (f"{run_dir} is being trained (its lock is held by process 4242); export it when the "
                            "training ends, or stop the training first (--resume continues it later).")
    base.load_run_weights(_make(), run_dir, _compile)  # released: loads
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    with pytest.raises(training.TrainingError) as e:
        base.load_run_weights(_make(), empty, _compile)
    assert str(e.value) == (f"{empty} has no checkpoint to export yet (nor {base.FINAL_WEIGHTS}): its training has "
                            "not written one.")


def test_compile_model_decays_the_learning_rate_along_a_cosine():
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    base.compile_model(model, 0.1, 1.0, 10, alpha=0.05, loss="mse")
    lr = []
    for t in (0, 5, 10):
        model.optimizer.iterations.assign(t)
        lr.append(float(model.optimizer.learning_rate))
    expected = [0.1 * (0.05 + 0.95 * (1 + np.cos(np.pi * t / 10)) / 2) for t in (0, 5, 10)]
    np.testing.assert_allclose(lr, expected, rtol=1e-6)
    assert model.optimizer.clipnorm == 1.0
    # with a warm-up of W steps: a line from 0 up to the rate, then the cosine over the other steps
    base.compile_model(model, 0.1, 1.0, 12, alpha=0.05, warmup_steps=2, loss="mse")
    lr = []
    for t in (0, 1, 2, 7, 12):
        model.optimizer.iterations.assign(t)
        lr.append(float(model.optimizer.learning_rate))
    expected = [0.0, 0.05] + [0.1 * (0.05 + 0.95 * (1 + np.cos(np.pi * (t - 2) / 10)) / 2) for t in (2, 7, 12)]
    np.testing.assert_allclose(lr, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("app", APPS)
def test_export_warms_up_every_signature(app, tmp_path):
    """The export's TF Serving warm-up file holds a request for every signature (a signature's first call
    builds its program: up to 1.7 s for the shipped models' signatures that were not warmed up), and the
    server replays them all when it loads the version (a failing request from the file fails the load)."""
    from rnn_apps.serving import registry, warmup

    fields, kwargs = TINY_RESULTS[app]()
    path = base.TrainResult(fields, app=app).export(str(tmp_path / app), **kwargs)
    requests = warmup.read_warmup(path)
    model = registry.LoadedModel(app, 1, path)
    assert {sig for sig, _ in requests} == set(model.signatures)
    for sig, inputs in requests:
        assert set(inputs) == set(model.signatures[sig].inputs)
    assert model.warm_up() == len(requests)
