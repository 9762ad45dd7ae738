"""Speed of the rnn_apps cells inside keras.layers.RNN against Keras's built-in layers.

Each custom cell runs in ``keras.layers.RNN`` next to its built-in twin (LSTMCell vs
keras.layers.LSTM, GRUCell vs keras.layers.GRU for both ``reset_after`` settings, SimpleRNNCell vs
keras.layers.SimpleRNN; PeepholeLSTMCell and CoupledLSTMCell against keras.layers.LSTM as a
reference) in one process, with the same model around it (RNN -> mean squared error against a
fixed target), the same data and, for twins, the same weights:

* train: ``model.train_on_batch`` (compiled forward + backpropagation through time + SGD update);
* infer: ``model.predict_on_batch`` (compiled forward).

The two models of a pair are timed in alternation (A B, B A, A B, ...: ``--repeats`` rounds of
``--iters`` calls each, after a warm-up call that traces and compiles); the table shows the median
per-call times and ``ratio``, the median over rounds of builtin time / custom time within a round
(> 1: the custom cell is faster). Pairing the two runs of a round makes the ratio robust to
background load on a shared machine.

GFLOP/s counts the matrix products only (x W and h U at every step; backward = 2x forward), and is
compared with the peak of one large float32 matrix product timed in the same process.

Run ``python benchmarks/cells.py`` (full size: batch 64, 100 steps, 128 inputs, 256 units) or
``--quick`` for a smoke test; ``--jit both`` also times every model with ``jit_compile=True`` (XLA).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnn_apps.cells import CoupledLSTMCell, GRUCell, LSTMCell, PeepholeLSTMCell, SimpleRNNCell  # noqa: E402

# name: (builtin factory, custom cell factory, gate blocks, twin?)
PAIRS = {
    "lstm": (lambda u: keras.layers.LSTM(u), lambda u: LSTMCell(u), 4, True),
    "gru(reset_after=True)": (lambda u: keras.layers.GRU(u), lambda u: GRUCell(u), 3, True),
    "gru(reset_after=False)": (
        lambda u: keras.layers.GRU(u, reset_after=False),
        lambda u: GRUCell(u, reset_after=False),
        3,
        True,
    ),
    "simple_rnn": (lambda u: keras.layers.SimpleRNN(u), lambda u: SimpleRNNCell(u), 1, True),
    "peephole_lstm": (lambda u: keras.layers.LSTM(u), lambda u: PeepholeLSTMCell(u), 4, False),
    "coupled_lstm": (lambda u: keras.layers.LSTM(u), lambda u: CoupledLSTMCell(u), 3, False),
}


def matmul_peak_gflops(n=2048, repeats=5):
    """GFLOP/s of one n x n float32 matrix product (median of ``repeats`` timings)."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    product(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def matmul_flops(batch, steps, input_dim, units, gates):
    """FLOPs of the forward matrix products (x W and h U at every step)."""
    return 2 * batch * steps * (input_dim + units) * gates * units


OPTIMIZERS = {"sgd": lambda: keras.optimizers.SGD(1e-3), "adam": lambda: keras.optimizers.Adam(1e-3)}


def build_model(rnn, steps, input_dim, jit, seed, optimizer="sgd"):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((steps, input_dim), batch_size=None)
    model = keras.Model(inputs, rnn(inputs))
    model.compile(optimizer=OPTIMIZERS[optimizer](), loss="mse", jit_compile=jit)
    return model


def time_calls(fn, iters):
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def bench_pair(name, args, jit, peak):
    builtin_factory, cell_factory, gates, twin = PAIRS[name]
    b, t, d, u = args.batch, args.steps, args.input_dim, args.units
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, t, d)).astype("float32")
    y = rng.normal(size=(b, u)).astype("float32")

    builtin = build_model(builtin_factory(u), t, d, jit, seed=1, optimizer=args.optimizer)
    custom = build_model(keras.layers.RNN(cell_factory(u)), t, d, jit, seed=1, optimizer=args.optimizer)
    if twin:  # same weights (the built-in's initialisation) in both
        custom.set_weights(builtin.get_weights())
        np.testing.assert_allclose(custom.predict_on_batch(x), builtin.predict_on_batch(x), atol=1e-4)

    rows = []
    for mode in ("train", "infer"):
        if mode == "train":
            calls = {"builtin": lambda: builtin.train_on_batch(x, y), "custom": lambda: custom.train_on_batch(x, y)}
        else:
            calls = {"builtin": lambda: builtin.predict_on_batch(x), "custom": lambda: custom.predict_on_batch(x)}
        for fn in calls.values():  # warm-up: trace and compile
            fn()
        times = {"builtin": [], "custom": []}
        for r in range(args.repeats):
            order = ("builtin", "custom") if r % 2 == 0 else ("custom", "builtin")
            for key in order:
                times[key].append(time_calls(calls[key], args.iters))
        tb, tc = statistics.median(times["builtin"]), statistics.median(times["custom"])
        # ratio: median over rounds of the paired ratio (the two runs of a round are adjacent in
        # time, so background load on a shared machine hits both alike)
        ratio = statistics.median(x / y for x, y in zip(times["builtin"], times["custom"]))
        flops = matmul_flops(b, t, d, u, gates) * (3 if mode == "train" else 1)
        gflops = flops / tc / 1e9
        rows.append((name, mode, "xla" if jit else "graph", tb * 1e3, tc * 1e3, ratio, gflops, 100 * gflops / peak))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=11, help="alternating timing rounds per model (median kept)")
    parser.add_argument("--iters", type=int, default=2, help="calls per timing round")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 2 repeats, for a smoke test")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--input-dim", type=int, default=128)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--jit", choices=["off", "on", "both"], default="off", help="jit_compile (XLA) for every model")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                        help="optimizer of the training step (the update's cost is the same for both models)")
    parser.add_argument("--cells", nargs="*", default=list(PAIRS), choices=list(PAIRS), metavar="CELL")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.input_dim, args.units = 16, 20, 32, 64
        args.repeats, args.iters = 2, 2

    peak_size = 512 if args.quick else 2048
    peak = matmul_peak_gflops(peak_size)
    print(
        f"keras {keras.__version__} / tensorflow {tf.__version__}, backend {keras.backend.backend()}, "
        f"CPU threads {os.cpu_count()}"
    )
    print(
        f"batch {args.batch}, steps {args.steps}, inputs {args.input_dim}, units {args.units}; "
        f"{args.optimizer}; {args.repeats} alternating rounds x {args.iters} calls, median; matmul peak {peak:.1f} GFLOP/s"
    )
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
    header = (
        f"{'cell':<24}{'mode':<7}{'compile':<8}{'builtin ms':>11}{'custom ms':>11}"
        f"{'ratio':>8}{'GFLOP/s':>9}{'% peak':>8}"
    )
    print(header)
    print("-" * len(header))
    for jit in jits:
        for name in args.cells:
            for row in bench_pair(name, args, jit, peak):
                cell, mode, comp, tb, tc, ratio, gflops, pct = row
                ref = "" if PAIRS[name][3] else "  (vs LSTM)"
                print(
                    f"{cell:<24}{mode:<7}{comp:<8}{tb:>11.1f}{tc:>11.1f}{ratio:>8.3f}{gflops:>9.1f}{pct:>7.1f}%{ref}",
                    flush=True,
                )
    peak_end = matmul_peak_gflops(peak_size)
    print(
        "ratio = builtin time / custom time, median of paired rounds (> 1: custom faster); GFLOP/s and % peak "
        f"are the custom model's, against the matmul peak at the start ({peak:.1f} GFLOP/s; "
        f"{peak_end:.1f} GFLOP/s at the end)."
    )


if __name__ == "__main__":
    main()
