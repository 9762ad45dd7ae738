"""The poem model's card (``rnn-apps card poetry``): its hub metadata, figures and measured sections.

Written by :func:`rnn_apps.cards.write_card`. With ``--input run_dir=RUN --input data=CORPUS`` the body is
measured anew (validation bits per character, samples; ``forms``, ``bench`` and ``prosody`` add the JSON
of ``benchmarks/poetry_forms.py``, ``benchmarks/generate.py`` and ``benchmarks/poetry_prosody.py --out``).
With ``prosody`` alone (on an existing card of the same version) only the section on rhyme and metre is written
anew (inserted before ``## Samples`` the first time). With ``from_card`` (a model exported again from another
export, ``rnn-apps export poetry --from-model``: the same weights, whose run may be gone) the body and figures of
that export's card are kept and its samples written anew from this model's graph (with ``prosody``, its section
on rhyme and metre too).
"""

from __future__ import annotations

import json
import os

from rnn_apps import cards
from rnn_apps.training import read_history, training_seconds

INPUTS = {
    "run_dir": "the training run (its settings and history)",
    "data": "the corpus, to measure the validation bits per character",
    "forms": "JSON of benchmarks/poetry_forms.py (form compliance)",
    "bench": "JSON of benchmarks/generate.py (generation speed)",
    "prosody": "JSON of benchmarks/poetry_prosody.py --out (the section on rhyme and metre)",
    "from_card": "the card of the export this version was exported again from, with the same weights "
                 "(rnn-apps export poetry --from-model): its body and figures are kept, its samples written anew",
}

SHIPPED_FIGURES = {  # (type, name, value) measured on the shipped versions (by SavedModel fingerprint); see their cards
    11853887458631128723: [  # version 9
        ("bits_per_character", "Validation bits per character", 6.159),
        ("form_compliance", "Constrained poems of exactly the requested form", 1.0),
        ("rhyme_compliance", "Default form poems that rhyme (check-poem)", 1.0),
    ],
    6945807967086272485: [  # version 8
        ("bits_per_character", "Validation bits per character", 6.730),
        ("form_compliance", "Constrained poems of exactly the requested form", 1.0),
        ("rhyme_compliance", "Default form poems that rhyme (check-poem)", 1.0),
    ],
    10542848637961202405: [  # version 7 (version 6's weights; bits per character measured on version 6)
        ("bits_per_character", "Validation bits per character", 6.944),
        ("form_compliance", "Constrained poems of exactly the requested form", 1.0),
        ("rhyme_compliance", "Default form poems that rhyme (check-poem)", 1.0),
    ],
    10571260556942750306: [  # version 6
        ("bits_per_character", "Validation bits per character", 6.944),
        ("form_compliance", "Constrained poems of exactly the requested form", 1.0),
        ("rhyme_compliance", "Default form poems that rhyme (check-poem)", 1.0),
    ],
}


HUB = {"language": ["zh"], "license": "mit", "pipeline_tag": "text-generation",
       "tags": ["rnn", "lstm", "char-rnn", "poetry", "classical-chinese", "tensorflow"],
       "datasets": ["chinese-poetry/tang"], "task": {"type": "text-generation", "name": "Tang poem generation"},
       "dataset": {"type": "chinese-poetry/tang", "name": "Complete Tang Poems (全唐诗), the model's validation poems",
                   "split": "validation"},
       "own_data": {"task": {"type": "text-generation", "name": "Poem generation"}}}
"""The card's front matter (model hubs read it); ``own_data`` for a model trained on poems of its user's own."""


def sections(version_dir: str, meta: dict, facts: dict, previous: str = "", run_dir=None, data=None, forms=None,
             bench=None, prosody=None, from_card=None):
    """The card's body, measured from a training run (``run_dir``, ``data``); with ``prosody`` alone, the
    ``previous`` body with its section on rhyme and metre written anew; with ``from_card``, ``(that card's body
    with new samples, its stated figures)``."""
    figures = cards.read_json(prosody)
    if from_card is not None:
        front, body = cards.card_exported_from(from_card, run_dir, "poem")
        if "\n## Samples" not in "\n" + body:
            raise cards.CardError(f"{from_card} is not a poem card: it has no Samples section.")
        body = replace_samples_section(body, samples_section(version_dir))
        if figures:
            body = update_prosody_section(body, prosody_section(version_dir, figures))
        return body, cards.stated_metrics(front)
    if run_dir is None:
        if figures is None or not previous:
            raise cards.CardError("The poem card needs run_dir and data (a whole card), or prosody and an existing "
                                  "card (its rhyme-and-metre section).")
        return update_prosody_section(previous, prosody_section(version_dir, figures))
    if data is None:
        raise cards.CardError("The poem card needs data (the corpus) with run_dir.")
    text = build_card(run_dir, version_dir, data, cards.read_json(forms), cards.read_json(bench))
    return update_prosody_section(text, prosody_section(version_dir, figures)) if figures else text


def build_card(run_dir: str, model_dir: str, data: str, forms: dict | None, bench: dict | None, seed: int = 2026) -> str:
    """The card's body measured from ``run_dir``, the model and the corpus ``data``."""
    from rnn_apps.apps.poetry.evaluate import evaluate_corpus

    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        run = json.load(f)
    history = read_history(run_dir)
    cfg, stats = run["settings"], run["stats"]
    val = evaluate_corpus(data, model_dir, "val", allow_empty=True)
    train_secs = training_seconds(history) if history else None
    started_from = run.get("init_from")
    if started_from and not os.path.relpath(started_from).startswith(".."):
        started_from = os.path.relpath(started_from)
    own = cards.own_data(run.get("data") or data)  # the user's own poems: no word of the shipped corpus
    lines = [
        f"# Poem model (Char-RNN on `{own}`)" if own else "# Poem model (Char-RNN on the Complete Tang Poems)",
        "",
        "A character-level recurrent network that writes classical Chinese poems; the SavedModel writes them in "
        "its graph.",
        "",
        "## Data",
        "",
        (f"* Corpus: `{own}`" if own else "* Corpus: the Complete Tang Poems (全唐诗) of the chinese-poetry project")
        + f", {stats['poems']:,} usable poems "
        "after cleaning (editorial notes removed, ？！→。 ；：、→，, poems with other symbols such as □ left out), "
        f"converted to **{cfg['script']}** script with OpenCC.",
        f"* Split: a seeded permutation (seed {cfg['seed']}) holds out {cfg['val_fraction']:.0%} of the poems for "
        f"validation: {stats['train_poems']:,} training poems ({stats['train_tokens']:,} tokens) and "
        f"{stats['val_poems']:,} validation poems ({stats['val_tokens']:,} tokens)."
        + ("" if own else " The project's held-back test poems were never seen."),
        f"* Vocabulary: {stats['vocab_size']:,} tokens (characters seen at least {cfg['min_count']} times in training, "
        "，。 and `<pad> <unk> <bos> <eos>`), JSON in `assets.extra/poetry.json`.",
        "",
        "## Model and training",
        "",
        f"* Embedding {cfg['embedding_dim']} → {cfg['num_layers']} × `rnn_apps.cells.{cards.cell_class(cfg['cell'])}` "
        f"({cfg['units']} units) → projection to {cfg['embedding_dim']} → logits tied to the embedding; "
        f"dropout {cfg['dropout']}, float32.",
        f"* Adam, learning rate {cfg['learning_rate']} with cosine decay to 5 %, gradient clipping at "
        f"{'a global ' if run.get('clipping') == 'global' else ''}norm "
        f"{cfg['clipnorm']}, batches of {cfg['tokens_per_batch']:,} tokens (poems of similar length; long poems cut "
        f"into pieces of {cfg['max_len']}), {len(history)} epochs, {history[-1]['step'] if history else '?'} steps"
        + (f", starting from the weights of `{started_from}` (a new Adam state and schedule)." if started_from else "."),
        cards.trained_on_line(run, train_secs) if train_secs else "",
        "",
        "| epoch | step | train bits/char | validation bits/char |",
        "| --- | --- | --- | --- |",
    ]
    for h in history:
        lines.append(f"| {h['epoch']} | {h['step']} | {h.get('bits_per_char', float('nan')):.3f} | "
                     f"{h.get('val_bits_per_char', float('nan')):.3f} |")
    lines += [
        "",
        "## Figures",
        "",
        (f"* **Validation bits per character: {val['bits_per_char']:.3f}** over {val['poems']:,} whole validation poems "
         f"({val['tokens']:,} predicted tokens, the end of each poem included, each poem read from its start; "
         f"{val['unknown_characters']:,} characters outside the vocabulary scored as `<unk>`), measured on the "
         "exported model with "
         f"`rnn-apps evaluate poetry --data {own or '../shared/data/tang-poems.jsonl.gz'} --split val`.")
        if val["poems"] else
        "* No validation figure: the model's split of this corpus leaves no validation poems "
        f"(validation fraction {cfg.get('val_fraction')}).",
    ]
    if forms:
        lines.append(f"* Form compliance: **{forms['compliant']}/{forms['total']}** constrained generations "
                     "(the four forms, half of them acrostics) have exactly the requested shape "
                     "(`python benchmarks/poetry_forms.py`).")
    if bench:
        lines.append(speed_line(bench))
    lines += ["", samples_section(model_dir, seed)]
    return "\n".join(x for x in lines if x is not None)


def speed_line(bench: dict) -> str:
    """The card's line on generation speed from the JSON of ``benchmarks/generate.py --json``: the version it
    measured, as the JSON records it (``model``; an older JSON records none, and the line names no version), the
    in-graph loop at batches 1 and 64 and, when measured, the NumPy engine's step at batch 1."""
    b1, b64 = bench.get("1", {}), bench.get("64", {})
    model = bench.get("model")
    measured = f", measured on version {os.path.basename(os.path.normpath(model))}" if model else ""
    numpy = (b1.get("numpy") or {}).get("ms_per_step")
    return ("* Generation speed of the SavedModel's `generate` signature, the whole sampling loop in one graph call "
            f"(`python benchmarks/generate.py`{measured}): {b1['in-graph']['chars_per_s']:.0f} chars/s at "
            f"batch 1 ({b1['in-graph']['ms_per_step']:.2f} ms a step, {100 * b1['floor_over_in_graph']:.0f} % of the "
            f"matrix-product floor), {b64['in-graph']['chars_per_s']:.0f} chars/s at batch 64. "
            "`rnn-apps generate-poem` runs the NumPy engine instead"
            + (f", about {numpy:.1f} ms a step at batch 1" if numpy else "")
            + " ([docs/poetry.md](../../docs/poetry.md#the-shipped-model)).")


SAMPLES_HEADING = "## Samples"
SAMPLES = (  # (title, the library's arguments); the card names the command's options, where free form is --form free
    ("The default (a form drawn for each poem)", {"form": "auto"}),
    ("Free form (the model picks)", {"form": ""}),
    ("Continue 春眠", {"start": "春眠", "form": ""}),
    ("五言绝句 wujue", {"form": "wujue"}),
    ("七言绝句 qijue", {"form": "qijue"}),
    ("五言律诗 wulv", {"form": "wulv"}),
    ("七言律诗 qilv", {"form": "qilv"}),
    ("Acrostic 春夏秋冬, 七言绝句", {"acrostic": "春夏秋冬", "form": "qijue"}),
    ("Acrostic 明月清风, 五言绝句", {"acrostic": "明月清风", "form": "wujue"}),
)


def samples_section(model_dir: str, seed: int = 2026) -> str:
    """The card's ``## Samples`` section: two poems of each of :data:`SAMPLES` written by the model."""
    from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator

    gen = PoemGenerator(model_dir)
    lines = [SAMPLES_HEADING, "", f"Temperature 0.8, top-p 0.9, seed {seed} (`rnn-apps generate-poem ... --seed {seed}`).", ""]
    for title, kw in SAMPLES:
        try:
            poems = gen.generate(n=2, seed=seed, **kw)
        except PoemError:  # e.g. a small model without these characters
            continue
        flags = " ".join(f"--{k} {v or 'free'}" for k, v in kw.items() if (k, v) != ("form", "auto"))
        lines.append(f"**{title}**" + (f" — `{flags}`" if flags else ""))
        lines.append("")
        for p in poems:
            lines.append("> " + "<br>".join(p.lines or [p.text]))
            lines.append("")
    return "\n".join(lines)


def replace_samples_section(card: str, section: str) -> str:
    """``card`` with its ``## Samples`` section replaced by ``section``."""
    old = cards.section(card, SAMPLES_HEADING)
    return card.replace(old, section.rstrip("\n") + "\n", 1) if old else card.rstrip("\n") + "\n\n" + section


PROSODY_HEADING = "## Rhyme and metre (押韵、平仄)"


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} %" if n else "-"


def _rule(cov: dict, name: str) -> str:
    r = cov["fallback_rules_on_book_chars"][name]
    return f"{r['book_agrees']:,} of {r['claimed']:,} ({_pct(r['book_agrees'], r['claimed'])})"


def _rule_of(agreement) -> str:
    """"2,450 of 2,458 (99.7 %)" from [agreed, of]."""
    ok, n = agreement
    return f"{ok:,} of {n:,} ({_pct(ok, n)})"


def prosody_section(model_dir: str, figures: dict, seed: int = 2026) -> str:
    """The card's section on rhyme and metre: tables and sources, compliance, cost, analysed samples."""
    from rnn_apps.apps.poetry.generate import PoemGenerator
    from rnn_apps.apps.poetry.prosody import Tables, check_poem

    tables = Tables.load()
    cov = figures["coverage"]
    n_v = cov["vocab_han"]
    lines = [
        PROSODY_HEADING,
        "",
        "Poems of the four forms rhyme and scan by construction: `--rhyme pingshui` (default; 平水韵) or `xinyun` "
        "(中华新韵, modern tones) ends lines 2, 4 (6, 8) — and line 1 when the template rhymes it — on 平 characters of "
        "one rhyme group, which the model picks from its own distribution at the first rhyming place; later rhyming "
        "places may only draw characters of that group, none that already ends a line (重韵). `--metre loose` (default; 一三五不论, no 孤平 "
        "or 三平尾) or `strict` follows one of the form's four templates (平起/仄起, first line rhymed or not), "
        "drawn with the poem's seed among those the start and acrostic fit. Characters of unknown tone or rhyme are "
        "never drawn where a tone or rhyme is required; characters with both tones (多音字) count as either. The "
        "constraints are masks in the decoder of the SavedModel's `generate` signature (inputs `rhyme`, `metre`; "
        "\"\" means the defaults) and of the NumPy engine; `rnn-apps check-poem` analyses any poem the same way.",
        "",
        "**Tables** (`rnn_apps/apps/poetry/prosody.json`, rebuilt by `python -m rnn_apps.apps.poetry.prosody_build`):",
        "",
        f"* 平水韵: {tables.sources['pingshui']}.",
        *([f"* Characters the transcription lacks (啼 溪 堤 昂 爐 ...): {tables.sources['pingshui_inferred']}: a "
           "character gets the 平 group its rhymes fall in and the tone its metre shows (in a regulated line the even "
           "places alternate), where the poems say so clearly; run on the characters the book has, these rules agree "
           f"with it on the tone of {_rule_of(tables.inferred_agreement['tone'])} and the group of "
           f"{_rule_of(tables.inferred_agreement['group'])}."] if "pingshui_inferred" in tables.sources else []),
        f"* 中华新韵 and the fallback tone: {tables.sources['xinyun']}.",
        f"* Coverage of the model's {n_v:,} Chinese characters: classical tone from 平水韵 for "
        f"{cov['pingshui_book']:,} ({_pct(cov['pingshui_book'], n_v)}), "
        + (f"inferred from the Tang poems for {cov['inferred']:,} ({_pct(cov['inferred'], n_v)}), "
           if cov.get("inferred") else "") + f"from the modern fallback for "
        f"{cov['modern_fallback']:,} (仄 when every modern reading has the 3rd or 4th tone, 平 when every one has the "
        "1st or 2nd tone and a nasal final, which 入声 never became; tried on the characters the book has, the book "
        f"agrees with {_rule(cov, 'ze')} of the 仄 and {_rule(cov, 'ping')} of the 平 it gives), unknown for "
        f"{cov['classical_unknown']:,} "
        f"({_pct(cov['classical_unknown'], n_v)}; never drawn where a tone is required); {cov['polyphonic']:,} have "
        f"both tones; {cov['ping_rhyme_chars']:,} can rhyme in a 平 group; {cov['usable_groups']['pingshui']} of the "
        f"{cov['usable_groups']['pingshui_of']} 平 groups (and {cov['usable_groups']['xinyun']} of "
        f"{cov['usable_groups']['xinyun_of']} 新韵 groups) have enough characters (12) to be offered. "
        f"{_pct(cov['val_known_classical'], cov['val_occurrences'])} of the {cov['val_occurrences']:,} characters of "
        "the real regulated validation poems have a known classical tone.",
        "",
        f"**Measured** (`python benchmarks/poetry_prosody.py --out prosody.json`): {figures['per_form']} poems of each "
        "form per setting (NumPy engine, temperature 0.8, top-p 0.9), each checked by check-poem's analysis (rhyme: "
        "the even lines end in one 平 group and line 1 joins it or ends on 仄; metre: no break of the best-fitting "
        "template at the places the setting constrains); beside them the real validation poems of regulated shape "
        f"(4 or 8 lines of 5 or 7 characters) among the {figures['validation_poems']:,} validation poems of the "
        "model's split. Bits per character: the model's own score of the poems (the end included).",
        "",
        "| poems | form | n | rhyme | metre loose | metre strict | bits/char |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    groups = list(figures["generated"].items()) + [("real validation poems", figures["validation"])]
    keys = ("poems", "rhyme_ok", "loose_ok", "strict_ok", "bits", "tokens")
    for name, rows in groups:
        pooled = {k: sum(r[k] for r in rows.values()) for k in keys}
        for form, r in list(rows.items()) + [("all", pooled)]:
            bold = "**" if form == "all" else ""
            lines.append(f"| {name} | {bold}{form}{bold} | {r['poems']} | {bold}{_pct(r['rhyme_ok'], r['poems'])}{bold} | "
                         f"{_pct(r['loose_ok'], r['poems'])} | {_pct(r['strict_ok'], r['poems'])} | "
                         f"{r['bits'] / max(r['tokens'], 1):.3f} |")
    total = {name: [sum(r[k] for r in rows.values()) for k in ("bits", "tokens")] for name, rows in groups}
    bpc = {name: b / max(t, 1) for name, (b, t) in total.items()}
    default, free = next(iter(figures["generated"])), "unconstrained (none, none)"
    if free in bpc:
        lines += ["", f"The model itself scores the default poems at {bpc[default]:.3f} bits per character against "
                  f"{bpc[free]:.3f} for the unconstrained ones ({bpc[default] - bpc[free]:+.3f}): the masks cost the poems "
                  "little likelihood, since the model's own choices already follow the tones much of the time (the "
                  "metre of unconstrained poems fits a template in the loose sense more often than that of real "
                  "regulated-shape poems, many of which are old-style verse that follows none)."]
    gen = PoemGenerator(model_dir, engine="numpy")
    lines += ["", "Samples (`rnn-apps generate-poem --form F --seed S`, the defaults) with `rnn-apps check-poem`'s "
              "analysis (平/仄 of each character, 多 = either; the line end's groups):", ""]
    for k, form in enumerate(("wujue", "qijue", "wulv", "qilv")):
        poem = gen.generate(form=form, seed=seed + k)[0]
        r = check_poem(poem.text, tables)
        lines.append(f"**{form}**, seed {seed + k} — {r['template']['name']}, rhyme {r['rhyme']['group']}")
        lines.append("")
        for line in r["lines"]:
            lines.append(f"    {line['text']}  {''.join(c['tone'] for c in line['characters'])}  "
                         f"{'/'.join(line['end_groups']) or '?'}")
        lines.append("")
    return "\n".join(lines)


def update_prosody_section(card: str, section: str) -> str:
    """``card`` with its rhyme-and-metre section replaced by ``section`` (inserted before ``## Samples``)."""
    if PROSODY_HEADING in card:
        start = card.index(PROSODY_HEADING)
        end = card.find("\n## ", start + len(PROSODY_HEADING))
        return card[:start] + section + (card[end + 1 :] if end >= 0 else "")
    if "\n## Samples" in card:
        at = card.index("\n## Samples") + 1
        return card[:at] + section + "\n" + card[at:]
    return card.rstrip("\n") + "\n\n" + section
