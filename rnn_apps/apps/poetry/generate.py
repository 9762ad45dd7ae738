"""Library API over an exported poem model: generate, check and score poems.

The model does all the work in its graph (see :mod:`rnn_apps.apps.poetry.export`); this module loads it,
validates arguments with messages a person can act on, and shapes the results.

Generation has two engines that write the same poems for a seed: ``"tensorflow"`` runs the SavedModel's
``generate`` signature, ``"numpy"`` runs its NumPy twin (:mod:`rnn_apps.apps.poetry.fast`), which needs no
TensorFlow and so starts in a fraction of a second instead of several. ``"auto"`` (the default) takes
NumPy when it supports the model and TensorFlow otherwise. Scoring always uses the SavedModel.

Poems of the four forms rhyme and scan by default (``rhyme="pingshui"``, ``metre="loose"``; see
:mod:`rnn_apps.apps.poetry.prosody`); :func:`check_poem` analyses any poem the same way.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from rnn_apps import chinese, limits, textio
from rnn_apps.apps.base import Predictor, check_batch_size, check_is_text, text_list
from rnn_apps.apps.poetry import prosody
from rnn_apps.apps.poetry.constants import AUTO_FORM, DEFAULT_SAMPLING, FORM_NAMES, FORMS, ModelReading


LIMITS = limits.APPS["poetry"]  # what `rnn-apps serve` accepts too, with the same messages


class PoemError(ValueError):
    """Bad generation arguments (unknown characters, an impossible form, ...)."""


def graph_error_message(err: Exception) -> str:
    """The human part of a TensorFlow assertion raised inside the model's graph."""
    text = str(err)
    # An assertion of the model's own ([message] [values]) is on the error's first part; one of the input
    # checks (rnn_apps.graph_limits) is one message, which may hold brackets of its own.
    m = re.search(r"assertion failed: \[(.*?)\] \[(.*?)\]", text.split("\n\t [[", 1)[0], re.S)
    if m:
        return f"{m.group(1)} {m.group(2).strip()}"
    from rnn_apps import graph_limits  # the checks of rnn_apps.limits in the graph: one message

    limit = graph_limits.message(err)
    if limit:
        return limit
    return text.strip().splitlines()[-1] if text.strip() else type(err).__name__


@dataclass
class Poem:
    text: str
    form: str
    seed: int
    prompt: str = ""
    acrostic: str = ""
    rhyme: str = "none"
    metre: str = "none"
    forced_breaks: list = field(default_factory=list)  # where the start or acrostic breaks rhyme or metre

    @property
    def lines(self) -> list[str]:
        return [s for s in re.findall(r"[^，。]+[，。]", self.text)]

    def to_dict(self) -> dict:
        return {"text": self.text, "lines": self.lines, "form": self.form, "seed": self.seed,
                "start": self.prompt, "acrostic": self.acrostic, "characters": len(self.text),
                "rhyme": self.rhyme, "metre": self.metre, "forced_breaks": self.forced_breaks}


# What the input rules (rnn_apps.chinese.INPUT_RULES) turn into ， and 。
_COMMAS, _PERIODS = chinese.COMMA + chinese.PAUSES, chinese.PERIOD + chinese.SENTENCE_ENDS + "."


def unkept_punctuation(start: str, form: str) -> list[tuple[str, str]]:
    """The punctuation marks of a form poem's start that the poem does not keep as written.

    A form sets its own marks: ， after each odd line and 。 after each even one (lines of 5 or 7 characters).
    A mark of the start elsewhere, or another mark at a line's end, is left out of the poem (the Chinese
    characters are kept; white space, quotation marks and other symbols never count as a line's characters).
    Returns ``(mark, the Chinese characters before it)`` for each; ``[]`` for free form.
    """
    if not form:
        return []
    n = FORMS[form][0]
    unkept, before, marked = [], "", -1
    for ch in start:
        if chinese.is_han(ch):
            before += ch
            continue
        if ch not in _COMMAS + _PERIODS:
            continue
        lines, rest = divmod(len(before), n)
        wanted = _COMMAS if lines % 2 else _PERIODS
        if not before or rest or ch not in wanted or marked == len(before):  # a second mark at a line's end too
            unkept.append((ch, before))
        else:
            marked = len(before)
    return unkept


def _marks_end_lines(start: str, form: str) -> bool:
    """Whether every ，/。-class mark of ``start`` follows a whole number of ``form``'s lines (of either mark)."""
    n, count = FORMS[form][0], 0
    for ch in start:
        if chinese.is_han(ch):
            count += 1
        elif ch in _COMMAS + _PERIODS and (count == 0 or count % n):
            return False
    return True


def _read(text: str) -> list[str]:
    """The characters of ``text`` after the model's input rules, before any script conversion."""
    return list(chinese.normalize(text))


def _layout(form: str, heads: int) -> tuple[int, int]:
    """Characters a line and lines of ``form``'s poem with ``heads`` acrostic heads, as the decoder lays it out.

    A form has its own; free form (``""``) with an acrostic has lines of seven characters, one a head, rounded
    up to an even number; free form without one has no fixed lines (``(0, 0)``).
    """
    n, m = FORMS[form]
    if m == 0 and heads:
        n, m = 7, heads + heads % 2
    return n, m


def start_acrostic_conflicts(start: str, acrostic: str, form: str,
                             chars: Optional[Callable[[str], Sequence[str]]] = None) -> list[tuple[int, str, str]]:
    """The line heads where ``start`` would put another character than ``acrostic`` asks for, in ``form``.

    The decoder writes the start's Chinese characters into the poem's lines in order (its marks do not move
    them) and the acrostic's into the first place of lines 1, 2, ...; where both claim a place, the acrostic's
    used to win. The lines are ``form``'s (5 or 7 characters) or, for free form (``""``) with an acrostic,
    seven characters (see :func:`_layout`); free form without an acrostic has no heads to disagree on.

    Args:
        start: The start (``--start``, the signature's ``prompt``).
        acrostic: The acrostic.
        form: One of :data:`FORMS` (not ``"auto"``).
        chars: The model's reading of a text (its characters after normalisation and script conversion, as
            :meth:`PoemGenerator.chars`); default: the input rules alone.

    Returns:
        ``(line, the start's character, the acrostic's)`` for each disagreement (lines from 1); ``[]`` when none.
    """
    read = chars or _read
    body = [c for c in read(start) if chinese.is_han(c)] if start else []
    heads = [c for c in read(acrostic) if chinese.is_han(c)] if acrostic else []
    n, _ = _layout(form, len(heads))
    if not n:
        return []
    return [(i + 1, body[i * n], h) for i, h in enumerate(heads) if i * n < len(body) and body[i * n] != h]


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _conflict_message(start: str, acrostic: str, form: str, conflicts: list[tuple[int, str, str]]) -> str:
    """One line naming each line head where the start and the acrostic disagree in ``form``, and what to do."""
    n, _ = _layout(form, sum(map(chinese.is_han, chinese.normalize(acrostic))))
    lines = _and([f"line {line} with {got}" for line, got, _ in conflicts])
    wants = _and([want for _, _, want in conflicts])
    first = conflicts[0][0]
    layout = ""
    if any(line > 1 for line, _, _ in conflicts):
        layout = (f" ({form}, {FORM_NAMES[form]}: {n} characters a line)" if form
                  else f" (free form with an acrostic: {n} characters a line)")
    if len(conflicts) == 1 and first == 1:
        fix = f"begin the start with {wants}"
    else:
        places = _and([_ordinal((line - 1) * n + 1) for line, _, _ in conflicts])
        fix = f"make its {places} character{'s' if len(conflicts) > 1 else ''} {wants}"
        if first > 1:
            fix += f", cut it to its first {(first - 1) * n} characters"
    return (f"The start {start} opens {lines}{layout}, but the acrostic {acrostic} asks for {wants} there; "
            f"{fix}, or drop the start or the acrostic.")


def check_start_fits_acrostic(start: str, acrostic: str, form: str,
                              chars: Optional[Callable[[str], Sequence[str]]] = None) -> None:
    """Refuse a start that would open a line with another character than the acrostic asks for there.

    The start keeps its characters, and the acrostic's heads open the lines: where the start covers a line's
    first place (its 1st, 6th, 11th, ... Chinese character in a five-character form; 1st, 8th, 15th, ... in a
    seven-character form and in free form with an acrostic, whose lines have seven characters), the two must
    agree (``start="春风", acrostic="春夏秋冬"`` is fine). With ``form="auto"`` a form where they disagree is
    not drawn (:func:`auto_forms`), and only a disagreement in every form that fits (or in free form, when
    none does) is refused. Free form without an acrostic, and a start or acrostic left empty, always pass.

    The library, the command and both engines call it; a server that passes ``"auto"`` to a SavedModel's graph
    should draw the form itself (:func:`auto_forms`, :func:`draw_form`) first, as the graph of version 10
    draws among forms that disagree too.

    Args:
        start: The start (``--start``, the signature's ``prompt``).
        acrostic: The acrostic.
        form: One of :data:`FORMS` (``""``: free form) or ``"auto"``.
        chars: The model's reading of a text (:meth:`PoemGenerator.chars`: its characters after normalisation
            and script conversion, so ``東`` and ``东`` agree for a simplified model); default: the input rules
            alone, without script conversion.

    Raises:
        PoemError: the start and the acrostic disagree at a line head; the message names the line, both
            characters and what to change. Also for an unknown ``form``.
    """
    if not start or not acrostic:
        return
    if form != AUTO_FORM and form not in FORMS:
        raise PoemError(f"Unknown form {form!r}; choose one of: {', '.join(f for f in FORMS if f)}, "
                        f"{AUTO_FORM!r} or '' (free form).")
    forms = (auto_forms(start, acrostic, chars) or [""]) if form == AUTO_FORM else [form]
    found = [(f, start_acrostic_conflicts(start, acrostic, f, chars)) for f in forms]
    if not all(c for _, c in found):
        return
    if len({tuple(c) for _, c in found}) == 1 and (len(found) == 1 or all(line == 1 for line, _, _ in found[0][1])):
        raise PoemError(_conflict_message(start, acrostic, found[0][0], found[0][1]))
    where = "; ".join(f"{f or 'free form'}: " + _and([f"line {line} opens with {got}, not {want}"
                                                      for line, got, want in c]) for f, c in found)
    raise PoemError(f"The start {start} and the acrostic {acrostic} disagree at a line head in every form they "
                    f"fit ({where}); change those characters of the start, shorten it, or drop the start or the "
                    "acrostic.")


def fit_generate_request(arrays: dict, chars: Callable[[str], Sequence[str]]) -> dict:
    """A ``generate`` request (inputs as NumPy arrays, one entry per poem) as rnn_apps writes its poems.

    The graph of the shipped model lets an acrostic's character replace the start's at a line head, and, given
    ``form="auto"``, may draw a form where that happens. Here a row whose start and acrostic disagree at a line
    head in its form (in every form they fit, for ``auto``) is refused, and an ``auto`` row with both a start
    and an acrostic gets its form drawn as :class:`PoemGenerator` draws it (:func:`auto_forms`,
    :func:`draw_form` with the row's seed: the graph's own draw wherever they agree in every form).

    Args:
        arrays: The request's inputs (``prompt``, ``acrostic``, ``form``, ``seed`` as bytes and int64 arrays
            of shape [B]); a request without them is returned as it is.
        chars: The model's reading of a text (:class:`ModelReading`).

    Returns:
        ``arrays``, with ``form`` replaced where a form was drawn.

    Raises:
        PoemError: a start and an acrostic that disagree, or an acrostic with more heads than the row's form
            has lines (the row is named when the request has several).
    """
    names = ("prompt", "acrostic", "form", "seed")
    if any(n not in arrays or arrays[n].ndim != 1 for n in names) or len({arrays[n].shape[0] for n in names}) != 1:
        return arrays
    rows = arrays["prompt"].shape[0]
    form = arrays["form"].copy()
    for b in range(rows):
        start, acrostic, f = (arrays[n][b].decode("utf-8", "replace").strip() for n in ("prompt", "acrostic", "form"))
        try:
            if acrostic and f in FORMS and f:  # the graph would refuse it too, in other words
                check_acrostic_fits_form(acrostic, f)
            if start and acrostic:
                check_start_fits_acrostic(start, acrostic, f, chars)
        except PoemError as e:
            raise PoemError(f"{e} (poem {b})" if rows > 1 else str(e)) from None
        if not (start and acrostic):
            continue
        if f == AUTO_FORM:
            fits = auto_forms(start, acrostic, chars)
            form[b] = (draw_form(fits, int(arrays["seed"][b])) if fits else "").encode("utf-8")
    return {**arrays, "form": form}


def check_acrostic_fits_form(acrostic: str, form: str) -> None:
    """Refuse an acrostic with more heads than ``form`` (one of :data:`FORMS`, not free or auto) has lines,
    in the words the command and the server both say.

    Raises:
        PoemError: too many heads.
    """
    m = FORMS[form][1]
    heads = sum(map(chinese.is_han, acrostic))  # as the model counts them: its other marks are left out
    if heads > m:
        raise PoemError(f"{form} ({FORM_NAMES[form]}) has {m} lines, but the acrostic has {heads} characters.")


def auto_forms(start: str = "", acrostic: str = "",
               chars: Optional[Callable[[str], Sequence[str]]] = None) -> list[str]:
    """The forms ``form="auto"`` draws from: the four regulated forms that ``start`` and ``acrostic`` fit.

    A form fits when it has room for the acrostic's heads and the start's Chinese characters, and the start
    opens no line with another character than the acrostic asks for there (:func:`start_acrostic_conflicts`;
    when the start disagrees in every form with room, those forms are returned and
    :func:`check_start_fits_acrostic` refuses them). Among those, an
    acrostic of exactly 4 or 8 heads keeps the forms with one head a line, and a start with ， or 。 keeps the
    forms that put its marks where it has them (``春眠不觉晓，`` → the five-character forms), when any do, else
    those whose lines end where its marks are (``床前明月光。`` → the five-character forms, whose first line ends
    on ，). The marks are read as the model reads them (:func:`rnn_apps.chinese.normalize`: ``？！`` is one 。),
    so the SavedModel's ``generate`` signature, given ``form="auto"``, chooses among the same forms (but for the
    rule of the line heads, which the graph of version 10 lacks: the library draws the form itself).

    Args:
        start: The start.
        acrostic: The acrostic.
        chars: The model's reading of a text, to compare the start's and the acrostic's characters (see
            :func:`check_start_fits_acrostic`); default: the input rules alone.

    Returns:
        Form names in :data:`FORMS` order; ``[]`` when none fits (the poem is then free form).
    """
    start = chinese.normalize(start)
    heads = sum(map(chinese.is_han, acrostic))
    body = sum(map(chinese.is_han, start))
    fits = [f for f, (n, m) in FORMS.items() if f and heads <= m and body <= n * m]
    if start and acrostic:  # the graph of version 10 does not rule these out (rnn_apps draws the form itself)
        fits = [f for f in fits if not start_acrostic_conflicts(start, acrostic, f, chars)] or fits
    one_a_line = [f for f in fits if FORMS[f][1] == heads]
    fits = one_a_line or fits
    kept = [f for f in fits if not unkept_punctuation(start, f)]
    return kept or [f for f in fits if _marks_end_lines(start, f)] or fits


def draw_form(forms: Sequence[str], seed: int) -> str:
    """One of ``forms`` for the poem of ``seed``: uniform, and the same for the same seed on every machine.

    The draw is the sampler's uniform number u of the seed at step :data:`prosody.FORM_STEP` (the decoder's
    own draws use other steps), and the form is ``forms[floor(u · len(forms))]`` in float32, as the
    SavedModel's graph draws it for ``form="auto"``: a poem of the default form is the same poem from the
    command, the library and a TF Serving client that sends the same seed.
    """
    from rnn_apps.apps.poetry.fast import uniform  # NumPy only: the command need not import TensorFlow

    if not forms:
        raise PoemError("draw_form needs at least one form; received none.")
    u = uniform(np.array([int(seed)], np.int64), prosody.FORM_STEP)[0]
    return forms[min(int(np.floor(u * np.float32(len(forms)))), len(forms) - 1)]


def forced_breaks(poem: Poem, tables: prosody.Tables) -> list[dict]:
    """The breaks of ``poem``'s rhyme or metre (as asked) at characters its start or acrostic forced.

    The decoder keeps every character it draws within the rules; a start or acrostic that no template fits
    can still break them (the decoder then follows the template they break least). Returns check-poem's
    break records (line, position (1-based), char, kind).
    """
    lines = poem.lines
    forced = set()
    heads = [c for c in poem.acrostic if prosody.is_han(c)]
    forced |= {(i + 1, 1) for i in range(min(len(heads), len(lines)))}
    n = len(lines[0]) - 1 if lines else 0
    k = sum(1 for c in poem.prompt if prosody.is_han(c))
    forced |= {(i // n + 1, i % n + 1) for i in range(k)} if n else set()
    r = check_poem(poem.text, "xinyun" if poem.rhyme == "xinyun" else "pingshui", tables)
    if r["form"] is None:
        return []
    out = []
    if poem.metre != "none":
        out += [b for b in r["metre"][f"{poem.metre}_breaks"] if (b["line"], b["position"]) in forced]
    if poem.rhyme != "none":
        out += [{**b, "position": n} for b in r["rhyme"]["breaks"] if (b["line"], n) in forced]
    return out


def check_poem(text: str, rhyme: str = prosody.DEFAULT_RHYME, tables: Optional[prosody.Tables] = None) -> dict:
    """Tones, rhyme and metre of a poem (``rnn-apps check-poem``): see :func:`rnn_apps.apps.poetry.prosody.check_poem`.

    Raises:
        PoemError: no Chinese character in ``text``, or ``rhyme`` not pingshui or xinyun.
    """
    try:
        return prosody.check_poem(text, tables or prosody.Tables.load(), rhyme)
    except prosody.ProsodyError as e:
        raise PoemError(str(e)) from None


def read_poems_file(path: str, stdin=None) -> list[str]:
    """Poems of a UTF-8 file separated by blank lines (a poem may span lines); ``-`` reads ``stdin`` (binary).

    Each poem is a :class:`~rnn_apps.textio.Line` that knows the line it starts on ("poems.txt, line 5").

    Raises:
        FileNotFoundError: no such file. PoemError: a directory, a file in UTF-16 or UTF-32, or bytes that are
            not UTF-8 (:func:`rnn_apps.textio.decode_utf8`).
    """
    import sys

    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            data = (stdin if stdin is not None else sys.stdin.buffer).read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise PoemError(f"{path} is a directory; give a file of poems separated by blank lines.") from None
    text = textio.decode_utf8(data, name, PoemError)
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # CR line ends (old Mac files) separate poems too
    poems, line = [], 1
    for block in re.split(r"(\n\s*\n)", text):
        if block.strip() and not re.fullmatch(r"\n\s*\n", block):
            first = line + block[: len(block) - len(block.lstrip())].count("\n")  # blank lines before it
            poems.append(textio.Line(block.strip(), f"{name}, line {first}"))
        line += block.count("\n")
    return poems


ENGINES = ("auto", "numpy", "tensorflow")


class PoemGenerator(Predictor):
    """Generate poems with an exported poem model.

    Args:
        model_dir: A version directory or ``models/poetry`` (newest version); default: the shipped model.
        engine: ``"auto"`` (NumPy when it supports the model, else TensorFlow), ``"numpy"`` or
            ``"tensorflow"``. Both write the same poems for a seed; :attr:`engine` says which is used.

    Raises:
        PoemError: ``engine="numpy"`` for a model the NumPy engine does not support, or an unknown engine.
    """

    app = "poetry"
    lazy = True  # the NumPy engine needs no SavedModel (nor TensorFlow) to generate

    def __init__(self, model_dir: Optional[str] = None, engine: str = "auto"):
        if engine not in ENGINES:
            raise PoemError(f"Unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}.")
        super().__init__(model_dir)
        self.script = self.config.get("script", "simplified")
        self._numpy = None
        self.engine = "tensorflow"
        self.engine_note = ""  # why auto fell back to TensorFlow
        if engine in ("auto", "numpy"):
            from rnn_apps.apps.poetry.fast import NumpyPoemModel, UnsupportedModelError

            try:
                self._numpy = NumpyPoemModel(self.model_dir, self.meta)
                self.engine = "numpy"
            except UnsupportedModelError as e:
                if engine == "numpy":
                    raise PoemError(f"The NumPy engine cannot run the model in {self.model_dir}: {e}. "
                                    "Use --engine tensorflow (or auto).") from None
                self.engine_note = str(e)
        # How the model reads a start or an acrostic (chars), on either engine from the vocabulary alone
        self.reading = (self._numpy.reading if self._numpy is not None
                        else ModelReading(self.meta.get("vocab", {}).get("tokens", []), self.script))
        if self.engine == "tensorflow":
            self.load()

    def reader(self):
        """A :class:`rnn_apps.apps.poetry.fast.PoemReader` of the model: reads a text left to right and scores
        candidate continuations (how another app weighs characters by this language model). Needs the NumPy
        engine.

        Raises:
            PoemError: the model runs on the TensorFlow engine.
        """
        if self._numpy is None:
            raise PoemError(f"The poem model in {self.model_dir} cannot read texts here: it needs the NumPy engine "
                            f"({self.engine_note or 'engine tensorflow was asked for'}).")
        return self._numpy.reader()

    def chars(self, text: str) -> list[str]:
        """The characters of ``text`` as the model reads them: after its input rules, with a character of the
        other script that it does not know converted to its own (OpenCC's table, as the graph converts it)."""
        return self.reading(text)

    def unknown_characters(self, text: str) -> str:
        if self._numpy is not None:
            return self._numpy.unknown_characters(text)
        import tensorflow as tf

        out = self.signatures["unknown_characters"](text=tf.constant([text]))["unknown"]
        return out.numpy()[0].decode("utf-8")

    def _check(self, start: str, acrostic: str, form: str, max_length: int):
        if form not in FORMS:
            raise PoemError(f"Unknown form {form!r}; choose one of: {', '.join(f for f in FORMS if f)} "
                            f"({', '.join(f'{k}={v}' for k, v in FORM_NAMES.items())}), {AUTO_FORM!r} (one of them "
                            "drawn for each poem) or '' (free form).")
        with limits.errors_as(PoemError):  # first: the start's check below reads max_length as valid
            limits.check_number(LIMITS, "max_length", max_length)
        for what, text, name in (("start", start, "prompt"), ("acrostic", acrostic, "acrostic")):
            with limits.errors_as(PoemError):  # the server's limits and words
                limits.check_text(LIMITS, name, text, where=f"The {what}")
            with limits.errors_as(PoemError):
                limits.check_characters(LIMITS, f"The {what}", text, self.unknown_characters(text) if text else "")
        if form:
            n, m = FORMS[form]
            check_acrostic_fits_form(acrostic, form)
            body = sum(map(chinese.is_han, start))  # a form poem keeps the start's Chinese characters only
            if body > n * m:
                raise PoemError(f"The start has {body} characters; {form} has only {n * m}.")
        elif len(start) > max_length - 3:
            raise PoemError(f"The start ({len(start)} characters) must leave room in max_length ({max_length}) "
                            "for the poem to end.")

    def generate(
        self,
        start: str = "",
        acrostic: str = "",
        form: str = "",
        n: int = 1,
        temperature: float = DEFAULT_SAMPLING["temperature"],
        top_k: int = DEFAULT_SAMPLING["top_k"],
        top_p: float = DEFAULT_SAMPLING["top_p"],
        seed: Optional[int] = None,
        max_length: int = DEFAULT_SAMPLING["max_length"],
        rhyme: str = prosody.DEFAULT_RHYME,
        metre: str = prosody.DEFAULT_METRE,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> list[Poem]:
        """Generate ``n`` poems in batches (one graph call of up to 64, or one NumPy loop of up to 256 over the steps).

        The same ``seed`` gives the same poems (poem i uses seed + i). ``form`` is one of :data:`FORMS`
        (``""``: free form, the model picks the shape) or ``"auto"``: for each poem one of the forms that the
        start and acrostic fit (:func:`auto_forms`), drawn with its seed (:func:`draw_form`), free form when
        none fits; poem i is then the poem that its drawn form and seed give. A form poem follows ``rhyme``
        (``pingshui`` 平水韵, ``xinyun`` 中华新韵 or ``none``) and ``metre`` (``strict``, ``loose``
        一三五不论 without 孤平, or ``none``); free-form poems ignore both. ``progress(done, n)`` is called
        after each batch.

        Raises:
            PoemError: unknown characters, an impossible form or acrostic, bad sampling values.
        """
        with limits.errors_as(PoemError):
            n = limits.as_integer(n, "n")  # NumPy's integers too
        if n < 1 or n > 1000:
            raise PoemError(f"n must be between 1 and 1000; received {n}.")
        for what, text in (("start", start), ("acrostic", acrostic)):
            if not isinstance(text, str):  # None and bytes too: "" is no start
                raise PoemError(f"The {what} must be text (a str); received {text!r}.")
        with limits.errors_as(PoemError):  # the server's ranges and words
            for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
                limits.check_number(LIMITS, name, value)
            if seed is not None:  # poem i uses seed + i: the last one must be a seed too
                limits.check_number(LIMITS, "seed", seed)
                limits.check_number(LIMITS, "seed", seed + n - 1, where=f"seed + {n - 1} (the last poem's seed)")
        for name, value, choices in (("rhyme", rhyme, prosody.RHYMES), ("metre", metre, prosody.METRES)):
            try:
                prosody.check_choice(name, value, choices)
            except prosody.ProsodyError as e:
                raise PoemError(str(e)) from None
        start, acrostic = start.strip(), acrostic.strip()
        choices = auto_forms(start, acrostic, self.chars) if form == AUTO_FORM else [form]
        self._check(start, acrostic, choices[0] if choices else "", max_length)
        # The start keeps its characters: one where the acrostic asks for another is refused, not replaced.
        check_start_fits_acrostic(start, acrostic, form, self.chars)
        if seed is None:
            seed = random.SystemRandom().randrange(2**62)
        seeds = [seed + i for i in range(n)]
        forms = [draw_form(choices, s) if choices else "" for s in seeds]  # a list of one: that form
        run = self._generate_numpy if self._numpy is not None else self._generate_tf
        # Batches (the graph refuses more than the server's batch; NumPy runs larger ones a little faster):
        # memory stays bounded, and a long run reports its progress between them. A poem depends only on
        # its own seed, so the batches give the poems one batch of n would (up to float32 rounding of the
        # products at another batch size, as between the engines: docs/poetry.md).
        size = LIMITS.max_batch * (4 if self._numpy is not None else 1)
        # Free-form poems neither rhyme nor scan: the templates need the form's lines.
        rhymes = [rhyme if f else "none" for f in forms]
        metres = [metre if f else "none" for f in forms]
        texts = []
        for i in range(0, n, size):
            rows = slice(i, i + size)
            texts += run(start, acrostic, forms[rows], temperature, top_k, top_p, seeds[rows], max_length,
                         rhymes[rows], metres[rows])
            if progress is not None:
                progress(len(texts), n)
        poems = [Poem(text, f, s, start, acrostic, r, m)
                 for text, f, s, r, m in zip(texts, forms, seeds, rhymes, metres)]
        tables = None
        for p in poems:
            if p.form and (start or acrostic) and (p.rhyme, p.metre) != ("none", "none"):
                tables = tables or prosody.Tables.load()
                p.forced_breaks = forced_breaks(p, tables)
        return poems

    def _generate_numpy(self, start, acrostic, forms, temperature, top_k, top_p, seeds, max_length, rhymes,
                        metres) -> list[str]:
        """One batch; ``forms``, ``seeds``, ``rhymes`` and ``metres`` have one entry a poem."""
        from rnn_apps.apps.poetry.fast import ModelInputError

        rows = len(seeds)
        try:
            out = self._numpy.generate(
                [start] * rows, list(forms), [acrostic] * rows, [float(temperature)] * rows, [int(top_k)] * rows,
                [float(top_p)] * rows, seeds, [int(max_length)] * rows, list(rhymes), list(metres),
            )
        except ModelInputError as e:
            raise PoemError(str(e)) from None
        return list(out["text"])

    def _generate_tf(self, start, acrostic, forms, temperature, top_k, top_p, seeds, max_length, rhymes,
                     metres) -> list[str]:
        """One batch through the ``generate`` signature; per-poem lists as in :meth:`_generate_numpy`."""
        import tensorflow as tf

        model = self.loaded
        signature = model.signatures["generate"]
        extra = {}
        if "rhyme" in signature.structured_input_signature[1]:
            extra = {"rhyme": tf.constant(list(rhymes)), "metre": tf.constant(list(metres))}
        elif set(rhymes) | set(metres) != {"none"}:
            raise PoemError(f"The model in {self.model_dir} was exported before rhyme and metre: its graph writes "
                            "neither. Use --engine numpy, --rhyme none --metre none, or --form free.")
        rows = len(seeds)  # at most LIMITS.max_batch: the model refuses larger batches
        try:
            out = signature(
                prompt=tf.constant([start] * rows),
                form=tf.constant(list(forms)),
                acrostic=tf.constant([acrostic] * rows),
                temperature=tf.constant([float(temperature)] * rows, tf.float32),
                top_k=tf.constant([int(top_k)] * rows, tf.int32),
                top_p=tf.constant([float(top_p)] * rows, tf.float32),
                seed=tf.constant(seeds, tf.int64),
                max_length=tf.constant([int(max_length)] * rows, tf.int32),
                **extra,
            )
        except tf.errors.InvalidArgumentError as e:
            raise PoemError(graph_error_message(e)) from None
        return [t.decode("utf-8") for t in out["text"].numpy()]

    def score(self, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
        """Log-probability, character count and bits per character of each text under the model.

        Characters outside the vocabulary are scored as ``<unk>`` (as in training) and counted in
        ``unknown_characters``.
        """
        import tensorflow as tf

        texts = text_list(texts)
        batch_size = min(check_batch_size(batch_size, PoemError), LIMITS.max_batch)  # the model refuses larger ones
        for i, t in enumerate(texts, 1):
            check_is_text(t, i, PoemError)
        model = self.loaded
        results = []
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i : i + batch_size])
            try:
                out = model.signatures["score"](text=tf.constant(chunk))
            except tf.errors.InvalidArgumentError as e:
                raise PoemError(graph_error_message(e)) from None
            for lp, nc, bpc, unk in zip(out["log_probability"].numpy(), out["characters"].numpy(),
                                        out["bits_per_char"].numpy(), out["unknown_characters"].numpy()):
                results.append({"log_probability": float(lp), "characters": int(nc), "bits_per_char": float(bpc),
                                "unknown_characters": int(unk)})
        return results


def to_script(text: str, script: str, keep: str = "", tables: Optional[prosody.Tables] = None) -> str:
    """Convert a generated poem to ``script`` (OpenCC) for display, keeping its prosody and the given characters.

    OpenCC converts by phrases, which fit prose: in a poem a phrase can turn an acrostic's head into another
    character (冬冬 -> 鼕鼕) or pick a character of another reading (千万里 -> 千萬裏). Into traditional
    script, a character the Tang poems write is given the form they write for it in its context
    (:mod:`rnn_apps.traditional`: 千萬里, 白髮), and the characters of ``keep`` (the acrostic's
    heads, the start, as the user typed them) stay as typed wherever the poem has them (為 for 为; one that
    only simplified script writes, 发, takes the poems' choice). Otherwise a character of ``keep``, and one
    that the phrase conversion gives a classical tone the original cannot have (none in common, or an
    unknown one), is converted on its own (OpenCC's character table, first candidate).
    """
    from rnn_apps.apps.poetry.data import convert_script
    from rnn_apps.traditional import TraditionalTable
    from rnn_apps.chinese import simplified_only_characters
    from rnn_apps.textio import opencc_characters

    converted = convert_script(text, script)
    if len(converted) != len(text):  # not character for character: nothing to line up
        return converted
    tables = tables or prosody.Tables.load()
    single = opencc_characters(script)
    poems = TraditionalTable.load() if script == "traditional" else None
    own = {}
    if poems is not None:
        # The user's characters as typed, by the reading the model wrote them in (為 read as 为): 為 stays 為,
        # and 冬 stays 冬 where 冬冬 "the sound of drums" would make it 鼕. One only simplified script writes
        # (发) takes the poems' choice.
        reading = opencc_characters("simplified")
        own = {reading.get(c, c): c for c in keep if c not in simplified_only_characters()}
    out = []
    for i, (original, phrased) in enumerate(zip(text, converted)):
        chosen = poems.choose(text, i) if poems is not None else None
        if original in own:
            phrased = own[original]
        elif chosen is not None:
            phrased = chosen
        elif phrased != original and (original in keep
                                      or not tables.tone_bits(phrased) & tables.tone_bits(original)):
            phrased = single.get(original, original)
        out.append(phrased)
    return "".join(out)
