"""Measure an exported captioner: on a caption set BLEU-1..4 and CIDEr-D (pycocoevalcap); on synthetic
scenes corpus BLEU-1..4 and the exact-match rate.

Exact match reads each generated caption back into the scene's facts (:func:`scenes.parse_caption`) and
compares them with the truth (:func:`scenes.facts_match`): every shape, colour, size and relation right,
whatever the phrasing.
"""

from __future__ import annotations

import collections
import io
import math
import os
import time
from typing import Optional, Sequence

from rnn_apps.apps.caption import scenes as sc


def _ngrams(words: Sequence[str], n: int) -> collections.Counter:
    return collections.Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]],
                max_n: int = 4) -> dict:
    """Corpus-level BLEU-1..max_n (Papineni et al., 2002), uniform weights, no smoothing.

    Args:
        references: For each hypothesis, its reference captions (lists of words).
        hypotheses: The generated captions (lists of words).

    Returns:
        ``{"bleu1": ..., ..., "bleu4": ...}`` in [0, 1]; the brevity penalty uses, for each hypothesis, the
        reference length closest to its own (the shorter on ties).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses.")
    matches = [0] * max_n
    totals = [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1] if refs else 0
        for n in range(1, max_n + 1):
            h = _ngrams(hyp, n)
            best: collections.Counter = collections.Counter()
            for r in refs:
                best |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, best[g]) for g, c in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    bp = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    out = {}
    for n in range(1, max_n + 1):
        precisions = [matches[i] / totals[i] if totals[i] else 0.0 for i in range(n)]
        out[f"bleu{n}"] = bp * math.exp(sum(math.log(p) for p in precisions) / n) if min(precisions) > 0 else 0.0
    return out


def png_bytes(pixels) -> bytes:
    """An image uint8 [H, W, 3] encoded as PNG (the bytes a user's file would hold)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def evaluate_synthetic(model_dir: Optional[str] = None, seed: int = 2026, count: int = 1000, beam: Optional[int] = None,
                       batch_size: int = 64, progress: bool = False, max_shapes: Optional[int] = None) -> dict:
    """Caption ``count`` fresh scenes drawn with ``seed`` (the model's scene settings) as PNG bytes.

    Returns BLEU-1..4 against every phrasing of each scene, the exact-match rate overall and by number of
    shapes, the share of captions that do not parse, and captions per second.
    """
    from rnn_apps.apps.caption.captioner import ImageCaptioner
    from rnn_apps.apps.caption.images import CaptionError

    if count < 1:
        raise CaptionError(f"--count must be positive; received {count}.")
    cap = ImageCaptioner(model_dir)
    beam = cap.default_beam if beam is None else beam
    settings = cap.meta.get("scene_settings")
    if not settings:
        raise CaptionError(f"{cap.model_dir} was not trained on synthetic scenes; evaluate it with --data DIR.")
    settings = dict(settings)
    if max_shapes is not None:
        settings["max_shapes"] = max_shapes
        settings["min_shapes"] = min(settings.get("min_shapes", 1), max_shapes)
    scenes = sc.generate_scenes(count, seed, settings)
    data = [png_bytes(s.image) for s in scenes]
    captions, seconds = [], 0.0
    batches = range(0, count, batch_size)
    if progress:
        import click

        bar = click.progressbar(batches, label="Captioning scenes", file=None)
        batches = bar.__enter__()
    try:
        for i in batches:
            t0 = time.perf_counter()
            captions.extend(r.caption for r in cap.caption_bytes(data[i : i + batch_size], beam=beam,
                                                                 batch_size=batch_size))
            seconds += time.perf_counter() - t0
    finally:
        if progress:
            bar.__exit__(None, None, None)
    parsed = [sc.parse_caption(c) for c in captions]
    right = [sc.facts_match(p, s.facts) for p, s in zip(parsed, scenes)]
    by_n: dict = {}
    for s, ok in zip(scenes, right):
        d = by_n.setdefault(str(len(s.shapes)), [0, 0])
        d[0] += ok
        d[1] += 1
    bleu = corpus_bleu([[c.split() for c in s.captions()] for s in scenes], [c.split() for c in captions])
    wrong = [{"caption": c, "truth": s.captions()[0]} for c, s, ok in zip(captions, scenes, right) if not ok]
    return {
        **{k: round(v, 4) for k, v in bleu.items()},
        "exact_match": round(sum(right) / count, 4),
        "exact_match_by_shapes": {k: round(v[0] / v[1], 4) for k, v in sorted(by_n.items())},
        "unparsed": round(sum(p is None for p in parsed) / count, 4),
        "scenes": count,
        "seed": seed,
        "beam": beam,
        "captions_per_s": round(count / seconds, 1) if seconds else None,
        "model": cap.model_dir,
        "examples_wrong": wrong[:5],
    }


def coco_scores(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict:
    """BLEU-1..4 and CIDEr-D of captions, computed by ``pycocoevalcap`` (the COCO caption evaluation code).

    Captions are lower-cased and split into words with :func:`rnn_apps.apps.caption.data.tokenize`
    (punctuation dropped), as the COCO evaluation's tokenizer does before scoring.

    Args:
        references: For each image, its reference captions (text).
        hypotheses: The generated caption of each image (text).

    Returns:
        ``{"bleu1".."bleu4": float in [0, 1], "cider_d": float}`` (CIDEr-D as the COCO code reports it,
        0 to about 10; papers quote it ×100).

    Raises:
        CaptionError: pycocoevalcap is not installed, or the inputs do not pair up.
    """
    import contextlib
    import io as _io

    from rnn_apps.apps.caption.data import tokenize
    from rnn_apps.apps.caption.images import CaptionError

    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        raise CaptionError("Scoring captions of a data set needs pycocoevalcap: pip install 'rnn-apps[eval]' "
                           "(or pip install pycocoevalcap).") from None
    if len(references) != len(hypotheses) or not hypotheses:
        raise CaptionError(f"Expected one reference set per caption; received {len(references)} reference sets "
                           f"for {len(hypotheses)} captions.")
    if any(not refs for refs in references):
        raise CaptionError("Every image needs at least one reference caption.")
    gts = {i: [" ".join(tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hypotheses)}
    with contextlib.redirect_stdout(_io.StringIO()):  # the COCO scorers print their counts
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
    return {**{f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)}, "cider_d": float(cider)}


def select_split(rows, split: str, config: dict):
    """The images of ``split`` of a caption set, as the model saw it.

    "val": the model's validation split (the set's own dev split when it has one, e.g. Flickr8k's 1,000
    dev photos); "test": the set's official test split (e.g. ``Flickr_8k.testImages.txt``); "train": the
    images the model trained on; "all": every image.

    Raises:
        CaptionError: an unknown split, or a set without a test split when ``split="test"``.
    """
    from rnn_apps.apps.caption import data as cdata
    from rnn_apps.apps.caption.images import CaptionError

    if split == "all":
        return list(rows)
    if split == "test":
        test = [r for r in rows if r.split == "test"]
        if not test:
            raise CaptionError("This caption set has no test split (for Flickr8k: Flickr_8k.testImages.txt next to "
                               "the captions); use --split val.")
        return test
    if split not in ("train", "val"):
        raise CaptionError(f"split must be one of val, test, train, all; received {split!r}.")
    # The same call as training's, so "val" is exactly the images the model was validated on.
    train, val = cdata.split_rows(rows, config.get("val_fraction", 0.05), config.get("seed", 1234))
    return val if split == "val" else train


def evaluate_dataset(data_dir: str, model_dir: Optional[str] = None, split: str = "val", beam: Optional[int] = None,
                     batch_size: int = 32, limit: Optional[int] = None, progress: bool = False,
                     examples: int = 0) -> dict:
    """BLEU-1..4 and CIDEr-D of the captioner on a Flickr/COCO set (see :func:`select_split`).

    Returns the scores, the share of images whose caption no other image of the split gets
    (``distinct_share``: a model that says the same few sentences to every photo scores low), captions
    per second, and with ``examples`` the first captions with their references.
    """
    from rnn_apps.apps.caption import data as cdata
    from rnn_apps.apps.caption.captioner import ImageCaptioner
    from rnn_apps.apps.caption.images import CaptionError

    if limit is not None and limit < 1:
        raise CaptionError(f"--limit must be positive; received {limit}.")
    cap = ImageCaptioner(model_dir)
    beam = cap.default_beam if beam is None else beam
    _, rows = cdata.load_caption_set(data_dir)
    rows = select_split(rows, split, cap.config)
    rows = rows[:limit] if limit else rows
    hyps = []
    batches = range(0, len(rows), batch_size)
    t0 = time.perf_counter()
    if progress:
        import click

        bar = click.progressbar(batches, label="Captioning", file=None)
        batches = bar.__enter__()
    try:
        for i in batches:
            hyps.extend(r.caption for r in cap.caption_files([r.path for r in rows[i : i + batch_size]], beam=beam,
                                                              batch_size=batch_size))
    finally:
        if progress:
            bar.__exit__(None, None, None)
    seconds = time.perf_counter() - t0
    scores = coco_scores([r.captions for r in rows], hyps)
    counts = collections.Counter(hyps)
    out = {**{k: round(v, 4) for k, v in scores.items()},
           "distinct_share": round(sum(counts[h] == 1 for h in hyps) / len(hyps), 4),
           "distinct_captions": len(counts), "images": len(rows), "split": split, "beam": beam,
           "captions_per_s": round(len(rows) / seconds, 1) if seconds else None, "model": cap.model_dir}
    if examples:
        out["examples"] = [{"image": os.path.basename(r.path), "caption": h, "references": r.captions}
                           for r, h in zip(rows[:examples], hyps)]
    return out
