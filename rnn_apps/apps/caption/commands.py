"""The captioning commands of the ``rnn-apps`` CLI: ``caption``, ``train caption``, ``evaluate caption``,
``export caption``. Thin wrappers over the library; TensorFlow is imported inside the commands."""

from __future__ import annotations

import os

import click

from rnn_apps._cli_common import _echo_json, _friendly_errors, _progress_to_stderr, _report, _STRATEGY, _verbosity

_CELLS = click.Choice(["lstm", "gru", "simple_rnn", "peephole_lstm", "coupled_lstm"])


def _attention_paths(out: str, n: int) -> list[str]:
    if n == 1:
        return [out]
    stem, ext = os.path.splitext(out)
    return [f"{stem}-{i}{ext or '.png'}" for i in range(1, n + 1)]


@click.command("caption")
@click.argument("images", nargs=-1, type=click.Path(dir_okay=True))
@click.option("--model", "model_dir", default=None, help="A model directory (default: newest shipped models/caption).")
@click.option("--beam", default=1, show_default=True, help="Beam width (1: greedy).")
@click.option("--batch-size", default=32, show_default=True, help="Images per model call.")
@click.option("--plot-attention", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Save the attention over the image for each word as a grid of overlays (PNG); with several "
                   "images OUT-1.png, OUT-2.png, ...")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of objects with 'image', 'caption', 'log_probability' (and 'words', "
                   "'attention' with --plot-attention).")
@_friendly_errors
def caption(images, model_dir, beam, batch_size, plot_path, as_json):
    """Describe images (PNG, JPEG, GIF, BMP, WebP) in one sentence each.

    The shipped model was trained on synthetic scenes of coloured shapes ("a small red circle to the left of
    a large blue square"); train one on Flickr8k or COCO for photos (rnn-apps train caption --data DIR).

    \b
    Examples:
      rnn-apps caption scene.png
      rnn-apps caption a.png b.jpg --beam 3 --json
      rnn-apps caption scene.png --plot-attention attention.png
      rnn-apps caption photo.jpg --model models-flickr/caption
    """
    from rnn_apps.apps.caption.images import CaptionError, read_image_file

    if not images:
        raise CaptionError("Give image files to caption, e.g. rnn-apps caption scene.png. See rnn-apps caption --help.")
    from rnn_apps._quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    from rnn_apps.apps.caption.captioner import ImageCaptioner, plot_attention

    with native_stderr_silenced():
        cap = ImageCaptioner(model_dir)
    inputs = [read_image_file(p, cap.image_size) for p in images]
    with native_stderr_silenced():
        results = cap.caption_images(inputs, beam=beam, attention=bool(plot_path), batch_size=batch_size)
    for r in results:
        for note in r.notes:
            click.echo(f"Note: {note}", err=True)
    if plot_path:
        for im, r, out in zip(inputs, results, _attention_paths(plot_path, len(results))):
            plot_attention(im.data, r, out)
            click.echo(f"Attention of {im.name}: {out}", err=True)
    if as_json:
        _echo_json([r.to_dict(with_attention=bool(plot_path)) for r in results])
        return
    for r in results:
        click.echo(f"{r.name}: {r.caption}" if len(results) > 1 else r.caption)


@click.command("caption")
@click.option("--data", default=None, type=click.Path(file_okay=False),
              help="A Flickr8k/Flickr30k directory (Flickr8k.token.txt or captions.txt and the images) or a COCO "
                   "directory (captions_*.json and the images).")
@click.option("--synthetic", is_flag=True, help="Train on generated scenes of coloured shapes (no download).")
@click.option("--variant", type=click.Choice(["attention", "inject"]), default=None,
              help="Decoder: soft visual attention over the CNN grid (default), or the image fed at the first step "
                   "only.")
@click.option("--run-dir", default="runs/caption", show_default=True, help="Checkpoints, logs, vocabulary.")
@click.option("--epochs", default=8, show_default=True)
@click.option("--steps-per-epoch", type=int, default=None,
              help="Steps per epoch (default: 500 for --synthetic, one pass over the caption pairs otherwise).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --run-dir.")
@_STRATEGY
@click.option("--batch-size", type=int, default=None, help="Images per batch (default 64).")
@click.option("--image-size", type=int, default=None,
              help="Input side in pixels (default 64 for --synthetic, 128 for photos, 224 with a backbone).")
@click.option("--cell", type=_CELLS, default=None, help="Decoder cell (default lstm).")
@click.option("--units", type=int, default=None, help="Decoder units (default 256).")
@click.option("--embedding-dim", type=int, default=None, help="Word embedding size (default 64).")
@click.option("--feature-dim", type=int, default=None, help="Size of each grid cell's annotation vector (default 128).")
@click.option("--attention-units", type=int, default=None, help="Hidden size of the attention scores (default 128).")
@click.option("--dropout", type=float, default=None)
@click.option("--learning-rate", type=float, default=None, help="Peak learning rate (default 2e-3, cosine decay).")
@click.option("--max-len", type=int, default=None, help="Most tokens of a caption, <eos> included.")
@click.option("--min-shapes", type=int, default=None, help="--synthetic: fewest shapes in a scene (default 1).")
@click.option("--max-shapes", type=int, default=None, help="--synthetic: most shapes in a scene, up to 4 (default 3).")
@click.option("--min-count", type=int, default=None, help="--data: rarest word kept in the vocabulary (default 5).")
@click.option("--val-fraction", type=float, default=None,
              help="--data without an official split: share of images held out (default 0.05).")
@click.option("--backbone", type=click.Choice(["mobilenet_v2"]), default=None,
              help="Use a keras.applications CNN as the encoder instead of the small one trained from scratch.")
@click.option("--backbone-weights", default=None,
              help="With --backbone: its ImageNet weights file (no top), 'imagenet' to download them, 'none' for random.")
@click.option("--train-backbone", "backbone_trainable", is_flag=True, default=None, help="Fine-tune the backbone too.")
@click.option("--seed", type=int, default=None, help="Seed: the same seed gives the same losses on a CPU.")
@click.option("--save-every", default=200, show_default=True, help="Checkpoint every N steps (and at each epoch end).")
@click.option("--tensorboard", is_flag=True, help="Write TensorBoard logs to RUN_DIR/tensorboard.")
@click.option("--export", "export_dir", default=None, help="Export the trained model to this app dir (e.g. models/caption).")
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def train_caption(data, synthetic, run_dir, epochs, resume, strategy, export_dir, as_json, tensorboard, save_every,
                  **settings):
    """Train the captioner: a CNN encoder and a recurrent decoder (rnn_apps.cells).

    \b
    Examples:
      rnn-apps train caption --synthetic --epochs 8
      rnn-apps train caption --synthetic --variant inject --run-dir runs/caption-inject
      rnn-apps train caption --synthetic --run-dir runs/caption --resume
      rnn-apps train caption --data Flickr8k/ --epochs 10 --export models-flickr/caption
      rnn-apps train caption --data coco/ --backbone mobilenet_v2 \\
          --backbone-weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
    """
    from rnn_apps.apps.caption import task
    from rnn_apps.apps.caption.data import CaptionDataError

    if not resume and bool(data) == bool(synthetic):
        raise CaptionDataError("Give either --data DIR (a Flickr or COCO caption set) or --synthetic.")
    with _progress_to_stderr(as_json):
        result = task.train(data, run_dir, epochs=epochs, synthetic=synthetic, resume=resume, strategy=strategy,
                            tensorboard=tensorboard, save_every=save_every, verbose=_verbosity(), **settings)
    summary = {k: result[k] for k in ("step", "val_loss", "val_token_accuracy", "stats", "seconds")}
    if export_dir:
        summary["exported"] = task.export_run(result["model"], result["vocab"], result["config"], result["synthetic"],
                                              export_dir)
    _report(summary, as_json)


@click.command("caption")
@click.option("--data", default=None, type=click.Path(file_okay=False), help="A Flickr or COCO caption set directory.")
@click.option("--synthetic", is_flag=True, help="Fresh synthetic scenes (the model's scene settings).")
@click.option("--seed", default=2026, show_default=True, help="--synthetic: seed of the scenes (training never uses a plain int seed).")
@click.option("--count", default=1000, show_default=True, help="--synthetic: number of scenes.")
@click.option("--split", type=click.Choice(["val", "train", "all"]), default="val", show_default=True,
              help="--data: which images ('val': the model's validation split of this set).")
@click.option("--limit", type=int, default=None, help="--data: caption at most this many images.")
@click.option("--beam", default=1, show_default=True, help="Beam width (1: greedy).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--model", "model_dir", default=None, help="A model directory (default: newest shipped models/caption).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with 'bleu1'..'bleu4' and 'exact_match'.")
@_friendly_errors
def evaluate_caption(data, synthetic, seed, count, split, limit, beam, batch_size, model_dir, as_json):
    """BLEU-1..4 of the captioner and, on synthetic scenes, its exact-match rate.

    Exact match: the caption, read back into shapes, colours, sizes and relations, states exactly the
    scene's facts (any phrasing).

    \b
    Examples:
      rnn-apps evaluate caption --synthetic --seed 2026 --count 1000
      rnn-apps evaluate caption --synthetic --seed 7 --count 200 --beam 3 --json
      rnn-apps evaluate caption --data Flickr8k/ --model models-flickr/caption --limit 500
    """
    from rnn_apps.apps.caption.data import CaptionDataError

    if bool(data) == bool(synthetic):
        raise CaptionDataError("Give either --data DIR or --synthetic (with --seed and --count).")
    from rnn_apps._quiet import import_tensorflow_quietly, native_stderr_silenced

    import_tensorflow_quietly()
    from rnn_apps.apps.caption import evaluate as ev

    with native_stderr_silenced():
        if synthetic:
            r = ev.evaluate_synthetic(model_dir, seed, count, beam, batch_size, progress=not as_json)
        else:
            r = ev.evaluate_dataset(data, model_dir, split, beam, batch_size, limit, progress=not as_json)
    if as_json:
        _echo_json(r)
        return
    bleu = "  ".join(f"BLEU-{n}: {r[f'bleu{n}']:.4f}" for n in range(1, 5))
    click.echo(bleu)
    if r.get("exact_match") is not None:
        by = ", ".join(f"{k} shape{'s' if k != '1' else ''}: {v:.4f}" for k, v in r["exact_match_by_shapes"].items())
        click.echo(f"exact match: {r['exact_match']:.4f}  ({r['scenes']} scenes, seed {r['seed']}; {by}; "
                   f"unparsed {r['unparsed']:.4f})")
    click.echo(f"{r.get('captions_per_s')} captions/s (beam {r['beam']}, batch {batch_size})")


@click.command("caption")
@click.option("--run-dir", required=True)
@click.option("--models", "models_dir", default="models", show_default=True)
@click.option("--version", type=int, default=None, help="Version number (default: next).")
@_friendly_errors
def export_caption_cmd(run_dir, models_dir, version):
    """Export the captioner of RUN_DIR to MODELS/caption/<version>/.

    \b
    Example:
      rnn-apps export caption --run-dir runs/caption --models models
    """
    from rnn_apps.apps.caption import task

    model, vocab, cfg, run = task.load_run_model(run_dir)
    click.echo(task.export_run(model, vocab, cfg, run["synthetic"], os.path.join(models_dir, "caption"), version,
                               {"stats": run.get("stats")}))
