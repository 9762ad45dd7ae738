"""The ``rnn-apps demo`` commands: small experiments over the recurrent cells. TensorFlow is imported inside
the commands."""

from __future__ import annotations

import click

from rnn_apps.cli import options
from rnn_apps.cli.common import OutputFile, echo_json, friendly_errors


def _split(value: str, param, kind=str) -> list:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if not items:
        raise click.BadParameter("give a comma-separated list with at least one item.", param=param)
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, e.g. 10,25,50,100; received {value!r}.",
                                 param=param) from None


def _cells_option(ctx, param, value):
    if value is None:
        return None
    from rnn_apps.apps.demos.long_memory import DEFAULT_CELLS  # the registered cells; imports no TensorFlow

    names = [n.lower() for n in _split(value, param)]
    for n in names:
        if n not in DEFAULT_CELLS:
            raise click.BadParameter(f"unknown cell {n!r}; expected one of {', '.join(sorted(DEFAULT_CELLS))}.",
                                     param=param)
    return list(dict.fromkeys(names))  # each once: a repeat would train the same cell again


def _lengths_option(ctx, param, value):
    if value is None:
        return None
    from rnn_apps.apps.demos.long_memory import check_lengths

    try:
        return check_lengths(_split(value, param, int))
    except ValueError as e:
        raise click.BadParameter(str(e), param=param) from None


@click.group("demo")
def demo():
    """Small experiments that show how the recurrent cells behave."""


@demo.command("long-memory")
@click.option("--cells", default=None, callback=_cells_option,
              help="Comma-separated cells (default: simple_rnn,lstm,gru,peephole_lstm,coupled_lstm).")
@click.option("--lengths", default=None, callback=_lengths_option,
              help="Comma-separated sequence lengths T, each >= 2 (default: 10,25,50,100).")
@click.option("--steps", type=options.SIZE, default=None,
              help="Adam updates per (cell, T) (default 1000).")
@click.option("--units", type=options.SIZE, default=None, help="Units of the recurrent cell (default 32).")
@click.option("--batch-size", type=options.SIZE, default=None, help="Sequences per update (default 64).")
@click.option("--seed", type=options.SEED, default=0, show_default=True, help="Same seed, same result (on one machine).")
@click.option("--plot", "plot_path", default="long_memory.png", show_default=True, type=OutputFile(figure=True),
              help="Where to save the figure (PNG): accuracy against T, and the gradient reaching each step.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the full result as JSON (accuracy, loss, gradient-norm profiles, config).")
@click.option("--quick", is_flag=True, help="A tiny version (seconds): T 5,12, 8 steps, 8 units.")
@friendly_errors
def long_memory(cells, lengths, steps, units, batch_size, seed, plot_path, as_json, quick):
    """Why LSTM: train each cell on the adding problem for several sequence lengths T.

    Each step carries a value in [0, 1] and a marker; the answer, read at the end, is the sum of the two
    marked values (one in each half of the sequence), so the first must be carried across at least T/2
    steps. Prints the validation accuracy (answers within 0.04 of the sum) per cell and T, and draws it
    against T with the mean gradient norm ||dL/dx_t|| reaching each input step at the longest T, which
    shows the vanishing gradient of a plain RNN under backpropagation through time. Progress goes to
    stderr. The default size takes a few minutes on a CPU.

    \b
    Examples:
      rnn-apps demo long-memory
      rnn-apps demo long-memory --quick
      rnn-apps demo long-memory --cells simple_rnn,lstm --lengths 10,50,100 --steps 500
      rnn-apps demo long-memory --plot docs/long_memory.png --json > long_memory.json
    """
    from rnn_apps.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from rnn_apps.apps.demos.long_memory import DEFAULT_CELLS, DEFAULT_LENGTHS, QUICK, format_table, \
        plot_long_memory, run_long_memory

    kwargs = dict(QUICK) if quick else {}
    kwargs["cells"] = cells or DEFAULT_CELLS
    if lengths:
        kwargs["lengths"] = lengths
    kwargs.setdefault("lengths", DEFAULT_LENGTHS)
    for name, value in (("steps", steps), ("units", units), ("batch_size", batch_size)):
        if value is not None:
            kwargs[name] = value
    result = run_long_memory(seed=seed, progress=lambda line: click.echo(line, err=True), **kwargs)
    plot_long_memory(result, plot_path)
    click.echo(f"Figure: {plot_path} ({result['total_seconds']} s of training)", err=True)
    if as_json:
        echo_json(result)
    else:
        click.echo(format_table(result))


COMMANDS = {None: [demo]}
