"""The poem model's SavedModel: string in, poem out, with the whole sampling loop in the graph.

Signatures (all batch-first, loadable with plain ``tf.saved_model.load``, no rnn_apps needed):

* ``serving_default``: ``{"prompt": string[B]}`` -> ``{"text": string[B]}``; the command's default poem: a
  form drawn for each poem ("auto" below, with a random seed), rhyme and metre, default sampling.
* ``generate``: ``{"prompt", "form", "acrostic": string[B], "temperature": float32[B], "top_k": int32[B],
  "top_p": float32[B], "seed": int64[B], "max_length": int32[B], "rhyme", "metre": string[B]}`` ->
  ``{"text": string[B], "characters": int32[B]}``. ``form`` is one of "", "wujue", "qijue", "wulv", "qilv"
  or "auto": one of the four that the prompt and acrostic fit, drawn with the row's seed as
  ``rnn-apps generate-poem`` draws it (free form when none fits; models exported before version 10 refuse it);
  an acrostic without a form writes lines of seven characters, one per acrostic character (rounded up to an
  even count). ``rhyme`` ("pingshui", "xinyun", "none") and ``metre`` ("strict", "loose", "none") constrain
  the four forms (:mod:`rnn_apps.apps.poetry.prosody`); "" means the defaults, pingshui and loose, so a form's
  poem rhymes unless asked not to. (Models exported before rhyme and metre have no such inputs.)
* ``score``: ``{"text": string[B]}`` -> ``{"log_probability": float32[B]`` (natural log of the poem and
  its end), ``"characters": int32[B], "bits_per_char": float32[B], "unknown_characters": int32[B]}``;
  characters outside the vocabulary are scored as ``<unk>`` (as in training) and counted.
* ``unknown_characters``: ``{"text": string[B]}`` -> ``{"unknown": string[B]}`` (the characters of each
  input the model does not know, after script conversion; empty when all are known).

Functions of the loaded object for continuous batching in ``rnn-apps serve`` (not signatures):
``decode_start_generate`` / ``decode_start_serving_default`` (those signatures' inputs -> a decoding state),
``decode_steps(state, steps)`` and ``decode_text(ids)``; see :mod:`rnn_apps.serving.continuous`.

Inputs are normalised in the graph as in training: whitespace removed, ASCII and other punctuation mapped
to ，/。, and characters of the other script converted character by character with OpenCC's table.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from rnn_apps import chinese, graph_limits, limits, samplers
from rnn_apps.export import inference_view
from rnn_apps.apps.base import read_export, save_module
from rnn_apps.apps.poetry import prosody
from rnn_apps.apps.poetry.constants import (  # noqa: F401  (re-exported: the names' historical home)
    AUTO_FORM,
    CONFIG_NAME,
    DEFAULT_SAMPLING,
    FORMS,
    MAX_INPUT_CHARS,
    MAX_LENGTH,
    load_config,
)
from rnn_apps.vocab import SPECIALS, Vocabulary

XLA_MAX_BATCH = 8  # batches up to this size decode XLA-compiled (see PoemModule._decode_any)
GENERATE_INPUTS = [
    tf.TensorSpec([None], tf.string, name="prompt"),
    tf.TensorSpec([None], tf.string, name="form"),
    tf.TensorSpec([None], tf.string, name="acrostic"),
    tf.TensorSpec([None], tf.float32, name="temperature"),
    tf.TensorSpec([None], tf.int32, name="top_k"),
    tf.TensorSpec([None], tf.float32, name="top_p"),
    tf.TensorSpec([None], tf.int64, name="seed"),
    tf.TensorSpec([None], tf.int32, name="max_length"),
    tf.TensorSpec([None], tf.string, name="rhyme"),
    tf.TensorSpec([None], tf.string, name="metre"),
]
LIMITS = limits.APPS["poetry"]  # checked in the graph too (rnn_apps.graph_limits), as the command checks them
# unknown_characters says which characters of any text the model does not know: a blank one is no error there
# (rnn-apps serve and the library ask it of blank prompts and acrostics); a blank text to score is.
ANY_TEXT_LIMITS = limits.any_text(LIMITS)


class PoemModule(tf.Module):
    """A ``tf.Module`` holding the Char-RNN's weights and the in-graph generation and scoring functions."""

    def __init__(self, model, vocab: Vocabulary, config: dict, jit_compile: bool = True,
                 prosody_arrays: dict | None = None):
        super().__init__(name="poem_model")
        self.jit_compile = jit_compile
        self.model = inference_view(model)  # without the optimizer a model just trained tracks
        self.model_weights = list(model.weights)  # order of model.weights, for fine-tuning
        self._emb = model.get_layer("embedding")
        self._cells = [model.get_layer(f"rnn_{i}").cell for i in range(1, config["num_layers"] + 1)]
        self._head = model.get_layer("logits")
        V = len(vocab)
        self.vocab_size = V
        tokens = list(vocab.tokens)
        self._tokens = tf.constant(tokens)
        n = len(SPECIALS)
        self._out_tokens = tf.constant(["" if i < n else t for i, t in enumerate(tokens)])
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tokens[n:]), tf.range(n, V, dtype=tf.int32)), -1
        )
        self._conv = chinese.conversion_table(config.get("script", "simplified"), vocab)
        forms = list(FORMS)
        self._form_n = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(forms), tf.constant([FORMS[f][0] for f in forms], tf.int32)), -1
        )
        self._form_m = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(forms), tf.constant([FORMS[f][1] for f in forms], tf.int32)), -1
        )
        content = np.array([i >= n and chinese.is_han(t) for i, t in enumerate(tokens)])
        self._content = tf.constant(content)
        free = np.ones(V, bool)
        free[[vocab.pad_id, vocab.unk_id, vocab.bos_id]] = False
        self.comma_id = vocab.index[chinese.COMMA]
        self.period_id = vocab.index[chinese.PERIOD]
        punct = np.zeros(V, bool)
        punct[[self.comma_id, self.period_id]] = True
        eos = np.zeros(V, bool)
        eos[vocab.eos_id] = True
        comma = np.zeros(V, bool)
        comma[self.comma_id] = True
        allowed = np.stack([content, free & ~punct & ~eos, free & ~punct, free & ~eos, free & ~eos & ~comma])
        self._mask_table = tf.constant(np.where(allowed, 0.0, samplers.NEG_INF).astype(np.float32))
        self.config = dict(config)
        # Rhyme and metre: the tokens' tone and rhyme bits per rhyme system, and every form's template codes.
        arrays = prosody_arrays or prosody.Tables.load().vocab_arrays(tokens)
        self.prosody_arrays = {k: np.asarray(arrays[k], np.int32) for k in ("tone", "rhyme")}
        self._tone = tf.constant(self.prosody_arrays["tone"])
        self._rbits = tf.constant(self.prosody_arrays["rhyme"])
        self._codes_table = tf.constant(prosody.code_table(FORMS))
        usable = np.bitwise_or.reduce(self.prosody_arrays["rhyme"], axis=-1)  # [systems]
        self._usable_bits = tf.constant(((usable[:, None] >> np.arange(31)) & 1).astype(np.int32))
        self._form_index = self._lookup(forms, range(len(forms)))
        self._rhyme_index = self._lookup(
            [""] + list(prosody.RHYMES), [prosody.RHYMES.index(prosody.DEFAULT_RHYME)] + list(range(len(prosody.RHYMES))))
        self._metre_index = self._lookup(
            [""] + list(prosody.METRES), [prosody.METRES.index(prosody.DEFAULT_METRE)] + list(range(len(prosody.METRES))))
        # Continuous batching's step function (see decode_start_generate): its input signature depends on the
        # layers. It is XLA-compiled for each batch size it gets (the server pads batches to powers of two).
        self.decode_steps = tf.function(self._decode_steps, jit_compile=jit_compile,
                                        input_signature=[self._state_spec(), tf.TensorSpec([], tf.int32)])

    @staticmethod
    def _lookup(keys, values):
        init = tf.lookup.KeyValueTensorInitializer(tf.constant(list(keys)), tf.constant(list(values), tf.int32))
        return tf.lookup.StaticHashTable(init, -1)

    # ---------------------------------------------------------------- text <-> ids
    def _chars(self, text):
        return chinese.normalize_graph(text, self._conv)[0]

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
            if getattr(cell, "supports_projected_inputs", False):
                # (x W + b) + h U, in this order, as the NumPy engine (fast.py) and the shipped models compute
                # it: LSTMCell.call adds the bias last (Keras's order), and a different rounding can change a
                # near-tie draw between the engines
                x, s = cell.step_projected(cell.project_inputs(x), list(s), training=False)
            else:
                x, s = cell(x, list(s), training=False)
            new_states.append(tuple(s))
        return self._head(x), new_states

    def _state_sizes(self):
        """Each layer's state sizes (an LSTM's h and c)."""
        return [list(c.state_size) if isinstance(c.state_size, (list, tuple)) else [c.state_size]
                for c in self._cells]

    def _zero_states(self, batch):
        return [tuple(tf.zeros([batch, s]) for s in sizes) for sizes in self._state_sizes()]

    # ---------------------------------------------------------------- the plan of each row
    def _plan(self, prompt, form, acrostic, max_length):
        """Per-row decoding plan [B, T]: id >= 0 forced, -1 a Han character, -2 free; and row facts."""
        checks = []
        n = self._form_n.lookup(form)
        m = self._form_m.lookup(form)
        checks.append(tf.debugging.Assert(
            tf.reduce_all(n >= 0), ["form must be one of '', auto, wujue, qijue, wulv, qilv; received:", form], summarize=8
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
    def _auto_form(self, prompt, form, acrostic, seed):
        """``form`` [B] with each ``"auto"`` row replaced by the form drawn for it ("" when none fits).

        The graph's twin of :func:`rnn_apps.apps.poetry.generate.auto_forms` and ``draw_form``: among the four
        forms with room for the acrostic's heads and the start's characters, those with one head a line when
        any; among these, those that keep every ， and 。 of the start where it has them, when any, else those
        whose lines end where its marks are, when any; then
        ``floor(u · count)``-th of them with the sampler's uniform u of the row's seed at ``FORM_STEP``.
        Unknown characters count as neither (``_plan`` refuses them).
        """
        names = [f for f in FORMS if f]
        is_content = lambda ids: (ids >= 0) & tf.gather(self._content, tf.maximum(ids, 0))  # noqa: E731
        is_mark = lambda ids: (ids == self.comma_id) | (ids == self.period_id)  # noqa: E731
        a = self._chars(acrostic)
        heads = tf.reduce_sum(tf.cast(is_content(a.with_flat_values(self._table.lookup(a.flat_values))), tf.int32),
                              axis=1)
        p = self._chars(prompt)
        ids = self._table.lookup(p.flat_values)
        # The start's characters and marks alone: two marks in a row then have no character between them.
        kept = tf.ragged.boolean_mask(p.with_flat_values(ids), p.with_flat_values(is_content(ids) | is_mark(ids)))
        kept = kept.to_tensor(default_value=-1)  # [B, L]
        mark = is_mark(kept)
        before = tf.cumsum(tf.cast(is_content(kept), tf.int32), axis=1)  # the characters up to each mark
        body = tf.reduce_sum(tf.cast(is_content(kept), tf.int32), axis=1)
        second = tf.pad(mark[:, :-1], [[0, 0], [1, 0]])
        fits, one_a_line, kept_marks, line_ends = [], [], [], []
        for f in names:
            n, m = FORMS[f]
            fit = (heads <= m) & (body <= n * m)
            fits.append(fit)
            one_a_line.append(fit & (heads == m))
            # A form writes ， after each odd line and 。 after each even one: a mark elsewhere is left out.
            wanted = tf.where((before // n) % 2 == 1, self.comma_id, self.period_id)
            off_end = mark & ((before == 0) | (before % n != 0))
            kept_marks.append(~tf.reduce_any(off_end | (mark & ((kept != wanted) | second)), axis=1))
            line_ends.append(~tf.reduce_any(off_end, axis=1))
        fits, one_a_line, kept_marks, line_ends = (tf.stack(x, axis=1)
                                                   for x in (fits, one_a_line, kept_marks, line_ends))
        fits = tf.where(tf.reduce_any(one_a_line, axis=1, keepdims=True), one_a_line, fits)
        # Marks kept as written, else lines ending at the marks (the first set lies within the second).
        for better in (fits & line_ends, fits & kept_marks):
            fits = tf.where(tf.reduce_any(better, axis=1, keepdims=True), better, fits)
        count = tf.reduce_sum(tf.cast(fits, tf.int32), axis=1)
        u = samplers.uniform(seed, prosody.FORM_STEP)
        pick = tf.minimum(tf.cast(tf.floor(u * tf.cast(count, tf.float32)), tf.int32), count - 1)
        nth = tf.cumsum(tf.cast(fits, tf.int32), axis=1) - 1
        k = tf.argmax(tf.cast(fits & (nth == pick[:, None]), tf.int32), axis=1, output_type=tf.int32)
        drawn = tf.where(count > 0, tf.gather(tf.constant(names), k), "")
        return tf.where(form == AUTO_FORM, drawn, form)

    def _generate(self, prompt, form, acrostic, temperature, top_k, top_p, seed, max_length, rhyme, metre):
        plan, row_len, formed, codes, system = self._prepare(prompt, form, acrostic, seed, max_length, rhyme, metre)
        ids = self._decode_any(plan, row_len, formed, temperature, top_k, top_p, seed, codes, system)
        return self._text(ids)

    def _prepare(self, prompt, form, acrostic, seed, max_length, rhyme, metre):
        """Checks the arguments; returns each row's ``(plan, row_len, formed, codes, system)``."""
        max_length = tf.clip_by_value(max_length, 8, MAX_LENGTH)
        system = self._rhyme_index.lookup(rhyme)
        metre_i = self._metre_index.lookup(metre)
        checks = [
            tf.debugging.Assert(tf.reduce_all(system >= 0),
                                ["rhyme must be one of '', pingshui, xinyun, none; received:", rhyme], summarize=8),
            tf.debugging.Assert(tf.reduce_all(metre_i >= 0),
                                ["metre must be one of '', strict, loose, none; received:", metre], summarize=8),
        ]
        with tf.control_dependencies(checks):
            system, metre_i = tf.maximum(system, 0), tf.maximum(metre_i, 0)
        form = self._auto_form(prompt, form, acrostic, seed)
        plan, row_len, formed = self._plan(prompt, form, acrostic, max_length)
        codes = self._codes(plan, form, system, metre_i, seed)
        return plan, row_len, formed, codes, system

    def _text(self, ids):
        """The poems of token ids [B, T] (everything from a row's end on is dropped)."""
        eos = Vocabulary.eos_id
        ids = tf.where(tf.cumsum(tf.cast(ids == eos, tf.int32), axis=1) > 0, 0, ids)
        text = tf.strings.reduce_join(tf.gather(self._out_tokens, ids), axis=1)
        # Safety net (the decoding constraints already guarantee it): end at the last full sentence.
        text = tf.strings.regex_replace(text, "[^。]*$", "")
        return {"text": text, "characters": tf.strings.length(text, unit="UTF8_CHAR")}

    def _codes(self, plan, form, system, metre_i, seed):
        """Each row's constraint codes [B, T] (:mod:`rnn_apps.apps.poetry.prosody`; zeros outside the forms).

        The row's template is drawn with its seed (the sampler's uniform at ``prosody.TEMPLATE_STEP``) among
        the templates its forced characters (start, acrostic) fit, or, when none fits, break least.
        """
        T = tf.shape(plan)[1]
        W = int(self._codes_table.shape[-1])
        f_idx = tf.maximum(self._form_index.lookup(form), 0)
        cand = tf.gather_nd(self._codes_table, tf.stack([f_idx, metre_i, system], axis=1))  # [B, K, W]
        forced = tf.pad(plan, [[0, 0], [0, tf.maximum(W - T, 0)]], constant_values=-2)[:, :W]
        tone, rbits = tf.gather(self._tone, system), tf.gather(self._rbits, system)  # [B, V]
        ids = tf.maximum(forced, 0)
        t = tf.gather(tone, ids, batch_dims=1)[:, None, :]
        r = tf.gather(rbits, ids, batch_dims=1)[:, None, :]
        is_forced = (forced >= 0)[:, None, :]
        has = lambda x, bit: tf.bitwise.bitwise_and(x, bit) != 0  # noqa: E731
        bad = is_forced & (((cand == prosody.NEED_PING) & ~has(t, prosody.PING))
                           | ((cand == prosody.NEED_ZE) & ~has(t, prosody.ZE)) | ((cand == prosody.RHYME) & (r == 0)))
        # The forced rhyming characters share a group: some bit set in all of them.
        at_rhyme = is_forced & (cand == prosody.RHYME)
        bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(r[..., None], tf.range(31)), 1)  # [B, 1, W, 31]
        shared = tf.reduce_min(tf.where(at_rhyme[..., None], bits, 1), axis=2)  # [B, K, 31]
        usable = tf.gather(self._usable_bits, system)[:, None, :]  # [B, 1, 31] groups with enough characters
        rhymes_ok = tf.reduce_any((shared * usable) > 0, axis=-1) | ~tf.reduce_any(cand == prosody.RHYME, axis=-1)
        conflicts = tf.reduce_sum(tf.cast(bad, tf.int32), axis=-1) + tf.cast(~rhymes_ok, tf.int32)  # [B, K]
        fits = conflicts == tf.reduce_min(conflicts, axis=-1, keepdims=True)
        n_fit = tf.reduce_sum(tf.cast(fits, tf.int32), axis=-1)
        u = samplers.uniform(seed, prosody.TEMPLATE_STEP)
        pick = tf.minimum(tf.cast(tf.floor(u * tf.cast(n_fit, tf.float32)), tf.int32), n_fit - 1)
        nth = tf.cumsum(tf.cast(fits, tf.int32), axis=-1) - 1
        k = tf.argmax(tf.cast(fits & (nth == pick[:, None]), tf.int32), axis=-1, output_type=tf.int32)
        codes = tf.gather(cand, k, batch_dims=1)  # [B, W]
        return tf.pad(codes, [[0, 0], [0, tf.maximum(T - W, 0)]])[:, :T]

    def _decode_any(self, plan, row_len, formed, temperature, top_k, top_p, seed, codes, system):
        """The sampling loop: token ids [B, T] following ``plan`` (numbers only, no strings)."""
        state = self._begin(plan, row_len, formed, temperature, top_k, top_p, seed, codes, system)
        return self._run(state, MAX_LENGTH)["ids"][:, :tf.shape(plan)[1]]

    def _begin(self, plan, row_len, formed, temperature, top_k, top_p, seed, codes, system):
        """The ``MAX_LENGTH``-wide state of rows that have not begun: every batch's state has the same width."""
        return self._start_state(self._widen(plan, -2), row_len, formed, temperature, top_k, top_p, seed,
                                 self._widen(codes, 0), system)

    @staticmethod
    def _widen(x, value):
        """A plan or codes [B, T] padded to ``MAX_LENGTH`` columns."""
        return tf.pad(x, [[0, 0], [0, MAX_LENGTH - tf.shape(x)[1]]], constant_values=value)

    def _start_state(self, plan, row_len, formed, temperature, top_k, top_p, seed, codes, system):
        """The decoding state of rows that have not begun: every tensor batch-first (see ``_advance``)."""
        B = tf.shape(plan)[0]
        state = {
            "plan": plan, "codes": codes, "row_len": row_len, "formed": formed, "temperature": temperature,
            "top_k": top_k, "top_p": top_p, "seed": seed, "system": system,
            "t": tf.zeros([B], tf.int32),
            "prev": tf.fill([B], Vocabulary.bos_id),
            "prev2": tf.fill([B], Vocabulary.bos_id),
            "group": tf.fill([B], tf.constant(-1, tf.int32)),
            "used": tf.fill([B, prosody.MAX_LINE_ENDS], tf.constant(-1, tf.int32)),
            "done": tf.zeros([B], tf.bool),
            "ids": tf.fill(tf.shape(plan), Vocabulary.pad_id),
        }
        for i, layer in enumerate(self._zero_states(B)):
            for j, s in enumerate(layer):
                state[f"state_{i}_{j}"] = s
        return state

    def _advance(self, state, steps, until_an_end=False):
        """Up to ``steps`` more tokens of every row that has not ended; the state after them.

        With ``until_an_end`` it stops as soon as a row ends (continuous batching then hands that poem
        back and fills its place).

        Each row keeps its own position ``t`` (rows may have begun at different times: the server's
        continuous batching adds rows to a running batch), and its draws depend only on its seed and ``t``,
        so a poem is the same whatever else is in the batch and whenever it joined. ``codes`` [B, T] add
        rhyme and metre: a tone class, the rhyme group still open (bits narrowed at each rhyming place; a
        rhyme character repeats no line's end) or 平 against 孤平 (see ``prosody``).
        """
        plan, codes, row_len, formed = state["plan"], state["codes"], state["row_len"], state["formed"]
        temperature, top_k, top_p, seed = state["temperature"], state["top_k"], state["top_p"], state["seed"]
        B = tf.shape(plan)[0]
        L = tf.shape(plan)[1]
        eos = Vocabulary.eos_id
        masks = self._mask_table
        han = self._content
        tone, rbits = tf.gather(self._tone, state["system"]), tf.gather(self._rbits, state["system"])  # [B, V]
        vocab = tf.range(self.vocab_size)
        has = lambda x, bit: tf.bitwise.bitwise_and(x, bit) != 0  # noqa: E731

        def body(i, t, prev, states, ids, done, prev2, group, used):
            logits, states = self._step(prev, states)
            at = tf.minimum(t, L - 1)
            p = tf.gather(plan, at, batch_dims=1)
            # Which characters may come next (one row of the mask table per batch row):
            #   0: a Han character (a form's line);  free text: 1 after the start or ， (no punctuation, no end),
            #   2 after 。 (no punctuation; the end allowed), 3 after a character (punctuation, no end),
            #   4 as 3 but no ， (a free poem must close within max_length: its last places are a line's end).
            remaining = row_len - t
            after_char = tf.where(remaining <= 3, 4, 3)
            prev_han = tf.gather(han, prev)
            case = tf.where(prev == self.period_id, 2, tf.where(prev_han, after_char, 1))
            case = tf.where(p == -1, 0, case)
            c = tf.gather(codes, at, batch_dims=1)
            guping = (c == prosody.GUPING) & ~has(tf.gather(tone, prev2, batch_dims=1), prosody.PING)
            need = tf.where((c == prosody.NEED_PING) | guping, prosody.PING, tf.where(c == prosody.NEED_ZE, prosody.ZE, 0))
            rhyming = c == prosody.RHYME

            def rhymes():  # characters of the open rhyme group that end no line yet (only at a rhyming place)
                fresh = ~tf.reduce_any(used[:, :, None] == vocab[None, None, :], axis=1)
                return has(rbits, group[:, None]) & fresh

            metre_ok = has(tone, need[:, None]) | (need == 0)[:, None]
            ok = tf.cond(tf.reduce_any(rhyming), lambda: tf.where(rhyming[:, None], rhymes(), metre_ok),
                         lambda: metre_ok)
            base = tf.gather(masks, case)
            # No candidate left (a vocabulary without enough rhymes): fall back to the plain mask.
            ok = ok | ~tf.reduce_any(ok & (base == 0), axis=-1, keepdims=True)
            masked = tf.where(ok, logits + base, samplers.NEG_INF)
            drawn = samplers.sample(masked, seed, t, temperature, top_k, top_p)
            nxt = tf.where(p >= 0, p, drawn)
            closing = ~formed & (p == -2)
            nxt = tf.where(closing & (remaining == 2) & prev_han, self.period_id, nxt)
            nxt = tf.where(closing & (((remaining == 2) & (prev == self.period_id)) | (remaining == 1)), eos, nxt)
            live = ~done  # rows that ended keep their tokens, position and memory
            where_t = tf.stack([tf.range(B), at], axis=1)
            ids = tf.tensor_scatter_nd_update(ids, where_t, tf.where(live, nxt, tf.gather_nd(ids, where_t)))
            rhymed = live & rhyming
            narrowed = tf.bitwise.bitwise_and(group, tf.gather(rbits, nxt, batch_dims=1))
            group = tf.where(rhymed & (narrowed != 0), narrowed, group)  # a forced outsider leaves the group
            # a line ended (a character, then ， or 。): its last character joins the line ends no rhyme repeats
            ended = live & prev_han & ((nxt == self.comma_id) | (nxt == self.period_id))
            used = tf.where(ended[:, None], tf.concat([used[:, 1:], prev[:, None]], axis=1), used)
            done = done | (nxt == eos) | (t + 1 >= row_len)
            prev2 = tf.where(live, prev, prev2)
            prev = tf.where(live, nxt, prev)
            t = tf.where(live, t + 1, t)
            return i + 1, t, prev, states, ids, done, prev2, group, used

        ended_before = state["done"]

        def cond(i, t, prev, states, ids, done, *_):
            going = (i < steps) & ~tf.reduce_all(done)
            return going & ~tf.reduce_any(done & ~ended_before) if until_an_end else going

        states = [tuple(state[f"state_{i}_{j}"] for j in range(len(sizes)))
                  for i, sizes in enumerate(self._state_sizes())]
        start = (tf.constant(0), state["t"], state["prev"], states, state["ids"], state["done"], state["prev2"],
                 state["group"], state["used"])
        _, t, prev, states, ids, done, prev2, group, used = tf.while_loop(cond, body, start)
        out = dict(state, t=t, prev=prev, ids=ids, done=done, prev2=prev2, group=group, used=used)
        for i, layer in enumerate(states):
            for j, s in enumerate(layer):
                out[f"state_{i}_{j}"] = s
        return out

    def _run(self, state, steps, until_an_end=False):
        """``_advance``: small batches XLA-compiled, larger ones as a plain graph loop.

        At batch 1 a step is a few matrix-vector products and ~100 small element-wise ops; the graph
        executor's per-op cost would dominate, while XLA fuses the element-wise work into a few kernels.
        To keep the number of compilations small (each costs seconds, once per process and shape), the
        XLA path pads the batch to a power of two up to ``XLA_MAX_BATCH`` (rows that have ended); every
        state is ``MAX_LENGTH`` wide, and rows never influence each other.
        """
        if not self.jit_compile:
            return self._advance_graph(state, steps, until_an_end)
        B = tf.shape(state["done"])[0]
        return tf.cond(B <= XLA_MAX_BATCH, lambda: self._advance_padded(state, steps, until_an_end),
                       lambda: self._advance_graph(state, steps, until_an_end))

    def _advance_padded(self, state, steps, until_an_end):
        B = tf.shape(state["done"])[0]
        bucket = tf.cast(2 ** tf.math.ceil(tf.math.log(tf.cast(B, tf.float32)) / tf.math.log(2.0) - 1e-6), tf.int32)
        pad = tf.maximum(bucket, B) - B
        filler = {"done": True, "row_len": 1}  # padding rows have ended; zeros elsewhere
        padded = {k: tf.pad(v, [[0, pad]] + [[0, 0]] * (v.shape.rank - 1), constant_values=filler.get(k, 0))
                  for k, v in state.items()}
        return {k: v[:B] for k, v in self._advance_xla(padded, steps, until_an_end).items()}

    @tf.function(jit_compile=True)
    def _advance_xla(self, state, steps, until_an_end):
        return self._advance(state, steps, until_an_end)

    @tf.function
    def _advance_graph(self, state, steps, until_an_end):
        return self._advance(state, steps, until_an_end)

    # ---------------------------------------------------------------- continuous batching
    # Functions of the loaded object, not signatures (TF Serving does not see them): ``rnn-apps serve``
    # begins poems with ``decode_start_generate`` or ``decode_start_serving_default`` (the inputs of those
    # signatures), runs the poems of concurrent requests as one batch a few steps at a time with
    # ``decode_steps``, adding new poems and taking out finished ones between calls
    # (:mod:`rnn_apps.serving.continuous`), and turns finished rows into text with ``decode_text``.
    def _state_spec(self):
        """The ``TensorSpec`` of every tensor of a decoding state (see ``_start_state``)."""
        row = lambda dtype: tf.TensorSpec([None], dtype)  # noqa: E731
        wide = tf.TensorSpec([None, MAX_LENGTH], tf.int32)
        spec = {"plan": wide, "codes": wide, "ids": wide, "row_len": row(tf.int32), "formed": row(tf.bool),
                "temperature": row(tf.float32), "top_k": row(tf.int32), "top_p": row(tf.float32),
                "seed": row(tf.int64), "system": row(tf.int32), "t": row(tf.int32), "prev": row(tf.int32),
                "prev2": row(tf.int32), "group": row(tf.int32), "done": row(tf.bool),
                "used": tf.TensorSpec([None, prosody.MAX_LINE_ENDS], tf.int32)}
        for i, sizes in enumerate(self._state_sizes()):
            for j, size in enumerate(sizes):
                spec[f"state_{i}_{j}"] = tf.TensorSpec([None, size], tf.float32)
        return spec

    def _decode_start(self, prompt, form, acrostic, temperature, top_k, top_p, seed, max_length, rhyme, metre):
        plan, row_len, formed, codes, system = self._prepare(prompt, form, acrostic, seed, max_length, rhyme, metre)
        return self._begin(plan, row_len, formed, temperature, top_k, top_p, seed, codes, system)

    @tf.function(input_signature=GENERATE_INPUTS)
    def decode_start_generate(self, prompt, form, acrostic, temperature, top_k, top_p, seed, max_length, rhyme, metre):
        """``generate``'s poems as decoding states that have not begun."""
        return self._decode_start(**graph_limits.checked(
            LIMITS, prompt=prompt, form=form, acrostic=acrostic, temperature=temperature, top_k=top_k, top_p=top_p,
            seed=seed, max_length=max_length, rhyme=rhyme, metre=metre))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt")])
    def decode_start_serving_default(self, prompt):
        """``serving_default``'s poems as decoding states that have not begun."""
        return self._decode_start(*self._default_args(graph_limits.checked(LIMITS, prompt=prompt)["prompt"]))

    def _decode_steps(self, state, steps):
        """Up to ``steps`` tokens of every row, stopping early when one ends."""
        return self._advance(state, tf.maximum(steps, 0), until_an_end=True)

    @tf.function(input_signature=[tf.TensorSpec([None, MAX_LENGTH], tf.int32, name="ids")])
    def decode_text(self, ids):
        """The poems of finished rows (a state's ``ids``): ``generate``'s outputs."""
        return self._text(ids)

    @staticmethod
    def _default_args(prompt):
        """``serving_default``'s poem: the arguments of ``_generate`` for a poem of a drawn form ("auto", the
        command's default) with default sampling and a random seed."""
        B = tf.shape(prompt)[0]
        seed = tf.random.uniform([B], maxval=tf.int64.max, dtype=tf.int64)
        return (prompt, tf.fill([B], AUTO_FORM), tf.fill([B], ""), tf.fill([B], DEFAULT_SAMPLING["temperature"]),
                tf.fill([B], DEFAULT_SAMPLING["top_k"]), tf.fill([B], DEFAULT_SAMPLING["top_p"]), seed,
                tf.fill([B], DEFAULT_SAMPLING["max_length"]), tf.fill([B], ""), tf.fill([B], ""))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt")])
    def serving_default(self, prompt):
        prompt = graph_limits.checked(LIMITS, prompt=prompt)["prompt"]
        return {"text": self._generate(*self._default_args(prompt))["text"]}

    @tf.function(input_signature=GENERATE_INPUTS)
    def generate(self, prompt, form, acrostic, temperature, top_k, top_p, seed, max_length, rhyme, metre):
        return self._generate(**graph_limits.checked(
            LIMITS, prompt=prompt, form=form, acrostic=acrostic, temperature=temperature, top_k=top_k, top_p=top_p,
            seed=seed, max_length=max_length, rhyme=rhyme, metre=metre))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(self, text):
        text = graph_limits.checked(LIMITS, text=text)["text"]
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
        text = graph_limits.checked(ANY_TEXT_LIMITS, text=text)["text"]
        return {"unknown": self._unknown(self._chars(text))}


def export_poetry(
    model, vocab: Vocabulary, config: dict, app_dir: str, version=None, card: dict | None = None, jit_compile=True
) -> str:
    """Export the Char-RNN to ``app_dir/<version>`` atomically; return the version directory.

    ``poetry.json`` also keeps the tokens' tone and rhyme bits the graph was built with (``prosody``), so the
    NumPy engine constrains exactly as the graph does even if the package's tables change later.
    """
    module = PoemModule(model, vocab, config, jit_compile=jit_compile)
    signatures = {
        "serving_default": module.serving_default,
        "generate": module.generate,
        "score": module.score,
        "unknown_characters": module.unknown_characters,
    }

    arrays = module.prosody_arrays
    tables = prosody.Tables.load()
    meta_prosody = {"sources": tables.sources, "rhymes": list(prosody.RHYMES),
                    "tone": arrays["tone"].tolist(), "rhyme": arrays["rhyme"].tolist()}
    meta = {"format": "rnn_apps.poetry/1", "config": config, "vocab": vocab.to_json(), "prosody": meta_prosody,
            **(card or {})}
    return save_module(module, signatures, app_dir, version, CONFIG_NAME, meta)


def export_result(result, app_dir: str, version=None, **kwargs) -> str:
    """Export what :func:`rnn_apps.apps.poetry.task.train` returned (``kwargs``: those of :func:`export_poetry`)."""
    return export_poetry(result["model"], result["vocab"], result["config"], app_dir, version, **kwargs)


def rebuild_from_export(model_dir: str):
    """The Keras Char-RNN of an exported poem model with its weights: ``(model, vocab, config)``.

    Lets a model be exported again with the current graph (``rnn-apps export poetry --from-model``) when
    its training run is gone.
    """
    from rnn_apps.apps.poetry.model import build_char_rnn

    base = load_weights_from_export(model_dir)
    cfg, vocab = base["config"], base["vocab"]
    model = build_char_rnn(len(vocab), cfg["embedding_dim"], cfg["units"], cfg["num_layers"], cfg["cell"], cfg["dropout"])
    model.build((None, None))
    model.set_weights(base["weights"])
    return model, vocab, cfg


def load_weights_from_export(model_dir: str) -> dict:
    """The config, vocabulary and weights (in ``model.weights`` order) of an exported poem model, and its
    version directory (``model_dir``, absolute; ``model_dir`` may name the app directory: its newest version)."""
    model_dir, meta, _, weights = read_export(model_dir, load_config)
    return {"config": meta["config"], "vocab": Vocabulary.from_json(meta["vocab"], model_dir), "weights": weights,
            "model_dir": model_dir}
