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


def test_sentiment_patience_with_keep_last_is_refused(tmp_path):
    """--patience stops on the validation loss of the best epoch; with --keep-last it was silently ignored. It
    was then refused only after the data, the vocabulary and the language model's pre-training, leaving a run
    directory that refused the corrected command as "an earlier run": now before anything is written."""
    run_dir = tmp_path / "run"
    data = _reviews(tmp_path, [0, 1] * 5)
    args = ["train", "sentiment", "--data", data, *SENTIMENT, "--pretrain-epochs", "1", "--keep-last",
            "--run-dir", str(run_dir)]
    r = run(*args, "--patience", "2")
    assert r.exit_code == 1 and r.output.strip().splitlines() == [
        "Error: --patience 2 stops on the validation loss of the best epoch, which this run does not keep "
        "(--keep-last): use --keep-best, or leave out --patience."], r.output
    assert not run_dir.exists()
    r = run(*args)  # the corrected command
    assert r.exit_code == 0, r.output
    assert os.path.exists(run_dir / "final.weights.h5")


def test_check_patience_refuses_patience_with_the_last_epoch_kept():
    """The one check that an app calls before it writes anything, and fit_resumable again."""
    from rnn_apps.training import TrainingError, check_patience

    for keep_best in (None, False):
        with pytest.raises(TrainingError, match="--patience 3 stops on the validation loss of the best epoch"):
            check_patience(3, keep_best)
    for patience, keep_best in ((3, "val_loss"), (3, True), (0, None), (0, False), (3, True)):
        check_patience(patience, keep_best)
    check_patience(3)  # the patience alone


def test_patience_without_validation_data_says_so_before_the_keep_last_refusal(tmp_path):
    """A caption run without validation data keeps no best epoch (keep_best None): --patience was answered
    with "use --keep-best", an option caption has not got, instead of "give a --val-fraction above 0"."""
    from rnn_apps.training import TrainingError, fit_resumable

    with pytest.raises(TrainingError) as e:
        fit_resumable(None, lambda start: None, 1, 1, str(tmp_path / "run"), validation_data=None, patience=3,
                      keep_best=None)
    assert "this run has no validation data" in str(e.value) and "--keep-best" not in str(e.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("ngram_features", ["100", "0"])
def test_sentiment_reviews_of_one_label_are_refused_up_front(tmp_path, ngram_features):
    """Without the n-gram branch, reviews of one label trained a classifier that always answered that label."""
    run_dir = tmp_path / "run"
    data = _reviews(tmp_path, [1] * 6)
    r = run("train", "sentiment", "--data", data, *SENTIMENT, "--ngram-features", ngram_features,
            "--val-fraction", "0", "--run-dir", str(run_dir))
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        f"Error: {data}: its labelled reviews are 6 positive and 0 negative; a classifier needs reviews of both labels "
        "to learn to tell them apart. Add negative (label 0 or neg) reviews."]
    assert not run_dir.exists()  # refused before training


def test_sentiment_split_that_holds_out_a_whole_label_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    r = run("train", "sentiment", "--data", _reviews(tmp_path, [1] + [0] * 9), *SENTIMENT, "--ngram-features", "0",
            "--val-fraction", "0.6", "--run-dir", str(run_dir))
    assert r.exit_code == 1, r.output
    assert ("after the validation split (--val-fraction 0.6) the training reviews are 0 positive and 4 negative"
            in r.output and "Lower --val-fraction" in r.output)
    assert not run_dir.exists()


def test_translate_pairs_with_their_columns_swapped_are_one_line(tmp_path):
    """Chinese<TAB>English trained a translator without a word."""
    data = tmp_path / "pairs.tsv"
    with open(os.path.join(FIXTURES, "pairs.tsv"), encoding="utf-8") as f:
        data.write_text("".join("\t".join(line.rstrip("\n").split("\t")[::-1]) + "\n" for line in f),
                        encoding="utf-8")
    run_dir = tmp_path / "run"
    r = run("train", "translate", "--data", str(data), "--epochs", "1", "--embedding-dim", "8", "--encoder-units", "8",
            "--decoder-units", "8", "--run-dir", str(run_dir))
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {data}: its first column holds Chinese and its second "
                                                   "English in 100% of its 46 rows") and "swap the columns" in lines[0]
    assert not run_dir.exists()


def _poems_with_symbols(tmp_path, usable: int):
    """The fixture's first ``usable`` poems and three that the cleaning leaves out."""
    with open(os.path.join(FIXTURES, "poems.txt"), encoding="utf-8") as f:
        good = f.read().splitlines()[:usable]
    data = tmp_path / "mine.txt"
    data.write_text("\n".join(good + ["床前明□光，疑是地上霜。", "春眠。", "（注）"]) + "\n", encoding="utf-8")
    return str(data)


def test_poetry_says_how_many_poems_it_left_out_and_why(tmp_path):
    """Poems with symbols were dropped without a count."""
    r = run("train", "poetry", "--data", _poems_with_symbols(tmp_path, 10), *TINY_POETRY, "--run-dir",
            str(tmp_path / "run"), "--json")
    assert r.exit_code == 0, r.output
    assert ("Read 13 poems; 3 left out (1 with other symbols such as '□'; 1 shorter than 6 characters with their "
            "punctuation; 1 empty, or nothing but notes and punctuation).") in r.stderr
    stats = json.loads(r.stdout)["stats"]
    assert stats["poems"] == 10 and stats["poems_read"] == 13 and stats["poems_left_out"] == 3
    assert stats["poems_left_out_why"] == {"symbols": 1, "short": 1, "empty": 1}
    with open(tmp_path / "run" / "config.json", encoding="utf-8") as f:
        assert json.load(f)["stats"]["poems_left_out"] == 3


@pytest.mark.parametrize("app", ["poetry", "fill"])
def test_a_corpus_without_a_usable_poem_is_one_line(tmp_path, app):
    run_dir = tmp_path / "run"
    data = _poems_with_symbols(tmp_path, 0)
    r = run("train", app, "--data", data, "--epochs", "1", "--units", "8", "--embedding-dim", "8", "--run-dir",
            str(run_dir))
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        f"Error: {data}: none of its 3 poems is usable (1 with other symbols such as '□'; 1 shorter than 6 characters "
        "with their punctuation; 1 empty, or nothing but notes and punctuation); a poem needs at least 6 Chinese "
        "characters with ，/。 punctuation and no other symbols."]
    assert not run_dir.exists()  # no half run directory left behind


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


def _dir_hashes(path):
    """Every file under ``path`` (the lock file included), by relative path: the sha256 of its bytes."""
    import hashlib

    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _forecast_csv(path, column, n, period):
    rows = [column] + [f"{3 + ((i * 7) % period) / period:.4f}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _other_app_data(tmp_path, app):
    """``(first, second, extra)``: two data files of ``app`` (the second other data) and its tiny settings."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    if app == "poetry":
        poems = os.path.join(FIXTURES, "poems.txt")
        other = tmp_path / "b" / "poems.txt"
        other.write_text("".join(open(poems, encoding="utf-8").readlines()[:20]), encoding="utf-8")
        return poems, str(other), TINY_POETRY
    if app == "sentiment":  # with the language-model stage, which keeps its own checkpoints in run_dir/lm
        return (_reviews(tmp_path / "a", [0, 1] * 8), _reviews(tmp_path / "b", [1, 0, 0] * 6),
                [*SENTIMENT, "--pretrain-epochs", "1"])
    return (_forecast_csv(tmp_path / "a" / "f_good.csv", "mw", 120, 12),
            _forecast_csv(tmp_path / "b" / "f_many.csv", "mw2", 150, 10),
            ["--epochs", "1", "--units", "4", "--batch-size", "16", "--horizon", "3", "--window", "8"])


@pytest.mark.parametrize("app", ["poetry", "sentiment", "forecast"])
def test_a_new_run_refused_for_an_earlier_runs_checkpoints_leaves_that_run_as_it_was(tmp_path, app):
    """The refusal came only when the model was fitted: the earlier run's vocabulary and config had been rewritten
    for the new data (its old weights then exported with the new vocabulary, its --resume refused as "trained on"
    the refused data)."""
    first, second, extra = _other_app_data(tmp_path, app)
    run_dir = str(tmp_path / "run")
    if app == "forecast":
        command = lambda data, column, *more: run("forecast", "--data", data, "--column", column,  # noqa: E731
                                                   "--run-dir", run_dir, *extra, *more)
        r = command(first, "mw")
    else:
        command = lambda data, *more: run("train", app, "--data", data, "--run-dir", run_dir, *extra, *more)  # noqa: E731
        r = command(first)
    assert r.exit_code == 0, r.output
    before = _dir_hashes(run_dir)
    assert "config.json" in before and any(p.startswith("checkpoints") for p in before)

    r = command(second, "mw2") if app == "forecast" else command(second)
    assert r.exit_code == 1, r.output
    assert r.stderr.splitlines()[-1] == (f"Error: {run_dir} already holds checkpoints of an earlier run. Pass --resume "
                                         "to continue it, or choose another --run-dir.")
    assert _dir_hashes(run_dir) == before  # config, vocabulary, checkpoints and lock: byte for byte
    # a --resume refused (other data, or less pre-training than done) leaves it likewise, its lock included
    refused, message = {"poetry": ((second,), "was trained on"),
                        "sentiment": ((first, "--pretrain-epochs", "0"), "may grow on --resume, not fall to 0"),
                        "forecast": ((second, "mw2"), "was trained on a series of 120 values; this one has 150")}[app]
    r = command(*refused, "--resume")
    assert r.exit_code == 1 and message in r.stderr, r.output
    assert _dir_hashes(run_dir) == before

    if app == "poetry":  # its files are byte for byte those it had (an export takes long: the others show it)
        return
    models = str(tmp_path / "models")
    if app == "forecast":  # the run resumes on its own data (the series' fingerprint and scale are its own)
        r = command(first, "mw", "--resume", "--export", models)
    else:  # its --resume was refused as "trained on" the data of the refused command
        r = command(first, "--resume", "--export", models)
    assert r.exit_code == 0, r.output
    assert os.path.isdir(os.path.join(models, "1"))


def test_a_new_sentiment_run_is_refused_for_the_language_models_checkpoints(tmp_path):
    """A run stopped during its language-model pre-training has checkpoints in run_dir/lm only."""
    from rnn_apps.apps.sentiment import task
    from rnn_apps.training import TrainingError

    run_dir = fake_run(tmp_path / "run", {"max_tokens": 500}, app="sentiment", data="/elsewhere/reviews.csv")
    with open(os.path.join(run_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({"words": ["good", "bad"]}, f)
    os.makedirs(os.path.join(run_dir, "lm", "checkpoints", "ckpt-000000003"))
    with open(os.path.join(run_dir, "lm", "checkpoints", "latest.json"), "w", encoding="utf-8") as f:
        json.dump({"checkpoint": "ckpt-000000003", "step": 3}, f)
    before = _dir_hashes(run_dir)
    with pytest.raises(TrainingError, match="already holds checkpoints of an earlier run"):
        task.train(_reviews(tmp_path, [0, 1] * 5), run_dir, 1, verbose=0, pretrain_epochs=1)
    assert _dir_hashes(run_dir) == before


def _poem_run_copy(tiny_poem_run, path):
    """A copy of the session's tiny poem run (whose lock this process holds, having trained it)."""
    import shutil

    from rnn_apps import training

    shutil.copytree(tiny_poem_run[0], path, ignore=shutil.ignore_patterns(training.LOCK_FILE))
    return str(path)


def test_export_of_a_run_being_trained_is_refused(tmp_path, tiny_poem_run):
    """It exported silently, or raced the training's checkpoints ("No such file or directory: .../meta.json")."""
    run_dir = _poem_run_copy(tiny_poem_run, tmp_path / "run")
    with open(os.path.join(run_dir, ".lock"), "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # per open file: as another process holds it
        f.write("4242")
        f.flush()
        r = run("export", "poetry", "--run-dir", run_dir, "--export", str(tmp_path / "models"))
    assert r.exit_code == 1, r.output
    assert r.stderr.splitlines() == [f"Error: {run_dir} is being trained (its lock is held by process 4242); export "
                                     "it when the training ends, or stop the training first (--resume continues it "
                                     "later)."]
    assert not (tmp_path / "models").exists()


def test_export_of_a_run_without_a_checkpoint_says_so(tmp_path, tiny_poem_run):
    import shutil

    run_dir = _poem_run_copy(tiny_poem_run, tmp_path / "run")
    shutil.rmtree(os.path.join(run_dir, "checkpoints"))
    os.remove(os.path.join(run_dir, "final.weights.h5"))
    r = run("export", "poetry", "--run-dir", run_dir, "--export", str(tmp_path / "models"))
    assert r.exit_code == 1, r.output
    assert r.stderr.splitlines() == [f"Error: {run_dir} has no checkpoint to export yet (nor final.weights.h5): its "
                                     "training has not written one."]  # was: "No checkpoint to resume from"


def test_export_of_a_run_cut_short_notes_its_step_and_plan(tmp_path):
    """A run killed at step 80 of 138 exported silently, its card showing the epochs of a finished run."""
    import keras

    from rnn_apps.apps.poetry import task

    class Killed(Exception):
        pass

    class KillAtStep3(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            KillAtStep3.seen += 1
            if KillAtStep3.seen == 3:  # after the run's checkpoint of step 3 (its callback comes first)
                raise Killed()

    run_dir = str(tmp_path / "run")
    with pytest.raises(Killed):
        task.train(os.path.join(FIXTURES, "poems.txt"), run_dir, epochs=2, verbose=0, embedding_dim=8, units=8,
                   num_layers=1, tokens_per_batch=256, min_count=1, val_fraction=0.1, seed=3, save_every=1,
                   callbacks=(KillAtStep3(),))
    with open(os.path.join(run_dir, "checkpoints", "latest.json"), encoding="utf-8") as f:
        total = json.load(f)["total_steps"]  # 2 epochs of the fixture's batches
    assert total > 3
    r = run("export", "poetry", "--run-dir", run_dir, "--export", str(tmp_path / "models"), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"exported": str(tmp_path / "models" / "1")}
    assert r.stderr.splitlines() == [f"Note: {run_dir} stopped before the end of its training: exporting its newest "
                                     f"checkpoint, step 3 of the {total} planned (2 epochs). --resume continues the "
                                     "run."]


def _stop_after_run_settings(monkeypatch, app, seen):
    """Replace the app's ``task.train`` by one that stops once it has its run's settings (appended to ``seen``)."""
    import importlib

    from rnn_apps import training
    from rnn_apps.apps.base import RunOptions

    task = importlib.import_module(f"rnn_apps.apps.{app}.task")

    def train(data, run_dir, epochs=1, *, init_from=None, **options):
        run_options, overrides = RunOptions.split(options)
        seen.append(training.run_settings(run_dir, task.DEFAULTS, overrides, run_options.resume, app=app)[0])
        raise training.TrainingError("Stopped by the test.")

    train.__module__ = task.__name__
    monkeypatch.setattr(task, "train", train)


@pytest.mark.parametrize("app, data, started, left_out, given", [
    # fine-tune's --learning-rate 0.0005 was held against a run started at 0.002 ("Leave them out to resume")
    ("poetry", os.path.join(FIXTURES, "poems.txt"), {"learning_rate": 0.002}, {"learning_rate": 0.0005},
     ["--learning-rate", "0.001"]),
    # likewise fine-tune forecast's --batch-size (the app's default) and --learning-rate
    ("forecast", "series.csv", {"learning_rate": 0.001, "batch_size": 64}, {"learning_rate": 0.003, "batch_size": 32},
     ["--batch-size", "16"]),
])
def test_fine_tune_resume_compares_only_the_options_given(tmp_path, monkeypatch, app, data, started, left_out, given):
    """A fine-tune's defaults apply when a run starts, not when it resumes."""
    import importlib

    if app == "forecast":
        data = str(tmp_path / data)
        with open(data, "w", encoding="utf-8") as f:
            f.write("v\n" + "\n".join(str(i % 7) for i in range(200)) + "\n")
    defaults = importlib.import_module(f"rnn_apps.apps.{app}.task").DEFAULTS
    run_dir = fake_run(tmp_path / "run", {**defaults, **started}, app=app)
    seen = []
    _stop_after_run_settings(monkeypatch, app, seen)
    fine_tune = ["fine-tune", app, "--data", data, "--export", str(tmp_path / "models"), "--resume", "--epochs", "1"]

    r = run(*fine_tune, "--run-dir", run_dir)
    assert r.stderr.splitlines()[-1:] == ["Error: Stopped by the test."], r.output
    assert {k: seen[-1][k] for k in started} == started  # the run's own

    r = run(*fine_tune, "--run-dir", str(tmp_path / "new"))  # --resume of no run yet: a new run, fine-tune's defaults
    assert r.stderr.splitlines()[-1:] == ["Error: Stopped by the test."], r.output
    assert {k: seen[-1][k] for k in left_out} == left_out

    r = run(*fine_tune, "--run-dir", run_dir, *given)  # an option given is still held against the run's
    assert r.exit_code == 1 and len(seen) == 2, r.output
    key = given[0].lstrip("-").replace("-", "_")
    assert f"Error: {run_dir} was started with {key} {started[key]!r}; --resume continues it with its own settings " \
           f"(received {key} {type(started[key])(given[1])!r})." in r.stderr


# --------------------------------------------------------------------- 6. --resume on the same data

def test_resume_on_other_data_is_refused(tmp_path):
    run_dir = fake_run(tmp_path / "run", POETRY_SETTINGS, app="poetry", data="/elsewhere/poems.txt")
    data = os.path.join(FIXTURES, "poems.txt")
    r = run("train", "poetry", "--data", data, "--resume", "--run-dir", run_dir)
    assert r.exit_code == 1, r.output
    assert (f"Error: {run_dir} was trained on /elsewhere/poems.txt; --resume continues it on the same data "
            f"(received {os.path.abspath(data)}).") in r.output


def test_resume_checks_the_corpus_by_its_bytes_not_its_path(tmp_path):
    """--resume checked only the corpus's path: a file edited in place resumed (its steps counted anew, so the run
    seemed finished and trained no more), while the same file moved elsewhere was refused."""
    import shutil

    from rnn_apps import training
    from rnn_apps.apps.base import write_run_config

    data = tmp_path / "poems.txt"
    shutil.copy(os.path.join(FIXTURES, "poems.txt"), data)
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    write_run_config(run_dir, {"settings": POETRY_SETTINGS, "data": str(data)}, app="poetry")
    saved = json.load(open(os.path.join(run_dir, "config.json"), encoding="utf-8"))
    size = os.path.getsize(data)
    assert saved["data_fingerprint"]["bytes"] == size and len(saved["data_fingerprint"]["sha256"]) == 64

    moved = tmp_path / "elsewhere" / "poems.txt"
    moved.parent.mkdir()
    shutil.copy(data, moved)
    training.check_same_data(run_dir, saved, str(moved))  # the same bytes: resumed wherever they lie

    data.write_bytes(b"".join(moved.read_bytes().splitlines(keepends=True)[:10]))  # the first 10 poems
    with pytest.raises(training.TrainingError) as e:  # (a real run refused so: the apps' tests below)
        training.check_same_data(run_dir, saved, str(data))
    assert str(e.value) == (
        f"{run_dir} was trained on {data} as it was then ({size:,} bytes); {data} holds other data now "
        f"({os.path.getsize(data):,} bytes). --resume continues a run on the data it began on: restore that file, "
        "or start a new run in another --run-dir.")
    data.write_bytes(bytes(b ^ 1 if i == 0 else b for i, b in enumerate(moved.read_bytes())))  # same size
    with pytest.raises(training.TrainingError, match=rf"\({size:,} bytes, other contents\)\."):
        training.check_same_data(run_dir, saved, str(data))
    # a resumed run keeps the fingerprint of the data it began on
    write_run_config(run_dir, {"settings": POETRY_SETTINGS, "data": str(moved)}, app="poetry", saved=saved)
    assert json.load(open(os.path.join(run_dir, "config.json")))["data_fingerprint"] == saved["data_fingerprint"]


# ------------------------------------------------------------------ 7. sizes and rates, before the run dir

def _forecast_series():
    from rnn_apps.apps.forecast.data import demo_series

    return demo_series()


@pytest.mark.parametrize("app, data, settings, message", [
    ("poetry", lambda tmp: os.path.join(FIXTURES, "poems.txt"), {"units": 0},
     "`units` must be a positive integer; received 0."),
    ("poetry", lambda tmp: os.path.join(FIXTURES, "poems.txt"), {"dropout": 1.5},
     "`dropout` must be a float in [0, 1); received 1.5."),
    ("fill", lambda tmp: os.path.join(FIXTURES, "poems.txt"), {"mask_rate": float("nan")},
     "`mask_rate` must be a float in [0, 1); received nan."),
    ("fill", lambda tmp: os.path.join(FIXTURES, "poems.txt"), {"tokens_per_batch": 0},
     "`tokens_per_batch` must be a positive integer; received 0."),
    ("translate", lambda tmp: os.path.join(FIXTURES, "pairs.tsv"), {"batch_size": 0},
     "`batch_size` must be a positive integer; received 0."),
    ("translate", lambda tmp: os.path.join(FIXTURES, "pairs.tsv"), {"encoder_layers": 0},
     "`encoder_layers` must be a positive integer; received 0."),
    ("sentiment", lambda tmp: _reviews(tmp, [0, 1] * 5), {"max_len": 0},
     "`max_len` must be a positive integer; received 0."),
    ("sentiment", lambda tmp: _reviews(tmp, [0, 1] * 5), {"batch_size": 0},
     "`batch_size` must be a positive integer; received 0."),
    ("caption", lambda tmp: None, {"synthetic": True, "units": 2.5},
     "`units` must be a positive integer; received 2.5 of type float."),
    ("forecast", lambda tmp: _forecast_series(), {"window": 0},
     "`window` must be a positive integer; received 0."),
])
def test_the_libraries_refuse_sizes_and_rates_before_the_run_dir(tmp_path, app, data, settings, message):
    """task.train wrote config.json (and a vocabulary), then failed inside Keras or the batcher (a
    ZeroDivisionError for a batch of 0), or trained with a batch of 1 or reviews cut to no word."""
    import importlib

    task = importlib.import_module(f"rnn_apps.apps.{app}.task")
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError) as e:
        task.train(data(tmp_path), str(run_dir), 1, verbose=0, **settings)
    assert str(e.value) == message
    assert not run_dir.exists()


def test_check_settings_ranges():
    import numpy as np

    from rnn_apps.checks import check_settings

    check_settings({"units": np.int64(3), "dropout": 0.0, "mask_rate": 0.99, "batch_size": None, "seed": 0,
                    "max_steps": 0, "patience": 0})
    for bad, message in [({"num_layers": True}, "`num_layers` must be a positive integer; received True of type bool."),
                         ({"embedding_dim": -1}, "`embedding_dim` must be a positive integer; received -1."),
                         ({"dropout": 1}, "`dropout` must be a float in [0, 1); received 1."),
                         ({"word_dropout": -0.1}, "`word_dropout` must be a float in [0, 1); received -0.1."),
                         ({"dropout": "a lot"}, "`dropout` must be a float in [0, 1); received 'a lot'.")]:
        with pytest.raises(ValueError) as e:
            check_settings(bad)
        assert str(e.value) == message
