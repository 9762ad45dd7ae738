"""The poem model's SavedModel: string in, poem out, with the whole sampling loop in the graph.

Signatures (all batch-first, loadable with plain ``tf.saved_model.load``, no rnn_apps needed):

* ``serving_default``: ``{"prompt": string[B]}`` -> ``{"text": string[B]}``; free form, default sampling.
* ``generate``: ``{"prompt", "form", "acrostic": string[B], "temperature": float32[B], "top_k": int32[B],
  "top_p": float32[B], "seed": int64[B], "max_length": int32[B]}`` -> ``{"text": string[B],
  "characters": int32[B]}``. ``form`` is one of "", "wujue", "qijue", "wulv", "qilv"; an acrostic without a
  form writes lines of seven characters, one per acrostic character (rounded up to an even count).
* ``score``: ``{"text": string[B]}`` -> ``{"log_probability": float32[B]`` (natural log of the poem and
  its end), ``"characters": int32[B], "bits_per_char": float32[B], "unknown_characters": int32[B]}``;
  characters outside the vocabulary are scored as ``<unk>`` (as in training) and counted.
* ``unknown_characters``: ``{"text": string[B]}`` -> ``{"unknown": string[B]}`` (the characters of each
  input the model does not know, after script conversion; empty when all are known).

Inputs are normalised in the graph as in training: whitespace removed, ASCII and other punctuation mapped
to ，/。, and characters of the other script converted character by character with OpenCC's table.
"""

from __future__ import annotations


import numpy as np
import tensorflow as tf

from rnn_apps import export as shared_export
from rnn_apps import samplers, textio
from rnn_apps.apps.poetry import data as pdata
from rnn_apps.apps.poetry.constants import (  # noqa: F401  (re-exported: the names' historical home)
    CONFIG_NAME,
    DEFAULT_SAMPLING,
    FORM_NAMES,
    FORMS,
    MAX_INPUT_CHARS,
    MAX_LENGTH,
    load_config,
)
from rnn_apps.vocab import Vocabulary

XLA_MAX_BATCH = 8  # batches up to this size decode XLA-compiled (see PoemModule._decode_any)


def normalize_chars(text, conversion_table):
    """Poem text [B] -> (characters, converted): ragged [B, None] strings and bools, in the graph.

    Whitespace and quotes dropped, ？！?!… and . to 。, ；;：:、, to ，, then each character looked up in
    ``conversion_table`` (a ``tf.lookup`` table from a character to its form in the model's script, ""
    when it has none); ``converted`` marks the characters it changed. Shared by the poem and fill-in
    models (and mirrored in NumPy by :mod:`rnn_apps.apps.poetry.fast`).
    """
    t = tf.strings.regex_replace(text, r"\s+", "")
    t = tf.strings.regex_replace(t, r"[？！?!…]+|\.", "。")
    t = tf.strings.regex_replace(t, r"[；;：:、,]", "，")
    t = tf.strings.regex_replace(t, r"[「」『』《》〈〉“”‘’\"']", "")
    chars = tf.strings.unicode_split(t, "UTF-8", errors="replace")
    flat = chars.flat_values
    conv = conversion_table.lookup(flat)
    return chars.with_flat_values(tf.where(conv != "", conv, flat)), chars.with_flat_values(conv != "")


class PoemModule(tf.Module):
    """A ``tf.Module`` holding the Char-RNN's weights and the in-graph generation and scoring functions."""

    def __init__(self, model, vocab: Vocabulary, config: dict, jit_compile: bool = True):
        super().__init__(name="poem_model")
        self.jit_compile = jit_compile
        self.model = model
        self.model_weights = list(model.weights)  # order of model.weights, for fine-tuning
        self._emb = model.get_layer("embedding")
        self._cells = [model.get_layer(f"rnn_{i}").cell for i in range(1, config["num_layers"] + 1)]
        self._head = model.get_layer("logits")
        V = len(vocab)
        self.vocab_size = V
        tokens = list(vocab.tokens)
        self._tokens = tf.constant(tokens)
        self._out_tokens = tf.constant(["" if i < 4 else t for i, t in enumerate(tokens)])
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tokens[4:]), tf.range(4, V, dtype=tf.int32)), -1
        )
        conv = textio.opencc_char_table(config.get("script", "simplified"), vocab)
        keys = list(conv) or ["\u0000"]
        vals = [conv[k] for k in conv] or ["\u0000"]
        self._conv = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(vals)), "")
        forms = list(FORMS)
        self._form_n = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(forms), tf.constant([FORMS[f][0] for f in forms], tf.int32)), -1
        )
        self._form_m = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(forms), tf.constant([FORMS[f][1] for f in forms], tf.int32)), -1
        )
        content = np.array([i >= 4 and pdata.is_han(t) for i, t in enumerate(tokens)])
        self._content = tf.constant(content)
        free = np.ones(V, bool)
        free[[vocab.pad_id, vocab.unk_id, vocab.bos_id]] = False
        self.comma_id = vocab.index[pdata.COMMA]
        self.period_id = vocab.index[pdata.PERIOD]
        punct = np.zeros(V, bool)
        punct[[self.comma_id, self.period_id]] = True
        eos = np.zeros(V, bool)
        eos[vocab.eos_id] = True
        comma = np.zeros(V, bool)
        comma[self.comma_id] = True
        allowed = np.stack([content, free & ~punct & ~eos, free & ~punct, free & ~eos, free & ~eos & ~comma])
        self._mask_table = tf.constant(np.where(allowed, 0.0, samplers.NEG_INF).astype(np.float32))
        self.config = dict(config)

    # ---------------------------------------------------------------- text <-> ids
    def _chars(self, text):
        return normalize_chars(text, self._conv)[0]

    def _unknown(self, chars):
        ids = self._table.lookup(chars.flat_values)
        bad = chars.with_flat_values(ids < 0)
        return tf.strings.reduce_join(tf.ragged.boolean_mask(chars, bad), axis=1)

    def _ids(self, chars, what, checks):
        """Ids of ``chars``; appends to ``checks`` an assertion that every character is known."""
        unknown = self._unknown(chars)
        checks.append(
            tf.debugging.Assert(
                tf.reduce_all(unknown == ""), [f"{what} has characters the model does not know:", unknown], summarize=8
            )
        )
        ids = self._table.lookup(chars.flat_values)
        return chars.with_flat_values(tf.where(ids < 0, Vocabulary.unk_id, ids))

    # ---------------------------------------------------------------- one step of the network
    def _step(self, prev, states):
        x = tf.gather(self._emb.embeddings, prev)
        new_states = []
        for cell, s in zip(self._cells, states):
            x, s = cell(x, list(s), training=False)
            new_states.append(tuple(s))
        return self._head(x), new_states

    def _zero_states(self, batch):
        out = []
        for cell in self._cells:
            sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
            out.append(tuple(tf.zeros([batch, s]) for s in sizes))
        return out

    # ---------------------------------------------------------------- the plan of each row
    def _plan(self, prompt, form, acrostic, max_length):
        """Per-row decoding plan [B, T]: id >= 0 forced, -1 a Han character, -2 free; and row facts."""
        checks = []
        n = self._form_n.lookup(form)
        m = self._form_m.lookup(form)
        checks.append(tf.debugging.Assert(
            tf.reduce_all(n >= 0), ["form must be one of '', wujue, qijue, wulv, qilv; received:", form], summarize=8
        ))
        n = tf.maximum(n, 0)
        m = tf.maximum(m, 0)
        p_ids = self._ids(self._chars(prompt), "The start", checks)
        a_ids = self._ids(self._chars(acrostic), "The acrostic", checks)
        a_ids = tf.ragged.boolean_mask(a_ids, a_ids.with_flat_values(tf.gather(self._content, a_ids.flat_values)))
        a_len = tf.cast(a_ids.row_lengths(), tf.int32)
        # An acrostic without a form: seven-character lines, one per head, an even number of lines.
        no_form = m == 0
        n = tf.where(no_form & (a_len > 0), 7, n)
        m = tf.where(no_form & (a_len > 0), a_len + a_len % 2, m)
        formed = m > 0
        checks.append(tf.debugging.Assert(
            tf.reduce_all(a_len <= m), ["The acrostic has more characters than the form has lines:", acrostic], summarize=8
        ))
        content_prompt = tf.ragged.boolean_mask(
            p_ids, p_ids.with_flat_values(tf.gather(self._content, p_ids.flat_values))
        )
        cp_len = tf.cast(content_prompt.row_lengths(), tf.int32)
        p_len = tf.cast(p_ids.row_lengths(), tf.int32)
        checks.append(tf.debugging.Assert(
            tf.reduce_all(tf.where(formed, cp_len <= m * n, p_len <= max_length - 3)),
            ["The start is longer than the poem it should begin (form slots or max_length):", prompt],
            summarize=8,
        ))
        form_len = m * (n + 1)
        row_len = tf.where(formed, form_len + 1, max_length)
        T = tf.reduce_max(row_len)
        pos = tf.range(T)[None, :]
        n1 = tf.maximum(n + 1, 1)[:, None]
        col = pos % n1
        line = pos // n1
        nb = n[:, None]
        punct = tf.where(line % 2 == 0, self.comma_id, self.period_id)
        a_dense = a_ids.to_tensor(default_value=-1)
        a_dense = tf.pad(a_dense, [[0, 0], [0, 1]], constant_values=-1)
        head = tf.gather(a_dense, tf.minimum(line, tf.shape(a_dense)[1] - 1), batch_dims=1)
        is_head = (col == 0) & (line < a_len[:, None])
        slot = line * nb + col
        cp_dense = tf.pad(content_prompt.to_tensor(default_value=-1), [[0, 0], [0, 1]], constant_values=-1)
        from_prompt = tf.gather(cp_dense, tf.minimum(slot, tf.shape(cp_dense)[1] - 1), batch_dims=1)
        form_plan = tf.where(
            pos == form_len[:, None],
            Vocabulary.eos_id,
            tf.where(
                col == nb,
                punct,
                tf.where(is_head, head, tf.where(slot < cp_len[:, None], from_prompt, -1)),
            ),
        )
        p_dense = tf.pad(p_ids.to_tensor(default_value=-2), [[0, 0], [0, 1]], constant_values=-2)
        free_plan = tf.gather(p_dense, tf.minimum(pos + tf.zeros_like(nb), tf.shape(p_dense)[1] - 1), batch_dims=1)
        free_plan = tf.where(pos < p_len[:, None], free_plan, -2)
        with tf.control_dependencies(checks):
            plan = tf.identity(tf.where(formed[:, None], form_plan, free_plan))
        return plan, row_len, formed

    # ---------------------------------------------------------------- generation
    def _generate(self, prompt, form, acrostic, temperature, top_k, top_p, seed, max_length):
        max_length = tf.clip_by_value(max_length, 8, MAX_LENGTH)
        plan, row_len, formed = self._plan(prompt, form, acrostic, max_length)
        ids = self._decode_any(plan, row_len, formed, temperature, top_k, top_p, seed)
        eos = Vocabulary.eos_id
        ids = tf.where(tf.cumsum(tf.cast(ids == eos, tf.int32), axis=1) > 0, 0, ids)
        text = tf.strings.reduce_join(tf.gather(self._out_tokens, ids), axis=1)
        # Safety net (the decoding constraints already guarantee it): end at the last full sentence.
        text = tf.strings.regex_replace(text, "[^。]*$", "")
        return {"text": text, "characters": tf.strings.length(text, unit="UTF8_CHAR")}

    def _decode(self, plan, row_len, formed, temperature, top_k, top_p, seed):
        """The sampling loop: token ids [B, T] following ``plan`` (numbers only, no strings)."""
        B = tf.shape(plan)[0]
        T = tf.shape(plan)[1]
        eos, bos = Vocabulary.eos_id, Vocabulary.bos_id
        masks = self._mask_table
        han = self._content

        def body(t, prev, states, out, done):
            logits, states = self._step(prev, states)
            p = plan[:, t]
            # Which characters may come next (one row of the mask table per batch row):
            #   0: a Han character (a form's line);  free text: 1 after the start or ， (no punctuation, no end),
            #   2 after 。 (no punctuation; the end allowed), 3 after a character (punctuation, no end),
            #   4 as 3 but no ， (a free poem must close within max_length: its last places are a line's end).
            remaining = row_len - t
            after_char = tf.where(remaining <= 3, 4, 3)
            prev_han = tf.gather(han, prev)
            case = tf.where(prev == self.period_id, 2, tf.where(prev_han, after_char, 1))
            case = tf.where(p == -1, 0, case)
            masked = logits + tf.gather(masks, case)
            drawn = samplers.sample(masked, seed, t, temperature, top_k, top_p)
            nxt = tf.where(p >= 0, p, drawn)
            closing = ~formed & (p == -2)
            nxt = tf.where(closing & (remaining == 2) & prev_han, self.period_id, nxt)
            nxt = tf.where(closing & (((remaining == 2) & (prev == self.period_id)) | (remaining == 1)), eos, nxt)
            nxt = tf.where(done, Vocabulary.pad_id, nxt)
            out = out.write(t, nxt)
            done = done | (nxt == eos) | (t + 1 >= row_len)
            return t + 1, nxt, states, out, done

        def cond(t, prev, states, out, done):
            return (t < T) & ~tf.reduce_all(done)

        start = (
            tf.constant(0),
            tf.fill([B], bos),
            self._zero_states(B),
            tf.TensorArray(tf.int32, size=T, element_shape=[None]),
            tf.zeros([B], tf.bool),
        )
        _, _, _, out, _ = tf.while_loop(cond, body, start, maximum_iterations=T)
        return tf.transpose(out.stack())  # [B, T]; rows past their end are padding

    def _decode_any(self, plan, row_len, formed, temperature, top_k, top_p, seed):
        """Small batches run the loop XLA-compiled, larger ones as a plain graph loop.

        At batch 1 a step is a few matrix-vector products and ~100 small element-wise ops; the graph
        executor's per-op cost would dominate, while XLA fuses the element-wise work into a few kernels.
        To keep the number of compilations small (each costs seconds, once per process and shape), the
        XLA path pads the batch to a power of two up to ``XLA_MAX_BATCH`` and the plan to ``MAX_LENGTH``
        steps; padding rows end at once, and rows never influence each other.
        """
        args = (plan, row_len, formed, temperature, top_k, top_p, seed)
        if not self.jit_compile:
            return self._decode_graph(*args)
        B = tf.shape(plan)[0]
        return tf.cond(B <= XLA_MAX_BATCH, lambda: self._decode_padded(*args), lambda: self._decode_graph(*args))

    def _decode_padded(self, plan, row_len, formed, temperature, top_k, top_p, seed):
        B = tf.shape(plan)[0]
        T = tf.shape(plan)[1]
        bucket = tf.cast(2 ** tf.math.ceil(tf.math.log(tf.cast(B, tf.float32)) / tf.math.log(2.0) - 1e-6), tf.int32)
        pad = tf.maximum(bucket, B) - B
        rows = lambda x, v: tf.pad(x, [[0, pad]], constant_values=v)  # noqa: E731
        plan = tf.pad(plan, [[0, pad], [0, MAX_LENGTH - T]], constant_values=-2)
        ids = self._decode_xla(
            plan, rows(row_len, 1), rows(formed, False), rows(temperature, 0.0), rows(top_k, 0), rows(top_p, 1.0),
            rows(seed, tf.constant(0, tf.int64)),
        )
        return ids[:B, :T]

    @tf.function(jit_compile=True)
    def _decode_xla(self, plan, row_len, formed, temperature, top_k, top_p, seed):
        return self._decode(plan, row_len, formed, temperature, top_k, top_p, seed)

    @tf.function
    def _decode_graph(self, plan, row_len, formed, temperature, top_k, top_p, seed):
        return self._decode(plan, row_len, formed, temperature, top_k, top_p, seed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt")])
    def serving_default(self, prompt):
        B = tf.shape(prompt)[0]
        seed = tf.random.uniform([B], maxval=tf.int64.max, dtype=tf.int64)
        out = self._generate(
            prompt,
            tf.fill([B], ""),
            tf.fill([B], ""),
            tf.fill([B], DEFAULT_SAMPLING["temperature"]),
            tf.fill([B], DEFAULT_SAMPLING["top_k"]),
            tf.fill([B], DEFAULT_SAMPLING["top_p"]),
            seed,
            tf.fill([B], DEFAULT_SAMPLING["max_length"]),
        )
        return {"text": out["text"]}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="prompt"),
            tf.TensorSpec([None], tf.string, name="form"),
            tf.TensorSpec([None], tf.string, name="acrostic"),
            tf.TensorSpec([None], tf.float32, name="temperature"),
            tf.TensorSpec([None], tf.int32, name="top_k"),
            tf.TensorSpec([None], tf.float32, name="top_p"),
            tf.TensorSpec([None], tf.int64, name="seed"),
            tf.TensorSpec([None], tf.int32, name="max_length"),
        ]
    )
    def generate(self, prompt, form, acrostic, temperature, top_k, top_p, seed, max_length):
        return self._generate(prompt, form, acrostic, temperature, top_k, top_p, seed, max_length)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(self, text):
        chars = self._chars(text)
        check = tf.debugging.Assert(
            tf.reduce_all(chars.row_lengths() <= MAX_INPUT_CHARS),
            [f"Texts to score must be at most {MAX_INPUT_CHARS} characters."],
        )
        raw = self._table.lookup(chars.flat_values)
        with tf.control_dependencies([check]):
            # Characters outside the vocabulary are scored as <unk>, as in training, and counted.
            ids = chars.with_flat_values(tf.where(raw < 0, Vocabulary.unk_id, raw))
        B = tf.shape(text)[0]
        bos = tf.fill([B, 1], Vocabulary.bos_id)
        eos = tf.fill([B, 1], Vocabulary.eos_id)
        seq = tf.concat([tf.cast(bos, tf.int32), ids, tf.cast(eos, tf.int32)], axis=1).to_tensor(0)
        x, y = seq[:, :-1], seq[:, 1:]
        logits = self.model(x, training=False)
        logp = tf.gather(tf.nn.log_softmax(logits, axis=-1), y, batch_dims=2)
        mask = tf.cast(y != 0, tf.float32)
        total = tf.reduce_sum(logp * mask, axis=1)
        n_chars = tf.cast(ids.row_lengths(), tf.int32)
        unknown = tf.reduce_sum(tf.cast(chars.with_flat_values(raw < 0), tf.int32), axis=1)
        return {
            "log_probability": total,
            "characters": n_chars,
            "bits_per_char": -total / tf.reduce_sum(mask, axis=1) / np.log(2.0),
            "unknown_characters": unknown,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def unknown_characters(self, text):
        return {"unknown": self._unknown(self._chars(text))}


def export_poetry(
    model, vocab: Vocabulary, config: dict, app_dir: str, version=None, card: dict | None = None, jit_compile=True
) -> str:
    """Export the Char-RNN to ``app_dir/<version>`` atomically; return the version directory."""
    module = PoemModule(model, vocab, config, jit_compile=jit_compile)
    signatures = {
        "serving_default": module.serving_default,
        "generate": module.generate,
        "score": module.score,
        "unknown_characters": module.unknown_characters,
    }

    def write(path):
        tf.saved_model.save(module, path, signatures=signatures)

    extra = {CONFIG_NAME: {"format": "rnn_apps.poetry/1", "config": config, "vocab": vocab.to_json(), **(card or {})}}
    return shared_export.atomic_export(write, app_dir, version, extra)


def load_weights_from_export(model_dir: str) -> dict:
    """The config, vocabulary and weights (in ``model.weights`` order) of an exported poem model."""
    model_dir = shared_export.resolve_model_dir(model_dir)
    meta = load_config(model_dir)
    loaded = tf.saved_model.load(model_dir)
    weights = [v.numpy() for v in loaded.model_weights]
    vocab = Vocabulary(meta["vocab"]["tokens"][4:])
    return {"config": meta["config"], "vocab": vocab, "weights": weights}
