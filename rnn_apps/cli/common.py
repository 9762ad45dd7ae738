"""What every ``rnn-apps`` command shares: clear one-line errors, JSON output, progress on stderr, text inputs.

The app command modules (``rnn_apps.apps.<app>.commands``) import these; they import no TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys

import click


def friendly_errors(fn):
    """Print known errors as one clear line (exit status 1) instead of a traceback.

    Known errors are the library's error classes (:func:`rnn_apps.errors.known_error_types`), any error
    raised while TensorFlow parses a SavedModel (a damaged or incomplete model directory), and a path that
    cannot be used (no permission, a path through a file).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            from rnn_apps.errors import known_error_types

            # First: TensorFlow's own errors are known types too, but out of a SavedModel's loading their
            # text (stack notes, device advice) says nothing a user can act on.
            if raised_loading_a_saved_model(e):
                raise click.ClickException(
                    f"Could not load the model ({type(e).__name__}: {_telling_line(str(e))[:300]}). Its directory is "
                    "damaged or incomplete: export it again, or choose another with --model.") from None
            if isinstance(e, known_error_types()) and not isinstance(e, click.ClickException):
                raise click.ClickException(str(e)) from None
            if isinstance(e, (PermissionError, NotADirectoryError)) and e.filename:  # a path the user gave
                raise click.ClickException(f"{e.filename}: {(e.strerror or 'cannot be used').lower()}.") from None
            raise

    return wrapper


def _telling_line(message: str) -> str:
    """The line of a TensorFlow error that names what is wrong (a missing file), else its first line."""
    lines = [s.strip() for s in message.strip().splitlines() if s.strip()] or ["(no message)"]
    return next((s for s in lines if "No such file" in s or "Failed to find" in s), lines[0])


def raised_loading_a_saved_model(e: BaseException) -> bool:
    """Whether ``e`` came out of ``tf.saved_model.load`` (a truncated or corrupt SavedModel: its protobuf
    cannot be parsed, or its variables cannot be read). Any error there means the files are unusable."""
    tb = e.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename.replace(os.sep, "/")
        if path.endswith(("tensorflow/python/saved_model/load.py", "tensorflow/python/saved_model/loader_impl.py")):
            return True
        tb = tb.tb_next
    return False


class IntegerRange(click.IntRange):
    """``click.IntRange`` that calls its value an integer: "'abc' is not a valid integer." and ``INTEGER`` in
    ``--help``, where click says "integer range" (the range itself is shown beside it, as ``x>=1``)."""

    name = "integer"


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and infinities (a range check alone lets NaN through,
    since every comparison with NaN is false); its value is called a number, as :class:`IntegerRange`'s
    is an integer."""

    name = "number"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


class OutputFile(click.Path):
    """``click.Path`` for a file a command writes once its work is done (a plot, a CSV, a TSV).

    The path is checked when the command line is read, so that a typo costs nothing: a folder that does not
    exist, or (``figure=True``) an extension matplotlib cannot write, would otherwise fail only after the
    model has run or trained, losing its results.
    """

    def __init__(self, figure: bool = False):
        super().__init__(dir_okay=False)
        self.figure = figure

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        if not os.fspath(path).strip():  # the commands read '' as "not given": it would be skipped silently
            self.fail("expected a file path; received an empty one.", param, ctx)
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(folder):
            self.fail(f"{os.fspath(path)!r}: the folder {folder} does not exist; create it first.", param, ctx)
        ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
        if self.figure and not ext:  # matplotlib writes a PNG, adding .png: the command names the file written
            return os.fspath(path) + ".png"
        if self.figure:
            from matplotlib.backend_bases import FigureCanvasBase

            formats = sorted(FigureCanvasBase.get_supported_filetypes())
            if ext not in formats:
                self.fail(f"{os.fspath(path)!r}: a figure cannot be written as .{ext}; expected a file ending in "
                          f"one of: {', '.join('.' + f for f in formats)}.", param, ctx)
        return path


class Folder(click.Path):
    """``click.Path`` for a folder a command writes into (``--run-dir``, ``--export``): an empty value is
    refused, where the commands would read it as "not given" and silently keep no run or export nothing."""

    def __init__(self):
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        if not os.fspath(path).strip():
            self.fail("expected a folder path; received an empty one.", param, ctx)
        return path


def numbered_paths(path: str, n: int) -> list:
    """The files of ``n`` figures asked for as ``path``: ``path`` itself for one, else ``stem-1.ext`` ...
    ``stem-n.ext`` (``--plot-attention att.png`` with three inputs: att-1.png, att-2.png, att-3.png)."""
    if n == 1:
        return [path]
    stem, ext = os.path.splitext(path)
    return [f"{stem}-{i}{ext or '.png'}" for i in range(1, n + 1)]


def refuse_overwriting_inputs(outputs: dict, inputs) -> None:
    """Refuse an output file that is one of the command's input files (``--output same.csv`` would replace the
    data with the forecast; ``--plot-attention photo.jpg`` the photo with the plot), before any work.

    Args:
        outputs: ``{option: path or None}``, e.g. ``{"--output": "next.csv", "--plot": None}``; a path may be a
            list (numbered plots of several inputs).
        inputs: The input files' paths (``-`` and paths that do not exist are skipped).

    Raises:
        click.UsageError: an output path is an input file.
    """
    existing = [p for p in inputs if p and p != "-" and os.path.isfile(p)]
    for option, paths in outputs.items():
        for path in [paths] if isinstance(paths, str) else (paths or []):
            if not os.path.isfile(path):
                continue
            for given in existing:
                if os.path.samefile(path, given):
                    raise click.UsageError(f"{option} {path} is an input file ({given}); writing it would replace "
                                           "it. Choose another file.")


@contextlib.contextmanager
def quiet_tensorflow():
    """Import TensorFlow without its start-up noise, and keep its native log lines off stderr in the block
    (``RNN_APPS_VERBOSE=1`` shows them)."""
    from rnn_apps.quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    with native_stderr_silenced():
        yield


def echo_json(obj) -> None:
    """Print ``obj`` as indented JSON, non-ASCII characters as they are."""
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def verbosity() -> int:
    """Keras progress bars on a terminal, one line per epoch otherwise."""
    return 1 if sys.stderr.isatty() else 2


def progress_to_stderr(enabled: bool):
    """With --json, progress goes to stderr so that stdout holds only the JSON."""
    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()


def show(result, as_json: bool, text) -> None:
    """Print ``result``: JSON with ``--json``, else the text ``text(result)`` makes of it."""
    if as_json:
        echo_json(result)
    else:
        click.echo(text(result))


def echo_exported(version_dir: str, as_json: bool) -> None:
    """Print what an export command wrote: the version directory, or ``{"exported": ...}`` with ``--json``."""
    if as_json:
        echo_json({"exported": version_dir})
    else:
        click.echo(version_dir)


def report(summary: dict, as_json: bool) -> None:
    """Print a command's summary: JSON with ``--json``, else one ``key: value`` line each, the entries of a
    nested record (``stats``) indented under its key, not printed as a Python dict."""
    if as_json:
        echo_json(summary)
    else:
        click.echo("\n".join(_summary_lines(summary)))


def _summary_lines(summary: dict, indent: str = "") -> list:
    lines = []
    for k, v in summary.items():
        if isinstance(v, dict) and v:
            lines += [f"{indent}{k}:", *_summary_lines(v, indent + "  ")]
        else:
            shown = ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else ("none" if v is None else v)
            lines.append(f"{indent}{k}: {shown}")
    return lines


def refuse_options_given(names, reason: str) -> None:
    """A usage error if any of the current command's parameters ``names`` was given on the command line.

    For options that apply to one mode of a command only (``evaluate caption --synthetic`` has no
    ``--split``): silently ignoring them would give the user a result for something else than asked.
    """
    ctx = click.get_current_context()
    given = [p.opts[0] for p in ctx.command.params
             if p.name in names and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
    if given:
        names = given[0] if len(given) == 1 else ", ".join(given[:-1]) + " and " + given[-1]
        raise click.UsageError(f"{names} {'is' if len(given) == 1 else 'are'} not used {reason}.")


def options_left_out() -> list:
    """The parameters of the current command that its user left out: their values are the command's defaults
    (none outside a command)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return []
    left_out = (click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP)
    return [p.name for p in ctx.command.params if ctx.get_parameter_source(p.name) in left_out]


@contextlib.contextmanager
def defaults_apply_when_a_run_starts():
    """Within the block, the settings a training command passes from options left out are its defaults, not its
    user's: a new run takes them, a resumed run keeps its own (:func:`rnn_apps.training.settings_not_given`).

    Without it ``fine-tune poetry --resume`` was refused for fine-tune's default learning rate, which differs from
    the run's when it was started with another, though the user had left --learning-rate out.
    """
    from rnn_apps.training import settings_not_given

    with settings_not_given(options_left_out()):
        yield


def gather_texts(texts, files, read_file, error, usage: str, nothing: str) -> list:
    """The TEXT arguments ('-': standard input) and then the ``--file`` paths' lines, in order.

    ``read_file(path, stdin)`` reads one file's texts; ``error`` (an app error class) carries ``usage``
    when nothing was given and ``nothing`` when all that was given is blank.
    """
    stdin = click.get_binary_stream("stdin")
    inputs = []
    for t in texts:
        inputs.extend(read_file("-", stdin) if t == "-" else [t])
    for path in files:
        inputs.extend(read_file(path, stdin))
    if not texts and not files:
        raise error(usage)
    if not inputs:
        raise error(nothing)
    return inputs


def each_or_refused(items, work, error: type) -> tuple[dict, dict]:
    """Run ``work(item)`` on each item, so that one bad input does not cost the others their answers.

    Returns:
        ``(answers, refused)``: item index -> what ``work`` returned, and item index -> the message of the
        ``error`` it raised. Other exceptions propagate.
    """
    answers, refused = {}, {}
    for i, item in enumerate(items):
        try:
            answers[i] = work(item)
        except error as e:
            refused[i] = str(e)
    return answers, refused


def answer_those_that_can(texts: list, run, refusals, what: str, error: type) -> tuple[dict, dict]:
    """Answer every text ``run(texts)`` can: ``(answers, refused)``, text index -> answer and -> message.

    ``run`` answers a list of texts at once and raises ``error`` for the first it cannot take; then
    ``refusals(texts)`` names each one it would refuse (index -> message), and the others are answered by one
    more call, so that one bad text does not cost the others their answers. When none is left, ``error`` says
    so (:func:`refuse_if_none_left`; ``what``: "texts can be translated").
    """
    try:
        return dict(enumerate(run(texts))), {}
    except error:
        refused = refusals(texts)
        refuse_if_none_left(refused, len(texts), what, error)
        kept = [i for i in range(len(texts)) if i not in refused]
        return dict(zip(kept, run([texts[i] for i in kept]))), refused


def refuse_if_none_left(refused: dict, total: int, what: str, error: type) -> None:
    """Raise ``error`` when every one of ``total`` inputs was refused (``refused``: index -> message): the one
    message, or all of them after "None of the N {what}" ("poems can be checked")."""
    if len(refused) == total:
        messages = [refused[i] for i in sorted(refused)]
        raise error(messages[0] if total == 1 else f"None of the {total} {what}:\n" + "\n".join(messages))


def answer_rows(texts: list, answers: dict, refused: dict, row, key: str) -> list:
    """The ``--json`` rows of a command over several texts: ``row(answer)`` for each answered text, ``{key:
    text, "error": message}`` for each refused one, in the order of ``texts``, each with where it was read
    (:func:`rnn_apps.textio.with_origin`)."""
    from rnn_apps import textio

    return [textio.with_origin(row(answers[i]) if i in answers else {key: str(t), "error": refused[i]}, t)
            for i, t in enumerate(texts)]


def echo_refused(refused: dict) -> None:
    """Name each refused input on standard error (the command then ends with status 1)."""
    for i in sorted(refused):
        click.echo(f"Error: {refused[i]}", err=True)


def with_card(app: str, version_dir: str, run_dir: str | None = None, from_model: str | None = None) -> str:
    """Write the model card of a version just exported (:func:`rnn_apps.cards.write_card`) from the training
    run ``run_dir`` or the model ``from_model`` it was exported from (which say the data it was trained on);
    returns ``version_dir``, so that an export command reads ``summary["exported"] = with_card(app, export(...))``."""
    from rnn_apps.cards import exported_from, write_card

    write_card(app, version_dir, trained_on=exported_from(run_dir, from_model))
    return version_dir


def card_kept(app_dir: str, from_model: str | None) -> bool:
    """Whether an export into ``app_dir`` keeps the app's card instead of writing one: an export of an exported
    model (``from_model``) into a folder that has a card keeps it, as its measured sections are not in the
    model to write again; a folder without one gets a card written from the model's own record."""
    return bool(from_model) and os.path.isfile(os.path.join(app_dir, "README.md"))


def train_and_report(train, *args, summarize, export_to=None, exporter=None, as_json: bool = False, **kwargs):
    """The body of every ``train APP`` and ``fine-tune APP`` command.

    Runs ``train(*args, verbose=..., **kwargs)`` (Keras progress on stderr under ``--json``), exports the result to
    ``export_to`` when it is given (with ``exporter(result, export_to)``, by default :func:`export_trained`) and
    prints ``summarize(result)``, with the exported version directory under ``"exported"``. Returns the result.
    An ``export_to`` that holds another app's models is refused before training, not after it. On ``--resume``
    only the settings given on the command line are held against the run's (:func:`defaults_apply_when_a_run_starts`).
    """
    if export_to:
        from rnn_apps.export import check_export_target

        check_export_target(export_to, train.__module__.split(".")[2])  # rnn_apps.apps.<app>.task
    with progress_to_stderr(as_json), defaults_apply_when_a_run_starts():
        result = train(*args, verbose=verbosity(), **kwargs)
    summary = summarize(result)
    if export_to:
        summary["exported"] = (exporter or export_trained)(result, export_to)
    report(summary, as_json)
    return result


def export_trained(result, app_dir: str, version=None, **kwargs) -> str:
    """Export a training result (:class:`rnn_apps.apps.base.TrainResult`) with its app's exporter to
    ``app_dir/<version>`` and write the app directory's model card; returns the version directory."""
    return with_card(result.app, result.export(app_dir, version, **kwargs), run_dir=result.get("run_dir"))
