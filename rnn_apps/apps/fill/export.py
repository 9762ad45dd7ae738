"""The fill-in-the-blank SavedModel: string in, filled text and candidates out, decoding in the graph.

Signatures (batch-first; loadable with plain ``tf.saved_model.load``, no rnn_apps needed):

* ``serving_default``: ``{"text": string[B]}`` -> ``{"text": string[B]`` (the input with every blank
  filled by its first candidate), ``"candidates": string[B, N, k]``, ``"probabilities": float32[B, N, k]``
  (N: the most blanks of a row, in text order; k: the model's default top-k, 5), ``"blanks": int32[B]``,
  ``"unknown": string[B]`` (characters the model does not know; read as ``<unk>``), ``"converted": bool[B]``
  (characters of the other script were converted)``}``. Rows with fewer blanks are padded with "" and 0.
* ``fill``: the same with ``{"text": string[B], "top_k": int32[]}``.

A blank is written □, ＿ or _. Inputs are normalised as the poem model's: whitespace removed, ？！?! → 。,
；;：:、, → ，, quotation marks dropped, and characters of the other script converted one by one with
OpenCC's table. Several blanks are filled one at a time, the most confident first (the highest top-1
probability among the open blanks), the network re-run with each chosen character in place; each blank's
candidates and probabilities are those of the pass that filled it. A blank is filled with a Chinese
character, never with ，。 (the probabilities are over the characters); a text that stops without ，。 is
read as if a 。 followed (a poem line's end), which the output does not show.

Both signatures refuse, with ``InvalidArgumentError`` and the command's words, what ``rnn-apps fill``
refuses (:mod:`rnn_apps.graph_limits`): more than 64 texts, a text of more than 512 characters, an empty
one, one without a blank or with more than 64, one of blanks only, ``top_k`` outside 1 to 50.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from rnn_apps import chinese, graph_limits, limits
from rnn_apps.apps.base import assign_weights, read_export, read_meta, save_module
from rnn_apps.apps.fill import data as fdata
from rnn_apps.vocab import Vocabulary

CONFIG_NAME = "fill.json"
FORMAT = "rnn_apps.fill/1"
DEFAULT_TOP_K = 5
LIMITS = limits.APPS["fill"]  # checked in the graph too (rnn_apps.graph_limits), as the command checks them


class FillModule(tf.Module):
    """The fill model's weights and the in-graph decoding."""

    def __init__(self, model, vocab: Vocabulary, config: dict, default_top_k: int = DEFAULT_TOP_K):
        super().__init__(name="fill_model")
        fdata.check_vocab(vocab)
        self.model_weights = list(model.weights)  # the model itself is not held: it may track its optimizer
        # The network up to the context vectors; the tied head is applied at the blanks only.
        self._features = keras.Model(model.inputs, model.get_layer("dropout_out").output)
        self._head = model.get_layer("logits")
        tokens = list(vocab.tokens)
        V = len(tokens)
        self.vocab_size = V
        self.default_top_k = int(default_top_k)
        self._out_tokens = tf.constant(["" if i <= fdata.MASK_ID else t for i, t in enumerate(tokens)])
        first = fdata.MASK_ID + 1
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tokens[first:]), tf.range(first, V, dtype=tf.int32)), -1
        )
        self._conv = chinese.conversion_table(config.get("script", "simplified"), vocab)
        self._period_id = tf.constant(vocab.encode([chinese.PERIOD])[0], tf.int32)
        self._allowed = tf.constant(np.where(fdata.blank_ids(vocab), 0.0, -1e9).astype(np.float32))
        self.config = dict(config)

    # ------------------------------------------------------------------ text -> ids
    def _chars(self, text):
        return chinese.normalize_graph(text, self._conv)

    def probabilities(self, ids, positions):
        """p(x_t | context) at ``positions`` [B, N] of ``ids`` [B, T], special tokens excluded: [B, N, V]."""
        c = tf.gather(self._features(ids, training=False), positions, batch_dims=1)
        return tf.nn.softmax(self._head(c) + self._allowed, axis=-1)

    # ------------------------------------------------------------------ decoding
    def _fill(self, text, top_k):
        k = tf.clip_by_value(top_k, 1, self.vocab_size - fdata.MASK_ID - 1)
        chars, converted = self._chars(text)
        flat = chars.flat_values
        is_blank = tf.zeros_like(flat, tf.bool)
        for b in fdata.BLANKS:
            is_blank = is_blank | (flat == b)
        raw = self._table.lookup(flat)
        ids_flat = tf.where(is_blank, fdata.MASK_ID, tf.where(raw < 0, Vocabulary.unk_id, raw))
        unknown_mask = chars.with_flat_values((raw < 0) & ~is_blank)
        unknown = tf.strings.reduce_join(tf.ragged.boolean_mask(chars, unknown_mask), axis=1)
        ids = chars.with_flat_values(ids_flat)
        B = tf.shape(text)[0]
        bos = tf.fill([B, 1], Vocabulary.bos_id)
        eos = tf.fill([B, 1], Vocabulary.eos_id)
        # A text that stops without ，。 ("白日依山□") is read as a line that ends there: the model learned that
        # a poem's last character is followed by 。 and then <eos>, never <eos> at once (it filled 兮 97.9 %).
        # The 。 is read, not written: the output text is cut at the input's length.
        last = tf.gather(chars.flat_values, tf.maximum(chars.row_limits() - 1, 0))
        open_end = ~((last == chinese.COMMA) | (last == chinese.PERIOD))
        end = tf.ragged.boolean_mask(tf.fill([B, 1], self._period_id), open_end[:, None])
        seq = tf.concat([bos, ids, end, eos], axis=1).to_tensor(0)  # [B, T]
        T = tf.shape(seq)[1]
        blank_r = chars.with_flat_values(is_blank)
        # Positions (in seq, i.e. +1 for <bos>) of each row's blanks, in text order; -1 pads.
        pos_r = tf.ragged.boolean_mask(
            chars.with_flat_values(tf.cast(tf.ragged.range(chars.row_lengths()).flat_values, tf.int32) + 1), blank_r
        )
        n_blanks = tf.cast(pos_r.row_lengths(), tf.int32)
        pos = pos_r.to_tensor(-1)  # [B, N]
        N = tf.shape(pos)[1]
        safe_pos = tf.maximum(pos, 0)

        def body(i, seq, open_, cand, prob):
            pb = self.probabilities(seq, safe_pos)  # [B, N, V]
            best = tf.where(open_, tf.reduce_max(pb, axis=-1), -1.0)
            j = tf.argmax(best, axis=1, output_type=tf.int32)  # the most confident open blank of each row
            active = tf.reduce_any(open_, axis=1)
            pj = tf.gather(pb, j, batch_dims=1)  # [B, V]
            vals, idx = tf.math.top_k(pj, k)
            sel = tf.one_hot(j, N, on_value=True, off_value=False) & active[:, None]
            cand = tf.where(sel[:, :, None], idx[:, None, :], cand)
            prob = tf.where(sel[:, :, None], vals[:, None, :], prob)
            at = tf.gather(safe_pos, j, batch_dims=1)
            put = tf.one_hot(at, T, on_value=True, off_value=False) & active[:, None]
            seq = tf.where(put, idx[:, :1], seq)
            return i + 1, seq, open_ & ~sel, cand, prob

        start = (tf.constant(0), seq, pos >= 0, tf.zeros([B, N, k], tf.int32), tf.zeros([B, N, k], tf.float32))
        _, seq, _, cand, prob = tf.while_loop(lambda i, *_: i < N, body, start, maximum_iterations=N)
        filled = tf.RaggedTensor.from_tensor(seq[:, 1:], lengths=chars.row_lengths())
        out_flat = tf.where(is_blank, tf.gather(self._out_tokens, filled.flat_values), flat)
        return {
            "text": tf.strings.reduce_join(chars.with_flat_values(out_flat), axis=1),
            "candidates": tf.where(prob > 0, tf.gather(self._out_tokens, cand), ""),
            "probabilities": prob,
            "blanks": n_blanks,
            "unknown": unknown,
            "converted": tf.reduce_any(converted, axis=1),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serving_default(self, text):
        return self._fill(graph_limits.checked(LIMITS, text=text)["text"], tf.constant(self.default_top_k))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([], tf.int32, name="top_k")])
    def fill(self, text, top_k):
        return self._fill(**graph_limits.checked(LIMITS, text=text, top_k=top_k))


def export_fill(model, vocab: Vocabulary, config: dict, app_dir: str, version=None, card: dict | None = None) -> str:
    """Export a fill model (bidirectional or forward-only) to ``app_dir/<version>`` atomically."""
    module = FillModule(model, vocab, config)
    signatures = {"serving_default": module.serving_default, "fill": module.fill}
    meta = {"format": FORMAT, "config": config, "vocab": vocab.to_json(), **(card or {})}
    return save_module(module, signatures, app_dir, version, CONFIG_NAME, meta)


def export_result(result, app_dir: str, version=None, card: dict | None = None) -> str:
    """Export what :func:`rnn_apps.apps.fill.task.train` returned, with its figures (``card``: more facts)."""
    summary = {k: result.get(k) for k in ("step", "val_accuracy", "val_loss", "stats", "seconds")}
    return export_fill(result["model"], result["vocab"], result["config"], app_dir, version,
                       card={"summary": summary, **(card or {})})


def load_config(model_dir: str) -> dict:
    """The settings, vocabulary and card of an exported fill model (``assets.extra/fill.json``)."""
    return read_meta(model_dir, CONFIG_NAME, "fill")


def export_again(from_model: str, app_dir: str, version=None) -> str:
    """Export the weights of the exported model ``from_model`` again, with this version's graph (e.g. to gain
    the input limits checked in the graph), to ``app_dir/<version>``; its settings and figures are kept.
    Returns the version directory."""
    from rnn_apps.apps.fill.model import build

    model_dir, meta, _, weights = read_export(from_model, load_config)
    cfg, vocab = meta["config"], Vocabulary.from_json(meta["vocab"], model_dir)
    model = build(cfg["kind"], len(vocab), cfg["embedding_dim"], cfg["units"], cfg["cell"], cfg["dropout"])
    model.build((None, None))
    assign_weights(model.weights, weights, model_dir)
    card = {k: v for k, v in meta.items() if k not in ("format", "config", "vocab")}
    return export_fill(model, vocab, cfg, app_dir, version, card=card)
