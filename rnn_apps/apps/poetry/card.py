"""Write the model card ``models/poetry/README.md`` from a training run and its exported model.

    python -m rnn_apps.apps.poetry.card --run-dir runs/poetry --model models/poetry \
        --data ../shared/data/tang-poems.jsonl.gz [--forms-json forms.json] [--bench-json gen.json]
"""

from __future__ import annotations

import argparse
import json
import os

from rnn_apps.training import read_history


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def build_card(run_dir: str, model_dir: str, data: str, forms: dict | None, bench: dict | None, seed: int = 2026) -> str:
    from rnn_apps.apps.poetry.evaluate import evaluate_corpus
    from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator
    from rnn_apps.export import resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        run = json.load(f)
    history = read_history(run_dir)
    cfg, stats = run["settings"], run["stats"]
    gen = PoemGenerator(model_dir)
    n_params = sum(int(__import__("numpy").prod(v.shape)) for v in gen._model.model_weights)
    val = evaluate_corpus(data, model_dir, "val")
    samples = []
    for title, kw in (
        ("Free form (the model picks)", {}),
        ("Continue 春眠", {"start": "春眠"}),
        ("五言绝句 wujue", {"form": "wujue"}),
        ("七言绝句 qijue", {"form": "qijue"}),
        ("五言律诗 wulv", {"form": "wulv"}),
        ("七言律诗 qilv", {"form": "qilv"}),
        ("Acrostic 春夏秋冬, 七言绝句", {"acrostic": "春夏秋冬", "form": "qijue"}),
        ("Acrostic 明月清风, 五言绝句", {"acrostic": "明月清风", "form": "wujue"}),
    ):
        try:
            poems = gen.generate(n=2, seed=seed, **kw)
        except PoemError:  # e.g. a small model without these characters
            continue
        samples.append((title, kw, poems))
    version = os.path.basename(model_dir.rstrip("/"))
    train_secs = history[-1]["seconds"] if history else None
    lines = [
        "# Poem model (Char-RNN on the Complete Tang Poems)",
        "",
        f"Version {version} in `models/poetry/{version}/`, a TensorFlow SavedModel (TF Serving layout) that writes "
        "poems in its graph; see the project README for its signatures.",
        "",
        "## Data",
        "",
        f"* Corpus: the Complete Tang Poems (全唐诗) of the chinese-poetry project, {stats['poems']:,} usable poems "
        "after cleaning (editorial notes removed, ？！→。 ；：、→，, poems with other symbols such as □ left out), "
        f"converted to **{cfg['script']}** script with OpenCC.",
        f"* Split: a seeded permutation (seed {cfg['seed']}) holds out {cfg['val_fraction']:.0%} of the poems for "
        f"validation: {stats['train_poems']:,} training poems ({stats['train_tokens']:,} tokens) and "
        f"{stats['val_poems']:,} validation poems ({stats['val_tokens']:,} tokens). The project's held-back test "
        "poems were never seen.",
        f"* Vocabulary: {stats['vocab_size']:,} tokens (characters seen at least {cfg['min_count']} times in training, "
        "，。 and `<pad> <unk> <bos> <eos>`), JSON in `assets.extra/poetry.json`.",
        "",
        "## Model and training",
        "",
        f"* Embedding {cfg['embedding_dim']} → {cfg['num_layers']} × `rnn_apps.cells.{cfg['cell'].upper() if cfg['cell']=='lstm' else cfg['cell']}` "
        f"({cfg['units']} units) → projection to {cfg['embedding_dim']} → logits tied to the embedding; "
        f"dropout {cfg['dropout']}. {n_params:,} parameters, float32.",
        f"* Adam, learning rate {cfg['learning_rate']} with cosine decay to 5 %, gradient clipping at norm "
        f"{cfg['clipnorm']}, batches of {cfg['tokens_per_batch']:,} tokens (poems of similar length; long poems cut "
        f"into pieces of {cfg['max_len']}), {len(history)} epochs, {history[-1]['step'] if history else '?'} steps.",
        f"* Trained on the project's CPU machine (2 cores) in {train_secs / 3600:.1f} h of wall time "
        "(the machine was shared with other work part of the time)." if train_secs else "",
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
        f"* **Validation bits per character: {val['bits_per_char']:.3f}** over {val['poems']:,} whole validation poems "
        f"({val['tokens']:,} predicted tokens, the end of each poem included, each poem read from its start; "
        f"{val['unknown_characters']:,} characters outside the vocabulary scored as `<unk>`), measured on the "
        "exported model with "
        "`rnn-apps evaluate poetry --data ../shared/data/tang-poems.jsonl.gz --split val`.",
        f"* Size on disk: {_dir_size(model_dir) / 2**20:.1f} MB.",
    ]
    if forms:
        lines.append(f"* Form compliance: **{forms['compliant']}/{forms['total']}** constrained generations "
                     "(the four forms, half of them acrostics) have exactly the requested shape "
                     "(`python benchmarks/poetry_forms.py`).")
    if bench:
        b1, b64 = bench.get("1", {}), bench.get("64", {})
        lines.append(
            f"* Generation speed (`python benchmarks/generate.py`): {b1['in-graph']['chars_per_s']:.0f} chars/s at "
            f"batch 1 ({b1['in-graph']['ms_per_step']:.2f} ms a step, {100 * b1['floor_over_in_graph']:.0f} % of the "
            f"matrix-product floor), {b64['in-graph']['chars_per_s']:.0f} chars/s at batch 64.")
    lines += ["", "## Samples", "", f"Temperature 0.8, top-p 0.9, seed {seed} (`rnn-apps generate-poem ... --seed {seed}`).", ""]
    for title, kw, poems in samples:
        lines.append(f"**{title}**" + (f" — `{' '.join(f'--{k} {v}' for k, v in kw.items())}`" if kw else ""))
        lines.append("")
        for p in poems:
            lines.append("> " + "<br>".join(p.lines or [p.text]))
            lines.append("")
    return "\n".join(x for x in lines if x is not None) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--model", default="models/poetry")
    ap.add_argument("--data", required=True)
    ap.add_argument("--forms-json")
    ap.add_argument("--bench-json")
    ap.add_argument("--out", default="models/poetry/README.md")
    args = ap.parse_args()
    forms = json.load(open(args.forms_json)) if args.forms_json else None
    bench = json.load(open(args.bench_json)) if args.bench_json else None
    text = build_card(args.run_dir, args.model, args.data, forms, bench)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
