"""Train the poem Char-RNN on an accelerator with Keras 3 on JAX, and export the result here with TensorFlow.

The package's training (``rnn-apps train|fine-tune poetry``) runs on TensorFlow, which a GPU machine may not
have. This module trains the same network (the layout of :func:`rnn_apps.apps.poetry.model.build_char_rnn`:
embedding, two LSTM layers, a projection and logits tied to the embedding) with Keras's built-in ``LSTM``
layer, whose weights are laid out as ``rnn_apps.cells.LSTMCell``'s (kernel, recurrent kernel and bias with the
gates in the order i, f, c, o), so the weights move between the two unchanged. Three steps::

    # here (TensorFlow): the encoded corpus, with the shipped model's split and vocabulary, and its weights
    python -m rnn_apps.apps.poetry.train_jax prepare --model models/poetry/13 \\
        --data ../shared/data/tang-poems.jsonl.gz --out gpu
    # on the accelerator (Keras 3 on JAX; only NumPy, JAX and Keras are needed)
    KERAS_BACKEND=jax python -m rnn_apps.apps.poetry.train_jax train --data gpu/data.npz \\
        --init gpu/init.npz --dropout 0.25 --learning-rate 3e-3 --budget 330 --name h25 --out out
    # here again: the SavedModel, and a run directory for its card (rnn-apps card poetry -i run_dir=...)
    python -m rnn_apps.apps.poetry.train_jax export --weights out/h25.npz --history out/h25.json \\
        --like models/poetry/13 --data ../shared/data/tang-poems.jsonl.gz --export models/poetry \\
        --run-dir runs/poem-v10 --trained-on "one NVIDIA H200 GPU (Keras 3 on JAX)"

Training: Adam with 150 warm-up steps, then a cosine decay to 5 % of the peak learning rate, the gradients
clipped to a global norm of 1; batches of ``--tokens`` target characters, pieces bucketed by length into
32, 64 and 128 characters (fixed shapes, so the step compiles three times); dropout on the embedding and
after each LSTM layer. The number of epochs is planned from the second epoch's duration to fit
``--budget`` seconds; the weights of the epoch with the lowest validation bits per character are kept.
"""

from __future__ import annotations

import json
import os

import numpy as np

from rnn_apps.train_jax import (WARMUP_STEPS, bucketed, command_parser, fit, learning_rate,  # noqa: F401
                                load_weights, named_weights, pack, pieces, run_step, tied_logits,
                                write_run_record)

# The weights of build_char_rnn in model.weights order (their .npz keys: rnn_apps.train_jax.file_key).
WEIGHT_KEYS = ("embedding/embeddings", "rnn_1/lstm_cell/kernel", "rnn_1/lstm_cell/recurrent_kernel",
               "rnn_1/lstm_cell/bias", "rnn_2/lstm_cell_1/kernel", "rnn_2/lstm_cell_1/recurrent_kernel",
               "rnn_2/lstm_cell_1/bias", "logits/projection")
BUCKETS = (32, 64, 128)


def build_model(vocab_size: int, embedding_dim: int = 256, units: int = 512, dropout: float = 0.1):
    """The Char-RNN of ``build_char_rnn`` (two LSTM layers) from Keras's built-in ``LSTM`` layer, on any backend."""
    import keras

    ids = keras.Input((None,), dtype="int32")
    emb = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
    x = keras.layers.Dropout(dropout)(emb(ids))
    for i in (1, 2):
        x = keras.layers.LSTM(units, return_sequences=True, name=f"rnn_{i}")(x)
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(ids, tied_logits(emb, embedding_dim)(x))


def batches(seqs: list, tokens: int, rng=None) -> list:
    """(inputs, targets, weights) of fixed shapes: a piece of at most T targets goes to bucket T, a batch has
    ``tokens // T`` rows (the last of a bucket filled with empty rows of weight 0); shuffled with ``rng``."""
    out = []
    for T, ix in bucketed([len(s) - 1 for s in seqs], BUCKETS, tokens, rng):
        x = np.zeros((tokens // T, T), np.int32)
        y = np.zeros((tokens // T, T), np.int32)
        for r, j in enumerate(ix):
            s = seqs[j]
            x[r, :len(s) - 1] = s[:-1]
            y[r, :len(s) - 1] = s[1:]
        out.append((x, y, (y != 0).astype(np.float32)))
    return out


# ------------------------------------------------------------------------------------------ here: TensorFlow
def prepare(model_dir: str, data: str, out: str) -> dict:
    """Write ``out/data.npz`` (the training and validation pieces, encoded with the model's vocabulary and
    split as its training run split them) and ``out/init.npz`` (its weights); return the corpus stats."""
    from rnn_apps.apps.poetry import export as pexport
    from rnn_apps.apps.poetry.task import prepare_corpus

    model, vocab, cfg = pexport.rebuild_from_export(model_dir)
    _, train, val, stats = prepare_corpus(data, cfg, vocab)
    os.makedirs(out, exist_ok=True)
    (tf_, tl), (vf, vl) = pack(train), pack(val)
    np.savez(os.path.join(out, "data.npz"), train=tf_, train_len=tl, val=vf, val_len=vl,
             vocab_size=len(vocab), embedding_dim=cfg["embedding_dim"], units=cfg["units"])
    np.savez(os.path.join(out, "init.npz"), **named_weights(model.weights, WEIGHT_KEYS))
    return stats


def export(weights: str, history: str, like: str, data: str, app_dir: str, run_dir: str, trained_on: str,
           version=None) -> str:
    """Export the trained ``weights`` with the vocabulary and settings of the model ``like`` (whose weights the
    training started from), and write ``run_dir`` (config and history) for the card; returns the version dir."""
    from rnn_apps.apps.poetry import export as pexport
    from rnn_apps.apps.poetry.task import prepare_corpus
    from rnn_apps.training import check_new_run

    check_new_run(run_dir, resume=False)  # before the model and the corpus are read, not after
    model, vocab, cfg = pexport.rebuild_from_export(like)
    model.set_weights(load_weights(weights, WEIGHT_KEYS))
    with open(history, encoding="utf-8") as f:
        run = json.load(f)
    args = run["args"]
    cfg = dict(cfg, dropout=args["dropout"], learning_rate=args["learning_rate"], tokens_per_batch=args["tokens"])
    _, _, _, stats = prepare_corpus(data, cfg, vocab)
    write_run_record(run_dir, {"settings": cfg, "data": os.path.abspath(data), "stats": stats,
                               "init_from": os.path.abspath(like), "trained_on": trained_on,
                               "recipe": "rnn_apps/apps/poetry/train_jax.py", "clipping": "global"},
                     run["history"], {"bits_per_char": "train_bpc", "val_bits_per_char": "val_bpc"})
    return pexport.export_poetry(model, vocab, cfg, app_dir, version)


# ------------------------------------------------------------------------------------------ there: JAX
def train(data: str, out: str, name: str, init: str = "", dropout: float = 0.1, peak_lr: float = 2e-3,
          tokens: int = 16384, budget: float = 420.0, max_epochs: int = 200, seed: int = 1234) -> dict:
    """Train on the JAX backend (:func:`rnn_apps.train_jax.fit`); keep ``out/<name>.npz`` and ``out/<name>.json``."""
    import keras

    d = np.load(data)
    keras.utils.set_random_seed(seed)
    model = build_model(int(d["vocab_size"]), int(d["embedding_dim"]), int(d["units"]), dropout)
    train_seqs, val_batches = pieces(d["train"], d["train_len"]), batches(pieces(d["val"], d["val_len"]), tokens)
    args = {"dropout": dropout, "learning_rate": peak_lr, "tokens": tokens, "init": init, "seed": seed}
    return fit(model, WEIGHT_KEYS, lambda rng: batches(train_seqs, tokens, rng), val_batches, out=out, name=name,
               peak_lr=peak_lr, budget=budget, max_epochs=max_epochs, seed=seed, args=args, init=init or None)


def main(argv=None) -> None:
    ap, _ = command_parser("python -m rnn_apps.apps.poetry.train_jax", __doc__, "poem", 2e-3, 16384)
    run_step(lambda: _run(ap.parse_args(argv)))


def _run(a) -> None:
    if a.step == "prepare":
        print(json.dumps(prepare(a.model, a.data, a.out)))
    elif a.step == "train":
        r = train(a.data, a.out, a.name, a.init, a.dropout, a.learning_rate, a.tokens, a.budget, a.max_epochs, a.seed)
        print(f"[{a.name}] best validation bits/char {r['best_val_bpc']:.4f}")
    else:
        print(export(a.weights, a.history, a.like, a.data, a.export, a.run_dir, a.trained_on, a.version))


if __name__ == "__main__":
    main()
