"""The fill-in-the-blank commands of ``rnn-apps``: ``fill-poem`` and ``train``, ``fine-tune``, ``evaluate``,
``export fill``.

TensorFlow is imported inside the commands, so ``rnn-apps --help`` stays instant.
"""

from __future__ import annotations

import os

import click

from rnn_apps import limits, textio  # limits: the server's ranges and messages
from rnn_apps.apps.fill.task import DEFAULTS
from rnn_apps.cli import options
from rnn_apps.cli.common import (
    IntegerRange, answer_rows, each_or_refused, echo_exported, echo_json, echo_refused, export_trained,
    friendly_errors, gather_texts, quiet_tensorflow, refuse_if_none_left, show, train_and_report, with_card,
)


# ------------------------------------------------------------------------------------------- fill-poem


@click.command("fill-poem")
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A UTF-8 file with one text a line ('-': standard input). May be repeated.")
@click.option("--candidates", "--top-k", "top_k", cls=options.AliasedOption, old=("--top-k",),
              type=limits.option_type("fill", "top_k", where="the number of candidates"), default=5, show_default=True,
              help="How many candidates to show for each blank (the fill signature's top_k over REST).")
@options.model("fill")
@options.poem_model()
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of objects with 'input', 'text' (filled), 'blanks' (each with its "
                   "'index', 1, 2, ... in text order, and its 'candidates': 'character' and 'probability'), "
                   "'unknown_characters', 'converted_to_simplified' (the model read the text converted to simplified "
                   "script), 'script' (of the filled characters and candidates: 'traditional' for a text written "
                   "in it), "
                   "and 'read_from' (its file and line) for a text read from a file; a text that cannot be filled "
                   "has 'input' and 'error' (also on standard error; the command then ends with status 1).")
@friendly_errors
def fill_poem(texts, files, top_k, model_dir, poem_model_dir, as_json):
    """Fill in the blanks of a Tang poem with a bidirectional RNN.

    Mark each missing character with □ (or ＿ or _): a blank is filled with a character, never with
    punctuation, and a line typed without its final 。 is read as ending there. The model reads the characters before AND after a
    blank (a forward LSTM up to it, a backward LSTM from the end back to it) and prints the filled text,
    then for each blank the top candidates with their probabilities.

    Several blanks are filled one at a time, the most confident first: the network is run again with
    each chosen character in place, so later blanks see the earlier choices (a blank's candidates are
    those of the pass that filled it).

    The shipped poem model then weighs each blank's 50 best candidates by how the poem goes on after
    them (their probability times the poem model's probability of the text with them in place; the
    probabilities shown are those of this product, over the 50): on the validation poems the first
    candidate is the hidden character 25.6 % of the time instead of 18.9 % (--poem-model none: the fill
    model alone, as its SavedModel answers over REST).

    The text comes back as typed (its spaces and punctuation kept) with the blanks filled. The model was
    trained on simplified script: it reads traditional input converted with OpenCC (a note says so), and
    the filled characters and candidates of a text written in traditional are written back in it, as the
    Tang poems write them. Characters the model does not know are read as unknown and named in a note.
    At most 512 characters a text.

    \b
    Examples:
      rnn-apps fill-poem "白日依山尽，黄河入海□。"
      rnn-apps fill-poem "春眠不觉□，处处闻啼鸟。" "红豆生南□，春来发几枝。" --candidates 3
      rnn-apps fill-poem "□□明月光，疑是地上霜。" --json
      rnn-apps fill-poem "举头望明月，低头思故□。" --poem-model none
      rnn-apps fill-poem --file lines.txt
      echo "红豆生南_，春来发几枝。" | rnn-apps fill-poem -
    """
    from rnn_apps.apps.fill.data import FillError
    from rnn_apps.apps.fill.filler import read_texts_file

    inputs = gather_texts(texts, files, read_texts_file, FillError,
                          "Give a line with blanks: TEXT arguments (e.g. \"床前明月□，疑是地上霜。\"), --file PATH "
                          "(one text a line), or - to read standard input. See rnn-apps fill-poem --help.",
                          "Nothing to fill: the input holds only blank lines.")
    from rnn_apps.apps.fill import data as fdata

    # Every text is checked before the model is loaded; one that cannot be filled is named and does not cost
    # the others their answers (the command then ends with status 1).
    _, refused = each_or_refused(range(len(inputs)), lambda i: fdata.parse_text(
        inputs[i], textio.text_name(inputs[i], f"Text {i + 1}")), FillError)
    refuse_if_none_left(refused, len(inputs), "texts can be filled", FillError)
    kept = [i for i in range(len(inputs)) if i not in refused]
    with quiet_tensorflow():
        from rnn_apps.apps.fill.filler import Filler

        poem_model = _poem_model(poem_model_dir)
        filled = Filler(model_dir).fill([inputs[i] for i in kept], top_k=top_k, poem_model=poem_model)
    echo_refused(refused)
    answers = dict(zip(kept, filled))
    _show_fills(inputs, answers, refused, as_json)
    if refused:
        raise SystemExit(1)


def _show_fills(inputs: list, answers: dict, refused: dict, as_json: bool) -> None:
    """Print the fills (``answers``: input index -> result) with their notes, and under ``--json`` an
    ``{"input", "error"}`` row in place of each refused text."""
    results = [answers[i] for i in sorted(answers)]
    for i, r in sorted(answers.items()):
        text = inputs[i]
        which = textio.text_name(text, f"text {i + 1}" if len(inputs) > 1 else "the text")
        if r.converted_to_simplified:
            back = ("its filled characters are written back in traditional" if r.script == "traditional"
                    else "its filled characters are simplified")
            click.echo(f"Note: the model read {which} converted to simplified script (its own); {back}.", err=True)
        if r.unknown_characters:
            click.echo(f"Note: the model does not know these characters of {which} (read as unknown): "
                       f"{' '.join(r.unknown_characters)}.", err=True)
    if as_json:
        echo_json(answer_rows(inputs, answers, refused, lambda r: r.to_dict(), "input"))
        return
    for i, r in enumerate(results):
        if i:
            click.echo("")
        click.echo(r.text)
        for j, cands in enumerate(r.blanks, 1):
            shown = "  ".join(f"{c} {p:.1%}" for c, p in cands)
            click.echo(f"  □{j}: {shown}")


def _poem_model(path):
    """The poem model of ``--poem-model`` (None for ``none``)."""
    from rnn_apps.apps.fill.filler import load_poem_model

    return None if path is not None and path.strip().lower() == "none" else load_poem_model(path)


# ------------------------------------------------------------------------------------------- train


@click.command("fill")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="A poem corpus (chinese-poetry JSON lines or plain text, one poem a line).")
@options.training("runs/fill", 2, save=100, epochs_help="Total epochs.")
@options.setting("--max-steps", DEFAULTS, "Total steps instead of whole epochs (split evenly into the epochs; 0: "
                 "whole epochs). With --resume, extends (or shortens) the run: --resume --epochs 5 --max-steps 900",
                 IntegerRange(min=0))
@options.setting("--kind", DEFAULTS, "bidirectional, or the forward-only baseline, which predicts a character from "
                 "the ones before it only", click.Choice(["bidirectional", "forward"]))
@options.size("--embedding-dim", DEFAULTS, "Embedding size")
@options.size("--units", DEFAULTS, "LSTM units per direction")
@options.cell(DEFAULTS)
@options.rate("--dropout", DEFAULTS, "Dropout on the embedding and the context")
@options.rate("--mask-rate", DEFAULTS, "Share of input characters replaced by <mask> in training")
@options.learning_rate(None, "Adam's peak learning rate, cosine decay", DEFAULTS)
@options.size("--tokens-per-batch", DEFAULTS, "Characters per batch")
@options.patience(DEFAULTS)
@options.seed(DEFAULTS)
@options.export(example="models/fill")
@options.as_json()
@friendly_errors
def train_fill(data, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every, **settings):
    """Train the fill-in-the-blank model (or its forward-only baseline) on Tang poems.

    Every position of a poem is predicted at once from the forward state before it and the backward
    state after it; about 12% of the input characters are replaced by <mask> so that other blanks in
    the context are handled. The validation poems are the poem model's (same seed and 5% split).

    \b
    Examples:
      rnn-apps train fill --data tang-poems.jsonl.gz --export models/fill
      rnn-apps train fill --data poems.txt --kind forward --run-dir runs/forward --export runs/forward/models/fill
      rnn-apps train fill --data poems.txt --run-dir runs/fill --resume
      rnn-apps train fill --data poems.txt --epochs 10 --patience 2
    """
    from rnn_apps.apps.fill import task

    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, as_json=as_json,
                     epochs=epochs, resume=resume, strategy=strategy, tensorboard=tensorboard, save_every=save_every,
                     **settings)


def _train_summary(result) -> dict:
    # best_epoch and stopped_early: a run with --patience, which ends with its best epoch
    return {k: result[k] for k in ("step", "val_accuracy", "val_loss", "stats", "seconds", "best_epoch",
                                   "stopped_early") if k in result}


def _fine_tune_summary(result) -> dict:
    return {**_train_summary(result), "added_characters": "".join(result["added_characters"])}


# ------------------------------------------------------------------------------------------- fine-tune


@click.command("fill")
@options.fine_tuning_on_poems("fill", 2, 5e-4, DEFAULTS, save=100)
@friendly_errors
def fine_tune_fill(data, model_dir, export_dir, run_dir, epochs, resume, strategy, learning_rate, as_json,
                   tensorboard, save_every, **settings):
    """Fine-tune the fill-in-the-blank model on your poems; new characters get new rows.

    The model keeps its network, script and vocabulary (every character keeps its id and its weights);
    the characters of your poems that it does not know and that they use at least --min-count times are
    appended, with new embedding rows (the output layer is tied to them), so it keeps what it knew and
    learns your characters. Your poems are cleaned and split as in training.

    \b
    Examples:
      rnn-apps fine-tune fill --data my_poems.txt
      rnn-apps fill-poem "床前明月□，疑是地上霜。" --model models-finetuned/fill
      rnn-apps fine-tune fill --data poems.jsonl --epochs 3 --min-count 1 --export models-mine/fill --json
      rnn-apps fine-tune fill --data my_poems.txt --run-dir runs/fill-finetune --resume
      rnn-apps fine-tune fill --data my_poems.txt --epochs 8 --patience 2 --tensorboard
    """
    from rnn_apps.apps.fill import task
    from rnn_apps.paths import default_model_dir

    train_and_report(task.train, data, run_dir, summarize=_fine_tune_summary, export_to=export_dir, as_json=as_json,
                     epochs=epochs, resume=resume, strategy=strategy, init_from=model_dir or default_model_dir("fill"),
                     learning_rate=learning_rate, tensorboard=tensorboard, save_every=save_every, **settings)


# ------------------------------------------------------------------------------------------- evaluate


@click.command("fill")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="The poem corpus the model was trained on.")
@options.model("fill", "A model directory (default: the newest version in the shipped models/fill, or in "
                       "./models/fill when you exported one there); also a forward-only export, measured on the same "
                       "hidden characters.")
@click.option("--split", type=click.Choice(["val", "train", "all"]), default="val", show_default=True,
              help="'val': the model's validation poems (same seed and fraction as in training).")
@click.option("--seed", type=options.SEED, default=0, show_default=True, help="Seed of the choice of the hidden characters.")
@options.poem_model()
@options.limit("Only the first N poems (after the split).")
@options.call_batch("Poems", 64)
@options.as_json("Print a JSON object with 'top1_accuracy', 'top5_accuracy', 'poem_model'.")
@friendly_errors
def evaluate_fill(data, model_dir, split, seed, poem_model_dir, limit, batch_size, as_json):
    """Masked-character accuracy: hide ONE Han character of each poem (uniformly at random, punctuation
    never) and count how often the first candidate, or one of the first five, is that character.

    The candidates are those rnn-apps fill-poem gives: weighed by the shipped poem model unless
    --poem-model none (the fill model alone). The same --seed hides the same characters for every model,
    so a bidirectional and a forward-only export are compared on the same positions.

    \b
    Examples:
      rnn-apps evaluate fill --data tang-poems.jsonl.gz --split val
      rnn-apps evaluate fill --data tang-poems.jsonl.gz --split val --poem-model none
      rnn-apps evaluate fill --data poems.txt --model runs/forward/models/fill --json
    """
    with quiet_tensorflow():
        from rnn_apps.apps.fill.filler import evaluate_masked

        r = evaluate_masked(data, model_dir, split=split, seed=seed, batch_size=batch_size, limit=limit,
                            progress=not as_json, poem_model=_poem_model(poem_model_dir))
    if not r["poems"]:
        from rnn_apps.apps.fill.data import FillError

        raise FillError(f"No poems to evaluate in {data} (split {split}).")
    weighed = f"weighed by the poem model {r['poem_model']}" if r["poem_model"] else "the fill model alone"
    show(r, as_json, lambda r: f"Top-1: {r['top1_accuracy']:.1%}  top-5: {r['top5_accuracy']:.1%}  ({r['poems']:,} "
         f"poems, {r['split']} split, {r['kind']} model, {weighed}; {r['positions']})")


# ------------------------------------------------------------------------------------------- export


@click.command("fill")
@options.run_dir(None, "The training run to export.")
@options.from_model("an exported fill model")
@options.export_target("fill")
@friendly_errors
def export_fill_cmd(run_dir, from_model, export_dir, models_root, version, as_json):
    """Export the fill model of RUN_DIR (or of another export) to APP_DIR/<version>/.

    \b
    Examples:
      rnn-apps export fill --run-dir runs/fill --export models/fill
      rnn-apps export fill --from-model models/fill/10 --export models-new/fill
    """
    options.export_source(run_dir, from_model, "an exported fill model")
    app_dir = options.export_dir_for(export_dir, models_root, "fill")
    if from_model:
        from rnn_apps.apps.fill.export import export_again
        from rnn_apps.export import resolve_model_dir

        echo_exported(with_card("fill", export_again(resolve_model_dir(from_model), app_dir, version),
                                from_model=from_model), as_json)
        return
    import json

    from rnn_apps.apps.base import TrainResult
    from rnn_apps.apps.fill import task
    from rnn_apps.training import last_metric, read_history

    model, vocab, cfg = task.load_run_model(run_dir)
    with open(os.path.join(run_dir, task.CONFIG_FILE), encoding="utf-8") as f:
        stats = json.load(f).get("stats")
    history = read_history(run_dir)
    r = TrainResult(model=model, vocab=vocab, config=cfg, stats=stats, step=history[-1]["step"] if history else None,
                    val_accuracy=last_metric(history, "val_accuracy"), val_loss=last_metric(history, "val_loss"),
                    run_dir=run_dir, app="fill")
    echo_exported(export_trained(r, app_dir, version), as_json)


COMMANDS = {None: [fill_poem], "train": [train_fill], "fine-tune": [fine_tune_fill], "evaluate": [evaluate_fill],
            "export": [export_fill_cmd]}
