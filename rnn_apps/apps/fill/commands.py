"""The fill-in-the-blank commands of ``rnn-apps`` (registered in :mod:`rnn_apps.cli`): thin wrappers.

TensorFlow is imported inside the commands, so ``rnn-apps --help`` stays instant.
"""

from __future__ import annotations

import os

import click

from rnn_apps._cli_common import (
    _STRATEGY, _echo_json, _friendly_errors, _gather_texts, _progress_to_stderr, _report, _verbosity,
)


def _export_run(r: dict, app_dir: str, version=None) -> str:
    from rnn_apps.apps.fill.export import export_fill

    card = {"summary": {k: r.get(k) for k in ("step", "val_accuracy", "val_loss", "stats", "seconds")}}
    return export_fill(r["model"], r["vocab"], r["config"], app_dir, version, card=card)


# ------------------------------------------------------------------------------------------- fill-poem


@click.command("fill-poem")
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A UTF-8 file with one text a line ('-': standard input). May be repeated.")
@click.option("--top-k", "top_k", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Candidates shown for each blank.")
@click.option("--model", "model_dir", default=None, help="A model directory (default: newest shipped models/fill).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of objects with 'input', 'text' (filled), 'blanks' (each with its "
                   "'candidates': 'character' and 'probability'), 'unknown_characters', 'converted_to_simplified'.")
@_friendly_errors
def fill_poem(texts, files, top_k, model_dir, as_json):
    """Fill in the blanks of a Tang poem with a bidirectional RNN.

    Mark each missing character with □ (or ＿ or _). The model reads the characters before AND after a
    blank (a forward LSTM up to it, a backward LSTM from the end back to it) and prints the filled text,
    then for each blank the top candidates with their probabilities.

    Several blanks are filled one at a time, the most confident first: the network is run again with
    each chosen character in place, so later blanks see the earlier choices (a blank's candidates are
    those of the pass that filled it).

    The model was trained on simplified script: traditional input is converted with OpenCC (and the
    output says so). Characters the model does not know are read as unknown and named in a note.
    At most 512 characters a text.

    \b
    Examples:
      rnn-apps fill-poem "床前明月□，疑是地上霜。"
      rnn-apps fill-poem "春眠不觉□，处处闻啼鸟。" "白日依山尽，黄河入海□。" --top-k 3
      rnn-apps fill-poem "□□明月光，疑是地上霜。" --json
      rnn-apps fill-poem --file lines.txt
      echo "红豆生南_，春来发几枝。" | rnn-apps fill-poem -
    """
    from rnn_apps.apps.fill.data import FillError
    from rnn_apps.apps.fill.filler import read_texts_file

    inputs = _gather_texts(texts, files, read_texts_file, FillError,
                          "Give a line with blanks: TEXT arguments (e.g. \"床前明月□，疑是地上霜。\"), --file PATH "
                          "(one text a line), or - to read standard input. See rnn-apps fill-poem --help.",
                          "Nothing to fill: the input holds only blank lines.")
    from rnn_apps.apps.fill import data as fdata

    for t in inputs:  # every text is checked before the model is loaded
        fdata.parse_text(t)
    from rnn_apps._quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    from rnn_apps.apps.fill.filler import Filler

    with native_stderr_silenced():
        results = Filler(model_dir).fill(inputs, top_k=top_k)
    for i, r in enumerate(results, 1):
        which = f"text {i}" if len(results) > 1 else "the text"
        if r.converted_to_simplified:
            click.echo(f"Note: {which} was converted from traditional to simplified script (the model's).", err=True)
        if r.unknown_characters:
            click.echo(f"Note: the model does not know these characters of {which} (read as unknown): "
                       f"{' '.join(r.unknown_characters)}.", err=True)
    if as_json:
        _echo_json([r.to_dict() for r in results])
        return
    for i, r in enumerate(results):
        if i:
            click.echo("")
        click.echo(r.text)
        for j, cands in enumerate(r.blanks, 1):
            shown = "  ".join(f"{c} {p:.1%}" for c, p in cands)
            click.echo(f"  □{j}: {shown}")


# ------------------------------------------------------------------------------------------- train


@click.command("fill")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="A poem corpus (chinese-poetry JSON lines or plain text, one poem a line).")
@click.option("--run-dir", default="runs/fill", show_default=True, help="Checkpoints, logs, vocabulary.")
@click.option("--epochs", default=2, show_default=True, help="Total epochs.")
@click.option("--max-steps", type=int, default=None,
              help="Total steps instead of whole epochs (split evenly into the epochs; default: whole epochs). "
                   "With --resume, extends (or shortens) the run: --resume --epochs 5 --max-steps 900.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --run-dir.")
@_STRATEGY
@click.option("--kind", type=click.Choice(["bidirectional", "forward"]), default=None,
              help="bidirectional (default) or the forward-only baseline, which predicts a character from "
                   "the ones before it only.")
@click.option("--embedding-dim", type=int, default=None, help="Embedding size (default 128).")
@click.option("--units", type=int, default=None, help="LSTM units per direction (default 256).")
@click.option("--cell", type=click.Choice(["lstm", "gru", "simple_rnn", "peephole_lstm", "coupled_lstm"]), default=None,
              help="Recurrent cell (default lstm).")
@click.option("--dropout", type=float, default=None, help="Dropout on the embedding and the context (default 0.1).")
@click.option("--mask-rate", type=float, default=None,
              help="Share of input characters replaced by <mask> in training (default 0.12).")
@click.option("--learning-rate", type=float, default=None, help="Adam's peak learning rate, cosine decay (default 3e-3).")
@click.option("--tokens-per-batch", type=int, default=None, help="Characters per batch (default 8192).")
@click.option("--seed", type=int, default=None, help="Seed of the split and the training (default 1234, the poem model's).")
@click.option("--save-every", default=100, show_default=True, help="Checkpoint every N steps (and at each epoch end).")
@click.option("--tensorboard", is_flag=True, help="Write TensorBoard logs to RUN_DIR/tensorboard.")
@click.option("--export", "export_dir", default=None, help="Export the trained model to this app dir (e.g. models/fill).")
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def train_fill(data, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every, **settings):
    """Train the fill-in-the-blank model (or its forward-only baseline) on Tang poems.

    Every position of a poem is predicted at once from the forward state before it and the backward
    state after it; about 12% of the input characters are replaced by <mask> so that other blanks in
    the context are handled. The validation poems are the poem model's (same seed and 5% split).

    \b
    Examples:
      rnn-apps train fill --data ../shared/data/tang-poems.jsonl.gz --export models/fill
      rnn-apps train fill --data ../shared/data/tang-poems.jsonl.gz --kind forward --run-dir runs/fill-forward
      rnn-apps train fill --data poems.txt --run-dir runs/fill --resume
    """
    from rnn_apps.apps.fill import task

    with _progress_to_stderr(as_json):
        result = task.train(data, run_dir, epochs=epochs, resume=resume, strategy=strategy, tensorboard=tensorboard,
                            save_every=save_every, verbose=_verbosity(), **settings)
    summary = {k: result[k] for k in ("step", "val_accuracy", "val_loss", "stats", "seconds")}
    if export_dir:
        summary["exported"] = _export_run(result, export_dir)
    _report(summary, as_json)


# ------------------------------------------------------------------------------------------- evaluate


@click.command("fill")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="The poem corpus the model was trained on.")
@click.option("--model", "model_dir", default=None,
              help="A model directory (default: newest shipped models/fill); also a forward-only export, "
                   "measured on the same hidden characters.")
@click.option("--split", type=click.Choice(["val", "train", "all"]), default="val", show_default=True,
              help="'val': the model's validation poems (same seed and fraction as in training).")
@click.option("--seed", default=0, show_default=True, help="Seed of the choice of the hidden characters.")
@click.option("--limit", type=int, default=None, help="Only the first N poems (after the split).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with 'top1_accuracy', 'top5_accuracy'.")
@_friendly_errors
def evaluate_fill(data, model_dir, split, seed, limit, batch_size, as_json):
    """Masked-character accuracy: hide ONE Han character of each poem (uniformly at random, punctuation
    never) and count how often the model's first candidate, or one of its first five, is that character.

    The same --seed hides the same characters for every model, so a bidirectional and a forward-only
    export are compared on the same positions.

    \b
    Examples:
      rnn-apps evaluate fill --data ../shared/data/tang-poems.jsonl.gz --split val
      rnn-apps evaluate fill --data ../shared/data/tang-poems.jsonl.gz --model runs/fill-forward/models/fill --json
    """
    from rnn_apps._quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    from rnn_apps.apps.fill.filler import evaluate_masked

    with native_stderr_silenced():
        r = evaluate_masked(data, model_dir, split=split, seed=seed, batch_size=batch_size, limit=limit,
                            progress=not as_json)
    if as_json:
        _echo_json(r)
    else:
        click.echo(f"Top-1: {r['top1_accuracy']:.1%}  top-5: {r['top5_accuracy']:.1%}  ({r['poems']:,} poems, "
                   f"{r['split']} split, {r['kind']} model; {r['positions']})")


# ------------------------------------------------------------------------------------------- export


@click.command("fill")
@click.option("--run-dir", required=True)
@click.option("--models", "models_dir", default="models", show_default=True)
@click.option("--version", type=int, default=None, help="Version number (default: next).")
@_friendly_errors
def export_fill_cmd(run_dir, models_dir, version):
    """Export the fill model of RUN_DIR to MODELS/fill/<version>/.

    \b
    Example:
      rnn-apps export fill --run-dir runs/fill --models models
    """
    import json

    from rnn_apps.apps.fill import task
    from rnn_apps.training import last_metric, read_history

    model, vocab, cfg = task.load_run_model(run_dir)
    with open(os.path.join(run_dir, task.CONFIG_FILE), encoding="utf-8") as f:
        stats = json.load(f).get("stats")
    history = read_history(run_dir)
    r = {"model": model, "vocab": vocab, "config": cfg, "stats": stats, "step": history[-1]["step"] if history else None,
         "val_accuracy": last_metric(history, "val_accuracy"), "val_loss": last_metric(history, "val_loss")}
    click.echo(_export_run(r, os.path.join(models_dir, "fill"), version))
