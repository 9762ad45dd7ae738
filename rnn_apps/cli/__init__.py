"""The ``rnn-apps`` command line: a registry that asks each app for its commands.

Each app's ``rnn_apps.apps.<app>.commands`` module holds ``COMMANDS``, a dict from a verb to the click commands
the app adds there: ``None`` for top-level commands (``generate-poem``, ``classify`` ...), ``"train"``,
``"fine-tune"``, ``"evaluate"``, ``"export"`` for the subcommands named after the app. The commands are
thin wrappers over the library; TensorFlow is imported inside them, so ``rnn-apps --help`` is instant. The
app modules are read on first use of a group, so importing this package imports no app.
"""

from __future__ import annotations

import functools
import importlib
import os

import click

from rnn_apps import __version__

APPS = ("poetry", "sentiment", "translate", "caption", "fill", "forecast", "demos")
"""The apps whose ``commands`` module the registry reads, in this order."""

SHARED = ("rnn_apps.cli.serve", "rnn_apps.cli.card")
"""Modules of commands that belong to no app; each holds ``COMMANDS`` as the apps do."""


TENSORFLOW_VERBS = ("train", "fine-tune", "evaluate", "export")
"""Verbs whose commands all run TensorFlow: it is imported first, without its native start-up lines."""


def _tensorflow_first(callback):
    """``callback`` after a quiet import of TensorFlow (an app's module would import it with its start-up
    lines on stderr, before the command's own output or one-line error). Runs after click parsed the
    arguments, so ``--help`` and usage errors stay instant."""

    @functools.wraps(callback)
    def run(*args, **kwargs):
        from rnn_apps.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        return callback(*args, **kwargs)

    return run


class Registry(click.Group):
    """A group that adds, on first use, the commands that each app declares for its verb."""

    def __init__(self, *args, verb: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.verb = verb
        self.loaded = False

    def load(self) -> None:
        """Add the commands of every app (and of :data:`SHARED`) for this group's verb, once."""
        if self.loaded:
            return
        self.loaded = True
        modules = [f"rnn_apps.apps.{app}.commands" for app in APPS] + list(SHARED)
        for name in modules:
            for command in importlib.import_module(name).COMMANDS.get(self.verb, ()):
                if self.verb in TENSORFLOW_VERBS:
                    command.callback = _tensorflow_first(command.callback)
                self.add_command(command)

    def list_commands(self, ctx):
        self.load()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self.load()
        return super().get_command(ctx, name)


@click.group(cls=Registry, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnn-apps")
def cli():
    """Recurrent-network apps: Tang poems, movie-review sentiment, translation, image captions, forecasts.

    \b
    Examples:
      rnn-apps generate-poem
      rnn-apps generate-poem --acrostic 春夏秋冬 --form qijue
      rnn-apps fill-poem "床前明月□，疑是地上霜。"
      rnn-apps classify "A moving, beautifully acted film."
      rnn-apps caption scene.png --plot-attention attention.png
      rnn-apps translate "I love you." --beam 4
      rnn-apps train poetry --data tang-poems.jsonl.gz
      rnn-apps card poetry
      rnn-apps serve
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before any command imports TensorFlow


@cli.group(cls=Registry, verb="train")
def train():
    """Train an app's model from scratch (resumable)."""


@cli.group("fine-tune", cls=Registry, verb="fine-tune")
def fine_tune():
    """Continue training a shipped model on your own data."""


@cli.group(cls=Registry, verb="evaluate")
def evaluate():
    """Measure a model on a corpus."""


@cli.group("export", cls=Registry, verb="export")
def export_group():
    """Export a training run, or an exported model again, as a SavedModel (TF Serving layout, atomic)."""


def main():
    """The ``rnn-apps`` console script.

    A usage error (a bad option value, a missing argument) is one line, as every other error of the
    commands, with the command's ``--help`` to read, rather than click's usage block before it.
    """
    import sys

    try:
        code = cli.main(prog_name="rnn-apps", standalone_mode=False)
    except click.UsageError as e:
        where = f" (rnn-apps {e.ctx.command_path.split(' ', 1)[1]} --help shows the options)" if (
            e.ctx is not None and " " in e.ctx.command_path) else " (rnn-apps --help lists the commands)"
        click.echo(f"Error: {e.format_message()}{where}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
