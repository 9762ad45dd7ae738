"""The app contract: what every app's training run, export and inference wrapper share.

An app holds only what is its own (settings, model, data, its ``tf.Module`` and signatures, card
sections, commands); the pipeline around it is written here once:

* Training: :func:`compile_model` (Adam on a cosine-decayed learning rate), :func:`write_run_config` /
  :func:`read_run_config` (a run directory's ``config.json``), :func:`fit_run` (the resumable fit of
  :func:`rnn_apps.training.fit_resumable`, then the final weights), :func:`load_run_weights` (a run's
  final weights, else its newest checkpoint) and :class:`TrainResult`, the one return type of every
  app's ``train()``.
* Export: :func:`save_module` writes an app's ``tf.Module`` with its signatures and its
  ``assets.extra/<app>.json`` atomically (:func:`rnn_apps.export.atomic_export`); :func:`read_meta` reads
  that file back, refusing a model of another app with a one-line error.
* Inference: :class:`Predictor`, the base of the inference wrappers (``Filler``, ``PoemGenerator``,
  ``SentimentClassifier``, ``Translator``, ``ImageCaptioner``): the model directory is looked up, its
  settings read and the SavedModel loaded once, in one place.

The apps themselves are found by name through :mod:`rnn_apps.predictors`, never by importing each other.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import numbers
import os
import platform
import sys
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from rnn_apps import export as shared_export
from rnn_apps.paths import default_model_dir

CONFIG_FILE = "config.json"
FINAL_WEIGHTS = "final.weights.h5"


# ----------------------------------------------------------------------------------------------- training

class TrainResult(dict):
    """What every app's ``train()`` returns: the figures and objects of the run, by name.

    A ``dict`` (the keys each app documents: ``step``, ``history``, ``stats``, ``seconds``, ``config``,
    ``model`` ...), so existing callers that index it keep working, with the keys also readable as
    attributes (``result.model``), :meth:`summary` for the figures a command reports and :meth:`export`
    to export the trained model with its app's exporter.

    Args:
        app: The app that trained it (``rnn_apps.apps.<app>``).
    """

    def __init__(self, *args, app: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"This training result has no {name!r}; it has {sorted(self)}.") from None

    def summary(self, *keys: str, optional: tuple = ()) -> dict:
        """The values of ``keys`` (each must be present) and of those of ``optional`` that are present."""
        missing = [k for k in keys if k not in self]
        if missing:
            raise KeyError(f"This training result has no {missing}; it has {sorted(self)}.")
        out = {k: self[k] for k in keys}
        out.update({k: self[k] for k in optional if k in self})
        return out

    def export(self, app_dir: str, version: Optional[int] = None, **kwargs) -> str:
        """Export the trained model to ``app_dir/<version>`` (default: the next version); return that directory.

        Calls the app's ``export_result(result, app_dir, version, **kwargs)`` (in ``rnn_apps.apps.<app>.export``),
        which passes the result's model, vocabulary, settings and figures to the app's exporter.
        """
        if not self.app:
            raise ValueError("This training result does not name its app; export it with the app's own exporter.")
        return importlib.import_module(f"rnn_apps.apps.{self.app}.export").export_result(self, app_dir, version,
                                                                                          **kwargs)


@dataclass(frozen=True)
class RunOptions:
    """How a training run runs, the same options for every app (what it learns is the app's own settings).

    Every app's ``train(data, run_dir, epochs, **options)`` takes these by name; :meth:`split` separates
    them from the app's settings.

    Attributes:
        resume: Continue the run in ``run_dir`` from its newest checkpoint (its saved settings win).
        strategy: ``default``, ``mirrored`` or ``multi-worker`` (:func:`rnn_apps.training.get_strategy`).
        tensorboard: Also write TensorBoard logs under ``run_dir/tensorboard``.
        save_every: Also checkpoint every this many steps (0: at epoch ends only).
        verbose: Keras verbosity (0: silent).
        callbacks: Extra Keras callbacks.
        precision: The training steps' matrix products, one of :data:`rnn_apps.precision.CHOICES`:
            ``auto`` (bfloat16 where this CPU measures it faster), ``float32`` or ``bfloat16``
            (:func:`rnn_apps.precision.resolve`).
    """

    resume: bool = False
    strategy: str = "default"
    tensorboard: bool = False
    save_every: int = 100
    precision: str = "auto"
    verbose: int = 1
    callbacks: tuple = ()

    @classmethod
    def split(cls, options: dict, **defaults) -> tuple:
        """``(RunOptions, settings)``: the run options among ``options`` (those given as None, or not given:
        ``defaults``, the app's own, else the class's) and the remaining ``options``, the app's settings."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in options.items() if k in names and v is not None}
        run = cls(**{**defaults, **given})
        return dataclasses.replace(run, callbacks=tuple(run.callbacks)), {k: v for k, v in options.items()
                                                                          if k not in names}

    def fit_kwargs(self) -> dict:
        """The options as arguments of :func:`rnn_apps.training.fit_resumable`."""
        return {"resume": self.resume, "save_every": self.save_every, "tensorboard": self.tensorboard,
                "callbacks": list(self.callbacks), "verbose": self.verbose}


def token_classification(**loss_kwargs) -> dict:
    """``compile`` arguments of a model that predicts tokens: sparse cross-entropy from logits and accuracy.

    ``loss_kwargs`` go to :class:`rnn_apps.losses.SparseCrossEntropy` (Keras's sparse cross-entropy, one
    XLA kernel on TensorFlow; e.g. ``reduction``).
    """
    import keras

    from rnn_apps.losses import SparseCrossEntropy

    return {
        "loss": SparseCrossEntropy(**loss_kwargs),
        "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    }


def compile_model(model, learning_rate: float, clipnorm: float, total_steps: int, alpha: float = 0.05,
                  warmup_steps: int = 0, **compile_kwargs):
    """Compile ``model`` with Adam on a cosine decay from ``learning_rate`` to ``alpha`` of it over ``total_steps``.

    ``η_t = η · (α + (1 - α) · (1 + cos(π · t / T)) / 2)`` (Loshchilov & Hutter, 2017, without restarts),
    each variable's gradient clipped to a norm of ``clipnorm`` (Keras's ``clipnorm``, not a global norm). With
    ``warmup_steps`` W the rate first rises linearly from 0 to η over W steps and the decay spans the remaining
    ``total_steps`` - W. ``compile_kwargs`` (``loss``, ``weighted_metrics``, ``metrics``, ``jit_compile``: see
    :func:`token_classification`) go to ``model.compile``.
    """
    import keras

    if warmup_steps:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, int(total_steps) - warmup_steps), alpha=alpha, warmup_target=learning_rate,
            warmup_steps=warmup_steps)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, int(total_steps)),
                                                          alpha=alpha)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=clipnorm), **compile_kwargs)
    return model


# Settings only one app's runs have: how a run whose config.json predates its "app" key is recognised
# (the first app with any of its keys; sentiment before poetry, as both have num_layers).
_APP_MARKERS = (
    ("fill", ("mask_rate", "kind")),
    ("translate", ("encoder_units", "decoder_units", "source_min_count")),
    ("sentiment", ("max_tokens", "ngram_features", "lm_seq_len")),
    ("caption", ("backbone", "feature_dim", "image_size")),
    ("forecast", ("horizon", "window")),
    ("poetry", ("num_layers",)),
)


def run_app(record: dict) -> str:
    """The app (package name) whose training run wrote the config ``record``; "" when it cannot tell."""
    if not isinstance(record, dict):
        return ""
    if isinstance(record.get("app"), str) and record["app"]:
        return record["app"]
    settings = record.get("settings")
    if not isinstance(settings, dict):
        return ""
    for name, keys in _APP_MARKERS:
        if any(k in settings for k in keys):
            return name
    return ""


def check_run_app(run_dir: str, record: dict, app: str) -> None:
    """Refuse a run directory whose config ``record`` is another app's run than ``app`` (a package name).

    Raises:
        TrainingError: ``record`` names (or, written before runs named their app, plainly is) another app's.
    """
    found = run_app(record)
    if app and found and found != app:
        from rnn_apps.training import TrainingError

        raise TrainingError(f"{run_dir} is a {found} training run, not a {app} one; choose another --run-dir.")


def machine_record() -> dict:
    """The machine this process trains on, as a run's config records it for its card.

    Returns:
        ``{"cpus": CPU cores, "gpus": GPUs TensorFlow sees, "platform": e.g. "Linux-6.1-x86_64-with-glibc2.36"}``;
        ``gpus`` only when TensorFlow is already loaded (it is not loaded for this alone: a run whose command
        has not needed it yet records its CPUs only). Never the host's or the user's name.
    """
    record = {"cpus": os.cpu_count()}
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):  # a partly imported module has no config yet
        record["gpus"] = len(tf.config.list_physical_devices("GPU"))
    record["platform"] = platform.platform(terse=True)
    return record


def write_run_config(run_dir: str, record: dict, config_file: str = CONFIG_FILE, app: str = "",
                     saved: Optional[dict] = None) -> str:
    """Write a run's ``config.json`` (``{"app": ..., "settings": ..., "data": ..., "stats": ...}`` and what the
    app adds); ``app``, the app's package name, is recorded so that another app refuses the run.

    The record gains ``machine`` (:func:`machine_record`), which the run's model card states as where it
    trained. A resumed run keeps the record of the machine it began on: ``saved`` is the config it was started
    with (the second value of :func:`rnn_apps.training.run_settings`, None for a new run), and a run begun
    before runs recorded their machine gets none. A record that already says where it trained (``machine``,
    or the JAX recipes' ``trained_on``, written on the machine that exports the model) is written as it is.
    A corpus file (``data``) is recorded with its fingerprint (:func:`rnn_apps.training.data_fingerprint`).
    """
    if "machine" not in record and "trained_on" not in record:
        machine = machine_record() if saved is None else saved.get("machine")
        if machine:
            record = {**record, "machine": machine}
    if isinstance(record.get("data"), str) and "data_fingerprint" not in record:
        from rnn_apps.training import data_fingerprint

        # a resumed run checks it (rnn_apps.training.check_same_data) and keeps the one it began with; a new
        # run's corpus is read through once more here
        fingerprint = saved.get("data_fingerprint") if saved else None
        fingerprint = fingerprint or data_fingerprint(record["data"])
        if fingerprint:
            record = {**record, "data_fingerprint": fingerprint}
    if app:
        record = {"app": app, **record}
    path = os.path.join(run_dir, config_file)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, indent=1)
    return path


def read_run_config(run_dir: str, config_file: str = CONFIG_FILE, app: str = "", expect: str = "") -> dict:
    """A run's whole ``config.json`` record (its ``settings`` and what the app saved with them).

    ``app`` names the run in messages; ``expect`` (an app's package name) refuses another app's run.

    Raises:
        FileNotFoundError: ``run_dir`` has no such file (it is not a training run of ``app``).
        TrainingError: the run is another app's than ``expect`` (:func:`check_run_app`).
    """
    path = os.path.join(run_dir, config_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} is not a{' ' + app if app else ''} training run (no {config_file}).")
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if expect:
        check_run_app(run_dir, record, expect)
    return record


def load_run_weights(model, run_dir: str, compile_fn: Callable, weights: Optional[str] = None,
                     final: str = FINAL_WEIGHTS, fallbacks: Sequence[str] = ()):
    """Load ``weights`` (default: the run's ``final`` weights, else the first of its ``fallbacks`` files that
    exists), else restore the run's newest checkpoint: what every app's ``load_run_model``, and so every
    ``rnn-apps export APP --run-dir``, loads a run with.

    A checkpoint holds the optimizer's state too, so ``compile_fn(model)`` compiles the model first.

    A run that another process is training is refused: its checkpoints are replaced under the reader, and its
    weights are not those of its end. A run whose training stopped before its planned steps (killed, or cut
    short) is loaded as it stands, with a one-line note on stderr naming the step loaded and the planned total
    (:func:`unfinished_run_note`).

    Raises:
        TrainingError: the run is being trained, or has neither weights nor a checkpoint yet.
    """
    import sys

    from rnn_apps.training import CheckpointManager, TrainingError, lock_holder

    holder = lock_holder(run_dir)
    if holder is not None:
        raise TrainingError(f"{run_dir} is being trained (its lock is held by process {holder}); export it when the "
                            "training ends, or stop the training first (--resume continues it later).")
    manager = CheckpointManager(run_dir)
    progress = manager.progress()
    for path in [weights] if weights else [os.path.join(run_dir, name) for name in (final, *fallbacks)]:
        if os.path.exists(path):
            model.load_weights(path)
            note = None if weights else unfinished_run_note(run_dir, progress, os.path.basename(path))
            if note:
                print(note, file=sys.stderr)
            return model
    checkpoint = manager.latest()
    if checkpoint is None:
        raise TrainingError(f"{run_dir} has no checkpoint to export yet (nor {os.path.basename(final)}): its "
                            "training has not written one.")
    compile_fn(model)
    manager.restore(model, checkpoint)
    note = unfinished_run_note(run_dir, progress, None, os.path.basename(final))
    if note:
        print(note, file=sys.stderr)
    return model


def unfinished_run_note(run_dir: str, progress: Optional[dict], loaded: Optional[str],
                        final: str = FINAL_WEIGHTS) -> Optional[str]:
    """The note of a run loaded before its training ended (None for a run that ended).

    Args:
        run_dir: The run.
        progress: Its checkpoints' record (:meth:`rnn_apps.checkpoints.CheckpointManager.progress`).
        loaded: The weights file loaded (a name in ``run_dir``), or None: its newest checkpoint.
        final: The name of the run's final weights (a run recorded before plans were has only these to show
            that it ended).
    """
    if progress is None or progress.get("ended"):
        return None
    step, total, epochs = progress.get("step"), progress.get("total_steps"), progress.get("epochs")
    if total is None:  # recorded before checkpoints held their plan: only the final weights tell an end
        if loaded is not None:
            return None
        return (f"Note: {run_dir} stopped before the end of its training (it has no {final}): exporting its newest "
                f"checkpoint, step {step}. --resume continues the run.")
    if step >= total:  # stopped between its last checkpoint and its end: that checkpoint is the end
        return None
    planned = f"step {step} of the {total} planned ({epochs} epoch{'s' if epochs != 1 else ''})"
    if loaded is None:
        return (f"Note: {run_dir} stopped before the end of its training: exporting its newest checkpoint, "
                f"{planned}. --resume continues the run.")
    return (f"Note: {run_dir} stopped before the end of its training, at {planned}: exporting its {loaded}, "
            "written before it stopped, not that checkpoint. --resume continues the run.")


def fit_run(model, make_dataset: Callable, steps_per_epoch: int, epochs: int, run_dir: str, run: RunOptions, *,
            strategy, final: Optional[str] = FINAL_WEIGHTS, app: str = "", **fit_kwargs) -> TrainResult:
    """:func:`rnn_apps.training.fit_resumable` with the ``run`` options, then the final weights to
    ``run_dir/final`` (on the chief; ``final=None``: none). ``app``: the app the result belongs to.

    The training steps' product precision is ``run.precision``'s (:func:`run_precision`); the result says which
    (``precision``). ``fit_kwargs``: ``validation_data``, ``keep_best``, ``patience``, ``average_best``, ``meta``
    (see ``fit_resumable``).
    """
    from rnn_apps import training

    products = run_precision(model, run_dir, run)
    fit_kwargs["meta"] = {**(fit_kwargs.get("meta") or {}), "precision": products}  # what a resumed run goes on with
    result = training.fit_resumable(model, make_dataset, steps_per_epoch, epochs, run_dir, strategy=strategy,
                                    **run.fit_kwargs(), **fit_kwargs)
    result["precision"] = products  # of the training steps
    if final and training.is_chief(strategy):
        model.save_weights(os.path.join(run_dir, final))
    return TrainResult(result, run_dir=run_dir, app=app)  # the run says what data the model's card names


def run_precision(model, run_dir: str, run: RunOptions) -> str:
    """Set the product precision of ``model``'s training steps for ``run`` (:mod:`rnn_apps.precision`) and return
    it, for the run's checkpoints to record (``precision`` in their ``meta.json``).

    ``auto`` measures once, where one process decides for all the replicas (not under ``multi-worker``, whose
    workers would measure apart: float32 there unless ``bfloat16`` is given). A run resumed with ``auto`` goes
    on as its newest checkpoint says it was trained (float32 for a checkpoint written before runs recorded it),
    so that it computes what an uninterrupted run does; ``float32`` or ``bfloat16`` given to a resumed run
    changes it. A model without supporting layers trains in float32."""
    from rnn_apps import precision
    from rnn_apps.checkpoints import CheckpointManager

    if not precision.supporting_layers(model):  # nothing to measure or set
        if run.precision == "bfloat16" and run.verbose:
            print("Note: this model has no layers whose products take bfloat16; its training steps stay float32.",
                  file=sys.stderr)
        return "float32"
    latest = CheckpointManager(run_dir).latest() if run.precision == "auto" else None
    if latest is not None:
        try:
            with open(os.path.join(latest, "meta.json"), encoding="utf-8") as f:
                record = json.load(f)
            products = record.get("precision", "float32") if isinstance(record, dict) else None
        except (OSError, ValueError):  # unreadable: restoring the checkpoint says what is wrong with it
            products = None
        if products not in precision.PRODUCT_DTYPES:
            products = "float32"
        why = f"{products} matrix products, as the run was trained"
    elif run.precision == "auto" and run.strategy == "multi-worker":
        products, why = "float32", "float32 matrix products (auto does not measure for several workers)"
    else:
        products, why = precision.resolve(run.precision)
    precision.set_training_precision(model, products)
    if run.verbose and (products == "bfloat16" or run.precision == "auto"):  # float32 as given goes without saying
        print(f"Training steps with {why}.", file=sys.stderr)
    return products


def stop_early(cfg: dict) -> dict:
    """:func:`fit_run`'s ``keep_best`` and ``patience`` for an app that ends with its last epoch unless its
    ``patience`` setting asks it to stop early (``--patience N``; a run saved before the setting existed has none:
    0, every epoch).

    With N > 0 the run watches the validation loss, stops after N epochs without a lower one and ends with the
    weights of its best epoch: those of the last epoch, N epochs past the best, are the worse ones.
    """
    patience = int(cfg.get("patience", 0))
    return {"keep_best": "val_loss", "patience": patience} if patience else {}


def kept_history(result: dict) -> list:
    """The epoch rows of a run (``fit_run(...)["history"]``) that describe the weights it ended with: the row of
    its best epoch when it kept one, else all of them (the last row is the last epoch's). Read a figure with
    :func:`rnn_apps.training.last_metric`."""
    best = result.get("best_epoch")
    return [r for r in result["history"] if r.get("epoch") == best] if best else result["history"]


def assign_weights(variables, arrays, what: str) -> None:
    """Assign ``arrays`` to ``variables`` one by one (e.g. a base model's weights to a fresh copy).

    Raises:
        ValueError: the counts or a shape differ (``what`` names the source in the message).
    """
    import numpy as np

    if len(variables) != len(arrays):
        raise ValueError(f"{what} has {len(arrays)} weights but this model has {len(variables)}.")
    for v, w in zip(variables, arrays):
        w = np.asarray(w)
        if tuple(v.shape) != w.shape:
            raise ValueError(f"Cannot load a weight of shape {w.shape} from {what} into {v.path} {tuple(v.shape)}.")
        v.assign(w)


def assign_grown_weights(model, weights) -> None:
    """Copy a base model's weights (in ``model.weights`` order) into ``model``, whose vocabulary may have grown.

    A weight of the same shape is copied whole. One that is larger along exactly one axis (an embedding's
    rows, an output layer's columns and bias, after new tokens were appended to the vocabulary) gets the
    base values in its leading slice and keeps its fresh initial values for the new tokens.

    Raises:
        ValueError: the two models differ in number of weights or in any other way.
    """
    import numpy as np

    if len(weights) != len(model.weights):
        raise ValueError(f"The base model has {len(weights)} weights; this model has {len(model.weights)}.")
    for v, w in zip(model.weights, weights):
        w = np.asarray(w)
        shape = tuple(v.shape)
        grown = [i for i, (a, b) in enumerate(zip(shape, w.shape)) if a != b]
        if shape == w.shape:
            v.assign(w)
        elif len(shape) == w.ndim and len(grown) == 1 and shape[grown[0]] > w.shape[grown[0]]:
            new = np.array(v.numpy())
            new[tuple(slice(0, n) for n in w.shape)] = w
            v.assign(new)
        else:
            raise ValueError(f"Cannot load a base weight of shape {w.shape} into {v.path} of shape {shape}.")


# ------------------------------------------------------------------------------------------------- export

def exported_at() -> str:
    """The time of an export, as written into ``assets.extra/<app>.json`` (UTC, ISO 8601, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def save_module(module, signatures: dict, app_dir: str, version: Optional[int], config_name: str, meta: dict,
                after_save: Optional[Callable[[str], None]] = None) -> str:
    """Save ``module`` with ``signatures`` and ``assets.extra/<config_name>`` = ``meta`` to ``app_dir/<version>``.

    Atomic (:func:`rnn_apps.export.atomic_export`); ``after_save(path)`` may amend the SavedModel before it
    is moved into place. Returns the version directory.

    Every app's export comes here, so every app gets the same refusal of a directory that is not its own
    (:func:`rnn_apps.export.check_export_target`, keyed on ``config_name``, ``<app>.json``).

    Raises:
        FileExistsError: ``app_dir`` holds a version of another app, or a README.md that is not a model card
            of this app (refused before anything is written); or the version already exists.
    """
    import tensorflow as tf

    def write(path):
        tf.saved_model.save(module, path, signatures=signatures)
        # A compiled Keras model tracks its optimizer: a module that holds one would ship Adam's two moments
        # too (three times the weights on disk, of no use for inference). The modules hold uncompiled views.
        training_state = [name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))
                          if "/optimizer/" in f"/{name}"]
        if training_state:
            raise RuntimeError(f"The export would hold the optimizer's state ({len(training_state)} variables, "
                               f"e.g. {training_state[0]}); hold the model through rnn_apps.export.inference_view.")
        if after_save is not None:
            after_save(path)

    return shared_export.atomic_export(write, app_dir, version, {config_name: meta})


def read_export(model_dir: str, load_config: Callable[[str], dict]) -> tuple:
    """What fine-tuning or exporting again needs of an exported model: ``(version directory, its
    assets.extra settings (``load_config``), the loaded SavedModel, its weights as NumPy arrays in the
    order of the Keras model's ``weights``)``. ``model_dir``: a version or an app directory (newest version);
    the version directory returned is absolute."""
    import tensorflow as tf

    # absolute: a fine-tuning run records it, and may be resumed from another working directory
    model_dir = os.path.abspath(shared_export.resolve_model_dir(model_dir))
    meta = load_config(model_dir)
    loaded = tf.saved_model.load(model_dir)
    # Weights stored as float16 (see rnn_apps.export.StoredWeights) come back as the float32 the model trains in.
    weights = [v.numpy() for v in loaded.model_weights]
    return model_dir, meta, loaded, [w.astype("float32") if w.dtype == "float16" else w for w in weights]


def read_base_model(model_dir: str, load_config: Callable[[str], dict], vocab_key: Optional[str] = "vocab") -> dict:
    """What a fine-tuning run starts from: an exported model's settings, vocabulary and weights.

    Args:
        model_dir: A version directory, or an app directory (its newest version).
        load_config: The app's reader of its ``assets.extra`` settings (it refuses a model of another app).
        vocab_key: The key of the vocabulary in those settings; None for an app without one.

    Returns:
        A dict: ``config`` (the training settings), ``vocab`` (a :class:`~rnn_apps.vocab.Vocabulary`, or None),
        ``weights`` (NumPy arrays in the order of the Keras model's ``weights``), ``model_dir`` (the version
        directory) and ``meta`` (the whole ``assets.extra`` file).
    """
    from rnn_apps.vocab import Vocabulary

    model_dir, meta, _, weights = read_export(model_dir, load_config)
    vocab = Vocabulary.from_json(meta[vocab_key], model_dir) if vocab_key else None
    return {"config": meta["config"], "vocab": vocab, "weights": weights, "model_dir": model_dir, "meta": meta}


def resumes_from_checkpoint(run_dir: str, saved: Optional[dict]) -> bool:
    """Whether a run continues from a checkpoint: ``saved`` (its config, from
    :func:`rnn_apps.training.run_settings`) is not None and ``run_dir`` holds one.

    A fine-tuning run read its base model when it began; once a checkpoint holds its weights, resuming it
    does not need the base again (which may since have been moved or deleted), so the apps read the base
    only when this is False.
    """
    from rnn_apps.checkpoints import CheckpointManager

    return saved is not None and CheckpointManager(run_dir).latest() is not None


def read_meta(model_dir: str, config_name: str, app: str, format: Optional[str] = None) -> dict:
    """The ``assets.extra/<config_name>`` of an exported model (settings, vocabulary, card facts).

    Raises:
        FileNotFoundError: the model has no such file, or (with ``format``) one of another format: it is
            not a model of ``app``.
    """
    try:
        meta = shared_export.read_extra(model_dir, config_name)
    except OSError:
        raise FileNotFoundError(f"{model_dir} has no assets.extra/{config_name}: it is not a {app} model.") from None
    except ValueError as e:  # not JSON
        raise FileNotFoundError(f"{model_dir}: assets.extra/{config_name} is not readable JSON ({e}).") from None
    if format is not None and (not isinstance(meta, dict) or meta.get("format") != format):
        raise FileNotFoundError(f"{model_dir} is not a {app} model (its {config_name} has no format {format}).")
    return meta


# ---------------------------------------------------------------------------------------------- inference

def text_list(texts, refusal: str = "texts must be a list of strings, not one string.") -> list:
    """``texts`` (a list, a tuple, a NumPy array of strings ...) as a list; a single string (or bytes) is refused
    with ``TypeError(refusal)``, as it would be read as one text a character."""
    if isinstance(texts, (str, bytes, bytearray, memoryview)):
        raise TypeError(refusal)
    return list(texts)


def check_is_text(text, number: int, error: type, what: str = "Text") -> None:
    """Refuse, with ``error``, text number ``number`` (from 1; ``what`` names it) when it is not a ``str``."""
    if not isinstance(text, str):
        raise error(f"{what} {number} is a {type(text).__name__}, not text.")


def check_batch_size(batch_size, error: type) -> int:
    """``batch_size`` as an ``int`` when it is a positive integer (Python's or NumPy's); else ``error``, saying
    what was received (a batch size of 0 or 2.5 would otherwise fail deep in a loop)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise error(f"batch_size must be a positive integer; received {batch_size!r}.")
    return int(batch_size)


class Predictor:
    """Base of the inference wrappers: an exported model found, its settings read and loaded once.

    Subclasses set :attr:`app` (its model's settings are ``assets.extra/<app>.json``, and ``models/<app>``
    is used when no ``model_dir`` is given); with :attr:`lazy` the SavedModel is read on first use, so that
    bad input is refused before the model is loaded.

    Args:
        model_dir: A version directory or an app directory (its newest version); default: the shipped model.

    Attributes:
        model_dir: The version directory.
        meta: The model's ``assets.extra/<app>.json``.
        config: Its training settings (``meta["config"]``).
    """

    app: str = ""
    lazy: bool = False

    def __init__(self, model_dir: Optional[str] = None):
        if not self.app:
            raise TypeError(f"{type(self).__name__} must set the class attribute `app`.")
        self.model_dir = shared_export.resolve_model_dir(model_dir or default_model_dir(self.app))
        self.meta = self.read_meta(self.model_dir)
        self.config = self.meta.get("config", {}) if isinstance(self.meta, dict) else {}
        self._loaded = None
        if not self.lazy:
            self.load()

    @classmethod
    def read_meta(cls, model_dir: str) -> dict:
        """The model's ``assets.extra/<app>.json`` (:func:`read_meta`); an app with more checks overrides this."""
        return read_meta(model_dir, f"{cls.app}.json", cls.app)

    def load(self):
        """The SavedModel (``tf.saved_model.load``), read on the first call only."""
        if self._loaded is None:
            import tensorflow as tf

            self._loaded = tf.saved_model.load(self.model_dir)
        return self._loaded

    @property
    def loaded(self):
        """The loaded SavedModel: its signatures and variables (``loaded.model_weights``)."""
        return self.load()

    @loaded.setter
    def loaded(self, saved_model):
        """Use ``saved_model`` (any object with the same signatures) instead of the model's own."""
        self._loaded = saved_model

    @property
    def _model(self):  # the name the wrappers have used for the loaded model
        return self.load()

    @_model.setter
    def _model(self, loaded):
        self._loaded = loaded

    @property
    def signatures(self):
        """The SavedModel's signatures by name."""
        return self.load().signatures

    @classmethod
    def check_text_at(cls, text, number: int, error: type, what: str = "Text") -> None:
        """Refuse, with ``error``, text number ``number`` (from 1; ``what`` names it: "Review 3") when it is not a
        string or is outside the app's limits (:func:`rnn_apps.limits.check_text`, the checks ``rnn-apps
        serve`` applies too). A class method: it needs no model, so a command can refuse before loading one."""
        from rnn_apps import limits
        from rnn_apps.textio import text_name

        check_is_text(text, number, error, what)
        with limits.errors_as(error):
            limits.check_text(limits.APPS[cls.app], "text", text, where=text_name(text, f"{what} {number}"))

    @classmethod
    def text_refusals(cls, texts, error: type, what: str = "Text") -> dict:
        """The texts :meth:`check_text_at` refuses, whatever the model: index -> message (empty, over-long, not
        a string); a class method, so that a command can say so before the model (and TensorFlow) loads."""
        refused = {}
        for i, t in enumerate(texts):
            try:
                cls.check_text_at(t, i + 1, error, what)
            except error as e:
                refused[i] = str(e)
        return refused

    def check_texts(self, texts, error: type, what: str = "Text", nothing: str = "No text.") -> None:
        """Refuse, with ``error`` (a one-line message naming the text), what the app's texts cannot be:
        a single string instead of a list (``TypeError``), no text (``nothing``), and each text that
        :meth:`check_text_at` refuses."""
        texts = text_list(texts)
        if not texts:
            raise error(nothing)
        for i, t in enumerate(texts, 1):
            self.check_text_at(t, i, error, what)
