"""The translator's SavedModel: text in, translation out, with tokenization and the decoding loop in the graph.

``models/translate/<version>/`` loads with plain ``tf.saved_model.load`` (no rnn_apps, no Keras needed) and
serves with TensorFlow Serving. Signatures (batch-first):

* ``serving_default``: ``{"text": string[B]}`` -> ``{"translation": string[B]}``, decoded with the model's
  default beam width (``decoding.default_beam`` in ``assets.extra/translate.json``).
* ``translate``: ``{"text": string[B], "beam_size": int32[], "max_length": int32[]}`` -> ``{"translation":
  string[B], "length": int32[B]`` (target tokens written, the end token excluded)``}``. ``beam_size`` 1 is greedy
  decoding (at most 16); ``max_length`` <= 0 uses the default bound of each sentence (twice its source tokens
  plus 10, at most 160 tokens).
* ``attention``: ``{"text": string[B], "beam_size": int32[]}`` -> ``{"translation": string[B],
  "source_tokens": string[B, S], "target_tokens": string[B, T], "attention": float32[B, T, S]}``: the alignment
  weights of each written token (rows, ``<eos>`` last) over the source tokens (columns, ``<eos>`` last);
  padding is "" and 0. A model without attention gives zeros.
* ``tokenize``: ``{"text": string[B]}`` -> ``{"tokens": string[B, N], "length": int32[B],
  "unknown_tokens": string[B, N], "unknown_count": int32[B]}``: the source tokens the model reads and those
  outside its vocabulary (read as ``<unk>``).

The signatures that translate refuse, with ``InvalidArgumentError`` and the command's words, what the command
refuses (:mod:`rnn_apps.graph_limits`): a text of more than 100,000 characters, an empty one, ``beam_size``
outside 1 to 16, ``max_length`` outside 0 to 160. A text without a word the model knows is refused by the
command and ``rnn-apps serve`` (they need the vocabulary), not by the graph.

Source sentences longer than 100 tokens are cut to their first 99 tokens in the graph (the library splits long
texts into sentences first). Decoding stops at the end token or at the length bound, where the end is forced;
``<pad> <bos>`` are never written. Beam search keeps ``beam_size`` hypotheses, extends each by every token
(:func:`rnn_apps.samplers.beam_search`), and finally picks the hypothesis with the best score of GNMT
(Wu et al., 2016, eq. 14)::

    s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)
    lp(Y) = ((5 + |Y|) / 6) ** α                      length normalisation (α: ``length_penalty``)
    cp(X; Y) = β Σ_i log(min(Σ_j p_ij, 1))             coverage penalty (β: ``coverage_penalty``)

where p_ij is the attention weight of target word j on source word i: a hypothesis that never attended to
a source word (a dropped clause) pays for it. Unknown words: a model with attention may write ``<unk>``;
each one is replaced by the source word it attends to most, as written in the input (Luong et al., 2015,
"Addressing the Rare Word Problem in Neural Machine Translation"), so a name the model has never seen is
carried into the translation rather than dropped. A model without attention never writes ``<unk>``.
Chinese input reads a word in Latin letters as one token (``chinese_reading`` in ``translate.json``), so an
unseen name such as ``Kowalski`` is one ``<unk>`` and is carried over whole.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from rnn_apps import export as shared_export
from rnn_apps import graph_limits, limits, samplers, textio
from rnn_apps.apps.base import exported_at, read_meta, save_module
from rnn_apps.apps.translate import data as tdata
from rnn_apps.apps.translate.text import CHARACTER_MODEL_SPELLED, detokenize, tokenize
from rnn_apps.vocab import SPECIALS, Vocabulary

CONFIG_NAME = "translate.json"
N_SPECIALS = len(SPECIALS)  # <pad> <unk> <bos> <eos>, the first ids of every vocabulary
FORMAT = "rnn_apps.translate/1"
MAX_SOURCE_TOKENS = 100
MAX_OUTPUT_TOKENS = 160
MAX_BEAM = 16
DEFAULT_BEAM = 4
LENGTH_PENALTY = 1.0
COVERAGE_PENALTY = 0.2
NEG = samplers.NEG_INF
LIMITS = limits.APPS["translate"]  # checked in the graph too (rnn_apps.graph_limits), as the command checks them


def zh_reading(config: dict) -> dict:
    """How the exported graph reads Chinese (:func:`~rnn_apps.apps.translate.text.tokenize_zh`'s arguments).

    A word in Latin letters is one token in every export. A model trained on single letters (its
    settings lack ``zh_latin_words``) meets an unseen one as ``<unk>``, which it carries into the
    translation, and reads the names it learned letter by letter (``CHARACTER_MODEL_SPELLED``) as before.
    """
    trained_on_words = bool(config.get("zh_latin_words", False))
    return {"latin_words": True, "spelled": () if trained_on_words else CHARACTER_MODEL_SPELLED}


def _lookup_table(mapping: dict, default):
    keys = list(mapping) or ["\u0000"]
    values = [mapping[k] for k in mapping] or [default]
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)), default)


class TranslateModule(tf.Module):
    """A ``tf.Module`` holding the Seq2Seq model's weights, the vocabularies and the in-graph decoders.

    The weights are stored as ``weights_dtype`` (float16 halves the SavedModel; the graph computes in
    float32 on the stored values, through a ``keras.StatelessScope`` that gives each Keras variable its
    stored value), in ``model.weights`` order, as ``model_weights``.
    """

    def __init__(self, model, source_vocab: Vocabulary, target_vocab: Vocabulary, config: dict,
                 truecase: Optional[dict] = None, default_beam: int = 1, length_penalty: float = LENGTH_PENALTY,
                 coverage_penalty: float = COVERAGE_PENALTY, copy_unknown: bool = True,
                 weights_dtype: str = "float32"):
        super().__init__(name="translate_model")
        self._stored = shared_export.StoredWeights(model, weights_dtype)
        self.model_weights = self._stored.variables  # in model.weights order, for reloading into Keras
        self.weights_dtype = weights_dtype
        self.source_lang, self.target_lang = tdata.parse_direction(config["direction"])
        self.zh_reading = zh_reading(config)
        src_tokens, tgt_tokens = list(source_vocab.tokens), list(target_vocab.tokens)
        self._src_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(src_tokens[N_SPECIALS:]),
                                                tf.range(N_SPECIALS, len(src_tokens), dtype=tf.int32)), -1
        )
        self._tgt_tokens = tf.constant(["" if i < N_SPECIALS else t for i, t in enumerate(tgt_tokens)])
        self._tgt_labels = tf.constant(["", *SPECIALS[1:]] + tgt_tokens[N_SPECIALS:])
        self._conv = _lookup_table(textio.opencc_char_table("simplified", source_vocab) if self.source_lang == "zh" else {}, "")
        self._truecase = _lookup_table(dict(truecase or {}), "") if self.target_lang == "en" else None
        V = len(tgt_tokens)
        self.has_attention = model.attention is not None
        # <unk> may be written only where the attention says which source word to put in its place.
        self.copy_unknown = bool(copy_unknown) and self.has_attention
        self.length_penalty = float(length_penalty)
        self.coverage_penalty = float(coverage_penalty) if self.has_attention else 0.0
        forbidden = np.zeros(V, np.float32)
        forbidden[[Vocabulary.pad_id, Vocabulary.bos_id]] = NEG
        if not self.copy_unknown:
            forbidden[Vocabulary.unk_id] = NEG
        self._forbidden = tf.constant(forbidden)
        only_eos = np.full(V, NEG, np.float32)
        only_eos[Vocabulary.eos_id] = 0.0
        self._only_eos = tf.constant(only_eos)
        self.default_beam = int(default_beam)

    @property
    def model(self):
        """The Keras :class:`~rnn_apps.apps.translate.model.Seq2Seq` (its own variables are not saved)."""
        return self._stored.model

    # ---------------------------------------------------------------- text -> ids
    def _tokens(self, text):
        toks = tokenize(text, self.source_lang, **self.zh_reading)
        if self.source_lang == "zh":
            conv = self._conv.lookup(toks.flat_values)
            toks = toks.with_flat_values(tf.where(conv != "", conv, toks.flat_values))
        return toks

    def _source(self, text):
        """Source ids [B, S] (tokens, then <eos>; at most MAX_SOURCE_TOKENS) and the source token count [B]."""
        toks = self._tokens(text)[:, : MAX_SOURCE_TOKENS - 1]
        raw = self._src_table.lookup(toks.flat_values)
        ids = toks.with_flat_values(tf.where(raw < 0, Vocabulary.unk_id, raw))
        B = tf.shape(text)[0]
        eos = tf.RaggedTensor.from_tensor(tf.fill([B, 1], Vocabulary.eos_id))
        ids = tf.concat([ids, eos], axis=1)
        return ids.to_tensor(Vocabulary.pad_id), tf.cast(toks.row_lengths(), tf.int32)

    def _bounds(self, n_source, max_length):
        default = tf.minimum(2 * n_source + 10, MAX_OUTPUT_TOKENS)
        return tf.where(max_length > 0, tf.minimum(max_length, MAX_OUTPUT_TOKENS), default)

    # ---------------------------------------------------------------- decoders
    def _encode(self, src):
        memory, mask, states, summary = self.model.encode(src, training=False)
        return memory, mask, list(states), summary, self.model.attention_keys(memory)

    def _weights_or_zeros(self, w, mask):
        return w if w is not None else tf.zeros(tf.shape(mask), tf.float32)

    def greedy(self, src, bounds):
        """Greedy decoding: ids [B, T] (after <eos>: 0) and attention [B, T, S]."""
        memory, mask, states, summary, keys = self._encode(src)
        B = tf.shape(src)[0]
        T = tf.reduce_max(bounds)
        eos = Vocabulary.eos_id

        def body(t, prev, states, ids, atts, done):
            logits, states, w = self.model.decode_step(prev, states, memory, mask, summary, keys)
            nxt = samplers.greedy(logits + self._forbidden)
            nxt = tf.where(t >= bounds - 1, eos, nxt)
            nxt = tf.where(done, Vocabulary.pad_id, nxt)
            w = tf.where(done[:, None], 0.0, self._weights_or_zeros(w, mask))
            return t + 1, nxt, list(states), ids.write(t, nxt), atts.write(t, w), done | (nxt == eos)

        start = (tf.constant(0), tf.fill([B], Vocabulary.bos_id), states,
                 tf.TensorArray(tf.int32, size=T, element_shape=[None]),
                 tf.TensorArray(tf.float32, size=T, element_shape=[None, None]), tf.zeros([B], tf.bool))
        _, _, _, ids, atts, _ = tf.while_loop(lambda t, p, s, i, a, d: (t < T) & ~tf.reduce_all(d), body, start,
                                              maximum_iterations=T)
        ids = tf.transpose(ids.stack())
        atts = tf.transpose(atts.stack(), [1, 0, 2])
        return tf.reshape(ids, [B, -1]), tf.reshape(atts, [B, tf.shape(ids)[1], tf.shape(src)[1]])

    def beam(self, src, bounds, beam_size):
        """Beam search: the best hypothesis of each row (ids [B, T], attention [B, T, S])."""
        K = beam_size
        memory, mask, states, summary, keys = self._encode(src)
        B, S = tf.shape(src)[0], tf.shape(src)[1]
        rep = lambda x: tf.repeat(x, K, axis=0)  # noqa: E731  row b -> rows b*K .. b*K+K-1
        memory, mask, summary, bounds_k = rep(memory), rep(mask), rep(summary), rep(bounds)
        keys = None if keys is None else rep(keys)

        def step(t, prev, states, finished):
            logits, states, w = self.model.decode_step(prev, states, memory, mask, summary, keys)
            logp = tf.nn.log_softmax(logits + self._forbidden, axis=-1)
            logp = tf.where((t >= bounds_k - 1)[:, None], logp + self._only_eos, logp)  # the end, at the bound
            return logp, list(states), tf.where(finished[:, None], 0.0, self._weights_or_zeros(w, mask))

        _, seqs, atts, scores, lengths = samplers.beam_search(
            step, [rep(s) for s in states], B, K, tf.reduce_max(bounds), S, Vocabulary.bos_id, Vocabulary.eos_id,
            Vocabulary.pad_id)
        coverage_bonus = None
        if self.coverage_penalty:
            # Σ_j p_ij over the written tokens, for every real source position (the padding excluded).
            coverage = tf.clip_by_value(tf.reduce_sum(atts, axis=1), 1e-4, 1.0)
            coverage_bonus = self.coverage_penalty * tf.reduce_sum(tf.where(mask, tf.math.log(coverage), 0.0), axis=1)
        pick = samplers.best_beams(scores, lengths, K, self.length_penalty, coverage_bonus)
        return tf.gather(seqs, pick), tf.gather(atts, pick)

    def _decode(self, text, beam_size, max_length):
        src, n_source = self._source(text)
        bounds = self._bounds(n_source, max_length)
        beam_size = tf.clip_by_value(beam_size, 1, MAX_BEAM)
        ids, atts = tf.cond(beam_size <= 1, lambda: self.greedy(src, bounds), lambda: self.beam(src, bounds, beam_size))
        # Everything after the first <eos> is padding.
        after = tf.cumsum(tf.cast(ids == Vocabulary.eos_id, tf.int32), axis=1, exclusive=True) > 0
        ids = tf.where(after, Vocabulary.pad_id, ids)
        tokens = tf.gather(self._tgt_tokens, ids)
        if self.copy_unknown:
            tokens = tf.where(ids == Vocabulary.unk_id, self._copied_words(text, src, ids, atts), tokens)
        translation = detokenize(tokens, self.target_lang, self._truecase)
        if self.target_lang == "en":
            # Copied Chinese characters stand together, not one word each.
            for _ in range(2):
                translation = tf.strings.regex_replace(translation, r"(\p{Han}) (\p{Han})", r"\1\2")
        length = tf.reduce_sum(tf.cast(ids > Vocabulary.eos_id, tf.int32), axis=1)
        return {"translation": translation, "ids": ids, "attention": atts, "source": src, "length": length}

    def _copied_words(self, text, src, ids, atts):
        """For every target position, the source word (or name) to put in place of an ``<unk>`` ([B, T] strings).

        The model writes ``<unk>`` where a word it does not know goes (it learned so from name placeholders),
        so the candidates are the source words it does not know, when the sentence has any (else every
        source word, but from Chinese a word in Latin letters only: a known character is never copied into
        English, where it would stand for a word the model failed to write); among them the one the
        attention weighs most is chosen, with the unknown words next to it: a run of unknown words or
        characters is one name ("Zhang Wei", 张伟). English is read lowercased; the words put back keep the
        input's spelling when lowercasing did not change how the sentence splits into words. Nothing is copied (``""``) for punctuation, nor for an ``<unk>`` that
        copies the same run as the ``<unk>`` just before it.
        """
        S = tf.shape(src)[1]

        def dense(ragged):  # [B, S] strings, "" after the words
            x = ragged.to_tensor("")
            return tf.pad(x, [[0, 0], [0, S - tf.shape(x)[1]]], constant_values="")

        toks = self._tokens(text)[:, : MAX_SOURCE_TOKENS - 1]
        if self.source_lang == "en":
            cased = tokenize(text, "en", lowercase=False)[:, : MAX_SOURCE_TOKENS - 1]
            same = tf.equal(cased.row_lengths(), toks.row_lengths())
            words = tf.where(same[:, None], dense(cased), dense(toks))
        else:
            words = dense(tokenize(text, "zh", **self.zh_reading)[:, : MAX_SOURCE_TOKENS - 1])
        n = tf.cast(toks.row_lengths(), tf.int32)
        real = tf.range(S)[None, :] < n[:, None]  # not <eos>, not padding
        unknown = real & tf.equal(src, Vocabulary.unk_id)
        fallback = real
        if self.source_lang == "zh":  # a known Chinese character has no place in English: "Your name is 么."
            fallback &= ~tf.strings.regex_full_match(words, r".*\p{Han}.*")
        candidates = tf.where(tf.reduce_any(unknown, axis=1, keepdims=True), unknown, fallback)
        has_candidate = tf.reduce_any(candidates, axis=1, keepdims=True)
        pos = tf.argmax(tf.where(candidates[:, None, :], atts, -1.0), axis=2, output_type=tf.int32)
        # Runs of unknown words: run[s] numbers the run position s belongs to (known words: a run each).
        starts = unknown & ~tf.pad(unknown[:, :-1], [[0, 0], [1, 0]])
        run = tf.cumsum(tf.cast(starts | ~unknown, tf.int32), axis=1)
        run_at = tf.gather(run, pos, batch_dims=1)  # [B, T]
        unknown_at = tf.gather(unknown, pos, batch_dims=1)
        in_run = tf.equal(run[:, None, :], run_at[:, :, None]) & unknown[:, None, :] & unknown_at[:, :, None]
        in_run |= tf.equal(tf.range(S)[None, None, :], pos[:, :, None])
        joined = tf.strings.reduce_join(tf.where(in_run, words[:, None, :], ""), axis=2,
                                        separator=" " if self.source_lang == "en" else "")
        copied = tf.strings.strip(tf.strings.regex_replace(joined, " +", " "))
        unk = tf.equal(ids, Vocabulary.unk_id)
        after_unk = tf.pad(unk[:, :-1], [[0, 0], [1, 0]])
        prev_run = tf.pad(run_at[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
        keep = (tf.strings.regex_full_match(copied, r".*[\pL\pN].*") & ~(after_unk & tf.equal(run_at, prev_run))
                & has_candidate)
        return tf.where(keep, copied, "")

    # ---------------------------------------------------------------- signatures
    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="beam_size"),
                                  tf.TensorSpec([], tf.int32, name="max_length")])
    def run(self, text, beam_size, max_length):
        """Everything the signatures return, traced once (the signatures call this one graph function)."""
        # The batch is not checked: rnn-apps serve and the library send the sentences of long texts together.
        text, beam_size, max_length = graph_limits.checked(
            LIMITS, check_batch=False, text=text, beam_size=beam_size, max_length=max_length).values()
        with self._stored.scope():
            out = self._decode(text, beam_size, max_length)
        ids = out["ids"]
        target = tf.where(ids == Vocabulary.pad_id, "", tf.gather(self._tgt_labels, ids))
        toks = self._tokens(text)[:, : MAX_SOURCE_TOKENS - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(text)[0], 1], "<eos>"))
        return {
            "translation": out["translation"],
            "length": out["length"],
            "source_tokens": tf.concat([toks, eos], axis=1).to_tensor(""),
            "target_tokens": target,
            "attention": out["attention"],
        }

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serving_default(self, text):
        return {"translation": self.run(text, tf.constant(self.default_beam), tf.constant(0))["translation"]}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="beam_size"),
                                  tf.TensorSpec([], tf.int32, name="max_length")])
    def translate(self, text, beam_size, max_length):
        out = self.run(text, beam_size, max_length)
        return {"translation": out["translation"], "length": out["length"]}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="beam_size")])
    def attention(self, text, beam_size):
        out = self.run(text, beam_size, tf.constant(0))
        return {k: out[k] for k in ("translation", "source_tokens", "target_tokens", "attention")}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def tokenize(self, text):
        # Not checked: only tokenization (the server and the library tokenize pieces of texts to cut them
        # into sentences, before the checked signatures translate them).
        toks = self._tokens(text)
        unknown = self._src_table.lookup(toks.flat_values) < 0
        unk = tf.ragged.boolean_mask(toks, toks.with_flat_values(unknown))
        return {
            "tokens": toks.to_tensor(""),
            "length": tf.cast(toks.row_lengths(), tf.int32),
            "unknown_tokens": unk.to_tensor(""),
            "unknown_count": tf.cast(unk.row_lengths(), tf.int32),
        }


def export_translate(model, source_vocab: Vocabulary, target_vocab: Vocabulary, config: dict, truecase: dict,
                     app_dir: str, version: Optional[int] = None, summary: Optional[dict] = None,
                     default_beam: Optional[int] = None, length_penalty: float = LENGTH_PENALTY,
                     coverage_penalty: float = COVERAGE_PENALTY, copy_unknown: bool = True,
                     weights_dtype: str = "float16") -> str:
    """Export the translator to ``app_dir/<version>`` atomically; return the version directory.

    Args:
        default_beam: Beam width of ``serving_default`` and of the CLI without ``--beam`` (default 4).
        length_penalty: α of the length normalisation (0: none).
        coverage_penalty: β of the coverage penalty (0: none; models without attention have none).
        copy_unknown: Let the model write ``<unk>`` and put the attended source word in its place.
        weights_dtype: How the weights are stored: ``"float16"`` (half the size; the graph computes in
            float32) or ``"float32"``.
    """
    beam = int(default_beam if default_beam is not None else DEFAULT_BEAM)
    if not 1 <= beam <= MAX_BEAM:
        raise ValueError(f"default_beam must be from 1 to {MAX_BEAM}; received {beam}.")
    for name, value in (("length_penalty", length_penalty), ("coverage_penalty", coverage_penalty)):
        if not 0.0 <= float(value) <= 5.0:
            raise ValueError(f"{name} must be from 0 to 5; received {value}.")
    module = TranslateModule(model, source_vocab, target_vocab, config, truecase, default_beam=beam,
                             length_penalty=length_penalty, coverage_penalty=coverage_penalty,
                             copy_unknown=copy_unknown, weights_dtype=weights_dtype)
    signatures = {
        "serving_default": module.serving_default,
        "translate": module.translate,
        "attention": module.attention,
        "tokenize": module.tokenize,
    }

    meta = {
        "format": FORMAT,
        "config": config,
        "source_vocab": source_vocab.to_json(),
        "target_vocab": target_vocab.to_json(),
        "truecase": truecase,
        "decoding": {"default_beam": beam, "length_penalty": module.length_penalty,
                     "coverage_penalty": module.coverage_penalty, "copy_unknown": module.copy_unknown,
                     "weights_dtype": module.weights_dtype,
                     "max_source_tokens": MAX_SOURCE_TOKENS,
                     "max_output_tokens": MAX_OUTPUT_TOKENS, "max_beam": MAX_BEAM},
        # how the graph reads Chinese input (a Latin word one token; names learned letter by letter)
        **({"chinese_reading": {"latin_words": True, "spelled": list(module.zh_reading["spelled"])}}
           if module.source_lang == "zh" else {}),
        "summary": summary or {},
        "exported": exported_at(),
    }
    return save_module(module, signatures, app_dir, version, CONFIG_NAME, meta)


def export_result(result, app_dir: str, version: Optional[int] = None, **kwargs) -> str:
    """Export what :func:`rnn_apps.apps.translate.task.train` returned (``kwargs``: those of :func:`export_translate`)."""
    return export_translate(result["model"], result["source_vocab"], result["target_vocab"], result["config"],
                            result["truecase"], app_dir, version, **kwargs)


def load_config(model_dir: str) -> dict:
    """The ``assets.extra/translate.json`` of an exported translator."""
    return read_meta(model_dir, CONFIG_NAME, "translation")


def load_exported_model(model_dir: str):
    """The Keras :class:`~rnn_apps.apps.translate.model.Seq2Seq` of an exported translator, with its weights.

    Returns:
        ``(model, source_vocab, target_vocab, config, truecase)``, as :func:`rnn_apps.apps.translate.task.load_run_model`.
    """
    from rnn_apps.apps.translate.model import build_model

    meta = load_config(model_dir)
    cfg = meta["config"]
    src_vocab, tgt_vocab = Vocabulary.from_json(meta["source_vocab"]), Vocabulary.from_json(meta["target_vocab"])
    model = build_model(len(src_vocab), len(tgt_vocab), cfg)
    loaded = tf.saved_model.load(model_dir)
    saved = list(loaded.model_weights)
    if len(saved) != len(model.weights):
        raise ValueError(f"{model_dir} holds {len(saved)} weights but its settings build a model of {len(model.weights)}.")
    for v, w in zip(model.weights, saved):
        v.assign(tf.cast(w, v.dtype))
    return model, src_vocab, tgt_vocab, cfg, meta.get("truecase", {})
