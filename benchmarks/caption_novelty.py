"""Which images a photo captioner flags as unlike its training photos (its novelty, see
rnn_apps.apps.caption.novelty), measured on made-up images that are no photos and on edited copies of photos.

    python benchmarks/caption_novelty.py --data ../shared/data/flickr8k [--model models/caption]
                                         [--photos 200] [--seed 0] [--json FILE]

Groups of images, each captioned by the model (its default beam), with the share whose novelty is above the
model's threshold:

* not photos (made here from the seed): solid colours, noise (uniform and faint), gradients, a checkerboard,
  stripes, text pages (rendered lines of an invoice), drawings of coloured shapes on a plain ground and line
  charts (matplotlib);
* photos: the first ``--photos`` validation photos of the caption set (as training split it), whose novelty
  set the threshold, and edited copies of each (grey, rotated a quarter turn, the centre half cropped,
  shrunk to 64×48, darkened to a third).

Nothing is written but the JSON (``--json FILE``; the table goes to standard output).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _png(pixels) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def not_photos(seed: int) -> dict:
    """{group: {name: PNG bytes}} of made-up images that are no photos."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    s = 224
    groups = {"solid colour": {}, "noise": {}, "gradient and pattern": {}, "text page": {}, "drawn shapes": {},
              "chart": {}}
    for c in [(255, 255, 255), (0, 0, 0), (128, 128, 128), (255, 0, 0), (0, 0, 255), (30, 200, 40), (250, 240, 200)]:
        groups["solid colour"][f"solid {c}"] = _png(np.full((s, s, 3), c, np.uint8))
    for i in range(5):
        groups["noise"][f"uniform noise {i}"] = _png(rng.integers(0, 256, (s, s, 3)))
        groups["noise"][f"faint noise {i}"] = _png(np.clip(128 + rng.normal(0, 10, (s, s, 3)), 0, 255))
    ramp = np.tile(np.linspace(0, 255, s), (s, 1))
    groups["gradient and pattern"].update({
        "horizontal gradient": _png(np.stack([ramp] * 3, -1)),
        "vertical gradient": _png(np.stack([ramp.T] * 3, -1)),
        "checkerboard": _png(np.repeat(((np.indices((s, s)).sum(0) // 28) % 2 * 255)[..., None], 3, -1)),
        "stripes": _png(np.repeat(np.repeat(((np.arange(s) // 8) % 2 * 255)[None, :], s, 0)[..., None], 3, -1)),
    })
    for i in range(5):
        page = Image.new("RGB", (400, 300), (255, 255, 255))
        draw = ImageDraw.Draw(page)
        for j in range(12):
            draw.text((10, 10 + 22 * j), f"Invoice line {j}   total {rng.integers(1, 999)}.{rng.integers(0, 99):02d} EUR",
                      fill=(0, 0, 0))
        groups["text page"][f"text page {i}"] = _png(np.asarray(page))
        ground = Image.new("RGB", (s, s), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(ground)
        for _ in range(3):
            a = rng.integers(0, 200, 2)
            draw.ellipse([*a, *(a + rng.integers(10, 60, 2))], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        groups["drawn shapes"][f"drawn shapes {i}"] = _png(np.asarray(ground))
    for i in range(3):
        fig = plt.figure(figsize=(4, 3))
        plt.plot(np.cumsum(rng.normal(size=100)))
        plt.title("sales")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        groups["chart"][f"line chart {i}"] = buf.getvalue()
    return groups


def photos(data: str, cfg: dict, count: int) -> dict:
    """{group: {name: JPEG bytes}}: validation photos of the caption set and edited copies of each."""
    from PIL import Image

    from rnn_apps.apps.caption import data as cdata

    _, rows = cdata.load_caption_set(data)
    _, val = cdata.split_rows(rows, cfg["val_fraction"], cfg["seed"])
    edits = {
        "grey": lambda im: im.convert("L").convert("RGB"),
        "rotated a quarter turn": lambda im: im.rotate(90, expand=True),
        "centre half cropped": lambda im: im.crop((im.width // 4, im.height // 4, 3 * im.width // 4,
                                                   3 * im.height // 4)),
        "shrunk to 64×48": lambda im: im.resize((64, 48)),
        "darkened to a third": lambda im: Image.eval(im, lambda v: v // 3),
    }
    groups = {"validation photo": {}, **{f"photo, {k}": {} for k in edits}}
    for row in val[:count]:
        name = os.path.basename(row.path)
        with open(row.path, "rb") as f:
            groups["validation photo"][name] = f.read()
        image = Image.open(row.path).convert("RGB")
        for k, edit in edits.items():
            groups[f"photo, {k}"][name] = _jpeg(edit(image))
    return groups


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/caption")
    ap.add_argument("--data", required=True, help="The caption set the model was trained on (its validation photos).")
    ap.add_argument("--photos", type=int, default=200, help="Validation photos to edit (default 200).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the made-up images.")
    ap.add_argument("--json", default=None, help="Write the figures to this JSON file.")
    args = ap.parse_args()

    from rnn_apps.apps.caption.captioner import ImageCaptioner

    cap = ImageCaptioner(args.model)
    if cap.novelty_threshold is None:
        raise SystemExit(f"{cap.model_dir} was exported without novelty; export it with "
                         "rnn-apps export caption --from-model ... --data DIR.")
    t0 = time.perf_counter()
    groups = {**not_photos(args.seed), **photos(args.data, cap.config, args.photos)}
    out = {"model": cap.model_dir, "threshold": cap.novelty_threshold, "seed": args.seed, "groups": {}}
    for group, images in groups.items():
        results = cap.caption_bytes(list(images.values()))
        values = [r.novelty for r in results]
        flagged = [n for n, v in zip(images, values) if v > cap.novelty_threshold]
        out["groups"][group] = {"images": len(images), "flagged": len(flagged),
                                "novelty_median": round(float(np.median(values)), 4),
                                "novelty_min": round(float(min(values)), 4), "novelty_max": round(float(max(values)), 4),
                                "examples": {n: {"caption": r.caption, "novelty": round(r.novelty, 4)}
                                             for n, r in list(zip(images, results))[:3]}}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"novelty threshold {cap.novelty_threshold} ({cap.model_dir})")
    print(f"{'group':<34} {'images':>6} {'flagged':>8} {'min':>6} {'median':>6} {'max':>6}")
    for group, g in out["groups"].items():
        print(f"{group:<34} {g['images']:>6} {g['flagged']:>8} {g['novelty_min']:>6.3f} {g['novelty_median']:>6.3f} "
              f"{g['novelty_max']:>6.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
