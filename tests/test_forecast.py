"""The forecasting app: CSV reading and its errors, windowing and the split, baselines, training, export, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from rnn_apps.apps.forecast import data as fdata
from rnn_apps.apps.forecast import metrics as fm
from rnn_apps.cli import cli

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TINY = dict(units=16, batch_size=16, learning_rate=1e-2)


def _write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def _front(card: str) -> dict:
    import yaml

    return yaml.safe_load(card.split("\n---\n", 1)[0][4:])


def _sine(n=400, period=20):
    return np.sin(2 * np.pi * np.arange(n) / period)


def _sine_csv(path, n=240, period=12):
    rows = ["t,v,other"] + [f"2024-03-{1 + i // 24:02d}T{i % 24:02d}:00,{np.sin(2 * np.pi * i / period) + 3:.6f},x"
                            for i in range(n)]
    return _write(path, "\n".join(rows) + "\n")


# ------------------------------------------------------------------------------------------------ CSV


def test_read_csv_column_time_column_bom_and_blank_lines(tmp_path):
    p = _write(tmp_path / "s.csv", "\ufeffdate, sales ,note\n2024-01-01,1.5,a\n\n2024-01-02, 2 ,b\n2024-01-03,-3e1,c\n")
    s = fdata.read_csv(p, "sales", "date")
    assert s.name == "sales" and s.values.dtype == np.float64
    assert s.values.tolist() == [1.5, 2.0, -30.0]
    assert s.timestamps == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert fdata.future_labels(s.timestamps, 2) == ["2024-01-04", "2024-01-05"]
    one = fdata.read_csv(_write(tmp_path / "one.csv", "y\n1\n2\n"))  # the only column is the default
    assert one.values.tolist() == [1.0, 2.0] and one.timestamps is None


def test_future_labels_only_for_regular_spacing():
    assert fdata.future_labels(["2024-01-01T00:00", "2024-01-01T01:00"], 2) == ["2024-01-01T02:00", "2024-01-01T03:00"]
    assert fdata.future_labels(["1", "3", "5"], 2) == ["7", "9"]
    assert fdata.future_labels(["1", "2", "4"], 2) is None
    assert fdata.future_labels(["mon", "tue"], 2) is None
    assert fdata.future_labels([f"{i / 10:.1f}" for i in range(200)], 2) == ["20.0", "20.1"]  # 0.1 in floats
    assert fdata.future_labels(["0.25", "0.5", "0.75"], 1) == ["1.00"]


def test_a_gzipped_csv_is_named_as_such(tmp_path):
    import gzip

    p = tmp_path / "daily.csv.gz"
    p.write_bytes(gzip.compress(b"t,v\n1,2\n2,3\n"))
    with pytest.raises(fdata.ForecastDataError, match="is gzip-compressed; decompress it first"):
        fdata.read_csv(str(p), "v", "t")


def test_too_short_for_the_default_window_names_what_to_change():
    """No --window given: the message named "window 1" (the default shrunk to nothing) and not --val-fraction."""
    from rnn_apps.apps.forecast import task

    series = fdata.Series(np.arange(200, dtype=float), "v", None, source="test")
    with pytest.raises(fdata.ForecastDataError) as e:
        task.resolve_settings(series, {**task.DEFAULTS, "horizon": 7, "val_fraction": 0.99})
    assert "window 1" not in str(e.value) and "--val-fraction" in str(e.value) and "198" in str(e.value)
    with pytest.raises(fdata.ForecastDataError, match="too few for window 160 \\+ horizon 7.*--val-fraction"):
        task.resolve_settings(series, {**task.DEFAULTS, "horizon": 7, "window": 160})


def test_future_labels_of_months_quarters_and_month_ends():
    assert fdata.future_labels(["2023-11-01", "2023-12-01", "2024-01-01"], 2) == ["2024-02-01", "2024-03-01"]
    assert fdata.future_labels(["2024-01-31", "2024-02-29", "2024-03-31"], 2) == ["2024-04-30", "2024-05-31"]
    assert fdata.future_labels(["2023-10", "2023-11", "2023-12"], 2) == ["2024-01", "2024-02"]
    assert fdata.future_labels(["2023-01-15", "2023-04-15", "2023-07-15"], 1) == ["2023-10-15"]
    assert fdata.future_labels(["2023-01-15", "2023-02-15", "2023-04-15"], 1) is None  # a month missing
    assert fdata.future_labels(["2023-01-30", "2023-02-28", "2023-03-30"], 1) is None  # neither one day nor ends


def test_a_time_column_with_gaps_gets_a_note():
    days = [f"2024-01-{d:02d}" for d in (1, 2, 3, 4, 7, 8, 9)]
    note = fdata.irregular_times_note(days)
    assert "2024-01-04 to 2024-01-07" in note and "1 day" in note
    assert fdata.irregular_times_note([f"2024-01-{d:02d}" for d in range(1, 9)]) is None
    assert fdata.irregular_times_note(["2023-11-01", "2023-12-01", "2024-01-01"]) is None  # months are regular


@pytest.mark.parametrize("content, column, time_column, expected", [
    ("a,b\n1,2\n", "c", None, "has no column 'c'; its columns are 'a', 'b'"),
    ("a,b\n1,2\n", "a", "when", "has no time column 'when'"),
    ("a,b\n1,2\n", None, None, "several columns"),
    ("date,units,price\n2024-01-01,1,2\n", None, None, "choose one with --column (and --time-column date for the "
                                                     "dates)."),
    ("date\tunits\n2024-01-01\t5\n", "units", "date", "its columns are 'date\\tunits' (the file looks separated "
                                                     "by tabs: save it as CSV, with commas between the cells)."),
    ("date;units\n2024-01-01;5\n", "units", None, "(the file looks separated by semicolons"),
    ("t,v\n1,2\n2,abc\n", "v", None, "line 3: column 'v' holds 'abc', not a number"),
    ("t,v\n1,2\n2,\n", "v", None, "line 3: column 'v' is empty"),
    ("t,v\n1,2\n2,nan\n", "v", None, "line 3: column 'v' holds 'nan', not a finite number"),
    ("t,v\n1,2\n2,3\n3,-inf\n", "v", None, "line 4: column 'v' holds '-inf', not a finite number"),
    ("t,v\n1,2\n2\n", "v", None, "line 3: the row has 1 cells; column 'v' is missing"),
    ("", "v", None, "is empty"),
    ("\n \n", "v", None, "is empty"),
    (",,\n,\n", "v", None, "has no header row"),
    ("t,v\n", "v", None, "header row but no data rows"),
    ("t,v\n2,1\n1,2\n", "v", "t", "not increasing at data row 2"),
    ("t,v\n01/12/2024,1\n01/11/2024,2\n", "v", "t", "line 2: the time column 't' holds '01/12/2024', not an ISO"),
    ("t,v\n2024-01-01,1\n2024-13-01,2\n", "v", "t", "line 3: the time column 't' holds '2024-13-01', not an ISO "
                                                    "date or time like the rows before it"),
    ("t,v\n2024-01-01,1\n\n,2\n", "v", "t", "line 4: the time column 't' is empty"),
    ("t,v\n1,1\n2024-01-02,2\n", "v", "t", "line 3: the time column 't' holds '2024-01-02', not a number like"),
    ("t,v\n1,1_000\n", "v", None, "line 2: column 'v' holds '1_000', not a number"),
    ("t,v\n1,2\n2,1e300\n", "v", None, "line 3: column 'v' holds '1e300', beyond ±1e+30"),
    ("t,v\n1,2\n2,-2e31\n", "v", None, "line 3: column 'v' holds '-2e31', beyond ±1e+30"),
    ("t,v\n1,2\n2,1,234\n", "v", None, "line 3: the row has 3 cells but the header has 2; write numbers without "
                                         "a thousands separator"),
    ("t,v\n1,2\n2,1,note\n", "v", None, "line 3: the row has 3 cells but the header has 2 (extra: 'note'); "
                                          "remove the extra cells"),
    ("v,v\n1,2\n", "v", None, "has 2 columns named 'v'"),
    ("t,v,t\n1,2,3\n", "v", "t", "has 2 columns named 't'"),
])
def test_read_csv_errors_name_the_problem(tmp_path, content, column, time_column, expected):
    p = _write(tmp_path / "bad.csv", content)
    with pytest.raises(fdata.ForecastDataError) as e:
        fdata.read_csv(p, column, time_column)
    assert expected in str(e.value)


def test_read_csv_is_strict_and_names_the_line(tmp_path):
    """The reader was csv's lenient one over str.splitlines(): a stray quote merged the rows after it silently
    into one value, a cell over the csv module's limit was a _csv.Error traceback, and a form feed or U+2028
    inside a cell ended its line."""
    for content, expected in (
        # a stray quote read the rows after it as one value ("34\n35\n...": 3.4e11)
        ("v\n1\n2\n\"34\n35\n36\n", "line 4: not valid CSV (a quote opened in this row is never closed)."),
        ("v\n1\n\"2\"x\n3\n", "line 3: not valid CSV (text follows a closing quote; a quote inside a quoted text "
                              'is written twice: "He said ""wow"".").'),
        ("v\n1\n\"" + "1" * 140_000 + "\"\n", "line 3: not valid CSV (a cell of this row runs past 131,072 characters: "
                                          "a quote opened in it may never be closed)."),
        # "2\f5" was read as the values 2 and 5
        ("v\n1\n2\f5\n3\n", "line 3: column 'v' holds '2\\x0c5', not a number."),
        ("v\n1\n2\u20285\n3\n", "line 3: column 'v' holds '2\\u20285', not a number."),
        # a row is named by the line it starts on; a bare CR ends a line
        ("t,v\n\"a\nb\",1\n2,x\n", "line 4: column 'v' holds 'x', not a number."),
        ("t,v\r1,2\r2,x\r", "line 3: column 'v' holds 'x', not a number."),
    ):
        p = _write(tmp_path / "bad.csv", content)
        with pytest.raises(fdata.ForecastDataError) as e:
            fdata.read_csv(p, "v")
        assert str(e.value) == f"{p}, {expected}"


def test_future_labels_past_the_year_9999_are_none_not_an_overflow():
    """The labels are made after training: an OverflowError there was a traceback that lost the run."""
    assert fdata.future_labels(["9999-12-30", "9999-12-31"], 3) is None
    assert fdata.future_labels(["9999-12-29", "9999-12-30"], 1) == ["9999-12-31"]


def test_read_csv_trailing_empty_cells_and_the_largest_values_are_read(tmp_path):
    p = _write(tmp_path / "ok.csv", "t,v,\n1,2,\n2,-1e30,\n3,0,,\n")
    assert fdata.read_csv(p, "v").values.tolist() == [2.0, -1e30, 0.0]


def test_cli_huge_values_are_one_clean_error_not_an_overflow(tmp_path):
    """Values near 1e300 overflowed in the season estimate (a traceback) after the command had started."""
    data = _write(tmp_path / "huge.csv", "v\n" + "".join(f"{(i % 7) * 1e300}\n" for i in range(100)))
    r = CliRunner().invoke(cli, ["forecast", "--data", data, "--horizon", "4", "--epochs", "1"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    assert "beyond ±1e+30" in r.output and "rescale the column" in r.output


def test_read_csv_not_utf8_and_missing_file(tmp_path):
    p = _write(tmp_path / "latin1.csv", "v\n1\n".encode() + "caf\u00e9\n".encode("latin-1"), mode="wb")
    with pytest.raises(fdata.ForecastDataError, match="not UTF-8 text"):
        fdata.read_csv(p, "v")
    with pytest.raises(FileNotFoundError):
        fdata.read_csv(str(tmp_path / "nope.csv"), "v")


def test_too_short_series_is_refused():
    with pytest.raises(fdata.ForecastDataError, match="has 20 values, too few for window 12 \\+ horizon 6"):
        fdata.make_split(20, window=12, horizon=6)
    fdata.make_split(40, window=12, horizon=6)  # long enough


def test_demo_series_is_seeded_and_seasonal():
    a, b, c = fdata.demo_series(seed=1), fdata.demo_series(seed=1), fdata.demo_series(seed=2)
    assert len(a) == fdata.DEMO_LENGTH and np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)
    assert np.isfinite(a.values).all() and a.values.min() > 0  # positive, so MAPE is meaningful
    assert fm.estimate_season(a.values[:576]) == 24
    assert fm.estimate_season(np.random.default_rng(0).normal(size=500)) is None
    with pytest.raises(ValueError, match="season must be"):
        fdata.demo_series(season=1)


# ------------------------------------------------------------------------------------------------ windows


def test_windows_and_split_by_hand():
    values = np.arange(20.0)
    split = fdata.make_split(20, window=3, horizon=2, val_fraction=0.2)
    assert split.split == 16  # back-test: max(horizon, 20% of 20) = 4 values
    assert split.train_origins.tolist() == list(range(3, 15))
    assert split.backtest_origins.tolist() == [16, 17, 18]
    x, y = fdata.windows(values, split.train_origins, 3, 2)
    assert x[0].tolist() == [0, 1, 2] and y[0].tolist() == [3, 4]
    assert x[-1].tolist() == [11, 12, 13] and y[-1].tolist() == [14, 15]
    assert y.max() < split.split  # no training target inside the back-test
    bx, by = fdata.windows(values, split.backtest_origins, 3, 2)
    assert bx[0].tolist() == [13, 14, 15] and by[0].tolist() == [16, 17] and by[-1].tolist() == [18, 19]
    with pytest.raises(ValueError, match="origins must lie"):
        fdata.windows(values, [19], 3, 2)


def test_normalisation_uses_the_training_part_only():
    values = np.arange(20.0)
    split = fdata.make_split(20, window=3, horizon=2)
    norm = fdata.Normalizer.fit(values[: split.split])
    assert norm.scale == pytest.approx(np.std(np.arange(16.0)))
    changed = values.copy()
    changed[split.split:] = 1e6  # a different back-test changes nothing the model trains on
    assert fdata.Normalizer.fit(changed[: split.split]) == norm
    x, y = norm.encode([[1.0, 2.0, 6.0]], [[9.0, 3.0]])
    assert np.allclose(x, [[-2 / norm.scale, -1 / norm.scale, 3 / norm.scale]])
    assert np.allclose(y, [[6 / norm.scale, 0.0]])
    assert np.allclose(norm.decode([[1.0, 2.0, 6.0]], y), [[9.0, 3.0]])
    assert fdata.Normalizer.fit(np.ones(10)).scale == 1.0


# ------------------------------------------------------------------------------------------------ metrics


def test_baselines_and_metrics_by_hand():
    values = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    origins = np.array([6, 7])
    naive = fm.naive_forecast(values, origins, 3)
    assert naive.tolist() == [[6, 6, 6], [7, 7, 7]]
    snaive = fm.seasonal_naive_forecast(values, origins, 3, season=2)
    # origin 6: steps 6, 7, 8 <- values at 4, 5, 6 (index t + h - 2 * (h // 2 + 1))
    assert snaive.tolist() == [[5, 6, 5], [6, 7, 6]]
    truth = np.array([[7.0, 8, 9], [8, 9, 10]])
    assert fm.mae(truth, naive) == pytest.approx(np.mean(np.abs(truth - naive)))
    m, skipped = fm.mape(truth, snaive)
    assert skipped == 0 and m == pytest.approx(100 * np.mean(np.abs(truth - snaive) / truth))
    with pytest.raises(ValueError, match="full season"):
        fm.seasonal_naive_forecast(values, [1], 3, season=2)


def test_mape_skips_zeros():
    truth, pred = np.array([0.0, 2.0, -4.0, 0.0]), np.array([1.0, 1.0, -3.0, 0.5])
    m, skipped = fm.mape(truth, pred)
    assert skipped == 2 and m == pytest.approx(100 * (0.5 + 0.25) / 2)
    assert fm.mape(np.zeros(3), np.ones(3)) == (None, 3)
    assert fm.scores(truth, pred)["mape_skipped"] == 2


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def sine_runs(tmp_path_factory):
    """A direct and a recursive forecaster trained briefly on a clean sine (period 20, horizon 10)."""
    from rnn_apps.apps.forecast import task

    series = fdata.Series(_sine(300), "sine", None, source="test")
    runs = {}
    for mode, epochs in (("direct", 10), ("recursive", 4)):
        runs[mode] = task.train(series, str(tmp_path_factory.mktemp(mode)), epochs=epochs, verbose=0, mode=mode,
                                horizon=10, window=30, seed=1, **TINY)
    return series, runs


def test_model_beats_naive_on_a_sine(sine_runs):
    series, runs = sine_runs
    r = runs["direct"]
    assert r["config"]["season"] == 20 and r["config"]["season_source"].startswith("estimated")
    m = r["metrics"]
    assert m["model"]["mae"] < 0.25 * m["naive"]["mae"], m
    assert m["model"]["mae"] < 0.1, m  # amplitude 1
    assert m["model"]["mape_skipped"] > 0  # the sine's zeros have no percentage error
    # the back-test and normalisation statistics come from the training part only
    assert r["scale"] == pytest.approx(np.std(series.values[: r["config"]["split"]]))
    assert r["backtest"]["origins"].min() == r["config"]["split"]


def test_direct_and_recursive_shapes(sine_runs):
    _, runs = sine_runs
    n_bt = runs["direct"]["backtest_pairs"]
    for mode, r in runs.items():
        assert len(r["forecast"]) == 10 and r["backtest"]["predictions"].shape == (n_bt, 10)
        x = np.zeros((3, 30, 1), np.float32)
        assert tuple(r["model"](x).shape) == ((3, 10) if mode == "direct" else (3, 1))
        assert r["forecaster"].predict(np.zeros((2, 55))).shape == (2, 10)
    assert runs["recursive"]["metrics"]["model"]["mae"] < runs["recursive"]["metrics"]["naive"]["mae"]
    with pytest.raises(ValueError, match="T >= 30"):
        runs["direct"]["forecaster"].predict(np.zeros((1, 29)))


def test_demo_defaults_beat_both_baselines(tmp_path):
    """The documented claim: with the command's defaults the model beats naive and seasonal-naive on the demo."""
    from rnn_apps.apps.forecast import task

    r = task.train(fdata.demo_series(), str(tmp_path), verbose=0)
    m = r["metrics"]
    assert r["config"]["season"] == 24 and r["config"]["window"] == 48 and r["config"]["mode"] == "direct"
    assert m["model"]["mae"] < 0.9 * m["seasonal_naive"]["mae"] < m["naive"]["mae"], m
    assert m["model"]["mape"] < 0.9 * m["seasonal_naive"]["mape"], m


_LOAD_WITHOUT_RNN_APPS = r"""
import json, sys
sys.modules["rnn_apps"] = None  # importing rnn_apps would fail
import numpy as np
import tensorflow as tf
out = {}
hist = np.load(sys.argv[1])
for path in sys.argv[2:]:
    m = tf.saved_model.load(path)
    f = m.signatures["serving_default"]
    r = f(history=tf.constant(hist))
    try:
        f(history=tf.constant(hist[:, :5]))
        short = "accepted"
    except Exception as e:
        short = "window" if "window" in str(e) else str(e)[:200]
    out[path] = {"keys": sorted(r), "dtype": r["forecast"].dtype.name, "forecast": r["forecast"].numpy().tolist(),
                 "inputs": sorted(f.structured_input_signature[1]), "short": short}
print(json.dumps(out))
"""


def test_export_loads_without_rnn_apps_and_matches_keras(sine_runs, tmp_path):
    from rnn_apps.apps.forecast.export import export_forecast, load_config

    series, runs = sine_runs
    hist = np.stack([series.values[-50:], series.values[-70:-20], 2 * series.values[:50] + 5]).astype(np.float32)
    np.save(tmp_path / "hist.npy", hist)
    paths = {mode: export_forecast(r["model"], r["scale"], r["config"], str(tmp_path / f"models_{mode}" / "forecast"),
                                   summary={"metrics": r["metrics"]})
             for mode, r in runs.items()}
    assert paths["direct"].endswith(os.path.join("forecast", "1"))
    cfg = load_config(paths["direct"])
    assert cfg["config"]["window"] == 30 and cfg["scale"] == pytest.approx(runs["direct"]["scale"])
    script = tmp_path / "load.py"
    script.write_text(_LOAD_WITHOUT_RNN_APPS)
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "hist.npy"), *paths.values()], env=ENV,
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for mode, path in paths.items():
        o = out[path]
        assert o["keys"] == ["forecast"] and o["dtype"] == "float32" and o["inputs"] == ["history"]
        assert o["short"] == "window"
        expected = runs[mode]["forecaster"].predict(hist.astype(np.float64))
        assert np.array(o["forecast"]).shape == (3, 10)
        assert np.allclose(o["forecast"], expected, rtol=1e-4, atol=1e-4), (mode, np.abs(np.array(o["forecast"]) - expected).max())


def test_resume_continues_a_run(tmp_path):
    from rnn_apps.apps.forecast import task
    from rnn_apps.training import TrainingError

    series = fdata.Series(_sine(100, 10), "sine", None, source="test")
    kw = dict(verbose=0, horizon=4, window=10, seed=3, units=6, batch_size=16)
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # after the epoch's checkpoint
            raise KeyboardInterrupt

    full = task.train(series, str(tmp_path / "full"), epochs=2, **kw)
    part_dir = str(tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        task.train(series, part_dir, epochs=2, callbacks=[Interrupt()], **kw)
    with pytest.raises(TrainingError, match="--resume"):
        task.train(series, part_dir, epochs=2, **kw)
    # a setting given again with another value is refused, not silently replaced by the run's
    with pytest.raises(TrainingError, match=r"was started with horizon 4, cell 'lstm'; --resume continues it with "
                                            r"its own settings \(received horizon 8, cell 'gru'\)"):
        task.train(series, part_dir, epochs=2, resume=True, **{**kw, "horizon": 8, "cell": "gru"})
    # from the command: options left at their defaults are the run's, not the defaults
    data = tmp_path / "sine.csv"
    data.write_text("y\n" + "\n".join(str(v) for v in _sine(100, 10)) + "\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["forecast", "--data", str(data), "--run-dir", part_dir, "--resume", "--cell", "gru"])
    assert r.exit_code == 1 and "was started with cell 'lstm'" in r.output and "Traceback" not in r.output
    # other values of the same length (another column of the file) are refused, the run's record kept
    other = fdata.Series(_sine(100, 10) * 2.0, "price", None, source="other.csv")
    with pytest.raises(TrainingError, match=r"was trained on other values \('sine' of test\); these are 'price' of "
                                            r"other.csv"):
        task.train(other, part_dir, epochs=2, resume=True, **kw)
    with open(os.path.join(part_dir, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["name"] == "sine"
    resumed = task.train(series, part_dir, epochs=2, resume=True, **kw)
    assert resumed["step"] == full["step"] > 0
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    for a, b in zip(full["model"].get_weights(), resumed["model"].get_weights()):
        assert np.allclose(a, b, atol=1e-5)
    assert resumed["forecast"] == pytest.approx(full["forecast"], abs=1e-4)


@pytest.mark.parametrize("n, batch, multiple, sizes", [
    (10, 4, 1, [4, 4, 2]),  # the last batch was filled up with windows the epoch had already trained
    (10, 10, 1, [10]),
    (9, 4, 2, [4, 4, 2]),  # replicas: the short last batch gets one window again, to a multiple of them
])
def test_an_epoch_trains_each_window_once(n, batch, multiple, sizes):
    from rnn_apps.apps.forecast import task

    x = np.arange(n, dtype=np.float32)[:, None, None]
    ds, steps = task._train_dataset(x, x[:, 0], batch, 0, 0, multiple)
    assert steps == len(sizes)
    batches = [b[0].numpy().ravel().astype(int) for b in ds.take(2 * steps)]
    assert [len(b) for b in batches] == sizes * 2
    for epoch in (batches[:steps], batches[steps:]):
        seen = np.concatenate(epoch)
        assert sorted(set(seen)) == list(range(n)) and len(seen) - n == -n % multiple


def test_train_batch_size_is_at_most_the_training_windows():
    from rnn_apps.apps.forecast.task import train_batch_size

    assert train_batch_size(100_000, 360) == 360
    assert train_batch_size(32, 360) == 32
    assert train_batch_size(33, 360, replicas=2) == 34 and train_batch_size(1000, 359, replicas=2) == 360


@pytest.mark.parametrize("fine_tune", [False, True])
def test_cli_a_batch_larger_than_the_series_trains_each_window_once_an_epoch(tmp_path, fine_tune, request):
    """--batch-size 100000 on ~360 windows drew 100,000 rows an epoch (each window ~280 times): 63.7 s, not 8."""
    data = _sine_csv(tmp_path / "s.csv")
    common = ["--data", data, "--column", "v", "--epochs", "2", "--batch-size", "100000", "--json",
              "--run-dir", str(tmp_path / "run")]
    if fine_tune:
        args = ["fine-tune", "forecast", "--model", request.getfixturevalue("base_model"), *common]
    else:
        args = ["forecast", "--horizon", "6", "--window", "12", "--units", "4", *common]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["batch_size"] == res["train_pairs"] < 100_000 and res["settings"]["batch_size"] == 100_000
    assert res["step"] == 2  # one step an epoch
    note = (f"--batch-size 100000 is more than the {res['train_pairs']} training windows: batches of "
            f"{res['train_pairs']}, each window once an epoch.")
    assert res["notes"] == [note] and f"Note: {note}" in r.stderr
    assert f"Series: {res['train_pairs']:,} training windows of {res['settings']['window']} values" in r.stderr
    assert "; 1 step an epoch of" in r.stderr


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_json_plot_and_output(tmp_path):
    data = _sine_csv(tmp_path / "s.csv")
    png, out = tmp_path / "f.png", tmp_path / "next.csv"
    r = CliRunner().invoke(cli, ["forecast", "--data", data, "--column", "v", "--time-column", "t", "--horizon", "6",
                                 "--epochs", "2", "--units", "8", "--plot", str(png), "--output", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res["metrics"]) == {"model", "naive", "seasonal_naive"}
    for k in ("model", "naive", "seasonal_naive"):
        assert res["metrics"][k]["mae"] >= 0 and res["metrics"][k]["mape"] >= 0
    assert res["season"] == 12 and len(res["forecast"]) == 6
    assert res["future_labels"][0] == "2024-03-11T00:00"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = out.read_text().splitlines()
    assert rows[0] == "step,t,v" and rows[1].startswith("1,2024-03-11T00:00,") and len(rows) == 7
    assert "Epoch" in r.stderr  # progress on stderr


def test_forecast_values_keep_their_digits_in_plain_decimals(tmp_path):
    """Sales of 1.3 million were written 1.48195e+06 (.6g: rounded to tens), in the CSV and the table."""
    from rnn_apps.apps.forecast.commands import format_table

    values = np.float32([1481953.25, 0.00001234, 12.5])
    out = tmp_path / "f.csv"
    fdata.write_forecast_csv(str(out), values, ["2024-07-19", "2024-07-20", "2024-07-21T08:00:00+01:00"], "date", "units")
    rows = out.read_text().splitlines()
    assert rows[1:] == ["1,2024-07-19,1481953.2", "2,2024-07-20,0.00001234", "3,2024-07-21T08:00:00+01:00,12.5"]
    assert np.array_equal(np.float32([r.split(",")[-1] for r in rows[1:]]), values)  # read back, the same float32
    metric = {"mae": 73820.12, "mape": 4.97, "mape_skipped": 0}
    table = format_table({"config": {"mode": "direct", "cell": "lstm", "season": 7}, "forecast": values.tolist(),
                          "metrics": {"model": metric, "naive": metric, "seasonal_naive": metric},
                          "future_labels": ["2024-07-19", "2024-07-20", "2024-07-21T08:00:00+01:00"]})
    assert "73820 " in table and "e+" not in table
    lines = table.splitlines()[-3:]
    assert lines[0].endswith("2024-07-19                 1481953.2") and lines[2].endswith("+01:00  12.5")


def test_cli_table_names_methods(tmp_path):
    data = _sine_csv(tmp_path / "s.csv")
    r = CliRunner().invoke(cli, ["forecast", "--data", data, "--column", "v", "--horizon", "4", "--epochs", "1",
                                 "--units", "4", "--mode", "recursive", "--cell", "gru", "--season", "12",
                                 "--export", str(tmp_path / "exp")])
    assert r.exit_code == 0, r.output
    assert "model (recursive, gru)" in r.stdout and "naive (last value)" in r.stdout and "seasonal-naive" in r.stdout
    assert "MAE" in r.stdout and "MAPE" in r.stdout and "season 12 steps (given)" in r.stdout
    # The card said "# forecast model ... trained with `rnn-apps train forecast`" (no such command) over a table of
    # settings, and named neither the file nor the column (its dataset "rnn-apps/v").
    card = (tmp_path / "exp" / "README.md").read_text(encoding="utf-8")
    assert "train forecast" not in card
    assert "# Forecaster of column `v` of `s.csv` (GRU, recursive 4-step forecasts)" in card
    assert "Trained with `rnn-apps forecast` on column `v` of `s.csv` (240 values)" in card
    assert "* It reads the last " in card and "forecasts the next 4, in the series' units: one step at a time" in card
    assert "* Season: 12 steps (given)" in card and "* 1 epoch(s), " in card
    res = r.stdout.split("model (recursive, gru)")[1].split()
    assert f"| this model (recursive, gru) | {res[0]} | {res[1][:-1]} % |" in card  # the figures the command printed
    assert "| naive (the last value repeated) |" in card and "| seasonal-naive (the last 12 values repeated) |" in card
    front = _front(card)
    assert front["model-index"][0]["results"][0]["dataset"]["type"] == "s.csv"
    assert front["model-index"][0]["results"][0]["dataset"]["name"] == "column v of s.csv, back-test (its last part)"


@pytest.mark.parametrize("content, args, expected", [
    ("t,v\n1,2\n2,oops\n", ["--column", "v"], "line 3: column 'v' holds 'oops', not a number"),
    ("t,v\n1,2\n", ["--column", "w"], "has no column 'w'"),
    ("v\n" + "1\n" * 10, ["--window", "8"], "has 10 values, too few for window 8"),
    pytest.param("v\n1\n\"" + "1" * 140_000 + "\n2\n", [], "line 3: not valid CSV (a cell of this row runs past "
                 "131,072", id="a-cell-too-long"),
])
def test_cli_bad_csv_is_one_clean_error(tmp_path, content, args, expected):
    data = _write(tmp_path / "bad.csv", content)
    r = CliRunner().invoke(cli, ["forecast", "--data", data, "--horizon", "4", *args])
    assert r.exit_code != 0
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], r.output


def test_cli_usage_errors():
    r = CliRunner().invoke(cli, ["forecast", "--resume"])
    assert r.exit_code == 2 and "--run-dir" in r.output
    r = CliRunner().invoke(cli, ["forecast", "--horizon", "0"])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["forecast", "--help"])
    assert r.exit_code == 0 and "Examples" in r.output and "--mode" in r.output


# ------------------------------------------------------------------------------------------------ fine-tune


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny direct forecaster trained briefly on a sine of period 20 (window 24, horizon 6), exported."""
    from rnn_apps.apps.forecast import task

    series = fdata.Series(_sine(200, 20), "sine", None, source="test")
    r = task.train(series, str(tmp_path_factory.mktemp("base_run")), epochs=3, verbose=0, horizon=6, window=24,
                   seed=2, units=8, batch_size=16, learning_rate=1e-2)
    return r.export(str(tmp_path_factory.mktemp("models") / "forecast"), summary={})


def test_fine_tune_starts_from_the_base_weights_and_improves_on_the_new_series(base_model, tmp_path):
    """The weights before training are the shipped ones; window, horizon, mode and network are kept; the scale,
    split and season are the new series'; the back-test loss falls below the base model's."""
    import keras

    from rnn_apps.apps.forecast import task
    from rnn_apps.apps.forecast.export import load_config
    from rnn_apps.apps.base import read_base_model
    from rnn_apps.training import TrainingError

    class StartWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = [w.numpy().copy() for w in self.model.weights]

    start = StartWeights()
    values = 10 + 5 * _sine(240, 12)  # another period, level and amplitude
    series = fdata.Series(values, "v", None, source="test")
    r = task.train(series, str(tmp_path / "run"), epochs=4, init_from=base_model, verbose=0, learning_rate=3e-3,
                   callbacks=[start])
    base = read_base_model(base_model, load_config, vocab_key=None)
    assert len(start.weights) == len(base["weights"])
    assert all(np.array_equal(a, b) for a, b in zip(start.weights, base["weights"]))
    for k in task.BASE_SETTINGS:
        assert r["config"][k] == base["config"][k], k
    assert r["config"]["season"] == 12 and r["init_from"] == base_model
    assert r["scale"] == pytest.approx(np.std(values[: r["config"]["split"]])) != base["meta"]["scale"]
    assert r["val_loss"] < r["base_val_loss"], (r["val_loss"], r["base_val_loss"])
    assert r["metrics"]["model"]["mae"] < r["metrics"]["before"]["mae"]
    with pytest.raises(TrainingError, match="keeps the base model's window \\(24\\); received window=10"):
        task.train(series, str(tmp_path / "run2"), epochs=1, init_from=base_model, verbose=0, window=10)


def test_resumed_fine_tuning_keeps_the_base_figures_without_the_base(base_model, tmp_path):
    """Once a checkpoint holds the weights, --resume needs no base model (moved away here) and still reports
    the base's figures measured when the run began."""
    import shutil

    from rnn_apps.apps.forecast import task

    shutil.copytree(base_model, tmp_path / "base")
    series = fdata.Series(10 + 5 * _sine(240, 12), "v", None, source="test")
    first = task.train(series, str(tmp_path / "run"), epochs=2, init_from=str(tmp_path / "base"), verbose=0)
    shutil.rmtree(tmp_path / "base")
    r = task.train(series, str(tmp_path / "run"), epochs=3, resume=True, verbose=0)
    assert r["step"] > first["step"]
    assert r["base_val_loss"] == first["base_val_loss"] and r["metrics"]["before"] == first["metrics"]["before"]
    assert r["init_from"] == str(tmp_path / "base")


def test_cli_fine_tune_forecast_json_table_and_export(base_model, tmp_path):
    import tensorflow as tf

    from rnn_apps.apps.forecast.metrics import format_figure as fmt

    data = _sine_csv(tmp_path / "s.csv")
    ft = str(tmp_path / "ft" / "forecast")
    args = ["fine-tune", "forecast", "--data", data, "--column", "v", "--time-column", "t", "--model", base_model,
            "--epochs", "2", "--export", ft]
    r = CliRunner().invoke(cli, [*args, "--run-dir", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res["metrics"]) == {"model", "before", "naive", "seasonal_naive"}
    assert res["init_from"] == base_model and res["settings"]["window"] == 24 and len(res["forecast"]) == 6
    assert res["exported"] == os.path.join(ft, "1") and res["future_labels"][0] == "2024-03-11T00:00"
    loaded = tf.saved_model.load(res["exported"])
    out = loaded.signatures["serving_default"](history=tf.zeros([2, 30]))["forecast"]
    assert tuple(out.shape) == (2, 6)
    # Its card names the command, the series and the model it started from (only init_from in a table, before).
    card = open(os.path.join(ft, "README.md"), encoding="utf-8").read()
    base = os.path.join(*os.path.normpath(base_model).split(os.sep)[-2:])
    # (the base's own record names no series: the fixture exported it with summary={})
    assert (f"Fine-tuned with `rnn-apps fine-tune forecast` from the forecaster `{base}` on column `v` of `s.csv` "
            "(240 values)") in card
    # the command passes the command into the export; a library call (the fixture's) records none
    from rnn_apps.apps.forecast.card import body
    from rnn_apps.apps.forecast.export import load_config

    assert load_config(res["exported"])["summary"]["command"] == "rnn-apps fine-tune forecast"
    assert "command" not in load_config(base_model)["summary"]
    assert "\nTrained on a series the record does not name;" in body("forecast", load_config(base_model))
    assert f"* Started from the weights of `{base}`, whose window, horizon, mode, cell and units it keeps" in card
    before = res["metrics"]["before"]
    assert f"| the base model `{base}`, before fine-tuning | {fmt(before['mae'])} | {before['mape']:.2f} % |" in card
    assert f"Back-test loss (MSE of the normalised values): {res['val_loss']:.4f}; {res['base_val_loss']:.4f} before " \
           "fine-tuning." in card
    assert "train forecast" not in card and "init_from" not in card
    r = CliRunner().invoke(cli, [*args, "--run-dir", str(tmp_path / "run2")])
    assert r.exit_code == 0, r.output
    assert "the base model, before fine-tuning" in r.stdout and "Exported:" in r.stdout
    r = CliRunner().invoke(cli, ["fine-tune", "forecast", "--help"])
    assert r.exit_code == 0 and "Examples" in r.output and "window" in r.output


@pytest.mark.parametrize("case, expected", [
    ("bad-csv", "line 3: column 'v' holds 'oops', not a number"),
    ("no-model", "No SavedModel"),
    ("other-app", "is not a forecasting model"),
    ("corrupt", "Could not load the model"),
    ("too-short", "too few for window 24"),
])
def test_cli_fine_tune_forecast_bad_inputs_are_one_line(case, expected, base_model, tmp_path):
    import shutil

    data, model = _sine_csv(tmp_path / "s.csv"), base_model
    if case == "bad-csv":
        data = _write(tmp_path / "bad.csv", "t,v\n1,2\n2,oops\n")
    elif case == "no-model":
        model = str(tmp_path / "empty")
        os.makedirs(model)
    elif case == "other-app":
        model = os.path.join(os.path.dirname(__file__), os.pardir, "models", "fill")
    elif case == "corrupt":
        model = str(tmp_path / "corrupt")
        shutil.copytree(base_model, model)
        with open(os.path.join(model, "saved_model.pb"), "r+b") as f:
            f.truncate(100)
    else:
        data = _write(tmp_path / "short.csv", "v\n" + "1\n" * 30)
    r = CliRunner().invoke(cli, ["fine-tune", "forecast", "--data", data, "--column", "v", "--model", model,
                                 "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "out")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], r.output


def test_export_forecast_from_model_keeps_weights_and_forecasts(base_model, tmp_path):
    """`export forecast --from-model`: forecast's export_again was written but no command reached it; the same
    forecasts from this version's graph, a card written where the folder has none."""
    import tensorflow as tf

    r = CliRunner().invoke(cli, ["export", "forecast", "--from-model", base_model, "--export", str(tmp_path / "f"),
                                 "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.output)["exported"]
    assert again == str(tmp_path / "f" / "1") and os.path.isfile(tmp_path / "f" / "README.md")
    history = tf.constant((np.sin(np.arange(60))[None, :].repeat(2, 0) * [[1.0], [3.0]]).astype(np.float32))
    a, b = (tf.saved_model.load(d).signatures["serving_default"](history=history)["forecast"].numpy()
            for d in (base_model, again))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    r = CliRunner().invoke(cli, ["export", "forecast"])
    assert r.exit_code == 2 and "Give --from-model" in r.output


@pytest.mark.parametrize("command", [["forecast"], ["fine-tune", "forecast"]])
def test_an_export_directory_of_another_app_is_refused_before_training(command, tmp_path):
    """forecast --export models/poetry trained first and was refused at the export; without --run-dir the
    training was lost with its temporary directory."""
    other = tmp_path / "poetry"
    os.makedirs(other / "3" / "assets.extra")
    _write(other / "3" / "assets.extra" / "poetry.json", "{}")
    r = CliRunner().invoke(cli, [*command, "--data", _sine_csv(tmp_path / "s.csv"), "--column", "v",
                                 "--model", str(tmp_path / "none"), "--export", str(other)])
    assert r.exit_code == 1 and "holds poetry models" in r.output and "Training" not in r.output, r.output
    assert not os.path.exists(tmp_path / "none")


def test_cli_fine_tune_forecast_argument_checks():
    r = CliRunner().invoke(cli, ["fine-tune", "forecast"])
    assert r.exit_code == 2 and "Missing option '--data'" in r.output
    r = CliRunner().invoke(cli, ["fine-tune", "forecast", "--data", "x.csv", "--learning-rate", "nan"])
    assert r.exit_code == 2 and "not a finite number" in r.output
    r = CliRunner().invoke(cli, ["fine-tune", "forecast", "--data", "x.csv", "--epochs", "0"])
    assert r.exit_code == 2 and "0 is not in the range x>=1" in r.output


def test_cli_forecast_model_starts_from_an_exported_forecaster(base_model, tmp_path):
    """forecast --model DIR: the training starts from that export (as fine-tune forecast --model does), keeps its
    window, horizon, mode, cell and units though forecast's own defaults differ (horizon 24), and adds the model's
    back-test scores before training; a value other than the model's own is one clean error."""
    data = _sine_csv(tmp_path / "s.csv")
    args = ["forecast", "--data", data, "--column", "v", "--time-column", "t", "--model", base_model, "--epochs", "1"]
    r = CliRunner().invoke(cli, [*args, "--json", "--export", str(tmp_path / "exp")])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["init_from"] == base_model and "base_val_loss" in res and "before" in res["metrics"]
    card = (tmp_path / "exp" / "README.md").read_text(encoding="utf-8")
    # the command as it was run (not "rnn-apps forecast --model" without its model); the card names the model
    base = os.path.join(*os.path.normpath(base_model).split(os.sep)[-2:])
    assert f"Fine-tuned with `rnn-apps forecast` from the forecaster `{base}` on column `v` of `s.csv`" in card
    assert "--model" not in card
    assert (res["settings"]["window"], res["settings"]["horizon"], res["settings"]["units"]) == (24, 6, 8)
    assert len(res["forecast"]) == 6
    r = CliRunner().invoke(cli, [*args, "--horizon", "3"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "keeps the base model's horizon (6); received horizon=3" in errors[0], r.output


def test_the_season_is_the_one_the_autocorrelation_by_its_definition_gives():
    """estimate_season computes every lag's autocorrelation at once with the FFT (a dot product a lag took
    seconds on long series): the same season as the definition's sum, ties of exactly periodic series included."""
    def by_definition(values, min_acf=0.2):
        x = np.asarray(values, np.float64)
        n, t = len(x), np.arange(len(x))
        x = x - np.polyval(np.polyfit(t, x, 1), t)
        acf = [sum(x[i] * x[i + k] for i in range(n - k)) / np.dot(x, x) for k in range(n // 3 + 2)]
        peaks = [k for k in range(2, n // 3 + 1) if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1] and acf[k] > min_acf]
        return next((k for k in peaks if acf[k] >= 0.8 * max(acf[j] for j in peaks)), None)

    rng = np.random.default_rng(3)
    for trial in range(60):
        n, p = int(rng.integers(8, 400)), int(rng.integers(2, 40))
        t = np.arange(n)
        values = [np.sin(2 * np.pi * t / p) + rng.normal(0, rng.uniform(0, 2), n), (t % p).astype(float),
                  np.round(10 * np.sin(2 * np.pi * t / p)) + 0.01 * t, rng.normal(size=n).cumsum()][trial % 4]
        assert fm.estimate_season(values) == by_definition(values), (trial, n, p)
