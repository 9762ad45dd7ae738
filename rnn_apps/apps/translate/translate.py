"""Library API over an exported translator: translate texts, read them from files or stdin, get alignments.

The model does the work in its graph (see :mod:`rnn_apps.apps.translate.export`); this module loads it,
refuses input it cannot answer with a message a person can act on, and shapes the results:

* Empty (or whitespace-only) text: an error naming the text.
* Text none of whose words the model knows (``"Xylophonic zqwx."``): an error naming the words; some unknown
  words: a translation, with the unknown words listed (they are read as ``<unk>``).
* Text of several sentences (a paragraph): cut into sentences, a sentence longer than 60 tokens into
  pieces; each is translated on its own and the translations are joined (:mod:`rnn_apps.sentences`, as
  ``rnn-apps serve`` does).

The checks and their messages are :mod:`rnn_apps.limits`' (the server's too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Optional, Sequence

from rnn_apps import limits, textio
from rnn_apps.apps.base import Predictor, check_batch_size
from rnn_apps.apps.translate import data as tdata
from rnn_apps.apps.translate.text import lost_numbers
from rnn_apps.paths import default_model_dir
from rnn_apps.sentences import join_pieces, sentence_pieces

LIMITS = limits.APPS["translate"]
MAX_TEXT_CHARS = LIMITS.max_chars["text"]  # the limit `rnn-apps serve` applies too


class TranslateError(ValueError):
    """Input the translator cannot answer, or bad arguments (with a message that says what to do)."""


@dataclass
class Translation:
    source: str
    translation: str
    unknown_words: list = field(default_factory=list)
    sentences: int = 1
    reached_max_length: bool = False  # a sentence's translation ran to max_length: it may be cut short
    lost_numbers: list = field(default_factory=list)  # numbers of the source the translation does not carry

    def to_dict(self) -> dict:
        return {"source": self.source, "translation": self.translation, "unknown_words": self.unknown_words,
                "sentences": self.sentences, "reached_max_length": self.reached_max_length,
                "lost_numbers": self.lost_numbers}


@dataclass
class Alignment:
    """The attention of one translation: ``weights[i, j]`` is target token i's weight on source token j."""

    source: str
    translation: str
    source_tokens: list
    target_tokens: list
    weights: object  # numpy float32 [len(target_tokens), len(source_tokens)]
    has_attention: bool = True


def read_texts_file(path: str, stdin: Optional[BinaryIO] = None) -> list[str]:
    """Texts of a file, one a line; ``-`` reads ``stdin`` (a binary stream)."""
    return textio.read_texts_file(path, stdin, TranslateError, "text")


def _is_latin(ch: str) -> bool:
    """Whether ``ch`` is a letter of the Latin script (English's: ``a``, ``É``, fullwidth ``Ａ``)."""
    import unicodedata

    return ch.isalpha() and "LATIN" in unicodedata.name(ch, "")


def _pair_cell(cells: Sequence[str], source_lang: str) -> Optional[int]:
    """The index of the cell to translate of a line's tab-separated ``cells`` when the line is a row of a table
    of pairs, else None (the line is translated whole).

    A row of pairs has a cell with Chinese characters and another cell with Latin letters (Tatoeba's pairs:
    English, Chinese, attribution). Its cell to translate holds letters of ``source_lang``: the first cell with
    Chinese characters (``zh``) or with Latin letters (``en``), one without the other language's letters first.
    A line of one language with a tab (``Name:<TAB>John Smith``, Tatoeba's ``1276<TAB>eng<TAB>Let's try
    something.``) is no row of pairs: it is translated whole, not one of its cells (the id ``1276``).
    """
    from rnn_apps.chinese import is_han

    han = [k for k, c in enumerate(cells) if any(map(is_han, c))]
    latin = [k for k, c in enumerate(cells) if any(map(_is_latin, c))]
    if not any(i != j for i in han for j in latin):  # both languages, in different cells
        return None
    mine, other = (han, latin) if source_lang == "zh" else (latin, han)
    return next((k for k in mine if k not in other), mine[0])


def source_columns(texts: Sequence[str], source_lang: str) -> tuple[list, dict]:
    """The texts to translate of lines that are rows of a table of pairs (tab-separated cells in both
    languages, such as the Tatoeba files: English, Chinese, attribution): their cell in the source language
    (:func:`_pair_cell`), so that a table of pairs is not translated whole, both languages at once. Other texts
    (one given on the command line, a line of one language) are kept as they are.

    Returns:
        ``(texts, columns)``: the texts, each row of pairs replaced by its cell (a
        :class:`~rnn_apps.textio.Line` that keeps its origin and its file), and for each file that holds a row
        of pairs (its :attr:`~rnn_apps.textio.Line.source`), how many of its lines were read from each column
        (counted from 1), with column 0 for its lines translated whole: ``{"pairs.tsv": {1: 40, 0: 2}}``.
    """
    out, counts = [], {}
    for text in texts:
        source = getattr(text, "source", None)
        if source is None:  # not read from a file or standard input
            out.append(text)
            continue
        per_file = counts.setdefault(source, {})
        cells = [c.strip() for c in text.split("\t")] if "\t" in text else []
        k = _pair_cell(cells, source_lang) if cells else None
        if k is None:
            out.append(text)
            per_file[0] = per_file.get(0, 0) + 1
            continue
        out.append(textio.Line(cells[k], text.origin, getattr(text, "blank_before", 0), source))
        per_file[k + 1] = per_file.get(k + 1, 0) + 1
    return out, {name: n for name, n in counts.items() if any(n.keys() - {0})}


class Translator(Predictor):
    """Translate with an exported translation model.

    Args:
        model_dir: A version directory or an app directory such as ``models/translate`` (newest version);
            default: the shipped model of ``direction``.
        direction: ``"en-zh"`` (shipped in ``models/translate``) or ``"zh-en"`` (``models/translate-zh-en``);
            with ``model_dir``, the model must translate this way. Default: en-zh, or the model's.
    """

    app = "translate"

    def __init__(self, model_dir: Optional[str] = None, direction: Optional[str] = None):
        if direction is not None:
            tdata.parse_direction(direction)  # a clear error for anything but en-zh / zh-en
        if model_dir is None and direction == "zh-en":
            model_dir = default_model_dir("translate-zh-en")
        super().__init__(model_dir)
        if direction is not None and self.config["direction"] != direction:
            raise TranslateError(f"{self.model_dir} translates {self.config['direction']}, not {direction}; "
                                 f"leave out --model for the shipped {direction} model.")
        self.source_lang, self.target_lang = tdata.parse_direction(self.config["direction"])
        self.decoding = self.meta.get("decoding", {})
        self.default_beam = int(self.decoding.get("default_beam", 1))
        self.max_beam = int(self.decoding.get("max_beam", 16))

    # ---------------------------------------------------------------- checks
    def _beam(self, beam: Optional[int]) -> int:
        beam = self.default_beam if beam is None else beam
        with limits.errors_as(TranslateError):
            beam = limits.as_integer(beam, "beam")  # NumPy's integers too
            limits.check_number(LIMITS, "beam_size", beam, where="beam")
        return beam

    def tokenize(self, texts: Sequence[str]) -> list[dict]:
        """The source tokens of each text and those the model does not know."""
        import tensorflow as tf

        out = self.signatures["tokenize"](text=tf.constant(list(texts), tf.string))
        rows = []
        for toks, n, unk, k in zip(out["tokens"].numpy(), out["length"].numpy(), out["unknown_tokens"].numpy(),
                                   out["unknown_count"].numpy()):
            rows.append({"tokens": [t.decode("utf-8") for t in toks[:n]],
                         "unknown": list(dict.fromkeys(t.decode("utf-8") for t in unk[:k]))})
        return rows

    def _check(self, texts: Sequence[str]) -> list[dict]:
        self.check_texts(texts, TranslateError, "Text", "No text to translate.")
        info = self.tokenize(texts)
        for i, (text, row) in enumerate(zip(texts, info), 1):
            self._check_words(text, row, i)
        return info

    def _check_words(self, text: str, row: dict, i: int) -> None:
        with limits.errors_as(TranslateError):
            limits.check_words(LIMITS, textio.text_name(text, f"Text {i}"), row["tokens"], row["unknown"],
                               (self.source_lang, self.target_lang))

    def refusals(self, texts: Sequence[str]) -> dict:
        """What :meth:`translate` would refuse, text by text: index -> message (``Text 3 is empty ...``;
        also a text without a word the model knows), so that a caller can translate the others."""
        refused = self.text_refusals(texts, TranslateError)
        todo = [i for i in range(len(texts)) if i not in refused]
        for i, row in zip(todo, self.tokenize([texts[i] for i in todo]) if todo else []):
            try:
                self._check_words(texts[i], row, i + 1)
            except TranslateError as e:
                refused[i] = str(e)
        return refused

    # ---------------------------------------------------------------- pieces of long texts
    def _pieces(self, text: str, n_tokens: int) -> list[str]:
        return sentence_pieces(text, self.source_lang, lambda xs: [len(r["tokens"]) for r in self.tokenize(xs)],
                               n_tokens)

    def _join(self, parts: list[str]) -> str:
        return join_pieces(parts, self.target_lang)

    # ---------------------------------------------------------------- translate
    def translate_batch(self, texts: Sequence[str], beam: int, max_length: int = 0, lengths: bool = False):
        """Raw graph call on sentences (no checks): a list of translations (with ``lengths``: of
        ``(translation, tokens written)`` pairs, the end token not counted)."""
        import tensorflow as tf

        out = self.signatures["translate"](text=tf.constant(list(texts), tf.string),
                                           beam_size=tf.constant(int(beam), tf.int32),
                                           max_length=tf.constant(int(max_length or 0), tf.int32))
        texts_out = [t.decode("utf-8") for t in out["translation"].numpy()]
        return list(zip(texts_out, out["length"].numpy().tolist())) if lengths else texts_out

    def translate(self, texts: Sequence[str], beam: Optional[int] = None, max_length: Optional[int] = None,
                  batch_size: int = 32) -> list[Translation]:
        """Translate each text (checked; one of several sentences sentence by sentence), in batches of sentences.

        Raises:
            TranslateError: empty text, text without a known word, a bad beam or max_length.
        """
        beam = self._beam(beam)
        if max_length is not None:
            with limits.errors_as(TranslateError):
                limits.check_number(LIMITS, "max_length", max_length)
        check_batch_size(batch_size, TranslateError)
        info = self._check(texts)
        pieces = [self._pieces(t, len(row["tokens"])) for t, row in zip(texts, info)]
        flat = [p for ps in pieces for p in ps]
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
        results = [""] * len(flat)
        bounded = [False] * len(flat)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            for j, (tr, n) in zip(idx, self.translate_batch([flat[j] for j in idx], beam, max_length or 0, lengths=True)):
                results[j] = tr
                # max_length N allows N-1 tokens before the end: one that wrote them all may have been cut
                bounded[j] = bool(max_length) and n >= max_length - 1
        out, k = [], 0
        for t, row, ps in zip(texts, info, pieces):
            # the words it does not know: punctuation, symbols and emoji it does not know are not words to check
            unknown = [w for w in row["unknown"] if limits.is_word(w)]
            joined = self._join(results[k : k + len(ps)])
            out.append(Translation(t, joined, unknown, len(ps), any(bounded[k : k + len(ps)]),
                                   lost_numbers(t, joined, self.target_lang)))
            k += len(ps)
        return out

    def attention(self, text: str, beam: Optional[int] = None) -> Alignment:
        """The translation of one text with its attention weights (target tokens x source tokens).

        A text of several sentences is translated sentence by sentence, as :meth:`translate` does, so the
        alignment is that of the printed translation: the sentences' tokens one after the other and their
        weights block by block (a sentence's target tokens never attend to another sentence).
        """
        import numpy as np
        import tensorflow as tf

        beam = self._beam(beam)
        (row,) = self._check([text])
        src, tgt, blocks, translations = [], [], [], []
        for piece in self._pieces(text, len(row["tokens"])):
            out = self.signatures["attention"](text=tf.constant([piece]), beam_size=tf.constant(beam, tf.int32))
            s = [t.decode("utf-8") for t in out["source_tokens"].numpy()[0] if t]
            t = [t.decode("utf-8") for t in out["target_tokens"].numpy()[0] if t]
            src += s
            tgt += t
            blocks.append(out["attention"].numpy()[0][: len(t), : len(s)])
            translations.append(out["translation"].numpy()[0].decode("utf-8"))
        weights = np.zeros((len(tgt), len(src)), np.float32)
        i = j = 0
        for b in blocks:
            weights[i : i + b.shape[0], j : j + b.shape[1]] = b
            i, j = i + b.shape[0], j + b.shape[1]
        return Alignment(text, self._join(translations), src, tgt, weights,
                         self.config.get("attention", "luong") != "none")
