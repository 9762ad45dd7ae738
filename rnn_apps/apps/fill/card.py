"""The fill-in-the-blank model's card (``rnn-apps card fill``): hub metadata, figures and measured sections.

Measured anew from the two training runs and their evaluations (the JSON of ``rnn-apps evaluate fill --json``):

    rnn-apps card fill -i run_dir=runs/fill-bidirectional -i forward_run_dir=runs/fill-forward \
        -i eval=runs/fill-eval-bi.json -i forward_eval=runs/fill-eval-fw.json

A model continued from a shipped one (``rnn-apps fine-tune fill`` on the same corpus) may come without a
forward-only baseline: ``-i run_dir=runs/fill-continue -i eval=...``; the card then says so. With one, the
baseline was continued the same way from its own previous stretch, and ``forward_run_dir`` is its last
stretch's run.
"""

from __future__ import annotations

import json
import os

from rnn_apps import cards
from rnn_apps.training import read_history

INPUTS = {
    "run_dir": "the bidirectional model's training run",
    "forward_run_dir": "the forward-only baseline's training run (optional for a continued model)",
    "eval": "JSON of rnn-apps evaluate fill --json for the model",
    "forward_eval": "the same for the forward-only baseline (with forward_run_dir)",
    "from_model": "the export whose weights this version exported again (rnn-apps export fill --from-model); "
                  "run_dir is then that export's training run",
}

SHIPPED_FIGURES = {  # (type, name, value) measured on the shipped versions (by SavedModel fingerprint); see their cards
    14333559038068605996: [  # version 10 (version 9's weights; a blank is a character)
        ("top1_accuracy", "Masked-character accuracy, top 1", 0.189),
        ("top5_accuracy", "Masked-character accuracy, top 5", 0.382),
    ],
    11233868212574836568: [  # version 9
        ("top1_accuracy", "Masked-character accuracy, top 1", 0.188),
        ("top5_accuracy", "Masked-character accuracy, top 5", 0.382),
    ],
    9755611292043642460: [  # version 8
        ("top1_accuracy", "Masked-character accuracy, top 1", 0.189),
        ("top5_accuracy", "Masked-character accuracy, top 5", 0.377),
    ],
    11761008035546871639: [  # version 7
        ("top1_accuracy", "Masked-character accuracy, top 1", 0.188),
        ("top5_accuracy", "Masked-character accuracy, top 5", 0.372),
    ],
    16574829516346570783: [  # version 6
        ("top1_accuracy", "Masked-character accuracy, top 1", 0.179),
        ("top5_accuracy", "Masked-character accuracy, top 5", 0.357),
    ],
    2379290439635952231: [  # version 5
        ("top1_accuracy", "Masked-character accuracy, top 1", 0.158),
        ("top5_accuracy", "Masked-character accuracy, top 5", 0.314),
    ],
    11110953891456668208: [  # version 4 (version 3's weights; measured on version 3)
        ("top1_accuracy", "Masked-character accuracy, top 1", 0.099),
        ("top5_accuracy", "Masked-character accuracy, top 5", 0.225),
    ],
}


HUB = {"language": ["zh"], "license": "mit", "pipeline_tag": "fill-mask",
       "tags": ["rnn", "lstm", "bidirectional", "poetry", "classical-chinese", "tensorflow"],
       "datasets": ["chinese-poetry/tang"], "task": {"type": "fill-mask", "name": "Tang poem fill-in-the-blank"},
       "dataset": {"type": "chinese-poetry/tang", "name": "Complete Tang Poems (全唐诗), the validation poems",
                   "split": "validation"},
       "own_data": {"task": {"type": "fill-mask", "name": "Poem fill-in-the-blank"}}}
"""The card's front matter (model hubs read it); ``own_data`` for a model trained on poems of its user's own."""


def sections(version_dir: str, meta: dict, facts: dict, previous: str = "", run_dir=None, forward_run_dir=None,
             eval=None, forward_eval=None, from_model=None) -> str:
    """The card's body, measured from the runs and their evaluations, and the model's measured metrics."""
    if None in (run_dir, eval) or (forward_run_dir is None) != (forward_eval is None):
        raise cards.CardError("The fill card needs run_dir and eval, and forward_run_dir with forward_eval "
                              "(both may be left out for a model continued from a shipped one).")
    if forward_run_dir is None and not _run(run_dir).get("init_from"):
        raise cards.CardError("A model trained from scratch needs its forward-only baseline: forward_run_dir and "
                              "forward_eval.")
    measured = cards.read_json(eval)
    body = build_card(run_dir, forward_run_dir, version_dir, measured,
                      cards.read_json(forward_eval) if forward_eval else None, facts, from_model=from_model)
    return body, [{"type": f"top{k}_accuracy", "name": f"Masked-character accuracy, top {k}",
                   "value": round(measured[f"top{k}_accuracy"], 3)} for k in (1, 5)]

EXAMPLES = [
    "床前明月□，疑是地上霜。",
    "春眠不觉□，处处闻啼鸟。",
    "白日依山尽，黄河入海□。",
    "举头望明月，低头思故□。",
    "□□明月光，疑是地上霜。",
    "红豆生南国，春来发几枝。愿君多采撷，此物最相□。",
    "牀前明月□，疑是地上霜。",
    "白日依山□",  # a line without its stop: read as a line's end, never filled with 。
]


def _run(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        run = json.load(f)
    return {"settings": run["settings"], "stats": run["stats"], "epochs": run.get("epochs"),
            "history": read_history(run_dir), "init_from": run.get("init_from"),
            **{k: run[k] for k in ("trained_on", "recipe", "clipping", "data", "machine") if run.get(k)}}


def build_card(run_dir, forward_run_dir, model_dir, eval_bi, eval_fw, facts: dict, timings=None,
               from_model=None) -> str:
    """The card's body: data, model and training of both runs, accuracy, limits, examples; with ``from_model``
    (the export whose weights this version exported again) the command that did so."""
    from rnn_apps.apps.fill.filler import Filler
    from rnn_apps.training import training_seconds

    bi = _run(run_dir)
    fw = _run(forward_run_dir) if forward_run_dir else None
    cfg, stats = bi["settings"], bi["stats"]
    steps = bi["history"][-1]["step"]
    epochs = bi["history"][-1]["epoch"]
    # A continued model (rnn-apps fine-tune fill on the corpus it was trained on) names its starting point.
    base = bi["init_from"]
    base_name = f"version {os.path.basename(base.rstrip('/'))}" if base else ""
    # a continued run's epochs are whole passes; a run from scratch was stopped and resumed every few steps
    span = (f"{epochs} epochs of the training poems" if base else
            f"about {steps * cfg['tokens_per_batch'] / stats['train_tokens']:.1f} epoch of the training poems")
    # A resumed stretch's seconds start again from zero: the steps where they drop are the stretches' ends.
    ends = [r["step"] for r, nxt in zip(bi["history"], bi["history"][1:]) if nxt["seconds"] < r["seconds"]]
    stretches = f" (stopping at {', '.join(str(e) for e in ends[1:])} steps on the way)" if ends[1:] else ""
    filler = Filler(model_dir)
    results = filler.fill(EXAMPLES, top_k=5)
    own = cards.own_data(bi.get("data"))  # the user's own poems: no word of the shipped corpus or machine
    corpus = own or "../shared/data/tang-poems.jsonl.gz"

    def hist_rows(h):
        return "\n".join(
            f"| {r['epoch']} | {r['step']} | {r['seconds']:.0f} | {r['loss']:.3f} | {r['accuracy']:.3f} | "
            f"{r.get('val_loss', float('nan')):.3f} | {r.get('val_accuracy', float('nan')):.3f} |" for r in h
        )

    lines = [
        f"# Fill-in-the-blank model (bidirectional LSTM on `{own}`)" if own else
        "# Fill-in-the-blank model (bidirectional LSTM on the Complete Tang Poems)",
        "",
        f"Version {os.path.basename(model_dir.rstrip('/'))} in {cards.version_path('fill', model_dir)}, a TensorFlow SavedModel (TF Serving layout) that fills the □ of a poem in its "
        "graph: `serving_default` takes `{\"text\": string[B]}` and returns the filled `text`, `candidates` "
        "(string[B, blanks, 5]), `probabilities` (float32[B, blanks, 5]), `blanks`, `unknown` and `converted`; "
        "`fill` takes a `top_k` too (how many candidates, 1 to 50: `rnn-apps fill-poem --candidates`). Used by "
        "`rnn-apps fill-poem`.",
        "",
        "## Data",
        "",
        (f"* Corpus: `{own}`" if own else
         "* Corpus: the Complete Tang Poems of the chinese-poetry project (`tang-poems.jsonl.gz`)")
        + f", read and cleaned by the poem app's loader: {stats['poems']:,} usable poems in **simplified** script "
        "(OpenCC).",
        f"* Split: the poem model's — a seeded permutation (seed {cfg['seed']}) holds out "
        f"{cfg['val_fraction']:.0%} for validation: {stats['train_poems']:,} training poems "
        f"({stats['train_tokens']:,} characters and ，。) and {stats['val_poems']:,} validation poems never trained on.",
        f"* Vocabulary: {stats['vocab_size']:,} tokens (characters seen at least {cfg['min_count']} times in training, "
        "，。, `<pad> <unk> <bos> <eos> <mask>`), JSON in `assets.extra/fill.json`.",
        "",
        "## Model and training",
        "",
        f"* Embedding {cfg['embedding_dim']} → one `rnn_apps.layers.DeepBidirectionalRNN` layer of `rnn_apps.cells` "
        f"LSTM ({cfg['units']} units each direction) → for position t the forward state at t−1 and the backward state "
        f"at t+1 (never x_t itself) → projection to {cfg['embedding_dim']} → logits tied to the embedding; dropout "
        f"{cfg['dropout']}. {facts['parameters']:,} parameters, float32. **Size on disk: {facts['size_mb']} MB.**",
        f"* Every position of a poem is predicted at once; {cfg['mask_rate']:.0%} of the input characters are replaced "
        "by `<mask>` so that other blanks in the context are handled.",
        f"* Adam, learning rate {cfg['learning_rate']} with cosine decay to 5 %, clipping at "
        f"{'a global ' if bi.get('clipping') == 'global' else ''}norm {cfg['clipnorm']}, "
        f"batches of about {cfg['tokens_per_batch']:,} tokens (poems of similar length; long poems cut into pieces of "
        f"{cfg['max_len']}), **{steps} steps** ({span}), seed {cfg['seed']}"
        + (f", starting from {base_name}'s weights (Adam anew; {base_name}'s own training is in *Versions* below)."
           if base else "."),
        *([
            "* Forward-only baseline (not shipped): the same embedding, the same forward LSTM and the same tied head "
            "without the backward direction (p(x_t | x_<t)), trained with the same data, masking, steps and seed.",
            (f"* Both trained on {bi['trained_on']} with `{bi.get('recipe')}`: bidirectional "
             f"{training_seconds(bi['history']) / 60:.0f} min, forward-only {training_seconds(fw['history']) / 60:.0f} "
             "min of logged wall time." if bi.get("trained_on") else
             f"* Both trained at the same time on the project's CPU machine (2 cores, shared with other work, no GPU): "
             f"bidirectional {training_seconds(bi['history']) / 60:.0f} min, forward-only "
             f"{training_seconds(fw['history']) / 60:.0f} "
             "min of wall time (fit time, corpus loading excluded; the machine was shared with other training runs)."
             if cards.project_run(bi) else
             f"* Trained{cards.where_trained(bi, '')}: bidirectional {training_seconds(bi['history']) / 60:.0f} min, "
             f"forward-only {training_seconds(fw['history']) / 60:.0f} min of wall time (fit time, corpus loading "
             "excluded)."),
        ] if fw and not base else [
            # A continued model's baseline is continued too: its own earlier stretches, each as long as the
            # shipped model's, so that both have seen the poems equally often (the stretches are in *Versions*).
            "* Forward-only baseline (not shipped): the same embedding, the same forward LSTM and the same tied head "
            "without the backward direction (p(x_t | x_<t)), trained as long as the shipped model in the same "
            f"stretches, with the same data, masking and seed; its last stretch, like this version's, {fw['epochs']} "
            f"epochs at learning rate {fw['settings']['learning_rate']} from its own previous stretch.",
            cards.trained_on_line(bi, training_seconds(bi["history"]), shared="",
                                  note="fit time, corpus loading excluded")
            + f" The baseline's stretch: {training_seconds(fw['history']) / 60:.0f} min.",
        ] if fw else [
            f"* Trained on the project's CPU machine (2 cores, shared with other work, no GPU): "
            f"{training_seconds(bi['history']) / 60:.0f} min of wall time (fit time, corpus loading excluded)."
            if cards.project_run(bi) else
            cards.trained_on_line(bi, training_seconds(bi["history"]), note="fit time, corpus loading excluded"),
        ]),
        "",
        (f"Commands: `python -m rnn_apps.apps.fill.train_jax prepare`, `train` and `export` (see its docstring), "
         f"from {base_name if base else 'scratch'}; {bi['epochs']} epochs at most, the best validation epoch kept."
         if bi.get("recipe") else
         f"Command: `rnn-apps fine-tune fill --data {corpus} --model {os.path.relpath(base)} "
         f"--run-dir {os.path.relpath(run_dir)} --epochs {bi['epochs']} --learning-rate {cfg['learning_rate']}` (the "
         "split, seed and vocabulary of the model it starts from)"
         + (f", stopped after step {', '.join(f'{e:,}' for e in ends)} and continued by the same command with "
            "`--resume` (the *seconds* column starts again there)" if ends else "")
         + f", then `rnn-apps export fill --run-dir {os.path.relpath(run_dir)}`"
         + ("; the baseline's stretch the same from its previous stretch's export." if fw else ".")
         if base else
         f"Commands: `rnn-apps train fill --data {corpus} --run-dir runs/fill-bidirectional "
         f"--epochs 2 --max-steps 360`, continued{stretches} to {steps} steps, the last stretch with `--resume --epochs "
         f"{epochs} --max-steps {steps}` (the cosine schedule follows the new "
         "total); the same with `--kind forward --run-dir runs/fill-forward`; then `rnn-apps export fill --run-dir "
         "runs/fill-bidirectional --models models`.")
        + (f" The same weights were exported again with this version's graph: `rnn-apps export fill --from-model "
           f"{os.path.relpath(from_model)}` (*Versions* below)." if from_model else ""),
        "",
        "In the tables, *accuracy* is the share of characters and ，。 predicted right (inputs with the same 12 % "
        "masking); *loss* is "
        + ("the mean cross-entropy of the predicted characters (nats; the training figures with dropout)."
           if bi.get("recipe") else
           "Keras's weighted cross-entropy divided by all positions of a batch, padding included, so "
           "it is lower than the cross-entropy per character and only comparable between runs of this model."),
        "",
        f"Bidirectional, from {base_name}:" if base else "Bidirectional:",
        "",
        "| epoch | step | seconds | train loss | train accuracy | val loss | val accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        hist_rows(bi["history"]),
        "",
        *([
            "Forward-only:" if not base else "Forward-only, from its previous stretch:",
            "",
            "| epoch | step | seconds | train loss | train accuracy | val loss | val accuracy |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            hist_rows(fw["history"]),
            "",
        ] if fw else []),
        "## Masked-character accuracy on the validation poems",
        "",
        f"One Han character of each validation poem is hidden (chosen uniformly at random among its Han characters, "
        f"never punctuation; seed {eval_bi.get('seed', 0)}; the same positions for every model) and the model "
        f"predicts it from the rest of the poem (`rnn-apps evaluate fill --data {corpus} "
        "--split val --poem-model none`" + (", and `--model` the forward-only export" if eval_fw else "") + "). A hidden "
        "character "
        f"outside the vocabulary counts as a miss ({eval_bi['hidden_out_of_vocabulary']} of {eval_bi['poems']:,}). "
        "These are the model's own figures (its SavedModel's answers); `rnn-apps fill-poem` also weighs the "
        "candidates by the shipped poem model by default (docs/fill.md).",
        "",
        "| model | poems | top-1 | top-5 |",
        "| --- | --- | --- | --- |",
        f"| bidirectional (shipped) | {eval_bi['poems']:,} | **{eval_bi['top1_accuracy']:.1%}** | "
        f"**{eval_bi['top5_accuracy']:.1%}** |",
        *([f"| forward-only | {eval_fw['poems']:,} | {eval_fw['top1_accuracy']:.1%} | "
           f"{eval_fw['top5_accuracy']:.1%} |"] if eval_fw else []),
        "",
        *([] if eval_fw else [
            f"The forward-only baseline was not trained again for this version; {base_name} and its baseline, "
            "measured the same way, are in *Versions* below.", ""]),
        "## Limitations",
        "",
        ("The training is short (2 CPU cores, no GPU) and the validation loss was still falling at its last epoch "
         "(see the table)" if not own and not bi.get("machine") else
         "Where the model was still improving at the end of its training (see the table)")
        + (": a longer run, e.g. `rnn-apps fine-tune fill` again from this version, should fill more "
           "blanks; compare with `rnn-apps evaluate fill`. Candidates with probabilities of a few per cent mean the "
           "model is guessing among common characters."),
        "",
        "## Examples",
        "",
        "`rnn-apps fill-poem TEXT --poem-model none` (the model alone; top 5 candidates of each blank; several blanks "
        "are filled the most confident first, "
        "the network re-run with each choice in place):",
        "",
    ]
    for r in results:
        lines.append(f"* `{r.input}` → **{r.text}**" + (" (converted from traditional)" if r.converted_to_simplified else ""))
        for j, cands in enumerate(r.blanks, 1):
            lines.append(f"  * □{j}: " + ", ".join(f"{c} {p:.1%}" for c, p in cands))
    if timings:
        lines += ["", "## Speed", "", timings]
    lines.append("")
    return "\n".join(lines)
