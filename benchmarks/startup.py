"""Start-up to poem: ``rnn-apps generate-poem`` with the NumPy engine against the TensorFlow engine.

Three measurements on the shipped poem model (or ``--model``):

* ``wall``: the whole command, ``rnn-apps generate-poem --seed 1 --engine E`` run as a fresh process
  (Python start, imports, loading the model, one poem, printing), median of ``--repeats`` runs per engine,
  the engines alternated, after one warm-up run each (so the TensorFlow engine finds its XLA programs in
  the on-disk cache, as on every run after a user's first);
* ``ms/step``: generation alone at batch 1 in one process, a 七言律诗 (65 steps, as
  ``benchmarks/generate.py``), temperature 0.8 with top-p off and with top-p 0.9 (the command's
  default), for the NumPy engine and for the SavedModel's in-graph loop;
* ``--check N``: the same requests through both engines (N poems for each of several kinds: the four
  forms, acrostics, starts, free form, greedy and sampled), counting the poems that are identical.

    python benchmarks/startup.py [--model models/poetry] [--repeats 5] [--check 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command():
    exe = shutil.which("rnn-apps")
    return [exe] if exe else [sys.executable, "-m", "rnn_apps.cli"]


def wall_times(model, repeats):
    base = _command() + ["generate-poem", "--seed", "1"] + (["--model", model] if model else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    engines = ("numpy", "tensorflow")
    times = {e: [] for e in engines}
    outputs = {}
    for rep in range(repeats + 1):
        for e in engines:
            t0 = time.perf_counter()
            res = subprocess.run(base + ["--engine", e], capture_output=True, text=True, env=env, cwd=REPO)
            dt = time.perf_counter() - t0
            if res.returncode != 0:
                raise SystemExit(f"{e}: {res.stderr[-2000:]}")
            outputs[e] = res.stdout
            if rep:  # the first round warms caches (files, XLA programs)
                times[e].append(dt)
    return times, outputs


def step_times(model_dir, repeats, with_tf=True):
    from rnn_apps.apps.poetry.fast import NumpyPoemModel

    form, steps = "qilv", 8 * 8 + 1
    npm = NumpyPoemModel(model_dir)
    out = {}

    def numpy_run(top_p, rhyme="none", metre="none"):  # unconstrained unless asked, as measured before rhyme and metre
        return npm.generate([""], [form], [""], [0.8], [0], [top_p], [1], [128], [rhyme], [metre])

    runs = {"numpy, top-p off": lambda: numpy_run(1.0), "numpy, top-p 0.9": lambda: numpy_run(0.9),
            "numpy, top-p 0.9, rhyme+metre": lambda: numpy_run(0.9, "pingshui", "loose")}
    if with_tf:
        import tensorflow as tf

        from generate import _unconstrained  # benchmarks/generate.py, beside this file

        gen = tf.saved_model.load(model_dir).signatures["generate"]

        def tf_run(top_p, constrained=False):
            # "" and "": the defaults, pingshui and loose
            extra = {"rhyme": tf.constant([""]), "metre": tf.constant([""])} if constrained else _unconstrained(gen, 1)
            return gen(prompt=tf.constant([""]), form=tf.constant([form]), acrostic=tf.constant([""]),
                       temperature=tf.constant([0.8]), top_k=tf.constant([0], tf.int32), top_p=tf.constant([top_p]),
                       seed=tf.constant([1], tf.int64), max_length=tf.constant([128], tf.int32), **extra)

        runs["in-graph, top-p off"] = lambda: tf_run(1.0)
        runs["in-graph, top-p 0.9"] = lambda: tf_run(0.9)
        if "rhyme" in gen.structured_input_signature[1]:
            runs["in-graph, top-p 0.9, rhyme+metre"] = lambda: tf_run(0.9, True)
    for fn in runs.values():
        fn()  # warm up (tracing, XLA compilation or its cache)
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    for k, ts in times.items():
        out[k] = statistics.median(ts) / steps * 1e3
    return out


def check_engines(model_dir, n):
    """Generate the same requests with both engines; return (identical poems, poems, differing examples)."""
    from rnn_apps.apps.poetry.generate import PoemGenerator

    tf_gen = PoemGenerator(model_dir, engine="tensorflow")
    np_gen = PoemGenerator(model_dir, engine="numpy")
    kinds = [
        dict(), dict(form="wujue"), dict(form="qijue"), dict(form="wulv"), dict(form="qilv"),
        dict(acrostic="春夏秋冬", form="qijue"), dict(acrostic="明月清风", form="wujue"), dict(acrostic="山水"),
        dict(start="春眠"), dict(start="白日依山尽", form="wulv"), dict(max_length=24),
        dict(temperature=0.0), dict(form="qilv", temperature=0.0), dict(start="床前", temperature=0.0),
        dict(top_k=20, top_p=1.0), dict(temperature=1.2, top_p=0.95), dict(temperature=0.6, top_k=50, top_p=0.8),
        dict(form="wujue", metre="strict"), dict(form="qilv", rhyme="xinyun"), dict(form="qijue", rhyme="none", metre="strict"),
        dict(acrostic="春夏秋冬", form="qijue", metre="strict"), dict(form="wulv", rhyme="none", metre="none"),
    ]
    same = total = 0
    diffs = []
    for i, kw in enumerate(kinds):
        seed = 1000 + 97 * i
        a = [p.text for p in tf_gen.generate(n=n, seed=seed, **kw)]
        b = [p.text for p in np_gen.generate(n=n, seed=seed, **kw)]
        total += len(a)
        for j, (x, y) in enumerate(zip(a, b)):
            if x == y:
                same += 1
            else:
                diffs.append({"request": kw, "seed": seed + j, "tensorflow": x, "numpy": y})
    return same, total, diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="Default: the shipped models/poetry.")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check", type=int, default=0, help="Poems per kind of request to compare between the engines.")
    ap.add_argument("--no-wall", action="store_true", help="Skip the wall-time measurement.")
    ap.add_argument("--no-steps", action="store_true", help="Skip the ms/step measurement.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from rnn_apps.export import resolve_model_dir
    from rnn_apps.paths import default_model_dir

    model_dir = resolve_model_dir(args.model or default_model_dir("poetry"))
    result = {"model": model_dir}
    if not args.no_wall:
        times, outputs = wall_times(args.model, args.repeats)
        med = {e: statistics.median(ts) for e, ts in times.items()}
        result["wall_s"] = {e: {"median": med[e], "runs": ts} for e, ts in times.items()}
        result["same_poem"] = outputs["numpy"] == outputs["tensorflow"]
        if not args.json:
            print(f"rnn-apps generate-poem --seed 1 (fresh process, median of {args.repeats}; {model_dir})")
            for e in times:
                print(f"  --engine {e:<10} {med[e]:6.2f} s   runs: {' '.join(f'{t:.2f}' for t in times[e])}")
            print(f"  tensorflow / numpy: {med['tensorflow'] / med['numpy']:.1f}x; same poem: {result['same_poem']}")
    if not args.no_steps:
        steps = step_times(model_dir, args.repeats)
        result["ms_per_step_batch1"] = steps
        if not args.json:
            print("generation alone, batch 1, 七言律诗 (65 steps), temperature 0.8, median ms/step:")
            for k, v in steps.items():
                print(f"  {k:<22} {v:6.3f}")
    if args.check:
        same, total, diffs = check_engines(model_dir, args.check)
        result["check"] = {"same": same, "poems": total, "differences": diffs}
        if not args.json:
            print(f"engines agree on {same} of {total} poems")
            for d in diffs[:5]:
                print(f"  differs: {json.dumps(d, ensure_ascii=False)}")
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
