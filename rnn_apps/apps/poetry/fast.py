"""A NumPy twin of the poem model's in-graph generation: the same poems, without importing TensorFlow.

Importing TensorFlow takes seconds, far longer than writing a poem (a few dozen steps of a small
network). :class:`NumpyPoemModel` reads an exported poem model's settings and vocabulary
(``assets.extra/poetry.json``) and its weights (``variables/``, through :mod:`rnn_apps.tensor_bundle`),
and reproduces :class:`rnn_apps.apps.poetry.export.PoemModule`'s ``generate`` and
``unknown_characters`` signatures in float32 NumPy:

* the same input normalisation (``_chars``: the graph's RE2 patterns, and OpenCC's character table,
  read only when a character is not in the vocabulary);
* the same decoding plan (``_plan``: forms, acrostics, starts, free form), with the same checks, and the
  same rhyme and metre constraints (:mod:`rnn_apps.apps.poetry.prosody`: the template drawn with the row's
  seed, a tone or rhyme mask at each position, the rhyme group narrowed at each rhyming position);
* the same step (embedding, LSTM / GRU / SimpleRNN layers with the builder's default settings, the
  tied output layer), the same masks (``_mask_table``) and closing rules (``_decode``);
* the same sampler (:mod:`rnn_apps.samplers`: temperature, top-k, top-p, an inverse-CDF draw with the
  counter-based SplitMix64 uniform of (row seed, step); greedy at temperature 0), one Python loop over
  the steps for the whole batch.

So a seed gives the same poem as the SavedModel, up to float32 rounding: the two compute the matrix
products in different orders, which can only matter where two choices are within about 1e-6 of each
other (a tie at the top for greedy decoding, a uniform draw on the edge of a character's interval).

Models it cannot run (another cell, other weights than the builder's) raise
:class:`UnsupportedModelError` at construction; :class:`rnn_apps.apps.poetry.generate.PoemGenerator`
then uses TensorFlow.
"""

from __future__ import annotations

import functools
import os
from typing import List, Optional, Sequence

import numpy as np

from rnn_apps import limits
from rnn_apps.apps.poetry import prosody
from rnn_apps.apps.poetry.constants import AUTO_FORM, FORMS, MAX_LENGTH, ModelReading, load_config
from rnn_apps.chinese import is_han
from rnn_apps.tensor_bundle import BundleError, BundleReader
from rnn_apps.vocab import SPECIALS, Vocabulary

PAD_ID, UNK_ID, BOS_ID, EOS_ID = Vocabulary.pad_id, Vocabulary.unk_id, Vocabulary.bos_id, Vocabulary.eos_id
NEG_INF = np.float32(-1e9)  # as rnn_apps.samplers.NEG_INF
SUPPORTED_CELLS = ("lstm", "gru", "simple_rnn")

_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB



class UnsupportedModelError(ValueError):
    """The NumPy engine cannot run this model (the TensorFlow engine can)."""


class ModelInputError(ValueError):
    """An input the model's graph refuses (the message of the graph's assertion)."""


# ----------------------------------------------------------------------------------------- sampling

def uniform(seeds: np.ndarray, step: int) -> np.ndarray:
    """:func:`rnn_apps.samplers.uniform` in NumPy: float32 [B] in (0, 1) from (row seed, step)."""
    s = (np.asarray(seeds, np.int64) & np.int64(0x7FFFFFFFFFFFFFFF)).astype(np.uint64)

    def mix(x):
        x = x + np.uint64(_GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
        return x ^ (x >> np.uint64(31))

    steps = np.full(s.shape, step, np.uint64) * np.uint64(_GOLDEN)
    bits = mix(mix(s) + steps)
    mantissa = (bits >> np.uint64(40)).astype(np.float32)
    return (mantissa + np.float32(0.5)) / np.float32(2.0**24)


def _sort_desc(x: np.ndarray) -> np.ndarray:
    return -np.sort(-x, axis=-1)


def sample(logits, seeds, step, temperature, top_k, top_p) -> np.ndarray:
    """:func:`rnn_apps.samplers.sample` in NumPy over a batch: int32 [B] token ids.

    ``logits`` float32 [B, V] (already masked); ``temperature``, ``top_p`` float32 [B]; ``top_k`` int32 [B].
    """
    B, V = logits.shape
    t = np.where(temperature > 0, temperature, np.float32(1.0)).astype(np.float32)
    scaled = logits / t[:, None]
    want_k, want_p = bool((top_k > 0).any()), bool((top_p < 1.0).any())
    if want_k or want_p:
        srt = _sort_desc(scaled)
        if want_k:
            k = np.clip(top_k, 1, V)
            kth = srt[np.arange(B), k - 1]
            off = (top_k <= 0)[:, None]
            scaled = np.where((scaled >= kth[:, None]) | off, scaled, NEG_INF)
            # the filtered row sorted: the same values in the same order, those below the k-th masked
            srt = np.where((srt >= kth[:, None]) | off, srt, NEG_INF)
        if want_p:
            e = np.exp(srt - srt[:, :1])
            probs = e / e.sum(axis=-1, keepdims=True)
            before = np.zeros_like(probs)
            np.cumsum(probs[:, :-1], axis=-1, out=before[:, 1:])
            kept = before < top_p[:, None]
            # The filter compares probabilities, as samplers.top_p_filter does: a token as likely as the last
            # one kept stays, even where its logit is a little lower (logits a few ulps apart can give the
            # same float32 probability), so both engines keep the same tokens.
            cutoff = np.where(kept, e, np.float32(np.inf)).min(axis=-1)
            likely = np.exp(scaled - srt[:, :1]) >= cutoff[:, None]
            scaled = np.where(likely | (top_p >= 1.0)[:, None], scaled, NEG_INF)
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    cdf = np.cumsum(probs, axis=-1)
    target = uniform(seeds, step)[:, None] * cdf[:, -1:]
    drawn = np.minimum((cdf < target).sum(axis=-1), V - 1).astype(np.int32)
    return np.where(temperature > 0, drawn, np.argmax(logits, axis=-1).astype(np.int32))


# ----------------------------------------------------------------------------------------- the model

def _sigmoid(x):
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax over the last axis."""
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class _Layer:
    """One recurrent layer's weights and step (the rnn_apps cells with build_char_rnn's settings)."""

    def __init__(self, cell: str, kernel, recurrent, bias):
        self.cell, self.kernel, self.recurrent, self.bias = cell, kernel, recurrent, bias
        self.units = recurrent.shape[0]
        self.n_states = 2 if cell == "lstm" else 1

    def step(self, x, states):
        if self.cell == "lstm":  # gate columns i | f | c | o; states [h, c]
            h, c = states
            z = (x @ self.kernel + self.bias) + h @ self.recurrent
            zi, zf, zc, zo = np.split(z, 4, axis=-1)
            c = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(zc)
            h = _sigmoid(zo) * np.tanh(c)
            return h, [h, c]
        if self.cell == "gru":  # z | r | h; h = z h_prev + (1 - z) h~
            (h,) = states
            u = self.units
            if self.bias.ndim == 2:  # reset_after (Keras's default): biases (2, 3u)
                xp = x @ self.kernel + self.bias[0]
                hp = h @ self.recurrent + self.bias[1]
                z = _sigmoid(xp[:, :u] + hp[:, :u])
                r = _sigmoid(xp[:, u : 2 * u] + hp[:, u : 2 * u])
                hh = np.tanh(xp[:, 2 * u :] + r * hp[:, 2 * u :])
            else:
                xp = x @ self.kernel + self.bias
                hzr = h @ self.recurrent[:, : 2 * u]
                z = _sigmoid(xp[:, :u] + hzr[:, :u])
                r = _sigmoid(xp[:, u : 2 * u] + hzr[:, u:])
                hh = np.tanh(xp[:, 2 * u :] + (r * h) @ self.recurrent[:, 2 * u :])
            h = hh + z * (h - hh)
            return h, [h]
        (s,) = states  # simple_rnn
        s = np.tanh((x @ self.kernel + self.bias) + s @ self.recurrent)
        return s, [s]


@functools.lru_cache(maxsize=1)
def _blas_functions():
    """``(set_num_threads, get_num_threads)`` of NumPy's OpenBLAS, looked up once a process; None for
    another BLAS."""
    found = None
    try:
        import ctypes
        import glob

        libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
        for path in sorted(glob.glob(os.path.join(libs, "*openblas*.so*"))):
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same library
            for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                         "openblas_set_num_threads"):
                getter = name.replace("_set_", "_get_")
                if hasattr(lib, name) and hasattr(lib, getter):
                    found = (getattr(lib, name), getattr(lib, getter))
                    found[1].restype = ctypes.c_int
                    break
            if found:
                break
    except Exception:  # pragma: no cover - another BLAS, or none: leave the threads alone
        found = None
    return found


class _single_blas_thread:
    """Run small matrix products on one OpenBLAS thread (at batch 1 a step's products take well under a
    millisecond, less than waking and synchronising other threads, which on a busy machine can cost ten
    times the product). Does nothing when NumPy's BLAS is not a recognisable OpenBLAS."""

    def __init__(self, enabled: bool):
        self.fns = _blas_functions() if enabled else None
        self.saved = None

    def __enter__(self):
        if self.fns:
            self.saved = int(self.fns[1]())
            if self.saved != 1:
                self.fns[0](1)
        return self

    def __exit__(self, *exc):
        if self.fns and self.saved not in (None, 1):
            self.fns[0](self.saved)
        return False


SMALL_BATCH = 16  # batches up to this size decode on one BLAS thread


def _weight_key(i: int) -> str:
    return f"model_weights/{i}/.ATTRIBUTES/VARIABLE_VALUE"


class NumpyPoemModel:
    """An exported poem model run with NumPy (see the module docstring).

    Args:
        model_dir: A version directory (holding ``saved_model.pb``, ``variables/`` and ``assets.extra``).
        meta: Its ``poetry.json`` when already read.

    Raises:
        UnsupportedModelError: a cell or weights this engine does not implement, or weights it cannot read.
    """

    def __init__(self, model_dir: Optional[str], meta: Optional[dict] = None, weights: Optional[list] = None):
        self.model_dir = model_dir
        self.meta = meta if meta is not None else load_config(model_dir)
        cfg = self.meta["config"]
        self.config = cfg
        self.script = cfg.get("script", "simplified")
        cell = str(cfg.get("cell", "")).lower()
        if cell not in SUPPORTED_CELLS:
            raise UnsupportedModelError(f"the NumPy engine runs {', '.join(SUPPORTED_CELLS)} cells, not {cell!r}")
        self.tokens: List[str] = list(self.meta["vocab"]["tokens"])
        self.index = {t: i for i, t in enumerate(self.tokens) if i >= len(SPECIALS)}
        self.reading = ModelReading(self.tokens, self.script)
        V = len(self.tokens)
        self.vocab_size = V
        self._set_weights(cell, cfg, V, weights if weights is not None else self._read_weights())
        # Token classes and the allowed-next-token table, as PoemModule builds them.
        content = np.array([i >= len(SPECIALS) and is_han(t) for i, t in enumerate(self.tokens)])
        self.content = content
        self.comma_id, self.period_id = self.index["，"], self.index["。"]
        free = np.ones(V, bool)
        free[[PAD_ID, UNK_ID, BOS_ID]] = False
        punct = np.zeros(V, bool)
        punct[[self.comma_id, self.period_id]] = True
        eos = np.zeros(V, bool)
        eos[EOS_ID] = True
        comma = np.zeros(V, bool)
        comma[self.comma_id] = True
        allowed = np.stack([content, free & ~punct & ~eos, free & ~punct, free & ~eos, free & ~eos & ~comma])
        self.mask_table = np.where(allowed, np.float32(0.0), NEG_INF).astype(np.float32)
        self.out_tokens = ["" if i < len(SPECIALS) else t for i, t in enumerate(self.tokens)]
        self._prosody: Optional[dict] = None

    def prosody_arrays(self) -> dict:
        """The tokens' tone and rhyme bits (``Tables.vocab_arrays``): the export's own (``poetry.json``'s
        ``prosody``) when it has them, else built from the package's tables; and the template code table."""
        if self._prosody is None:
            saved = self.meta.get("prosody")
            if saved:
                arrays = {k: np.asarray(saved[k], np.int32) for k in ("tone", "rhyme")}
            else:
                arrays = prosody.Tables.load().vocab_arrays(self.tokens)
            arrays["codes"] = prosody.code_table(FORMS)
            self._prosody = arrays
        return self._prosody

    @classmethod
    def from_weights(cls, config: dict, tokens: Sequence[str], weights: Sequence[np.ndarray]) -> "NumpyPoemModel":
        """A model from ``build_char_rnn`` settings, the full token list and the weights in ``model.weights`` order."""
        meta = {"config": dict(config), "vocab": {"tokens": list(tokens)}}
        return cls(None, meta, [np.asarray(w, np.float32) for w in weights])

    def _read_weights(self) -> list:
        try:
            reader = BundleReader(os.path.join(self.model_dir, "variables", "variables"))
            keys = set(reader.keys())
            n = 0
            while _weight_key(n) in keys:
                n += 1
            return [reader.get_tensor(_weight_key(i)) for i in range(n)]
        except (BundleError, OSError) as e:
            raise UnsupportedModelError(f"cannot read the weights without TensorFlow: {e}") from None

    def _set_weights(self, cell: str, cfg: dict, V: int, ws: list) -> None:
        """Check the weights against build_char_rnn's layout (embedding; kernel, recurrent kernel and bias of
        each layer; the projection when units != embedding_dim) and keep them."""
        if not ws or any(w.dtype != np.float32 for w in ws):
            raise UnsupportedModelError("the weights are not the float32 model_weights of a poem model export")
        E, units, L = int(cfg.get("embedding_dim", 0)), int(cfg.get("units", 0)), int(cfg.get("num_layers", 0))
        blocks = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
        expected = [(V, E)]
        for i in range(L):
            expected += [(E if i == 0 else units, blocks * units), (units, blocks * units)]
            bias_is_2d = cell == "gru" and len(ws) > len(expected) and ws[len(expected)].ndim == 2  # reset_after
            expected.append((2, 3 * units) if bias_is_2d else (blocks * units,))
        if units != E:
            expected.append((units, E))
        if [tuple(w.shape) for w in ws] != expected:
            raise UnsupportedModelError(
                f"weights of shapes {[tuple(w.shape) for w in ws]}, not the {expected} of build_char_rnn's {cell} model"
            )
        self.embedding = ws[0]
        self.layers = [_Layer(cell, ws[1 + 3 * i], ws[2 + 3 * i], ws[3 + 3 * i]) for i in range(L)]
        self.projection = ws[1 + 3 * L] if units != E else None
        self.embedding_t = np.ascontiguousarray(ws[0].T)

    # ---------------------------------------------------------------- the network
    def zero_states(self, batch: int):
        return [[np.zeros((batch, lay.units), np.float32) for _ in range(lay.n_states)] for lay in self.layers]

    def step(self, prev: np.ndarray, states):
        """Logits [B, V] after feeding token ids ``prev`` [B]; and the new states."""
        x = self.embedding[prev]
        new = []
        for lay, s in zip(self.layers, states):
            x, s = lay.step(x, s)
            new.append(s)
        if self.projection is not None:
            x = x @ self.projection
        return x @ self.embedding_t, new

    def sequence_logits(self, ids: np.ndarray) -> np.ndarray:
        """Logits [B, T, V] of the model over token ids [B, T] (as the Keras model, training=False)."""
        ids = np.asarray(ids)
        states = self.zero_states(ids.shape[0])
        out = []
        with np.errstate(over="ignore"):
            for t in range(ids.shape[1]):
                logits, states = self.step(ids[:, t], states)
                out.append(logits)
        return np.stack(out, axis=1)

    def reader(self) -> "PoemReader":
        """A :class:`PoemReader` at the start of a poem."""
        return PoemReader(self)

    def infill_log_probabilities(self, before: str, candidates: Sequence[str], after: str,
                                 ends: bool = True) -> np.ndarray:
        """log p(c · after | before) for each candidate character c (see :meth:`PoemReader.continuations`):
        over the candidates, the log-probability of the whole text with each in the gap (what the ``score``
        signature gives) up to a shared constant."""
        reader = self.reader()
        reader.read(before)
        return reader.continuations(candidates, after, ends)

    # ---------------------------------------------------------------- text -> ids
    def chars(self, text: str) -> List[str]:
        """The characters of ``text`` after the graph's normalisation and script conversion (``_chars``)."""
        return self.reading(text)

    def unknown_characters(self, text: str) -> str:
        """The characters of ``text`` the model does not know, after conversion (the signature's output)."""
        return self.reading.unknown(text)

    def _ids(self, text: str) -> List[int]:
        return [self.index.get(c, UNK_ID) for c in self.chars(text)]

    # ---------------------------------------------------------------- plans
    def _check(self, prompt, form, acrostic, max_length, rhyme, metre) -> None:
        """The graph's assertions over the batch, with the messages PoemGenerator shows for them."""
        # the options as the export's input checks (rnn_apps.graph_limits) refuse them, in the same words
        for name, values in (("form", form), ("rhyme", rhyme), ("metre", metre)):
            for i, value in enumerate(values):
                with limits.errors_as(ModelInputError):
                    limits.check_text(limits.APPS["poetry"], name, value, i if len(values) > 1 else None)
        for what, texts in (("The start", prompt), ("The acrostic", acrostic)):
            unknown = [self.unknown_characters(t) for t in texts]
            if any(unknown):
                raise ModelInputError(_assertion(f"{what} has characters the model does not know:", unknown))
        too_long_acrostic = too_long_start = False
        for p, f, a, ml in zip(prompt, form, acrostic, max_length):
            n, m = FORMS[f]
            heads = sum(1 for i in self._ids(a) if self.content[i])
            if m == 0 and heads:
                n, m = 7, heads + heads % 2
            too_long_acrostic |= heads > m
            p_ids = self._ids(p)
            cp_len = sum(1 for i in p_ids if self.content[i])
            too_long_start |= (cp_len > m * n) if m > 0 else (len(p_ids) > ml - 3)
        if too_long_acrostic:
            raise ModelInputError(_assertion("The acrostic has more characters than the form has lines:", acrostic))
        if too_long_start:
            raise ModelInputError(
                _assertion("The start is longer than the poem it should begin (form slots or max_length):", prompt)
            )

    def _check_heads(self, prompt, form, acrostic) -> None:
        """A start that opens a line with another character than the acrostic asks for is refused.

        The graph (version 10) lets the acrostic's character replace the start's there; rnn_apps refuses
        (:func:`rnn_apps.apps.poetry.generate.check_start_fits_acrostic`, the same message as the library's).
        """
        from rnn_apps.apps.poetry.generate import PoemError, check_start_fits_acrostic

        for b, (p, f, a) in enumerate(zip(prompt, form, acrostic)):
            try:
                check_start_fits_acrostic(p, a, f, self.chars)
            except PoemError as e:
                raise ModelInputError(f"{e} (row {b})" if len(prompt) > 1 else str(e)) from None

    @staticmethod
    def _drawn_forms(prompt, form, acrostic, seed, chars=None) -> list:
        """``form`` with each "auto" row's form drawn as the graph draws it (``PoemModule._auto_form``), except
        that a form whose line heads the start and the acrostic disagree on is not drawn when another fits."""
        form = list(form)
        if AUTO_FORM not in form:
            return form
        from rnn_apps.apps.poetry.generate import auto_forms, draw_form  # the rule, written once

        drawn = []
        for p, f, a, s in zip(prompt, form, acrostic, seed):
            if f == AUTO_FORM:
                fits = auto_forms(p, a, chars)
                f = draw_form(fits, s) if fits else ""
            drawn.append(f)
        return drawn

    def _plan(self, prompt: str, form: str, acrostic: str, max_length: int):
        """One row's plan (ids >= 0 forced, -1 a Han character, -2 free), its length and whether it has a form."""
        n, m = FORMS[form]
        p_ids = self._ids(prompt)
        heads = [i for i in self._ids(acrostic) if self.content[i]]
        if m == 0 and heads:
            n, m = 7, len(heads) + len(heads) % 2
        formed = m > 0
        cp = [i for i in p_ids if self.content[i]]
        if not formed:
            return p_ids, max_length, False
        form_len = m * (n + 1)
        plan = []
        for pos in range(form_len + 1):
            col, line = pos % (n + 1), pos // (n + 1)
            slot = line * n + col
            if pos == form_len:
                plan.append(EOS_ID)
            elif col == n:
                plan.append(self.comma_id if line % 2 == 0 else self.period_id)
            elif col == 0 and line < len(heads):
                plan.append(heads[line])
            elif slot < len(cp):
                plan.append(cp[slot])
            else:
                plan.append(-1)
        return plan, form_len + 1, True

    # ---------------------------------------------------------------- generation
    def generate(
        self,
        prompt: Sequence[str],
        form: Sequence[str],
        acrostic: Sequence[str],
        temperature: Sequence[float],
        top_k: Sequence[int],
        top_p: Sequence[float],
        seed: Sequence[int],
        max_length: Sequence[int],
        rhyme: Optional[Sequence[str]] = None,
        metre: Optional[Sequence[str]] = None,
    ) -> dict:
        """The SavedModel's ``generate`` signature: one entry per row in each argument.

        ``rhyme`` (pingshui, xinyun, none) and ``metre`` (strict, loose, none) apply to the four forms; ""
        (and leaving them out) means pingshui and loose.

        Returns:
            ``{"text": list of str, "characters": int32 [B]}``.

        Raises:
            ModelInputError: what the graph's assertions refuse (unknown characters or form, an
            acrostic or start that does not fit).
        """
        B = len(prompt)
        rhyme = [""] * B if rhyme is None else list(rhyme)
        metre = [""] * B if metre is None else list(metre)
        if not all(len(a) == B for a in (form, acrostic, temperature, top_k, top_p, seed, max_length, rhyme, metre)):
            raise ValueError("Every argument of generate needs one entry per row.")
        max_length = np.clip(np.asarray(max_length, np.int64), 8, MAX_LENGTH)
        asked = list(form)
        form = self._drawn_forms(prompt, form, acrostic, seed, self.chars)
        self._check(prompt, form, acrostic, [int(x) for x in max_length], rhyme, metre)
        self._check_heads(prompt, asked, acrostic)
        plans, cache = [], {}
        for row in zip(prompt, form, acrostic, (int(x) for x in max_length)):
            if row not in cache:
                cache[row] = self._plan(*row)
            plans.append(cache[row])
        row_len = np.array([p[1] for p in plans], np.int64)
        formed = np.array([p[2] for p in plans], bool)
        T = int(row_len.max()) if B else 0
        plan = np.full((B, max(T, 1)), -2, np.int64)
        for b, (p, _, _) in enumerate(plans):
            plan[b, : len(p)] = p
        seed = np.asarray(seed, np.int64)
        system = np.array([prosody.RHYMES.index(r or prosody.DEFAULT_RHYME) for r in rhyme], np.int64)
        codes = self._codes(plan, form, system, metre, seed)
        ids = self._decode(
            plan, row_len, formed, np.asarray(temperature, np.float32), np.asarray(top_k, np.int32),
            np.asarray(top_p, np.float32), seed, codes, system,
        )
        texts = []
        for row in ids:
            toks = []
            for i in row:
                if i == EOS_ID:
                    break
                toks.append(self.out_tokens[i])
            text = "".join(toks)
            texts.append(text[: text.rfind("。") + 1])  # end at the last full sentence (the graph's safety net)
        return {"text": texts, "characters": np.array([len(t) for t in texts], np.int32)}

    def _codes(self, plan, form, system, metre, seed) -> np.ndarray:
        """``PoemModule._codes``: each row's constraint codes [B, T] (zeros outside the four forms).

        The template is drawn with the row's seed among those the forced characters (start, acrostic) fit,
        or, when none fits, among those they break least.
        """
        arrays = self.prosody_arrays()
        table = arrays["codes"]
        B, T = plan.shape
        W = table.shape[-1]
        forms = list(FORMS)
        f_idx = np.array([forms.index(f) for f in form])
        m_idx = np.array([prosody.METRES.index(m or prosody.DEFAULT_METRE) for m in metre])
        cand = table[f_idx, m_idx, system]  # [B, K, W]
        forced = np.full((B, W), -2, np.int64)
        forced[:, : min(T, W)] = plan[:, :W]
        tone, rbits = arrays["tone"][system], arrays["rhyme"][system]  # [B, V]
        ids = np.maximum(forced, 0)
        t, r = np.take_along_axis(tone, ids, 1)[:, None], np.take_along_axis(rbits, ids, 1)[:, None]
        is_forced = (forced >= 0)[:, None]
        bad = is_forced & (((cand == prosody.NEED_PING) & (t & prosody.PING == 0))
                           | ((cand == prosody.NEED_ZE) & (t & prosody.ZE == 0)) | ((cand == prosody.RHYME) & (r == 0)))
        common = np.bitwise_and.reduce(np.where(is_forced & (cand == prosody.RHYME), r, np.int32(-1)), axis=-1)
        usable = np.bitwise_or.reduce(rbits, axis=-1)  # [B] the groups with enough characters
        rhymes_ok = ((common & usable[:, None]) != 0) | ~(cand == prosody.RHYME).any(axis=-1)
        conflicts = bad.sum(axis=-1) + ~rhymes_ok  # [B, K]
        fits = conflicts == conflicts.min(axis=-1, keepdims=True)
        n_fit = fits.sum(axis=-1)
        u = uniform(seed, prosody.TEMPLATE_STEP)
        pick = np.minimum(np.floor(u * n_fit.astype(np.float32)).astype(np.int64), n_fit - 1)
        k = np.argmax(fits & (np.cumsum(fits, axis=-1) - 1 == pick[:, None]), axis=-1)
        codes = np.zeros((B, max(T, W)), np.int32)
        codes[:, :W] = cand[np.arange(B), k]
        return codes[:, :T]

    def _decode(self, plan, row_len, formed, temperature, top_k, top_p, seed, codes, system) -> np.ndarray:
        """``PoemModule._decode``: token ids [B, T] following ``plan``, padding after each row's end."""
        B, T = plan.shape
        out = np.zeros((B, T), np.int64)
        prev = np.full(B, BOS_ID, np.int64)
        prev2 = np.full(B, BOS_ID, np.int64)
        done = np.zeros(B, bool)
        states = self.zero_states(B)
        content, masks, period = self.content, self.mask_table, self.period_id
        arrays = self.prosody_arrays()
        tone, rbits = arrays["tone"][system], arrays["rhyme"][system]  # [B, V]
        rows = np.arange(B)
        group = np.full(B, -1, np.int32)  # the rhyme groups still open (bits), narrowed at each rhyming place
        used = np.full((B, prosody.MAX_LINE_ENDS), -1, np.int64)  # the line ends so far: no rhyme repeats one
        vocab = np.arange(self.vocab_size)
        # exp overflow in the sigmoid of very negative inputs gives 0, as it should
        with np.errstate(over="ignore"), _single_blas_thread(B <= SMALL_BATCH):
            for t in range(T):
                if done.all():
                    break
                logits, states = self.step(prev, states)
                p = plan[:, t]
                remaining = row_len - t
                prev_han = content[prev]
                case = np.where(prev == period, 2, np.where(prev_han, np.where(remaining <= 3, 4, 3), 1))
                case = np.where(p == -1, 0, case)
                c = codes[:, t]
                guping = (c == prosody.GUPING) & (tone[rows, prev2] & prosody.PING == 0)
                need = np.where((c == prosody.NEED_PING) | guping, prosody.PING, np.where(c == prosody.NEED_ZE, prosody.ZE, 0))
                fresh = ~(used[:, :, None] == vocab[None, None, :]).any(axis=1)
                ok = np.where((c == prosody.RHYME)[:, None], ((rbits & group[:, None]) != 0) & fresh,
                              ((tone & need[:, None]) != 0) | (need == 0)[:, None])
                allowed = masks[case] == 0
                ok |= ~(ok & allowed).any(axis=-1, keepdims=True)  # no candidate left: the plain mask (never met)
                drawn = sample(np.where(ok, logits + masks[case], NEG_INF), seed, t, temperature, top_k, top_p)
                nxt = np.where(p >= 0, p, drawn)
                closing = ~formed & (p == -2)
                nxt = np.where(closing & (remaining == 2) & prev_han, period, nxt)
                nxt = np.where(closing & (((remaining == 2) & (prev == period)) | (remaining == 1)), EOS_ID, nxt)
                nxt = np.where(done, PAD_ID, nxt)
                out[:, t] = nxt
                rhymed = c == prosody.RHYME
                narrowed = group & rbits[rows, nxt]  # a forced character outside the group leaves it as it was
                group = np.where(rhymed & (narrowed != 0), narrowed, group)
                # a line ended (a character, then ， or 。): its last character joins the line ends
                ended = ~done & content[prev] & ((nxt == self.comma_id) | (nxt == period))
                used = np.where(ended[:, None], np.concatenate([used[:, 1:], prev[:, None]], axis=1), used)
                done = done | (nxt == EOS_ID) | (t + 1 >= row_len)
                prev2, prev = prev, nxt
        return out


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "'": "\\'", "\\": "\\\\"}


class PoemReader:
    """Reads a text left to right with a poem model and scores what may come next: how well each candidate
    for a gap joins the text around it (infilling by the chain rule of a left-to-right language model).

    The model reads the text once, from its start token; :meth:`continuations` runs the candidates and the
    text after the gap as one batch from the state reached. Characters the model does not know are read
    as ``<unk>``, as the ``score`` signature reads them.

    Args:
        model: The poem model.
    """

    def __init__(self, model: NumpyPoemModel):
        self.model = model
        self.states = model.zero_states(1)
        self.logits = None
        self._feed([BOS_ID])

    def _feed(self, ids) -> None:
        with np.errstate(over="ignore"):
            for i in ids:
                self.logits, self.states = self.model.step(np.array([i], np.int64), self.states)

    def read(self, text: str) -> None:
        """Read ``text`` (the model's state moves past it)."""
        self._feed(self.model._ids(text))

    def continuations(self, candidates: Sequence[str], after: str, ends: bool = True) -> np.ndarray:
        """log p(c · after | what was read) for each candidate character c; the reader does not move.

        Args:
            candidates: One character each.
            after: The text after the gap (a window of it is enough: its far end changes the candidates'
                scores little).
            ends: Whether the text ends after ``after`` (the end token is scored too).

        Returns:
            float64 [len(candidates)] natural-log probabilities.
        """
        if any(not isinstance(c, str) or len(c) != 1 for c in candidates):
            raise ValueError(f"each candidate must be one character; received {list(candidates)!r}.")
        K = len(candidates)
        if K == 0:
            return np.zeros(0)
        m = self.model
        cand = np.array([(m._ids(c) or [UNK_ID])[0] for c in candidates], np.int64)
        total = _log_softmax(self.logits[0].astype(np.float64))[cand]
        states = [[np.repeat(s, K, axis=0) for s in layer] for layer in self.states]
        prev = cand
        with np.errstate(over="ignore"):
            for i in m._ids(after) + ([EOS_ID] if ends else []):
                logits, states = m.step(prev, states)
                total += _log_softmax(logits.astype(np.float64))[:, i]
                prev = np.full(K, i, np.int64)
        return total


def _c_escape(text: str) -> str:
    """absl's Utf8SafeCEscape, as TensorFlow prints strings in assertion messages."""
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\{ord(c):03o}")
        else:
            out.append(c)
    return "".join(out)


def _assertion(message: str, values: Sequence[str], summarize: int = 8) -> str:
    """The message of a failed ``tf.debugging.Assert(cond, [message, values], summarize=8)`` as
    :func:`rnn_apps.apps.poetry.generate.graph_error_message` shows it: the message, then the batch's values."""
    shown = " ".join(_c_escape(v) for v in list(values)[:summarize]) + ("..." if len(values) > summarize else "")
    return f"{_c_escape(message)} {shown.strip()}"
