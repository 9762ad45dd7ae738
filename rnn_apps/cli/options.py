"""Option bundles: each flag is written once here, so it means the same in every command.

A setting whose default belongs to an app (``--units``, ``--patience`` ...) is declared with ``default=None``
(with ``--resume`` a run keeps its own settings) and its help shows the app's default, read from the app's
``DEFAULTS``: :func:`default_of`.
"""

from __future__ import annotations

import os

import click

from rnn_apps.cli.common import FiniteFloatRange, Folder, IntegerRange, OutputFile

# The names of rnn_apps.cells.CELLS (that module imports Keras, which --help must not wait for; a test holds the
# two equal).
CELL_NAMES = ("lstm", "gru", "simple_rnn", "peephole_lstm", "coupled_lstm")


def default_of(defaults: dict, key: str) -> str:
    """`` (default X)`` for a help text, X read from an app's settings (``DEFAULTS``)."""
    value = defaults[key]
    return f" (default {'none' if value is None else value})"


def bundle(*decorators):
    """One decorator applying ``decorators`` in the order written (the options appear in --help in that order)."""

    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


class AliasedOption(click.Option):
    """An option that also accepts old spellings, which --help does not show (``old=("--out",)``)."""

    def __init__(self, *args, old=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.old = tuple(old)

    def get_help_record(self, ctx):
        shown = self.opts
        self.opts = [o for o in shown if o not in self.old]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown

    def get_error_hint(self, ctx) -> str:  # errors name the option by its current spelling
        return " / ".join(f"'{o}'" for o in self.opts if o not in self.old) or super().get_error_hint(ctx)


def as_json(help: str = "Print the result as JSON (progress goes to stderr).") -> callable:
    """``--json``: the result as JSON on stdout; ``help`` says what the JSON holds."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def model(app: str, help: str | None = None) -> callable:
    """``--model DIR``: the model to use (default: :func:`rnn_apps.paths.default_model_dir`'s, the newest version
    of ./models/APP when the working directory has one, else of the shipped models/APP)."""
    return click.option("--model", "model_dir", default=None,
                        help=help or f"A model directory (default: the newest version in the shipped models/{app}, "
                        f"or in ./models/{app} when you exported one there).")


def poem_model() -> callable:
    """``--poem-model DIR|none``: the poem language model that weighs the fill model's candidates (the same in
    ``fill-poem`` and ``evaluate fill``, so that the evaluation measures what the command does)."""
    return click.option("--poem-model", "poem_model_dir", default=None, metavar="DIR|none",
                        help="A poem model that weighs each blank's candidates by how the poem goes on after it "
                             "(default: the newest version in the shipped models/poetry); none: the fill model "
                             "alone, as its SavedModel answers over REST.")


def evaluation(app: str, data_help: str, splits: list, default: str, split_help: str, json_help: str,
               data_type=None) -> callable:
    """The options of an ``evaluate`` command: ``--data`` (required), ``--model``, ``--split`` (which part of the
    data) and ``--json``."""
    return bundle(click.option("--data", required=True, type=data_type, help=data_help), model(app),
                  click.option("--split", type=click.Choice(splits), default=default, show_default=True,
                               help=split_help), as_json(json_help))


def limit(help: str) -> callable:
    """``--limit N``: measure only the first N examples, at least 1 (a slice [:0] or [:-1] would silently
    measure all or too few)."""
    return click.option("--limit", type=IntegerRange(min=1), default=None, help=help)


def beam(help: str, app: str) -> callable:
    """``--beam N``: a decoder's beam width, 1 being greedy; the range is ``app``'s ``beam_size``, refused as a
    usage error in the server's words."""
    from rnn_apps import limits

    return click.option("--beam", type=limits.option_type(app, "beam_size", where="the beam width"), default=None,
                        help=help)


def default_beam(help: str, app: str) -> callable:
    """``--default-beam N``: the beam width an export writes into its ``serving_default`` (and the CLI's
    default), checked at once against ``app``'s ``beam_size`` range; None when not given (each command's
    help says what it then is)."""
    from rnn_apps import limits

    return click.option("--default-beam", type=limits.option_type(app, "beam_size", where="the default beam width"),
                        default=None, help=help)


def call_batch(what: str, default: int = 32) -> callable:
    """``--batch-size N`` of a command that runs a model: inputs per model call (not a training batch)."""
    return click.option("--batch-size", type=IntegerRange(min=1), default=default, show_default=True,
                        help=f"{what} per model call.")


def plot_attention(help: str) -> callable:
    """``--plot-attention OUT``: save a picture of the attention weights."""
    return click.option("--plot-attention", "plot_path", default=None, type=OutputFile(figure=True), help=help)


def export(default: str | None = None, example: str | None = None, old=(), help: str | None = None) -> callable:
    """``--export APP_DIR``: where a model is exported, as APP_DIR/<next version>/ (a TF Serving model directory);
    ``old`` are former spellings, accepted but not shown."""
    if help:
        text = help
    elif default:
        text = "Export the model to this app directory, as its next version."
    else:
        text = f"Export the trained model to this app directory, as its next version (e.g. {example})."
    return click.option("--export", *old, "export_dir", cls=AliasedOption, old=old, default=default, type=Folder(),
                        show_default=bool(default), help=text)


def export_target(app: str, default: str | None = None) -> callable:
    """The options that say where ``rnn-apps export APP`` writes: ``--export APP_DIR`` (``default`` says what it
    is when not given; models/APP unless said), with the old ``--models ROOT`` (ROOT/APP) kept as a hidden alias
    (:func:`export_dir_for` reads the two), ``--version`` and ``--json``."""
    return bundle(
        click.option("--export", "export_dir", default=None, type=Folder(),
                     help=f"App directory to export to, as its next version (default: {default or f'models/{app}'})."),
        click.option("--models", "models_root", default=None, hidden=True),
        click.option("--version", type=IntegerRange(min=1), default=None, help="Version number (default: next)."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print a JSON object with 'exported', the version directory written."))


def from_model(what: str, keeps: str = "its settings and figures kept") -> callable:
    """``--from-model DIR``: export the weights of an exported model (``what``: "an exported poem model") again
    with this version's graph, instead of a training run's (:func:`export_source` checks that one is given)."""
    return click.option("--from-model", "from_model", default=None,
                        help=f"Instead of a run: {what}, whose weights are exported again with this version's graph "
                             f"({keeps}).")


def export_source(run_dir: str | None, from_model: str | None, what: str) -> None:
    """Refuses an export command given neither or both of ``--run-dir`` and ``--from-model`` (``what``: "an
    exported poem model")."""
    if (run_dir is None) == (from_model is None):
        raise click.UsageError(f"Give one of --run-dir (a training run) or --from-model ({what})"
                               + (", not both." if run_dir else "."))


def export_dir_for(export_dir: str | None, models_root: str | None, app: str) -> str:
    """The app directory an export command writes to: ``--export``, else the old ``--models ROOT``'s ROOT/app,
    else models/app."""
    if export_dir and models_root:
        raise click.UsageError("Give --export APP_DIR (--models ROOT is its old spelling), not both.")
    return export_dir or os.path.join(models_root or "models", app)


def run_dir(default: str | None, help: str = "Checkpoints, logs, vocabulary.") -> callable:
    """``--run-dir DIR``: a training run's directory (``default`` shown in --help)."""
    return click.option("--run-dir", default=default, type=Folder(), show_default=bool(default), help=help)


def epochs(default: int, help: str | None = None) -> callable:
    """``--epochs N``: epochs to train, at least 1."""
    return click.option("--epochs", type=IntegerRange(min=1), default=default, show_default=True,
                        help=help or "Total epochs (a resumed run trains on up to this many).")


def resume(help: str = "Continue the interrupted run in --run-dir.") -> callable:
    """``--resume``: continue a run from its last checkpoint."""
    return click.option("--resume", is_flag=True, help=help)


strategy = click.option(
    "--strategy", type=click.Choice(["default", "mirrored", "multi-worker"]), default="default", show_default=True,
    help="tf.distribute strategy: one device, all local GPUs/CPUs, or workers from TF_CONFIG.",
)


# What every --seed but generate-poem's takes: NumPy's and Keras's seeds are unsigned 32-bit integers.
SEED = IntegerRange(0, 2**32 - 1)


def seed(defaults: dict | None = None) -> callable:
    """``--seed``: the same seed gives the same losses on a CPU (default: the app's)."""
    suffix = default_of(defaults, "seed") if defaults else ""
    return click.option("--seed", type=SEED, default=None,
                        help=f"Seed: the same seed gives the same losses on a CPU{suffix}.")


def save_every(default: int) -> callable:
    """``--save-every N``: a checkpoint every N steps."""
    return click.option("--save-every", type=IntegerRange(min=1), default=default, show_default=True,
                        help="Checkpoint every N steps (and at each epoch end).")


def _tensorboard_installed(ctx, param, value):
    """Refuse --tensorboard without the tensorboard package now, not with a traceback after an epoch."""
    if value:
        from rnn_apps.training import TrainingError, check_tensorboard

        try:
            check_tensorboard()
        except TrainingError as e:
            raise click.BadParameter(str(e)) from None
    return value


tensorboard = click.option("--tensorboard", is_flag=True, callback=_tensorboard_installed,
                           help="Write TensorBoard logs to RUN_DIR/tensorboard (needs the tensorboard package).")

precision = click.option(
    "--precision", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True,
    help="Matrix products of the training steps: bfloat16 operands (about twice as fast on CPUs with bfloat16 "
         "instructions), or float32. auto times both at the start and takes bfloat16 where it is at least 1.25 "
         "times as fast; a resumed run keeps its own. Weights, states, loss and the exported model stay float32.")

keep_best = click.option(
    "--keep-best/--keep-last", default=None,
    help="Keep the weights of the epoch with the lowest validation loss (default) or those of the last epoch.",
)


def patience(defaults: dict) -> callable:
    """``--patience N``: stop after N epochs without a lower validation loss; 0: train every epoch."""
    return click.option("--patience", type=IntegerRange(min=0), default=None,
                        help="Stop after this many epochs without a lower validation loss (0: train every epoch)"
                        f"{default_of(defaults, 'patience')}.")


def cell(defaults: dict, what: str = "Recurrent cell") -> callable:
    """``--cell``: one of the registered cells of :mod:`rnn_apps.cells`."""
    return click.option("--cell", type=click.Choice(CELL_NAMES), default=None,
                        help=f"{what}{default_of(defaults, 'cell')}.")


def setting(flag: str, defaults: dict, help: str, type=None, key: str | None = None) -> callable:
    """An app setting (``--units``, ``--dropout`` ...): ``None`` unless given, its help ending with the app's
    default."""
    key = key or flag.lstrip("-").replace("-", "_")
    return click.option(flag, key, type=type, default=None, help=help + default_of(defaults, key) + ".")


# A size or count of a network, a batch or a sequence (--units, --layers, --embedding-dim, --batch-size, --max-len,
# --tokens-per-batch ...): at least 1, the range the library holds too (rnn_apps.checks.SIZE_SETTINGS).
SIZE = IntegerRange(min=1)
# A share of units or inputs dropped or masked in training (--dropout, --mask-rate): from 0 up to (not including) 1,
# NaN refused (rnn_apps.checks.RATE_SETTINGS).
RATE = FiniteFloatRange(0, 1, max_open=True)
# A share of training examples augmented (--flip-prob): from 0 to 1, NaN refused.
SHARE = FiniteFloatRange(0, 1)


def size(flag: str, defaults: dict, help: str, key: str | None = None) -> callable:
    """An app's size setting (``--units``, ``--layers``, ``--batch-size`` ...): a positive integer (:data:`SIZE`)."""
    return setting(flag, defaults, help, SIZE, key)


def rate(flag: str, defaults: dict, help: str) -> callable:
    """An app's rate setting (``--dropout``, ``--mask-rate``): from 0 up to (not including) 1 (:data:`RATE`)."""
    return setting(flag, defaults, help, RATE)


def training(run: str, epochs_default: int, save: int | None = None, epochs_help: str | None = None,
             resume_help: str = "Continue the interrupted run in --run-dir.") -> callable:
    """The options of every training command: --run-dir, --epochs, --resume, --strategy (and --save-every,
    --tensorboard and --precision when the command checkpoints during an epoch: the apps with large models)."""
    opts = [run_dir(run), epochs(epochs_default, epochs_help), resume(resume_help), strategy]
    if save is not None:
        opts += [save_every(save), tensorboard, precision]
    return bundle(*opts)


def learning_rate(default: float | None, help: str = "Adam's peak learning rate, cosine decay",
                  defaults: dict | None = None, flag: str = "--learning-rate") -> callable:
    """``--learning-rate``: a finite rate above 0 (NaN, 0 and negative rates are refused before any work).

    With ``defaults`` (an app's settings) the option is ``None`` unless given and its help shows the app's default,
    as :func:`setting`; else ``default`` is shown.
    """
    rate = FiniteFloatRange(0, 10, min_open=True)
    if defaults is not None:
        return setting(flag, defaults, help, rate)
    return click.option(flag, flag.lstrip("-").replace("-", "_"), type=rate, default=default, show_default=True,
                        help=help + ".")


def fine_tuning(app: str, epochs_default: int, rate: float, rate_help: str = "Adam's peak learning rate, cosine decay",
                export_option: callable | None = None, between=(), model_help: str | None = None,
                save: int | None = None) -> callable:
    """The options every ``fine-tune APP`` command starts with: --model (the newest shipped model by default),
    ``between`` (options of the app's own that belong next to --model), --export (``models-finetuned/APP`` unless
    ``export_option`` says otherwise), --run-dir (``runs/APP-finetune``), --epochs, --resume, --strategy,
    --save-every and --tensorboard when the app checkpoints during an epoch (``save``: its steps between
    checkpoints, as in ``train APP``; :func:`training`) and --learning-rate (``rate`` by default: a run starts with
    it; a resumed run keeps its own unless the option is given, as every default of a training command,
    :func:`rnn_apps.cli.common.defaults_apply_when_a_run_starts`)."""
    return bundle(
        model(app, model_help or f"Start from this model (default: the newest shipped models/{app})."),
        *between,
        export_option or export(f"models-finetuned/{app}", old=("--out",)),
        training(f"runs/{app}-finetune", epochs_default, save=save),
        learning_rate(rate, rate_help),
    )


def val_fraction(defaults: dict, help: str) -> callable:
    """``--val-fraction``: the share held out for validation, from 0 up to (not including) 1; NaN is refused."""
    return setting("--val-fraction", defaults, help, FiniteFloatRange(0, 1, max_open=True))


def min_count(defaults: dict, help: str, flag: str = "--min-count") -> callable:
    """``--min-count N`` (or another ``flag``): how often a token must occur to join a vocabulary, at least 1."""
    return setting(flag, defaults, help, IntegerRange(min=1))


def fine_tuning_on_poems(app: str, epochs_default: int, rate: float, defaults: dict, save: int) -> callable:
    """The options of ``fine-tune poetry`` and ``fine-tune fill``, the two models of poems: ``--data`` (the
    user's poems), those of :func:`fine_tuning` (``save``: steps between checkpoints, as in ``train APP``),
    ``--min-count`` (a new character's), ``--val-fraction``, ``--patience``, ``--seed`` and ``--json``."""
    return bundle(
        click.option("--data", required=True, type=click.Path(dir_okay=False),
                     help="Your poems: chinese-poetry JSON (lines, .gz too) or UTF-8 text (one poem a line, or "
                          "poems separated by blank lines)."),
        fine_tuning(app, epochs_default, rate, save=save),
        min_count(defaults, "A character new to the model joins its vocabulary when your poems use it this often"),
        val_fraction(defaults, "Share of your poems held out for validation"),
        patience(defaults),
        seed(defaults),
        as_json(),
    )
