"""Bits per character of an exported poem model on a corpus."""

from __future__ import annotations

import math
from typing import Optional

from rnn_apps.apps.poetry import data as pdata


def evaluate_corpus(data_path: str, model_dir: Optional[str] = None, split: str = "all", progress: bool = False,
                    batch_size: int = 64, allow_empty: bool = False) -> dict:
    """Score every poem of ``data_path`` (cleaned and converted as in training) with the model.

    ``split="val"``/``"train"`` reproduces the model's own split of its training corpus (its seed and
    validation fraction). Characters the model does not know are scored as ``<unk>``, as in training,
    and counted. Poems longer than the model's scoring limit are cut into pieces.

    Raises:
        PoemError: no poems to score (unless ``allow_empty``: then ``poems`` is 0 and ``bits_per_char`` None).
    """
    import click

    from rnn_apps.apps.poetry.generate import PoemGenerator

    gen = PoemGenerator(model_dir)
    cfg = gen.meta["config"]
    poems = pdata.load_poems(data_path, cfg.get("script", "simplified"))
    if split != "all":
        train, val = pdata.split_poems(poems, cfg.get("val_fraction", 0.05), cfg.get("seed", 1234))
        poems = val if split == "val" else train
    usable = sorted(poems, key=len)
    if not usable and not allow_empty:
        from rnn_apps.apps.poetry.generate import PoemError

        raise PoemError(f"No poems to evaluate in {data_path} (split {split}).")
    total_bits, tokens, unknown = 0.0, 0, 0
    batches = [usable[i : i + batch_size] for i in range(0, len(usable), batch_size)]
    bar = click.progressbar(batches, label="Scoring", file=None) if progress else None
    it = bar.__enter__() if bar else batches
    try:
        for chunk in it:
            for r in gen.score(chunk):
                total_bits += -r["log_probability"] / math.log(2.0)
                tokens += r["characters"] + 1  # the end of the poem is predicted too
                unknown += r["unknown_characters"]
    finally:
        if bar:
            bar.__exit__(None, None, None)
    return {
        "bits_per_char": total_bits / tokens if tokens else None,
        "poems": len(usable),
        "tokens": tokens,
        "unknown_characters": unknown,
        "split": split,
        "model": gen.model_dir,
    }
