"""Corpus BLEU of an exported translator on sentence pairs (sacrebleu)."""

from __future__ import annotations

import time
from typing import Optional, Sequence

from rnn_apps import limits
from rnn_apps.apps.base import check_batch_size
from rnn_apps.apps.translate import data as tdata

SPLITS = ("all", "val", "train")
LENGTH_BINS = (("under 5", 0, 5), ("5-9", 5, 10), ("10 or more", 10, None))


def corpus_chrf(hypotheses: list[str], references: list[str]) -> float:
    """sacrebleu's corpus chrF (character 6-grams, beta 2; Popović, 2015)."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)


def english_words(text: str) -> int:
    """Words of an English sentence, as the by-length figures count them (separated by whitespace)."""
    return len(text.split())


def scores_by_length(english: list[str], hypotheses: list[str], references: list[str], target_language: str) -> dict:
    """BLEU and chrF of the pairs whose English sentence has under 5, 5 to 9, or 10 or more words.

    Returns:
        ``{"under 5": {"pairs", "bleu", "chrf"}, "5-9": ..., "10 or more": ...}`` (a bin without pairs is left out).
    """
    out = {}
    for name, lo, hi in LENGTH_BINS:
        idx = [i for i, e in enumerate(english) if english_words(e) >= lo and (hi is None or english_words(e) < hi)]
        if not idx:
            continue
        hyp, ref = [hypotheses[i] for i in idx], [references[i] for i in idx]
        out[name] = {"pairs": len(idx), "bleu": round(corpus_bleu(hyp, ref, target_language)[0], 2),
                     "chrf": round(corpus_chrf(hyp, ref), 2)}
    return out


# Invented names for the unknown-name probe: no Tatoeba vocabulary holds them.
PROBE_NAMES = {"en": ("Zorbu", "Kelvaro", "Mirtanel", "Quosby", "Ytterlund"), "zh": ("龘靐", "齉爩", "麤鱻")}
PROBE_ANCHOR = {"en": "Tom", "zh": "汤姆"}


MAX_PARAGRAPH = 10


def _paragraphs(pairs: list, n: int) -> list:
    """The pairs shuffled (seed 0, so every model gets the same paragraphs) and joined ``n`` at a time: English
    with spaces, Chinese without; a remainder of fewer than ``n`` is left out."""
    import random

    order = random.Random(0).sample(range(len(pairs)), len(pairs))
    groups = [[pairs[i] for i in order[k:k + n]] for k in range(0, len(order) - n + 1, n)]
    return [tdata.Pair(" ".join(p.en for p in g), "".join(p.zh for p in g)) for g in groups]


def unknown_name_probe(translator, sources: list[str], beam: int, limit: int = 100,
                       names: Optional[Sequence[str]] = None) -> Optional[dict]:
    """How often a name the model has never seen is carried into the translation.

    Up to ``limit`` source sentences that name Tom (汤姆 in Chinese; the most frequent name in Tatoeba) get
    an invented name in its place, each of ``names`` in turn (default :data:`PROBE_NAMES` of the source
    language; Chinese text also names foreigners in Latin letters, probed with the English names); a
    translation carries the name when it holds it as written.

    Returns:
        ``{"sentences", "carried", "share", "names"}``, or None when no source sentence names Tom.
    """
    import re

    lang = translator.source_lang
    anchor = PROBE_ANCHOR[lang]
    pattern = re.compile(rf"\b{anchor}\b") if lang == "en" else re.compile(anchor)
    chosen = [s for s in sources if pattern.search(s)][:limit]
    if not chosen:
        return None
    names = tuple(names or PROBE_NAMES[lang])
    probes = [(names[i % len(names)], pattern.sub(names[i % len(names)], s)) for i, s in enumerate(chosen)]
    # A sentence left with no word the model knows ("Zorbu yawned." when it knows no "yawned") is one the
    # translator refuses: it is not a test of carrying the name, so it is left out.
    readable = []
    for probe, row in zip(probes, translator.tokenize([p for _, p in probes])):
        try:
            limits.check_words(limits.APPS["translate"], "probe", row["tokens"], row["unknown"],
                               (lang, translator.target_lang))
        except limits.LimitError:
            continue
        readable.append(probe)
    probes = readable
    if not probes:
        return None
    outs = translator.translate([p for _, p in probes], beam=beam)
    carried = sum(name in o.translation for (name, _), o in zip(probes, outs))
    return {"sentences": len(probes), "carried": carried, "share": carried / len(probes), "names": list(names)}


def corpus_bleu(hypotheses: list[str], references: list[str], target_language: str):
    """sacrebleu's corpus BLEU with the standard tokenizer of the target language ('zh' or '13a').

    Returns:
        ``(score, signature)``.
    """
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize="zh" if target_language == "zh" else "13a")
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return float(score.score), str(metric.get_signature())


def evaluate_pairs(data_path: str, model_dir: Optional[str] = None, split: str = "all", beam: Optional[int] = None,
                   limit: Optional[int] = None, batch_size: int = 64, progress: bool = False,
                   output_path: Optional[str] = None, direction: Optional[str] = None, paragraphs: int = 1) -> dict:
    """Translate the source side of every pair and score the translations against the other side.

    Args:
        data_path: A TSV of ``english<TAB>chinese`` pairs.
        model_dir: An exported translator (default: the shipped one).
        split: ``all``, or ``val``/``train``: the model's own split of its training corpus (same seed and
            validation fraction), the one its training reported.
        beam: Beam width (default: the model's).
        limit: Score only the first ``limit`` pairs of the split.
        paragraphs: With N > 1, the pairs (shuffled with seed 0) are joined N at a time into paragraphs, whose
            sources are translated as ``rnn-apps translate`` translates a paragraph (cut into sentences) and
            scored against the N references joined; 1: each pair alone, through the graph.
        output_path: Also write ``source<TAB>reference<TAB>translation`` lines to this file.

    Returns:
        ``bleu`` and ``chrf`` (Chinese references converted to simplified script, as the model writes),
        ``by_length`` (BLEU and chrF by English sentence length, see :func:`scores_by_length`),
        ``unknown_names`` (see :func:`unknown_name_probe`), ``unknown_latin_names`` (Chinese sources: the
        same with names in Latin letters),
        ``bleu_references_as_written`` (Chinese targets only), ``signature``, ``pairs``, ``direction``, ``beam``,
        ``tokenize``, ``seconds``, ``sentences_per_second``, ``split``, ``data``, ``model``, ``examples``.
    """
    import click

    from rnn_apps.apps.translate.translate import TranslateError, Translator

    if split not in SPLITS:
        raise TranslateError(f"split must be one of {', '.join(SPLITS)}; received {split!r}.")
    check_batch_size(batch_size, TranslateError)
    if limit is not None and limit < 1:  # pairs[:limit] would drop pairs from the end without a word
        raise TranslateError(f"limit must be a positive number of pairs; received {limit}.")
    if isinstance(paragraphs, bool) or not 1 <= int(paragraphs) <= MAX_PARAGRAPH:
        raise TranslateError(f"paragraphs must be from 1 to {MAX_PARAGRAPH} pairs; received {paragraphs!r}.")
    tr = Translator(model_dir, direction)
    beam = tr._beam(beam)
    cfg = tr.config
    # The pairs as the model's training read them (simplified script, script duplicates once), each with its
    # first line as written.
    first_raw: dict = {}
    for r in tdata.load_pairs(data_path, normalize=False):
        first_raw.setdefault(tdata.Pair(r.en, tdata.normalize_zh(r.zh)), r)
    pairs, raw = list(first_raw), list(first_raw.values())
    if split != "all":
        train_part, val_part = tdata.split_pairs(pairs, cfg.get("val_fraction", 0.06), cfg.get("seed", 1234))
        kept = {id(p) for p in (val_part if split == "val" else train_part)}
        mask = [id(p) in kept for p in pairs]
        pairs = [p for p, m in zip(pairs, mask) if m]
        raw = [p for p, m in zip(raw, mask) if m]
    if paragraphs > 1:  # shuffled and joined first: --limit then counts the pairs of whole paragraphs
        pairs, raw = _paragraphs(pairs, paragraphs), _paragraphs(raw, paragraphs)
        if limit is not None:
            pairs, raw = pairs[:limit // paragraphs], raw[:limit // paragraphs]
        if not pairs:
            raise TranslateError(f"{data_path} (split {split}): fewer than {paragraphs} pairs to join, no paragraph "
                                 "to evaluate.")
    elif limit is not None:
        pairs, raw = pairs[:limit], raw[:limit]
    if not pairs:
        raise TranslateError(f"No pairs to evaluate in {data_path} (split {split}).")
    src_lang, tgt_lang = tr.source_lang, tr.target_lang
    sources = [p.side(src_lang) for p in pairs]
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    hyps = [""] * len(sources)
    t0 = time.time()
    bar = click.progressbar(batches, label="Translating", file=click.get_text_stream("stderr")) if progress else None
    it = bar.__enter__() if bar else batches
    try:
        for idx in it:
            if paragraphs > 1:  # as the command translates a paragraph: sentence by sentence
                got = [t.translation for t in tr.translate([sources[j] for j in idx], beam, batch_size=batch_size)]
            else:
                got = tr.translate_batch([sources[j] for j in idx], beam)
            for j, h in zip(idx, got):
                hyps[j] = h
    finally:
        if bar:
            bar.__exit__(None, None, None)
    seconds = time.time() - t0
    refs = [p.side(tgt_lang) for p in pairs]
    bleu, signature = corpus_bleu(hyps, refs, tgt_lang)
    result = {
        "bleu": bleu,
        "chrf": corpus_chrf(hyps, refs),
        "by_length": scores_by_length([p.en for p in pairs], hyps, refs, tgt_lang),
        "unknown_names": unknown_name_probe(tr, sources, beam),
        **({"unknown_latin_names": unknown_name_probe(tr, sources, beam, names=PROBE_NAMES["en"])}
           if src_lang == "zh" else {}),
        "signature": signature,
        "pairs": len(pairs) * paragraphs,
        "paragraphs": paragraphs,
        "texts": len(pairs),
        "direction": cfg["direction"],
        "beam": beam,
        "tokenize": "zh" if tgt_lang == "zh" else "13a",
        "seconds": round(seconds, 2),
        "sentences_per_second": len(pairs) * paragraphs / max(seconds, 1e-9),
        "split": split,
        "data": data_path,
        "model": tr.model_dir,
        "examples": [{"source": sources[i], "reference": refs[i], "translation": hyps[i]} for i in range(min(5, len(pairs)))],
    }
    if tgt_lang == "zh":
        result["bleu_references_as_written"] = corpus_bleu(hyps, [p.zh for p in raw], "zh")[0]
    if output_path:
        with open(output_path, "w", encoding="utf-8") as f:
            for s, r, h in zip(sources, refs, hyps):
                f.write(f"{s}\t{r}\t{h}\n")
    return result
