"""Write the model card ``models/translate/README.md`` (and the attention plot beside it) for an exported translator.

    python -m rnn_apps.apps.translate.card --run-dir runs/translate --model models/translate \
        --bleu-json runs/translate-bleu.json [--none-run-dir runs/translate-none] [--bench-json runs/translate-bench.json]

``--bleu-json`` holds ``{"attention": {"greedy": R, "beam": R}, "none": {"greedy": R, "beam": R}}`` where each R is
the JSON printed by ``rnn-apps evaluate translate --json``.
"""

from __future__ import annotations

import argparse
import json
import os

SAMPLES = (
    "I love you.",
    "Where is the station?",
    "Tom is my best friend.",
    "It's very cold today.",
    "I don't like coffee, but I like tea.",
    "Can you help me?",
    "She goes to school by bus every day.",
    "We should leave before it starts raining.",
)
PLOT_SENTENCE = "I don't like coffee, but I like tea."


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _history(run_dir: str) -> list:
    from rnn_apps.training import read_history

    return read_history(run_dir)


def _fmt(r: dict | None, key: str = "bleu") -> str:
    return f"{r[key]:.2f}" if r and r.get(key) is not None else "—"


def build_card(run_dir: str, model_dir: str, bleu: dict, none_run_dir: str | None = None, bench: dict | None = None,
               plot_name: str = "attention.png") -> str:
    import numpy as np

    from rnn_apps.apps.translate.plot import plot_attention
    from rnn_apps.apps.translate.translate import Translator
    from rnn_apps.export import resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    app_dir = os.path.dirname(model_dir.rstrip("/"))
    version = os.path.basename(model_dir.rstrip("/"))
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        run = json.load(f)
    cfg, stats = run["settings"], run["stats"]
    history = _history(run_dir)
    none_history = _history(none_run_dir) if none_run_dir else []
    tr = Translator(model_dir)
    n_params = int(sum(np.prod(v.shape) for v in tr._model.model_weights))
    beam = max((bleu.get("attention", {}).get("beam") or {}).get("beam", 4), 2)
    greedy_out = tr.translate(list(SAMPLES), beam=1)
    beam_out = tr.translate(list(SAMPLES), beam=beam)
    alignment = tr.attention(PLOT_SENTENCE, beam=1)
    plot_attention(alignment, os.path.join(app_dir, plot_name))
    size = _dir_size(model_dir)
    best = min(history, key=lambda r: r.get("val_loss", float("inf"))) if history else None
    train_secs = history[-1]["seconds"] if history else None
    none_secs = none_history[-1]["seconds"] if none_history else None
    a, n = bleu.get("attention", {}), bleu.get("none", {})
    lines = [
        "# Translation model (English → Chinese, sequence to sequence with attention)",
        "",
        f"Version {version} in `models/translate/{version}/`, a TensorFlow SavedModel (TF Serving layout) that tokenizes, "
        "encodes, decodes (greedy or beam search, in a `tf.while_loop`) and detokenizes in its graph. Written by "
        "`python -m rnn_apps.apps.translate.card`.",
        "",
        "```sh",
        'rnn-apps translate "I love you."',
        'rnn-apps translate "Where is the station?" --beam 4 --plot-attention attention.png',
        "```",
        "",
        "Signatures: `serving_default` `{\"text\": string[B]}` → `{\"translation\": string[B]}` (decoded with beam "
        f"{tr.default_beam}); `translate` (`text`, `beam_size`, `max_length`); `attention` (`text`, `beam_size`) → "
        "translation, source and target tokens and the alignment weights; `tokenize` (tokens and unknown tokens).",
        "",
        "## Data",
        "",
        f"* Corpus: `cmn-eng.tsv`, {stats['pairs']:,} English–Chinese sentence pairs of the Tatoeba Project "
        "(CC-BY 2.0 FR) in the manythings.org form. The project owners hold back 2,000 further pairs as a test set; "
        "none of them was seen here. The Chinese side mixes simplified and traditional script and is converted to "
        "simplified (OpenCC) before training.",
        f"* Split: a seeded permutation (seed {cfg['seed']}) of the distinct English sentences holds out "
        f"{cfg['val_fraction']:.0%} of them for validation, with all their translations: {stats['train_pairs']:,} "
        f"training pairs and {stats['val_pairs']:,} validation pairs (no English sentence on both sides).",
        f"* Tokens: English words (lowercased; punctuation and clitics such as n't 's split off), kept when seen at least "
        f"{cfg['source_min_count']} times in training: {stats['source_vocab_size']:,} entries with `<pad> <unk> <bos> <eos>` "
        f"({100 * stats['val_source_unknown_rate']:.1f} % of validation source tokens are unknown). Chinese characters "
        f"seen at least {cfg['target_min_count']} times: {stats['target_vocab_size']:,} entries "
        f"({100 * stats['val_target_unknown_rate']:.1f} % of validation target characters unknown).",
        "",
        "## Model and training",
        "",
        f"* Embeddings {cfg['embedding_dim']} → {cfg['encoder_layers']} bidirectional `rnn_apps.cells` "
        f"{cfg['cell'].upper() if cfg['cell'] == 'lstm' else cfg['cell']} layer(s) of {cfg['encoder_units']} units a "
        f"direction (`rnn_apps.layers.DeepBidirectionalRNN`) → decoder {cfg['cell'].upper() if cfg['cell'] == 'lstm' else cfg['cell']} "
        f"of {cfg['decoder_units']} units started from the encoder's final states (tanh bridges) → "
        f"{'Luong (general) attention' if cfg['attention'] == 'luong' else cfg['attention'] + ' attention'} over the "
        f"encoder states (`rnn_apps.layers.GlobalAttention`) → attentional vector tanh(W[c; s]) → dropout → softmax "
        f"over {stats['target_vocab_size']:,} characters. {n_params:,} parameters, float32.",
        f"* Teacher forcing, cross-entropy per target token, Adam at {cfg['learning_rate']} with cosine decay, gradient "
        f"clipping at norm {cfg['clipnorm']}, dropout {cfg['dropout']}, batches of {cfg['batch_size']} pairs of similar "
        f"length; early stopping on the validation loss (patience {cfg['patience']}), the best epoch's weights kept.",
    ]
    if history:
        lines.append(
            f"* Trained {len(history)} epochs ({history[-1]['step']:,} steps); best validation loss "
            f"{best['val_loss']:.3f} (perplexity {np.exp(best['val_loss']):.2f}) at epoch {best['epoch']}. "
            f"{train_secs / 60:.0f} min of wall time on the project's 2-core CPU machine, shared with other training "
            "runs throughout (so slower than the machine alone).")
    lines += ["", "| epoch | train loss | val loss | val token accuracy | minutes |", "| --- | --- | --- | --- | --- |"]
    for h in history:
        lines.append(f"| {h['epoch']} | {h.get('loss', float('nan')):.3f} | {h.get('val_loss', float('nan')):.3f} | "
                     f"{h.get('val_accuracy', float('nan')):.3f} | {h['seconds'] / 60:.1f} |")
    lines += [
        "",
        "## Results",
        "",
        f"Corpus BLEU on the {a.get('greedy', {}).get('pairs', stats['val_pairs']):,} validation pairs (sacrebleu, `zh` "
        "tokenization, i.e. by character; references in simplified script; signature "
        f"`{(a.get('greedy') or {}).get('signature', '')}`), measured on exported models with "
        "`rnn-apps evaluate translate --data ../shared/data/cmn-eng.tsv --split val [--beam N] --json`:",
        "",
        f"| model | greedy | beam {beam} |",
        "| --- | --- | --- |",
        f"| with attention (this model) | {_fmt(a.get('greedy'))} | {_fmt(a.get('beam'))} |",
        f"| without attention (context vector c only; not shipped) | {_fmt(n.get('greedy'))} | {_fmt(n.get('beam'))} |",
        "",
        "Against the references as written (mixed simplified and traditional script): "
        f"{_fmt(a.get('greedy'), 'bleu_references_as_written')} greedy, {_fmt(a.get('beam'), 'bleu_references_as_written')} "
        f"beam {beam} with attention; {_fmt(n.get('greedy'), 'bleu_references_as_written')} and "
        f"{_fmt(n.get('beam'), 'bleu_references_as_written')} without.",
        "",
    ]
    if none_history:
        nb = min(none_history, key=lambda r: r.get("val_loss", float("inf")))
        lines += [
            f"The variant without attention has the same settings (`--attention none`): every decoder step sees the "
            f"encoder's final states c = [→h_S; ←h_1] instead of c_t. It trained {len(none_history)} epochs "
            f"({none_secs / 60:.0f} min); best validation loss {nb['val_loss']:.3f} (perplexity "
            f"{np.exp(nb['val_loss']):.2f}) at epoch {nb['epoch']}, against {best['val_loss']:.3f} with attention.",
            "",
        ]
    lines.append(f"* Size on disk: {size / 1e6:.1f} MB (SavedModel with both vocabularies).")
    if bench:
        rows = {(r["batch"], r["beam"]): r for r in bench["rows"]}
        b = max(r["beam"] for r in bench["rows"])
        g1, g64, b1, b64 = rows.get((1, 1)), rows.get((64, 1)), rows.get((1, b)), rows.get((64, b))
        lines.append(
            f"* Decoding speed (`python benchmarks/translate.py`, validation sentences, whole graph call, "
            f"{bench.get('cpu_count')} CPU cores shared with other work): greedy {g1['sentences_per_s']:.1f} sentences/s at "
            f"batch 1 and {g64['sentences_per_s']:.0f} at batch 64; beam {b} {b1['sentences_per_s']:.1f} at batch 1 and "
            f"{b64['sentences_per_s']:.0f} at batch 64.")
    lines += ["", "## Samples", "", f"| English | greedy | beam {beam} |", "| --- | --- | --- |"]
    for s, g, bm in zip(SAMPLES, greedy_out, beam_out):
        lines.append(f"| {s} | {g.translation} | {bm.translation} |")
    ex = (a.get("greedy") or {}).get("examples") or []
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
        f"The alignment of \"{PLOT_SENTENCE}\" → \"{alignment.translation}\" (greedy): each row is a written character "
        "(the end token last), each column a source token; `rnn-apps translate \"...\" --plot-attention out.png` draws "
        "it for any sentence.",
        "",
        "## Reproduce",
        "",
        "```sh",
        f"rnn-apps train translate --data ../shared/data/cmn-eng.tsv --run-dir runs/translate --epochs 30 --seed {cfg['seed']}",
        f"rnn-apps train translate --data ../shared/data/cmn-eng.tsv --run-dir runs/translate-none --attention none "
        f"--epochs 30 --seed {cfg['seed']}",
        f"rnn-apps export translate --run-dir runs/translate --models models --version {version}",
        "rnn-apps export translate --run-dir runs/translate-none --models runs/translate-none/models --default-beam 1",
        "rnn-apps evaluate translate --data ../shared/data/cmn-eng.tsv --model models/translate --split val --beam 1 --json",
        f"rnn-apps evaluate translate --data ../shared/data/cmn-eng.tsv --model models/translate --split val --beam {beam} --json",
        "python benchmarks/translate.py --model models/translate --json",
        "python -m rnn_apps.apps.translate.card --run-dir runs/translate --model models/translate \\",
        "    --bleu-json runs/translate-bleu.json --none-run-dir runs/translate-none --bench-json runs/translate-bench.json",
        "```",
        "",
        "## Limits",
        "",
        "Trained on 17 thousand short, everyday Tatoeba sentences: longer or technical sentences, names and rare words "
        "are often mistranslated, and English words outside the vocabulary are read as one unknown token (the CLI names "
        "them). Paragraphs are translated sentence by sentence. The output is simplified Chinese.",
        "",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--model", default="models/translate")
    ap.add_argument("--bleu-json", required=True)
    ap.add_argument("--none-run-dir")
    ap.add_argument("--bench-json")
    ap.add_argument("--out", default=None, help="Default: README.md in the model's app directory.")
    args = ap.parse_args()
    with open(args.bleu_json, encoding="utf-8") as f:
        bleu = json.load(f)
    bench = None
    if args.bench_json:
        with open(args.bench_json, encoding="utf-8") as f:
            bench = json.load(f)
    text = build_card(args.run_dir, args.model, bleu, args.none_run_dir, bench)
    from rnn_apps.export import resolve_model_dir

    out = args.out or os.path.join(os.path.dirname(resolve_model_dir(args.model).rstrip("/")), "README.md")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
