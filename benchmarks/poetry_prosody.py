"""Rhyme and metre of generated poems beside real regulated verse, and what the constraints cost in likelihood.

    python benchmarks/poetry_prosody.py [--model models/poetry] [--data ../shared/data/tang-poems.jsonl.gz]
                                        [--per-form 50] [--seed 0] [--out figures.json] [--json]

* **Compliance**: ``--per-form`` poems of each of the four forms (NumPy engine, the command's default sampling:
  temperature 0.8, top-p 0.9), written with the default constraints (平水韵, loose metre), with strict metre,
  with 中华新韵, and unconstrained (``--rhyme none --metre none``, the poems of the model before rhyme and
  metre), each checked by ``check-poem``'s analysis (:func:`rnn_apps.apps.poetry.prosody.check_poem`); and
  the same figures for the real validation poems of regulated shape (4 or 8 lines of 5 or 7 characters) of
  the model's own split of its corpus (its seed and validation fraction).
* **Cost**: bits per character (the end of the poem included) of the generated poems under the model,
  constrained against unconstrained, scored by the NumPy engine's step (the SavedModel's ``score`` agrees
  to float32 rounding); and of the real regulated validation poems.
* **Coverage** of the tables over the model's vocabulary and over the characters of the validation poems.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

FORMS = ("wujue", "qijue", "wulv", "qilv")
SETTINGS = {  # name: (rhyme, metre)
    "default (pingshui, loose)": ("pingshui", "loose"),
    "pingshui, strict": ("pingshui", "strict"),
    "xinyun, loose": ("xinyun", "loose"),
    "unconstrained (none, none)": ("none", "none"),
}


def bits_per_char(npm, texts: list[str]) -> tuple[float, int]:
    """Total bits and predicted tokens of ``texts`` under the model (each poem from <bos>, its end included)."""
    from rnn_apps.apps.poetry.fast import BOS_ID, EOS_ID

    by_len = {}
    for t in texts:
        ids = [npm.index[c] if c in npm.index else 1 for c in t]
        by_len.setdefault(len(ids), []).append(ids)
    bits = 0.0
    tokens = 0
    for n, rows in by_len.items():
        for i in range(0, len(rows), 128):
            chunk = np.array(rows[i : i + 128], np.int64)
            seq = np.concatenate([np.full((len(chunk), 1), BOS_ID), chunk, np.full((len(chunk), 1), EOS_ID)], axis=1)
            logits = npm.sequence_logits(seq[:, :-1]).astype(np.float64)
            logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
            logp = np.take_along_axis(logits, seq[:, 1:, None], -1)[..., 0] - logz
            bits += float(-logp.sum() / math.log(2.0))
            tokens += seq[:, 1:].size
    return bits, tokens


def summarise(results: list[dict]) -> dict:
    """Counts of check-poem results: rhymed in one level-tone (平) group, in the loose and the strict metre of
    a 平韵 template (a 仄韵 poem, whose metre check-poem leaves unchecked, counts as neither)."""
    n = len(results)
    rhymed = [r["rhyme"]["ok"] and r["rhyme"].get("tone", "平") == "平" for r in results]
    loose = [bool(r["metre"]) and r["metre"]["loose_ok"] for r in results]
    strict = [bool(r["metre"]) and r["metre"]["strict_ok"] for r in results]
    return {
        "poems": n,
        "rhyme_ok": sum(rhymed),
        "loose_ok": sum(loose),
        "strict_ok": sum(strict),
        "both_loose": sum(a and b for a, b in zip(rhymed, loose)),
    }


def coverage(tables, tokens, val_chars) -> dict:
    from rnn_apps.apps.poetry import prosody

    han = [t for i, t in enumerate(tokens) if i >= 4 and t not in "，。"]
    arrays = tables.vocab_arrays(tokens)
    usable = {s: bin(int(np.bitwise_or.reduce(arrays["rhyme"][i]))).count("1") for i, s in enumerate(prosody.RHYMES)}
    occurrences = sum(val_chars.values())
    book = [c for c in han if tables.tone_source(c) == "pingshui"]
    rules = {}  # the modern-reading fallback tried on the characters the rhyme book has
    for name, bit in (("ze", prosody.ZE), ("ping", prosody.PING)):
        claimed = [c for c in book if tables.modern_tone_bits(c) == bit]
        rules[name] = {"claimed": len(claimed), "book_agrees": sum(bool(tables.tone_bits(c) & bit) for c in claimed)}
    return {
        "fallback_rules_on_book_chars": rules,
        "vocab_han": len(han),
        "pingshui_book": sum(tables.tone_source(c) == "pingshui" for c in han),
        "inferred": sum(tables.tone_source(c) == "inferred" for c in han),
        "modern_fallback": sum(tables.tone_source(c) == "modern" for c in han),
        "classical_unknown": sum(tables.tone_bits(c) == 0 for c in han),
        "polyphonic": sum(tables.tone_bits(c) == 3 for c in han),
        "ping_rhyme_chars": sum(bool(tables.rhyme_groups(c)) for c in han),
        "xinyun_known": sum(tables.tone_bits(c, "xinyun") != 0 for c in han),
        "usable_groups": {"pingshui": usable["pingshui"], "pingshui_of": 30, "xinyun": usable["xinyun"], "xinyun_of": 14},
        "val_occurrences": occurrences,
        "val_known_classical": sum(k for c, k in val_chars.items() if tables.tone_bits(c)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/poetry")
    ap.add_argument("--data", default=os.path.join("..", "shared", "data", "tang-poems.jsonl.gz"))
    ap.add_argument("--per-form", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="Also write the figures (and example poems) to this JSON file.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from collections import Counter

    from rnn_apps.apps.poetry import data as pdata
    from rnn_apps.apps.poetry.fast import NumpyPoemModel
    from rnn_apps.apps.poetry.generate import PoemGenerator
    from rnn_apps.apps.poetry.prosody import Tables, check_poem

    t0 = time.perf_counter()
    tables = Tables.load()
    gen = PoemGenerator(args.model, engine="numpy")
    npm = NumpyPoemModel(gen.model_dir, gen.meta)  # the NumPy engine's own scoring of the poems
    cfg = gen.meta["config"]
    result = {"model": gen.model_dir, "per_form": args.per_form, "seed": args.seed, "generated": {}, "examples": {}}
    for name, (rhyme, metre) in SETTINGS.items():
        rows = {}
        for k, form in enumerate(FORMS):
            poems = gen.generate(form=form, n=args.per_form, seed=args.seed + 1000 * k, rhyme=rhyme, metre=metre)
            texts = [p.text for p in poems]
            checks = [check_poem(t, tables, "xinyun" if rhyme == "xinyun" else "pingshui") for t in texts]
            bits, tokens = bits_per_char(npm, texts)
            rows[form] = {**summarise(checks), "bits": bits, "tokens": tokens}
            if name.startswith("default"):
                result["examples"][form] = texts[:2]
        result["generated"][name] = rows
    poems = pdata.load_poems(args.data, cfg.get("script", "simplified"))
    _, val = pdata.split_poems(poems, cfg.get("val_fraction", 0.05), cfg.get("seed", 1234))
    real = {f: [] for f in FORMS}
    for text in val:
        r = check_poem(text, tables)
        if r["form"]:
            real[r["form"]].append((text, r))
    result["validation"] = {}
    for form, items in real.items():
        bits, tokens = bits_per_char(npm, [t for t, _ in items])
        result["validation"][form] = {**summarise([r for _, r in items]), "bits": bits, "tokens": tokens}
    result["validation_poems"] = len(val)
    val_chars = Counter(c for items in real.values() for t, _ in items for c in t if pdata.is_han(c))
    result["coverage"] = coverage(tables, npm.tokens, val_chars)
    result["seconds"] = time.perf_counter() - t0
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=1)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return
    print(f"{result['model']}: {args.per_form} poems a form, checked by check-poem ({result['seconds']:.0f} s)")
    print(f"{'poems':34} {'form':6} {'n':>4} {'rhyme':>7} {'loose':>7} {'strict':>7} {'bits/char':>9}")
    groups = [(k, v) for k, v in result["generated"].items()] + [("real validation poems", result["validation"])]
    for name, rows in groups:
        for form, r in list(rows.items()) + [("all", _pool(rows))]:
            n = max(r["poems"], 1)
            print(f"{name:34} {form:6} {r['poems']:4} {100 * r['rhyme_ok'] / n:6.1f}% {100 * r['loose_ok'] / n:6.1f}% "
                  f"{100 * r['strict_ok'] / n:6.1f}% {r['bits'] / max(r['tokens'], 1):9.3f}")
    print(json.dumps(result["coverage"], ensure_ascii=False))


def _pool(rows: dict) -> dict:
    keys = ("poems", "rhyme_ok", "loose_ok", "strict_ok", "both_loose", "bits", "tokens")
    return {k: sum(r[k] for r in rows.values()) for k in keys}


if __name__ == "__main__":
    main()
