"""The photo captioner's card body (``rnn-apps card caption``, see :mod:`rnn_apps.apps.caption.card`): a frozen
backbone's captioner (e.g. Flickr8k) measured from its run, its evaluations, a benchmark and example photos,
whose captions are quoted (greedy, beam 3 and in Chinese) with their references; no photo is copied into the
card, since the photos belong to their authors."""

from __future__ import annotations

import os
from typing import Optional, Sequence

from rnn_apps import cards


# What each version of models/caption changed, for the card's "Versions" section.
CHANGELOG = {
    1: "the first photo model (Flickr8k, MobileNetV2 from TFLite). Earlier versions of `models/caption/` described "
       "synthetic scenes only; that model is now `models/caption-shapes`.",
    2: "the same training run, its weights averaged over its three epochs of least validation loss (5, 6 and 7) "
       "instead of epoch 5 alone: on the dev photos at beam 5, BLEU-4 19.8 → 20.2 and CIDEr-D 46.8 → 47.0; stored "
       "as float16 (15 MB instead of 28; the float32 export of the same weights scored 20.2 and 47.1).",
    3: "the same weights as version 2, with its input limits checked inside the graph, so TF Serving refuses what "
       "the command refuses (`rnn_apps/graph_limits.py`); its captions, log-probabilities and attention equal "
       "version 2's, to the bit, on 12 Flickr8k dev photos at beams 1, 3 and 5.",
    4: "the same weights as version 3; the graph also scores each image's novelty (how unlike the training photos "
       "it is) and `rnn-apps caption` notes a caption of an image unlike them (see *Unfamiliar images*); an empty "
       "batch of images is answered (version 3 failed on it). On the 1,000 dev photos at beam 5 its captions are "
       "version 3's and its log-probabilities within 1.1e-5 of them.",
    5: "the same weights and novelty prototypes as version 4; its graph also reads the size of a WebP image and of "
       "each GIF frame (and of all frames together) before decoding, so TF Serving refuses what the command refuses: "
       "a 10 KB WebP of 16,383×16,383 pixels and a GIF whose header says 1×1 around a frame of 8,000×8,000 were "
       "decoded and captioned by version 4. On 60 Flickr8k dev photos at beam 5 its captions, log-probabilities and "
       "novelty equal version 4's, to the bit.",
}

# Show, Attend and Tell (Xu et al., 2015), Table 1, Flickr8k test, VGG features: BLEU-1..4.
SAT_FLICKR8K = {"soft attention": (67.0, 44.8, 29.9, 19.5), "hard attention": (67.0, 45.7, 31.4, 21.3)}


def caption_examples(model_dir: str, data_dir: str, names: Sequence[str], translate_model: Optional[str] = None) -> list:
    """Captions of the named photos of a caption set (greedy, beam 3, Chinese) with their references."""
    from rnn_apps.apps.caption import data as cdata
    from rnn_apps.apps.caption.captioner import ImageCaptioner

    _, rows = cdata.load_caption_set(data_dir)
    by_name = {os.path.basename(r.path): r for r in rows}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"Not in {data_dir}: {', '.join(missing)}.")
    cap = ImageCaptioner(model_dir)
    paths = [by_name[n].path for n in names]
    greedy = cap.caption_files(paths, beam=1)  # the model's default may be a beam
    beam = cap.caption_files(paths, beam=3)
    chinese = [None] * len(names)
    try:
        from rnn_apps.predictors import load_predictor

        tr = load_predictor("translate", translate_model)
        chinese = [t.translation for t in tr.translate([c.caption[:1].upper() + c.caption[1:] + "." for c in beam],
                                                       beam=4)]
    except (FileNotFoundError, ValueError):  # no translation model: the card simply has no Chinese column
        pass
    return [{"image": n, "greedy": g.caption, "beam3": b.caption, "zh": z, "references": by_name[n].captions}
            for n, g, b, z in zip(names, greedy, beam, chinese)]


def build_photo_card(model_dir: str, run_dir: str, evaluations: Sequence[dict], bench: Optional[dict], examples: list,
                     facts: dict, training_time: Optional[str] = None, commands: Optional[list] = None,
                     feature_seconds: Optional[float] = None, novelty: Optional[dict] = None) -> str:
    """The photo card's body: data and its terms, model and training, figures, examples, versions.

    A model trained on a caption set of the user's own (:func:`rnn_apps.cards.own_data` of the run's data) is
    described as trained on that set: no word of Flickr8k's terms, splits, published scores or changelog."""
    from rnn_apps.apps.caption.export import load_config

    run = cards.read_json(os.path.join(run_dir, "config.json"))
    own = cards.own_data(run.get("data"))
    meta = load_config(model_dir)
    # the export's record of the training data, else the run's (an export by `rnn-apps train caption` has none)
    cfg, stats = meta["config"], (meta.get("training") or {}).get("stats") or run.get("stats") or {}
    n_params = facts["parameters"]
    version = os.path.basename(model_dir.rstrip("/"))
    vocab_size = len(meta["vocab"]["tokens"])
    from rnn_apps.training import read_history

    hist = read_history(run_dir)
    best = min(hist, key=lambda h: h.get("val_loss", float("inf"))) if hist else None
    grid = meta["grid"]
    averaged = (meta.get("training") or {}).get("averaged_epochs") or []
    if averaged:
        kept_text = (f"The shipped weights are the mean of those of the {len(averaged)} epochs with the lowest "
                     f"validation loss, epochs {', '.join(map(str, averaged))} (checkpoint averaging, "
                     f"`--average-best {len(averaged)}`).")
    else:
        kept_text = "The epoch with the lowest validation loss is kept" + (f": epoch {best['epoch']}." if best else ".")
    lines = [
        "# Caption model for photos (MobileNetV2 encoder + LSTM decoder with visual attention, "
        + (f"`{own}`)" if own else "Flickr8k)"),
        "",
        "A SavedModel that decodes JPEG/PNG bytes, runs the CNN and the whole greedy or beam search in its graph. Signatures: `serving_default` (`{\"image\": string[B]}` → "
        "`{\"caption\": string[B]}`), `caption` (with `beam_size`), `attention` (words and their attention over "
        "the feature grid), `caption_pixels` (decoded images). It loads with plain `tf.saved_model.load`, without "
        "rnn_apps, and reads nothing else at run time.",
        "",
        "```sh",
        "rnn-apps caption photo.jpg",
        "rnn-apps caption photo.jpg --beam 3 --lang zh        # also in Chinese, through models/translate",
        "rnn-apps caption photo.jpg --plot-attention attention.png",
        "rnn-apps fine-tune caption --data my_photos/         # your own captioned photos; new words are added",
        "```",
        "",
        (f"**What it knows**: photos like those of `{own}`" if own else
         "**What it knows**: everyday photos like Flickr8k's — people, children, dogs, sports, streets, beaches "
         "and snow —")
        + f" described in one English sentence of at most {cfg['max_len'] - 1} words from a vocabulary "
        f"of {vocab_size - 4:,} words (those used at least {cfg['min_count']} times in the training captions). "
        "It has not seen most of the world: anything far from those scenes gets a caption about the nearest thing "
        "it knows. For synthetic scenes of coloured shapes use `models/caption-shapes/`.",
        "",
        "## Data and its terms",
        "",
        *([f"* **`{own}`**: photos with their captions; the examples below name the photos rather than show them.",
           f"* Training: {stats.get('train_images', '?'):,} photos with {stats.get('train_pairs', '?'):,} captions; "
           f"validation: {stats.get('val_images', '?'):,} photos ({cfg['max_val_pairs']:,} of their captions for the "
           "validation loss, all for the scores). Captions are lower-cased and split into words (punctuation "
           f"dropped); a caption longer than {cfg['max_len'] - 1} words is cut."] if own else [
          "* **Flickr8k** (M. Hodosh, P. Young and J. Hockenmaier, 2013, \"Framing Image Description as a Ranking "
          "Task: Data, Models and Evaluation Metrics\", *Journal of Artificial Intelligence Research* 47): photos "
          "from Flickr with five English captions each, released by the University of Illinois for research use. "
          "The photos belong to their Flickr authors: none is in this project, and the examples below name the "
          "photos rather than show them. The model trained on them is shipped.",
          f"* Training: the official train list and the photos in no list, {stats.get('train_images', '?'):,} "
          f"photos with {stats.get('train_pairs', '?'):,} captions; validation: the official dev list, "
          f"{stats.get('val_images', '?'):,} photos ({cfg['max_val_pairs']:,} of their captions for the validation "
          "loss, all five for the scores). The official test photos are held back to measure the shipped model "
          "separately. Captions are lower-cased and split into words (punctuation dropped); a caption longer "
          f"than {cfg['max_len'] - 1} words is cut (about 1 % of them)."]),
        "* **Encoder weights**: MobileNetV2 (width 1.0, 224 px, Sandler et al. 2018) trained on ImageNet, from the "
        "uint8-quantised TFLite model `mobilenet_v2_1.0_224_quant.tflite` of google-coral/test_data (Apache-2.0). "
        "`rnn_apps.backbones.mobilenet_v2_from_tflite` dequantises it into `keras.applications.MobileNetV2` "
        "(each folded batch normalisation's bias back into a batch normalisation layer); on Flickr8k photos the "
        "converted model's ImageNet class agrees with `tf.lite.Interpreter`'s (tested). The converted weights are "
        "inside the SavedModel.",
        "",
        "## Model and training",
        "",
        f"* Encoder: the frozen MobileNetV2's last feature map ({grid[0]}×{grid[1]}×1280 at 224 px), coordinate "
        f"channels and a trained 1×1 projection to {cfg['feature_dim']}: {grid[0] * grid[1]} annotation vectors.",
        f"* Decoder: `rnn_apps.cells.{cards.cell_class(cfg.get('cell', 'lstm'))}` with {cfg['units']} units, word "
        f"embedding {cfg['embedding_dim']}, soft "
        f"attention (Show, Attend and Tell; additive scores with {cfg['attention_units']} hidden units"
        f"{', gated' if cfg.get('gate') else ''}) over the grid at every word, initial state from the mean "
        "annotation, and "
        + ("a deep output layer tied to the word embedding (softmax((W_p[h_t; z_t] + b_p) Eᵀ + b))"
           if cfg.get("output") == "tied" else "an output layer from [h_t; z_t]")
        + f"; dropout {cfg['dropout']} before it. Teacher forcing.",
        f"* {n_params:,} parameters ({n_params - 2_257_984:,} trained; MobileNetV2 has 2,257,984).",
        "* With the backbone frozen, each photo's feature grid was computed once and cached (float16) in the run "
        "directory" + (f" (about {feature_seconds:.0f} s for all {stats.get('train_images', 0) + stats.get('val_images', 0):,} "
                       "photos)" if feature_seconds else "")
        + ", so an epoch runs only the head and the decoder."
        + (f" Data augmentation: {100 * cfg['flip_prob']:.0f} % of the training photos are mirrored left-right "
           "(their features are cached too)." if cfg.get("flip_prob") else ""),
        f"* Adam, peak learning rate {cfg['learning_rate']} (warm-up, cosine decay), gradient clipping at norm "
        f"{cfg['clipnorm']}, batches of {cfg['batch_size']} captions, {hist[-1]['epoch'] if hist else '?'} epochs "
        f"({hist[-1]['step'] if hist else '?':,} steps)" + (f", {training_time}" if training_time else "")
        + cards.where_trained(run, "the project's 2-core CPU machine") + ". " + kept_text,
        "",
    ]
    if hist:
        lines += ["| epoch | loss | token accuracy | validation loss | validation token accuracy |",
                  "| --- | --- | --- | --- | --- |"]
        for h in hist:
            mark = (" (averaged)" if h["epoch"] in averaged else "") if averaged else (" (kept)" if h is best else "")
            lines.append(f"| {h['epoch']}{mark} | {h['loss']:.4f} | {h['token_accuracy']:.4f} "
                         f"| {h.get('val_loss', float('nan')):.4f} | {h.get('val_token_accuracy', float('nan')):.4f} |")
        lines.append("")
    beam = int(meta.get("decoding", {}).get("default_beam", 1))
    lines += [
        "Decoding by default (`serving_default`, and `rnn-apps caption` without `--beam`): "
        + ("greedy." if beam == 1 else f"beam search of width {beam}, the best of the widths measured below."),
        "",
        "## Figures",
        "",
        f"Measured on the {'validation' if own else '1,000 dev'} photos with `rnn-apps evaluate caption --data DIR "
        "--split val` (JPEG bytes in, "
        "the CNN in the graph): BLEU-1..4 and CIDEr-D against the five reference captions of each photo, by the "
        "COCO caption evaluation code (`pycocoevalcap`); *own caption*: the share of photos whose caption no "
        f"other {'validation' if own else 'dev'} photo gets.",
        "",
        "| decoding | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | CIDEr-D | own caption | distinct captions |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ev in evaluations:
        name = "greedy" if ev["beam"] == 1 else f"beam {ev['beam']}"
        lines.append(f"| {name} | {100 * ev['bleu1']:.1f} | {100 * ev['bleu2']:.1f} | {100 * ev['bleu3']:.1f} | "
                     f"**{100 * ev['bleu4']:.1f}** | {100 * ev['cider_d']:.1f} | {100 * ev['distinct_share']:.1f} % | "
                     f"{ev['distinct_captions']:,} of {ev['images']:,} |")
    if own:  # published Flickr8k scores say nothing of another caption set
        lines += ["", "(Scores ×100, as papers print them.)", ""]
    else:
        for name, b in SAT_FLICKR8K.items():
            lines.append(f"| Show, Attend and Tell, {name} (VGG, Flickr8k test) | {b[0]} | {b[1]} | {b[2]} | {b[3]} "
                         "| | | |")
        lines += ["", "(Scores ×100, as papers print them. The published rows are on the official test split, which "
                  "this project measures separately; dev and test are drawn alike.)", ""]
    if bench:
        lines += [f"Speed (`python benchmarks/caption.py`, {bench.get('images', 'photos')}, JPEG bytes in, the CNN "
                  "and the search in the graph"
                  + (", on the project's 2-core CPU machine under load from other processes, so these are lower bounds"
                     if cards.project_run(run) else "") + "):", "",
                  "| batch | beam | ms a call | photos/s |", "| --- | --- | --- | --- |"]
        for r in bench["results"]:
            lines.append(f"| {r['batch']} | {r['beam']} | {r['ms_per_call']:.1f} | {r['images_per_s']:.1f} |")
        lines.append("")
    if examples:
        lines += ["## Examples", "", f"Photos of `{own}`, named by their file (the photos themselves are not shown):"
                  if own else f"The first {len(examples)} photos of the official dev list "
                  "(`Flickr_8k.devImages.txt`), named by their Flickr8k file (the photos themselves are not shown):", ""]
        lines += ["The Chinese is the beam-3 caption translated by `models/translate`, a small model trained on short "
                  "Tatoeba sentences: it is much weaker than the English on these captions, and a word it does not "
                  "know (such as *skateboard* or *hurdle*) it copies in English or leaves out; `rnn-apps caption "
                  "--lang zh` names those words in a note.", "",
                  "| photo | greedy | beam 3 | 中文 (beam 3, translated) | a reference |", "| --- | --- | --- | --- | --- |"]
        for ex in examples:
            lines.append(f"| `{ex['image']}` | {ex['greedy']} | {ex['beam3']} | {ex['zh'] or ''} | "
                         f"{ex['references'][0]} |")
        lines.append("")
    if commands:
        lines += ["Commands that made these figures:", "", "```sh", *commands, "```", ""]
    if meta.get("novelty"):
        lines.append(novelty_section(meta, novelty))
    if not own:  # the shipped versions' changelog, not that of a model of the user's own
        lines.append(versions_section(version))
    return "\n".join(lines) + "\n"


NOVELTY_HEADING = "## Unfamiliar images"


def versions_section(version: str) -> str:
    """The shipped photo model's changelog up to ``version``."""
    return "\n".join(["## Versions", ""] + [f"* {v}: {text}" for v, text in sorted(CHANGELOG.items(), reverse=True)
                                             if v <= int(version)]) + "\n"


def novelty_section(meta: dict, figures: Optional[dict] = None) -> str:
    """What the model's novelty is and where its threshold lies (its export's record), and with ``figures``
    (the JSON of ``benchmarks/caption_novelty.py``) which images it flags."""
    nov = meta["novelty"]
    lines = [NOVELTY_HEADING, "",
             "The captioner describes any image as the nearest thing it knows: a blank page or a chart gets a "
             "confident sentence about what its training photos show. So its graph also scores each image's "
             "**novelty**: 1 minus "
             "the largest cosine similarity between the image's mean MobileNetV2 feature vector and "
             f"{nov['prototypes']:,} prototypes of the {nov['train_images']:,} training photos' (spherical k-means, "
             "`rnn_apps/apps/caption/novelty.py`). Above "
             f"**{nov['threshold']}**, the largest novelty among the {nov['val_images']:,} validation photos "
             f"(their median: {nov['val_novelty']['median']}), `rnn-apps caption` adds a note that the image is "
             "unlike the training photos and the caption probably wrong; `--json` and the `caption`, `attention` "
             "and `caption_pixels` signatures give the value (`novelty`).", ""]
    if figures:
        lines += [f"Measured with `python benchmarks/caption_novelty.py` (seed {figures['seed']}): made-up images "
                  "that are no photos, the first validation photos and edited copies of them, each captioned at the "
                  "model's default beam:", "",
                  "| images | count | flagged | novelty: min | median | max |", "| --- | --- | --- | --- | --- | --- |"]
        for group, g in figures["groups"].items():
            lines.append(f"| {group} | {g['images']} | {g['flagged']} | {g['novelty_min']:.3f} | "
                         f"{g['novelty_median']:.3f} | {g['novelty_max']:.3f} |")
        lines += ["", "Some captions of them:", "", "| image | caption | novelty |", "| --- | --- | --- |"]
        for group, g in figures["groups"].items():
            if group.startswith("photo,") or group == "validation photo":
                continue
            name, ex = next(iter(g["examples"].items()))
            lines.append(f"| {name} | {ex['caption']} | {ex['novelty']:.3f} |")
        lines.append("")
        lines.append("It flags what is far from all of the training photos, not a photo of something they lack that "
                     "looks photographic: such a photo may get no note and a wrong caption.")
        lines.append("")
    return "\n".join(lines) + "\n"


def again_body(version_dir: str, meta: dict, front: dict, body: str, from_card: str, figures: Optional[dict]) -> tuple:
    """``(body, stated figures)`` of a photo model exported again from another export (``front`` and ``body``:
    that export's card, ``from_card``): its body and figures, with the section on unfamiliar images and the
    versions written anew."""
    if cards.section(body, "## Data and its terms") is None:
        raise cards.CardError(f"{from_card} is not a photo caption card: it has no 'Data and its terms' section.")
    body = cards.without_section(cards.without_section(body, NOVELTY_HEADING), "## Versions").rstrip("\n") + "\n\n"
    if meta.get("novelty"):
        body += novelty_section(meta, figures) + "\n"
    recorded = cards.card_record(front)
    if not recorded.get("data"):  # the shipped versions' changelog, not that of a model of the user's own photos
        body += versions_section(os.path.basename(os.path.normpath(version_dir)))
    return body, cards.stated_metrics(front)

