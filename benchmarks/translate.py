"""Decoding speed of an exported translator: sentences per second at batch 1 and 64, greedy and beam search.

The sentences are the source side of the model's own validation split of ``--data`` (the whole in-graph
path: tokenization, encoder, the decoding loop and detokenization, one ``translate`` signature call per batch).
Each setting is warmed up once, then timed over ``--sentences`` sentences (batch 1) or ``--batches`` batches of 64.

    python benchmarks/translate.py [--model models/translate] [--data ../shared/data/cmn-eng.tsv] [--beam 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

FALLBACK = ["I love you.", "Where is the station?", "Tom is my friend.", "It's very cold today.",
            "I go to school every day.", "Can you swim?", "Thank you very much.", "This is my book."]


def sentences(data: str | None, cfg: dict, source_lang: str) -> list[str]:
    if data and os.path.exists(data):
        from rnn_apps.apps.translate import data as tdata

        _, val = tdata.split_pairs(tdata.load_pairs(data), cfg.get("val_fraction", 0.06), cfg.get("seed", 1234))
        return [p.side(source_lang) for p in val]
    return FALLBACK


def bench(fn, texts: list[str], batch: int, beam: int, n_batches: int) -> dict:
    chunks = [texts[(i * batch) % len(texts):][:batch] for i in range(n_batches)]
    chunks = [c if len(c) == batch else (c + texts)[:batch] for c in chunks]
    call = lambda c: fn(text=tf.constant(c), beam_size=tf.constant(beam), max_length=tf.constant(0))  # noqa: E731
    call(chunks[0])  # warm-up
    t0 = time.perf_counter()
    for c in chunks:
        call(c)["translation"].numpy()
    dt = time.perf_counter() - t0
    n = batch * len(chunks)
    return {"batch": batch, "beam": beam, "sentences": n, "seconds": round(dt, 3), "sentences_per_s": n / dt,
            "ms_per_batch": 1000 * dt / len(chunks)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/translate")
    ap.add_argument("--data", default="../shared/data/cmn-eng.tsv")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--sentences", type=int, default=200, help="Sentences timed at batch 1.")
    ap.add_argument("--batches", type=int, default=10, help="Batches timed at batch 64.")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow intra- and inter-op threads (0: TF's default).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from rnn_apps.apps.translate.export import load_config
    from rnn_apps.apps.translate.data import parse_direction
    from rnn_apps.export import resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    meta = load_config(model_dir)
    src_lang, _ = parse_direction(meta["config"]["direction"])
    fn = tf.saved_model.load(model_dir).signatures["translate"]
    texts = sentences(args.data, meta["config"], src_lang)
    rows = []
    for beam in (1, args.beam):
        rows.append(bench(fn, texts, 1, beam, args.sentences))
        rows.append(bench(fn, texts, 64, beam, args.batches))
    result = {"model": model_dir, "cpu_count": os.cpu_count(), "rows": rows}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{model_dir}: {len(texts)} sentences (validation split), {os.cpu_count()} CPUs")
    print(f"{'decoding':<10} {'batch':>5} {'sentences/s':>12} {'ms/batch':>9}")
    for r in rows:
        name = "greedy" if r["beam"] == 1 else f"beam {r['beam']}"
        print(f"{name:<10} {r['batch']:>5} {r['sentences_per_s']:>12.1f} {r['ms_per_batch']:>9.1f}")


if __name__ == "__main__":
    main()
