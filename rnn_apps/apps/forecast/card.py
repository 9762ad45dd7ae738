"""The forecaster's card (``rnn-apps card forecast``): hub metadata, the back-test figures the export
recorded (``assets.extra/forecast.json``) and, for a new version, a body written from that record
(:func:`body`: the series, the command that trained the model, its back-test against the baselines).
Written by :func:`rnn_apps.cards.write_card`."""

from __future__ import annotations

from typing import Optional

from rnn_apps import cards


def _series(meta: dict) -> dict:
    return ((meta.get("summary") or {}).get("series")) or {}


def series_words(meta: dict) -> Optional[str]:
    """The series a forecaster was trained on, in words: "column `mw` of `load.csv`", "the built-in demo
    series", or None when the record does not say (a model exported by an older version)."""
    series = _series(meta)
    source, name = series.get("source"), series.get("name")
    if source == "demo":
        return "the built-in demo series"
    if source and name:
        return f"column `{name}` of `{cards.data_name(source)}`"
    return f"the series `{name}`" if name else None


def HUB(app: str, meta: dict) -> dict:
    """The card's front matter (model hubs read it): the dataset is the series' file and column (the demo
    series: ``rnn-apps/demo``)."""
    series = _series(meta)
    name, source = series.get("name", "the training series"), series.get("source")
    if source and source != "demo":
        where = cards.data_name(source)
        dataset = {"type": where, "name": f"column {name} of {where}, back-test (its last part)"}
    else:
        dataset = {"type": f"rnn-apps/{name}", "name": f"{name} series, back-test (its last part)"}
    return {"license": "mit", "pipeline_tag": "time-series-forecasting",
            "tags": ["rnn", (meta.get("config") or {}).get("cell", "lstm"), "forecasting", "tensorflow"],
            "task": {"type": "time-series-forecasting", "name": "Time-series forecasting"},
            "dataset": {**dataset, "split": "test"}}


def metrics(version_dir: str, meta: dict) -> list:
    """The back-test's MAE and MAPE of the model and of the naive baselines, as the export recorded them."""
    measured = ((meta.get("summary") or {}).get("metrics")) or {}
    out = []
    for key, who in (("model", "model"), ("naive", "naive forecast"), ("seasonal_naive", "seasonal-naive forecast")):
        m = measured.get(key)
        if m:
            out.append({"type": "mae", "name": f"Back-test MAE, {who}", "value": round(m["mae"], 4)})
            if m.get("mape") is not None:
                out.append({"type": "mape", "name": f"Back-test MAPE (%), {who}", "value": round(m["mape"], 3)})
    return out


def _base_series(init_from: str) -> Optional[str]:
    """The series the base model of a fine-tuning was trained on (:func:`series_words`), or None when the base
    cannot be read any more."""
    try:
        from rnn_apps.apps.forecast.export import load_config

        return series_words(load_config(init_from))
    except Exception:  # moved or deleted since: the card names the base by its path alone
        return None


def body(app: str, meta: dict) -> str:
    """The card's body for a forecaster written from its export's record alone: what it forecasts (the series,
    window, horizon, mode, cell), the command that trained it (and the model a fine-tuning started from),
    and its back-test against the naive baselines, as the run measured them."""
    from rnn_apps.apps.forecast.metrics import format_figure

    cfg, summary = meta.get("config") or {}, meta.get("summary") or {}
    series, backtest, m = _series(meta), summary.get("backtest") or {}, summary.get("metrics") or {}
    what = series_words(meta)
    window, horizon, mode, cell = cfg.get("window"), cfg.get("horizon"), cfg.get("mode", "direct"), cfg.get("cell", "lstm")
    base = summary.get("init_from")
    base_name = cards.base_model_name(base) if base else None
    command = summary.get("command")  # as the training command gave it; a library call's record names none
    title = (f"# Forecaster of {what}" if what else "# Forecaster") + \
        f" ({cards.cell_name(cell)}, {mode}" + (f" {horizon}-step" if horizon else "") \
        + " forecasts)"
    base_what = _base_series(base) if base else None
    how = ((f"Fine-tuned with `{command}`" if command else "Fine-tuned") + f" from the forecaster `{base_name}`"
           + (f" (trained on {base_what})" if base_what else "")
           if base else f"Trained with `{command}`" if command else "Trained")
    lines = [title, "",
             f"{how} on {what or 'a series the record does not name'}"
             + (f" ({series['length']:,} values)" if isinstance(series.get("length"), int) else "")
             + f"; exported {meta.get('exported', 'by rnn-apps')}.", "",
             "## What it forecasts", "",
             f"* The series: {what or 'not recorded'}"
             + (f", {series['length']:,} values" if isinstance(series.get("length"), int) else "") + ".",
             f"* It reads the last {window or 'window'} values of a history and forecasts the next "
             f"{horizon or 'horizon'}, in the series' units: "
             + ("all at once (direct)." if mode == "direct" else f"one step at a time, each fed back, {horizon} times "
                                                                 "(recursive)."),
             ]
    if cfg.get("units") and meta.get("scale") is not None:
        lines.append(f"* Network: each window minus its own mean, divided by the training part's standard deviation "
                     f"({format_figure(meta['scale'])}) → `rnn_apps.cells.{cards.cell_class(cell)}` of {cfg['units']} "
                     f"units → a dense read-out of {horizon if mode == 'direct' else 1}.")
    if cfg.get("season"):
        lines.append(f"* Season: {cfg['season']} steps ({cfg.get('season_source', 'given')}), the seasonal-naive "
                     "baseline's.")
    lines += ["", "## Training", ""]
    if base:
        lines.append(f"* Started from the weights of `{base_name}`, whose window, horizon, mode, cell and units it "
                     "keeps; the split, the normalisation scale and the season are this series' own.")
    epochs, step = summary.get("epochs"), summary.get("step")
    done = [x for x in (f"{epochs} epoch(s)" if epochs else None, f"{step:,} steps" if isinstance(step, int) else None,
                     f"{summary['train_pairs']:,} training windows" if isinstance(summary.get("train_pairs"), int) else None,
                     # the batch trained with (at most the training windows), else the setting
                     f"batch {summary.get('batch_size') or cfg['batch_size']}" if cfg.get("batch_size") else None,
                     f"Adam at {cfg['learning_rate']:g} with cosine decay" if cfg.get("learning_rate") else None,
                     f"seed {cfg['seed']}" if cfg.get("seed") is not None else None,
                     f"{summary['train_seconds']} s of training" if summary.get("train_seconds") is not None else None)
            if x]
    lines.append("* " + (", ".join(done) + "; the" if done else "The")
                 + " weights of the last epoch (the back-test chooses nothing).")
    lines += ["", "## Back-test", ""]
    if m.get("model"):
        values, origins = backtest.get("values"), backtest.get("origins")
        lines.append((f"The last {values} values of the series" if values else "The last part of the series")
                     + (f" ({cfg['val_fraction']:.0%})" if cfg.get("val_fraction") else "")
                     + ", never trained on" + (f", forecast from {origins} origins, {horizon} steps at a time" if origins
                                               else "") + ":")
        rows = [(f"this model ({mode}, {cell})", m["model"], None)]
        if m.get("before"):
            rows.append((f"the base model `{base_name}`, before fine-tuning" if base else
                         "the base model, before fine-tuning", m["before"], None))
        rows.append(("naive (the last value repeated)", m.get("naive"), "the naive forecast"))
        if m.get("seasonal_naive"):
            rows.append((f"seasonal-naive (the last {cfg.get('season')} values repeated)", m["seasonal_naive"],
                         "the seasonal-naive forecast"))
        lines += ["", "| method | MAE | MAPE |", "| --- | --- | --- |"]
        lines += [f"| {name} | {format_figure(s['mae'])} | {format_figure(s.get('mape'), True, ' %')} |"
                  for name, s, _ in rows if s]
        lines.append("")
        skipped = m["model"].get("mape_skipped")
        if skipped:
            lines += [f"MAPE leaves out the {skipped} back-test steps whose true value is zero.", ""]
        better = [short for _, s, short in rows if short and s and s["mae"] <= m["model"]["mae"]]
        if better:
            lines += [f"The model does not beat {' or '.join(better)} on this back-test (MAE).", ""]
        if summary.get("val_loss") is not None:
            lines += [f"Back-test loss (MSE of the normalised values): {summary['val_loss']:.4f}"
                      + (f"; {summary['base_val_loss']:.4f} before fine-tuning" if summary.get("base_val_loss") is not None
                         else "") + ".", ""]
    else:
        lines += ["The record holds no back-test figures.", ""]
    lines += ["## Limits", "",
              f"Only meaningful for {what or 'the series it was trained on'} and series like it (level, scale and "
              "cycle); it reads the last "
              f"{window or 'window'} values of a history, so a history needs at least that many."]
    return "\n".join(lines) + "\n"
