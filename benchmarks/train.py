"""Training-step speed of every app at its shipped shapes: today's path against its alternatives.

For each app the real model is built by the app's own builder with the shipped model's settings
(``models/<app>/<version>/assets.extra/*.json``) and compiled by the app's own ``compile`` function; one
training step (``model.train_on_batch``: forward, backpropagation through time, clipped Adam update) on a
synthetic batch of the shipped shape is timed for each contender:

* ``today``: the model as the shipped models were trained (``keras.layers.RNN`` around an ``rnn_apps`` cell,
  TensorFlow's own cross-entropy kernel, the captioning CNN's batch normalization as Keras computes it);
* ``new``: the app's default step now, where it differs from ``today``: ``ProjectedRNN`` in every app with
  a recurrent layer, the token cross-entropy as one XLA kernel (``rnn_apps.losses``: poems, fill,
  translation, captions), for the poem model a bits-per-character metric that reads the loss's
  cross-entropy instead of computing the softmax over the vocabulary again, and the training commands'
  ``--precision auto`` (bfloat16 operands for the large products where this CPU measures them faster,
  :mod:`rnn_apps.precision`), and the shapes captioner's CNN with TensorFlow's fused batch normalization
  (:class:`rnn_apps.layers.BatchNormalization`); the contenders below are built on the default step;
* ``float32_products``: the default step with every product in float32 (``--precision float32``: what
  bfloat16 products buy);
* ``projected``: every ``keras.layers.RNN`` replaced by ``rnn_apps.layers.ProjectedRNN`` (the input
  projection x W of all time steps as one matrix product before the recurrence; same weights);
* ``xla``: the default model, its products in float32, with ``jit_compile=True`` (XLA) for the whole train step;
* ``keras``: every ``keras.layers.RNN(LSTMCell | GRUCell)`` replaced by ``keras.layers.LSTM | GRU`` with
  the same settings (Keras's built-in layers at the same shapes);
* ``tf_cross_entropy``: the default step with TensorFlow's own cross-entropy kernel instead of the XLA one
  (what ``rnn_apps.losses`` buys, for the apps that predict tokens);
* ``tf_recurrence``: the default step with the LSTM's training loop (``rnn_apps.layers.lstm_sequence``) as
  a TensorFlow graph instead of one XLA computation (what compiling the loop buys);
* ``unroll``: the default step with every recurrent layer unrolled (``unroll=True``: the steps written out
  in the graph instead of a loop, for short sequences such as translation's; the LSTM's written-out
  backward pass of ``rnn_apps.layers.lstm_sequence`` then gives way to automatic differentiation);
* ``batch2x``: the default step on batches twice as large (a lever that changes training: it would
  need its own learning rate), its time halved so that it compares per token;
* ``tiny_output`` (poems, fill): the default model with its output layer over 64 classes instead of the
  vocabulary (ids of the batch taken modulo 64): the step without the softmax over thousands of
  characters, so a bound on what any cheaper softmax (adaptive, sampled, hierarchical) could buy.

The caption decoders run their cell step by step in Python (the attention needs h_{t-1} before each
step; their steps are written out, as ``unroll`` would), so they have no recurrent layer to replace: only ``today`` (the output layer inside every step),
``new`` (the output layer once over all steps, and the cross-entropy), ``xla``, ``batch2x`` and
``tf_cross_entropy``. ``caption`` is the photo captioner, whose frozen backbone's grids are cached, so its
step is the head and the decoder; ``caption-shapes`` trains its small CNN in every step.

The contenders of an app are timed in alternation (A B C D, D C B A, ...; ``--rounds`` rounds of one step
each, after ``--warmup`` steps that trace and compile); ``speedup`` is the median over rounds of today's
time / the contender's time within a round, which keeps the ratio meaningful on a loaded machine.
Tokens per second count target tokens (input tokens for the sentiment classifier). GFLOP/s counts the
matrix products of the recurrent layers, the attention and the output layer (backward = 2x forward; the
caption model's convolutional encoder is not counted), as a fraction of one large float32 matrix product
timed in the same process in every round (median), so that both see the same load.

Run ``python benchmarks/train.py`` (all apps), ``--app poem`` for one, ``--json`` for one JSON object per
app per line. Each app is timed in a process of its own, as its training command runs (``--one-process``:
all in this one).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import sys
import time
import types
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cells import matmul_peak_gflops  # noqa: E402
from rnn_apps import precision  # noqa: E402
from rnn_apps.cells import GRUCell, LSTMCell  # noqa: E402
from rnn_apps.layers import ProjectedRNN  # noqa: E402

CONTENDERS = ("today", "new", "float32_products", "projected", "xla", "keras", "unroll", "batch2x", "tf_cross_entropy",
              "tf_recurrence", "tiny_output")
TINY_OUTPUT = 64  # classes of the ``tiny_output`` contender's output layer


def shipped_config(app_dir: str, name: str) -> dict:
    """The training config of the newest shipped version of ``models/<app_dir>``."""
    base = os.path.join(ROOT, "models", app_dir)
    version = max((v for v in os.listdir(base) if v.isdigit()), key=int)
    with open(os.path.join(base, version, "assets.extra", name), encoding="utf-8") as f:
        return json.load(f)


def _builtin_rnn(cell, **kwargs):
    """keras.layers.LSTM / GRU with the settings of an rnn_apps cell (the ``keras`` contender)."""
    common = dict(dropout=cell.dropout, recurrent_dropout=cell.recurrent_dropout, **kwargs)
    if type(cell) is LSTMCell:
        return keras.layers.LSTM(cell.units, unit_forget_bias=cell.unit_forget_bias, **common)
    if type(cell) is GRUCell:
        return keras.layers.GRU(cell.units, reset_after=cell.reset_after, **common)
    return keras.layers.RNN(cell, **kwargs)


# The modules whose models build ``ProjectedRNN`` layers (the apps' default recurrent layer).
PROJECTED_USERS = ("rnn_apps.layers", "rnn_apps.layers.deep_bidirectional", "rnn_apps.apps.fill.model",
                   "rnn_apps.apps.translate.model", "rnn_apps.apps.poetry.model")


@contextlib.contextmanager
def rnn_layer(kind: str):
    """While building a model, make every recurrent layer (``keras.layers.RNN``, and ``ProjectedRNN`` where the
    apps use it) the layer of contender ``kind``: ``today`` keras.layers.RNN, ``projected`` ProjectedRNN,
    ``keras`` the built-in LSTM/GRU; the other contenders build the apps' default layers."""
    layer = {"today": keras.layers.RNN, "projected": ProjectedRNN, "keras": _builtin_rnn}.get(kind)
    with contextlib.ExitStack() as stack:
        if layer is not None:
            stack.enter_context(mock.patch.object(keras.layers, "RNN", layer))
            for name in PROJECTED_USERS:
                stack.enter_context(mock.patch.object(importlib.import_module(name), "ProjectedRNN", layer))
        yield


class RecomputedBitsPerChar(keras.metrics.Metric):
    """The poem model's training metric before it read the loss's cross-entropy: the softmax once more."""

    def __init__(self, name="bits_per_char", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        w = keras.ops.cast(sample_weight, ce.dtype)
        self.total.assign_add(keras.ops.sum(ce * w) / np.log(2.0))
        self.count.assign_add(keras.ops.sum(w))

    def result(self):
        return self.total / keras.ops.maximum(self.count, 1.0)


def _ids(rng, vocab, shape):
    return rng.integers(4, vocab, size=shape).astype(np.int32)


def _character_model_sizes(app_dir: str, name: str):
    """Config, vocabulary size, batch, length, embedding and units of a shipped character model."""
    d = shipped_config(app_dir, name)
    c = d["config"]
    T = c["max_len"]
    return c, len(d["vocab"]["tokens"]), c["tokens_per_batch"] // T, T, \
        c["embedding_dim"], c["units"]


def poem_case(rng):
    from rnn_apps.apps.poetry import model as poetry_model
    from rnn_apps.apps.poetry.model import build_char_rnn
    from rnn_apps.apps.poetry.task import compile_model

    c, V, B, T, e, u = _character_model_sizes("poetry", "poetry.json")

    def build(vocab_size=V):
        m = build_char_rnn(vocab_size, e, u, c["num_layers"], c["cell"], c["dropout"])
        return compile_model(m, c["learning_rate"], c["clipnorm"], 1000)

    def build_shipped():
        """As the shipped models were trained: keras.layers.RNN, and a bits-per-character metric that computes
        the softmax again."""
        with mock.patch.object(poetry_model, "ProjectedRNN", keras.layers.RNN):
            m = build()
        m.compile(optimizer=m.optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[RecomputedBitsPerChar()])
        return m

    flops = B * T * (8 * u * (e + u) + (c["num_layers"] - 1) * 8 * u * 2 * u + 2 * u * e + 2 * e * V)
    batch = (_ids(rng, V, (B, T)), _ids(rng, V, (B, T)), np.ones((B, T), np.float32))
    return ({"today": build_shipped, "new": build, "tiny_output": lambda: build(TINY_OUTPUT)}, batch, B * T, flops,
            f"batch {B} x {T} characters, vocabulary {V}")


def fill_case(rng):
    from rnn_apps.apps.fill.model import build
    from rnn_apps.apps.fill.task import compile_model

    c, V, B, T, e, u = _character_model_sizes("fill", "fill.json")

    def make(vocab_size=V):
        m = build(c["kind"], vocab_size, e, u, c["cell"], c["dropout"])
        return compile_model(m, c["learning_rate"], c["clipnorm"], 1000)

    dirs = 2 if c["kind"] == "bidirectional" else 1
    flops = B * T * (dirs * 8 * u * (e + u) + 2 * dirs * u * e + 2 * e * V)
    batch = (_ids(rng, V, (B, T)), _ids(rng, V, (B, T)), np.ones((B, T), np.float32))
    return ({"today": make, "new": make, "tiny_output": lambda: make(TINY_OUTPUT)}, batch, B * T, flops,
            f"batch {B} x {T} characters, vocabulary {V}, {c['kind']}")


def _sentiment_sizes():
    d = shipped_config("sentiment", "sentiment.json")
    return d, d["config"], len(d["vocabulary"]) + 2


def sentiment_classifier_case(rng):
    from rnn_apps.apps.sentiment.model import build_from_config
    from rnn_apps.apps.sentiment.task import compile_classifier

    d, c, V = _sentiment_sizes()
    B, T, e, u = c["batch_size"], c["max_len"], c["embedding_dim"], c["units"]

    def make():
        return compile_classifier(build_from_config(V, c), c["learning_rate"], c["clipnorm"], 1000,
                                  c["layer_lr_decay"])

    passes = 2 if c.get("adversarial", 0.0) else 1  # adversarial training: a second forward/backward pass
    flops = passes * B * T * 2 * 8 * u * (e + u)
    labels = rng.integers(0, 2, size=(B, 1)).astype(np.float32)
    batch = (_ids(rng, V, (B, T)), labels, np.ones((B,), np.float32))
    return make, batch, B * T, flops, f"batch {B} x {T} words, adversarial x{passes}"


def sentiment_lm_case(rng):
    from rnn_apps.apps.sentiment.model import BiLanguageModel, build_from_config
    from rnn_apps.apps.sentiment.task import compile_language_model

    d, c, V = _sentiment_sizes()
    T = c["lm_seq_len"]
    B = c["lm_tokens_per_batch"] // T
    e, u, S = c["embedding_dim"], c["units"], c["lm_num_sampled"]

    def make():
        lm = BiLanguageModel(build_from_config(V, c), num_sampled=S, seed=c["seed"])
        lm(np.zeros((1, 2), np.int32))
        return compile_language_model(lm, c["pretrain_learning_rate"], c["clipnorm"], 1000)

    flops = B * T * 2 * (8 * u * (e + u) + 2 * u * e + 2 * e * (S + 1))
    batch = (_ids(rng, V, (B, T)), _ids(rng, V, (B, T, 2)), np.ones((B, T, 2), np.float32))
    return make, batch, 2 * B * T, flops, f"batch {B} x {T} words, both directions, {S} sampled classes"


def translate_case(rng, source_len=12, target_len=16):
    from rnn_apps.apps.translate.model import build_model
    from rnn_apps.apps.translate.task import compile_model

    d = shipped_config("translate", "translate.json")
    c = d["config"]
    Vs = len(d["source_vocab"]["tokens"])
    Vt = len(d["target_vocab"]["tokens"])
    B, S, T = c["batch_size"], source_len, target_len
    e, ue, ud = c["embedding_dim"], c["encoder_units"], c["decoder_units"]

    def make():
        return compile_model(build_model(Vs, Vt, c), c["learning_rate"], c["clipnorm"], 1000)

    m = 2 * ue
    encoder = B * S * 2 * 8 * ue * (e + ue) * c["encoder_layers"]
    decoder = B * T * (8 * ud * (e + ud) + 2 * ud * m + 4 * S * m + 2 * (m + ud) * ud + 2 * ud * Vt)
    batch = ((_ids(rng, Vs, (B, S)), _ids(rng, Vt, (B, T))), _ids(rng, Vt, (B, T)), np.ones((B, T), np.float32))
    return make, batch, B * T, encoder + decoder, f"batch {B}, {S} source words -> {T} target characters"


def _output_in_every_step(decoder):
    """Make an ``AttentionDecoder`` run its output layer inside every step, as the shipped captioners were
    trained (``today``); the default runs it once over all steps after the recurrence."""
    from keras import ops

    def call(self, features, ids, training=False):
        memory, states = self.start(features, training)
        outs = []
        for t in range(ids.shape[1]):
            logits, states, _ = self.step(ids[:, t], states, memory, training)
            outs.append(logits)
        return ops.stack(outs, axis=1)

    decoder.call = types.MethodType(call, decoder)


def _caption_case(rng, app_dir: str):
    from rnn_apps.apps.caption.model import build_caption_model
    from rnn_apps.apps.caption.task import compile_model, feature_model

    d = shipped_config(app_dir, "caption.json")
    c = d["config"]
    V = len(d["vocab"]["tokens"])
    B, T, s = c["batch_size"], c["max_len"], c["image_size"]
    e, u, a, f = c["embedding_dim"], c["units"], c["attention_units"], c["feature_dim"]
    L = int(np.prod(d["grid"]))
    frozen = bool(c.get("backbone")) and not c.get("backbone_trainable")

    def make(today: bool):
        # A frozen backbone trains on its cached feature grids, so the step is the head and the decoder
        # (``feature_model``); the backbone's weights do not matter here.
        model = build_caption_model(V, {**c, "backbone_weights": "none"} if frozen else c, T)
        if today:
            _output_in_every_step(model.decoder)
        trainee = feature_model(model, c) if frozen else model
        return compile_model(trainee, c["learning_rate"], c["clipnorm"], 1000)

    out = 2 * (u + f) * e + 2 * e * V if c.get("output") == "tied" else 2 * (u + f) * V
    flops = B * T * (8 * u * (e + f + u) + 2 * u * a + 2 * L * a + 2 * L * f + out)
    if frozen:
        from rnn_apps.backbones import make_backbone  # its feature map's shape: the backbone alone, no weights

        grid = tuple(make_backbone(c["backbone"], s, "none").output.shape[1:])
        images = rng.random((B, *grid), dtype=np.float32).astype(np.float16)
        what = f"{grid[0]}x{grid[1]}x{grid[2]} cached feature grids"
    else:
        images = rng.random((B, s, s, 3), dtype=np.float32)
        what = f"{s}x{s} images (decoder FLOPs only)"
    batch = ((images, _ids(rng, V, (B, T))), _ids(rng, V, (B, T)), np.ones((B, T), np.float32))
    return ({"today": lambda: make(True), "new": lambda: make(False)}, batch, B * T, flops,
            f"batch {B} x {T} words, vocabulary {V}, {what}")


def caption_case(rng):
    """The photo captioner (``models/caption``): a frozen MobileNetV2, trained on its cached grids."""
    return _caption_case(rng, "caption")


def caption_shapes_case(rng):
    """The synthetic-shapes captioner (``models/caption-shapes``): a small CNN trained with the decoder."""
    return _caption_case(rng, "caption-shapes")


APPS = {
    "poem": poem_case,
    "sentiment-lm": sentiment_lm_case,
    "sentiment-classifier": sentiment_classifier_case,
    "translate": translate_case,
    "caption": caption_case,
    "caption-shapes": caption_shapes_case,
    "fill": fill_case,
}


def build_contender(kind: str, make, seed: int):
    keras.utils.set_random_seed(seed)
    with rnn_layer(kind):
        model = make()
    if kind == "xla":
        model.jit_compile = True
    if kind not in ("today", "projected", "xla", "keras", "float32_products"):
        # the training commands' default (--precision auto), as rnn_apps.apps.base.fit_run sets it; today's step and
        # the contenders that replace its layers keep float32
        precision.set_training_precision(model, precision.resolve("auto")[0])
    if kind == "unroll":  # read when the step is first traced, so it may be set after building
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.RNN):
                layer.unroll = True
    return model


def todays_cross_entropy():
    """``rnn_apps.losses`` with TensorFlow's fused cross-entropy kernel instead of the XLA-compiled one."""
    import tensorflow as tf

    def kernel(labels, logits):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    return mock.patch("rnn_apps.losses._compiled_cross_entropy", lambda: kernel)


def todays_batch_norm():
    """``rnn_apps.layers.BatchNormalization`` with Keras's own training step (reductions and element-wise
    operations) instead of TensorFlow's fused kernel."""
    from rnn_apps.layers.normalization import BatchNormalization

    return mock.patch.object(BatchNormalization, "_fused", lambda self, inputs, training, mask: False)


def todays_recurrence():
    """``rnn_apps.layers.lstm_sequence`` with its loops as a TensorFlow graph instead of an XLA computation."""
    from rnn_apps.layers import lstm_sequence as module

    return mock.patch.object(module, "_compiled_loops", lambda: (module._forward, module._backward))


def step(model, batch):
    x, y, w = batch
    model.train_on_batch(x, y, sample_weight=w)


def doubled(batch):
    """The batch twice over along the batch axis (the ``batch2x`` contender)."""
    def twice(a):
        return np.concatenate([a, a])

    return tuple(tuple(map(twice, part)) if isinstance(part, tuple) else twice(part) for part in batch)


def modulo(batch, n: int):
    """The batch with every id taken modulo ``n`` (the ``tiny_output`` contender's vocabulary)."""
    ids, labels, weights = batch
    return ids % n, labels % n, weights


def run_app(name: str, rounds: int, warmup: int, contenders=CONTENDERS, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    make, batch, tokens, flops, shape = APPS[name](rng)
    if callable(make):  # one builder: today's step is its model with keras.layers.RNN (see rnn_layer)
        make = {"today": make, "new": make}
    default = make.get("new", make["today"])
    kinds = [k for k in ("today", "new") if k in make]
    layerless = ("projected", "keras", "unroll", "tf_recurrence") if name.startswith("caption") else ()  # no RNN layer
    own = ("tiny_output",)  # contenders that only apps with a builder for them have
    kinds += [k for k in contenders if k not in ("today", "new", *layerless) and (k not in own or k in make)]
    models, failed = {}, {}
    scale = {k: 2 if k == "batch2x" else 1 for k in kinds}
    batches = {k: doubled(batch) if k == "batch2x" else modulo(batch, TINY_OUTPUT) if k == "tiny_output" else batch
               for k in kinds}
    for kind in kinds:
        try:
            # today's step computes the cross-entropy with TensorFlow's own kernel and batch normalization
            # as Keras does, as the shipped models were trained; the step is traced in the first step, so the
            # patches cover the warm-up
            with contextlib.ExitStack() as patches:
                if kind in ("today", "tf_cross_entropy"):
                    patches.enter_context(todays_cross_entropy())
                if kind == "today":
                    patches.enter_context(todays_batch_norm())
                if kind == "tf_recurrence":
                    patches.enter_context(todays_recurrence())
                models[kind] = build_contender(kind, make.get(kind, default), seed)
                for _ in range(warmup):
                    step(models[kind], batches[kind])
        except Exception as exc:  # a contender that cannot run this model (e.g. XLA and a dynamic shape)
            failed[kind] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            models.pop(kind, None)
    times = {k: [] for k in models}
    peaks = []
    order = list(models)
    for r in range(rounds):
        peaks.append(matmul_peak_gflops(repeats=3))  # the peak under this round's load
        for kind in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            step(models[kind], batches[kind])
            times[kind].append((time.perf_counter() - start) / scale[kind])  # seconds per batch of today's size
    peak = statistics.median(peaks)
    train_flops = 3 * flops
    result = {"app": name, "shape": shape, "peak_gflops": round(peak, 1), "rounds": rounds, "contenders": {}}
    for kind in models:
        med = statistics.median(times[kind])
        ratio = statistics.median(t / s for t, s in zip(times["today"], times[kind]))
        result["contenders"][kind] = {
            "seconds_per_step": round(med, 4),
            "tokens_per_second": round(tokens / med, 1),
            "speedup": round(ratio, 3),
            # the FLOPs counted are the app's own model's; tiny_output does fewer, so it has no share of the peak
            "fraction_of_peak": None if kind == "tiny_output" else round(train_flops / med / 1e9 / peak, 4),
        }
    for kind, why in failed.items():
        result["contenders"][kind] = {"failed": why}
    ok = {k: v for k, v in result["contenders"].items() if "speedup" in v}
    head = "new" if "new" in ok else "today"  # the app's default step now
    result.update(
        tokens_per_second=ok[head]["tokens_per_second"],
        baseline_tokens_per_second=ok["today"]["tokens_per_second"],
        speedup=ok[head]["speedup"],
        fraction_of_peak=ok[head]["fraction_of_peak"],
        baseline_fraction_of_peak=ok["today"]["fraction_of_peak"],
        fastest=max((k for k in ok if k != "tiny_output"), key=lambda k: ok[k]["speedup"]),  # a bound, not a step
    )
    return result


def run_in_own_process(name: str, args) -> dict:
    """:func:`run_app` for one app in a Python process of its own (this script with ``--app name --json``), as
    the app's training command runs; ``{"app": name, "failed": why}`` when that process fails.

    Timed in one process after other apps' models have run, an app's step can measure slower than alone
    (docs/cells.md, "bfloat16 products in training steps")."""
    import subprocess

    command = [sys.executable, os.path.abspath(__file__), "--app", name, "--rounds", str(args.rounds),
               "--warmup", str(args.warmup), "--json"]
    for kind in args.contender or ():
        command += ["--contender", kind]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"app": name, "failed": f"its process ended with exit status {done.returncode} (its errors above)"}
    return json.loads(lines[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="examples: python benchmarks/train.py --app poem --rounds 5 --json")
    parser.add_argument("--app", choices=sorted(APPS), action="append",
                        help="App to measure (repeatable; default: all).")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds of one step per contender (default 3).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps per contender first (default 2).")
    parser.add_argument("--contender", choices=CONTENDERS, action="append",
                        help="Contender to time against today's path (repeatable; default: all).")
    parser.add_argument("--json", action="store_true", help="One JSON object per app per line.")
    parser.add_argument("--one-process", action="store_true",
                        help="Time every app in this process (default: each app in a process of its own, as each "
                             "app's training command runs).")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 1:
        parser.error(f"--rounds and --warmup must be at least 1; received {args.rounds} and {args.warmup}.")
    names = args.app or list(APPS)
    for name in names:
        if len(names) > 1 and not args.one_process:
            result = run_in_own_process(name, args)
        else:
            result = run_app(name, args.rounds, args.warmup, args.contender or CONTENDERS)
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        if "failed" in result:
            print(f"\n{name}: failed: {result['failed']}", flush=True)
            continue
        print(f"\n{name}: {result['shape']}; float32 matrix-product peak {result['peak_gflops']:.0f} GFLOP/s")
        print(f"  {'contender':<11} {'s/step':>8} {'tokens/s':>10} {'x today':>8} {'of peak':>8}")
        for kind, v in result["contenders"].items():
            if "failed" in v:
                print(f"  {kind:<11} failed: {v['failed']}")
            else:
                share = "—" if v["fraction_of_peak"] is None else f"{100 * v['fraction_of_peak']:.1f}%"
                print(f"  {kind:<11} {v['seconds_per_step']:>8.3f} {v['tokens_per_second']:>10.0f} "
                      f"{v['speedup']:>8.2f} {share:>8}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
