"""The caption models' cards (``rnn-apps card caption`` and ``rnn-apps card caption-shapes``): hub metadata,
figures and measured sections, written by :func:`rnn_apps.cards.write_card`.

Measured anew, the synthetic-scene model from its run, the JSON of ``rnn-apps evaluate caption --synthetic
... --json`` (and of an inject run to compare) and of ``python benchmarks/caption.py --json FILE``; example
scenes (seed ``example_seed``) are written to ``<app dir>/examples/`` with an attention grid for the first::

    rnn-apps card caption-shapes -i run_dir=runs/caption-attention -i eval=eval-attention.json \
        -i compare_run_dir=runs/caption-inject -i compare_eval=eval-inject.json -i bench=bench.json

and the photo model (:mod:`rnn_apps.apps.caption.photo_card`) from its run, its evaluations on the dev photos
(comma-separated JSON files of ``rnn-apps evaluate caption --data DIR --split val --json``, one per decoding)
and named example photos of the caption set (their captions are quoted, the photos are not copied)::

    rnn-apps card caption -i run_dir=runs/caption-flickr -i data=../shared/data/flickr8k \
        -i evals=dev-greedy.json,dev-beam3.json -i bench=bench.json -i examples=1000268201_693b08cb0e.jpg
"""

from __future__ import annotations

import json
import os
from typing import Optional

from rnn_apps import cards

INPUTS = {
    "run_dir": "the training run",
    "eval": "caption-shapes: JSON of rnn-apps evaluate caption --synthetic --json",
    "compare_run_dir": "caption-shapes: the run of the variant to compare (inject)",
    "compare_eval": "caption-shapes: its evaluation's JSON",
    "beam_eval": "caption-shapes: the evaluation of the model with --beam N",
    "example_seed": "caption-shapes: seed of the example scenes (default 31)",
    "compare_training_time": "caption-shapes: the compared run's training time, e.g. '30 min'",
    "data": "caption: the caption set the example photos come from",
    "evals": "caption: comma-separated JSON files of rnn-apps evaluate caption --data DIR --json, one per decoding",
    "examples": "caption: comma-separated file names of photos of data to caption in the card",
    "feature_seconds": "caption: seconds the backbone's features of the training photos took",
    "bench": "JSON of benchmarks/caption.py --json FILE",
    "training_time": "the training time, e.g. '58 min of wall time' (a resumed run keeps no single clock)",
    "commands": "a text file of the commands that made the figures",
    "novelty": "caption: JSON of benchmarks/caption_novelty.py --json FILE (the section on unfamiliar images)",
    "from_card": "caption: the card of the export this version was exported again from, with the same weights "
                 "(rnn-apps export caption --from-model): its body and figures are kept",
}

SHIPPED_FIGURES = {  # (type, name, value) measured on the shipped versions (by SavedModel fingerprint); see their cards
    10853925235603504022: [  # caption-shapes 2 (version 1's weights; measured on version 1)
        ("exact_match", "Exact match, greedy (1,000 fresh scenes)", 0.971),
        ("bleu", "BLEU-4, greedy", 0.9935),
    ],
    17385651608240775601: [  # caption 3 (version 2's weights; measured on version 2)
        ("bleu", "BLEU-4 ×100, beam 5 (1,000 Flickr8k dev photos)", 20.2),
        ("cider", "CIDEr-D ×100, beam 5", 47.0),
        ("bleu", "BLEU-4 ×100, greedy", 17.1),
    ],
}


def HUB(app: str, meta: dict) -> dict:
    """The card's front matter (model hubs read it): a photo model or a synthetic-scene model."""
    tags = ["rnn", "lstm", "image-captioning", "visual-attention", "tensorflow"]
    if meta.get("synthetic"):
        return {"language": ["en"], "license": "mit", "pipeline_tag": "image-to-text", "tags": tags,
                "task": {"type": "image-to-text", "name": "Captions of synthetic scenes"},
                "dataset": {"type": "rnn-apps/synthetic-scenes", "name": "Fresh synthetic scenes (seed 2026)",
                            "split": "test"}}
    return {"language": ["en"], "license": "other", "pipeline_tag": "image-to-text", "tags": tags + ["mobilenet_v2"],
            "datasets": ["flickr8k"], "task": {"type": "image-to-text", "name": "Photo captions"},
            "dataset": {"type": "flickr8k", "name": "Flickr8k, the 1,000 dev photos", "split": "validation"},
            "own_data": {"license": None}}  # Flickr8k's terms are not those of a model of the user's own photos


def sections(version_dir: str, meta: dict, facts: dict, previous: str = "", run_dir=None, **inputs):
    """The card's body, measured from ``run_dir`` and the evaluations (see the module's docstring); with
    ``from_card`` (a photo model exported again), ``(that card's body, its stated figures)`` with the
    section on unfamiliar images and the versions written anew."""
    given = {k: v for k, v in inputs.items() if v is not None}
    if "from_card" in given and not meta.get("synthetic"):
        from rnn_apps.apps.caption.photo_card import again_body

        front, body = cards.card_exported_from(given["from_card"], run_dir, "photo")
        return again_body(version_dir, meta, front, body, given["from_card"], cards.read_json(given.get("novelty")))
    if run_dir is None:
        raise cards.CardError("The caption cards are measured from a training run: give run_dir.")
    app_dir = os.path.dirname(os.path.normpath(version_dir))
    photo_only, shapes_only = {"data", "evals", "examples", "feature_seconds", "novelty", "from_card"}, {
        "eval", "compare_run_dir", "compare_eval", "beam_eval", "example_seed", "compare_training_time"}
    wrong = sorted(set(given) & (photo_only if meta.get("synthetic") else shapes_only))
    if wrong:
        raise cards.CardError(f"{', '.join(wrong)}: not an input of this caption model's card.")
    commands = read_lines(given.get("commands"))
    if not meta.get("synthetic"):
        from rnn_apps.apps.caption.photo_card import build_photo_card, caption_examples

        names = [n for n in given.get("examples", "").split(",") if n]
        examples = caption_examples(version_dir, given["data"], names) if names else []
        evaluations = [cards.read_json(p) for p in given.get("evals", "").split(",") if p]
        if not evaluations:
            raise cards.CardError("The photo card needs evals (its evaluations' JSON files).")
        seconds = float(given["feature_seconds"]) if "feature_seconds" in given else None
        return build_photo_card(version_dir, run_dir, evaluations, cards.read_json(given.get("bench")), examples, facts,
                                given.get("training_time"), commands, seconds, cards.read_json(given.get("novelty")))
    if "eval" not in given:
        raise cards.CardError("The synthetic-scene card needs eval (its evaluation's JSON).")
    seed = int(given.get("example_seed", 31))
    examples = write_examples(version_dir, app_dir, seed)
    return build_card(version_dir, run_dir, cards.read_json(given["eval"]), given.get("compare_run_dir"),
                      cards.read_json(given.get("compare_eval")), cards.read_json(given.get("bench")), examples, seed,
                      facts, given.get("training_time"), given.get("compare_training_time"),
                      cards.read_json(given.get("beam_eval")), commands)


def run_history(run_dir: str) -> list:
    from rnn_apps.training import read_history

    return read_history(run_dir)


def read_lines(path: Optional[str]) -> Optional[list]:
    """The lines of a text file (e.g. the commands that made a card's figures), or None without a path."""
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def _run_config(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def _run_cfg(run_dir: str) -> dict:
    return _run_config(run_dir)["settings"]


def write_examples(model_dir: str, app_dir: str, seed: int, count: int = 4, attention: int = 2) -> list:
    """Save ``count`` scenes as PNGs under ``app_dir/examples`` with their captions and attention grids."""
    from rnn_apps.apps.caption.captioner import ImageCaptioner, plot_attention
    from rnn_apps.apps.caption.evaluate import png_bytes
    from rnn_apps.apps.caption.scenes import caption_matches, generate_scenes

    cap = ImageCaptioner(model_dir)
    out_dir = os.path.join(app_dir, "examples")
    os.makedirs(out_dir, exist_ok=True)
    scenes = generate_scenes(count, seed, cap.meta["scene_settings"])
    rows = []
    for i, s in enumerate(scenes, 1):
        data = png_bytes(s.image)
        name = f"scene-{i}.png"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        greedy = cap.caption_bytes([data], attention=i <= attention)[0]
        beam = cap.caption_bytes([data], beam=3)[0]
        plot = None
        if i <= attention:
            plot = f"attention-{i}.png"
            plot_attention(data, greedy, os.path.join(out_dir, plot))
        rows.append({"image": f"examples/{name}", "caption": greedy.caption, "beam3": beam.caption,
                     "truth": s.captions()[0], "right": caption_matches(greedy.caption, s), "attention": plot})
    return rows


def build_card(model_dir: str, run_dir: str, evaluation: dict, compare_run: Optional[str], compare_eval: Optional[dict],
               bench: Optional[dict], examples: list, example_seed: int, facts: dict,
               training_time: Optional[str] = None, compare_training_time: Optional[str] = None,
               beam_eval: Optional[dict] = None, commands: Optional[list] = None) -> str:
    """The synthetic-scene card's body: data, model and training, figures, examples."""
    from rnn_apps.apps.caption.export import load_config
    from rnn_apps.apps.caption.scenes import COLOURS, SHAPES, SIZES

    meta = load_config(model_dir)
    cfg = meta["config"]
    run = _run_config(run_dir)
    hist = run_history(run_dir)
    ss = meta["scene_settings"]
    grid = meta["grid"]
    lines = [
        "# Caption model for synthetic scenes (CNN encoder + LSTM decoder with visual attention)",
        "",
        "A SavedModel that decodes PNG/JPEG bytes, runs the CNN and the whole greedy or beam search in its graph. "
        "Signatures: `serving_default` (`{\"image\": string[B]}` → `{\"caption\": string[B]}`), `caption` (with "
        "`beam_size`), `attention` (words and their attention over the feature grid), `caption_pixels` (decoded "
        "images).",
        "",
        "```sh",
        "rnn-apps caption models/caption-shapes/examples/scene-1.png --model models/caption-shapes",
        "rnn-apps caption models/caption-shapes/examples/scene-1.png --model models/caption-shapes --beam 3 "
        "--plot-attention attention.png",
        "```",
        "",
        "**What it knows**: only the synthetic scenes below — coloured shapes on a light background. For photos "
        "use the default photo model in `models/caption/` (Flickr8k); `rnn-apps caption --model "
        "models/caption-shapes scene.png` picks this one.",
        "",
        "## Data: synthetic scenes (no download)",
        "",
        f"* `rnn_apps.apps.caption.scenes`: {ss['image_size']}×{ss['image_size']} px images with {ss['min_shapes']} to "
        f"{ss['max_shapes']} shapes — {', '.join(SHAPES)} × {', '.join(COLOURS)} × {', '.join(SIZES)} "
        f"({len(SHAPES) * len(COLOURS) * len(SIZES)} kinds) — at random non-overlapping places, light random "
        "background, slight colour jitter.",
        "* Captions name every shape left to right and the relation of each to the next (\"to the left of\", "
        "\"above\", \"below\"; the relation is the axis of the larger centre distance, with a margin of 6 px so it is "
        "never ambiguous; centres are at least 5 px apart horizontally so the order can be seen). Six phrasings per "
        "scene: bare, after \"there is\" or \"a picture of\", left to right or right to left (\"to the right of\"). "
        f"Training drew a random prefix and read the chain right to left with probability {cfg['reverse_prob']}.",
        f"* Training scenes are generated on the fly: the batch of step s comes from the seed ({cfg['seed']}, 1, s), "
        f"so no scene repeats and a resumed run sees the same data; validation: {cfg['val_count']} scenes from "
        f"({cfg['seed']}, 2). Evaluation uses plain integer seeds, which training never uses.",
        "",
        "## Model and training",
        "",
        f"* Encoder: a small CNN trained from scratch — coordinate channels (CoordConv), "
        f"{len(cfg['filters'])} blocks of 3×3 convolution + batch norm + ReLU ({', '.join(map(str, cfg['filters']))} "
        f"filters) with 2×2 max-pooling between them, coordinate channels again and a 1×1 projection to "
        f"{cfg['feature_dim']}: an {grid[0]}×{grid[1]} grid of annotation vectors." if grid[0] == 8 else
        f"{cfg['feature_dim']}: a {grid[0]}×{grid[1]} grid of annotation vectors.",
        f"* Decoder ({cfg['variant']}): `rnn_apps.cells.{cards.cell_class(cfg['cell'])}` "
        f"with {cfg['units']} units, word embedding {cfg['embedding_dim']}, soft attention (Show, Attend and Tell; "
        f"additive scores with {cfg['attention_units']} hidden units{', gated' if cfg.get('gate') else ''}) over the "
        "grid at every step; initial state from the mean annotation; output from [h_t; z_t]. Teacher forcing, "
        f"dropout {cfg['dropout']}.",
        f"* {facts['parameters']:,} parameters; {facts['size_mb']} MB on disk.",
        f"* Adam, peak learning rate {cfg['learning_rate']} (warm-up, cosine decay), gradient clipping at norm "
        f"{cfg['clipnorm']}, batches of {cfg['batch_size']} scenes, "
        f"{hist[-1]['step'] if hist else '?'} steps ({hist[-1]['step'] * cfg['batch_size'] if hist else '?':,} scenes)"
        + (f", {training_time}" if training_time else "")
        + cards.where_trained(run, "the project's 2-core CPU machine") + ".",
        "",
    ]
    if hist:
        lines += ["| epoch | step | loss | token accuracy | validation loss | validation token accuracy |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for h in hist:
            lines.append(f"| {h['epoch']} | {h['step']} | {h.get('loss', float('nan')):.4f} | "
                         f"{h.get('token_accuracy', float('nan')):.4f} | {h.get('val_loss', float('nan')):.4f} | "
                         f"{h.get('val_token_accuracy', float('nan')):.4f} |")
        lines += ["", "(Token accuracy is against one phrasing; the first words are a free choice of phrasing, so it "
                  "cannot reach 1.)", ""]
    lines += ["## Figures", ""]
    variants = [(cfg["variant"], evaluation, run_dir)]
    if compare_eval:
        ccfg = _run_cfg(compare_run) if compare_run else {}
        variants.append((ccfg.get("variant", "other"), compare_eval, compare_run))
    lines += [
        f"Measured with `rnn-apps evaluate caption --synthetic --seed {evaluation['seed']} --count "
        f"{evaluation['scenes']} --json` on the exported models (PNG bytes in, greedy decoding): BLEU against all six "
        "phrasings of each scene; **exact match** reads each caption back into shapes, colours, sizes and relations "
        "and requires all of them right (any phrasing).",
        "",
        "| variant | steps | training time | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | exact match | by number of shapes | unparsed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, ev, rd in variants:
        h = run_history(rd) if rd else []
        by = ", ".join(f"{k}: {v:.3f}" for k, v in ev["exact_match_by_shapes"].items())
        lines.append(f"| {name}{' (shipped)' if rd == run_dir else ''} | {h[-1]['step'] if h else '?'} | "
                     f"{(training_time if rd == run_dir else compare_training_time) or '?'} | "
                     f"{ev['bleu1']:.4f} | {ev['bleu2']:.4f} | {ev['bleu3']:.4f} | {ev['bleu4']:.4f} | "
                     f"**{ev['exact_match']:.3f}** | {by} | {ev['unparsed']:.3f} |")
    if beam_eval:
        by = ", ".join(f"{k}: {v:.3f}" for k, v in beam_eval["exact_match_by_shapes"].items())
        lines.append(f"| {cfg['variant']}, beam {beam_eval['beam']} | | | {beam_eval['bleu1']:.4f} | "
                     f"{beam_eval['bleu2']:.4f} | {beam_eval['bleu3']:.4f} | {beam_eval['bleu4']:.4f} | "
                     f"**{beam_eval['exact_match']:.3f}** | {by} | {beam_eval['unparsed']:.3f} |")
    lines += ["", "*attention*: the decoder looks at the grid at every word; *inject*: the flattened grid is "
              "projected (and batch-normalised) and fed to the same LSTM as its first input only (the notes' 1-to-N "
              "RNN, Show and Tell). Same encoder, cell, sizes, optimizer and data stream.", ""]
    if compare_run:
        ch = {h["step"]: h for h in run_history(compare_run)}
        rows = [h for h in hist if h["step"] in ch]
        if rows:
            lines += ["Validation token accuracy at equal steps (same 512 validation scenes):", "",
                      "| step | attention | inject |", "| --- | --- | --- |"]
            for h in rows:
                lines.append(f"| {h['step']} | {h.get('val_token_accuracy', float('nan')):.4f} | "
                             f"{ch[h['step']].get('val_token_accuracy', float('nan')):.4f} |")
            lines.append("")
    if bench:
        lines += ["Speed (`python benchmarks/caption.py`, PNG bytes in"
                  + (", on the 2-core CPU machine under load from other processes, so these are lower bounds"
                     if cards.project_run(run) else "") + "):", "",
                  "| batch | beam | ms a call | captions/s |", "| --- | --- | --- | --- |"]
        for r in bench["results"]:
            lines.append(f"| {r['batch']} | {r['beam']} | {r['ms_per_call']:.1f} | "
                         f"{r.get('images_per_s', r.get('captions_per_s')):.1f} |")
        lines.append("")
    if commands:
        lines += ["Commands that made these figures:", "", "```sh", *commands, "```", ""]
    lines += ["## Examples", "",
              f"Fresh scenes (seed {example_seed}), the captions the shipped model writes (greedy, and beam 3):", ""]
    for ex in examples:
        lines.append(f"<img src=\"{ex['image']}\" width=\"128\" alt=\"scene\"> — **{ex['caption']}**"
                     f"{'' if ex['right'] else ' (wrong; truth: ' + ex['truth'] + ')'}; beam 3: *{ex['beam3']}*")
        lines.append("")
    for ex in examples:
        if ex["attention"]:
            lines += [f"Attention for {ex['image']} (`rnn-apps caption {os.path.join('models/caption-shapes', ex['image'])} "
                      f"--model models/caption-shapes --plot-attention {ex['attention']}`): where the decoder looked "
                      "for each word.", "",
                      f"![attention](examples/{ex['attention']})", ""]
    return "\n".join(lines) + "\n"

