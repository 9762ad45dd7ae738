"""Photos (or scenes) captioned per second by an exported caption model, at batch 1 and 32, greedy and beam.

Each call goes through the model's ``caption`` signature with encoded image bytes, so the time includes
decoding and resizing the images in the graph, the CNN, and the decoding loop. A photo model gets the JPEGs
of ``--images DIR`` (default: the Flickr8k photos in ../shared/data, when present; otherwise random-pixel
JPEGs of 224 px); a synthetic-scene model gets PNGs of fresh scenes. The first call of each (batch, beam)
is a warm-up and not counted; the median of ``--repeats`` timed calls is used.

    python benchmarks/caption.py [--model models/caption] [--images DIR] [--beams 1 3] [--batches 1 32]
    python benchmarks/caption.py --model models/caption-shapes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from rnn_apps.apps.caption.captioner import ImageCaptioner  # noqa: E402
from rnn_apps.apps.caption.evaluate import png_bytes  # noqa: E402
from rnn_apps.apps.caption.scenes import generate_scenes  # noqa: E402


FLICKR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "flickr8k", "Flicker8k_Dataset")


def _photos(n: int, folder, seed: int) -> tuple[list, str]:
    if folder and os.path.isdir(folder):
        names = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg", ".png")))[:n]
        if names:
            return [open(os.path.join(folder, f), "rb").read() for f in names], f"{len(names)} Flickr8k photos" if "Flick" in folder else f"{len(names)} files of {os.path.normpath(folder)}"
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out, "random-pixel JPEGs, 224 px"


def bench(model_dir, batches=(1, 32), beams=(1, 3), repeats=5, seed=404, images=FLICKR) -> dict:
    cap = ImageCaptioner(model_dir)
    settings = cap.meta.get("scene_settings")
    if settings:
        data, source = [png_bytes(s.image) for s in generate_scenes(max(batches), seed, settings)], "synthetic scenes (PNG)"
    else:
        data, source = _photos(max(batches), images, seed)
    if len(data) < max(batches):
        data = (data * max(batches))[: max(batches)]
    sig = cap.signatures["caption"]
    out = {"model": cap.model_dir, "images": source, "threads": os.cpu_count(), "results": []}
    print(f"{cap.model_dir}: {source}", flush=True)
    for beam in beams:
        for b in batches:
            images = tf.constant(data[:b])
            beam_t = tf.fill([b], beam)
            sig(image=images, beam_size=beam_t)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                sig(image=images, beam_size=beam_t)["caption"].numpy()
                times.append(time.perf_counter() - t0)
            t = statistics.median(times)
            row = {"batch": b, "beam": beam, "ms_per_call": round(1000 * t, 2), "images_per_s": round(b / t, 2)}
            out["results"].append(row)
            print(f"batch {b:>3}  beam {beam}:  {row['ms_per_call']:9.2f} ms a call  {row['images_per_s']:9.2f} images/s",
                  flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--images", default=FLICKR, help="A folder of photos for a photo model (default: Flickr8k's).")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", dest="json_out", default=None, help="Also write the results to this JSON file.")
    args = ap.parse_args()
    res = bench(args.model, tuple(args.batches), tuple(args.beams), args.repeats, images=args.images)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
