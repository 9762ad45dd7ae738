"""The review commands of ``rnn-apps``: ``classify`` and ``train``, ``fine-tune``, ``evaluate``, ``export
sentiment``. Thin wrappers over the library; TensorFlow is imported inside the commands."""

from __future__ import annotations

import os

import click

from rnn_apps import textio
from rnn_apps.apps.sentiment.task import DEFAULTS
from rnn_apps.cli import options
from rnn_apps.cli.common import (
    FiniteFloatRange, IntegerRange, answer_rows, answer_those_that_can, card_kept, echo_exported, echo_json, echo_refused,
    friendly_errors, gather_texts, quiet_tensorflow, refuse_if_none_left, show, train_and_report, with_card,
)


@click.command("classify")
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A UTF-8 file with one review a line ('-': standard input), or a .csv/.tsv table whose header "
                   "names a text column (text, review, sentence or content). May be repeated.")
@options.model("sentiment")
@options.call_batch("Reviews")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of objects with 'text' (the review), 'label', 'probability' (of positive), "
                   "'words', 'truncated', and 'read_from' (its file and line) for a review read from a file.")
@friendly_errors
def classify(texts, files, model_dir, batch_size, as_json):
    """Tell whether movie reviews are positive or negative.

    Prints one line a review: the label and the probability that the review is positive (0 to 1).
    TEXT '-' reads reviews from standard input, one a line. Reviews longer than the model's limit
    (400 words for the shipped model) are read by their first quarter and last three quarters.

    \b
    Examples:
      rnn-apps classify "One of the best films I have seen in years."
      rnn-apps classify "Dull." "Wonderful!" --json
      rnn-apps classify --file reviews.txt
      rnn-apps classify --file reviews.csv --json
      cat reviews.txt | rnn-apps classify -
    """
    from rnn_apps.apps.sentiment.classify import SentimentClassifier, SentimentError, read_reviews_file

    reviews = gather_texts(texts, files, read_reviews_file, SentimentError,
                           "Give reviews to classify: TEXT arguments, --file PATH (one review a line), "
                           "or - to read standard input. See rnn-apps classify --help.",
                           "No review to classify: the input holds only blank lines.")
    # reviews that are all empty or over-long are refused now, not after the model took seconds to load
    refuse_if_none_left(SentimentClassifier.text_refusals(reviews, SentimentError, "Review"), len(reviews),
                        "reviews can be classified", SentimentError)
    with quiet_tensorflow():
        clf = SentimentClassifier(model_dir)
        # a review that cannot be classified is named and does not cost the others their answers
        answers, refused = answer_those_that_can(
            reviews, lambda texts: clf.classify(texts, batch_size=batch_size),
            lambda texts: clf.refusals(texts, batch_size), "reviews can be classified", SentimentError)
    echo_refused(refused)
    head = clf.max_len // 4
    for i, p in sorted(answers.items()):
        if p.truncated:
            click.echo(f"Note: {textio.text_name(reviews[i], f'review {i + 1}')} has {p.words:,} words; the model "
                       f"read its first {head} and last {clf.max_len - head}.", err=True)
    if as_json:  # each result with its review and where it was read, to be lined up with the input
        rows = {i: {"text": str(reviews[i]), **p.to_dict()} for i, p in answers.items()}
        echo_json(answer_rows(reviews, rows, refused, lambda row: row, "text"))
    else:
        for i, text in enumerate(reviews):
            if i not in answers:
                continue
            p = answers[i]
            line = f"{p.label:<8} {p.probability:.3f}"
            if len(reviews) > 1:
                snippet = " ".join(text.split())
                line += "  " + (snippet[:60] + "…" if len(snippet) > 61 else snippet)
            click.echo(line)
    if refused:
        raise SystemExit(1)


def _export(result: dict, app_dir: str, run_dir: str, version=None, notes=None) -> str:
    """Export a trained review classifier; its card's body is written from the run (and ``notes``)."""
    from rnn_apps.apps.sentiment.export import export_result, write_model_card

    path = export_result(result, app_dir, version)
    write_model_card(app_dir, path, run_dir, notes=notes)
    return with_card("sentiment", path, run_dir)  # the front matter names the user's own data


def _warn_if_unvalidated(stats) -> None:
    """A warning on stderr for a run that held out no validation reviews: nothing it reports (or its model's
    card states) was measured on reviews it did not train on, and no epoch was chosen by one."""
    if isinstance(stats, dict) and stats.get("val_reviews") == 0:
        click.echo(f"Warning: no validation reviews: --val-fraction held out none of the "
                   f"{stats.get('labelled_reviews', 0):,} labelled reviews, so nothing was validated and no figure was "
                   "measured on reviews the model did not train on. Give more reviews, or measure the model on reviews "
                   "it did not train on with rnn-apps evaluate sentiment --data REVIEWS.csv --model MODEL_DIR.",
                   err=True)


def _train_summary(result: dict) -> dict:
    _warn_if_unvalidated(result.get("stats"))
    summary = {k: result[k] for k in ("step", "val_accuracy", "lm_val_perplexity", "stats", "seconds")}
    summary.update({k: result[k] for k in ("best_epoch", "stopped_early") if k in result})
    if result.get("ngram_figures"):
        summary["ngram_branch"] = result["ngram_figures"]
    return summary


_DATA = ("aclImdb directory or .tar.gz (its train split; train/unsup feeds --pretrain-epochs), "
         "tfds:imdb_reviews (downloads), or a CSV/TSV of text,label.")
_BATCH = options.size("--batch-size", DEFAULTS, "Reviews per batch")
_VAL_FRACTION = options.val_fraction(DEFAULTS, "Share of each class held out for validation")
_LAYER_LR_DECAY = options.setting(
    "--layer-lr-decay", DEFAULTS, "Discriminative fine-tuning (ULMFiT): each layer below the classifier head learns "
    "at 1/D of the rate of the layer above (1: one rate for all)", FiniteFloatRange(min=1))
_ADVERSARIAL = options.setting(
    "--adversarial", DEFAULTS, "Adversarial training (Miyato et al. 2017): each step also trains on word embeddings "
    "moved EPS embedding standard deviations in the direction that hurts most; about 2x the time a step (0: off; "
    "the paper's value is 5)", FiniteFloatRange(min=0))
_VAL_SPLIT = options.setting(
    "--val-split", DEFAULTS, "How validation reviews are chosen: blocks of consecutive reviews, so that a film's "
    "reviews (numbered consecutively in aclImdb) are not on both sides, as with the test split; random: one by "
    "one (optimistic; runs made before blocks existed)", click.Choice(["blocks", "random"]))


@click.command("sentiment")
@click.option("--data", required=True, help=_DATA)
@options.training("runs/sentiment", 4, save=200, epochs_help="Classifier epochs.",
                  resume_help="Continue the interrupted run in --run-dir (either phase).")
@options.setting("--pretrain-epochs", DEFAULTS,
                 "First train the embedding and encoder as forward/backward language models for N epochs on all "
                 "training text, unlabelled reviews included. With --resume it may grow while the classifier has "
                 "not started", IntegerRange(min=0))
@options.cell(DEFAULTS)
@options.size("--units", DEFAULTS, "Units per direction of each layer")
@options.size("--layers", DEFAULTS, "Bidirectional layers", key="num_layers")
@options.size("--embedding-dim", DEFAULTS, "Word embedding size")
@options.setting("--max-tokens", DEFAULTS, "Vocabulary size, padding and unknown included",
                 IntegerRange(min=3))
@options.size("--max-len", DEFAULTS, "Words read per review; longer ones keep the first quarter and the last "
              "three quarters")
@options.rate("--dropout", DEFAULTS, "Dropout between layers and before the classifier")
@options.learning_rate(None, "Classifier peak learning rate", DEFAULTS)
@options.learning_rate(None, "Language-model learning rate", DEFAULTS, flag="--pretrain-learning-rate")
@_LAYER_LR_DECAY
@_ADVERSARIAL
@options.setting("--ngram-features", DEFAULTS, "N-gram branch: the most frequent n-grams kept (0: no branch). "
                 "Fitted after the classifier; with --resume a finished run gets (or refits) its branch",
                 IntegerRange(min=0))
@options.setting("--ngram-order", DEFAULTS, "Longest n-gram of the branch", IntegerRange(1, 5))
@options.setting("--ngram-l2", DEFAULTS, "L2 penalty of the branch's logistic regression",
                 FiniteFloatRange(min=0))
@options.setting("--ngram-self-training", DEFAULTS, "Self-training of the n-gram branch: fit it again with the "
                 "unlabelled reviews (aclImdb train/unsup, TFDS unsupervised) labelled by its first fit, each "
                 "counting W of a labelled review (0: off)", FiniteFloatRange(0, 1))
@options.setting("--ngram-tokens", DEFAULTS, "What the branch's n-grams are made of: words and punctuation marks, "
                 "each mark a token ('!', '?', ':)' and '7/10' carry sentiment), or words only (runs made before "
                 "this option existed)", click.Choice(["punctuation", "words"]))
@_BATCH
@options.seed(DEFAULTS)
@_VAL_FRACTION
@_VAL_SPLIT
@options.keep_best
@options.patience(DEFAULTS)
@options.export(example="models/sentiment")
@options.as_json()
@friendly_errors
def train_sentiment(data, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every, **settings):
    """Train the review classifier (optionally after language-model pre-training).

    \b
    Examples:
      rnn-apps train sentiment --data aclImdb_v1.tar.gz --pretrain-epochs 2 --epochs 4
      rnn-apps train sentiment --data aclImdb_v1.tar.gz --run-dir runs/sentiment --resume
      rnn-apps train sentiment --data reviews.csv --cell gru --export models/sentiment
    """
    from rnn_apps.apps.sentiment import task

    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, as_json=as_json,
                     exporter=lambda r, app_dir: _export(r, app_dir, run_dir), epochs=epochs, resume=resume,
                     strategy=strategy, tensorboard=tensorboard, save_every=save_every, **settings)


@click.command("sentiment")
@click.option("--data", required=True,
              help="Your labelled reviews: a CSV/TSV of text,label (0/1/neg/pos), or an aclImdb tree.")
@options.fine_tuning("sentiment", 2, 5e-4, "The classifier's peak learning rate", save=200)
@click.option("--pretrain-epochs", type=IntegerRange(min=0), default=0, show_default=True,
              help="First continue the model's language-model training on your texts for N epochs.")
@_BATCH
@_VAL_FRACTION
@_VAL_SPLIT
@_LAYER_LR_DECAY
@_ADVERSARIAL
@options.keep_best
@options.patience(DEFAULTS)
@options.seed(DEFAULTS)
@options.as_json()
@friendly_errors
def fine_tune_sentiment(data, model_dir, export_dir, run_dir, epochs, resume, strategy, as_json, tensorboard,
                        save_every, **settings):
    """Fine-tune the review classifier on your labelled texts (its vocabulary and architecture are kept).

    \b
    Examples:
      rnn-apps fine-tune sentiment --data my_reviews.csv
      rnn-apps fine-tune sentiment --data my_reviews.tsv --pretrain-epochs 1 --epochs 3
      rnn-apps classify --model models-finetuned/sentiment "Great product."
    """
    from rnn_apps.apps.sentiment import task
    from rnn_apps.paths import default_model_dir

    base = model_dir or default_model_dir("sentiment")
    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, as_json=as_json,
                     exporter=lambda r, app_dir: _export(r, app_dir, run_dir), epochs=epochs, resume=resume,
                     strategy=strategy, init_from=base, tensorboard=tensorboard, save_every=save_every, **settings)


@click.command("sentiment")
@options.evaluation("sentiment", "aclImdb directory or .tar.gz, tfds:imdb_reviews, or a CSV/TSV of text,label.",
                    ["test", "train", "val"], "test",
                    "'val' is the model's own validation split of the train split (same seed and fraction): it is "
                    "the model's validation set only for the data it was trained on. A CSV/TSV or a folder with "
                    "pos/neg has no test or train split: 'test' and 'train' read it whole ('all' in the output); 'val' "
                    "is the part of it a model fine-tuned on it held out.",
                    "Print a JSON object with 'accuracy', the confusion counts and, for a model with an "
                    "n-gram branch, 'rnn_accuracy', 'ngram_accuracy' and (on 'val') "
                    "'combined_accuracy_cross_validated'.")
@friendly_errors
def evaluate_sentiment(data, model_dir, split, as_json):
    """Accuracy (and confusion counts) of the review classifier on a labelled split.

    A model with an n-gram branch also gets each branch's own accuracy. Its combiner was fitted on the
    validation reviews, so on 'val' the command also refits it on one half of them, scores the other half,
    and averages over 20 random halvings: the figure to compare models by on validation.

    \b
    Examples:
      rnn-apps evaluate sentiment --data aclImdb_v1.tar.gz --split test
      rnn-apps evaluate sentiment --data aclImdb_v1.tar.gz --split val --json
      rnn-apps evaluate sentiment --data my_reviews.csv --model models-finetuned/sentiment
    """
    from rnn_apps.apps.sentiment.evaluate import evaluate_reviews

    show(evaluate_reviews(data, model_dir, split, progress=not as_json), as_json, _evaluation_text)


def _evaluation_text(r: dict) -> str:
    name = os.path.basename(os.path.normpath(r["data"]))
    which = {"all": f"every review of {name}", "val": f"the val part of {name}"}.get(r["split"],
                                                                                  f"the {r['split']} split of {name}")
    text = (f"accuracy: {r['accuracy']:.4f}  ({r['reviews']:,} reviews: {which}; true positive "
            f"{r['true_positive']:,}, false positive {r['false_positive']:,}, true negative {r['true_negative']:,}, "
            f"false negative {r['false_negative']:,})")
    if "rnn_accuracy" in r:
        text += f"\nrecurrent branch alone: {r['rnn_accuracy']:.4f}\nn-gram branch alone: {r['ngram_accuracy']:.4f}"
    if "combined_accuracy_cross_validated" in r:
        text += (f"\nboth, the combiner fitted on one half and scored on the other (mean of {r['halvings']} "
                 f"halvings): {r['combined_accuracy_cross_validated']:.4f}")
    return text


@click.command("sentiment")
@options.run_dir(None, "The training run to export.")
@options.from_model("an exported review classifier")
@options.export_target("sentiment")
@click.option("--notes", "notes_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A Markdown file of your own for the model card's 'How this version was trained' section "
                   "(--run-dir).")
@friendly_errors
def export_sentiment_cmd(run_dir, from_model, export_dir, models_root, version, notes_file, as_json):
    """Export the review classifier of RUN_DIR (or of another export) to APP_DIR/<version>/ (and its model card).

    \b
    Examples:
      rnn-apps export sentiment --run-dir runs/sentiment --export models/sentiment
      rnn-apps export sentiment --run-dir runs/sentiment --notes training-notes.md
      rnn-apps export sentiment --from-model models/sentiment/6 --export models-new/sentiment
    """
    options.export_source(run_dir, from_model, "an exported review classifier")
    if from_model and notes_file:
        raise click.UsageError("--notes is for an export of a training run; an export of an exported model keeps "
                               "the card of its app directory, or writes one from the model's own record.")
    app_dir = options.export_dir_for(export_dir, models_root, "sentiment")
    if from_model:
        from rnn_apps.apps.sentiment.export import export_again
        from rnn_apps.export import resolve_model_dir

        kept = card_kept(app_dir, from_model)  # before the export adds a version
        path = export_again(resolve_model_dir(from_model), app_dir, version)
        echo_exported(path if kept else with_card("sentiment", path, from_model=from_model), as_json)
        return
    from rnn_apps.apps.sentiment import task
    from rnn_apps.training import last_metric, read_history

    model, lm, vocabulary, cfg = task.load_run_model(run_dir)
    from rnn_apps.apps.base import read_run_config

    _warn_if_unvalidated(read_run_config(run_dir, task.CONFIG_FILE).get("stats"))
    result = {"model": model, "lm": lm, "vocabulary": vocabulary, "config": cfg, "ngram": task.load_run_ngram(run_dir),
              "val_accuracy": last_metric(read_history(run_dir), "val_accuracy")}
    from rnn_apps.cards import read_text

    notes = read_text(notes_file)  # None without a file; a file that is not UTF-8 is named, as the card's inputs are
    echo_exported(_export(result, app_dir, run_dir, version, notes), as_json)


COMMANDS = {None: [classify], "train": [train_sentiment], "fine-tune": [fine_tune_sentiment],
            "evaluate": [evaluate_sentiment], "export": [export_sentiment_cmd]}
