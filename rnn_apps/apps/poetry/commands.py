"""The poem commands of ``rnn-apps``: ``generate-poem``, ``check-poem`` and ``train``, ``fine-tune``, ``evaluate``,
``export poetry``. Thin wrappers over the library; TensorFlow is imported inside the commands."""

from __future__ import annotations

import os
import sys

import click

from rnn_apps import limits  # the server's ranges and messages
from rnn_apps.apps.poetry.constants import FORM_NAMES, FORMS
from rnn_apps.apps.poetry.task import DEFAULTS
from rnn_apps.cli import options
from rnn_apps.cli.common import (
    IntegerRange, answer_rows, each_or_refused, echo_exported, echo_json, echo_refused, friendly_errors, gather_texts,
    refuse_if_none_left, show, train_and_report, with_card,
)


@click.command("generate-poem")
@click.option("--start", default="", help="Continue this start (续写), e.g. 春眠.")
@click.option("--acrostic", default="", help="Acrostic (藏头诗): these characters open the lines, in order.")
@click.option(
    "--form",
    type=click.Choice(["auto", "wujue", "qijue", "wulv", "qilv", "free"]),
    default="auto",
    show_default=True,
    help="五言绝句 wujue, 七言绝句 qijue, 五言律诗 wulv, 七言律诗 qilv; auto: one of these four for each poem, drawn "
    "with its seed among those --start and --acrostic fit (free form when none does); free: the model picks the "
    "shape, without rhyme or metre.",
)
@click.option("-n", "--num", "n", type=IntegerRange(1, None), default=1, show_default=True, help="Number of poems.")
@click.option("--temperature", type=limits.option_type("poetry", "temperature"), default=0.8, show_default=True,
              help="Sampling temperature; 0 is greedy.")
@click.option("--top-k", type=limits.option_type("poetry", "top_k"), default=0, show_default=True,
              help="Sample among the k most likely characters (0: off).")
@click.option("--top-p", type=limits.option_type("poetry", "top_p"), default=0.9, show_default=True,
              help="Nucleus sampling mass (1: off).")
@click.option("--seed", type=limits.option_type("poetry", "seed"), default=None,
              help="Same seed, same poems (poem i uses seed + i). Default: a random seed.")
@click.option("--max-length", type=limits.option_type("poetry", "max_length"), default=128, show_default=True,
              help="Most characters of a --form free poem (the four forms have their own length).")
@click.option("--rhyme", type=click.Choice(["pingshui", "xinyun", "none"]), default="pingshui", show_default=True,
              help="Poems of a form: lines 2, 4 (6, 8) end on 平 characters of one rhyme group the model picks, "
              "of 平水韵 (pingshui) or 中华新韵 (xinyun, modern tones); none: no rhyme.")
@click.option("--metre", type=click.Choice(["strict", "loose", "none"]), default="loose", show_default=True,
              help="Poems of a form: the 平仄 of a regulated template (平起/仄起, first line rhymed or not); strict: every "
              "position; loose: 一三五不论, no 孤平; none: no tones.")
@click.option("--script", type=click.Choice(["simplified", "traditional"]), default=None,
              help="Script of the output. Default: that of the start and acrostic when they are written in one "
              "script (東風 gives traditional), else the model's.")
@options.model("poetry")
@click.option(
    "--engine",
    type=click.Choice(["auto", "numpy", "tensorflow"]),
    default="auto",
    show_default=True,
    help="Who runs the model: numpy (starts in well under a second, no TensorFlow import), tensorflow "
    "(the SavedModel's generate signature), or auto (numpy when it supports the model). Same seed, same poems.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of objects with 'text'.")
@friendly_errors
def generate_poem(start, acrostic, form, n, temperature, top_k, top_p, seed, max_length, rhyme, metre, script, model_dir,
                  engine, as_json):
    """Write classical Chinese poems with the shipped Char-RNN (no training, no network).

    \b
    Examples:
      rnn-apps generate-poem
      rnn-apps generate-poem --start 春眠
      rnn-apps generate-poem --acrostic 春夏秋冬 --form wujue
      rnn-apps generate-poem --form free --max-length 64
      rnn-apps generate-poem --form qilv -n 3 --seed 7 --json
      rnn-apps generate-poem --form qijue --metre strict --rhyme xinyun
      rnn-apps generate-poem --script traditional
    """
    from rnn_apps.quiet import enable_xla_cache, native_stderr_silenced
    from rnn_apps.apps.poetry.generate import PoemGenerator, to_script, unkept_punctuation

    if engine != "numpy" and "tensorflow" not in sys.modules:
        enable_xla_cache()  # in case TensorFlow is used (must come before its import)
    # Many poems take minutes: a terminal sees how many are written (through a copy of stderr, as the
    # block below keeps TensorFlow's native lines off it).
    batch = limits.APPS["poetry"].max_batch
    terminal = os.fdopen(os.dup(sys.stderr.fileno()), "w") if n > batch and sys.stderr.isatty() else None

    def progress(done, total):
        terminal.write(f"\r{done}/{total} poems" if done < total else "\r" + " " * 24 + "\r")
        terminal.flush()

    try:
        with native_stderr_silenced():
            gen = PoemGenerator(model_dir, engine=engine)
            poems = gen.generate(start, acrostic, "" if form == "free" else form, n, temperature, top_k, top_p, seed,
                                 max_length, rhyme, metre, progress=progress if terminal else None)
    finally:
        if terminal is not None:
            terminal.close()
    if script is None:  # the user's own script, when their characters say which (the model's otherwise)
        from rnn_apps.chinese import written_script

        script = written_script(start + acrostic) if (start or acrostic) else None
    rows = []
    tables = None
    for p in poems:
        d = p.to_dict()
        d["form"] = d["form"] or "free"  # as --form names it (the library's and the graph's "")
        if script and script != gen.script:
            from rnn_apps.apps.poetry import prosody

            tables = tables or prosody.Tables.load()
            keep = (acrostic or "") + (start or "")  # the user's characters stay as given
            d["text"] = to_script(d["text"], script, keep, tables)
            d["lines"] = [to_script(x, script, keep, tables) for x in d["lines"]]
        rows.append(d)
    for used in dict.fromkeys(p.form for p in poems):  # each form drawn, once
        unkept = unkept_punctuation(start, used)
        if unkept:  # the form sets its own marks: say which of the start's are not in its poems
            where = ", ".join(f"{mark} after {before}" if before else f"{mark} at its beginning"
                              for mark, before in unkept)
            click.echo(f"Note: {used} ({FORM_NAMES[used]}) puts ， and 。 after every {FORMS[used][0]} characters; "
                       f"the start's {where} {'is' if len(unkept) == 1 else 'are'} left out of its poems.", err=True)
    asked = [f"--{name} {value}" for name, value in (("rhyme", rhyme), ("metre", metre))
             if value != "none" and click.get_current_context().get_parameter_source(name)
             == click.core.ParameterSource.COMMANDLINE]
    free = [i + 1 for i, p in enumerate(poems) if not p.form]
    if asked and free:  # said, not ignored silently: the templates need a form's lines
        which = ("the poems are" if len(free) == len(poems) else
                 f"poem{'s' if len(free) > 1 else ''} {', '.join(map(str, free))} {'are' if len(free) > 1 else 'is'}")
        click.echo(f"Note: {' and '.join(asked)} {'apply' if len(asked) > 1 else 'applies'} to the four forms; "
                   f"{which} free form, which neither rhymes nor scans.", err=True)
    for i, p in enumerate(poems):
        if p.forced_breaks:  # the start or acrostic fits no template of the form: say where, in one line
            where = ", ".join(f"{b['char']} (line {b['line']}, position {b['position']}: {b['kind']})"
                              for b in p.forced_breaks)
            click.echo(f"Note: poem {i + 1}: the start or acrostic breaks the --metre {metre}/--rhyme {rhyme} rules "
                       f"at {where}; the other characters follow them.", err=True)
    if as_json:
        echo_json(rows)
        return
    for i, d in enumerate(rows):
        if i:
            click.echo()
        click.echo("\n".join(d["lines"]) if d["lines"] else d["text"])


@click.command("check-poem")
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A UTF-8 file of poems separated by blank lines ('-': standard input). May be repeated.")
@click.option("--rhyme", type=click.Choice(["pingshui", "xinyun"]), default="pingshui", show_default=True,
              help="Rhyme book and tones: 平水韵 with classical tones, or 中华新韵 with modern tones.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: per poem the input as given ('read_from': file and line, for a poem "
              "read from a file), its lines (each character's 平/仄/多 (either)/? (unknown)), the rhyme group, "
              "the matched template and every break of rhyme or metre; 'split' when a text without punctuation or "
              "line breaks was read as the lines of the one form of its length (20, 28, 40 or 56 characters); "
              "'heading' for title and author lines set aside before the poem; a "
              "poem that cannot be checked has 'input' and 'error' (also on standard error; status 1).")
@friendly_errors
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

    poems = gather_texts(texts, files, read_poems_file, PoemError,
                         "Give poems to check: TEXT arguments, --file PATH (poems separated by blank lines), "
                         "or '-' for standard input.", "There is no poem to check: the input is blank.")
    from rnn_apps import textio

    tables = prosody.Tables.load()

    def check(i):
        try:
            return check_poem(poems[i], rhyme, tables)
        except PoemError as e:  # name the poem: "Poem 2" among the arguments, or the file and line it starts on
            raise PoemError(f"{textio.text_name(poems[i], f'Poem {i + 1}')}: {e}") from None

    # one poem that cannot be checked does not cost the others their analysis: it is named, and the
    # command ends with status 1
    results, refused = each_or_refused(range(len(poems)), check, PoemError)
    refuse_if_none_left(refused, len(poems), "poems can be checked", PoemError)
    echo_refused(refused)
    if as_json:
        echo_json(answer_rows(poems, {i: {"input": str(poems[i]), **r} for i, r in results.items()}, refused,
                              dict, "input"))
    else:
        click.echo("\n\n".join(prosody.format_check(results[i]) for i in sorted(results)))
    if refused:
        raise SystemExit(1)


def _train_summary(result: dict) -> dict:
    # best_epoch and stopped_early: a run with --patience, which ends with its best epoch
    return {k: result[k] for k in ("step", "val_bits_per_char", "stats", "seconds", "best_epoch", "stopped_early")
            if k in result}


@click.command("poetry")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="Corpus: chinese-poetry JSON(L)(.gz) or a UTF-8 text file.")
@options.training("runs/poetry", 6, save=100)
@options.cell(DEFAULTS)
@options.size("--units", DEFAULTS, "Units per recurrent layer")
@options.size("--layers", DEFAULTS, "Recurrent layers", key="num_layers")
@options.size("--embedding-dim", DEFAULTS, "Embedding size")
@options.rate("--dropout", DEFAULTS, "Dropout")
@options.learning_rate(None, "Adam's peak learning rate, cosine decay", DEFAULTS)
@options.size("--tokens-per-batch", DEFAULTS, "Tokens per batch")
@options.setting("--script", DEFAULTS, "Script the corpus is converted to", click.Choice(["simplified", "traditional"]))
@options.seed(DEFAULTS)
@options.min_count(DEFAULTS, "Rarest character kept in the vocabulary")
@options.val_fraction(DEFAULTS, "Share of poems held out for validation")
@options.patience(DEFAULTS)
@options.export(example="models/poetry")
@options.as_json()
@friendly_errors
def train_poetry(data, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every, **settings):
    """Train the Char-RNN on a poem corpus.

    \b
    Examples:
      rnn-apps train poetry --data tang-poems.jsonl.gz --epochs 6
      rnn-apps train poetry --data poems.txt --run-dir runs/mine --resume
      rnn-apps train poetry --data poems.txt --cell gru --units 256 --export models/poetry
      rnn-apps train poetry --data poems.txt --epochs 20 --patience 2
    """
    from rnn_apps.apps.poetry import task

    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, as_json=as_json,
                     epochs=epochs, resume=resume, strategy=strategy, tensorboard=tensorboard, save_every=save_every,
                     **settings)


@click.command("poetry")
@options.fine_tuning_on_poems("poetry", 3, 5e-4, DEFAULTS, save=100)
@friendly_errors
def fine_tune_poetry(data, model_dir, export_dir, run_dir, epochs, learning_rate, resume, strategy, as_json,
                     tensorboard, save_every, **settings):
    """Fine-tune the poem model on your poems; new characters get new embedding rows.

    The model keeps its network and the ids of the characters it knows; the characters of your poems it
    does not know, used at least --min-count times, are appended with new rows.

    \b
    Examples:
      rnn-apps fine-tune poetry --data my_poems.txt --min-count 1
      rnn-apps generate-poem --model models-finetuned/poetry
      rnn-apps fine-tune poetry --data my_poems.txt --run-dir runs/poetry-finetune --resume
      rnn-apps fine-tune poetry --data my_poems.txt --epochs 10 --patience 2 --tensorboard
    """
    from rnn_apps.apps.poetry import task
    from rnn_apps.paths import default_model_dir

    base = model_dir or default_model_dir("poetry")
    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, as_json=as_json,
                     epochs=epochs, resume=resume, strategy=strategy, init_from=base, learning_rate=learning_rate,
                     tensorboard=tensorboard, save_every=save_every, **settings)


@click.command("poetry")
@options.evaluation("poetry", "The poem corpus: chinese-poetry JSON (lines, .gz too) or UTF-8 text.",
                    ["all", "val", "train"], "all",
                    "'val' is the model's own validation split of its training corpus (same seed and fraction).",
                    "Print a JSON object with 'bits_per_char', 'poems', 'tokens', 'unknown_characters'.",
                    data_type=click.Path(dir_okay=False))
@friendly_errors
def evaluate_poetry(data, model_dir, split, as_json):
    """Bits per character of the poem model on a corpus (same cleaning and script as training).

    \b
    Examples:
      rnn-apps evaluate poetry --data tang-poems.jsonl.gz --split val
      rnn-apps evaluate poetry --data my_poems.txt --json
    """
    from rnn_apps.apps.poetry.evaluate import evaluate_corpus

    show(evaluate_corpus(data, model_dir, split, progress=not as_json), as_json,
         lambda r: f"bits per character: {r['bits_per_char']:.4f}  ({r['poems']} poems, {r['tokens']} tokens, "
         f"{r['unknown_characters']} of them outside the vocabulary)")


@click.command("poetry")
@options.run_dir(None, "A training run to export.")
@options.from_model("an exported poem model", "e.g. to gain rhyme and metre")
@options.export_target("poetry")
@friendly_errors
def export_poetry_cmd(run_dir, from_model, export_dir, models_root, version, as_json):
    """Export the poem model of RUN_DIR (or of another export) to APP_DIR/<version>/.

    \b
    Examples:
      rnn-apps export poetry --run-dir runs/poetry --export models/poetry
      rnn-apps export poetry --from-model models/poetry/13 --export models-new/poetry
    """
    options.export_source(run_dir, from_model, "an exported poem model")
    app_dir = options.export_dir_for(export_dir, models_root, "poetry")
    from rnn_apps.apps.poetry import task
    from rnn_apps.apps.poetry.export import export_poetry, rebuild_from_export

    if from_model:
        model, vocab, cfg = rebuild_from_export(from_model)
    else:
        model, vocab, cfg = task.load_run_model(run_dir)
    echo_exported(with_card("poetry", export_poetry(model, vocab, cfg, app_dir, version), run_dir, from_model),
                  as_json)


COMMANDS = {None: [generate_poem, check_poem_cmd], "train": [train_poetry], "fine-tune": [fine_tune_poetry],
            "evaluate": [evaluate_poetry], "export": [export_poetry_cmd]}
