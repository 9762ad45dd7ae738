"""``rnn-apps card``: write an app's model card (:func:`rnn_apps.cards.write_card`)."""

from __future__ import annotations

import click

from rnn_apps.cli import options
from rnn_apps.cli.common import OutputFile, echo_json, friendly_errors, quiet_tensorflow


def _inputs(ctx, param, values) -> dict:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE (e.g. run_dir=runs/poetry); received {v!r}.", param=param)
        out[name.strip().replace("-", "_")] = value
    return out


@click.command("card")
@click.argument("app")
@options.model("APP")
@click.option("--out", "out_path", default=None, type=OutputFile(),
              help="Where to write the card (default: README.md in the model's app directory); its links to the "
                   "figures beside the model then lead to them.")
@click.option("-i", "--input", "inputs", multiple=True, callback=_inputs, metavar="NAME=VALUE",
              help="A measurement the app's card is written from (a training run, an evaluation's JSON ...); "
              "may be repeated. An unknown NAME is refused with the list of the app's inputs.")
@options.as_json("Print a JSON object with 'card' (the path), 'facts' and 'metrics'.")
@friendly_errors
def card(app, model_dir, out_path, inputs, as_json):
    """Write the model card of APP's model: its README.md with Hugging Face-style front matter.

    The card's front matter (language, license, tags, datasets and a model-index with the measured metrics)
    is read by model hubs; the facts of the exported model (version, size on disk, parameters, signatures)
    are computed from its files. Without --input, the measured sections of an existing card of the same
    version are kept, so a card is refreshed without measuring again; a new version gets a card written
    from its own settings, and the old card's "Versions" section is carried over. Export commands write
    the card too.

    \b
    Examples:
      rnn-apps card poetry
      rnn-apps card forecast --model models/forecast/2 --json
      rnn-apps card poetry -i run_dir=runs/poetry -i data=tang-poems.jsonl.gz
    """
    with quiet_tensorflow():
        from rnn_apps import cards

        written = cards.write_card(app, model_dir, out_path, **inputs)
    if as_json:
        echo_json(written)
    else:
        click.echo(written["card"])


COMMANDS = {None: [card]}
