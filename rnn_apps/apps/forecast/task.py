"""Forecasting task: split a series, train the recurrent forecaster (resumable), back-test it against baselines.

A run directory holds ``config.json`` (settings, the series' source and length, the split, the season, the
normalisation scale), ``checkpoints/`` and ``history.jsonl``. Training goes through
:func:`rnn_apps.training.fit_resumable`, so ``resume=True`` continues an interrupted run at the same step with
the same batches, and ``strategy`` picks a ``tf.distribute`` strategy.

The back-test (the last part of the series, see :mod:`rnn_apps.apps.forecast.data`) is never trained on and
never used to choose weights: the model trains for a fixed number of epochs (cosine-decayed learning rate) and
the loss on the back-test windows is only logged (``val_loss``). The same back-test origins score the model
and the naive and seasonal-naive baselines. The future forecast reads the last ``window`` values of the whole
series.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from rnn_apps.apps import base as contract
from rnn_apps.apps.base import CONFIG_FILE, RunOptions, TrainResult
from rnn_apps.apps.forecast import data as fdata
from rnn_apps.apps.forecast import metrics as fmetrics
from rnn_apps.apps.forecast.model import Forecaster, build_model, check_mode
from rnn_apps.checks import check_settings


# window None: two seasons, else two horizons (see default_window); season None: estimated from the
# training part's autocorrelation.
DEFAULTS = dict(
    horizon=24, window=None, mode="direct", cell="lstm", units=32,
    batch_size=32, learning_rate=1e-2, clipnorm=1.0, val_fraction=fdata.DEFAULT_VAL_FRACTION, season=None, seed=0,
)


BASE_SETTINGS = ("window", "horizon", "mode", "cell", "units")
"""What fine-tuning keeps of the base model: the history it reads, what it forecasts, its network. The rest is
the new series': its split, its normalisation scale (the std of its own training part, since the model works
in normalised units) and its season (for the seasonal-naive baseline)."""


def base_settings(cfg: dict, base_config: dict, overrides: dict) -> dict:
    """``cfg`` with the :data:`BASE_SETTINGS` of a base model's ``base_config``, after checking that
    ``overrides`` (the settings given for the run) do not change them.

    Raises:
        TrainingError: an override that differs from the base model's value.
    """
    from rnn_apps.training import TrainingError

    cfg = dict(cfg)
    for k in BASE_SETTINGS:
        v = base_config[k]
        if overrides.get(k) is not None and overrides[k] != v:
            raise TrainingError(f"Fine-tuning keeps the base model's {k} ({v!r}); received {k}={overrides[k]!r}.")
        cfg[k] = v
    return cfg


def default_window(season: Optional[int], horizon: int, train_len: int) -> int:
    """Two seasons (or two horizons without a season), at most what leaves half the training part as pairs."""
    w = 2 * season if season else 2 * horizon
    return int(max(1, min(w, (train_len - horizon) // 2)))


def resolve_settings(series: fdata.Series, cfg: dict) -> dict:
    """Fill in the season (``season_source`` says how), the window and the split of ``series``.

    Returns:
        ``cfg`` with ``season``, ``season_source``, ``window``, ``split`` set.

    Raises:
        ForecastDataError: the series is too short.
    """
    cfg = dict(cfg)
    check_mode(cfg["mode"])
    n, horizon = len(series), cfg["horizon"]
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer; received {horizon!r}.")
    test = fdata.backtest_length(n, horizon, cfg["val_fraction"])
    if n - test < 2:
        raise fdata.ForecastDataError(f"The series has {n} values, too few to hold out a back-test of {test} "
                                      f"(the horizon is {horizon}) and still train.")
    train_part = series.values[: n - test]
    if cfg.get("season"):
        if int(cfg["season"]) != cfg["season"] or cfg["season"] < 2:
            raise ValueError(f"season must be an integer of at least 2; received {cfg['season']!r}.")
        cfg["season_source"] = cfg.get("season_source") or "given"
    else:
        cfg["season"] = fmetrics.estimate_season(train_part)
        cfg["season_source"] = "estimated from the training part's autocorrelation" if cfg["season"] else "none detected"
    chosen = not cfg.get("window")
    if chosen:
        cfg["window"] = default_window(cfg["season"], horizon, n - test)
    try:
        split = fdata.make_split(n, cfg["window"], horizon, cfg["val_fraction"])
    except fdata.ForecastDataError:
        if not chosen:
            raise
        # the default window shrinks to what the training part allows: not even one value of history fits
        raise fdata.ForecastDataError(
            f"The series has {n} values; after the back-test of {test} ({cfg['val_fraction']:g} of the series, "
            f"--val-fraction, and at least the horizon) {n - test} remain, too few to train on any history with a "
            f"horizon of {horizon}. Use a longer series or a smaller --horizon or --val-fraction.") from None
    cfg["split"] = split.split
    return cfg


def _pairs(values, origins, window, horizon, normalizer):
    x, y = fdata.windows(values, origins, window, horizon)
    xn, yn = normalizer.encode(x, y)
    return xn[..., None].astype(np.float32), yn.astype(np.float32)


def train_batch_size(batch_size: int, windows: int, replicas: int = 1) -> int:
    """The batch a run trains with: ``batch_size`` windows, at most all ``windows`` of the training part (a larger
    batch trained each window many times an epoch), a multiple of the ``replicas`` (rounded up)."""
    return -(-min(int(batch_size), max(1, int(windows))) // replicas) * replicas


def _train_dataset(x, y, batch_size: int, seed: int, start_step: int, multiple: int = 1):
    """Endless batches of global steps ``start_step, ...``: each epoch a seeded permutation of the windows, each
    window once (batches of ``batch_size``, the last one the rest). ``multiple``: a batch's size is a multiple of it
    (the replicas: a short last batch is completed with the epoch's first windows, fewer than ``multiple``)."""
    import tensorflow as tf

    from rnn_apps.datasets import generator_dataset

    n = len(x)
    steps = max(1, -(-n // batch_size))

    def gen():
        step = start_step
        while True:
            epoch, k = divmod(step, steps)
            perm = np.random.default_rng([seed, epoch]).permutation(n)
            idx = perm[k * batch_size:(k + 1) * batch_size]
            short = -len(idx) % multiple
            if short:
                idx = np.concatenate([idx, perm[np.arange(short) % n]])
            yield x[idx], y[idx]
            step += 1

    spec = (tf.TensorSpec((None,) + x.shape[1:], tf.float32), tf.TensorSpec((None,) + y.shape[1:], tf.float32))
    return generator_dataset(gen, spec), steps


def series_fingerprint(values) -> str:
    """A short hash of a series' values (float64), recorded by a run so that ``--resume`` refuses other data."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()[:16]


def _check_same_series(run_dir: str, saved: dict, series: fdata.Series) -> None:
    """Refuse to resume the run ``run_dir`` (its config ``saved``) on another series than it was trained on.

    Raises:
        TrainingError: ``saved`` is not a forecast run's, or its series was of another length or other values.
    """
    from rnn_apps.training import TrainingError

    if not isinstance(saved.get("length"), int):
        raise TrainingError(f"{run_dir} is not a forecast training run; choose another --run-dir.")
    if saved.get("length") != len(series):
        raise TrainingError(f"{run_dir} was trained on a series of {saved.get('length')} values; this one has "
                            f"{len(series)}. Resume with the same data, or choose another --run-dir.")
    # Of the same length is not the same series: another column of the file resumed silently and rewrote
    # the run's record (runs written before the fingerprint are checked by length alone).
    if saved.get("fingerprint") not in (None, series_fingerprint(series.values)):
        raise TrainingError(
            f"{run_dir} was trained on other values ({saved.get('name')!r} of {saved.get('source')}); these are "
            f"{series.name!r} of {series.source}. Resume with the same data, or choose another --run-dir.")


def train(series: fdata.Series, run_dir: str, epochs: int = 15, *, init_from: Optional[str] = None,
          **options) -> TrainResult:
    """Train a forecaster on ``series`` and back-test it.

    Fine-tuning (``init_from``): the run starts from an exported forecaster's weights and keeps its
    :data:`BASE_SETTINGS`; the split, the normalisation scale and the season are the new series' own.

    Args:
        series: The series (:func:`~rnn_apps.apps.forecast.data.read_csv` or ``demo_series``).
        run_dir: Checkpoints, ``config.json`` and ``history.jsonl``.
        epochs: Epochs of the run (a resumed run stops at the same step).
        init_from: An exported forecaster (a version or an app directory) to fine-tune. A resumed run
            starts from its checkpoint (or, when it has none yet, from the model its run directory names).
        **options: The run's :class:`~rnn_apps.apps.base.RunOptions` (``resume``: continue the run in
            ``run_dir``, its saved settings winning; ``save_every`` 0 by default: checkpoints at epoch ends
            only) and any of :data:`DEFAULTS` (None values are ignored).

    Returns:
        A dict: ``metrics`` (``model``, ``naive``, ``seasonal_naive``: each ``{"mae", "mape", "mape_skipped"}``,
        the last None without a season), ``forecast`` (list of ``horizon`` floats), ``future_labels``,
        ``backtest`` (``origins``, ``predictions``), ``config``, ``scale``, ``step``, ``history``, ``val_loss``,
        ``seconds``, ``train_pairs``, ``batch_size`` (the batch trained with: the setting's, at most the
        ``train_pairs``), ``backtest_pairs``, and the objects ``model`` and ``forecaster``. Fine-tuning
        adds ``metrics["before"]`` and ``base_val_loss``: the base model's back-test scores and loss on this
        series before training, and ``init_from``, the base's version directory.

    Raises:
        TrainingError: a fine-tuning setting of :data:`BASE_SETTINGS` that differs from the base model's.
    """
    from rnn_apps import training

    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; received {epochs!r}.")
    started = time.time()
    # float32 products: the forecaster's products are too small for bfloat16 to pay for its casts
    run, overrides = RunOptions.split(options, save_every=0, precision="float32")
    check_settings(overrides)  # sizes and rates, before the run directory is written
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, run.resume, CONFIG_FILE, app="forecast",
                                       check=lambda saved, _: _check_same_series(run_dir, saved, series))
    if saved is not None:
        init_from = saved.get("init_from")
    base = None
    if init_from and not contract.resumes_from_checkpoint(run_dir, saved):
        from rnn_apps.apps.forecast.export import load_config

        base = contract.read_base_model(init_from, load_config, vocab_key=None)
        init_from = base["model_dir"]
    if saved is None:
        cfg = resolve_settings(series, base_settings(cfg, base["config"], overrides) if base else cfg)
    t0 = time.time()
    training.set_seed(cfg["seed"])
    values, window, horizon, mode = series.values, cfg["window"], cfg["horizon"], cfg["mode"]
    split = fdata.Split(n=len(values), split=cfg["split"], window=window, horizon=horizon)
    normalizer = fdata.Normalizer.fit(values[: split.split])
    if mode == "direct":
        x, y = _pairs(values, split.train_origins, window, horizon, normalizer)
        vx, vy = _pairs(values, split.backtest_origins, window, horizon, normalizer)
    else:  # one step ahead: every origin whose next value is in the training part
        x, y = _pairs(values, np.arange(window, split.split), window, 1, normalizer)
        vx, vy = _pairs(values, split.backtest_origins, window, 1, normalizer)
    record = {"settings": cfg, "source": series.source, "name": series.name, "length": len(series),
              "fingerprint": series_fingerprint(values), "scale": normalizer.scale, "init_from": init_from}
    if saved is not None and saved.get("before"):
        record["before"] = saved["before"]  # the base's figures, measured when the run began
    contract.write_run_config(run_dir, record, app="forecast", saved=saved)

    import keras
    import tensorflow as tf

    strat = training.get_strategy(run.strategy)
    replicas = strat.num_replicas_in_sync
    batch_size = train_batch_size(cfg["batch_size"], len(x), replicas)
    _, steps = _train_dataset(x, y, batch_size, cfg["seed"], 0, replicas)
    if run.verbose:  # a long series takes a while to prepare, and its epochs are long: say what comes
        print(f"Series: {len(x):,} training windows of {window} values, {len(split.backtest_origins):,} back-test "
              f"forecasts of {horizon} steps; {steps:,} step{'s' * (steps != 1)} an epoch of {batch_size:,} windows "
              f"({time.time() - started:.0f} s to prepare).")
    with strat.scope():
        model = build_model(window, horizon, mode, cfg["cell"], cfg["units"])
        # No XLA: for these small models on a CPU, compiling costs more than it saves.
        contract.compile_model(model, cfg["learning_rate"], cfg["clipnorm"], steps * epochs, alpha=0.02, loss="mse",
                               metrics=[keras.metrics.MeanAbsoluteError(name="mae")], jit_compile=False)
        if base is not None:  # a resumed run's checkpoint then replaces these
            contract.assign_weights(model.weights, base["weights"], f"the base model {init_from}")
    val = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(256)
    origins = split.backtest_origins
    hist, truth = fdata.windows(values, origins, window, horizon)
    before = record.get("before", {})
    if base is not None:
        before = {"metrics": fmetrics.scores(truth, Forecaster(model, normalizer, window, horizon, mode).predict(hist)),
                  "loss": float(model.evaluate(val, verbose=0, return_dict=True)["loss"])}
        # kept in the run's config: a resumed run restores its checkpoint instead of reading the base again
        contract.write_run_config(run_dir, {**record, "before": before}, app="forecast", saved=saved)
    result = contract.fit_run(
        model, lambda start: _train_dataset(x, y, batch_size, cfg["seed"], start, replicas)[0], steps, epochs,
        run_dir, run, strategy=strat, final=None, app="forecast", validation_data=val, meta={"mode": mode},
    )
    train_seconds = time.time() - t0

    forecaster = Forecaster(model, normalizer, window, horizon, mode)
    pred = forecaster.predict(hist)
    metrics = {
        "model": fmetrics.scores(truth, pred),
        "naive": fmetrics.scores(truth, fmetrics.naive_forecast(values, origins, horizon)),
        "seasonal_naive": None,
    }
    season = cfg["season"]
    if season and origins.min() >= season:
        metrics["seasonal_naive"] = fmetrics.scores(truth, fmetrics.seasonal_naive_forecast(values, origins, horizon, season))
    if before:
        metrics["before"] = before["metrics"]
        result.update({"base_val_loss": before["loss"], "init_from": init_from})
    forecast = forecaster.predict(values[None, -window:])[0]
    history = result["history"]
    result.update({
        "metrics": metrics,
        "forecast": [float(v) for v in forecast],
        "future_labels": fdata.future_labels(series.timestamps, horizon),
        "backtest": {"origins": origins, "predictions": pred},
        "config": cfg,
        "scale": normalizer.scale,
        "val_loss": training.last_metric(history, "val_loss"),
        "train_pairs": int(len(x)),
        "batch_size": int(batch_size),
        "backtest_pairs": int(len(origins)),
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.time() - t0, 1),
        "model": model,
        "forecaster": forecaster,
        "normalizer": normalizer,
    })
    return result
