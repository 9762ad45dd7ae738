"""Caption data: tokens and batches, the synthetic scenes' stream, and loaders for Flickr8k/30k and COCO.

Real caption sets are read from what users download themselves (nothing is fetched here):

* **Flickr8k / Flickr30k**: a directory holding a caption file and the images. Caption files:
  ``Flickr8k.token.txt`` / ``results_20130124.token`` (``name.jpg#k<TAB>caption``), ``captions.txt`` (CSV
  ``image,caption`` with a header, as on Kaggle) or ``results.csv`` (``image_name| comment_number| comment``).
  Images are looked for in ``Flicker8k_Dataset/``, ``Flickr8k_Dataset/``, ``flickr30k_images/``, ``Images/``,
  ``images/`` or the directory itself. The official split files ``Flickr_8k.trainImages.txt``,
  ``Flickr_8k.devImages.txt`` and ``Flickr_8k.testImages.txt`` are used when present.
* **COCO**: a directory holding ``captions_<split>.json`` (directly or in ``annotations/``) and the
  images in ``<split>/`` (e.g. ``train2017/``) or ``images/``, or next to the JSON.

Every loader returns :class:`CaptionedImage` rows (an image path and its reference captions).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from rnn_apps import textio
from rnn_apps.chinese import HAN_RANGES
from rnn_apps.vocab import Vocabulary

IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k_images", "Images", "images")
FLICKR_CAPTION_FILES = ("Flickr8k.token.txt", "results_20130124.token", "Flickr30k.token.txt", "captions.txt",
                        "results.csv")
FLICKR_SPLITS = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
                 "test": "Flickr_8k.testImages.txt"}
# Words of letters (any alphabet's: café, naïve) and digits, with an inner apostrophe (dog's); on the 35,455
# Flickr8k captions the same words as ASCII letters gave.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Scripts written without spaces between words: a caption in them would be read as one word.
_UNSPACED = re.compile(f"[{HAN_RANGES}\u3040-\u30ff\uff66-\uff9f]")  # Han, kana, half-width katakana


class CaptionDataError(ValueError):
    """A caption data set that cannot be read (with a message that says what was expected)."""


@dataclass
class CaptionedImage:
    path: str
    captions: list = field(default_factory=list)
    split: Optional[str] = None  # "train" / "val" / "test" when the data set says so


class CaptionRows(list):
    """The :class:`CaptionedImage` rows of a caption set, and ``missing``: how many images its caption files
    name that are not among its images (their captions are left out; the training run says how many)."""

    missing: int = 0


def tokenize(text: str) -> list[str]:
    """Lower-cased words (letters, digits, inner apostrophes); punctuation dropped."""
    return _WORD.findall(text.lower())


def check_caption_words(captions: Sequence[str]) -> None:
    """Refuse captions the captioner cannot learn from: it writes words separated by spaces (English, the
    language of Flickr8k and COCO), so captions mostly in Chinese or Japanese script (one "word" a caption),
    or captions without a single word, would train a model that writes nothing useful.

    Raises:
        CaptionDataError: saying how many captions and what to do.
    """
    captions = list(captions)
    unspaced = sum(bool(_UNSPACED.search(c)) for c in captions)
    if captions and unspaced * 2 > len(captions):
        raise CaptionDataError(
            f"{unspaced:,} of the {len(captions):,} training captions are written in Chinese or Japanese script; the "
            "captioner writes words separated by spaces, as English captions are. Train it on English captions "
            "(rnn-apps caption --lang zh translates them into Chinese).")
    if not any(tokenize(c) for c in captions):
        raise CaptionDataError(f"None of the {len(captions):,} training captions holds a word (letters or digits).")


def encode_captions(captions: Sequence[str], vocab: Vocabulary, max_len: int):
    """Teacher-forcing arrays for captions: (inputs, targets, weights), each (n, max_len).

    inputs = <bos> w_1 .. w_n, targets = w_1 .. w_n <eos>; captions longer than ``max_len - 1`` words are cut
    (their <eos> kept); weights are 1 on real targets and 0 on padding.
    """
    n = len(captions)
    x = np.zeros((n, max_len), np.int32)
    y = np.zeros((n, max_len), np.int32)
    for i, c in enumerate(captions):
        ids = vocab.encode(tokenize(c))[: max_len - 1]
        x[i, 0] = vocab.bos_id
        x[i, 1 : len(ids) + 1] = ids
        y[i, : len(ids)] = ids
        y[i, len(ids)] = vocab.eos_id
    return x, y, (y != 0).astype(np.float32)


# ----------------------------------------------------------------------------------------------- synthetic


def synthetic_batches(batch_size: int, seed: int, settings: dict, vocab: Vocabulary, max_len: int,
                      start_step: int = 0, reverse_prob: float = 0.25) -> Iterator[tuple]:
    """Endless training batches of fresh scenes: step ``s`` is drawn from the seed ``(seed, 1, s)``.

    Yields ``((images uint8 [B, S, S, 3], inputs [B, T]), targets [B, T], weights [B, T])``.
    """
    from rnn_apps.apps.caption.scenes import scene_batch

    step = start_step
    while True:
        images, captions, _ = scene_batch(batch_size, [seed, 1, step], settings, reverse_prob)
        x, y, w = encode_captions(captions, vocab, max_len)
        yield (images, x), y, w
        step += 1


def synthetic_validation(count: int, seed: int, settings: dict, vocab: Vocabulary, max_len: int):
    """The fixed validation scenes of a run (seed ``(seed, 2)``), canonical captions, as arrays."""
    from rnn_apps.apps.caption.scenes import generate_scenes

    scenes = generate_scenes(count, [seed, 2], settings)
    images = np.stack([s.image for s in scenes])
    x, y, w = encode_captions([s.captions()[0] for s in scenes], vocab, max_len)
    return (images, x), y, w


# ----------------------------------------------------------------------------------------------- real sets


def _find_image_dir(root: str, names: Sequence[str]) -> str:
    for d in IMAGE_DIRS:
        p = os.path.join(root, d)
        if os.path.isdir(p):
            # Kaggle's Flickr8k zips nest the folder in itself (Flicker8k_Dataset/Flicker8k_Dataset/).
            inner = os.path.join(p, d)
            if os.path.isdir(inner) and not os.path.exists(os.path.join(p, names[0])):
                return inner
            return p
    return root


def _read_text(path: str) -> str:
    """A caption or split file of a caption set, as UTF-8 text (:func:`rnn_apps.textio.decode_utf8`)."""
    with open(path, "rb") as f:
        return textio.decode_utf8(f.read(), path, CaptionDataError)


def _read_flickr_captions(path: str) -> dict:
    caps: dict[str, list] = {}
    name = os.path.basename(path)
    # a byte that is not UTF-8 is named (with the command that converts the file), not learned as "�"
    with io.StringIO(_read_text(path), newline="") as f:
        if name == "captions.txt":
            rows = csv.reader(f)
            header = next(rows, None)
            if not header or [h.strip().lower() for h in header[:2]] != ["image", "caption"]:
                raise CaptionDataError(f"{path}: expected a CSV with the header 'image,caption'; found {header}.")
            for row in rows:
                if len(row) >= 2 and row[0].strip():
                    caps.setdefault(row[0].strip(), []).append(",".join(row[1:]).strip())
        elif name == "results.csv":
            header = f.readline()
            if "|" not in header:
                raise CaptionDataError(f"{path}: expected 'image_name| comment_number| comment' rows separated by '|'.")
            for line in f:
                parts = [p.strip() for p in line.rstrip("\n").split("|")]
                if len(parts) >= 3 and parts[0]:
                    caps.setdefault(parts[0], []).append("|".join(parts[2:]))
        else:
            for i, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                if "\t" not in line or "#" not in line.split("\t", 1)[0]:
                    raise CaptionDataError(f"{path}, line {i}: expected 'image.jpg#N<TAB>caption'; found {line[:80]!r}.")
                key, text = line.split("\t", 1)
                caps.setdefault(key.rsplit("#", 1)[0].strip(), []).append(text.strip())
    return caps


def load_flickr(root: str) -> CaptionRows:
    """Read a Flickr8k / Flickr30k directory (see the module docstring); images without a file are skipped
    (and counted: ``rows.missing``)."""
    if not os.path.isdir(root):
        raise CaptionDataError(f"Not a directory: {root}.")
    cap_file = next((os.path.join(root, n) for n in FLICKR_CAPTION_FILES if os.path.isfile(os.path.join(root, n))), None)
    if cap_file is None:
        raise CaptionDataError(f"No Flickr caption file in {root}: expected one of {', '.join(FLICKR_CAPTION_FILES)}.")
    caps = _read_flickr_captions(cap_file)
    if not caps:
        raise CaptionDataError(f"{cap_file} holds no captions.")
    names = sorted(caps)
    image_dir = _find_image_dir(root, names)
    splits = {}
    for split, fname in FLICKR_SPLITS.items():
        p = os.path.join(root, fname)
        if os.path.isfile(p):
            for line in _read_text(p).splitlines():
                if line.strip():
                    splits[line.strip()] = split
    rows = CaptionRows(CaptionedImage(os.path.join(image_dir, n), caps[n], splits.get(n)) for n in names
                       if os.path.isfile(os.path.join(image_dir, n)))
    if not rows:
        raise CaptionDataError(f"None of the {len(names)} images named in {cap_file} is in {image_dir}.")
    rows.missing = len(names) - len(rows)
    return rows


def load_coco(root: str, split: Optional[str] = None) -> CaptionRows:
    """Read COCO captions: ``captions_<split>.json`` in ``root`` or ``root/annotations`` and its images.

    Without ``split`` every caption file found is read (``captions_val*.json`` rows get split "val").
    """
    if not os.path.isdir(root):
        raise CaptionDataError(f"Not a directory: {root}.")
    pattern = f"captions_{split}.json" if split else "captions_*.json"
    files = sorted(glob.glob(os.path.join(root, pattern)) + glob.glob(os.path.join(root, "annotations", pattern)))
    if not files:
        raise CaptionDataError(f"No COCO caption file ({pattern}) in {root} or {os.path.join(root, 'annotations')}.")
    rows = CaptionRows()
    for path in files:
        name = os.path.basename(path)[len("captions_"): -len(".json")]
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            images = {im["id"]: im["file_name"] for im in data["images"]}
            anns = data["annotations"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CaptionDataError(f"{path} is not a COCO captions file ('images' and 'annotations'): {e}") from None
        caps: dict = {}
        for a in anns:
            if a.get("image_id") in images and isinstance(a.get("caption"), str):
                caps.setdefault(a["image_id"], []).append(a["caption"].strip())
        dirs = [os.path.join(root, name), os.path.join(root, "images", name), os.path.join(root, "images"),
                os.path.dirname(path), root]
        image_dir = next((d for d in dirs if os.path.isdir(d) and any(
            os.path.isfile(os.path.join(d, images[i])) for i in list(caps)[:20])), None)
        if image_dir is None:
            raise CaptionDataError(f"The images of {path} were not found in {', '.join(dirs)}.")
        tag = "val" if name.startswith("val") else ("train" if name.startswith("train") else None)
        for image_id in sorted(caps):
            p = os.path.join(image_dir, images[image_id])
            if os.path.isfile(p):
                rows.append(CaptionedImage(p, caps[image_id], tag))
            else:
                rows.missing += 1
    if not rows:
        raise CaptionDataError(f"No captioned image found under {root}.")
    return rows


def load_caption_set(root: str) -> tuple[str, CaptionRows]:
    """Recognise and read a caption set directory: ("flickr" | "coco", rows)."""
    if not os.path.isdir(root):
        raise CaptionDataError(f"--data must be a directory of a Flickr8k/Flickr30k or COCO caption set; {root} is not one.")
    if any(os.path.isfile(os.path.join(root, n)) for n in FLICKR_CAPTION_FILES):
        return "flickr", load_flickr(root)
    if glob.glob(os.path.join(root, "captions_*.json")) or glob.glob(os.path.join(root, "annotations", "captions_*.json")):
        return "coco", load_coco(root)
    raise CaptionDataError(
        f"{root} holds neither a Flickr caption file ({', '.join(FLICKR_CAPTION_FILES)}) nor COCO captions "
        "(captions_*.json, or annotations/captions_*.json)."
    )


def check_images(rows: Sequence[CaptionedImage], root: str) -> None:
    """Refuse images of a caption set that cannot be decoded, before training: each file's header
    (:func:`rnn_apps.apps.caption.images.check_image`) and pixels (decoded as the model's graph decodes them,
    about 0.5 ms a 224 px photo) are read once. One corrupt or empty file stopped training at its batch with
    TensorFlow's traceback.

    Raises:
        CaptionDataError: naming the first files that cannot be used (paths relative to ``root``), and how
            many there are.
    """
    from rnn_apps.apps.caption.images import CaptionError, check_decodable, check_image

    bad = []
    for r in rows:
        name = os.path.relpath(r.path, root)
        try:
            with open(r.path, "rb") as f:
                data = f.read()
            check_image(data, name)
            check_decodable(data, name)
        except OSError as e:
            bad.append(f"{name}: {e.strerror or e}")
        except CaptionError as e:
            bad.append(str(e).rstrip("."))
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CaptionDataError(f"{len(bad)} of the {len(rows):,} images of {root} cannot be used ({shown}). "
                               "Replace them, or remove their captions.")


def split_rows(rows: Sequence[CaptionedImage], val_fraction: float, seed: int):
    """(train, val): the data set's own split when it has one, else a seeded share of the images."""
    if any(r.split for r in rows):
        train = [r for r in rows if r.split in ("train", None)]
        val = [r for r in rows if r.split == "val"] or [r for r in rows if r.split == "test"]
        if train and val:
            return train, val
    order = np.random.default_rng(seed).permutation(len(rows))
    n_val = max(1, int(round(len(rows) * val_fraction))) if len(rows) > 1 else 0
    val = [rows[i] for i in sorted(order[:n_val])]
    train = [rows[i] for i in sorted(order[n_val:])]
    return train, val


class PairPlan:
    """Deterministic batches of (image, caption) pairs: epoch e is a permutation seeded by (seed, e)."""

    def __init__(self, rows: Sequence[CaptionedImage], batch_size: int, seed: int):
        self.paths = [r.path for r in rows]
        self.pairs = [(i, c) for i, r in enumerate(rows) for c in r.captions]
        if not self.pairs:
            raise CaptionDataError("No (image, caption) pair to train on.")
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = max(1, len(self.pairs) // batch_size)

    def batch(self, step: int) -> list:
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))
        pick = order[k * self.batch_size : (k + 1) * self.batch_size]
        if len(pick) < self.batch_size:  # fewer pairs than a batch: wrap around
            pick = np.resize(order, self.batch_size)
        return [self.pairs[i] for i in pick]

    def iterate(self, vocab: Vocabulary, max_len: int, start_step: int = 0, with_index: bool = False) -> Iterator[tuple]:
        """Endless ``(images, inputs, targets, weights)`` batches from global step ``start_step`` on.

        ``images`` are the image paths, or with ``with_index`` the images' row numbers in the plan.
        """
        step = start_step
        while True:
            pairs = self.batch(step)
            x, y, w = encode_captions([c for _, c in pairs], vocab, max_len)
            index = np.array([i for i, _ in pairs])
            yield (index if with_index else np.array([self.paths[i] for i in index])), x, y, w
            step += 1


def scene_settings(cfg: dict) -> dict:
    """The settings of the synthetic scenes (size, fewest and most shapes) among a run's settings."""
    return {"image_size": cfg["image_size"], "min_shapes": cfg["min_shapes"], "max_shapes": cfg["max_shapes"]}


def check_default_beam(beam) -> int:
    """The default beam width, checked: an integer from 1 (greedy) to the largest beam the app accepts (16)."""
    from rnn_apps import limits

    max_beam = int(limits.APPS["caption"].ranges["beam_size"].hi)
    if isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= max_beam:
        raise CaptionDataError(f"default_beam must be an integer from 1 to {max_beam}; received {beam!r}.")
    return beam
