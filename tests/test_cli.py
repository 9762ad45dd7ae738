"""The rnn-apps command line over a tiny exported poem model."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps import __version__
from rnn_apps.cli import cli


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_help_and_version(runner):
    r = runner.invoke(cli, ["--help"])
    assert r.exit_code == 0
    for cmd in ("generate-poem", "train", "fine-tune", "evaluate", "export", "serve"):
        assert cmd in r.output
    assert runner.invoke(cli, ["--version"]).output.strip().endswith(__version__)
    for sub in (["generate-poem"], ["train", "poetry"], ["fine-tune", "poetry"], ["evaluate", "poetry"], ["serve"]):
        r = runner.invoke(cli, [*sub, "--help"])
        assert r.exit_code == 0 and "Example" in r.output, sub


def test_generate_poem_json(runner, tiny_poem_model):
    r = runner.invoke(cli, ["generate-poem", "--model", tiny_poem_model, "--form", "wujue", "-n", "3", "--seed", "1",
                            "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 3 and all(len(x["text"]) == 24 and len(x["lines"]) == 4 for x in rows)
    again = json.loads(runner.invoke(cli, ["generate-poem", "--model", tiny_poem_model, "--form", "wujue", "-n", "3",
                                           "--seed", "1", "--json"]).output)
    assert [x["text"] for x in again] == [x["text"] for x in rows]


def test_generate_poem_text_and_traditional(runner, tiny_poem_model):
    r = runner.invoke(cli, ["generate-poem", "--model", tiny_poem_model, "--acrostic", "明月", "--form", "qijue",
                            "--seed", "2"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 4 and lines[0][0] == "明" and lines[1][0] == "月"
    r = runner.invoke(cli, ["generate-poem", "--model", tiny_poem_model, "--start", "风", "--seed", "2",
                            "--script", "traditional", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)[0]["text"].startswith("風")


def test_a_start_in_traditional_characters_gives_a_traditional_poem(runner, tiny_poem_model):
    """A start of 東風 came back as 东风 (the model's script) unless --script traditional was given."""
    from rnn_apps.chinese import convert_script, written_script

    assert [written_script(t) for t in ("東風", "东风", "春眠", "乾坤", "東风", "spring", "樓台", "長干行")] == [
        "traditional", "simplified", None, None, None, None, "traditional", "traditional"]  # 台 干: both scripts
    poem = lambda *args: json.loads(runner.invoke(cli, ["generate-poem", "--model", tiny_poem_model, "--seed", "2",
                                                       "--json", *args]).output)[0]
    mine = poem("--start", "東風")
    assert mine["text"].startswith("東風") and mine["start"] == "東風"
    models = poem("--start", "東風", "--script", "simplified")
    assert models["text"].startswith("东风") and convert_script(models["text"], "simplified") == models["text"]
    assert convert_script(mine["text"], "simplified") == models["text"] != mine["text"]  # the same poem
    assert poem("--start", "东风")["text"].startswith("东风")
    assert poem("--acrostic", "風雪", "--form", "wujue")["lines"][0].startswith("風")


def test_unknown_characters_give_a_clear_message(runner, tiny_poem_model):
    r = runner.invoke(cli, ["generate-poem", "--model", tiny_poem_model, "--start", "春ZZ"])
    assert r.exit_code == 1
    assert "does not know: Z" in r.output and "Traceback" not in r.output


def test_missing_model_and_corpus_errors(runner, tmp_path):
    r = runner.invoke(cli, ["generate-poem", "--model", str(tmp_path)])
    assert r.exit_code == 1 and "No SavedModel" in r.output
    r = runner.invoke(cli, ["evaluate", "poetry", "--data", str(tmp_path / "nope.txt"), "--model", str(tmp_path)])
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_evaluate_json(runner, tiny_poem_model, poems_file):
    r = runner.invoke(cli, ["evaluate", "poetry", "--data", poems_file, "--model", tiny_poem_model, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert 0 < out["bits_per_char"] < 20 and out["poems"] == 30
    assert out["unknown_characters"] > 0  # the validation poems hold characters the tiny vocabulary lacks


def test_fine_tune_grows_the_vocabulary(runner, tiny_poem_model, tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("鲲鹏展翅九万里，翻动扶摇羊角。\n\n鲲鹏击水三千里，扶摇直上九万里。\n" * 3, encoding="utf-8")
    out_dir = tmp_path / "ft"
    r = runner.invoke(cli, ["fine-tune", "poetry", "--data", str(mine), "--model", tiny_poem_model, "--out", str(out_dir),
                            "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--seed", "1", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    from rnn_apps.apps.poetry.export import load_weights_from_export

    old = load_weights_from_export(tiny_poem_model)
    new = load_weights_from_export(res["exported"])
    assert new["vocab"].tokens[: len(old["vocab"])] == old["vocab"].tokens  # old ids kept
    added = new["vocab"].tokens[len(old["vocab"]):]
    assert "鲲" in added and "鹏" in added
    assert new["weights"][0].shape[0] == len(new["vocab"]) > old["weights"][0].shape[0]
    # the new characters can start a poem now
    r = runner.invoke(cli, ["generate-poem", "--model", res["exported"], "--start", "鲲鹏", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["text"].startswith("鲲鹏")


def test_fine_tuning_resumed_before_its_first_checkpoint_starts_from_its_base(tiny_poem_model, tmp_path):
    """A fine-tuning run stopped before any checkpoint (its checkpoints removed here) starts again from the base's
    weights, not from fresh ones."""
    import shutil

    import keras

    from rnn_apps.apps.poetry import task
    from rnn_apps.apps.poetry.export import load_weights_from_export

    class StartWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = [w.numpy().copy() for w in self.model.weights]

    mine = tmp_path / "mine.txt"
    mine.write_text("鲲鹏展翅九万里，翻动扶摇羊角。\n\n鲲鹏击水三千里，扶摇直上九万里。\n" * 3, encoding="utf-8")
    run = tmp_path / "run"
    task.train(str(mine), str(run), epochs=1, init_from=tiny_poem_model, verbose=0)
    shutil.rmtree(run / "checkpoints")
    start = StartWeights()
    task.train(str(mine), str(run), epochs=1, resume=True, verbose=0, callbacks=[start])
    base = load_weights_from_export(tiny_poem_model)["weights"]
    assert len(start.weights) == len(base)
    for now, was in zip(start.weights, base):  # the base's rows (the grown embedding's leading ones)
        np.testing.assert_array_equal(now[tuple(slice(0, n) for n in was.shape)], was)


def test_fine_tune_takes_save_every_tensorboard_and_patience_as_train_does(runner, tiny_poem_model, tmp_path,
                                                                           monkeypatch):
    """fine-tune poetry's --save-every, --tensorboard and --patience reach the run as train poetry's do: checkpoints
    every N steps, TensorBoard logs, a stop on the validation loss recorded in the run."""
    from rnn_apps import training

    seen = {}
    fit = training.fit_resumable

    def recording_fit(*args, **kwargs):
        seen.update(kwargs)
        return fit(*args, **{**kwargs, "tensorboard": False})  # TensorBoard itself need not be installed

    monkeypatch.setattr(training, "fit_resumable", recording_fit)
    monkeypatch.setattr(training, "check_tensorboard", lambda: None)  # installed or not
    mine = tmp_path / "mine.txt"
    mine.write_text("鲲鹏展翅九万里，翻动扶摇羊角。\n\n鲲鹏击水三千里，扶摇直上九万里。\n" * 3, encoding="utf-8")
    run = tmp_path / "run"
    r = runner.invoke(cli, ["fine-tune", "poetry", "--data", str(mine), "--model", tiny_poem_model, "--export",
                            str(tmp_path / "ft"), "--run-dir", str(run), "--epochs", "1", "--val-fraction", "0.3",
                            "--save-every", "3", "--tensorboard", "--patience", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert (seen["save_every"], seen["tensorboard"], seen["keep_best"], seen["patience"]) == (3, True, "val_loss", 1)
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["settings"]["patience"] == 1
    assert {"best_epoch", "stopped_early"} <= set(json.loads(r.stdout))


def test_tensorboard_without_its_package_is_a_usage_error_before_the_run(runner, tmp_path, monkeypatch):
    """--tensorboard without the tensorboard package: one line naming the package, before the run directory
    is written (Keras's callback failed with a traceback after the first epoch)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    mine = tmp_path / "mine.txt"
    mine.write_text("鲲鹏展翅九万里，翻动扶摇羊角。\n", encoding="utf-8")
    r = runner.invoke(cli, ["train", "poetry", "--data", str(mine), "--run-dir", str(tmp_path / "run"),
                            "--tensorboard"])
    assert r.exit_code == 2 and "need the tensorboard package" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


def test_xla_cache_flag_is_set_before_tensorflow_and_respects_the_user(tmp_path, monkeypatch):
    from rnn_apps.quiet import enable_xla_cache

    monkeypatch.setenv("RNN_APPS_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    enable_xla_cache()
    flags = os.environ["TF_XLA_FLAGS"]
    assert flags.startswith("--tf_xla_auto_jit=0 ")  # the user's flags are kept
    assert f"--tf_xla_persistent_cache_directory={tmp_path / 'c' / 'xla'}" in flags
    assert (tmp_path / "c" / "xla").is_dir()
    enable_xla_cache()  # idempotent: a cache already named is left alone
    assert os.environ["TF_XLA_FLAGS"] == flags
    monkeypatch.setenv("RNN_APPS_CACHE", "off")
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    enable_xla_cache()
    assert os.environ["TF_XLA_FLAGS"] == ""


def test_error_reporting_imports_nothing_and_lists_real_error_classes():
    """A one-line error needs no app (nor TensorFlow) imported; every listed class exists and is an Exception."""
    import subprocess
    import sys

    code = ("import sys\nfrom rnn_apps.errors import known_error_types\nfrom rnn_apps.apps.poetry.generate import PoemError\n"
            "t = known_error_types()\nassert PoemError in t and FileNotFoundError in t, t\n"
            "assert 'tensorflow' not in sys.modules and 'rnn_apps.apps.caption.images' not in sys.modules\nprint(len(t))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "3"
    from rnn_apps import errors

    classes = errors.all_error_types()
    assert len(classes) == len(errors._KNOWN) and all(issubclass(c, Exception) for c in classes)
    assert set(classes) <= set(errors.known_error_types())  # all imported now


def test_cell_choices_are_the_registered_cells():
    from rnn_apps.cells import CELLS
    from rnn_apps.cli.options import CELL_NAMES

    assert sorted(CELL_NAMES) == sorted(CELLS)


def test_old_export_spellings_still_work_but_are_not_shown(runner):
    r = runner.invoke(cli, ["fine-tune", "poetry", "--help"])
    assert r.exit_code == 0 and "--export" in r.output and "--out" not in r.output
    r = runner.invoke(cli, ["export", "poetry", "--help"])
    assert r.exit_code == 0 and "--export" in r.output and "--models" not in r.output
    r = runner.invoke(cli, ["export", "poetry", "--run-dir", "r", "--export", "a", "--models", "b"])
    assert r.exit_code == 2 and "not both" in r.output


def test_every_help_is_instant_and_has_examples():
    """Every command's --help renders without importing TensorFlow or Keras, and shows examples."""
    import subprocess
    import sys

    code = (
        "import sys, click\nfrom click.testing import CliRunner\nfrom rnn_apps.cli import cli\n"
        "def walk(cmd, path):\n"
        "    if isinstance(cmd, click.Group):\n"
        "        ctx = click.Context(cmd)\n"
        "        for name in cmd.list_commands(ctx):\n"
        "            yield from walk(cmd.get_command(ctx, name), path + [name])\n"
        "    else:\n"
        "        yield path\n"
        "leaves = list(walk(cli, []))\n"
        "for path in leaves:\n"
        "    r = CliRunner().invoke(cli, path + ['--help'])\n"
        "    assert r.exit_code == 0 and 'Example' in r.output, (path, r.output)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print(len(leaves))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.strip()) >= 25


def test_translate_refuses_empty_texts_before_loading_tensorflow():
    """Texts that are all empty are refused before the model and TensorFlow load (seconds), as the server
    refuses them."""
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom rnn_apps.cli import cli\n"
            "r = CliRunner().invoke(cli, ['translate', '', '  ', '--direction', 'zh-en'])\n"
            "assert r.exit_code == 1 and 'None of the 2 texts' in r.output and 'Text 2 is empty' in r.output, r.output\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


def test_export_json_and_the_card_written_with_it(runner, tiny_poem_model, tmp_path):
    app_dir = tmp_path / "poetry"
    r = runner.invoke(cli, ["export", "poetry", "--from-model", tiny_poem_model, "--export", str(app_dir), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"exported": str(app_dir / "1")}
    card = (app_dir / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and 'version: "1"' in card and "## The exported model" in card


def _files(path) -> list:
    return sorted(os.path.relpath(os.path.join(root, f), path) for root, _, fs in os.walk(path) for f in fs)


def test_export_refuses_another_apps_directory_in_one_line(runner, tiny_poem_model, tmp_path):
    """`rnn-apps export sentiment --export models/poetry` wrote a version and the card of the wrong app; an
    export into another app's directory, or beside a README.md that is not its card, is now one line and
    writes nothing."""
    sentiment = tmp_path / "models" / "sentiment"
    (sentiment / "6" / "assets.extra").mkdir(parents=True)
    (sentiment / "6" / "saved_model.pb").write_bytes(b"model")
    (sentiment / "6" / "assets.extra" / "sentiment.json").write_text("{}", encoding="utf-8")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("# My notes\n", encoding="utf-8")
    for target, message in [
        (sentiment, f"Error: {sentiment} holds sentiment models (version 6 has assets.extra/sentiment.json), not "
                    "poetry ones: export the poetry model to a directory of its own (e.g. models/poetry)."),
        (notes, f"Error: {notes / 'README.md'} is not a model card of poetry (its front matter names no rnn_apps "
                "app); the export would replace it with the poetry model's card: export to a directory of its own "
                "(e.g. models/poetry) or move that README.md away."),
    ]:
        before = _files(target)
        r = runner.invoke(cli, ["export", "poetry", "--from-model", tiny_poem_model, "--export", str(target)])
        assert r.exit_code == 1 and r.output.strip().splitlines() == [message], r.output
        assert _files(target) == before
    assert (notes / "README.md").read_text(encoding="utf-8") == "# My notes\n"
    # train --export: refused before the training, not after it (the run directory is not made)
    poems = tmp_path / "poems.txt"
    poems.write_text("床前明月光，疑是地上霜。举头望明月，低头思故乡。\n" * 4, encoding="utf-8")
    r = runner.invoke(cli, ["train", "poetry", "--data", str(poems), "--run-dir", str(tmp_path / "run"),
                            "--export", str(sentiment)])
    assert r.exit_code == 1 and "holds sentiment models" in r.output and not (tmp_path / "run").exists(), r.output


def test_a_summary_prints_nested_records_as_indented_lines(capsys):
    """`fine-tune sentiment` and the other training commands printed their stats as a Python dict repr."""
    from rnn_apps.cli.common import report

    report({"step": 10, "stats": {"reviews": 2, "labels": {"pos": 1, "neg": 1}}, "best_epoch": None,
            "averaged_epochs": [5, 6], "exported": "models/x/1"}, as_json=False)
    assert capsys.readouterr().out == ("step: 10\nstats:\n  reviews: 2\n  labels:\n    pos: 1\n    neg: 1\n"
                                       "best_epoch: none\naveraged_epochs: 5, 6\nexported: models/x/1\n")
