"""Captions per second of an exported caption model, at batch 1 and 64, greedy and beam search.

Each call goes through the model's ``caption`` signature with encoded PNG bytes of synthetic scenes, so the
time includes decoding and resizing the images in the graph, the CNN, and the decoding loop. The first
call of each (batch, beam) is a warm-up and not counted; the median of ``--repeats`` timed calls is used.

    python benchmarks/caption.py [--model models/caption] [--beams 1 3] [--repeats 5] [--json out.json]
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
from rnn_apps.apps.caption.evaluate import _png  # noqa: E402
from rnn_apps.apps.caption.scenes import generate_scenes  # noqa: E402


def bench(model_dir, batches=(1, 64), beams=(1, 3), repeats=5, seed=404) -> dict:
    cap = ImageCaptioner(model_dir)
    settings = cap.meta.get("scene_settings") or {"image_size": cap.image_size}
    data = [_png(s.image) for s in generate_scenes(max(batches), seed, settings)]
    sig = cap._model.signatures["caption"]
    out = {"model": cap.model_dir, "threads": os.cpu_count(), "results": []}
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
            row = {"batch": b, "beam": beam, "ms_per_call": round(1000 * t, 2), "captions_per_s": round(b / t, 1)}
            out["results"].append(row)
            print(f"batch {b:>3}  beam {beam}:  {row['ms_per_call']:9.2f} ms a call  {row['captions_per_s']:9.1f} captions/s",
                  flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", dest="json_out", default=None, help="Also write the results to this JSON file.")
    args = ap.parse_args()
    res = bench(args.model, tuple(args.batches), tuple(args.beams), args.repeats)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
