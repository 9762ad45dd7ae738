"""In-graph poem generation against a matrix-product floor and a one-call-per-character loop.

All of them run in one process on the same weights (those of an exported poem model):

* ``in-graph``: the SavedModel's ``generate`` signature (the whole sampling loop in one graph call);
* ``top-p 0.9``: the same with nucleus sampling on (the command line's default), a sort per step more;
* ``floor``: a ``tf.while_loop`` doing only the matrix products of each step (embedding row, every
  layer's input and recurrent products, the output projection and the logits) and nothing else, the
  least work any generator with these weights must do per character;
* ``floor-xla``: the same floor loop compiled with XLA (whichever floor is faster is the bar);
* ``per-char``: the TF text-generation tutorial's way, a Python loop calling a compiled one-step
  ``tf.function`` once per character (states passed back and forth);
* ``numpy``: the NumPy engine ``rnn-apps generate-poem`` runs (:mod:`rnn_apps.apps.poetry.fast`), the same
  poems as ``in-graph`` (left out for a model it does not implement).

Printed: ms per character, chars/s at batch 1 and 64, and floor / in-graph (>= 0.8 is the goal). ``--json``
prints the same figures by batch, with ``model``: the version directory measured (the model card names it).

    python benchmarks/generate.py [--model models/poetry] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf


def _weights(loaded, cfg):
    """Split the exported model's weights (in model.weights order) into embedding, layers and head."""
    ws = [v for v in loaded.model_weights]
    emb = ws[0]
    layers = [(ws[1 + 3 * i], ws[2 + 3 * i], ws[3 + 3 * i]) for i in range(cfg["num_layers"])]
    proj = ws[1 + 3 * cfg["num_layers"]] if len(ws) > 1 + 3 * cfg["num_layers"] else None
    return emb, layers, proj


def make_floor(emb, layers, proj, jit_compile=False):
    units = [int(k.shape[1]) // 4 for k, _, _ in layers]

    @tf.function(jit_compile=jit_compile)
    def floor(batch, steps):
        ids = tf.zeros([batch], tf.int32)
        hs = [tf.zeros([batch, u]) for u in units]

        def body(t, ids, hs):
            x = tf.gather(emb, ids)
            new = []
            for (k, r, b), h, u in zip(layers, hs, units):
                z = tf.matmul(x, k) + tf.matmul(h, r)
                x = z[:, :u]
                new.append(x)
            e = tf.matmul(x, proj) if proj is not None else x
            logits = tf.matmul(e, emb, transpose_b=True)
            ids = tf.cast(logits[:, 0] > 1e30, tf.int32)  # keeps the data dependence, ~no work
            return t + 1, ids, new

        _, ids, _ = tf.while_loop(lambda t, *_: t < steps, body, (0, ids, hs))
        return ids

    return floor


def make_per_char(emb, layers, proj):
    units = [int(k.shape[1]) // 4 for k, _, _ in layers]

    @tf.function
    def one_step(ids, states):
        x = tf.gather(emb, ids)
        new = []
        for (k, r, b), (h, c), u in zip(layers, states, units):
            z = tf.matmul(x, k) + tf.matmul(h, r) + b
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            new.append((h, c))
            x = h
        e = tf.matmul(x, proj) if proj is not None else x
        logits = tf.matmul(e, emb, transpose_b=True)
        nxt = tf.random.categorical(logits / 0.8, 1, dtype=tf.int32)[:, 0]
        return nxt, new

    def run(batch, steps):
        ids = tf.zeros([batch], tf.int32)
        states = [(tf.zeros([batch, u]), tf.zeros([batch, u])) for u in units]
        for _ in range(steps):
            ids, states = one_step(ids, states)
        return ids.numpy()

    return run


def _unconstrained(signature, batch) -> dict:
    """``rhyme`` and ``metre`` "none" where the model's generate signature has them (exports since rhyme
    and metre), so every model writes the same unconstrained poem the timings have always measured."""
    import tensorflow as tf

    if "rhyme" not in signature.structured_input_signature[1]:
        return {}
    return {"rhyme": tf.constant(["none"] * batch), "metre": tf.constant(["none"] * batch)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/poetry")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from rnn_apps.apps.poetry.export import load_config
    from rnn_apps.apps.poetry.fast import NumpyPoemModel, UnsupportedModelError
    from rnn_apps.export import resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    cfg = load_config(model_dir)["config"]
    loaded = tf.saved_model.load(model_dir)
    gen = loaded.signatures["generate"]
    emb, layers, proj = _weights(loaded, cfg)
    floor = make_floor(emb, layers, proj)
    floor_xla = make_floor(emb, layers, proj, jit_compile=True)
    per_char = make_per_char(emb, layers, proj)

    form, steps = "qilv", 8 * 8 + 1  # 64 characters and the end: a fixed number of steps per poem

    def in_graph(batch, top_p=1.0):
        out = gen(prompt=tf.constant([""] * batch), form=tf.constant([form] * batch), acrostic=tf.constant([""] * batch),
                  temperature=tf.constant([0.8] * batch), top_k=tf.constant([0] * batch, tf.int32),
                  top_p=tf.constant([top_p] * batch), seed=tf.constant(list(range(batch)), tf.int64),
                  max_length=tf.constant([128] * batch, tf.int32), **_unconstrained(gen, batch))
        return out["text"].numpy()

    runs = {
        "in-graph": lambda b: in_graph(b),
        "top-p 0.9": lambda b: in_graph(b, 0.9),  # the CLI's default sampling: one sort per step on top
        "floor": lambda b: floor(b, tf.constant(steps)).numpy(),
        "floor-xla": lambda b: floor_xla(b, tf.constant(steps)).numpy(),
        "per-char": lambda b: per_char(b, steps),
    }
    try:
        npm = NumpyPoemModel(model_dir)
    except UnsupportedModelError:
        npm = None
    if npm is not None:  # in-graph's poems, unconstrained as there
        runs["numpy"] = lambda b: npm.generate([""] * b, [form] * b, [""] * b, [0.8] * b, [0] * b, [1.0] * b,
                                               list(range(b)), [128] * b, ["none"] * b, ["none"] * b)["text"]
    results = {}
    for batch in (1, 64):
        for fn in runs.values():  # warm up (tracing)
            fn(batch)
        times = {k: [] for k in runs}
        for _ in range(args.repeats):  # alternate the contenders
            for k, fn in runs.items():
                t0 = time.perf_counter()
                fn(batch)
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[batch] = {
            k: {"ms_per_step": 1000 * med[k] / steps, "chars_per_s": batch * (steps - 1) / med[k]} for k in runs
        }
        best = min(med["floor"], med["floor-xla"])
        results[batch]["floor_over_in_graph"] = best / med["in-graph"]
        results[batch]["per_char_floor_ratio"] = best / med["per-char"]
    if args.json:
        print(json.dumps({"model": os.path.normpath(model_dir), **results}, indent=1))
        return
    print(f"model {model_dir}: {cfg['num_layers']}x{cfg['cell']}({cfg['units']}), embedding {cfg['embedding_dim']}, "
          f"vocab {int(emb.shape[0])}; {steps} steps per poem ({form}); median of {args.repeats}")
    print("floor/method: the faster floor's time over the method's (>= 0.8 is the goal for in-graph at batch 1)")
    print(f"{'batch':>5} {'method':>9} {'ms/step':>9} {'chars/s':>10} {'floor/method':>13}")
    for batch, r in results.items():
        best = min(r["floor"]["ms_per_step"], r["floor-xla"]["ms_per_step"])
        for k in runs:
            ratio = best / r[k]["ms_per_step"]
            print(f"{batch:>5} {k:>9} {r[k]['ms_per_step']:>9.3f} {r[k]['chars_per_s']:>10.0f} {ratio:>13.2f}")


if __name__ == "__main__":
    main()
