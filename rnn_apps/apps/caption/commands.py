"""The captioning commands of the ``rnn-apps`` CLI: ``caption``, ``train caption``, ``evaluate caption``,
``export caption``. Thin wrappers over the library; TensorFlow is imported inside the commands."""

from __future__ import annotations


import click

from rnn_apps.apps.caption.task import DEFAULTS
from rnn_apps.cli import options
from rnn_apps.cli.common import (
    IntegerRange, each_or_refused, echo_exported, echo_json, echo_refused, friendly_errors, numbered_paths,
    quiet_tensorflow, refuse_if_none_left, refuse_options_given, refuse_overwriting_inputs, train_and_report,
    with_card,
)

SHAPES_APP = "caption-shapes"  # the synthetic-scene model's directory under models/


@click.command("caption")
@click.argument("images", nargs=-1, type=click.Path(dir_okay=True))
@options.model("caption", "A model directory (default: the newest version in the shipped models/caption, the photo "
                          "model, or in ./models/caption when you exported one there; models/caption-shapes describes "
                          "synthetic scenes of coloured shapes).")
@options.beam("Beam width, 1 (greedy) to 16 (default: the model's; 5 for the shipped photo model).", "caption")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="zh: also give each caption in Chinese, through the shipped English-to-Chinese translation model.")
@click.option("--translate-model", default=None,
              help="With --lang zh: the translation model directory (default: newest shipped models/translate).")
@options.call_batch("Images")
@options.plot_attention("Save the attention over the image for each word as a grid of overlays (PNG, or any "
                        "format matplotlib writes, by the name's extension); with several images OUT-1.png, "
                        "OUT-2.png, ...")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of objects with 'image' and 'caption'; 'log_probability' (without "
                   "--plot-attention), 'novelty' (how unlike the model's training photos the image is, for a model "
                   "exported with it), 'words' and 'attention' (with --plot-attention), 'caption_zh' (with --lang "
                   "zh), and 'notes' (a list of strings, also printed on standard error) when there is something to "
                   "say of an image: unlike the training photos, read at a reduced scale, very small, no caption, a "
                   "caption that is no scene "
                   "description (models/caption-shapes), caption words the translation model does not know; an "
                   "image that cannot be read has 'image' and 'error' only.")
@friendly_errors
def caption(images, model_dir, beam, lang, translate_model, batch_size, plot_path, as_json):
    """Describe photos (PNG, JPEG, GIF, BMP, WebP) in one English sentence each (看图说话).

    The shipped model was trained on the Flickr8k photos (people, animals and everyday scenes) with an
    ImageNet MobileNetV2 encoder; --lang zh adds a Chinese translation of each caption. A file that cannot
    be read is named on standard error and the others are captioned; the command then ends with status 1.

    \b
    Examples:
      rnn-apps caption photo.jpg
      rnn-apps caption a.jpg b.png --beam 3 --json
      rnn-apps caption photo.jpg --lang zh
      rnn-apps caption photo.jpg --plot-attention attention.png
      rnn-apps caption scene.png --model models/caption-shapes
    """
    from rnn_apps.apps.caption.images import CaptionError, check_decodable, read_image_file

    if not images:
        raise CaptionError("Give image files to caption, e.g. rnn-apps caption photo.jpg. See rnn-apps caption --help.")
    if translate_model and lang != "zh":  # else the user who asked for a translation model gets English only
        raise click.UsageError(f"--translate-model {translate_model} is used with --lang zh only (the Chinese "
                               "captions); add --lang zh, or leave it out.")
    plot_paths = numbered_paths(plot_path, len(images)) if plot_path else []
    refuse_overwriting_inputs({"--plot-attention": plot_paths}, images)
    from rnn_apps.quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    from rnn_apps.apps.caption.captioner import ImageCaptioner, plot_attention

    with native_stderr_silenced():
        cap = ImageCaptioner(model_dir)
    # One file that cannot be read does not cost the others their captions: it is named, the others are
    # captioned, and the command ends with status 1.
    def readable(path):
        im = read_image_file(path, cap.image_size)
        with native_stderr_silenced():
            check_decodable(im.data, im.name)
        return im

    read, failed = each_or_refused(images, readable, CaptionError)
    refuse_if_none_left(failed, len(images), "images can be captioned", CaptionError)
    inputs = sorted(read.items())
    with native_stderr_silenced():
        results = cap.caption_images([im for _, im in inputs], beam=beam, attention=bool(plot_path),
                                     batch_size=batch_size, decodable=True)
        chinese = _in_chinese(results, translate_model) if lang == "zh" else None
    for r in results:
        for note in r.notes:
            click.echo(f"Note: {note}", err=True)
    if plot_path:
        for (i, im), r in zip(inputs, results):
            plot_attention(im.data, r, plot_paths[i])
            click.echo(f"Attention of {im.name}: {plot_paths[i]}", err=True)
    echo_refused(failed)
    if as_json:
        rows = {i: r.to_dict(with_attention=bool(plot_path)) for (i, _), r in zip(inputs, results)}
        for row, zh in zip(rows.values(), chinese or []):
            row["caption_zh"] = zh
        rows.update({i: {"image": images[i], "error": m} for i, m in failed.items()})
        echo_json([rows[i] for i in range(len(images))])
    else:
        for k, r in enumerate(results):
            text = r.caption if chinese is None else f"{r.caption}\n{chinese[k]}"
            click.echo(f"{r.name}: {text}" if len(images) > 1 else text)
    if failed:
        raise SystemExit(1)


def _in_chinese(results: list, model_dir) -> list:
    """Chinese translations of the captions (written as sentences, as the translator was trained on).

    A caption word the translation model does not know is named in a note on its result: the Chinese
    may then leave it out or say something else.
    """
    from rnn_apps.predictors import load_predictor

    translator = load_predictor("translate", model_dir)  # found by name: the caption app imports no other app
    if (translator.source_lang, translator.target_lang) != ("en", "zh"):
        raise click.UsageError(f"--translate-model {translator.model_dir} translates {translator.source_lang} to "
                               f"{translator.target_lang}; --lang zh needs an English-to-Chinese model.")
    sentences = [r.caption[:1].upper() + r.caption[1:] + "." if r.caption else "" for r in results]
    out = [""] * len(results)
    todo = [i for i, s in enumerate(sentences) if s]  # an empty caption has nothing to translate
    if todo:
        for i, t in zip(todo, translator.translate([sentences[i] for i in todo], beam=4)):
            out[i] = t.translation
            if t.unknown_words:
                results[i].notes.append(f"{results[i].name}: the translation model does not know "
                                        f"{', '.join(repr(w) for w in t.unknown_words)}; the Chinese may miss or "
                                        "misstate it.")
    return out


@click.command("caption")
@click.option("--data", default=None, type=click.Path(file_okay=False),
              help="A Flickr8k/Flickr30k directory (Flickr8k.token.txt or captions.txt and the images) or a COCO "
                   "directory (captions_*.json and the images).")
@click.option("--synthetic", is_flag=True, help="Train on generated scenes of coloured shapes (no download).")
@click.option("--variant", type=click.Choice(["attention", "inject"]), default=None,
              help="Decoder: soft visual attention over the CNN grid (default), or the image fed at the first step "
                   "only.")
@options.training("runs/caption", 8, save=200)
@click.option("--steps-per-epoch", type=options.SIZE, default=None,
              help="Steps per epoch (default: 500 for --synthetic, one pass over the caption pairs otherwise).")
@options.size("--batch-size", DEFAULTS, "(image, caption) pairs per batch")
@click.option("--image-size", type=options.SIZE, default=None,
              help="Input side in pixels (default 64 for --synthetic, 128 for photos, 224 with a backbone).")
@options.cell(DEFAULTS, "Decoder cell")
@options.size("--units", DEFAULTS, "Decoder units")
@options.size("--embedding-dim", DEFAULTS, "Word embedding size")
@options.size("--feature-dim", DEFAULTS, "Size of each grid cell's annotation vector")
@options.size("--attention-units", DEFAULTS, "Hidden size of the attention scores")
@click.option("--output-layer", "--output", "output", cls=options.AliasedOption, old=("--output",),
              type=click.Choice(["direct", "tied"]), default=None,
              help="Decoder output: a dense layer to the vocabulary (direct, default) or a deep output layer tied to "
                   "the word embedding (tied: far fewer weights for a large vocabulary).")
@options.rate("--dropout", DEFAULTS, "Dropout")
@options.learning_rate(None, "Peak learning rate, cosine decay", DEFAULTS)
@click.option("--max-len", type=options.SIZE, default=None, help="Most tokens of a caption, <eos> included.")
@click.option("--flip-prob", type=options.SHARE, default=None,
              help="Share of training images mirrored left-right, a data augmentation (default 0; with a frozen "
                   "backbone the mirrored photos' features are cached too).")
@options.default_beam("Beam width the export uses by default (serving_default, rnn-apps caption without --beam; "
                      "default 1).", "caption")
@click.option("--average-best", type=IntegerRange(0, 20), default=None,
              help="--data: end with the mean of the weights of this many epochs of least validation loss "
                   "(checkpoint averaging; default 3; 0 or 1: the best epoch's weights).")
@options.setting("--min-shapes", DEFAULTS, "--synthetic: fewest shapes in a scene", IntegerRange(1, 4))
@options.setting("--max-shapes", DEFAULTS, "--synthetic: most shapes in a scene, up to 4", IntegerRange(1, 4))
@options.min_count(DEFAULTS, "--data: rarest word kept in the vocabulary")
@options.val_fraction(DEFAULTS, "--data without an official split: share of images held out")
@options.patience(DEFAULTS)
@click.option("--backbone", type=click.Choice(["mobilenet_v2"]), default=None,
              help="Use a keras.applications CNN as the encoder instead of the small one trained from scratch.")
@click.option("--backbone-weights", default=None,
              help="With --backbone: its ImageNet weights, as a TFLite model of it (e.g. mobilenet_v2_1.0_224_quant.tflite, "
                   "converted on load) or a Keras weights file without top; 'imagenet' to download them (needs "
                   "network); 'none' for random.")
@click.option("--train-backbone", "backbone_trainable", is_flag=True, default=None, help="Fine-tune the backbone too.")
@options.seed(DEFAULTS)
@options.export(example="models/caption")
@options.as_json()
@friendly_errors
def train_caption(data, synthetic, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every,
                  **settings):
    """Train the captioner: a CNN encoder and a recurrent decoder (rnn_apps.cells).

    \b
    Examples:
      rnn-apps train caption --synthetic --epochs 8
      rnn-apps train caption --synthetic --variant inject --run-dir runs/caption-inject
      rnn-apps train caption --synthetic --run-dir runs/caption --resume
      rnn-apps train caption --data Flickr8k/ --backbone mobilenet_v2 \\
          --backbone-weights mobilenet_v2_1.0_224_quant.tflite --units 512 --embedding-dim 256 \\
          --feature-dim 256 --attention-units 256 --output-layer tied --dropout 0.5 --learning-rate 1e-3 \\
          --max-len 22 --flip-prob 0.5 --epochs 10 --default-beam 5 --export models/caption
      rnn-apps train caption --synthetic --epochs 6 --export models/caption-shapes
      rnn-apps train caption --data Flickr8k/ --epochs 20 --patience 3
    """
    from rnn_apps.apps.caption import task
    from rnn_apps.apps.caption.data import CaptionDataError

    if not resume and bool(data) == bool(synthetic):
        raise CaptionDataError("Give either --data DIR (a Flickr or COCO caption set) or --synthetic.")
    if synthetic:
        refuse_options_given(("average_best", "min_count", "val_fraction", "patience"),
                             "with --synthetic; they apply to a caption set (--data)")
    elif data:
        refuse_options_given(("min_shapes", "max_shapes"), "with --data; they shape the scenes of --synthetic")
    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, exporter=_export,
                     as_json=as_json, epochs=epochs, synthetic=synthetic, resume=resume, strategy=strategy,
                     tensorboard=tensorboard, save_every=save_every, **settings)


def _train_summary(result) -> dict:
    # best_epoch and stopped_early: a caption set's run, which ends with its best epoch
    return {k: result[k] for k in ("step", "val_loss", "val_token_accuracy", "stats", "seconds", "best_epoch",
                                   "stopped_early") if k in result}


def _export(result, app_dir: str) -> str:
    from rnn_apps.apps.caption import task

    novelty = task.run_novelty(result["model"], result["config"], result["synthetic"], result["data"],
                               result["run_dir"], known_prototypes=result["known_prototypes"])
    return with_card("caption", task.export_run(result["model"], result["vocab"], result["config"],
                                                result["synthetic"], app_dir, novelty=novelty), result["run_dir"])


@click.command("caption")
@click.option("--data", required=True, type=click.Path(file_okay=False),
              help="Your captioned photos: a Flickr-style directory (Flickr8k.token.txt or captions.txt and the "
                   "images) or a COCO directory (captions_*.json and the images).")
@options.fine_tuning("caption", 5, 3e-4, save=200)
@options.min_count(DEFAULTS, "A word new to the model joins its vocabulary when your captions use it this "
                   "often")
@options.val_fraction(DEFAULTS, "Share of your images held out for validation when the set has no split of its "
                      "own")
@options.size("--batch-size", DEFAULTS, "(image, caption) pairs per batch")
@options.patience(DEFAULTS)
@options.seed(DEFAULTS)
@options.as_json()
@friendly_errors
def fine_tune_caption(data, model_dir, export_dir, run_dir, epochs, learning_rate, resume, strategy, seed, as_json,
                      tensorboard, save_every, **settings):
    """Fine-tune the caption model on your own photos; new words get new rows.

    The model's vocabulary is kept and the words of your captions it does not know are appended, so
    it keeps what it knew and learns your words. With the shipped photo model the MobileNetV2 encoder
    stays frozen: its features of your photos are computed once (cached in --run-dir).

    \b
    Examples:
      rnn-apps fine-tune caption --data my_photos/
      rnn-apps fine-tune caption --data my_photos/ --epochs 10 --patience 2 --tensorboard
      rnn-apps caption photo.jpg --model models-finetuned/caption
    """
    from rnn_apps.apps.caption import task
    from rnn_apps.paths import default_model_dir

    base = model_dir or default_model_dir("caption")
    train_and_report(task.train, data, run_dir, summarize=_train_summary, export_to=export_dir, exporter=_export,
                     as_json=as_json, epochs=epochs, resume=resume, strategy=strategy, init_from=base,
                     learning_rate=learning_rate, seed=seed, tensorboard=tensorboard, save_every=save_every,
                     **settings)


@click.command("caption")
@click.option("--data", default=None, type=click.Path(file_okay=False), help="A Flickr or COCO caption set directory.")
@click.option("--synthetic", is_flag=True, help="Fresh synthetic scenes (the model's scene settings).")
@click.option("--seed", type=options.SEED, default=2026, show_default=True, help="--synthetic: seed of the scenes (training never uses a plain int seed).")
@click.option("--count", type=IntegerRange(min=1), default=1000, show_default=True,
              help="--synthetic: number of scenes.")
@click.option("--split", type=click.Choice(["val", "test", "train", "all"]), default="val", show_default=True,
              help="--data: which images ('val': the model's validation split, for Flickr8k its 1,000 dev photos; "
                   "'test': the set's official test split).")
@options.limit("--data: caption at most this many images.")
@click.option("--examples", type=IntegerRange(min=0), default=0, show_default=True,
              help="--data: also give the first N captions with their references.")
@options.beam("Beam width, 1 (greedy) to 16 (default: the model's).", "caption")
@options.call_batch("Images", 64)
@options.model("caption", "A model directory (default: the newest version in the shipped models/caption, or "
                          "models/caption-shapes with --synthetic; in ./models/... when you exported one there).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON object with 'bleu1'..'bleu4' and 'cider_d' (--data) or 'exact_match' (--synthetic).")
@friendly_errors
def evaluate_caption(data, synthetic, seed, count, split, limit, examples, beam, batch_size, model_dir, as_json):
    """Score the captioner: BLEU-1..4 and CIDEr-D on a caption set, or BLEU and exact match on synthetic scenes.

    On a caption set (--data) every image's caption is scored against all its reference captions with the
    COCO caption evaluation code (pycocoevalcap); 'distinct_share' is the share of images whose caption
    no other image gets. On synthetic scenes, exact match reads each caption back into shapes, colours,
    sizes and relations and requires all of them right (any phrasing).

    \b
    Examples:
      rnn-apps evaluate caption --data Flickr8k/ --split val --beam 3 --json
      rnn-apps evaluate caption --data Flickr8k/ --split test
      rnn-apps evaluate caption --synthetic --seed 2026 --count 1000
      rnn-apps evaluate caption --synthetic --seed 7 --count 200 --beam 3 --json
    """
    from rnn_apps.apps.caption.data import CaptionDataError

    if bool(data) == bool(synthetic):
        raise CaptionDataError("Give either --data DIR or --synthetic (with --seed and --count).")
    if synthetic:
        refuse_options_given(("split", "limit", "examples"),
                             "with --synthetic; --split, --limit and --examples choose among the images of --data")
    else:
        refuse_options_given(("seed", "count"), "with --data; --seed and --count make the scenes of --synthetic")
    with quiet_tensorflow():
        from rnn_apps.apps.caption import evaluate as ev
        from rnn_apps.paths import default_model_dir

        if synthetic:
            r = ev.evaluate_synthetic(model_dir or default_model_dir(SHAPES_APP), seed, count, beam, batch_size,
                                      progress=not as_json)
        else:
            r = ev.evaluate_dataset(data, model_dir, split, beam, batch_size, limit, progress=not as_json,
                                    examples=examples)
    if as_json:
        echo_json(r)
        return
    bleu = "  ".join(f"BLEU-{n}: {r[f'bleu{n}']:.4f}" for n in range(1, 5))
    click.echo(bleu + (f"  CIDEr-D: {r['cider_d']:.4f}" if "cider_d" in r else ""))
    if r.get("exact_match") is not None:
        by = ", ".join(f"{k} shape{'s' if k != '1' else ''}: {v:.4f}" for k, v in r["exact_match_by_shapes"].items())
        click.echo(f"exact match: {r['exact_match']:.4f}  ({r['scenes']} scenes, seed {r['seed']}; {by}; "
                   f"unparsed {r['unparsed']:.4f})")
    if "distinct_share" in r:
        click.echo(f"{r['images']} images ({r['split']}); a caption of its own for {r['distinct_share']:.1%} of them")
        for ex in r.get("examples", []):
            click.echo(f"{ex['image']}: {ex['caption']}")
    click.echo(f"{r.get('captions_per_s')} captions/s (beam {r['beam']}, batch {batch_size})")


@click.command("caption")
@options.run_dir(None, "The training run to export.")
@options.from_model("an exported caption model", "its settings and figures kept")
@click.option("--data", default=None, type=click.Path(exists=True, file_okay=False),
              help="The caption set the model was trained on (default: the run's). Its training photos teach the "
                   "export what familiar images look like, its validation photos set the threshold above which "
                   "rnn-apps caption notes that an image is unlike them. With --from-model and no --data, the "
                   "model's own are kept.")
@options.export_target("caption", "models/caption, or models/caption-shapes for a model of synthetic scenes")
@options.default_beam("Beam width of serving_default and of rnn-apps caption without --beam (default: the run's "
                      "setting).", "caption")
@click.option("--average-best", type=IntegerRange(2, 20), default=None,
              help="Export the mean of the weights of the run's N epochs of least validation loss (kept by "
                   "training with --average-best N or more) instead of its final weights.")
@click.option("--weights-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="How the SavedModel stores the weights: float16 halves its size (the graph still computes in "
                   "float32).")
@friendly_errors
def export_caption_cmd(run_dir, from_model, data, export_dir, models_root, version, as_json, default_beam,
                       average_best, weights_dtype):
    """Export the captioner of RUN_DIR (or an exported one again) to APP_DIR/<version>/.

    A photo model (with a backbone) also learns from its caption set how unlike its training photos an
    image is (its novelty): rnn-apps caption then notes a caption of an unfamiliar image.

    \b
    Examples:
      rnn-apps export caption --run-dir runs/caption --export models/caption
      rnn-apps export caption --run-dir runs/caption-flickr --default-beam 3
      rnn-apps export caption --from-model models/caption/3 --data Flickr8k/ --export models/caption
    """
    options.export_source(run_dir, from_model, "an exported caption model")
    if from_model:
        refuse_options_given(("default_beam", "average_best", "weights_dtype"),
                             "with --from-model; an export of an exported model keeps its own")
    options.export_dir_for(export_dir, models_root, "caption")  # refuses both spellings before the model loads
    from rnn_apps.apps.caption import task

    if from_model:
        from rnn_apps.apps.caption.export import export_again, load_config
        from rnn_apps.export import resolve_model_dir

        from_model = resolve_model_dir(from_model)
        app = SHAPES_APP if load_config(from_model).get("synthetic") else "caption"
        echo_exported(with_card("caption", export_again(from_model, options.export_dir_for(export_dir, models_root, app),
                                                        version, data), from_model=from_model), as_json)
        return
    model, vocab, cfg, run = task.load_run_model(run_dir)
    training = {"stats": run.get("stats")}
    if average_best:
        training["averaged_epochs"] = task.average_run_epochs(model, run_dir, cfg, run, average_best)
    app = SHAPES_APP if run["synthetic"] else "caption"
    novelty = task.run_novelty(model, cfg, run["synthetic"], data or run.get("data"), run_dir, run.get("init_from"))
    echo_exported(with_card("caption", task.export_run(model, vocab, cfg, run["synthetic"],
                                                       options.export_dir_for(export_dir, models_root, app), version,
                                                       training, default_beam, weights_dtype, novelty), run_dir),
                  as_json)


COMMANDS = {None: [caption], "train": [train_caption], "fine-tune": [fine_tune_caption], "evaluate": [evaluate_caption],
            "export": [export_caption_cmd]}
