"""Train the fill-in-the-blank model or its forward-only baseline on an accelerator with Keras 3 on JAX, and
export the result here with TensorFlow.

The network is :mod:`rnn_apps.apps.fill.model`'s, built from Keras's built-in layers with the same weights in
the same order: the embedding, ``Bidirectional(LSTM)`` for the :class:`~rnn_apps.layers.DeepBidirectionalRNN`
layer (forward cell, then backward cell; one ``LSTM`` for the forward-only baseline), the shift that gives
position t the forward state at t−1 and the backward state at t+1, and the projection of the logits tied to
the embedding. The schedule and loop are :mod:`rnn_apps.train_jax`'s. Three steps::

    # here (TensorFlow): the encoded poems with a model's split and vocabulary, and its weights
    python -m rnn_apps.apps.fill.train_jax prepare --model models/fill/10 \\
        --data ../shared/data/tang-poems.jsonl.gz --out gpu/fill
    # on the accelerator (only NumPy, JAX and Keras are needed); --init continues the prepared model
    KERAS_BACKEND=jax python -m rnn_apps.apps.fill.train_jax train --data gpu/fill/data.npz \\
        --kind forward --learning-rate 3e-3 --budget 400 --name fw --out out
    # here again: the SavedModel, and a run directory for its card (rnn-apps card fill -i run_dir=...)
    python -m rnn_apps.apps.fill.train_jax export --weights out/fw.npz --history out/fw.json \\
        --like models/fill/10 --data ../shared/data/tang-poems.jsonl.gz --export runs/fill-fw/models/fill \\
        --run-dir runs/fill-fw --trained-on "one NVIDIA H200 GPU (Keras 3 on JAX)"

As in ``rnn-apps train fill``, about ``mask_rate`` of the predicted characters of a training batch are
replaced by ``<mask>`` at the input (drawn anew every epoch; the validation batches' once, seeded), and the
predicted positions are the characters and ，。 (not ``<unk>``, the bookends or padding). The loss is the mean
cross-entropy of those positions.
"""

from __future__ import annotations

import json
import os

import numpy as np

# fill's data module needs only NumPy (the accelerator has no TensorFlow)
from rnn_apps.apps.fill.data import MASK_ID, mask_inputs
from rnn_apps.train_jax import (bucketed, command_parser, fit, load_weights, named_weights, pack, pieces,
                                run_step, tied_logits, write_run_record)

BUCKETS = (32, 64, 129)  # pieces are <bos> up to 128 characters <eos>
KINDS = ("bidirectional", "forward")


def weight_keys(kind: str) -> tuple:
    """The names of the fill model's weights in ``model.weights`` order (``rnn_apps.apps.fill.model``)."""
    cell = ("kernel", "recurrent_kernel", "bias")
    if kind == "bidirectional":
        rnn = [f"birnn/bidirectional_0/{d}_rnn_0/lstm_cell/{w}" for d in ("forward", "backward") for w in cell]
    elif kind == "forward":
        rnn = [f"rnn/lstm_cell/{w}" for w in cell]
    else:
        raise ValueError(f"kind must be one of {KINDS}; received {kind!r}.")
    return ("embedding/embeddings", *rnn, "logits/projection")


def build_model(kind: str, vocab_size: int, embedding_dim: int = 128, units: int = 256, dropout: float = 0.1):
    """The fill network of ``kind`` from Keras's built-in layers, on any backend (see the module docstring)."""
    import keras

    class Context(keras.layers.Layer):
        """``[f_{t-1} ; b_{t+1}]`` of the halves of a bidirectional output (``f_{t-1}`` of a forward one)."""

        def call(self, h):
            ops = keras.ops
            left = ops.pad(h[:, :-1, :units], [[0, 0], [1, 0], [0, 0]])
            if kind == "forward":
                return left
            return ops.concatenate([left, ops.pad(h[:, 1:, units:], [[0, 0], [0, 1], [0, 0]])], axis=-1)

        def compute_mask(self, inputs, mask=None):
            return None

    weight_keys(kind)  # checks kind
    ids = keras.Input((None,), dtype="int32")
    emb = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")
    x = keras.layers.Dropout(dropout)(emb(ids))
    lstm = keras.layers.LSTM(units, return_sequences=True)
    h = keras.layers.Bidirectional(lstm, merge_mode="concat")(x) if kind == "bidirectional" else lstm(x)
    c = keras.layers.Dropout(dropout)(Context()(h))
    return keras.Model(ids, tied_logits(emb, embedding_dim)(c))


def batches(seqs: list, tokens: int, mask_rate: float, rng: np.random.Generator, shuffle: bool = True) -> list:
    """(inputs, targets, weights) of fixed shapes (pieces bucketed by length, ``tokens // T`` rows); about
    ``mask_rate`` of the predicted positions of the inputs replaced by ``<mask>``, drawn from ``rng``."""
    out = []
    for T, ix in bucketed([len(s) for s in seqs], BUCKETS, tokens, rng if shuffle else None):
        y = np.zeros((max(1, tokens // T), T), np.int32)
        for r, j in enumerate(ix):
            y[r, :len(seqs[j])] = seqs[j]
        w = (y > MASK_ID).astype(np.float32)
        out.append((mask_inputs(y, w, mask_rate, rng).astype(np.int32), y, w))
    return out


# ------------------------------------------------------------------------------------------ here: TensorFlow
def prepare(model_dir: str, data: str, out: str) -> dict:
    """Write ``out/data.npz`` (the training and validation pieces, encoded with the model's vocabulary and
    split as its training run split them, and its settings) and ``out/init.npz`` (its weights); return the
    corpus stats."""
    from rnn_apps.apps.fill.task import prepare_corpus, read_base_model

    base = read_base_model(model_dir)
    cfg, vocab = base["config"], base["vocab"]
    _, _, _, train, val, stats = prepare_corpus(data, cfg, vocab)
    os.makedirs(out, exist_ok=True)
    (tf_, tl), (vf, vl) = pack(train), pack(val)
    np.savez(os.path.join(out, "data.npz"), train=tf_, train_len=tl, val=vf, val_len=vl, vocab_size=len(vocab),
             kind=cfg["kind"], embedding_dim=cfg["embedding_dim"], units=cfg["units"], mask_rate=cfg["mask_rate"])
    np.savez(os.path.join(out, "init.npz"), **named_weights(base["weights"], weight_keys(cfg["kind"])))
    return stats


def export(weights: str, history: str, like: str, data: str, app_dir: str, run_dir: str, trained_on: str,
           version=None) -> str:
    """Export the trained ``weights`` with the vocabulary and settings of the model ``like`` (the model that
    ``prepare`` read; the kind is the run's), and write ``run_dir`` (config and history) for the card;
    returns the version directory."""
    from rnn_apps.apps.fill.export import export_fill
    from rnn_apps.apps.fill.model import build
    from rnn_apps.apps.fill.task import prepare_corpus, read_base_model
    from rnn_apps.training import check_new_run

    check_new_run(run_dir, resume=False)  # before the model and the corpus are read, not after
    with open(history, encoding="utf-8") as f:
        run = json.load(f)
    args = run["args"]
    base = read_base_model(like)
    vocab = base["vocab"]
    cfg = dict(base["config"], kind=args["kind"], dropout=args["dropout"], learning_rate=args["learning_rate"],
               tokens_per_batch=args["tokens"])
    model = build(cfg["kind"], len(vocab), cfg["embedding_dim"], cfg["units"], cfg["cell"], cfg["dropout"])
    model.build((None, None))
    model.set_weights(load_weights(weights, weight_keys(cfg["kind"])))
    _, _, _, _, _, stats = prepare_corpus(data, cfg, vocab)
    write_run_record(run_dir, {"settings": cfg, "data": os.path.abspath(data), "stats": stats,
                               "init_from": os.path.abspath(like) if args.get("init") else None,
                               "epochs": len(run["history"]), "trained_on": trained_on,
                               "recipe": "rnn_apps/apps/fill/train_jax.py", "clipping": "global"},
                     run["history"][:run["epoch"]],  # up to the epoch kept
                     {"loss": "train_ce", "accuracy": "train_accuracy", "val_loss": "val_ce",
                      "val_accuracy": "val_accuracy"})
    return export_fill(model, vocab, cfg, app_dir, version)


# ------------------------------------------------------------------------------------------ there: JAX
def train(data: str, out: str, name: str, kind: str = "", init: str = "", dropout: float = 0.1,
          peak_lr: float = 3e-3, tokens: int = 8192, budget: float = 420.0, max_epochs: int = 200,
          seed: int = 1234) -> dict:
    """Train on the JAX backend (:func:`rnn_apps.train_jax.fit`); keep ``out/<name>.npz`` and ``out/<name>.json``.

    ``kind``: the prepared model's kind if empty; ``init`` (the prepared weights) needs that kind.
    """
    import keras

    d = np.load(data)
    kind = kind or str(d["kind"])
    if init and kind != str(d["kind"]):
        raise ValueError(f"--init holds a {d['kind']} model's weights; received --kind {kind}")
    keras.utils.set_random_seed(seed)
    model = build_model(kind, int(d["vocab_size"]), int(d["embedding_dim"]), int(d["units"]), dropout)
    rate = float(d["mask_rate"])
    train_seqs = pieces(d["train"], d["train_len"])
    val_batches = batches(pieces(d["val"], d["val_len"]), tokens, rate, np.random.default_rng([seed, 7]),
                          shuffle=False)
    args = {"kind": kind, "dropout": dropout, "learning_rate": peak_lr, "tokens": tokens, "init": init,
            "seed": seed, "mask_rate": rate}
    return fit(model, weight_keys(kind), lambda rng: batches(train_seqs, tokens, rate, rng), val_batches, out=out,
               name=name, peak_lr=peak_lr, budget=budget, max_epochs=max_epochs, seed=seed, args=args,
               init=init or None)


def main(argv=None) -> None:
    ap, t = command_parser("python -m rnn_apps.apps.fill.train_jax", __doc__, "fill", 3e-3, 8192)
    t.add_argument("--kind", choices=KINDS, default="", help="default: the prepared model's")
    run_step(lambda: _run(ap.parse_args(argv)))


def _run(a) -> None:
    if a.step == "prepare":
        print(json.dumps(prepare(a.model, a.data, a.out)))
    elif a.step == "train":
        r = train(a.data, a.out, a.name, a.kind, a.init, a.dropout, a.learning_rate, a.tokens, a.budget,
                  a.max_epochs, a.seed)
        print(f"[{a.name}] best validation cross-entropy {r['best_val_ce']:.4f}")
    else:
        print(export(a.weights, a.history, a.like, a.data, a.export, a.run_dir, a.trained_on, a.version))


if __name__ == "__main__":
    main()
