"""The long-memory experiment: why LSTM (the vanishing gradient of a plain RNN under backpropagation through time).

The task is the adding problem (Hochreiter & Schmidhuber, 1997): each of the T steps carries two
numbers, a value drawn uniformly from [0, 1] and a marker; exactly two steps are marked, one in the first
half of the sequence and one in the second, and the target is the sum of the two marked values. The model
reads the whole sequence and answers at the end, so it must carry the first marked value across at least
T/2 steps. An answer counts as right when it is within 0.04 of the target; always answering 1 (the mean)
is right about 7% of the time (``baseline``).

Each cell (inside ``keras.layers.RNN``, followed by a linear layer) is trained for ``steps`` Adam updates
(mean squared error) on fresh batches, for each T; accuracy is measured on a fresh validation batch. The gradient
profile ``||dL/dx_t||`` (mean over a batch of the norm of the loss gradient with respect to the input at
step t) shows how much of the error signal reaches each earlier step, at initialisation and after training.

TensorFlow is imported when the functions run, not when this module is imported.
"""

from __future__ import annotations

import math
import time

DEFAULT_CELLS = ("simple_rnn", "lstm", "gru", "peephole_lstm", "coupled_lstm")
DEFAULT_LENGTHS = (10, 25, 50, 100)
INPUT_DIM = 2  # value, marker
TOLERANCE = 0.04  # an answer within this of the target counts as right
QUICK = {"lengths": (5, 12), "steps": 8, "batch_size": 16, "units": 8, "val_size": 64}


def check_cells(cells) -> list[str]:
    """Return the cell names as a list, each once (a repeat would train the same cell again and draw it over
    itself), or raise a ValueError naming the unknown one."""
    from rnn_apps.cells import CELLS

    names = [str(c).strip().lower() for c in cells]
    if not names or any(not n for n in names):
        raise ValueError(f"Give at least one cell, from {', '.join(sorted(CELLS))}.")
    for n in names:
        if n not in CELLS:
            raise ValueError(f"Unknown cell {n!r}; expected one of {', '.join(sorted(CELLS))}.")
    return list(dict.fromkeys(names))


def check_lengths(lengths) -> list[int]:
    """Return the sequence lengths as a list of ints >= 2, each once, or raise a ValueError."""
    out = []
    for t in lengths:
        if isinstance(t, bool) or int(t) != t:
            raise ValueError(f"Sequence lengths must be integers; received {t!r}.")
        if int(t) < 2:
            raise ValueError(f"Sequence lengths must be at least 2 (one marked step in each half); received {t}.")
        out.append(int(t))
    if not out:
        raise ValueError("Give at least one sequence length T, e.g. 10,25,50,100.")
    return list(dict.fromkeys(out))


def make_batch(rng, batch_size: int, length: int):
    """A batch of the adding problem: inputs (batch, length, 2) float32 [value, marker], targets (batch,) float32."""
    import numpy as np

    values = rng.uniform(0.0, 1.0, size=(batch_size, length)).astype("float32")
    markers = np.zeros((batch_size, length), dtype="float32")
    rows = np.arange(batch_size)
    half = length // 2
    markers[rows, rng.integers(0, half, size=batch_size)] = 1.0
    markers[rows, rng.integers(half, length, size=batch_size)] = 1.0
    x = np.stack([values, markers], axis=-1)
    return x, (values * markers).sum(axis=1).astype("float32")


def build_model(cell: str, units: int, length: int | None = None):
    """``keras.layers.RNN(get_cell(cell)(units))`` over (batch, length, 2), then a linear layer to one number."""
    import keras

    from rnn_apps.cells import get_cell

    inputs = keras.Input((length, INPUT_DIM))
    h = keras.layers.RNN(get_cell(cell)(units), name="rnn")(inputs)
    outputs = keras.layers.Dense(1, name="out")(h)
    return keras.Model(inputs, outputs, name=f"long_memory_{cell}")


def gradient_norm_profile(model, x, y) -> list[float]:
    """Mean over the batch of ``||dL/dx_t||`` for each step t (L: the batch's mean squared error)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        pred = model(x, training=False)[:, 0]
        loss = tf.reduce_mean(tf.square(pred - tf.cast(y, pred.dtype)))
    g = tape.gradient(loss, x)
    return [float(v) for v in tf.reduce_mean(tf.norm(g, axis=-1), axis=0).numpy()]


def _train(model, rng, length, steps, batch_size, learning_rate, clipnorm):
    import keras
    import tensorflow as tf

    opt = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True)[:, 0] - y))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    loss = float("nan")
    for _ in range(steps):
        x, y = make_batch(rng, batch_size, length)
        loss = float(step(x, y))
    return loss


def _accuracy(model, x, y) -> float:
    import numpy as np

    pred = np.asarray(model(x, training=False))[:, 0]
    return float(np.mean(np.abs(pred - y) < TOLERANCE))


def run_long_memory(cells=DEFAULT_CELLS, lengths=DEFAULT_LENGTHS, steps: int = 1000, batch_size: int = 64,
                    units: int = 32, seed: int = 0, learning_rate: float = 1e-2, val_size: int = 512,
                    clipnorm: float = 1.0, progress=None) -> dict:
    """Train each cell on the adding problem for each T and measure what it learned.

    Args:
        cells: Cell names (``rnn_apps.cells.CELLS``).
        lengths: Sequence lengths T (each >= 2).
        steps: Adam updates per (cell, T), each on a fresh batch.
        batch_size: Sequences per update.
        units: Units of the recurrent cell.
        seed: Seeds the weights and the data (same seed, same result on the same machine).
        learning_rate, clipnorm: Adam's step size and gradient clipping.
        val_size: Sequences in the validation batch (fresh, one per T, shared by all cells).
        progress: Optional callable taking one line of text per trained (cell, T).

    Returns:
        A dict (JSON-ready) with ``task``, ``config``, ``tolerance``, ``baseline`` {T: accuracy of always
        answering 1}, ``accuracy`` {cell: {T: acc}}, ``loss`` {cell: {T: final training loss (MSE)}}, ``gradient_norm`` {cell: [||dL/dx_t|| for t = 1..T_max]}
        after training at the longest T, ``gradient_norm_init`` (the same at initialisation),
        ``seconds`` {cell: {T: s}} and ``total_seconds``.
    """
    import keras
    import numpy as np

    cells = check_cells(cells)
    lengths = check_lengths(lengths)
    for name, v in (("steps", steps), ("batch_size", batch_size), ("units", units), ("val_size", val_size)):
        if int(v) < 1:
            raise ValueError(f"`{name}` must be a positive integer; received {v}.")
    t_max = max(lengths)
    result = {
        "task": "adding problem: sum of the two marked values (one in each half), right if within 0.04",
        "config": {"cells": cells, "lengths": lengths, "steps": int(steps), "batch_size": int(batch_size),
                   "units": int(units), "seed": int(seed), "learning_rate": learning_rate, "clipnorm": clipnorm,
                   "val_size": int(val_size)},
        "tolerance": TOLERANCE, "baseline": {},
        "accuracy": {}, "loss": {}, "gradient_norm": {}, "gradient_norm_init": {}, "seconds": {},
    }
    start = time.perf_counter()
    for ci, cell in enumerate(cells):
        result["accuracy"][cell], result["loss"][cell], result["seconds"][cell] = {}, {}, {}
        for li, length in enumerate(lengths):
            t0 = time.perf_counter()
            keras.utils.set_random_seed(seed * 1000 + li)  # the same initial draw for every cell at a given T
            val_x, val_y = make_batch(np.random.default_rng([seed, length, 1]), val_size, length)
            result["baseline"][str(length)] = float(np.mean(np.abs(1.0 - val_y) < TOLERANCE))
            model = build_model(cell, units, length)
            if length == t_max:
                result["gradient_norm_init"][cell] = gradient_norm_profile(model, val_x[:256], val_y[:256])
            loss = _train(model, np.random.default_rng([seed, length, 0]), length, steps, batch_size,
                          learning_rate, clipnorm)
            acc = _accuracy(model, val_x, val_y)
            if length == t_max:
                result["gradient_norm"][cell] = gradient_norm_profile(model, val_x[:256], val_y[:256])
            secs = time.perf_counter() - t0
            result["accuracy"][cell][str(length)] = acc
            result["loss"][cell][str(length)] = loss if math.isfinite(loss) else None
            result["seconds"][cell][str(length)] = round(secs, 2)
            if progress:
                progress(f"[{ci * len(lengths) + li + 1}/{len(cells) * len(lengths)}] {cell:<13} T={length:<4} "
                         f"accuracy {acc:.3f}  loss {loss:.3f}  ({secs:.1f} s)")
            keras.backend.clear_session()
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    return result


def format_table(result: dict) -> str:
    """The accuracies as a text table: rows cells, columns T."""
    lengths = result["config"]["lengths"]
    head = f"{'cell':<14}" + "".join(f"{'T=' + str(t):>8}" for t in lengths)
    lines = [head]
    for cell, accs in result["accuracy"].items():
        lines.append(f"{cell:<14}" + "".join(f"{accs[str(t)]:>8.2f}" for t in lengths))
    lines.append(f"{'(answer 1)':<14}" + "".join(f"{result['baseline'][str(t)]:>8.2f}" for t in lengths))
    lines.append(f"(validation accuracy: share of answers within {result['tolerance']} of the sum)")
    return "\n".join(lines)


def plot_long_memory(result: dict, path: str) -> str:
    """Save two panels to ``path``: accuracy against T per cell, and ``||dL/dx_t||`` against t (log scale)
    at the longest T, after training (solid) and at initialisation (dotted). Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = result["config"]["lengths"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (cell, accs) in enumerate(result["accuracy"].items()):
        c = colors[i % len(colors)]
        ax1.plot(lengths, [accs[str(t)] for t in lengths], "o-", color=c, label=cell)
        for key, style in (("gradient_norm", "-"), ("gradient_norm_init", ":")):
            prof = result[key].get(cell)
            if prof:
                ax2.semilogy(range(1, len(prof) + 1), [v if v > 0 else float("nan") for v in prof], style, color=c,
                             label=cell if key == "gradient_norm" else None)
    ax1.plot(lengths, [result["baseline"][str(t)] for t in lengths], "--", color="grey", lw=1,
             label="always 1")
    ax1.set(xlabel="T (sequence length)", ylabel=f"validation accuracy (|error| < {result['tolerance']})",
            ylim=(0, 1.05), title="Adding problem")
    ax1.set_xticks(lengths)
    ax1.legend(fontsize=8)
    ax2.set(xlabel="input step t", ylabel="mean ||dL/dx_t||",
            title=f"Gradient reaching each step (T={max(lengths)}; solid trained, dotted initial)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
