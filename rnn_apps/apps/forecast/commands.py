"""The ``rnn-apps forecast`` and ``rnn-apps fine-tune forecast`` commands: thin wrappers over the library.

TensorFlow is imported inside the command, so ``rnn-apps --help`` stays instant.
"""

from __future__ import annotations

import os
import tempfile

import click

from rnn_apps.apps.forecast.task import BASE_SETTINGS, DEFAULTS
from rnn_apps.cli import options
from rnn_apps.cli.common import (
    FiniteFloatRange, IntegerRange, OutputFile, defaults_apply_when_a_run_starts, card_kept, echo_exported, echo_json,
    export_trained, friendly_errors, options_left_out, progress_to_stderr, quiet_tensorflow,
    refuse_overwriting_inputs, verbosity, with_card,
)

_METHODS = (("model", "model"), ("naive", "naive (last value)"), ("seasonal_naive", "seasonal-naive"))


def format_table(result: dict) -> str:
    """The metrics table (method | MAE | MAPE) and the forecast rows, as printed by the command."""
    from rnn_apps.apps.forecast.metrics import format_figure

    cfg, m = result["config"], result["metrics"]
    lines = []
    label = {"model": f"model ({cfg['mode']}, {cfg['cell']})"}
    rows = [(label.get(k, name), m[k]) for k, name in _METHODS]
    if m["seasonal_naive"] is None:
        rows[2] = (f"seasonal-naive ({'no season' if not cfg['season'] else 'season longer than the history'})", None)
    if m.get("before"):
        rows.insert(1, ("the base model, before fine-tuning", m["before"]))
    width = max(len(r[0]) for r in rows)
    lines.append(f"{'method':<{width}}  {'MAE':>9}  {'MAPE':>8}")
    for name, s in rows:
        lines.append(f"{name:<{width}}  {format_figure(s and s['mae']):>9}  {format_figure(s and s['mape'], True):>8}")
    skipped = m["model"]["mape_skipped"]
    if skipped:
        lines.append(f"(MAPE leaves out {skipped} back-test forecast steps whose true value is zero)")
    lines.append("")
    labels = result.get("future_labels")
    lines.append(f"Forecast, next {len(result['forecast'])} steps:")
    # the values as the --output CSV writes them (.4f printed 0.0000 for values of 1e-5; .6g rounded millions)
    from rnn_apps.apps.forecast.data import format_value

    time_width = max([4] + [len(str(t)) for t in labels or []])
    lines.append("step  " + (f"{'time':<{time_width}}  " if labels else "") + "value")
    for i, v in enumerate(result["forecast"]):
        lines.append(f"{i + 1:>4}  " + (f"{labels[i]:<{time_width}}  " if labels else "") + format_value(v))
    return "\n".join(lines)


_JSON_KEYS = ("'series' (name, source, length), 'settings', 'season' and 'season_source', 'backtest' (values held "
              "out, origins, horizon), 'metrics' (model, naive, seasonal_naive: 'mae', 'mape' in per cent, "
              "'mape_skipped'), 'forecast' (the next values) with 'future_labels' (their times, or null), "
              "'train_pairs', 'batch_size' (the batch trained with: --batch-size, at most 'train_pairs'), 'step' "
              "(training steps), 'val_loss', 'train_seconds', 'seconds', and 'notes', 'plot', "
              "'output', 'exported' when there are")

_COLUMN = click.option("--column", default=None,
                       help="The column to forecast (default: the only column besides --time-column).")
_TIME_COLUMN = click.option(
    "--time-column", default=None,
    help="A column of increasing timestamps: ISO dates/times (2024-01-31, 2024-01-31T13:00, 2024-01) or numbers; "
         "regular spacing (days, hours, months ...) gives the forecast's future timestamps.")
_BATCH_SIZE = click.option("--batch-size", type=IntegerRange(min=1), default=DEFAULTS["batch_size"],
                           show_default=True, help="Windows per batch.")
_VAL_FRACTION = click.option(
    "--val-fraction", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=DEFAULTS["val_fraction"],
    show_default=True, help="Share of the series held out at the end as the back-test (at least H values).")
_SEASON = click.option("--season", type=IntegerRange(min=2), default=None,
                       help="Seasonal period in steps (default: estimated from the training part's autocorrelation).")
_OUTPUTS = options.bundle(
    click.option("--plot", "plot_path", default=None, type=OutputFile(figure=True),
                 help="Save a PNG of the history, the back-test forecasts and the forecast."),
    click.option("--output", "output_path", default=None, type=OutputFile(),
                 help="Write the forecast to this CSV (step, time when known, value)."))


@click.command("forecast")
@click.option("--data", "data_path", default=None, type=click.Path(dir_okay=False),
              help="A UTF-8 CSV with a header row. Default: the built-in demo series (30 days of hourly values).")
@_COLUMN
@_TIME_COLUMN
@click.option("--horizon", type=IntegerRange(min=1), default=DEFAULTS["horizon"], show_default=True,
              help="Steps to forecast.")
@click.option("--window", type=IntegerRange(min=1), default=None,
              help="History steps the model reads (default: two seasons, else two horizons, at most what leaves "
                   "half of the training part as training windows; the output says the window used).")
@click.option("--mode", type=click.Choice(["direct", "recursive"]), default=DEFAULTS["mode"], show_default=True,
              help="direct: all H steps at once (N-to-N); recursive: one step, fed back H times (N-to-1).")
@click.option("--cell", type=click.Choice(options.CELL_NAMES), default=DEFAULTS["cell"], show_default=True,
              help="Recurrent cell.")
@click.option("--units", type=IntegerRange(min=1), default=DEFAULTS["units"], show_default=True,
              help="Units of the cell.")
@options.epochs(15, "Training epochs.")
@_BATCH_SIZE
@options.learning_rate(DEFAULTS["learning_rate"])
@_VAL_FRACTION
@_SEASON
@click.option("--seed", type=options.SEED, default=DEFAULTS["seed"], show_default=True, help="Same seed, same result (on a CPU).")
@options.model("forecast", "Start from this exported forecaster (a version directory, or an app directory: its newest "
                           "version) instead of a new one; it keeps its window, horizon, mode, cell and units "
                           "(default: a new forecaster).")
@_OUTPUTS
@options.export(example="models/forecast")
@options.run_dir(None, "Keep checkpoints and logs here (default: a temporary directory).")
@options.resume()
@options.strategy
@options.as_json(f"Print a JSON object with {_JSON_KEYS}; with --model, 'metrics' has 'before' (the model's, "
                 "before this training) and the object 'init_from' and 'base_val_loss'.")
@friendly_errors
def forecast(data_path, column, time_column, horizon, window, mode, cell, units, epochs, batch_size, learning_rate,
             val_fraction, season, seed, model_dir, plot_path, output_path, export_dir, run_dir, resume, strategy,
             as_json):
    """Train a recurrent forecaster on a series, back-test it against baselines and forecast the next steps.

    The last part of the series (--val-fraction, at least --horizon values) is the back-test: the model never
    trains on it, and it is forecast from every origin in it, H steps at a time. MAE and MAPE are given for the
    model, the naive forecast (the last value, repeated) and the seasonal-naive forecast (the last season,
    repeated). Training progress goes to stderr; the table and the forecast to stdout. With --model the
    training starts from a forecaster you exported, and the table adds its scores before this training.

    \b
    Examples:
      rnn-apps forecast                                    # the built-in demo series
      rnn-apps forecast --mode recursive --plot forecast.png
      rnn-apps forecast --data sales.csv --column units --time-column date --horizon 14 --output next.csv
      rnn-apps forecast --data load.csv --column mw --season 24 --cell gru --export models/forecast
      rnn-apps forecast --data load.csv --column mw --run-dir runs/forecast --resume
      rnn-apps forecast --data load.csv --column mw --model models-finetuned/forecast --epochs 3
    """
    from rnn_apps.quiet import import_tensorflow_quietly

    if resume and not run_dir:
        raise click.UsageError("--resume needs the --run-dir of the run to continue.")
    if data_path is None and (column or time_column):
        raise click.UsageError("--column and --time-column need --data (the demo series has its own).")
    refuse_overwriting_inputs({"--plot": plot_path, "--output": output_path}, [data_path])
    from rnn_apps.apps.forecast import data as fdata

    series = fdata.read_csv(data_path, column, time_column) if data_path else fdata.demo_series()
    _check_export_dir(export_dir)
    import_tensorflow_quietly()
    from rnn_apps.apps.forecast import task

    settings = dict(horizon=horizon, window=window, mode=mode, cell=cell, units=units, batch_size=batch_size,
                    learning_rate=learning_rate, val_fraction=val_fraction, season=season, seed=seed)
    if model_dir:  # the model's own network and windows, unless given (a value other than its own is refused)
        left_out = options_left_out()
        settings.update({k: None for k in BASE_SETTINGS if k in left_out})
    what = (f"the forecaster of {run_dir}" if resume else f"the forecaster {model_dir}" if model_dir
            else f"a {cell} forecaster ({mode})")
    click.echo(f"{'Resuming' if resume else 'Training'} {what} on {series.name!r} ({len(series)} values) ...", err=True)
    # --resume: the run's own settings go on; only the options given are checked against them
    with tempfile.TemporaryDirectory(prefix="rnn-apps-forecast-") as tmp, progress_to_stderr(True), \
            defaults_apply_when_a_run_starts():
        result = task.train(series, run_dir or tmp, epochs=epochs, resume=resume, strategy=strategy,
                            init_from=model_dir, verbose=verbosity(), **settings)
    _report(result, series, time_column, plot_path, output_path, export_dir, as_json, "rnn-apps forecast")


def _check_export_dir(export_dir) -> None:
    """Refuse an --export directory of another app before training (the export comes after it, and a run
    without --run-dir lives in a temporary directory: the training would be lost)."""
    if export_dir:
        from rnn_apps.export import check_export_target

        check_export_target(export_dir, "forecast")


def _report(result, series, time_column, plot_path, output_path, export_dir, as_json, command: str) -> None:
    """What both commands print and write after training: the summary (JSON, or the table and the forecast),
    the plot, the forecast CSV and the export (``command``: the command that trained the model, which its card
    names; a model it started from, ``--model``, the card names on its own)."""
    from rnn_apps.apps.forecast import data as fdata

    cfg = result["config"]
    summary = {
        "series": {"name": series.name, "source": series.source, "length": len(series)},
        "settings": cfg,
        "season": cfg["season"],
        "season_source": cfg["season_source"],
        "backtest": {"values": len(series) - cfg["split"], "origins": result["backtest_pairs"], "horizon": cfg["horizon"]},
        "metrics": result["metrics"],
        "forecast": result["forecast"],
        "future_labels": result["future_labels"],
        "train_pairs": result["train_pairs"],
        "batch_size": result["batch_size"],
        "step": result["step"],
        "val_loss": result["val_loss"],
        "train_seconds": result["train_seconds"],
        "seconds": result["seconds"],
    }
    if "init_from" in result:  # fine-tuning: the base model and its back-test loss before training
        summary.update({"init_from": result["init_from"], "base_val_loss": result["base_val_loss"]})
    notes = [fdata.irregular_times_note(series.timestamps)]
    if result["batch_size"] < cfg["batch_size"]:
        notes.append(f"--batch-size {cfg['batch_size']} is more than the {result['train_pairs']} training windows: "
                     f"batches of {result['batch_size']}, each window once an epoch.")
    for note in filter(None, notes):
        summary.setdefault("notes", []).append(note)
        click.echo(f"Note: {note}", err=True)
    if plot_path:
        from rnn_apps.apps.forecast.metrics import seasonal_naive_forecast
        from rnn_apps.apps.forecast.plot import plot_forecast

        origins = result["backtest"]["origins"]
        snaive = (seasonal_naive_forecast(series.values, origins, cfg["horizon"], cfg["season"])
                  if result["metrics"]["seasonal_naive"] else None)
        plot_forecast(series.values, cfg["split"], origins, result["backtest"]["predictions"], result["forecast"],
                      plot_path, title=f"{series.name}: {cfg['cell']} forecaster ({cfg['mode']}), horizon {cfg['horizon']}",
                      seasonal_naive=snaive)
        summary["plot"] = plot_path
        click.echo(f"Plot saved to {plot_path}", err=True)
    if output_path:
        fdata.write_forecast_csv(output_path, result["forecast"], result["future_labels"], time_column or
                                 ("time" if series.timestamps else None), series.name)
        summary["output"] = output_path
        click.echo(f"Forecast written to {output_path}", err=True)
    if export_dir:
        keep = {k: summary[k] for k in ("series", "metrics", "season_source", "backtest", "train_seconds", "step",
                                        "init_from") if k in summary}
        summary["exported"] = export_trained(result, export_dir, summary={**keep, "command": command})
        click.echo(f"Exported to {summary['exported']}", err=True)
    if as_json:
        echo_json(summary)
        return
    bt = summary["backtest"]
    season_line = f"{cfg['season']} steps ({cfg['season_source']})" if cfg["season"] else cfg["season_source"]
    click.echo(f"Series {series.name!r}: {len(series)} values; back-test: the last {bt['values']} "
               f"({bt['origins']} forecast{'s' * (bt['origins'] != 1)} of {cfg['horizon']} steps); window {cfg['window']}; season {season_line}; "
               f"trained {result['train_seconds']} s"
               f"{' from ' + os.path.normpath(result['init_from']) if result.get('init_from') else ''}.")
    click.echo("")
    click.echo(format_table(result))
    if export_dir:
        click.echo(f"\nExported: {os.path.normpath(summary['exported'])}")



@click.command("forecast")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Your series: a UTF-8 CSV with a header row, as rnn-apps forecast reads it.")
@_COLUMN
@_TIME_COLUMN
@options.fine_tuning("forecast", 8, 3e-3)
@_BATCH_SIZE
@_VAL_FRACTION
@_SEASON
@options.seed(DEFAULTS)
@_OUTPUTS
@options.as_json(f"Print a JSON object with {_JSON_KEYS}; 'metrics' has 'before' (the base model's, before "
                 "fine-tuning) and the object 'init_from' and 'base_val_loss'.")
@friendly_errors
def fine_tune_forecast(data_path, column, time_column, model_dir, export_dir, run_dir, epochs, resume, strategy,
                       batch_size, learning_rate, val_fraction, season, seed, plot_path, output_path, as_json):
    """Fine-tune the forecaster on your series, back-test it and forecast the next steps.

    The model keeps what defines it: the history it reads (its window), its horizon, its mode, cell and
    units. What belongs to the series is your series' own: the back-test (the last --val-fraction), the
    normalisation scale (the standard deviation of your series' training part; each window's own mean is
    subtracted, as in training) and the season of the seasonal-naive baseline (--season, else estimated).
    The table adds the base model's scores on your back-test before fine-tuning.

    \b
    Examples:
      rnn-apps fine-tune forecast --data load.csv --column mw --time-column time
      rnn-apps fine-tune forecast --data sales.csv --column units --epochs 4 --output next.csv --json
      rnn-apps fine-tune forecast --data load.csv --column mw --run-dir runs/forecast-finetune --resume
    """
    from rnn_apps.apps.forecast import data as fdata
    from rnn_apps.paths import default_model_dir

    refuse_overwriting_inputs({"--plot": plot_path, "--output": output_path}, [data_path])
    series = fdata.read_csv(data_path, column, time_column)
    _check_export_dir(export_dir)
    base = model_dir or default_model_dir("forecast")
    with quiet_tensorflow():
        from rnn_apps.apps.forecast import task

    click.echo(f"Fine-tuning {base} on {series.name!r} ({len(series)} values) ...", err=True)
    with progress_to_stderr(True), defaults_apply_when_a_run_starts():  # --resume: only the options given are checked
        result = task.train(series, run_dir, epochs=epochs, resume=resume, strategy=strategy, init_from=base,
                            verbose=verbosity(), batch_size=batch_size, learning_rate=learning_rate,
                            val_fraction=val_fraction, season=season, seed=seed)
    _report(result, series, time_column, plot_path, output_path, export_dir, as_json, "rnn-apps fine-tune forecast")


@click.command("forecast")
@options.from_model("an exported forecaster")
@options.export_target("forecast")
@friendly_errors
def export_forecast_cmd(from_model, export_dir, models_root, version, as_json):
    """Export an exported forecaster again, with this version's graph, to APP_DIR/<version>/.

    A forecaster is exported by the command that trains it (forecast --export, fine-tune forecast); this
    writes the weights of an export again with this version's graph and input checks, its settings,
    scale and figures kept, and an existing card of APP_DIR kept.

    \b
    Examples:
      rnn-apps export forecast --from-model models/forecast/2 --export models-new/forecast
    """
    if from_model is None:
        raise click.UsageError("Give --from-model, the exported forecaster to export again (a forecaster is "
                               "exported by forecast --export or fine-tune forecast).")
    app_dir = options.export_dir_for(export_dir, models_root, "forecast")
    from rnn_apps.apps.forecast.export import export_again
    from rnn_apps.export import resolve_model_dir

    kept = card_kept(app_dir, from_model)  # before the export adds a version
    path = export_again(resolve_model_dir(from_model), app_dir, version)
    echo_exported(path if kept else with_card("forecast", path, from_model=from_model), as_json)


COMMANDS = {None: [forecast], "fine-tune": [fine_tune_forecast], "export": [export_forecast_cmd]}
