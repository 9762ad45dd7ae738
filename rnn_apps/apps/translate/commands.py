"""The translation commands of ``rnn-apps``: ``translate`` and ``train``, ``fine-tune``, ``evaluate``, ``export
translate``. Thin wrappers over the library.

TensorFlow is imported inside the commands, so ``rnn-apps --help`` stays instant.
"""

from __future__ import annotations

import os

import click

from rnn_apps import limits, textio
from rnn_apps.apps.translate.task import DEFAULTS
from rnn_apps.cli import options
from rnn_apps.cli.common import (
    FiniteFloatRange, IntegerRange, OutputFile, answer_rows, answer_those_that_can, card_kept, echo_exported,
    echo_json, echo_refused, friendly_errors, gather_texts, numbered_paths, refuse_if_none_left,
    refuse_overwriting_inputs, train_and_report, with_card,
)


def _export_run(r: dict, app_dir: str, version=None, default_beam=None, length_penalty=None,
                coverage_penalty=None, card: bool = True) -> str:
    from rnn_apps.apps.translate import export

    penalties = {"length_penalty": export.LENGTH_PENALTY if length_penalty is None else length_penalty,
                 "coverage_penalty": export.COVERAGE_PENALTY if coverage_penalty is None else coverage_penalty}
    write = with_card if card else (lambda app, path, run_dir, from_model: path)
    return write("translate", export.export_translate(
        r["model"], r["source_vocab"], r["target_vocab"], r["config"], r.get("truecase", {}), app_dir, version,
        default_beam=default_beam, **penalties,
        summary={k: r.get(k) for k in ("val_loss", "best_epoch", "averaged_epochs", "stats", "step", "stopped_early")}),
        r.get("run_dir"), r.get("from_model"))


def _decoding_of(model_dir: str, default_beam=None, length_penalty=None, coverage_penalty=None) -> dict:
    """The decoding settings for an export of a model continued from the export ``model_dir``: those it was
    exported with (the shipped zh-en model's α 0.6 and β 0.1, not today's defaults), except the ones given
    (not None)."""
    from rnn_apps.apps.translate.export import load_config

    decoding = load_config(model_dir).get("decoding") or {}  # an export without its decoding settings: defaults
    given = {"default_beam": default_beam, "length_penalty": length_penalty, "coverage_penalty": coverage_penalty}
    return {k: decoding.get(k) if v is None else v for k, v in given.items()}


def _run_base(run_dir: str):
    """The exported model a fine-tuning run in ``run_dir`` started from, as its record names it; None when the
    run has no record yet or its base is no longer there."""
    from rnn_apps.apps.base import read_run_config

    try:
        started = read_run_config(run_dir).get("init_from")
    except (OSError, ValueError, AttributeError):  # no record yet, or one that cannot be read: training says so
        return None
    return started if isinstance(started, str) and os.path.isdir(started) else None


def _default_beam(default: str):
    return options.default_beam(f"Beam width of the exported model's serving_default (and of translate without "
                                f"--beam; default: {default}).", "translate")


# ------------------------------------------------------------------------------------------- translate


# The same in translate and evaluate translate: which shipped model, by direction, unless --model names one.
_DIRECTION = click.option("--direction", type=click.Choice(["en-zh", "zh-en"]), default=None,
                          help="en-zh (English to Chinese, models/translate) or zh-en (Chinese to English, "
                               "models/translate-zh-en). Default: en-zh, or the direction of --model.")
_MODEL = click.option("--model", "model_dir", default=None,
                      help="A model directory (default: the newest shipped model of --direction).")


@click.command("translate")
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A UTF-8 file with one text a line ('-': standard input); of a line with tab-separated "
                   "columns in both languages (a table of pairs), the first column in the source language; a line "
                   "of one language is translated whole. May be repeated.")
@options.beam("Beam width, 1 (greedy) to 16 (default: the model's; see its model card).", "translate")
@click.option("--max-length", type=limits.option_type("translate", "max_length", where="--max-length"), default=None,
              help="Most tokens per sentence, its end token included: N-1 words (or Chinese characters) at most "
                   "(default: the model's bound).")
@_DIRECTION
@_MODEL
@options.call_batch("Sentences")
@options.plot_attention("Save a heat map of the attention (source tokens against target tokens) of the first text "
                        "(PNG, or any format matplotlib writes; several texts: one file each, numbered).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of objects with 'source', 'translation', 'unknown_words', 'sentences', "
                   "'reached_max_length' (the translation may be cut short by --max-length), 'lost_numbers' (numbers "
                   "in digits of the source that the translation does not carry, in digits or words), and "
                   "'read_from' (its file and line) for a text read from a file; a text that cannot be translated "
                   "has 'source' and 'error' (also on standard error; the command then ends with status 1).")
@friendly_errors
def translate(texts, files, beam, max_length, direction, model_dir, batch_size, plot_path, as_json):
    """Translate English into Chinese, or Chinese into English with --direction zh-en.

    Prints one translation a line. TEXT '-' reads texts from standard input, one a line; the output keeps
    the blank lines of a file or of standard input, so that it lines up with the input. A text of several
    sentences is cut into sentences, each translated on its own (the models learned from single sentences);
    words the model does not know are named on standard error.

    \b
    Examples:
      rnn-apps translate "I love you."
      rnn-apps translate "Good morning." "Where is the station?" --beam 4
      rnn-apps translate --file sentences.txt --json
      echo "How are you?" | rnn-apps translate -
      rnn-apps translate "Tom is my friend." --plot-attention attention.png
      rnn-apps translate --direction zh-en "我爱你。"
    """
    from rnn_apps.apps.translate.translate import TranslateError, read_texts_file

    inputs = gather_texts(texts, files, read_texts_file, TranslateError,
                          "Give text to translate: TEXT arguments, --file PATH (one text a line), or - to read "
                          "standard input. See rnn-apps translate --help.",
                          "Nothing to translate: the input holds only blank lines.")
    plot_paths = numbered_paths(plot_path, len(inputs)) if plot_path else []
    refuse_overwriting_inputs({"--plot-attention": plot_paths}, files)
    from rnn_apps.apps.translate.translate import Translator, source_columns

    # texts that are all empty or over-long are refused now, not after the model (and TensorFlow) took
    # seconds to load
    refuse_if_none_left(Translator.text_refusals(inputs, TranslateError), len(inputs), "texts can be translated",
                        TranslateError)
    from rnn_apps.quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    with native_stderr_silenced():
        tr = Translator(model_dir, direction)
        inputs, columns = source_columns(inputs, tr.source_lang)
        # a text that cannot be translated is named and does not cost the others their translations
        answers, refused = answer_those_that_can(
            inputs, lambda texts: tr.translate(texts, beam=beam, max_length=max_length, batch_size=batch_size),
            tr.refusals, "texts can be translated", TranslateError)
    for name, counts in columns.items():  # a table of pairs: its source column, said once a file
        click.echo(_columns_note(name, counts, tr.source_lang), err=True)
    echo_refused(refused)
    _show_translations(tr, inputs, answers, refused, max_length, plot_paths, beam, as_json)
    if refused:
        raise SystemExit(1)


def _columns_note(name: str, counts: dict, source_lang: str) -> str:
    """The note on a file of tab-separated pairs (``counts``: how many of its lines were read from each column,
    0 for those translated whole; :func:`~rnn_apps.apps.translate.translate.source_columns`): the column
    translated, or each column and how many lines, when its lines differ."""
    lang = limits.LANGUAGES[source_lang]
    used = sorted(k for k in counts if k)
    if len(used) == 1 and not counts.get(0):
        # a file of pairs can be scored instead (standard input cannot be given to --data)
        scored = ("" if name == "standard input" else f" (rnn-apps evaluate translate --data {name}"
                  f"{' --direction zh-en' if source_lang == 'zh' else ''} scores the translations against the other)")
        return (f"Note: {name} holds tab-separated columns: translating column {used[0]}, the {lang} one, of each "
                f"line{scored}.")
    plural = lambda n: f"{n} line{'s' * (n != 1)}"  # noqa: E731
    columns = ", ".join(f"column {k} on {plural(counts[k])}" for k in used)
    rows, whole = sum(counts[k] for k in used), counts.get(0, 0)
    if not whole:
        return f"Note: {name} holds tab-separated columns: translating the {lang} one of each line ({columns})."
    others = "the other line is" if whole == 1 else f"the other {whole} lines are"
    return (f"Note: {name} holds tab-separated columns in both languages on {plural(rows)} of {rows + whole}: "
            f"translating the {lang} one of each ({columns}); {others} translated whole.")


def _show_translations(tr, inputs: list, answers: dict, refused: dict, max_length, plot_paths: list, beam,
                       as_json: bool) -> None:
    """Print the translations (``answers``: input index -> result) with their notes and plots, and under
    ``--json`` an ``{"source", "error"}`` row in place of each refused text; the text output keeps a blank
    line where a file had one, and an empty line for a refused text, so that it lines up with the input."""
    from rnn_apps.quiet import native_stderr_silenced
    from rnn_apps.sentences import MAX_SENTENCE_TOKENS, split_sentences

    for i, r in sorted(answers.items()):
        which = textio.text_name(inputs[i], f"text {i + 1}" if len(inputs) > 1 else "the text")
        if r.unknown_words:
            click.echo(f"Note: the model does not know these words of {which}: {', '.join(r.unknown_words)}.", err=True)
        if r.sentences > len(split_sentences(r.source, tr.source_lang)):  # cutting sentences is the rule; pieces not
            click.echo(f"Note: a sentence of {which} is longer than {MAX_SENTENCE_TOKENS} tokens: it was cut into "
                       "pieces, each translated on its own.", err=True)
        if r.lost_numbers:
            click.echo(f"Note: the translation of {which} does not carry the number{'s' * (len(r.lost_numbers) > 1)} "
                       f"{', '.join(r.lost_numbers)} of the source; the model often drops or changes numbers.", err=True)
        if r.reached_max_length:
            click.echo(f"Note: the translation of {which} reached --max-length {max_length} ({max_length - 1} token{'s' * (max_length != 2)} "
                       "and the end): it may be cut short; a larger --max-length lets it finish.", err=True)
    if plot_paths:
        import warnings

        from rnn_apps.apps.translate.plot import plot_attention

        notes = []
        for i in sorted(answers):
            with native_stderr_silenced():
                alignment = tr.attention(inputs[i], beam=beam)
            with warnings.catch_warnings(record=True) as caught:  # a missing font: one note, not a warning a plot
                warnings.simplefilter("always")
                plot_attention(alignment, plot_paths[i])
            notes += [str(w.message) for w in caught if str(w.message) not in notes]
            click.echo(f"Attention plot saved to {plot_paths[i]}", err=True)
        for note in notes:
            click.echo(f"Note: {note}", err=True)
    if as_json:
        echo_json(answer_rows(inputs, answers, refused, lambda r: r.to_dict(), "source"))
        return
    for i, text in enumerate(inputs):  # line for line with a file's lines, its blank lines kept
        click.echo(textio.blank_lines_before(text) + (answers[i].translation if i in answers else ""))


# ------------------------------------------------------------------------------------------- train


@click.command("translate")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="Sentence pairs: a UTF-8 TSV of english<TAB>chinese[<TAB>...] (Tatoeba / manythings.org form).")
@options.training("runs/translate", 30, save=200, epochs_help="Most epochs (early stopping may end sooner).")
@options.setting("--direction", DEFAULTS, "Translation direction", click.Choice(["en-zh", "zh-en"]))
@click.option("--attention", type=click.Choice(["luong", "bahdanau", "none"]), default=None,
              help="Attention score (default luong); 'none' is the plain encoder-decoder with one context vector.")
@options.cell(DEFAULTS)
@options.size("--embedding-dim", DEFAULTS, "Embedding size")
@options.size("--encoder-units", DEFAULTS, "Encoder units per direction")
@options.size("--encoder-layers", DEFAULTS, "Bidirectional encoder layers")
@options.size("--decoder-units", DEFAULTS, "Decoder units")
@options.size("--attention-units", DEFAULTS, "Hidden size of the Bahdanau score")
@options.rate("--dropout", DEFAULTS, "Dropout")
@options.learning_rate(None, "Adam's peak learning rate, cosine decay", DEFAULTS)
@options.size("--batch-size", DEFAULTS, "Sentence pairs per batch")
@options.min_count(DEFAULTS, "Rarest source token kept in the vocabulary", "--source-min-count")
@options.min_count(DEFAULTS, "Rarest target token kept in the vocabulary", "--target-min-count")
@options.val_fraction(DEFAULTS, "Share of the source sentences held out for validation")
@options.patience(DEFAULTS)
@click.option("--placeholder-share", type=FiniteFloatRange(0, 1), default=None,
              help="Share of the training pairs with a name that are also given with the name as <unk> on both "
                   "sides, so the model learns to carry unknown words into its output (default 0.25; 0: none).")
@click.option("--concat-share", type=FiniteFloatRange(0, 1), default=None,
              help="Add this share of training pairs made by joining two random pairs, so the model learns to "
                   "translate every clause of a longer sentence (default 0.3; 0: none).")
@click.option("--average-best", type=IntegerRange(0, 20), default=None,
              help="End with the mean of the weights of this many best epochs by validation loss "
                   "(checkpoint averaging; default 3; 0 or 1: the best epoch's weights).")
@options.seed(DEFAULTS)
@options.export(example="models/translate")
@_default_beam("4")
@options.as_json()
@friendly_errors
def train_translate(data, run_dir, epochs, resume, strategy, export_dir, default_beam, as_json, tensorboard, save_every,
                    **settings):
    """Train the sequence-to-sequence translator (attention or not) on sentence pairs.

    \b
    Examples:
      rnn-apps train translate --data cmn-eng.tsv --export models/translate
      rnn-apps train translate --data cmn-eng.tsv --attention none --run-dir runs/translate-none
      rnn-apps train translate --data cmn-eng.tsv --run-dir runs/translate --resume
      rnn-apps train translate --data cmn-eng.tsv --direction zh-en --cell gru
    """
    from rnn_apps.apps.translate import task

    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, as_json=as_json,
                     exporter=lambda r, app_dir: _export_run(r, app_dir, default_beam=default_beam),
                     epochs=epochs, resume=resume, strategy=strategy, tensorboard=tensorboard, save_every=save_every,
                     **settings)


def _train_summary(result) -> dict:
    return {k: result.get(k) for k in ("step", "val_loss", "best_epoch", "averaged_epochs", "stopped_early", "stats",
                                       "seconds")}


# ------------------------------------------------------------------------------------------- fine-tune


@click.command("translate")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="Your sentence pairs: a UTF-8 TSV of english<TAB>chinese (the same form as training data).")
@options.fine_tuning(
    "translate", 5, 5e-4, save=200,
    model_help="The translator to start from (default: the newest shipped model of --direction).",
    between=[options.setting("--direction", DEFAULTS, "Which shipped model to start from when --model is not given",
                             click.Choice(["en-zh", "zh-en"]))],
    export_option=options.export(old=("--out",), help="App directory to export the new model to, as its next version "
                                 "(default: models-finetuned/translate, or models-finetuned/translate-zh-en)."))
@options.min_count(DEFAULTS, "A source word new to the model joins its vocabulary when your pairs use it this "
                   "often", "--source-min-count")
@options.min_count(DEFAULTS, "Likewise for the target side", "--target-min-count")
@options.val_fraction(DEFAULTS, "Share of your source sentences held out for validation")
@options.size("--batch-size", DEFAULTS, "Sentence pairs per batch")
@options.patience(DEFAULTS)
@options.seed(DEFAULTS)
@_default_beam("the starting model's")
@options.as_json()
@friendly_errors
def fine_tune_translate(data, model_dir, direction, export_dir, run_dir, epochs, resume, strategy, default_beam, as_json,
                        tensorboard, save_every, **settings):
    """Fine-tune the translator on your own sentence pairs; new words and characters get new rows.

    The model keeps its architecture, direction and vocabularies; the words (English) and characters
    (Chinese) of your pairs that it does not know and that are frequent enough are appended, with new
    embedding and output rows, so it keeps what it knew and learns your words.

    \b
    Examples:
      rnn-apps fine-tune translate --data my_pairs.tsv
      rnn-apps translate "Where is the museum?" --model models-finetuned/translate
      rnn-apps fine-tune translate --data my_pairs.tsv --direction zh-en --epochs 3
    """
    from rnn_apps.apps.translate import task
    from rnn_apps.paths import default_model_dir

    from rnn_apps.apps.translate.export import load_config
    from rnn_apps.export import resolve_model_dir

    app = "translate-zh-en" if direction == "zh-en" else "translate"
    base = model_dir or default_model_dir(app)
    # the new model decodes as the one it continues (its beam and penalties) unless --default-beam is given;
    # a resumed run continues the model it started from (its record), whatever --direction says
    started = _run_base(run_dir) if resume and not model_dir else None
    decoding = _decoding_of(resolve_model_dir(started or base), default_beam)
    if not export_dir:
        # the app directory follows the direction of the model given (--model may differ from --direction)
        trained = load_config(resolve_model_dir(base)).get("config", {}).get("direction", direction)
        export_dir = os.path.join("models-finetuned", "translate-zh-en" if trained == "zh-en" else "translate")
    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, as_json=as_json,
                     exporter=lambda r, app_dir: _export_run(r, app_dir, **decoding), epochs=epochs,
                     resume=resume, strategy=strategy, init_from=base, tensorboard=tensorboard, save_every=save_every,
                     **settings)


# ------------------------------------------------------------------------------------------- evaluate


@click.command("translate")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="A TSV of english<TAB>chinese pairs.")
@_DIRECTION
@_MODEL
@click.option("--split", type=click.Choice(["all", "val", "train"]), default="all", show_default=True,
              help="'val' (or 'train'): the part of --data the model's training drew for validation (same seed "
                   "and fraction). It is the model's validation set only when --data is the file the model was "
                   "trained on (the shipped models: cmn-eng-30k.tsv); of another file it may hold pairs the "
                   "model trained on. 'all': every pair, for a file of your own.")
@options.beam("Beam width, 1 (greedy) to 16 (default: the model's).", "translate")
@options.limit("Only the first N pairs (after the split).")
@click.option("--paragraphs", type=IntegerRange(1, 10), default=1, show_default=True,
              help="Join the pairs N at a time (shuffled with seed 0) into paragraphs, translated as "
                   "rnn-apps translate translates a paragraph (sentence by sentence) and scored against the N "
                   "references joined; 1: each pair alone.")
@options.call_batch("Sentences", 64)
@click.option("--output", "output_path", default=None, type=OutputFile(),
              help="Also write source, reference and translation of every pair to this TSV.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON object with 'bleu', 'chrf', 'by_length' (BLEU and chrF by English sentence length) "
                   "and the details.")
@friendly_errors
def evaluate_translate(data, direction, model_dir, split, beam, limit, paragraphs, batch_size, output_path, as_json):
    """Corpus BLEU and chrF of the translator on sentence pairs, overall and by English sentence length.

    sacrebleu: 'zh' tokenization for Chinese output, '13a' for English; chrF on characters.

    Chinese references are converted to simplified script, as the model writes simplified Chinese
    (the JSON also gives the BLEU against the references as written, 'bleu_references_as_written').

    \b
    Examples:
      rnn-apps evaluate translate --data cmn-eng-30k.tsv --split val
      rnn-apps evaluate translate --data pairs.tsv --beam 4 --json
      rnn-apps evaluate translate --data cmn-eng-30k.tsv --split val --direction zh-en
      rnn-apps evaluate translate --data cmn-eng-30k.tsv --split val --paragraphs 3 --limit 600
    """
    from rnn_apps.quiet import import_tensorflow_quietly, native_stderr_silenced

    refuse_overwriting_inputs({"--output": output_path}, [data])
    import_tensorflow_quietly()
    from rnn_apps.apps.translate.evaluate import evaluate_pairs

    with native_stderr_silenced():
        r = evaluate_pairs(data, model_dir, split=split, beam=beam, limit=limit, batch_size=batch_size,
                           progress=not as_json, output_path=output_path, direction=direction, paragraphs=paragraphs)
    if as_json:
        echo_json(r)
    else:
        which = "every pair" if r["split"] == "all" else f"the {r['split']} part"
        joined = f", joined into {r['texts']:,} paragraphs of {r['paragraphs']}" if r["paragraphs"] > 1 else ""
        click.echo(f"BLEU: {r['bleu']:.2f}  chrF: {r['chrf']:.2f}  ({r['pairs']:,} pairs: {which} of "
                   f"{os.path.basename(r['data'])}{joined}; {r['direction']}, beam {r['beam']}, tokenize "
                   f"{r['tokenize']}; {r['sentences_per_second']:.1f} sentences/s)")
        unit = "paragraphs" if r["paragraphs"] > 1 else "sentences"
        for name, row in r["by_length"].items():
            click.echo(f"  English {unit} of {name} words: BLEU {row['bleu']:.2f}  chrF {row['chrf']:.2f}  "
                       f"({row['pairs']:,} {'texts' if r['paragraphs'] > 1 else 'pairs'})")
        for key, what in (("unknown_names", "Invented names"), ("unknown_latin_names", "Invented names in Latin letters")):
            probe = r.get(key)
            if probe:
                click.echo(f"  {what} carried into the translation: {probe['carried']} of {probe['sentences']} "
                           f"sentences ({100 * probe['share']:.0f} %)")
        click.echo(r["signature"])


# ------------------------------------------------------------------------------------------- export


@click.command("translate")
@options.run_dir(None, "The training run to export.")
@options.from_model("an exported translator", "its decoding settings kept unless given here")
@options.export_target("translate", "models/translate, or models/translate-zh-en for a zh-en model")
@_default_beam("4; with --from-model, the model's")
@click.option("--length-penalty", type=FiniteFloatRange(0, 5), default=None,
              help="α of the beam's length normalisation ((5 + |Y|) / 6) ** α (default 1.0).")
@click.option("--coverage-penalty", type=FiniteFloatRange(0, 5), default=None,
              help="β of the beam's coverage penalty β Σ log min(attention received, 1) (default 0.2; 0: none).")
@friendly_errors
def export_translate_cmd(run_dir, from_model, export_dir, models_root, version, as_json, default_beam, length_penalty,
                         coverage_penalty):
    """Export the translator of RUN_DIR (or of another export) to APP_DIR/<version>/.

    \b
    Examples:
      rnn-apps export translate --run-dir runs/translate --export models/translate
      rnn-apps export translate --run-dir runs/translate-none --export runs/translate-none/models/translate --default-beam 1
      rnn-apps export translate --from-model models/translate --export models-new/translate
    """
    options.export_source(run_dir, from_model, "an exported translator")
    options.export_dir_for(export_dir, models_root, "translate")  # refuses both spellings before the model loads
    from rnn_apps.apps.translate import task

    if from_model:
        from rnn_apps.apps.translate.export import load_config, load_exported_model
        from rnn_apps.export import resolve_model_dir

        from_model = resolve_model_dir(from_model)
        model, src_vocab, tgt_vocab, cfg, truecase = load_exported_model(from_model)
        meta = load_config(from_model)
        decoding = _decoding_of(from_model, default_beam, length_penalty, coverage_penalty)
        default_beam, length_penalty, coverage_penalty = (
            decoding[k] for k in ("default_beam", "length_penalty", "coverage_penalty"))
        result = {"model": model, "source_vocab": src_vocab, "target_vocab": tgt_vocab, "config": cfg,
                  "truecase": truecase, **(meta.get("summary") or {})}
    else:
        from rnn_apps import training
        from rnn_apps.apps.base import read_run_config

        model, src_vocab, tgt_vocab, cfg, truecase = task.load_run_model(run_dir)
        # the figures training printed, read back from the run (the exported record and card state them)
        history = training.read_history(run_dir)
        best = training.best_epoch(history, "val_loss")
        averaged = sorted(training.best_epochs(history, "val_loss", cfg.get("average_best", 0))) if best else []
        result = {"model": model, "source_vocab": src_vocab, "target_vocab": tgt_vocab, "config": cfg,
                  "truecase": truecase, "run_dir": run_dir, "val_loss": best[1] if best else None,
                  "best_epoch": best[0] if best else None, "averaged_epochs": averaged if len(averaged) > 1 else [],
                  "stats": read_run_config(run_dir, task.CONFIG_FILE).get("stats"),
                  "step": history[-1].get("step") if history else None}
    app = "translate-zh-en" if cfg["direction"] == "zh-en" else "translate"
    app_dir = options.export_dir_for(export_dir, models_root, app)
    echo_exported(_export_run({**result, "from_model": from_model}, app_dir, version, default_beam, length_penalty,
                              coverage_penalty, card=not card_kept(app_dir, from_model)), as_json)


COMMANDS = {None: [translate], "train": [train_translate], "evaluate": [evaluate_translate],
            "export": [export_translate_cmd], "fine-tune": [fine_tune_translate]}
