"""One-line errors, not tracebacks, for bad command-line input: damaged models, bad ranges, busy ports."""

import math
import os
import socket

import pytest
from click.testing import CliRunner

from rnn_apps.cli import cli


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    # click's own errors exit 2 and ClickExceptions 1; neither may come with a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("value, words", [("nan", "not a finite number"), ("0", "range"), ("-1", "range"),
                                          ("inf", "range")])
def test_forecast_learning_rate_must_be_positive_and_finite(value, words):
    r = run("forecast", "--learning-rate", value)
    assert r.exit_code == 2 and words in r.output


def test_finite_float_range_type():
    from rnn_apps.cli.common import FiniteFloatRange

    t = FiniteFloatRange(0, 10, min_open=True)
    assert t.convert("2.5", None, None) == 2.5
    for bad in ("nan", "-nan", "0"):
        with pytest.raises(Exception) as e:
            t.convert(bad, None, None)
        assert "finite" in str(e.value) or "range" in str(e.value)
    assert not math.isnan(t.convert("1e-9", None, None))


def test_sentiment_batch_size_must_be_positive():
    from rnn_apps.apps.sentiment.classify import SentimentError, check_batch_size

    for bad in (0, -1, 1.5, True):
        with pytest.raises(SentimentError, match="batch_size"):
            check_batch_size(bad)
    check_batch_size(1)


def damaged_copy(tmp_path, app):
    """The shipped model's settings (assets.extra) with a truncated saved_model.pb (an export cut short)."""
    import shutil

    from rnn_apps.export import latest_version_dir
    from rnn_apps.paths import models_root

    src = latest_version_dir(os.path.join(models_root(), app))
    if src is None:
        pytest.skip(f"no shipped {app} model")
    d = tmp_path / app / "1"
    shutil.copytree(os.path.join(src, "assets.extra"), d / "assets.extra")
    os.makedirs(d / "variables")
    with open(os.path.join(src, "saved_model.pb"), "rb") as f:
        (d / "saved_model.pb").write_bytes(f.read(4000))
    return str(d)


@pytest.mark.parametrize("app, command", [("sentiment", ["classify", "a good film"]),
                                          ("translate", ["translate", "hello"]),
                                          ("fill", ["fill-poem", "床前□月光"])])
def test_damaged_model_is_one_line(tmp_path, app, command):
    pytest.importorskip("tensorflow")
    r = run(*command, "--model", damaged_copy(tmp_path, app))
    assert r.exit_code == 1 and "Could not load the model" in r.output and "--model" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_serve_port_range_and_busy_port(tmp_path):
    r = run("serve", "--models", str(tmp_path), "--port", "99999")
    assert r.exit_code == 2 and "99999" in r.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run("serve", "--models", str(tmp_path), "--port", str(s.getsockname()[1]))
    assert r.exit_code == 1 and "in use" in r.output
    r = run("serve", "--models", str(tmp_path), "--host", "no-such-host.invalid", "--port", "0")
    assert r.exit_code == 1 and "cannot listen on no-such-host.invalid" in r.output


def test_commands_share_the_server_limits():
    from rnn_apps import limits
    from rnn_apps.apps.fill.data import FillError, parse_text
    from rnn_apps.apps.sentiment.classify import SentimentClassifier, SentimentError

    fill = limits.APPS["fill"]
    assert parse_text("月" + "□" * fill.max_blanks["text"][1]).count("□") == 64
    with pytest.raises(FillError, match="65 blanks; at most 64"):
        parse_text("月" + "□" * 65)
    with pytest.raises(FillError, match="at most 512"):
        parse_text("月" * 512 + "□")
    clf = SentimentClassifier.__new__(SentimentClassifier)  # the input checks need no model
    with pytest.raises(SentimentError, match="at most 2,000,000"):
        clf._check(["good " * 400001])
    with pytest.raises(limits.LimitError, match="at most 2,000,000"):
        limits.check_text(limits.APPS["sentiment"], "text", "good " * 400001)


@pytest.mark.parametrize("args, words", [
    (["--seed", "99999999999999999999999"], "--seed"),
    (["--temperature", "nan"], "temperature must be in [0, 10] (0 is greedy); received nan."),
    (["--temperature", "-1"], "temperature must be in [0, 10] (0 is greedy); received -1.0."),
    (["--top-p", "0"], "top_p must be in (0, 1] (1 is off); received 0.0."),
    (["--top-p", "nan"], "top_p must be in (0, 1] (1 is off); received nan.")])
def test_generate_poem_sampling_values(args, words):
    r = run("generate-poem", *args)
    assert r.exit_code == 2 and words in r.output
