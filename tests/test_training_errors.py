"""Training commands refuse bad input with a one-line error and lose nothing (audit of the training commands)."""

import fcntl
import json
import os

import pytest
from click.testing import CliRunner

from rnn_apps.cli import cli

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY_POETRY = ["--epochs", "1", "--units", "8", "--layers", "1", "--embedding-dim", "8", "--tokens-per-batch", "256",
               "--min-count", "1"]


def run(*args, env=None):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=True, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def fake_run(path, settings, **extra):
    """A run directory holding only a config.json (what the checks read before anything else)."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"settings": settings, **extra}, f)
    return str(path)


FILL_SETTINGS = {"kind": "bidirectional", "mask_rate": 0.15, "embedding_dim": 8, "units": 8}
POETRY_SETTINGS = {"embedding_dim": 8, "units": 8, "num_layers": 1, "cell": "lstm", "tokens_per_batch": 256}


# -------------------------------------------------------------------- 1. another app's run directory

@pytest.mark.parametrize("args", [
    ["train", "poetry", "--data", os.path.join(FIXTURES, "poems.txt"), "--resume"],
    ["train", "poetry", "--data", os.path.join(FIXTURES, "poems.txt")],
    ["export", "poetry", "--export", "unused"],
])
def test_a_fill_run_is_not_a_poetry_run_and_is_kept(tmp_path, args):
    run_dir = fake_run(tmp_path / "fillrun", FILL_SETTINGS)  # written before runs recorded their app
    before = open(os.path.join(run_dir, "config.json")).read()
    r = run(*args, "--run-dir", run_dir)
    assert r.exit_code == 1, r.output
    assert f"Error: {run_dir} is a fill training run, not a poetry one; choose another --run-dir." in r.output
    assert open(os.path.join(run_dir, "config.json")).read() == before
    assert sorted(os.listdir(run_dir)) == ["config.json"]


@pytest.mark.parametrize("args, app", [
    (["train", "fill", "--data", os.path.join(FIXTURES, "poems.txt"), "--resume"], "fill"),
    (["fine-tune", "fill", "--data", os.path.join(FIXTURES, "poems.txt"), "--resume"], "fill"),
    (["export", "fill", "--export", "unused"], "fill"),
    (["train", "caption", "--synthetic", "--resume"], "caption"),
])
def test_a_poetry_run_is_refused_by_other_apps(tmp_path, args, app):
    run_dir = fake_run(tmp_path / "poetryrun", POETRY_SETTINGS, app="poetry")
    r = run(*args, "--run-dir", run_dir)
    assert r.exit_code == 1, r.output
    assert f"is a poetry training run, not a {app} one; choose another --run-dir." in r.output


def test_runs_record_their_app(tmp_path):
    from rnn_apps.apps.base import read_run_config, write_run_config

    write_run_config(str(tmp_path), {"settings": {}}, app="poetry")
    assert read_run_config(str(tmp_path), expect="poetry")["app"] == "poetry"
    from rnn_apps.training import TrainingError

    with pytest.raises(TrainingError, match="is a poetry training run, not a fill one"):
        read_run_config(str(tmp_path), expect="fill")


def test_forecast_words_another_apps_run_as_the_others(tmp_path):
    series = tmp_path / "s.csv"
    series.write_text("v\n" + "\n".join(str(i % 7) for i in range(80)) + "\n")
    run_dir = fake_run(tmp_path / "poetryrun", POETRY_SETTINGS)
    r = run("forecast", "--data", str(series), "--run-dir", run_dir, "--resume", "--epochs", "1")
    assert r.exit_code == 1, r.output
    assert "is a poetry training run, not a forecast one" in r.output
    assert "None values" not in r.output


# ------------------------------------------------------------------------------------ 2. TF_CONFIG

@pytest.mark.parametrize("value, words", [("", "not valid JSON"), ("{garbage", "not valid JSON"),
                                          ('{"task": {}}', 'with a "cluster"'), ("[1]", 'with a "cluster"')])
def test_bad_tf_config_is_one_line(value, words):
    from rnn_apps.training import TrainingError, get_strategy

    os.environ["TF_CONFIG"] = value
    try:
        with pytest.raises(TrainingError, match=words):
            get_strategy("multi-worker")
    finally:
        del os.environ["TF_CONFIG"]


# ------------------------------------------------------------------------------- 3. nothing to train on

def test_poetry_with_no_training_poems_is_refused_before_the_run_dir(tmp_path):
    data = tmp_path / "three.txt"
    data.write_text("".join(open(os.path.join(FIXTURES, "poems.txt"), encoding="utf-8").readlines()[:3]),
                    encoding="utf-8")
    run_dir = tmp_path / "run"
    r = run("train", "poetry", "--data", str(data), *TINY_POETRY, "--val-fraction", "0.99", "--run-dir", str(run_dir))
    assert r.exit_code == 1, r.output
    assert "no poems left for training" in r.output
    assert not run_dir.exists()


def _reviews(tmp_path, labels):
    path = tmp_path / "reviews.csv"
    rows = ["text,label"] + [f'"a {"good" if y else "bad"} film number {i} with some words",{y}'
                             for i, y in enumerate(labels)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


SENTIMENT = ["--epochs", "1", "--units", "8", "--embedding-dim", "8", "--max-tokens", "500", "--max-len", "20",
             "--batch-size", "8", "--ngram-features", "100"]


def test_sentiment_with_no_training_reviews(tmp_path):
    run_dir = tmp_path / "run"
    r = run("train", "sentiment", "--data", _reviews(tmp_path, [0, 1] * 5), *SENTIMENT, "--val-fraction", "0.99",
            "--run-dir", str(run_dir))
    assert r.exit_code == 1, r.output
    assert "no reviews left for training" in r.output
    assert not run_dir.exists()


def test_sentiment_ngram_branch_needs_both_labels_up_front(tmp_path):
    run_dir = tmp_path / "run"
    r = run("train", "sentiment", "--data", _reviews(tmp_path, [1] * 6), *SENTIMENT, "--val-fraction", "0",
            "--run-dir", str(run_dir))
    assert r.exit_code == 1, r.output
    assert "--ngram-features 0" in r.output
    assert not run_dir.exists()  # refused before training


# ------------------------------------------------------------------------------- 4. nothing to evaluate

def test_evaluate_poetry_with_no_poems_in_the_split(tmp_path, tiny_poem_model):
    data = tmp_path / "one.txt"
    data.write_text(open(os.path.join(FIXTURES, "poems.txt"), encoding="utf-8").readline(), encoding="utf-8")
    r = run("evaluate", "poetry", "--data", str(data), "--model", tiny_poem_model, "--split", "val", "--json")
    assert r.exit_code == 1, r.output
    assert f"No poems to evaluate in {data} (split val)." in r.output


# ------------------------------------------------------------------------- 5. one training per run dir

def test_a_run_dir_in_use_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("4242")
        f.flush()
        # the lock is per open file: held here, another open (as another process makes) is refused
        from rnn_apps import training

        with pytest.raises(training.TrainingError, match=r"is in use by another training run \(pid 4242\)"):
            training.run_settings(str(run_dir), {"a": 1}, {}, False)
    assert not (run_dir / "config.json").exists()


# --------------------------------------------------------------------- 6. --resume on the same data

def test_resume_on_other_data_is_refused(tmp_path):
    run_dir = fake_run(tmp_path / "run", POETRY_SETTINGS, app="poetry", data="/elsewhere/poems.txt")
    data = os.path.join(FIXTURES, "poems.txt")
    r = run("train", "poetry", "--data", data, "--resume", "--run-dir", run_dir)
    assert r.exit_code == 1, r.output
    assert (f"Error: {run_dir} was trained on /elsewhere/poems.txt; --resume continues it on the same data "
            f"(received {os.path.abspath(data)}).") in r.output
