"""The ``rnn-apps`` command line: thin wrappers over the library.

Heavy imports (TensorFlow) happen inside the commands, so ``rnn-apps --help`` is instant.
"""

from __future__ import annotations

import os
import sys

import click

from rnn_apps import __version__
from rnn_apps._cli_common import (
    _KEEP_BEST, _PATIENCE, _STRATEGY, FiniteFloatRange, _echo_json, _friendly_errors, _gather_texts,
    _progress_to_stderr, _report, _verbosity,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnn-apps")
def cli():
    """Recurrent-network apps: Tang poems, movie-review sentiment, translation, image captions.

    \b
    Examples:
      rnn-apps generate-poem
      rnn-apps generate-poem --acrostic 春夏秋冬 --form qijue
      rnn-apps fill-poem "床前明月□，疑是地上霜。"
      rnn-apps classify "A moving, beautifully acted film."
      rnn-apps caption scene.png --plot-attention attention.png
      rnn-apps translate "I love you." --beam 4
      rnn-apps train poetry --data ../shared/data/tang-poems.jsonl.gz
      rnn-apps serve
    """


# ------------------------------------------------------------------------------------------- poems


@cli.command("generate-poem")
@click.option("--start", default="", help="Continue this start (续写), e.g. 春眠.")
@click.option("--acrostic", default="", help="Acrostic (藏头诗): these characters open the lines, in order.")
@click.option(
    "--form",
    type=click.Choice(["wujue", "qijue", "wulv", "qilv"]),
    default=None,
    help="五言绝句 wujue, 七言绝句 qijue, 五言律诗 wulv, 七言律诗 qilv. Without it the model picks the form.",
)
@click.option("-n", "--num", "n", default=1, show_default=True, help="Number of poems (one batch).")
@click.option("--temperature", type=FiniteFloatRange(0, 10), default=0.8, show_default=True,
              help="Sampling temperature; 0 is greedy.")
@click.option("--top-k", default=0, show_default=True, help="Sample among the k most likely characters (0: off).")
@click.option("--top-p", type=FiniteFloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="Nucleus sampling mass (1: off).")
@click.option("--seed", type=click.IntRange(-(2**62), 2**62), default=None, help="Same seed, same poems.")
@click.option("--max-length", default=128, show_default=True, help="Most characters of a free-form poem.")
@click.option("--rhyme", type=click.Choice(["pingshui", "xinyun", "none"]), default="pingshui", show_default=True,
              help="--form poems: lines 2, 4 (6, 8) end on 平 characters of one rhyme group the model picks, "
              "of 平水韵 (pingshui) or 中华新韵 (xinyun, modern tones); none: no rhyme.")
@click.option("--metre", type=click.Choice(["strict", "loose", "none"]), default="loose", show_default=True,
              help="--form poems: the 平仄 of a regulated template (平起/仄起, first line rhymed or not); strict: every "
              "position; loose: 一三五不论, no 孤平; none: no tones.")
@click.option("--script", type=click.Choice(["simplified", "traditional"]), default=None,
              help="Script of the output (default: the model's).")
@click.option("--model", "model_dir", default=None, help="A model directory (default: newest shipped models/poetry).")
@click.option(
    "--engine",
    type=click.Choice(["auto", "numpy", "tensorflow"]),
    default="auto",
    show_default=True,
    help="Who runs the model: numpy (starts in well under a second, no TensorFlow import), tensorflow "
    "(the SavedModel's generate signature), or auto (numpy when it supports the model). Same seed, same poems.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of objects with 'text'.")
@_friendly_errors
def generate_poem(start, acrostic, form, n, temperature, top_k, top_p, seed, max_length, rhyme, metre, script, model_dir,
                  engine, as_json):
    """Write classical Chinese poems with the shipped Char-RNN (no training, no network).

    \b
    Examples:
      rnn-apps generate-poem
      rnn-apps generate-poem --start 春眠
      rnn-apps generate-poem --acrostic 春夏秋冬 --form wujue
      rnn-apps generate-poem --form qilv -n 3 --seed 7 --json
      rnn-apps generate-poem --form qijue --metre strict --rhyme xinyun
      rnn-apps generate-poem --script traditional
    """
    from rnn_apps._quiet import enable_xla_cache, native_stderr_silenced
    from rnn_apps.apps.poetry.generate import PoemGenerator, to_script

    if engine != "numpy" and "tensorflow" not in sys.modules:
        enable_xla_cache()  # in case TensorFlow is used (must come before its import)
    with native_stderr_silenced():
        gen = PoemGenerator(model_dir, engine=engine)
        poems = gen.generate(start, acrostic, form or "", n, temperature, top_k, top_p, seed, max_length, rhyme, metre)
    rows = []
    for p in poems:
        d = p.to_dict()
        if script and script != gen.script:
            d["text"] = to_script(d["text"], script)
            d["lines"] = [to_script(x, script) for x in d["lines"]]
        rows.append(d)
    for i, p in enumerate(poems):
        if p.forced_breaks:  # the start or acrostic fits no template of the form: say where, in one line
            where = ", ".join(f"{b['char']} (line {b['line']}, position {b['position']}: {b['kind']})"
                              for b in p.forced_breaks)
            click.echo(f"Note: poem {i + 1}: the start or acrostic breaks the --metre {metre}/--rhyme {rhyme} rules "
                       f"at {where}; the other characters follow them.", err=True)
    if as_json:
        _echo_json(rows)
        return
    for i, d in enumerate(rows):
        if i:
            click.echo()
        click.echo("\n".join(d["lines"]) if d["lines"] else d["text"])


@cli.command("check-poem")
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A UTF-8 file of poems separated by blank lines ('-': standard input). May be repeated.")
@click.option("--rhyme", type=click.Choice(["pingshui", "xinyun"]), default="pingshui", show_default=True,
              help="Rhyme book and tones: 平水韵 with classical tones, or 中华新韵 with modern tones.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: per poem its lines (each character's 平/仄/多 (either)/? (unknown)), the "
              "rhyme group, the matched template and every break of rhyme or metre.")
@_friendly_errors
def check_poem_cmd(texts, files, rhyme, as_json):
    """Check the rhyme (押韵) and tones (平仄) of poems against the regulated forms (近体诗).

    Each TEXT is one poem; TEXT '-' reads poems from standard input (separated by blank lines). Prints
    each line's tones (多: a character of either tone), the rhyme group of each line end, the template
    that fits best and every break (the ones 一三五不论 allows are marked).

    \b
    Examples:
      rnn-apps check-poem "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
      rnn-apps check-poem --file poems.txt --json
      rnn-apps generate-poem --form wujue | rnn-apps check-poem -
    """
    from rnn_apps.apps.poetry import prosody
    from rnn_apps.apps.poetry.generate import PoemError, check_poem, read_poems_file

    poems = _gather_texts(texts, files, read_poems_file, PoemError,
                          "Give poems to check: TEXT arguments, --file PATH (poems separated by blank lines), "
                          "or '-' for standard input.", "There is no poem to check: the input is blank.")
    tables = prosody.Tables.load()
    results = [check_poem(p, rhyme, tables) for p in poems]
    if as_json:
        _echo_json(results)
        return
    click.echo("\n\n".join(prosody.format_check(r) for r in results))


# ------------------------------------------------------------------------------------------- sentiment


@cli.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A UTF-8 file with one review a line ('-': standard input). May be repeated.")
@click.option("--model", "model_dir", default=None, help="A model directory (default: newest shipped models/sentiment).")
@click.option("--batch-size", default=32, show_default=True, help="Reviews per model call.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of objects with 'label', 'probability' (of positive), 'words', 'truncated'.")
@_friendly_errors
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
      cat reviews.txt | rnn-apps classify -
    """
    from rnn_apps.apps.sentiment.classify import SentimentClassifier, SentimentError, read_reviews_file

    reviews = _gather_texts(texts, files, read_reviews_file, SentimentError,
                          "Give reviews to classify: TEXT arguments, --file PATH (one review a line), "
                          "or - to read standard input. See rnn-apps classify --help.",
                          "No review to classify: the input holds only blank lines.")
    from rnn_apps._quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    with native_stderr_silenced():
        clf = SentimentClassifier(model_dir)
        preds = clf.classify(reviews, batch_size=batch_size)
    head = clf.max_len // 4
    for i, p in enumerate(preds, 1):
        if p.truncated:
            click.echo(f"Note: review {i} has {p.words:,} words; the model read its first {head} and last "
                       f"{clf.max_len - head}.", err=True)
    if as_json:
        _echo_json([p.to_dict() for p in preds])
        return
    for text, p in zip(reviews, preds):
        line = f"{p.label:<8} {p.probability:.3f}"
        if len(reviews) > 1:
            snippet = " ".join(text.split())
            line += "  " + (snippet[:60] + "…" if len(snippet) > 61 else snippet)
        click.echo(line)


# ------------------------------------------------------------------------------------------- train

@cli.group()
def train():
    """Train an app's model from scratch (resumable)."""


@train.command("poetry")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Corpus: chinese-poetry JSON(L)(.gz) or a UTF-8 text file.")
@click.option("--run-dir", default="runs/poetry", show_default=True, help="Checkpoints, logs, vocabulary.")
@click.option("--epochs", default=6, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --run-dir.")
@_STRATEGY
@click.option("--cell", type=click.Choice(["lstm", "gru", "simple_rnn", "peephole_lstm", "coupled_lstm"]), default=None,
              help="Recurrent cell (default lstm).")
@click.option("--units", type=int, default=None, help="Units per recurrent layer (default 512).")
@click.option("--layers", "num_layers", type=int, default=None, help="Recurrent layers (default 2).")
@click.option("--embedding-dim", type=int, default=None, help="Embedding size (default 256).")
@click.option("--dropout", type=float, default=None)
@click.option("--learning-rate", type=float, default=None)
@click.option("--tokens-per-batch", type=int, default=None, help="Tokens per batch (default 8192).")
@click.option("--script", type=click.Choice(["simplified", "traditional"]), default=None)
@click.option("--seed", type=int, default=None, help="Seed: the same seed gives the same losses on a CPU.")
@click.option("--min-count", type=int, default=None, help="Rarest character kept in the vocabulary (default 3).")
@click.option("--val-fraction", type=float, default=None, help="Share of poems held out for validation (default 0.05).")
@click.option("--save-every", default=100, show_default=True, help="Checkpoint every N steps (and at each epoch end).")
@click.option("--tensorboard", is_flag=True, help="Write TensorBoard logs to RUN_DIR/tensorboard.")
@click.option("--export", "export_dir", default=None, help="Export the trained model to this app dir (e.g. models/poetry).")
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def train_poetry(data, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every, **settings):
    """Train the Char-RNN on a poem corpus.

    \b
    Examples:
      rnn-apps train poetry --data ../shared/data/tang-poems.jsonl.gz --epochs 6
      rnn-apps train poetry --data poems.txt --run-dir runs/mine --resume
      rnn-apps train poetry --data poems.txt --cell gru --units 256 --export models/poetry
    """
    from rnn_apps.apps.poetry import task

    with _progress_to_stderr(as_json):
        result = task.train(data, run_dir, epochs=epochs, resume=resume, strategy=strategy, tensorboard=tensorboard,
                            save_every=save_every, verbose=_verbosity(), **settings)
    summary = {k: result[k] for k in ("step", "val_bits_per_char", "stats", "seconds")}
    if export_dir:
        from rnn_apps.apps.poetry.export import export_poetry

        summary["exported"] = export_poetry(result["model"], result["vocab"], result["config"], export_dir)
    _report(summary, as_json)


_SENTIMENT_DATA = ("aclImdb directory or .tar.gz (its train split; train/unsup feeds --pretrain-epochs), "
                   "tfds:imdb_reviews (downloads), or a CSV/TSV of text,label.")


def _export_sentiment_result(result, app_dir, run_dir, version=None, notes=None):
    """Export a trained sentiment model and write the app directory's model card."""
    from rnn_apps.apps.sentiment.export import export_sentiment, write_model_card

    ngram = result.get("ngram")
    summary = {"val_accuracy": result.get("val_accuracy"), "lm_val_perplexity": result.get("lm_val_perplexity"),
               "stats": result.get("stats")}
    if ngram is not None and ngram.figures.get("combined_val_accuracy_cv") is not None:
        # The model's answer is the combination: its validation accuracy is the cross-validated one.
        summary["rnn_val_accuracy"] = summary["val_accuracy"]
        summary["val_accuracy"] = ngram.figures["combined_val_accuracy_cv"]
    path = export_sentiment(result["model"], result["vocabulary"], result["config"], app_dir, version,
                            lm=result.get("lm"), summary=summary, ngram=ngram)
    write_model_card(app_dir, path, run_dir, notes=notes)
    return path


@train.command("sentiment")
@click.option("--data", required=True, help=_SENTIMENT_DATA)
@click.option("--run-dir", default="runs/sentiment", show_default=True, help="Checkpoints, logs, vocabulary.")
@click.option("--epochs", default=4, show_default=True, help="Classifier epochs.")
@click.option("--pretrain-epochs", type=int, default=None,
              help="First train the embedding and encoder as forward/backward language models for N epochs on "
                   "all training text, unlabelled reviews included (default 0). With --resume it may grow while "
                   "the classifier has not started.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --run-dir (either phase).")
@_STRATEGY
@click.option("--cell", type=click.Choice(["lstm", "gru", "simple_rnn", "peephole_lstm", "coupled_lstm"]), default=None,
              help="Recurrent cell (default lstm).")
@click.option("--units", type=int, default=None, help="Units per direction of each layer (default 256).")
@click.option("--layers", "num_layers", type=int, default=None, help="Bidirectional layers (default 1).")
@click.option("--embedding-dim", type=int, default=None, help="Word embedding size (default 256).")
@click.option("--max-tokens", type=int, default=None, help="Vocabulary size, padding and unknown included (default 20000).")
@click.option("--max-len", type=int, default=None,
              help="Words read per review; longer ones keep the first quarter and the last three quarters (default 400).")
@click.option("--dropout", type=float, default=None, help="Dropout between layers and before the classifier (default 0.4).")
@click.option("--learning-rate", type=float, default=None, help="Classifier peak learning rate (default 1e-3).")
@click.option("--pretrain-learning-rate", type=float, default=None, help="Language-model learning rate (default 2e-3).")
@click.option("--layer-lr-decay", type=float, default=None,
              help="Discriminative fine-tuning (ULMFiT): each layer below the classifier head learns at 1/D of the "
                   "rate of the layer above (default 1: one rate for all).")
@click.option("--adversarial", type=float, default=None,
              help="Adversarial training (Miyato et al. 2017): each step also trains on word embeddings moved EPS "
                   "embedding standard deviations in the direction that hurts most; about 2x the time a step "
                   "(default 0: off; the paper's value is 5).")
@click.option("--ngram-features", type=click.IntRange(min=0), default=None,
              help="N-gram branch: the most frequent n-grams kept (default 200000; 0: no branch). Fitted after "
                   "the classifier; with --resume a finished run gets (or refits) its branch.")
@click.option("--ngram-order", type=click.IntRange(1, 5), default=None, help="Longest n-gram of the branch (default 2).")
@click.option("--ngram-l2", type=float, default=None, help="L2 penalty of the branch's logistic regression (default 1e-5).")
@click.option("--ngram-self-training", type=click.FloatRange(0, 1), default=None,
              help="Self-training of the n-gram branch: fit it again with the unlabelled reviews (aclImdb "
                   "train/unsup, TFDS unsupervised) labelled by its first fit, each counting W of a labelled review "
                   "(default 0.5; 0: off).")
@click.option("--ngram-tokens", type=click.Choice(["punctuation", "words"]), default=None,
              help="What the branch's n-grams are made of: words and punctuation marks, each mark a token "
                   "(default; '!', '?', ':)' and '7/10' carry sentiment), or words only (runs made before this "
                   "option existed).")
@click.option("--batch-size", type=int, default=None, help="Reviews per batch (default 64).")
@click.option("--seed", type=int, default=None, help="Seed: the same seed gives the same losses on a CPU.")
@click.option("--val-fraction", type=float, default=None, help="Share of each class held out for validation (default 0.1).")
@click.option("--val-split", type=click.Choice(["blocks", "random"]), default=None,
              help="How validation reviews are chosen: blocks (default) of consecutive reviews, so that a film's "
                   "reviews (numbered consecutively in aclImdb) are not on both sides, as with the test split; "
                   "random: one by one (optimistic; runs made before blocks existed).")
@_KEEP_BEST
@_PATIENCE
@click.option("--save-every", default=200, show_default=True, help="Checkpoint every N steps (and at each epoch end).")
@click.option("--tensorboard", is_flag=True, help="Write TensorBoard logs to RUN_DIR/tensorboard.")
@click.option("--export", "export_dir", default=None, help="Export the trained model to this app dir (e.g. models/sentiment).")
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def train_sentiment(data, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every, **settings):
    """Train the review classifier (optionally after language-model pre-training).

    \b
    Examples:
      rnn-apps train sentiment --data ../shared/data/aclImdb-train.tar.gz --pretrain-epochs 2 --epochs 4
      rnn-apps train sentiment --data aclImdb_v1.tar.gz --run-dir runs/sentiment --resume
      rnn-apps train sentiment --data reviews.csv --cell gru --export models/sentiment
    """
    from rnn_apps.apps.sentiment import task

    with _progress_to_stderr(as_json):
        result = task.train(data, run_dir, epochs=epochs, resume=resume, strategy=strategy, tensorboard=tensorboard,
                            save_every=save_every, verbose=_verbosity(), **settings)
    summary = {k: result[k] for k in ("step", "val_accuracy", "lm_val_perplexity", "stats", "seconds")}
    summary.update({k: result[k] for k in ("best_epoch", "stopped_early") if k in result})
    if result.get("ngram_figures"):
        summary["ngram_branch"] = result["ngram_figures"]
    if export_dir:
        summary["exported"] = _export_sentiment_result(result, export_dir, run_dir)
    _report(summary, as_json)


# ------------------------------------------------------------------------------------------- fine-tune


@cli.group("fine-tune")
def fine_tune():
    """Continue training a shipped model on your own data."""


@fine_tune.command("poetry")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Your poems: UTF-8 text, one a line or blank-line separated.")
@click.option("--model", "model_dir", default=None, help="Start from this model (default: newest shipped).")
@click.option("--out", "out_dir", default="models-finetuned/poetry", show_default=True, help="App directory to export the new model to.")
@click.option("--run-dir", default="runs/poetry-finetune", show_default=True)
@click.option("--epochs", default=3, show_default=True)
@click.option("--learning-rate", type=float, default=5e-4, show_default=True)
@click.option("--resume", is_flag=True)
@_STRATEGY
@click.option("--seed", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def fine_tune_poetry(data, model_dir, out_dir, run_dir, epochs, learning_rate, resume, strategy, seed, as_json):
    """Fine-tune the poem model on your text; new characters get new embedding rows.

    \b
    Examples:
      rnn-apps fine-tune poetry --data my_poems.txt
      rnn-apps generate-poem --model models-finetuned/poetry
    """
    from rnn_apps.apps.poetry import task
    from rnn_apps.apps.poetry.export import export_poetry
    from rnn_apps.paths import default_model_dir

    base = model_dir or default_model_dir("poetry")
    with _progress_to_stderr(as_json):
        result = task.train(data, run_dir, epochs=epochs, resume=resume, strategy=strategy, init_from=base,
                            verbose=_verbosity(), learning_rate=learning_rate, seed=seed, val_fraction=0.1)
    summary = {k: result[k] for k in ("step", "val_bits_per_char", "stats", "seconds")}
    summary["exported"] = export_poetry(result["model"], result["vocab"], result["config"], out_dir)
    _report(summary, as_json)


@fine_tune.command("sentiment")
@click.option("--data", required=True, help="Your labelled reviews: a CSV/TSV of text,label (0/1/neg/pos), or an aclImdb tree.")
@click.option("--model", "model_dir", default=None, help="Start from this model (default: newest shipped).")
@click.option("--out", "out_dir", default="models-finetuned/sentiment", show_default=True, help="App directory to export the new model to.")
@click.option("--run-dir", default="runs/sentiment-finetune", show_default=True)
@click.option("--epochs", default=2, show_default=True)
@click.option("--learning-rate", type=float, default=5e-4, show_default=True)
@click.option("--pretrain-epochs", type=int, default=0, show_default=True,
              help="First continue the model's language-model training on your texts for N epochs.")
@click.option("--batch-size", type=int, default=None, help="Reviews per batch (default 64).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True)
@click.option("--val-split", type=click.Choice(["blocks", "random"]), default=None,
              help="Validation reviews in blocks of consecutive lines (default) or drawn one by one.")
@click.option("--layer-lr-decay", type=float, default=None,
              help="Each layer below the classifier head learns at 1/D of the rate of the layer above (ULMFiT).")
@click.option("--adversarial", type=float, default=None,
              help="Adversarial training on the word embeddings with this EPS (Miyato et al. 2017; about 2x the time).")
@_KEEP_BEST
@_PATIENCE
@click.option("--resume", is_flag=True)
@_STRATEGY
@click.option("--seed", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def fine_tune_sentiment(data, model_dir, out_dir, run_dir, epochs, learning_rate, pretrain_epochs, batch_size,
                        val_fraction, val_split, layer_lr_decay, adversarial, keep_best, patience, resume, strategy,
                        seed, as_json):
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
    with _progress_to_stderr(as_json):
        result = task.train(data, run_dir, epochs=epochs, resume=resume, strategy=strategy, init_from=base,
                            verbose=_verbosity(), learning_rate=learning_rate, seed=seed, val_fraction=val_fraction,
                            val_split=val_split, pretrain_epochs=pretrain_epochs, batch_size=batch_size, layer_lr_decay=layer_lr_decay,
                            adversarial=adversarial, keep_best=keep_best, patience=patience)
    summary = {k: result[k] for k in ("step", "val_accuracy", "lm_val_perplexity", "stats", "seconds")}
    summary.update({k: result[k] for k in ("best_epoch", "stopped_early") if k in result})
    if result.get("ngram_figures"):
        summary["ngram_branch"] = result["ngram_figures"]
    summary["exported"] = _export_sentiment_result(result, out_dir, run_dir)
    _report(summary, as_json)


# ------------------------------------------------------------------------------------------- evaluate


@cli.group()
def evaluate():
    """Measure a model on a corpus."""


@evaluate.command("poetry")
@click.option("--data", required=True, type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", default=None)
@click.option("--split", type=click.Choice(["all", "val", "train"]), default="all", show_default=True,
              help="'val' is the model's own validation split of its training corpus (same seed and fraction).")
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def evaluate_poetry(data, model_dir, split, as_json):
    """Bits per character of the poem model on a corpus (same cleaning and script as training).

    \b
    Examples:
      rnn-apps evaluate poetry --data ../shared/data/tang-poems.jsonl.gz --split val
      rnn-apps evaluate poetry --data my_poems.txt --json
    """
    from rnn_apps.apps.poetry.evaluate import evaluate_corpus

    result = evaluate_corpus(data, model_dir, split, progress=not as_json)
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"bits per character: {result['bits_per_char']:.4f}  ({result['poems']} poems, "
                   f"{result['tokens']} tokens, {result['unknown_characters']} of them outside the vocabulary)")


@evaluate.command("sentiment")
@click.option("--data", required=True, help="aclImdb directory or .tar.gz, tfds:imdb_reviews, or a CSV/TSV of text,label.")
@click.option("--model", "model_dir", default=None, help="A model directory (default: newest shipped).")
@click.option("--split", type=click.Choice(["test", "train", "val"]), default="test", show_default=True,
              help="'val' is the model's own validation split of the train split (same seed and fraction).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with 'accuracy' and the confusion counts.")
@_friendly_errors
def evaluate_sentiment(data, model_dir, split, as_json):
    """Accuracy (and confusion counts) of the review classifier on a labelled split.

    \b
    Examples:
      rnn-apps evaluate sentiment --data aclImdb_v1.tar.gz --split test
      rnn-apps evaluate sentiment --data ../shared/data/aclImdb-train.tar.gz --split val --json
      rnn-apps evaluate sentiment --data my_reviews.csv --model models-finetuned/sentiment
    """
    from rnn_apps.apps.sentiment.evaluate import evaluate_reviews

    r = evaluate_reviews(data, model_dir, split, progress=not as_json)
    if as_json:
        _echo_json(r)
    else:
        click.echo(f"accuracy: {r['accuracy']:.4f}  ({r['reviews']:,} {split} reviews; true positive {r['true_positive']:,}, "
                   f"false positive {r['false_positive']:,}, true negative {r['true_negative']:,}, "
                   f"false negative {r['false_negative']:,})")


# ------------------------------------------------------------------------------------------- export


@cli.group("export")
def export_group():
    """Export a training run as a SavedModel (TF Serving layout, atomic)."""


@export_group.command("poetry")
@click.option("--run-dir", default=None, help="A training run to export.")
@click.option("--from-model", "from_model", default=None,
              help="Instead of a run: an exported poem model, whose weights are exported again with this version's "
              "graph (e.g. to gain rhyme and metre).")
@click.option("--models", "models_dir", default="models", show_default=True)
@click.option("--version", type=int, default=None, help="Version number (default: next).")
@_friendly_errors
def export_poetry_cmd(run_dir, from_model, models_dir, version):
    """Export the poem model of RUN_DIR (or of another export) to MODELS/poetry/<version>/.

    \b
    Examples:
      rnn-apps export poetry --run-dir runs/poetry --models models
      rnn-apps export poetry --from-model models/poetry/4 --models models-new
    """
    if (run_dir is None) == (from_model is None):
        raise click.UsageError("Give exactly one of --run-dir and --from-model.")
    from rnn_apps.apps.poetry import task
    from rnn_apps.apps.poetry.export import export_poetry, rebuild_from_export

    if from_model:
        model, vocab, cfg = rebuild_from_export(from_model)
    else:
        model, vocab, cfg = task.load_run_model(run_dir)
    click.echo(export_poetry(model, vocab, cfg, os.path.join(models_dir, "poetry"), version))


@export_group.command("sentiment")
@click.option("--run-dir", required=True)
@click.option("--models", "models_dir", default="models", show_default=True)
@click.option("--version", type=int, default=None, help="Version number (default: next).")
@click.option("--notes", "notes_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A Markdown file of your own for the model card's 'How this version was trained' section.")
@_friendly_errors
def export_sentiment_cmd(run_dir, models_dir, version, notes_file):
    """Export the review classifier of RUN_DIR to MODELS/sentiment/<version>/ (and its model card).

    \b
    Examples:
      rnn-apps export sentiment --run-dir runs/sentiment --models models
      rnn-apps export sentiment --run-dir runs/sentiment --models models --notes training-notes.md
    """
    from rnn_apps.apps.sentiment import task

    from rnn_apps.training import last_metric, read_history

    model, lm, vocabulary, cfg = task.load_run_model(run_dir)
    result = {"model": model, "lm": lm, "vocabulary": vocabulary, "config": cfg, "ngram": task.load_run_ngram(run_dir),
              "val_accuracy": last_metric(read_history(run_dir), "val_accuracy")}
    notes = None
    if notes_file:
        with open(notes_file, encoding="utf-8") as f:
            notes = f.read()
    click.echo(_export_sentiment_result(result, os.path.join(models_dir, "sentiment"), run_dir, version, notes))


# ------------------------------------------------------------------------------------------- serve


@cli.command()
@click.option("--models", "models_dir", default=None, help="Models directory (default: the shipped models/).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default; requests must then name a loopback Host).")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True, help="0: any free port.")
@click.option("--max-body-mb", type=click.FloatRange(0, 1024, min_open=True), default=16.0, show_default=True,
              help="Largest request body accepted (after gzip inflation).")
@click.option("--poll-seconds", type=click.FloatRange(0), default=2.0, show_default=True,
              help="How often new versions are looked for.")
@click.option("--enable-batching/--no-batching", default=True, show_default=True,
              help="Merge concurrent requests to one signature into one model call (as TF Serving's --enable_batching).")
@click.option("--max-batch-size", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Most examples in one merged call; larger requests run in chunks of this size.")
@click.option("--batch-timeout-ms", type=click.FloatRange(0, 1000), default=5.0, show_default=True,
              help="How long a batch waits to fill after its first request.")
@click.option("--batch-threads", type=click.IntRange(0, 256), default=0, show_default=True,
              help="Batches of one signature that run at once (0: one per CPU core).")
@click.option("--request-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds a request may take; a request still waiting or between chunks then is cancelled (504).")
@click.option("--heavy-slots", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Large requests (over 8 examples, 4 KB of text, or a long fill or translate text) that run at "
                   "once; others wait their turn.")
@click.option("--max-connections", type=click.IntRange(4, 10000), default=100, show_default=True,
              help="Open connections; at the limit the idlest ones are closed to make room.")
@click.option("--idle-timeout", type=click.IntRange(1, 3600), default=30, show_default=True,
              help="Seconds after which an idle connection is closed.")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="A web origin (e.g. https://app.example, or *) whose pages may call the API. May be repeated. "
                   "Default: none (browser requests from other sites get 403).")
@click.option("--warmup/--no-warmup", default=True, show_default=True,
              help="Replay each version's assets.extra/tf_serving_warmup_requests (or its app's typical "
                   "requests) before it serves.")
@_friendly_errors
def serve(models_dir, host, port, max_body_mb, poll_seconds, enable_batching, max_batch_size, batch_timeout_ms,
          batch_threads, request_timeout, heavy_slots, max_connections, idle_timeout, cors_origins, warmup):
    """Serve every model under MODELS with TensorFlow Serving's REST API.

    Inputs are checked against each app's limits (the same as the commands'); metrics for Prometheus are
    at /monitoring/prometheus/metrics. A SavedModel is code: serve only models from people you trust.

    \b
    Examples:
      rnn-apps serve
      curl -d '{"instances": ["春"]}' localhost:8501/v1/models/poetry:predict
      rnn-apps serve --port 0 --no-batching
      rnn-apps serve --cors-origin https://app.example --max-batch-size 16
    """
    from rnn_apps._quiet import enable_xla_cache
    from rnn_apps.paths import models_root

    enable_xla_cache()
    from rnn_apps.serve import ServeError, run_server

    try:
        run_server(models_dir or models_root(), host, port, int(max_body_mb * 1024 * 1024), poll_seconds,
                   enable_batching=enable_batching, max_batch_size=max_batch_size,
                   batch_timeout=batch_timeout_ms / 1000, batch_threads=batch_threads,
                   request_timeout=request_timeout, heavy_slots=heavy_slots,
                   max_connections=max_connections, idle_timeout=idle_timeout, cors_origins=cors_origins,
                   warmup=warmup)
    except ServeError as e:
        raise click.ClickException(str(e)) from None


# ------------------------------------------------------------------------------------------- translate

from rnn_apps.apps.translate import commands as _translate_commands  # noqa: E402  (uses the helpers above)

cli.add_command(_translate_commands.translate)
train.add_command(_translate_commands.train_translate)
evaluate.add_command(_translate_commands.evaluate_translate)
export_group.add_command(_translate_commands.export_translate_cmd)


# ------------------------------------------------------------------------------------------- caption

from rnn_apps.apps.caption import commands as _caption_commands  # noqa: E402  (uses the helpers above)

cli.add_command(_caption_commands.caption)
train.add_command(_caption_commands.train_caption)
evaluate.add_command(_caption_commands.evaluate_caption)
export_group.add_command(_caption_commands.export_caption_cmd)
fine_tune.add_command(_caption_commands.fine_tune_caption)


# ------------------------------------------------------------------------------------------- demo

from rnn_apps.apps.demos import commands as _demo_commands  # noqa: E402  (uses the helpers above)

cli.add_command(_demo_commands.demo)


# ------------------------------------------------------------------------------------------- forecast

from rnn_apps.apps.forecast import commands as _forecast_commands  # noqa: E402  (uses the helpers above)

cli.add_command(_forecast_commands.forecast)


# ------------------------------------------------------------------------------------------- fill in the blank

from rnn_apps.apps.fill import commands as _fill_commands  # noqa: E402  (uses the helpers above)

cli.add_command(_fill_commands.fill_poem)
train.add_command(_fill_commands.train_fill)
evaluate.add_command(_fill_commands.evaluate_fill)
export_group.add_command(_fill_commands.export_fill_cmd)


def main():
    cli(prog_name="rnn-apps")


if __name__ == "__main__":
    main()
