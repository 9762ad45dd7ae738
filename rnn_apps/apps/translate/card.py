"""The translators' cards (``rnn-apps card translate``, ``rnn-apps card translate-zh-en``): hub metadata, figures
and measured sections, written by :func:`rnn_apps.cards.write_card` (with the attention plot beside the card).
Measured anew from the training run and the exported model's evaluations::

    rnn-apps card translate -i run_dir=runs/translate -i bleu=runs/translate-bleu.json \
        [-i bench=runs/translate-bench.json]

``bleu`` holds the JSON printed by ``rnn-apps evaluate translate --json`` (the shipped beam), or
``{"greedy": R, "beam": R, "beam_plain": R}`` where each R is the JSON printed by
``rnn-apps evaluate translate --split val --json`` (``beam_plain``: the same beam without the coverage penalty
and with the length penalty 0.6 of earlier versions, optional); ``bench`` that of
``python benchmarks/translate.py --json``.
"""

from __future__ import annotations

import json
import os

from rnn_apps import cards
from rnn_apps.limits import LANGUAGES

SAMPLES = {
    "en-zh": (
        "I love you.",
        "Where is the station?",
        "Tom is my best friend.",
        "I don't like coffee, but I like tea.",
        "She goes to school by bus every day.",
        "The weather is nice today, let's go for a walk.",
        "You need a car if you live in the suburbs.",
        "Zhang Wei lives in Chongqing with his sister.",
    ),
    "zh-en": (
        "我爱你。",
        "车站在哪里？",
        "汤姆是我最好的朋友。",
        "我不喜欢咖啡，但是我喜欢茶。",
        "她每天坐公共汽车上学。",
        "今天天气很好，我们去散步吧。",
        "如果你住在郊区，你需要一辆车。",
    ),
}
PLOT_SENTENCE = {"en-zh": "I don't like coffee, but I like tea.", "zh-en": "我不喜欢咖啡，但是我喜欢茶。"}

# What each version changed, for the card's "Versions" section.
CHANGELOG = {
    "en-zh": {
        1: "17,042 training pairs of `cmn-eng.tsv`, one bidirectional encoder layer, the best epoch's weights, beam "
           "search with length normalisation 0.6: BLEU 32.58 (beam 4) on its own validation split.",
        2: "32,055 pairs of `cmn-eng-30k.tsv` (31,728 once script duplicates are merged), two encoder layers, the "
           "mean of the three best epochs' weights, name placeholders so that unknown words are carried into the "
           "output, a coverage penalty and length normalisation 1.0 in the beam, float16 storage (half the size). "
           "On the 793 validation pairs that neither version trained on (English sentences new in the larger "
           "corpus), BLEU with beam 4 went from 29.84 to 36.14, and from 19.40 to 23.95 on the 63 of ten words or "
           "more.",
        3: "the same data, network and decoder, with 8,947 more training pairs made by joining two random pairs "
           "(`--concat-share 0.3`), so that a longer sentence is translated clause by clause; input limits checked "
           "in the graph. On the validation pairs BLEU with beam 4 went from 35.45 to 37.68 (chrF 30.07 to 31.95), "
           "greedy from 33.61 to 35.40, and on sentences of ten words or more from 23.75 to 25.59. Unknown names "
           "carried into the output: 86 of 100 (version 2: 95).",
    },
    "zh-en": {
        1: "the first Chinese → English model: the recipe of the English → Chinese version 2, trained the other way; "
           "its beam uses length normalisation 0.6 and coverage penalty 0.1, the best of the settings tried on the "
           "validation pairs (English → Chinese's 1.0 and 0.2 gave about one BLEU point less here).",
        2: "version 1's weights unchanged, exported again (`rnn-apps export translate --from-model`) so that the "
           "model itself checks its inputs (beam size, length, empty text) and TF Serving refuses what the command "
           "refuses; its translations are version 1's (512 of 512 validation sentences identical at beams 1 and 4).",
    },
}


INPUTS = {
    "run_dir": "the training run",
    "bleu": "JSON of rnn-apps evaluate translate --json, or of several evaluations: greedy, beam and optionally "
            "beam_plain (see the module)",
    "bench": "JSON of benchmarks/translate.py --json",
}

SHIPPED_FIGURES = {  # (type, name, value) measured on the shipped versions (by SavedModel fingerprint); see their cards
    8148803518340038484: [  # en-zh version 3
        ("bleu", "BLEU (beam 4)", 37.68),
        ("chrf", "chrF (beam 4)", 31.95),
        ("bleu", "BLEU (greedy)", 35.40),
    ],
    16422789072442109528: [  # zh-en version 4 (version 3's weights, no known character copied into English)
        ("bleu", "BLEU (beam 4)", 20.61),
        ("chrf", "chrF (beam 4)", 35.41),
        ("bleu", "BLEU (greedy)", 18.13),
    ],
    9073135890401489681: [  # zh-en version 3 (version 2's weights, a Latin word one token)
        ("bleu", "BLEU (beam 4)", 20.53),
        ("chrf", "chrF (beam 4)", 35.37),
        ("bleu", "BLEU (greedy)", 18.05),
    ],
    13479126332557239903: [  # zh-en version 2 (version 1's weights, input limits in the graph)
        ("bleu", "BLEU (beam 4)", 20.53),
        ("chrf", "chrF (beam 4)", 35.35),
        ("bleu", "BLEU (greedy)", 18.03),
    ],
}


def HUB(app: str, meta: dict) -> dict:
    """The card's front matter (model hubs read it); ``own_data`` for a model trained on pairs of its user's own,
    whose licence is not Tatoeba's."""
    direction = (meta.get("config") or {}).get("direction", "en-zh")
    src, tgt = direction.split("-")
    return {"language": ["en", "zh"], "license": "cc-by-2.0", "pipeline_tag": "translation",
            "tags": ["translation", "seq2seq", "attention", "lstm", "rnn-apps"], "datasets": ["tatoeba"],
            "task": {"type": "translation", "name": f"{LANGUAGES[src]} to {LANGUAGES[tgt]}"},
            "dataset": {"type": "tatoeba", "name": f"Tatoeba {direction}, the validation split", "split": "validation"},
            "own_data": {"license": None}}


def sections(version_dir: str, meta: dict, facts: dict, previous: str = "", run_dir=None, bleu=None, bench=None):
    """The card's body measured from the run and the evaluations, with the metrics of the front matter."""
    if run_dir is None or bleu is None:
        raise cards.CardError("The translation card needs run_dir and bleu.")
    scores = cards.read_json(bleu)
    if isinstance(scores, dict) and isinstance(scores.get("bleu"), (int, float)):
        scores = {"beam": scores}  # one evaluation, as `rnn-apps evaluate translate --json` prints it
    if not isinstance(scores, dict) or not isinstance(scores.get("beam"), dict) or not all(
            isinstance(scores.get(k), (dict, type(None))) for k in ("greedy", "beam_plain")):
        raise cards.CardError(f"bleu={bleu} is not the JSON of `rnn-apps evaluate translate --json`, nor "
                              '{"beam": R, "greedy": R, "beam_plain": R} of several such evaluations R.')
    body = build_card(run_dir, version_dir, scores, facts, cards.read_json(bench))
    beam = scores["beam"].get("beam", "")
    figures = [{"type": "bleu", "name": f"BLEU (beam {beam})", "value": round(scores["beam"]["bleu"], 2)},
               {"type": "chrf", "name": f"chrF (beam {beam})", "value": round(scores["beam"]["chrf"], 2)}]
    if scores.get("greedy"):
        figures.append({"type": "bleu", "name": "BLEU (greedy)", "value": round(scores["greedy"]["bleu"], 2)})
    return body, figures


def _fmt(r: dict | None, key: str = "bleu") -> str:
    return f"{r[key]:.2f}" if r and r.get(key) is not None else "—"


def _score_rows(name: str, r: dict | None) -> str:
    """A results row: overall BLEU and chrF, then BLEU / chrF by English length."""
    if not r:
        return f"| {name} | — | — | — | — | — |"
    cells = [f"{r['bleu']:.2f}", f"{r['chrf']:.2f}"]
    for key in ("under 5", "5-9", "10 or more"):
        b = (r.get("by_length") or {}).get(key)
        cells.append(f"{b['bleu']:.2f} / {b['chrf']:.2f}" if b else "—")
    return f"| {name} | " + " | ".join(cells) + " |"


def build_card(run_dir: str, model_dir: str, bleu: dict, facts: dict, bench: dict | None = None,
               plot_name: str = "attention.png") -> str:
    """The card's body: data, model and training, results, samples, the attention plot, how to reproduce."""
    import numpy as np

    from rnn_apps import training
    from rnn_apps.apps.translate.plot import plot_attention
    from rnn_apps.apps.translate.translate import Translator

    app_dir = os.path.dirname(model_dir.rstrip("/"))
    app = os.path.basename(app_dir)
    version = os.path.basename(model_dir.rstrip("/"))
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        run = json.load(f)
    cfg, stats = run["settings"], run["stats"]
    direction = cfg["direction"]
    src, tgt = direction.split("-")
    history = training.read_history(run_dir)
    averaged = sorted(training.best_epochs(history, "val_loss", cfg.get("average_best", 0)))
    averaged = averaged if len(averaged) > 1 else []
    tr = Translator(model_dir)
    n_params = facts["parameters"]
    stored = sorted({v.dtype.name for v in tr.loaded.model_weights if v.dtype.is_floating})
    decoding = tr.decoding
    beam = tr.default_beam
    samples = SAMPLES[direction]
    greedy_out = tr.translate(list(samples), beam=1)
    beam_out = tr.translate(list(samples), beam=beam)
    alignment = tr.attention(PLOT_SENTENCE[direction], beam=1)
    plot_attention(alignment, os.path.join(app_dir, plot_name))
    best = min(history, key=lambda r: r.get("val_loss", float("inf"))) if history else None
    corpus = cards.data_name(run.get("data", "cmn-eng-30k.tsv"))
    own = cards.own_data(run.get("data"))  # the user's own pairs: no word of Tatoeba or of the project's machine
    data_arg = own or f"../shared/data/{corpus}"
    where = cards.where_trained(run, "the project's 2-core CPU machine")
    cell = cards.cell_name(cfg["cell"])
    words = "characters" if tgt == "zh" else "words"
    lines = [
        f"# Translation model ({LANGUAGES[src]} → {LANGUAGES[tgt]}, sequence to sequence with attention)",
        "",
        "A SavedModel that tokenizes, encodes, decodes (greedy or beam search, in a `tf.while_loop`) and detokenizes "
        "in its graph.",
        "",
        "```sh",
        *([f'rnn-apps translate "{samples[0]}"', f'rnn-apps translate "{samples[5]}" --beam 1 --plot-attention a.png']
          if direction == "en-zh" else
          [f'rnn-apps translate --direction zh-en "{samples[0]}"',
           f'rnn-apps translate --direction zh-en "{samples[5]}" --beam 1 --plot-attention a.png']),
        "rnn-apps fine-tune translate --data my_pairs.tsv" + (" --direction zh-en" if direction == "zh-en" else "")
        + "        # your own sentence pairs; new words get new rows",
        "```",
        "",
        "Signatures: `serving_default` `{\"text\": string[B]}` → `{\"translation\": string[B]}` (beam "
        f"{beam}); `translate` (`text`, `beam_size`, `max_length`); `attention` (`text`, `beam_size`) → "
        "translation, source and target tokens and the alignment weights; `tokenize` (tokens and unknown tokens).",
        "",
        "## Data",
        "",
        f"* Corpus: `{corpus}`, English–Chinese sentence pairs"
        + ("" if own else " of the Tatoeba Project (CC-BY 2.0 FR) in the manythings.org form")
        + ", the Chinese side converted to simplified script (OpenCC); a pair that is then the "
        f"same as another (one sentence written in both scripts) counts once: {stats['pairs']:,} pairs."
        + ("" if own else " 2,000 further pairs are held back to measure the shipped model; none was seen here."),
        f"* Split: a seeded permutation (seed {cfg['seed']}) of the distinct English sentences holds out "
        f"{cfg['val_fraction']:.0%} of them for validation, with all their translations: {stats['train_pairs']:,} "
        f"training and {stats['val_pairs']:,} validation pairs (no English sentence on both sides).",
        f"* Tokens: English words (lowercased; punctuation and clitics such as n't 's split off) and Chinese "
        f"characters, kept when seen at least {cfg['source_min_count']} times in training: {stats['source_vocab_size']:,} "
        f"source and {stats['target_vocab_size']:,} target entries with `<pad> <unk> <bos> <eos>` "
        f"({100 * stats['val_source_unknown_rate']:.1f} % of the validation source tokens are unknown).",
        f"* Names: {stats.get('names', 0)} names and their usual Chinese rendering (Tom 汤姆, Boston 波士顿, ...) "
        "are mined from the training pairs; for a quarter of the training pairs holding one of them, a copy with "
        f"the name as `<unk>` on both sides is added ({stats.get('placeholder_pairs', 0):,} pairs), so that the model "
        "learns to write `<unk>` where a word it does not know goes.",
    ]
    if stats.get("concatenated_pairs"):
        lines.append(
            f"* Joined pairs: {stats['concatenated_pairs']:,} more training pairs, each two random training pairs "
            f"joined (English to English, Chinese to Chinese; `--concat-share {cfg.get('concat_share')}`), so that "
            "the model learns to translate every clause of a longer input rather than stop after the first "
            "(concatenation augmentation: Varis & Bojar, 2021; Nguyen et al., 2021). The vocabularies are counted "
            "before the joins.")
    lines += [
        "",
        "## Model and training",
        "",
        f"* Embeddings {cfg['embedding_dim']} → {cfg['encoder_layers']} bidirectional `rnn_apps.cells` {cell} "
        f"layer(s) of {cfg['encoder_units']} units a direction (`rnn_apps.layers.DeepBidirectionalRNN`) → decoder "
        f"{cell} of {cfg['decoder_units']} units started from the encoder's final states (tanh bridges) → "
        f"{'Luong (general)' if cfg['attention'] == 'luong' else cfg['attention']} attention over the encoder states "
        "(`rnn_apps.layers.GlobalAttention`) → attentional vector tanh(W[c; s]) → dropout → softmax over "
        f"{stats['target_vocab_size']:,} {words}. {n_params:,} parameters, stored as {', '.join(stored)} "
        f"({facts['size_mb']} MB on disk; the graph computes in float32).",
        f"* Teacher forcing, cross-entropy per target token, Adam at {cfg['learning_rate']} with cosine decay, gradient "
        f"clipping at norm {cfg['clipnorm']}, dropout {cfg['dropout']}, batches of {cfg['batch_size']} pairs of similar "
        f"length; early stopping on the validation loss (patience {cfg['patience']}).",
    ]
    if history:
        kept = (f"the weights are the mean of those of its {len(averaged)} epochs of least validation loss "
                f"(epochs {', '.join(map(str, averaged))}; `--average-best {len(averaged)}`)" if averaged
                else f"the weights of epoch {best['epoch']} are kept")
        lines.append(
            f"* Trained {len(history)} epochs ({history[-1]['step']:,} steps, {training.training_seconds(history) / 60:.0f} "
            f"min{where}); best validation loss "
            f"{best['val_loss']:.3f} (perplexity {np.exp(best['val_loss']):.2f}) at epoch {best['epoch']}; {kept}.")
    lines += ["", "| epoch | train loss | val loss | val token accuracy | minutes |", "| --- | --- | --- | --- | --- |"]
    for h in history:
        mark = " (averaged)" if h["epoch"] in averaged else ""
        lines.append(f"| {h['epoch']}{mark} | {h.get('loss', float('nan')):.3f} | {h.get('val_loss', float('nan')):.3f} | "
                     f"{h.get('val_accuracy', float('nan')):.3f} | {h['seconds'] / 60:.1f} |")
    g, b, plain = bleu.get("greedy"), bleu.get("beam"), bleu.get("beam_plain")
    lines += [
        "",
        "## Results",
        "",
        f"On the {b['pairs']:,} validation pairs: corpus BLEU (sacrebleu, "
        + ("`zh` tokenization, i.e. by character, references in simplified script" if tgt == "zh" else "`13a` tokenization")
        + f"; `{b['signature']}`) and chrF, overall and by the length of the English sentence (BLEU / chrF), measured "
        f"on the exported model with `rnn-apps evaluate translate --data {data_arg} --split val --json "
        "[--beam N]`:",
        "",
        "| decoding | BLEU | chrF | under 5 words | 5-9 words | 10 or more words |",
        "| --- | --- | --- | --- | --- | --- |",
        _score_rows("greedy", g),
        _score_rows(f"beam {beam} (shipped: length normalisation α {decoding.get('length_penalty')}, coverage "
                    f"penalty β {decoding.get('coverage_penalty')})", b),
    ]
    if plain:
        lines.append(_score_rows(f"beam {beam}, α 0.6 and no coverage penalty (the decoder of earlier versions)", plain))
    counts = {k: v["pairs"] for k, v in (b.get("by_length") or {}).items()}
    lines += ["", "Pairs by English length: " + ", ".join(f"{k} words {v:,}" for k, v in counts.items()) + "."]
    if tgt == "zh" and b.get("bleu_references_as_written") is not None:
        lines += ["", f"Against the references as written (simplified and traditional script mixed): "
                  f"{_fmt(b, 'bleu_references_as_written')} BLEU (beam {beam})."]
    probe = b.get("unknown_names")
    if probe:
        lines += ["", f"Unknown names: in {probe['sentences']} validation sentences that name "
                  f"{'Tom' if src == 'en' else '汤姆'}, the name was replaced by an invented one "
                  f"({', '.join(probe['names'])}); the translation (beam {beam}) holds it as written in "
                  f"{probe['carried']} ({100 * probe['share']:.0f} %)."]
    probe = b.get("unknown_latin_names")
    if probe:
        lines += ["", f"Names in Latin letters (Chinese text often keeps a foreign name so): in the same sentences "
                  f"with {', '.join(probe['names'])} in place of 汤姆, the translation holds the name as written in "
                  f"{probe['carried']} of {probe['sentences']} ({100 * probe['share']:.0f} %)."]
    lines += [
        "",
        "The beam's final choice is GNMT's score log P(Y|X) / lp(Y) + cp(X; Y), lp = ((5 + |Y|) / 6) ** α and "
        "cp = β Σ_i log min(Σ_j p_ij, 1): a translation that never attends to a source word (a dropped clause) pays "
        "for it. Each `<unk>` the model writes is replaced by the unknown source word it attends to most, with the "
        "unknown words next to it (a name of several words or characters), as written in the input (after Luong et "
        "al., 2015), so names the model has never seen are carried over rather than dropped.",
        "",
    ]
    if bench:
        rows = {(r["batch"], r["beam"]): r for r in bench["rows"]}
        bb = max(r["beam"] for r in bench["rows"])
        g1, g64, b1, b64 = rows.get((1, 1)), rows.get((64, 1)), rows.get((1, bb)), rows.get((64, bb))
        lines += [
            f"Decoding speed (`python benchmarks/translate.py`, validation sentences, the whole graph call, "
            f"{bench.get('cpu_count')} CPU cores"
            + (" under load from other processes, so these are lower bounds" if cards.project_run(run) else "")
            + f"): greedy {g1['sentences_per_s']:.1f} sentences/s "
            f"at batch 1 and {g64['sentences_per_s']:.0f} at batch 64; beam {bb} {b1['sentences_per_s']:.1f} at batch 1 "
            f"and {b64['sentences_per_s']:.0f} at batch 64.", ""]
    lines += ["## Samples", "", f"| {LANGUAGES[src]} | greedy | beam {beam} |", "| --- | --- | --- |"]
    for text, gr, bm in zip(samples, greedy_out, beam_out):
        lines.append(f"| {text} | {gr.translation} | {bm.translation} |")
    ex = (g or {}).get("examples") or []
    if ex:
        lines += ["", "First validation pairs (greedy):", "", "| source | reference | translation |", "| --- | --- | --- |"]
        for e in ex:
            lines.append(f"| {e['source']} | {e['reference']} | {e['translation']} |")
    lines += [
        "",
        "## Attention",
        "",
        f"![attention]({plot_name})",
        "",
        f"The alignment of \"{PLOT_SENTENCE[direction]}\" → \"{alignment.translation}\" (greedy): each row is a "
        "written token (the end token last), each column a source token; `rnn-apps translate \"...\" "
        "--plot-attention out.png` draws it for any sentence.",
        "",
        "## Reproduce",
        "",
        "```sh",
        f"rnn-apps train translate --data {data_arg} --run-dir runs/{app} --direction {direction} "
        f"--encoder-layers {cfg['encoder_layers']} --epochs 30 --patience {cfg['patience']} --average-best "
        f"{cfg.get('average_best', 0)} --seed {cfg['seed']}"
        + (f" --concat-share {cfg['concat_share']}" if cfg.get("concat_share") else ""),
        f"rnn-apps export translate --run-dir runs/{app} --export models/{app} --version {version}",
        *[f"rnn-apps evaluate translate --data {data_arg} --model models/{app} --split val --beam {n} --json"
          for n in (1, beam)],
        f"python benchmarks/translate.py --model models/{app} --data {data_arg} --json",
        f"rnn-apps card {app} -i run_dir=runs/{app} -i bleu=BLEU.json -i bench=BENCH.json",
        "```",
        "",
        "## Limits",
        "",
        (f"Trained on {stats['train_pairs']:,} sentence pairs of `{own}`: sentences unlike them and rare words are "
         "often mistranslated; the table gives the scores by sentence length." if own else
         f"Trained on {stats['train_pairs'] // 1000} thousand short, everyday Tatoeba sentences (median six English "
         "words): longer or technical sentences and rare words are often mistranslated, and it scores lower on "
         "sentences of ten or more words (see the table).")
        + " Paragraphs are translated sentence by sentence. "
        + ("The output is simplified Chinese; a name the model does not know is copied as written (in Latin letters)."
           if tgt == "zh" else "Traditional characters are read as their simplified forms; a character the model does "
                               "not know is copied into the English as written."),
        "",
    ]
    if not own:  # the shipped versions' changelog, not that of a model of the user's own
        lines += ["## Versions", "",
                  *[f"* {v}: {text}" for v, text in sorted(CHANGELOG[direction].items(), reverse=True)
                    if v <= int(version)], ""]
    return "\n".join(lines)

