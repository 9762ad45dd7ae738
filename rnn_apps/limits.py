"""Input limits of every app, declared once and read by the commands and by ``rnn-apps serve``.

Each app has one :class:`AppLimits`: the most examples a request may hold, the longest text per input,
the allowed range of each numeric input, the most blanks, the largest image. ``rnn-apps serve`` knows a
model's app from its ``assets.extra/<app>.json`` and refuses, with a 400 saying the same thing the command
line says, whatever falls outside these limits, before the model runs; the commands call the same
checks (:func:`check_text`, :func:`check_number`, :func:`check_batch`, :func:`check_words`) so that both
refuse alike, with the same words. The only difference is how an input is named: a command names it as
its user gave it (``where="Review 2"``), the server by input name and index in the request (``text[1]``).
The exported models check the same limits inside their graphs (:mod:`rnn_apps.graph_limits`, built from
these declarations and worded by the same message functions), so that TensorFlow Serving refuses them too.

The limits bound the work and memory of one request: a poem batch of 64 prompts, a fill text of 512
characters, a caption image of 25 megapixels each take seconds, not minutes, on one CPU core.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import re
from dataclasses import dataclass, field, replace
from typing import Iterator, Mapping, Optional, Tuple, Type

from rnn_apps.chinese import HAN_RANGES

BLANK_MARKS = ("□", "＿", "_")  # what the fill app reads as a missing character
_HAN = re.compile(f"[{HAN_RANGES}]")  # a Chinese character (what a fill text must have around its blanks)
_WORD = re.compile(r"\w")  # a token with a letter or digit is a word (not punctuation or a symbol)
LANGUAGES = {"en": "English", "zh": "Chinese"}  # the languages of the translation models, by code


def shown(text: str, most: int = 100) -> str:
    """``text`` as a message quotes it, cut to ``most`` characters (a 70 KB model name or a review read as a
    label is not echoed whole)."""
    return text if len(text) <= most else text[: most - 1] + "…"


def is_word(token: str) -> bool:
    """Whether a token is a word (it has a letter, a digit or a Chinese character), not punctuation or a symbol."""
    return bool(_WORD.search(token))


class LimitError(ValueError):
    """An input outside its app's limits (the message says what was received and what is accepted)."""


@contextlib.contextmanager
def errors_as(error_class: Type[Exception]) -> Iterator[None]:
    """Raise a :class:`LimitError` of the block as ``error_class`` (an app's own error), same message."""
    try:
        yield
    except LimitError as e:
        raise error_class(str(e)) from None


@dataclass(frozen=True)
class Range:
    """Accepted values of one numeric input: ``lo <= x <= hi`` (an open end excludes it); always finite.
    An ``integer`` range (closed) is worded "an integer from lo to hi". With ``min_positive``, a positive
    value below it is refused too: a sampling temperature of 2e-38 divides the logits past float32's
    largest number (and a subnormal one is flushed to 0 by TensorFlow's CPU kernels but not by NumPy), so
    the two poem engines would sample noise or disagree; 0 itself (greedy) stays accepted."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    meaning: str = ""
    integer: bool = False
    min_positive: float = 0.0

    def text(self) -> str:
        """What is accepted, for a message: ``in (0, 1] (1 is off)``, ``an integer from 1 to 16``."""
        if self.integer:
            span = f"an integer from {_num(self.lo)} to {_num(self.hi)}"
        else:
            span = f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
            if self.min_positive:
                span += f", 0 or at least {_num(self.min_positive)}"
        return span + (f" ({self.meaning})" if self.meaning else "")

    def contains(self, x: float) -> bool:
        if not isinstance(x, numbers.Integral) and not math.isfinite(x):  # an integer is finite, even 10**400
            return False
        if self.integer and not isinstance(x, numbers.Integral) and x != math.floor(x):  # 2.5 beams (2.0 is 2)
            return False
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below and not 0 < x < self.min_positive


@dataclass(frozen=True)
class Choices:
    """Accepted values of one text input that names an option (a poem's ``form``): ``values``, and the
    empty string when ``blank`` says what it means (``free form``)."""

    values: Tuple[str, ...]
    blank: str = ""

    def text(self) -> str:
        """What is accepted, for a message: ``"" (free form), auto, wujue``."""
        return ", ".join(([f'"" ({self.blank})'] if self.blank else []) + list(self.values))

    def contains(self, value: str) -> bool:
        return value in self.values or (bool(self.blank) and value == "")


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class AppLimits:
    """The limits of one app's inputs (by signature input name; the same name means the same thing).

    Attributes:
        app: The app name (``assets.extra/<app>.json``).
        max_batch: The most examples in one request (one CLI call batch).
        max_chars: Input name -> the most characters of one text.
        non_empty: Text inputs that must hold something other than whitespace.
        ranges: Input name -> accepted numeric values (NaN and infinities are never accepted).
        max_blanks: Input name -> (fewest, most) blank marks (:data:`BLANK_MARKS`) in one text.
        max_megapixels: Input name -> the largest encoded image, in megapixels (read from its header).
        max_values: The most numbers per example of a numeric input (e.g. a forecast history).
        known_words: Text inputs that must hold a word the model knows (checked with the model's
            ``tokenize`` signature: a text of unknown words only would get an invented answer).
        light_chars: A request with more characters than this in all its texts together is *large* for
            ``rnn-apps serve`` (it waits for a slot for large requests) even with few examples: for models
            whose work grows quickly with the text (every blank of a fill text is a model pass).
        give: Text input name -> what an empty one should hold ("a review to classify").
        counted_words: Text inputs that must hold a word (not only punctuation or symbols), counted with
            the model's ``words`` signature (``words`` [B]).
        task: What the model does with a text, for messages ("to classify").
        sentences: Text inputs the server cuts into sentences (:mod:`rnn_apps.sentences`) and translates
            piece by piece, as the command does: signature name -> input name.
        known_chars: Text inputs whose characters the model must all know (checked with the model's
            ``unknown_characters`` signature: ``{"text": [B]}`` -> ``{"unknown": [B]}``).
        han_when_given: Text input name -> what its Chinese characters are for, for inputs that may be
            empty but, when given, must hold a Chinese character (a poem's acrostic of marks only would
            otherwise be dropped and the poem written without one).
        choices: Text input name -> the values it accepts (:class:`Choices`), for inputs that name an option.
        reads: What the model reads ("English film reviews"), for the message that refuses a text none of
            whose words it knows.
        same_in_call: Inputs given per example that the model applies to its whole call (the caption model
            decodes every image of a call with the call's largest beam): a request must give them one value
            for all its examples, and ``rnn-apps serve`` merges it only with requests of the same value.
        example_texts: Inputs of serialized ``tf.Example`` protos -> the feature that holds the text (the
            sentiment model's ``classify`` signature), for the checks that read the text (``counted_words``).
        max_total_chars: Text input name -> the most characters of all its texts in one request together, for
            inputs whose work grows with every character of every text (the poem model scores each one): the
            largest request accepted must finish well within ``rnn-apps serve``'s default deadline (60 s) on a
            small machine. Checked per request by ``rnn-apps serve``, not in the graph: one graph call may hold
            several requests (server-side batching merges them).
    """

    app: str
    max_batch: int
    max_chars: Mapping[str, int] = field(default_factory=dict)
    non_empty: Tuple[str, ...] = ()
    ranges: Mapping[str, Range] = field(default_factory=dict)
    max_blanks: Mapping[str, Tuple[int, int]] = field(default_factory=dict)
    max_megapixels: Mapping[str, float] = field(default_factory=dict)
    max_values: int = 100_000
    known_words: Tuple[str, ...] = ()
    light_chars: Optional[int] = None
    give: Mapping[str, str] = field(default_factory=dict)
    counted_words: Tuple[str, ...] = ()
    task: str = ""
    sentences: Mapping[str, str] = field(default_factory=dict)
    known_chars: Tuple[str, ...] = ()
    han_when_given: Mapping[str, str] = field(default_factory=dict)
    choices: Mapping[str, Choices] = field(default_factory=dict)
    reads: str = ""
    same_in_call: Tuple[str, ...] = ()
    example_texts: Mapping[str, str] = field(default_factory=dict)
    max_total_chars: Mapping[str, int] = field(default_factory=dict)


APPS: Mapping[str, AppLimits] = {
    "poetry": AppLimits(
        "poetry", max_batch=64,
        max_chars={"prompt": 200, "acrostic": 32, "form": 16, "rhyme": 16, "metre": 16, "text": 4096},
        # Scoring costs 0.3 to 0.6 ms a character on 2 busy cores: 64 texts of 4,096 characters ran past the 60 s
        # deadline of rnn-apps serve (a 504, the heavy slot held 84 s); 32,768 characters in all take 10 to 20 s.
        max_total_chars={"text": 32_768},
        # a poem to score (the graph's unknown_characters, asked of blank prompts too, does not check it)
        non_empty=("text",),
        give={"text": "a poem to score"},
        # Tiny positive values are refused: they overflow float32 (see Range) and mean greedy anyway.
        ranges={"temperature": Range(0, 10, meaning="0 is greedy", min_positive=1e-6),
                "top_p": Range(1e-6, 1, meaning="1 is off"),
                "top_k": Range(0, 100_000, meaning="0 is off", integer=True),
                "max_length": Range(8, 512, integer=True),
                # Non-negative: the sampler reads a seed modulo 2**63 (a signed seed and its complement would
                # give one poem), and NumPy's generators refuse negative seeds too.
                "seed": Range(0, 2**63 - 1, integer=True)},
        known_chars=("prompt", "acrostic"),
        han_when_given={"acrostic": "each of them begins a line of the poem (e.g. 春夏秋冬); its other marks are "
                                    "left out"},
        # as the graph's `generate` accepts them (rnn_apps.apps.poetry.constants and .prosody; a test compares)
        choices={"form": Choices(("auto", "wujue", "qijue", "wulv", "qilv"), blank="free form"),
                 "rhyme": Choices(("pingshui", "xinyun", "none"), blank="the default, pingshui"),
                 "metre": Choices(("strict", "loose", "none"), blank="the default, loose")},
    ),
    "sentiment": AppLimits(
        "sentiment", max_batch=256,
        max_chars={"text": 2_000_000, "inputs": 2_000_000},  # the model reads 400 words: head and tail
        non_empty=("text", "inputs"),
        give={"text": "a review to classify", "inputs": "a review to classify"},
        counted_words=("text", "inputs"),
        task="to classify",
        reads="film reviews in English",
        example_texts={"inputs": "text"},
    ),
    "translate": AppLimits(
        "translate", max_batch=64,
        max_chars={"text": 100_000},  # a text is cut into sentences, translated one by one
        non_empty=("text",),
        ranges={"beam_size": Range(1, 16, meaning="1 is greedy", integer=True),
                "max_length": Range(0, 160, meaning="0: the model's default", integer=True)},
        known_words=("text",),
        light_chars=200,
        give={"text": "a sentence to translate"},
        task="to translate",
        sentences={"serving_default": "text", "translate": "text"},
    ),
    "fill": AppLimits(
        "fill", max_batch=64,
        max_chars={"text": 512},
        non_empty=("text",),
        ranges={"top_k": Range(1, 50, integer=True)},  # as the command's --top-k
        max_blanks={"text": (1, 64)},
        light_chars=128,
        give={"text": "a line of a poem with □ (or ＿ or _) where characters are missing, e.g. 床前明月□，疑是地上霜。"},
    ),
    "caption": AppLimits(
        "caption", max_batch=16,
        ranges={"beam_size": Range(1, 16, meaning="1 is greedy", integer=True)},
        max_megapixels={"image": 25.0, "pixels": 25.0},
        same_in_call=("beam_size",),
    ),
    # values far beyond ±1e15 overflow float32 in the model's scaling (3e38 gave infinite forecasts)
    "forecast": AppLimits("forecast", max_batch=1024, max_values=100_000,
                          ranges={"history": Range(-1e15, 1e15, meaning="larger values overflow float32 in the model")}),
}


def for_app(app: Optional[str]) -> Optional[AppLimits]:
    """The limits of ``app``, or None for a model of no known app (only generic limits apply)."""
    return APPS.get(app or "")


# Signatures that answer any text, a blank one too: the poem model's says which characters of a text it does not
# know, and is asked that of blank prompts and acrostics (a blank text to score is refused).
ANY_TEXT_SIGNATURES = ("unknown_characters",)


def any_text(limits: AppLimits) -> AppLimits:
    """``limits`` for a signature of :data:`ANY_TEXT_SIGNATURES`: its texts may be blank (``non_empty`` is
    empty); every other limit stays."""
    return replace(limits, non_empty=())


def check_batch(limits: AppLimits, n: int) -> None:
    """Raise :class:`LimitError` when ``n`` examples are more than one request may hold."""
    if n > limits.max_batch:
        raise LimitError(batch_message(limits, n))


def check_total_chars(limits: AppLimits, name: str, texts) -> None:
    """Raise :class:`LimitError` when the texts of the input ``name`` of one request hold more characters in all
    than ``limits.max_total_chars`` allows (each text is checked on its own by :func:`check_text`)."""
    most = limits.max_total_chars.get(name)
    if most is None:
        return
    n = sum(len(t) for t in texts)
    if n > most:
        raise LimitError(total_chars_message(limits, name, n, most))


# The messages of the checks, one function each, so that the checks in a SavedModel's graph
# (:mod:`rnn_apps.graph_limits`) word them alike: the values they show are formatted with ``format`` only
# (``{n:,}``, ``{x}``, ``{x:.0f}``), which the graph can reproduce.

def batch_message(limits: AppLimits, n) -> str:
    """``n`` examples in one request are more than ``limits.max_batch``."""
    return f"{n:,} examples in one request; {limits.app} accepts at most {limits.max_batch:,} (send several requests)."


def total_chars_message(limits: AppLimits, name: str, n, most: int) -> str:
    """The texts of the input ``name`` of one request hold ``n`` characters in all, more than ``most``."""
    return (f"{name} holds {n:,} characters in all its texts; {limits.app} accepts at most {most:,} in one request "
            f"(send the texts in several requests).")


def too_long_message(where, n, most: int) -> str:
    """A text of ``n`` characters, more than ``most``."""
    return f"{where} has {n:,} characters; at most {most:,} are accepted."


def empty_message(limits: AppLimits, name: str, where) -> str:
    """A text of the input ``name`` that holds only whitespace."""
    return f"{where} is empty: give {limits.give.get(name, 'some text')}."


def no_han_message(limits: AppLimits, name: str, where) -> str:
    """A given text of the input ``name`` (one of ``han_when_given``) without a Chinese character."""
    return f"{where} has no Chinese characters: {limits.han_when_given[name]}."


def no_blank_message(where) -> str:
    """A fill text without a blank mark."""
    return (f"{where} has no blank: mark each missing character with □ (or ＿ or _), "
            f"e.g. 床前明月□，疑是地上霜。")


def too_many_blanks_message(where, n, most: int) -> str:
    """A fill text with ``n`` blanks, more than ``most``."""
    return f"{where} has {n:,} blanks; at most {most:,} are accepted."


def only_blanks_message(where) -> str:
    """A fill text with no Chinese character around its blanks."""
    return (f"{where} has no Chinese characters around its blanks: give the characters before and after them "
            f"(the model fills a blank from them).")


def choice_message(where, accepted: Choices, value: str) -> str:
    """The message for a text input that names none of its options."""
    # The value in plain quotes, not repr: the graph writes the same words (it is at most max_chars long).
    return f'{where} must be one of {accepted.text()}; received "{value}".'


def nul_message(where) -> str:
    """A text holding a NUL character."""
    return (f"{where} holds a NUL character (U+0000), where the model's text operations would stop reading; "
            f"remove it.")


def same_in_call_message(name: str, values) -> str:
    """An input the model applies to its whole call (a caption's ``beam_size``) with other than one value for
    the examples of a request; ``values``: the different values received, in order."""
    values = list(values)
    if not values:
        return (f"{name} must be given, one value for all examples of a request (the model applies it to its "
                f"whole call); received no values.")
    shown = [str(v) for v in values[:5]]
    got = (", ".join(shown[:-1]) + " and " + shown[-1]) if len(values) <= 5 else ", ".join(shown) + ", ..."
    return (f"every example of one request must use the same {name} (the model applies it to its whole call; "
            f"send examples with another {name} in another request); received {got}.")


def not_utf8_message(where) -> str:
    """A text that is not valid UTF-8."""
    return f"{where} is not valid UTF-8 text (it holds undecodable bytes)."


def range_message(where, accepted: Range, value) -> str:
    """A number outside its :class:`Range` (or not finite)."""
    return f"{where} must be {accepted.text()}; received {value}."


def number_as_sent(value) -> str:
    """How a message quotes a number: NaN and infinities as JSON encoders write them (``NaN``, ``Infinity``,
    ``-Infinity``), as a client sends them and as the server quotes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return f"{value}"  # format, not str: the graph's checks pass a placeholder that formats as its tensor


def not_finite_message(where, value) -> str:
    """A number that is NaN or infinite (before any range: "must be in [0, 10]" would not say what is wrong)."""
    return f"{where} must be a finite number; received {number_as_sent(value)}."


def not_finite_values_message(name: str, value) -> str:
    """Numbers of an input without a range of which one (the first, ``value``) is NaN or infinite."""
    return f"{name} must hold finite numbers only; received {value}."


def too_many_values_message(name: str, n, most: int) -> str:
    """An example of a numeric input with ``n`` numbers, more than ``most``."""
    return f"{name} has {n:,} values per example; at most {most:,} are accepted."


def megapixels_message(where, width, height, megapixels, most: float, kind: str = "images") -> str:
    """An image of ``width`` × ``height`` pixels (``megapixels``: their product / 1e6), above ``most`` megapixels
    (the bound of ``kind``: "images", "JPEG images" ...)."""
    return (f"{where}: the image is {width:,}×{height:,} pixels ({megapixels:.0f} megapixels); "
            f"{kind} above {most:g} megapixels are refused to bound memory. Downscale it first.")


# The blocks of a GIF read to find its frames (frames, extensions and the pieces of their data, but a piece as long
# as the one before it: encoders cut data into 255-byte pieces), by the command, rnn-apps serve and the graph, which
# walks them one by one (some 50 to 150 µs each: a second or two at most). An animated GIF takes about 7 a frame.
MAX_GIF_BLOCKS = 10_000


def frames_message(where, frames, megapixels, most: float) -> str:
    """A GIF whose ``frames`` hold ``megapixels`` in all, above ``most``: every frame is decoded into memory."""
    return (f"{where}: the GIF's {frames:,} frames hold {megapixels:.0f} megapixels in all, and every frame is "
            f"decoded; images above {most:g} megapixels in all their frames are refused to bound memory. "
            f"Send one frame as a still image.")


def gif_blocks_message(where, most: int) -> str:
    """A GIF of more than ``most`` blocks (:data:`MAX_GIF_BLOCKS`)."""
    return (f"{where}: the GIF holds more than {most:,} blocks (frames, and pieces of their data of changing "
            f"lengths); GIFs of more are refused to bound the time spent reading them. Send one frame as a still "
            f"image.")


def check_text(limits: AppLimits, name: str, text: str, index: Optional[int] = None,
               where: Optional[str] = None) -> None:
    """Check one text input: length, emptiness and blanks (for the inputs the table names).

    Args:
        limits: The app's limits.
        name: The signature input the text is for.
        text: The text as given (whitespace counts towards the length).
        index: Its index in the request, from 0 (the server's ``text[1]``).
        where: How the message names the text instead (a command's ``Review 2``).
    """
    where = where or (name + (f"[{index}]" if index is not None else ""))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes of a command-line argument that were not UTF-8
        raise not_utf8(where) from None
    if "\0" in text:
        raise LimitError(nul_message(where))
    most = limits.max_chars.get(name)
    if most is not None and len(text) > most:
        raise LimitError(too_long_message(where, len(text), most))
    if name in limits.non_empty and not text.strip():
        raise LimitError(empty_message(limits, name, where))
    if name in limits.max_blanks:
        fewest, most_blanks = limits.max_blanks[name]
        n = sum(text.count(b) for b in BLANK_MARKS)
        if n < fewest:
            raise LimitError(no_blank_message(where))
        if n > most_blanks:
            raise LimitError(too_many_blanks_message(where, n, most_blanks))
        if not _HAN.search(text):
            raise LimitError(only_blanks_message(where))
    if name in limits.han_when_given and text.strip() and not _HAN.search(text):
        raise LimitError(no_han_message(limits, name, where))
    if name in limits.choices and not limits.choices[name].contains(text):
        raise LimitError(choice_message(where, limits.choices[name], text))


def not_utf8(where: str) -> LimitError:
    """The error for a text that is not valid UTF-8."""
    return LimitError(not_utf8_message(where))


def check_words(limits: AppLimits, where: str, tokens, unknown=(), languages: Tuple[str, str] = ("", "")) -> None:
    """Refuse a text with no word (only punctuation or symbols), or none the model knows.

    Args:
        limits: The app's limits (its ``task`` words the message).
        where: How the message names the text (``text[0]``, ``Text 1``).
        tokens: The text's tokens; those without a letter or digit are not words.
        unknown: The tokens the model does not know (empty when the model knows no vocabulary, e.g. a
            count of words only).
        languages: (source, target) language codes (``en``, ``zh``) for the hint, when known.
    """
    words = [t for t in tokens if _WORD.search(t)]
    if not words:
        raise LimitError(f"{where} has no words {limits.task or 'to read'}, only punctuation or symbols.")
    src, tgt = (LANGUAGES.get(code, "") for code in languages)
    if languages[0] == "zh" and not any(_HAN.search(w) for w in words):
        # The Chinese side's vocabulary knows the Latin letters of names and brands, so an English text would
        # otherwise be read letter by letter and get an invented translation.
        raise LimitError(f"{where} has no Chinese characters; the model translates Chinese into {tgt}. Check the "
                         "language.")
    unknown = set(unknown)
    if unknown and all(w in unknown for w in words):
        # at most 10 words of at most 30 characters each: a 100,000-letter "word" would fill the one-line error
        listed = ", ".join(shown(w, 30) for w in list(dict.fromkeys(w for w in words if w in unknown))[:10])
        hint = f"; it translates {src} into {tgt}" if src and tgt else ""
        raise LimitError(f"{where}: the model knows none of its words ({listed}){hint}. Check the spelling and "
                         f"the language.")


def check_word_count(limits: AppLimits, where: str, words: int, known: Optional[int] = None) -> None:
    """Refuse a text without a word, or with none the model knows, from counts of its words.

    For models that count a text's words in their graph (the sentiment model's ``words`` signature:
    ``words`` and ``known_words``) rather than list them.

    Args:
        limits: The app's limits (its ``task`` and ``reads`` word the messages).
        where: How the message names the text (``text[0]``, ``Review 1``).
        words: The text's words (tokens with a letter or digit).
        known: How many of them the model knows; None when the model does not say.
    """
    if words == 0:
        check_words(limits, where, [])
    if known == 0:
        # Every word out of the vocabulary: the model would answer from its bias alone, e.g. "positive 0.58"
        # for a review in another language.
        hint = f"; it reads {limits.reads}" if limits.reads else ""
        raise LimitError(f"{where}: the model knows none of its {words:,} word{'' if words == 1 else 's'}{hint}. "
                         "Check the spelling and the language.")


def check_characters(limits: AppLimits, where: str, text: str, unknown: str) -> None:
    """Refuse ``text`` when it has characters the model does not know (``unknown``, as the model's
    ``unknown_characters`` signature gives them)."""
    if unknown:
        raise LimitError(f"{where} {text!r} has characters this model does not know: {' '.join(unknown)}. Use "
                         f"other characters, or fine-tune the model on text that contains them (rnn-apps fine-tune "
                         f"{limits.app} --data FILE).")


def as_integer(value, where: str) -> int:
    """``value`` as an ``int`` when it is one of an integer type (Python's or NumPy's; not a bool), else
    :class:`LimitError` ("beam must be an integer; received 2.5.")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise LimitError(f"{where} must be an integer; received {value!r}.")
    return int(value)


def check_number(limits: AppLimits, name: str, value: float, where: Optional[str] = None) -> None:
    """Check one numeric input against its range (any value must be finite); ``where`` names it instead
    of ``name`` in the message (a command's option, e.g. ``beam`` for the input ``beam_size``)."""
    r = limits.ranges.get(name)
    where = where or name
    # Not a number (None, "0.8", True): refused here rather than failing in a comparison below.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LimitError(range_message(where, r, repr(value)) if r is not None
                         else f"{where} must be a number; received {value!r}.")
    # NumPy's floats too; an integer is finite (and may be past float's range: 10**400 as a seed)
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        raise LimitError(not_finite_message(where, float(value)))
    if r is None:
        return
    if not r.contains(value):
        raise LimitError(range_message(where, r, value))


def check_megapixels(limits: AppLimits, name: str, width: int, height: int, where: Optional[str] = None) -> None:
    """Check an image's size (from its header, before it is decoded); ``where`` names it (a file name)."""
    most = limits.max_megapixels.get(name)
    if most is not None and width * height > most * 1e6:
        raise LimitError(megapixels_message(where or name, width, height, width * height / 1e6, most))


def check_frames(limits: AppLimits, name: str, frames: int, pixels: int, blocks: int = 0,
                 where: Optional[str] = None) -> None:
    """Check the frames of an image (a GIF's, from their headers; TensorFlow decodes every one into memory,
    though the model sees the first): the ``blocks`` read to find them, then their ``pixels`` in all. Its
    largest frame is checked by :func:`check_megapixels`, first."""
    most = limits.max_megapixels.get(name)
    if most is None:
        return
    if blocks > MAX_GIF_BLOCKS:
        raise LimitError(gif_blocks_message(where or name, MAX_GIF_BLOCKS))
    if pixels > most * 1e6:
        raise LimitError(frames_message(where or name, frames, pixels / 1e6, most))


def option_type(app: str, name: str, where: Optional[str] = None):
    """A ``click`` parameter type for a command-line option that is the input ``name`` of ``app``'s model:
    it reads a number and checks it with :func:`check_number`, so the command refuses what the server
    refuses, in the same words (after click's ``Invalid value for '--option':``).

    Args:
        app: The app (a key of :data:`APPS`).
        name: The input, with a range in the app's limits (``temperature``).
        where: What the message calls the value, when the option means it in other words than the input's
            name (``fill-poem --candidates`` is the input ``top_k``: "the number of candidates must be ...").
    """
    import click  # only the commands need it

    if app not in APPS or name not in APPS[app].ranges:
        raise ValueError(f"{app}/{name} is not an input with a range in rnn_apps.limits; received {app!r}, {name!r}.")
    limits, accepted = APPS[app], APPS[app].ranges[name]

    class LimitedNumber(click.ParamType):
        def __init__(self):
            self.name = "integer" if accepted.integer else "float"

        def get_metavar(self, param, ctx=None) -> str:  # --help: what is accepted (click 8.1 passes no ctx)
            text = accepted.text()  # "an integer from 1 to 50": the metavar already says INTEGER
            return f"{self.name.upper()} {text[len('an integer '):] if text.startswith('an integer ') else text}"

        def convert(self, value, param, ctx):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                number = value
            else:
                try:
                    number = int(value) if accepted.integer else float(value)
                except (TypeError, ValueError):
                    self.fail(f"{value!r} is not {'an integer' if accepted.integer else 'a number'}.", param, ctx)
            try:
                check_number(limits, name, number, where)
            except LimitError as e:
                self.fail(str(e), param, ctx)
            return number

    return LimitedNumber()
