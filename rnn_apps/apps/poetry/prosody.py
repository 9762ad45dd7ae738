"""Tone (平仄) and rhyme (押韵) of regulated verse (近体诗): tables, templates and a checker.

Importable without TensorFlow; shared by the SavedModel export (:mod:`rnn_apps.apps.poetry.export`), the NumPy
engine (:mod:`rnn_apps.apps.poetry.fast`) and ``rnn-apps check-poem``.

**Tables** (``prosody.json`` beside this module, built by :mod:`rnn_apps.apps.poetry.prosody_build`, which says
where the data came from):

* ``pingshui`` - 平水韵, the rhyme book of regulated verse since the Song: 106 groups, 30 of them level-tone
  (平声) groups a regulated poem rhymes in. A character's classical tone is 平 when it is listed in a 平 group,
  仄 when in an oblique (上/去/入) group, both when in both (多音字). The transcription used lacks common
  characters (啼 溪 堤 昂 爐, or holds only a variant form): those the Tang poems show clearly get the 平 group
  they rhyme in and the tone their metre shows (``inferred``; see :func:`rnn_apps.apps.poetry.prosody_build.
  infer_from_poems` and the agreement it measured). Any other character the book lacks gets its tone
  from its modern readings when they all agree (:meth:`Tables.modern_tone_bits`): 仄 when every reading has
  the 3rd or 4th tone; 平 when every reading has the 1st or 2nd tone and a nasal final (-n, -ng), since the
  old 入声 syllables ended in -p, -t, -k and none became nasal; any other character stays unknown (a modern
  1st- or 2nd-tone syllable without a nasal may be an old 入声 one).
* ``xinyun`` - 中华新韵 (14 groups of modern Mandarin finals), with modern tones: 1 and 2 are 平, 3 and 4 仄.

**Templates**: the four standard tonal patterns of each form (平起 or 仄起, first line rhymed or not), built from
the four line types A 仄仄平平仄, B 平平仄仄平, C 平平平仄仄, D 仄仄仄平平 (a seven-character line puts two
characters of the opposite tone before them) by the rules of 对 (a couplet's lines oppose) and 粘 (a couplet's
first line keeps the second character's tone of the line before); an eight-line poem repeats its quatrain with
line 5 unrhymed. ``strict`` metre constrains every position; ``loose`` (一三五不论) constrains the even
positions and the line ends, avoids 孤平 (a B line needs a 平 at its first or third position from the end but
four, i.e. 五言 positions 1 or 3, 七言 3 or 5) and 三平尾 (a D line keeps 仄 before its last two characters).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rnn_apps.chinese import is_han
from rnn_apps.vocab import SPECIALS

TABLES_PATH = os.path.join(os.path.dirname(__file__), "prosody.json")
RHYMES = ("pingshui", "xinyun", "none")
METRES = ("strict", "loose", "none")
DEFAULT_RHYME, DEFAULT_METRE = "pingshui", "loose"
PING, ZE = 1, 2  # tone bits: a character may have both (多音字)
# Per-position constraint codes of a decoding plan.
FREE, NEED_PING, NEED_ZE, RHYME, GUPING = 0, 1, 2, 3, 4  # GUPING: 平 unless the character two back is 平
# line ends a poem's decoding remembers (a 律诗 has 8 lines): a rhyming place never repeats one of them (重韵),
# not even the end of an unrhymed first line that a 多音字 filled (行 as 仄, then 行 as the rhyme)
MAX_LINE_ENDS = 8
MIN_GROUP_CHARS = 12  # a rhyme group is offered only when the vocabulary has this many 平 characters of it
TEMPLATE_STEP = 100_003  # the sampler's step number of the template draw (never a decoding step)
FORM_STEP = 100_019  # the sampler's step number of form "auto"'s draw among the forms (never a decoding step)
LINE5 = {"A": "仄仄平平仄", "B": "平平仄仄平", "C": "平平平仄仄", "D": "仄仄仄平平"}
QUATRAINS = (("ABCD", False), ("DBCD", True), ("CDAB", False), ("BDAB", True))  # 五言: 仄起 x2, 平起 x2
_OPPOSITE = {"平": "仄", "仄": "平"}
_NASAL_XINYUN = (7, 8, 9, 10)  # 八寒 九文 十唐 十一庚: the 中华新韵 groups of the finals in -n and -ng
_SPLIT = re.compile(r"[，。？！；：、,.!?;:\s]+")
# punctuation and spaces between a poem's lines (ASCII, CJK and full-width marks, quotes, …, ·): not noted as skipped
_PUNCTUATION = re.compile(r"[\s!-/:-@\[-`{-~\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\u2018-\u201f\u2026\u00b7]")
MAX_POEM_CHARS = 5_000  # a poem to check: a long 排律 has a few hundred characters
# the marks that end a line of verse; a title or author line (静夜思, 唐·李白, 《登鹳雀楼》 王之涣) has none
_VERSE_MARKS = re.compile(r"[，。？！；,.!?;]")
_CLOSING_MARKS = frozenset("。？！.?!")  # the marks that close a couplet (or a sentence), not ，；
_INNER_MARKS = re.compile(r"[，,]")  # the mark inside a couplet
MAX_HEADING_LINES = 2  # a title, and an author (or dynasty and author) line


class ProsodyError(ValueError):
    """Bad rhyme/metre arguments or a text that cannot be checked."""


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; otherwise :class:`ProsodyError` naming what was received."""
    if value not in choices:
        raise ProsodyError(f"{name} must be one of {', '.join(choices)}; received {value!r}.")
    return value


class Tables:
    """The tone and rhyme tables (see the module docstring).

    Args:
        data: The parsed ``prosody.json``.
    """

    def __init__(self, data: dict):
        if data.get("format") != "rnn_apps.prosody/1":
            raise ProsodyError(f"not a prosody table (format {data.get('format')!r}, expected 'rnn_apps.prosody/1')")
        self.sources = {k: data[k]["source"] for k in ("pingshui", "xinyun")}
        ps = data["pingshui"]["groups"]
        inferred = data["pingshui"].get("inferred") or {}
        if inferred:
            self.sources["pingshui_inferred"] = inferred["source"]
        self.inferred_agreement = inferred.get("agreement")
        self.ps_names = [g["name"] for g in ps]
        self.ps_ping_names = [g["name"] for g in ps if g["tone"] == "平"]
        self._ps: Dict[str, list] = {}  # char -> [(group index, tone)]
        for i, g in enumerate(ps):
            for c in g["chars"]:
                self._ps.setdefault(c, []).append((i, g["tone"]))
        self._ps_ping_index = {i: j for j, i in enumerate(k for k, g in enumerate(ps) if g["tone"] == "平")}
        # characters the book lacks, as the Tang poems' rhymes and metre show them: tone bits and 平 groups
        index = {g["name"]: i for i, g in enumerate(ps)}
        self._inferred: Dict[str, tuple] = {
            c: (_bits("平仄" if e["tone"] == "多" else e["tone"]), [index[n] for n in e.get("groups", ())])
            for c, e in (inferred.get("characters") or {}).items()}
        xy = data["xinyun"]["groups"]
        self.xy_names = [g["name"] for g in xy]
        self._xy: Dict[str, list] = {}
        for i, g in enumerate(xy):
            for tone in ("平", "仄"):
                for c in g[tone]:
                    self._xy.setdefault(c, []).append((i, tone))

    @classmethod
    def load(cls, path: Optional[str] = None) -> "Tables":
        """Read the tables (default: the ones shipped with the package)."""
        with open(path or TABLES_PATH, encoding="utf-8") as f:
            return cls(json.load(f))

    def tone_bits(self, char: str, rhyme: str = "pingshui") -> int:
        """``PING | ZE`` bits of ``char``: classical tones for ``pingshui`` and ``none``, modern for ``xinyun``."""
        if rhyme == "xinyun":
            return _bits(t for _, t in self._xy.get(char, ()))
        found = self._ps.get(char)
        if found:
            return _bits(t for _, t in found)
        if char in self._inferred:
            return self._inferred[char][0]
        return self.modern_tone_bits(char)

    def modern_tone_bits(self, char: str) -> int:
        """The classical tone of ``char`` told by its modern readings alone, when they all agree: ``ZE`` when
        each has the 3rd or 4th tone, ``PING`` when each has the 1st or 2nd tone and a nasal final (入声 never
        became nasal), else 0. (On the characters the rhyme book has, each rule agrees with the book about 99 %
        of the time: ``benchmarks/poetry_prosody.py``.)"""
        modern = self._xy.get(char, ())
        if modern and all(t == "仄" for _, t in modern):
            return ZE
        if modern and all(t == "平" and g in _NASAL_XINYUN for g, t in modern):
            return PING
        return 0

    def tone_source(self, char: str, rhyme: str = "pingshui") -> str:
        """Where :meth:`tone_bits` found the tone: "pingshui", "inferred" (from the Tang poems), "xinyun",
        "modern" (the fallback) or ""."""
        if rhyme == "xinyun":
            return "xinyun" if char in self._xy else ""
        if char in self._ps:
            return "pingshui"
        if char in self._inferred:
            return "inferred"
        return "modern" if self.tone_bits(char, rhyme) else ""

    def in_book(self, char: str, rhyme: str = "pingshui") -> bool:
        """Whether the rhyme book (or, for pingshui, what the Tang poems showed) places ``char`` in a group."""
        if rhyme == "xinyun":
            return char in self._xy
        return char in self._ps or bool(self._inferred.get(char, (0, []))[1])

    def rhyme_groups(self, char: str, rhyme: str = "pingshui") -> List[int]:
        """The level-tone rhyme groups ``char`` may rhyme in (indices into :meth:`rhyme_names`)."""
        if rhyme == "pingshui":
            if char not in self._ps and char in self._inferred:
                return sorted(self._ps_ping_index[i] for i in self._inferred[char][1])
            return sorted({self._ps_ping_index[i] for i, t in self._ps.get(char, ()) if t == "平"})
        if rhyme == "xinyun":
            return sorted({i for i, t in self._xy.get(char, ()) if t == "平"})
        return []

    def rhyme_names(self, rhyme: str = "pingshui") -> List[str]:
        return {"pingshui": self.ps_ping_names, "xinyun": self.xy_names}.get(rhyme, [])

    def all_groups(self, char: str, rhyme: str = "pingshui") -> List[str]:
        """Every group of ``char`` with its tone ("下平十一尤", "入一屋"; "八寒 平" for xinyun)."""
        if rhyme == "xinyun":
            return [f"{self.xy_names[i]} {t}" for i, t in self._xy.get(char, ())]
        if char not in self._ps and char in self._inferred:
            return [self.ps_names[i] for i in self._inferred[char][1]]
        return [self.ps_names[i] for i, _ in self._ps.get(char, ())]

    def oblique_groups(self, char: str) -> List[str]:
        """The 仄 (上/去/入) groups of ``char`` in 平水韵 (a poem rhymed in one of them is 仄韵)."""
        return [self.ps_names[i] for i, t in self._ps.get(char, ()) if t == "仄"]

    def vocab_arrays(self, tokens: Sequence[str], min_group_chars: int = MIN_GROUP_CHARS) -> dict:
        """Per-token tables for constrained decoding, rows in :data:`RHYMES` order.

        Returns:
            ``{"tone": int32 [3, V] PING/ZE bits, "rhyme": int32 [3, V] bit g set when the token rhymes in
            group g}``. Only Han tokens get bits; a rhyme group counts only when at least
            ``min_group_chars`` tokens rhyme in it (so a poem never runs out of rhymes); ``none`` has no
            rhyme bits and classical tones.
        """
        V = len(tokens)
        tone = np.zeros((len(RHYMES), V), np.int32)
        rhyme = np.zeros((len(RHYMES), V), np.int32)
        for s, system in enumerate(RHYMES):
            for v, t in enumerate(tokens):
                if v >= len(SPECIALS) and is_han(t):
                    tone[s, v] = self.tone_bits(t, system)
                    for g in self.rhyme_groups(t, system):
                        rhyme[s, v] |= 1 << g
            counts = [(rhyme[s] >> g & 1).sum() for g in range(31)]
            usable = sum(1 << g for g in range(31) if counts[g] >= min_group_chars)
            rhyme[s] &= usable
        return {"tone": tone, "rhyme": rhyme}


def _bits(tones) -> int:
    b = 0
    for t in tones:
        b |= PING if t == "平" else ZE
    return b


# ----------------------------------------------------------------------------------------- templates

@dataclass(frozen=True)
class Template:
    """A tonal pattern of one form: ``lines`` of 平/仄, whether line 1 rhymes, and its name."""

    name: str
    lines: tuple
    rhymed_first: bool

    def rhymed(self, line: int) -> bool:
        return line % 2 == 1 or (line == 0 and self.rhymed_first)


def templates(n: int, m: int) -> List[Template]:
    """The four templates of the form with ``m`` lines of ``n`` characters (n in 5, 7; m in 4, 8)."""
    if n not in (5, 7) or m not in (4, 8):
        raise ProsodyError(f"regulated forms have 4 or 8 lines of 5 or 7 characters; received {m} x {n}")

    def line(kind):
        five = LINE5[kind]
        return five if n == 5 else "".join(_OPPOSITE[c] for c in five[:2]) + five

    out = []
    for kinds, rhymed_first in QUATRAINS:
        lines = [line(k) for k in kinds]
        if m == 8:
            unrhymed = next(q for q, r in QUATRAINS if not r and LINE5[q[0]][1] == LINE5[kinds[0]][1])
            lines += [line(k) for k in unrhymed]
        name = f"{lines[0][1]}起，首句{'入' if rhymed_first else '不入'}韵"
        out.append(Template(name, tuple(lines), rhymed_first))
    return out


def line_codes(pattern: str, metre: str) -> List[int]:
    """Constraint codes of one line's characters under ``metre`` (the line end is decided by the caller)."""
    n = len(pattern)
    need = [NEED_PING if c == "平" else NEED_ZE for c in pattern]
    if metre == "strict":
        return need
    if metre == "none":
        return [FREE] * n
    codes = [need[i] if (i + 1) % 2 == 0 or i == n - 1 else FREE for i in range(n)]
    if pattern.endswith("仄仄平"):  # B line: no 孤平 (position n-2 平 unless n-4 is)
        codes[n - 3] = GUPING
    elif pattern.endswith("仄平平"):  # D line: no 三平尾
        codes[n - 3] = NEED_ZE
    return codes


def plan_codes(template: Template, metre: str, rhyme: str) -> List[int]:
    """Codes of every position of the form's plan (lines, their punctuation, the end), 0 where free."""
    out = []
    for i, pattern in enumerate(template.lines):
        codes = line_codes(pattern, metre)
        if template.rhymed(i):
            codes[-1] = RHYME if rhyme != "none" else (NEED_PING if metre != "none" else FREE)
        out += codes + [FREE]
    return out + [FREE]


def code_table(forms: Dict[str, tuple]) -> np.ndarray:
    """int32 [forms, METRES, RHYMES, 4, 65]: the codes of each form's templates, zeros past a plan's end.

    ``forms`` maps a form name to (characters a line, lines), in the order of the form's index;
    free form ((0, 0)) gets no constraints.
    """
    width = max(m * (n + 1) + 1 for n, m in forms.values())
    table = np.zeros((len(forms), len(METRES), len(RHYMES), len(QUATRAINS), width), np.int32)
    for f, (n, m) in enumerate(forms.values()):
        if m == 0:
            continue
        for k, tpl in enumerate(templates(n, m)):
            for a, metre in enumerate(METRES):
                for b, rhyme in enumerate(RHYMES):
                    codes = plan_codes(tpl, metre, rhyme)
                    table[f, a, b, k, : len(codes)] = codes
    return table


# ----------------------------------------------------------------------------------------- the checker

FORM_OF_SHAPE = {(5, 4): "wujue", (7, 4): "qijue", (5, 8): "wulv", (7, 8): "qilv"}
UNBROKEN_SHAPES = {n * m: (n, m) for n, m in FORM_OF_SHAPE}
"""A regulated form's length in characters -> (characters a line, lines): 20 -> (5, 4) ... each length is one
form's only."""


def _tone_mark(bits: int) -> str:
    return {PING: "平", ZE: "仄", PING | ZE: "多"}.get(bits, "?")


def check_poem(text: str, tables: Tables, rhyme: str = "pingshui") -> dict:
    """Analyse a poem's tones, rhyme and metre against the regulated forms.

    Args:
        text: The poem; lines split at Chinese or ASCII punctuation, whitespace ignored.
        tables: :class:`Tables`.
        rhyme: ``pingshui`` (classical tones and 平水韵) or ``xinyun`` (modern tones, 中华新韵).

    Returns:
        A dict: ``form`` (wujue/qijue/wulv/qilv, or None when the lines do not make one), ``lines`` (each
        character with ``tone`` 平/仄/多 (多音字: either)/? (unknown) and the groups of the line end),
        ``rhyme`` (the shared group, ``ok``, ``breaks``), ``template`` (the best-matching one), ``metre``
        (``strict_ok``, ``loose_ok`` and their ``breaks``: line, position (1-based), character, expected, found).

    Raises:
        ProsodyError: no Han character in ``text``, or a bad ``rhyme``.
    """
    check_choice("rhyme", rhyme, ("pingshui", "xinyun"))
    if len(text) > MAX_POEM_CHARS:
        raise ProsodyError(f"The poem has {len(text):,} characters; a poem to check has at most {MAX_POEM_CHARS:,} "
                           "(a long 排律 has a few hundred). Separate poems by a blank line.")
    heading, rows = _heading_rows(_rows(text))
    # not checked: letters, digits, emoji ... (said in a note, not dropped silently)
    skipped = list(dict.fromkeys(c for r in rows for s in r.pieces for c in s
                                 if not is_han(c) and not _PUNCTUATION.fullmatch(c)))
    lines = _han_of(rows)
    if not lines:
        raise ProsodyError("The text has no Chinese characters to check.")
    # A poem pasted without punctuation or line breaks (白日依山尽黄河入海流...): the four forms' lengths
    # (20, 28, 40, 56) each split one way only, so it is read as that form's lines, and the result says so.
    lines, shape, unbroken = _as_poem(lines)
    names = tables.rhyme_names(rhyme)
    out_lines = []
    for s in lines:
        chars = [{"char": c, "tone": _tone_mark(tables.tone_bits(c, rhyme)),
                  "source": tables.tone_source(c, rhyme)} for c in s]
        out_lines.append({"text": s, "characters": chars, "end": s[-1],
                          "end_groups": tables.all_groups(s[-1], rhyme)})
    form = FORM_OF_SHAPE.get(shape)
    # the lines in couplets (联), as a regulated poem is written: ， after the first line of each, 。 after the second
    text = "".join(s + ("，" if i % 2 == 0 and i < len(lines) - 1 else "。") for i, s in enumerate(lines))
    result = {"text": text, "rhyme_system": rhyme, "form": form, "lines": out_lines}
    if unbroken:
        result["split"] = (f"read as {shape[1]} lines of {shape[0]} characters: the text has no punctuation or line "
                           "breaks")
    if heading:
        result["heading"] = heading
    if skipped:
        result["skipped"] = "".join(skipped)
    if form is None:
        result["note"] = "not a regulated form (4 or 8 lines of 5 or 7 characters); tones only"
        result.update(rhyme=None, template=None, metre=None)
        return result
    # Rhyme: the even lines' ends share a level-tone group; line 1 joins it or ends on a 仄 character.
    even = [tables.rhyme_groups(lines[i][-1], rhyme) for i in range(1, len(lines), 2)]
    first_groups = tables.rhyme_groups(lines[0][-1], rhyme)
    counts = {g: sum(g in gs for gs in even) for gs in even for g in gs}
    # the group most even lines end in; among equals, one line 1 joins, then the earliest line's (the poem
    # sets its rhyme at line 2: a later line that leaves it is the break)
    first_of = {g: next(k for k, gs in enumerate(even) if g in gs) for g in counts}
    group = max(sorted(counts), key=lambda g: (counts[g], g in first_groups, -first_of[g])) if counts else None
    oblique = None if group is not None or rhyme != "pingshui" else _oblique_rhyme(lines, tables)
    breaks = []
    for i in range(1, len(lines), 2):
        end = lines[i][-1]
        if oblique is not None:
            if oblique not in tables.oblique_groups(end):
                breaks.append({"line": i + 1, "char": end, "kind": "line end outside the rhyme group"})
        elif group is None or group not in tables.rhyme_groups(end, rhyme):
            kind = ("line end outside the rhyme group" if tables.in_book(end, rhyme)
                    else "line end not in the rhyme book (its group is unknown)")
            breaks.append({"line": i + 1, "char": end, "kind": kind})
    first = lines[0][-1]
    first_rhymes = (group is not None and group in first_groups) or (
        oblique is not None and oblique in tables.oblique_groups(first))
    if oblique is None and not first_rhymes and not tables.tone_bits(first, rhyme) & ZE:
        breaks.append({"line": 1, "char": first, "kind": "line 1 ends on 平 outside the rhyme group"})
    # 重韵: a rhyme character used twice (line 1's end counts, rhymed or not: a reader hears it again)
    seen = {first: 1}
    for i in range(1, len(lines), 2):
        end = lines[i][-1]
        if end in seen:
            breaks.append({"line": i + 1, "char": end, "kind": f"repeats the end of line {seen[end]} (重韵)"})
        seen.setdefault(end, i + 1)
    breaks.sort(key=lambda b: b["line"])
    result["rhyme"] = {"group": names[group] if group is not None else oblique, "ok": not breaks,
                       "first_line_rhymes": first_rhymes, "breaks": breaks, "tone": "仄" if oblique else "平"}
    if oblique:
        # the tonal templates of regulated verse are those of 平韵 poems: against them a 仄韵 poem breaks everywhere
        result.update(template=None, metre=None,
                      note="rhymed in an oblique (仄) group (仄韵): the regulated templates are those of level-tone "
                           "(平韵) poems, so the metre is not checked")
        return result
    # Metre: the template with the fewest loose breaks, then one without strict breaks, then one that rhymes
    # line 1 as the poem does, then the fewest strict breaks. (No strict break implies no loose break, so
    # strict_ok and loose_ok say whether any template fits.)
    best = None
    for tpl in templates(*shape):
        strict = _metre_breaks(lines, tpl, "strict", tables, rhyme)
        loose = _metre_breaks(lines, tpl, "loose", tables, rhyme)
        key = (len(loose), bool(strict), tpl.rhymed_first != first_rhymes, len(strict))
        if best is None or key < best[0]:
            best = (key, tpl, strict, loose)
    _, tpl, strict, loose = best
    result["template"] = {"name": tpl.name, "lines": list(tpl.lines)}
    result["metre"] = {"strict_ok": not strict, "loose_ok": not loose, "strict_breaks": strict, "loose_breaks": loose}
    return result


@dataclass(frozen=True)
class _Row:
    """A line of the text as typed: the line, its pieces between marks and spaces, and their Han characters (the
    lines of verse it holds, pieces without Han left out)."""

    text: str
    pieces: tuple
    han: tuple


def _rows(text: str) -> List[_Row]:
    """The text's non-blank lines as :class:`_Row`: each read once, for the heading and the check alike."""
    rows = []
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            pieces = tuple(s for s in _SPLIT.split(line) if s)
            rows.append(_Row(line, pieces, tuple(h for h in ("".join(c for c in s if is_han(c)) for s in pieces) if h)))
    return rows


def _han_of(rows: Sequence[_Row]) -> List[str]:
    """The lines of verse (Han characters only) of ``rows``, in order."""
    return [h for r in rows for h in r.han]


def _as_poem(lines: Sequence[str]) -> Tuple[List[str], Optional[Tuple[int, int]], bool]:
    """``(lines, shape, unbroken)``: ``lines`` as a poem's lines, one unbroken line of a regulated form's length
    (20, 28, 40 or 56 characters) split into that form's lines (``unbroken`` True); ``shape`` is (characters a
    line, lines) when every line has the same length, else None. :data:`FORM_OF_SHAPE` names the form of a
    regulated shape."""
    lines = list(lines)
    unbroken = len(lines) == 1 and len(lines[0]) in UNBROKEN_SHAPES
    if unbroken:
        width = UNBROKEN_SHAPES[len(lines[0])][0]
        lines = [lines[0][i : i + width] for i in range(0, len(lines[0]), width)]
    shape = (len(lines[0]), len(lines)) if lines and len({len(s) for s in lines}) == 1 else None
    return lines, shape, unbroken


def _regulated(lines: Sequence[str]) -> bool:
    """4 or 8 lines of 5 or 7 characters, or one unbroken line of such a poem's length."""
    return _as_poem(lines)[1] in FORM_OF_SHAPE


def _starts_mid_couplet(rows: Sequence[_Row]) -> Optional[bool]:
    """Whether marked verse starts with the second half of a couplet, as far as its marks say: True when its first
    clause is closed (。 or . ? !) though its couplets have ， inside them (黄河入海流。 / 欲穷千里目，更上一层楼。: the
    line before it is that couplet's first half with its ， left out); False when its first clause ends with ，
    and a 。 follows; None when the marks do not say (， alone up to its last mark, or no ，). In the Complete Tang
    Poems 0.3 % of the poems punctuated with ， start with a closed clause."""
    text = "\n".join(r.text for r in rows)
    marks = [m.group() for m in _VERSE_MARKS.finditer(text)]
    if not any(m in _CLOSING_MARKS for m in marks[:-1]) or not any(_INNER_MARKS.fullmatch(m) for m in marks):
        return None
    return marks[0] in _CLOSING_MARKS


def _verse_length(row: _Row, lines: Sequence[str]) -> bool:
    """Whether ``row`` has as many Han characters as half or more of ``lines`` (the lines of verse after it)."""
    length = sum(len(h) for h in row.han)
    return Counter(len(s) for s in lines)[length] * 2 >= len(lines)


def _heading_rows(rows: Sequence[_Row]) -> Tuple[List[str], List[_Row]]:
    """Set aside the title and author lines that a poem copied from a book or web page starts with.

    Up to :data:`MAX_HEADING_LINES` first lines are a heading when none of them has a mark that ends a line
    of verse (，。？！； and ASCII ones), the whole text is not a regulated form already (春眠不觉晓 / 处处闻啼鸟。
    ... is its first line, left unpunctuated), and either every line after them has one and they hold two lines
    of verse or more (静夜思 / 李白 / 床前明月光，疑是地上霜。...) or, in a poem without such marks, the lines after
    them make a regulated form. Read as verse, the heading made every such poem "not a regulated form".

    Such a line is verse all the same when the marked lines after it start with the second half of a couplet
    (白日依山尽 / 黄河入海流。欲穷千里目，更上一层。, :func:`_starts_mid_couplet`), or, where their marks do not say
    (， alone), when it has the length of half or more of their lines and they are not a regulated form (a title
    of its poem's line length, 寻隐者不遇 or 饮湖上初晴后雨, stays a heading above a whole regulated poem). Its
    length alone says little: a quarter of the Tang poems' titles have more than 8 characters (黄鹤楼送孟浩然之广陵),
    and a line of verse may have 10 (君不见黄河之水天上来).

    Returns:
        (the heading lines, the rows after them); ``([], rows)`` when the text starts with verse.
    """
    rows = list(rows)
    if _regulated(_han_of(rows)):  # a form already (春眠不觉晓 / 处处闻啼鸟。...): no heading
        return [], rows
    bare = 0
    while bare < min(MAX_HEADING_LINES, len(rows) - 1) and not _VERSE_MARKS.search(rows[bare].text):
        bare += 1
    for k in range(bare, 0, -1):
        body = rows[k:]
        marked = [bool(_VERSE_MARKS.search(r.text)) for r in body]
        lines = _han_of(body)
        if all(marked):
            verse = _starts_mid_couplet(body)  # the line above is the first couplet's first half
            if verse is None:  # the marks do not say: a line of the verse's length is verse, unless the body is a form
                verse = not _regulated(lines) and any(_verse_length(r, lines) for r in rows[:k])
            heading = len(lines) >= 2 and not verse
        else:
            heading = not any(marked) and _regulated(lines)
        if heading:
            return [r.text for r in rows[:k]], body
    return [], rows


def _oblique_rhyme(lines, tables: Tables) -> Optional[str]:
    """The 仄 group that every even line's end shares (a 仄韵 poem such as 春晓 or 江雪), or None."""
    common = None
    for i in range(1, len(lines), 2):
        gs = set(tables.oblique_groups(lines[i][-1]))
        common = gs if common is None else common & gs
    return min(common) if common else None


def _metre_breaks(lines, tpl: Template, metre: str, tables: Tables, rhyme: str) -> list:
    """Where ``lines`` break ``tpl`` under ``metre`` (an unknown tone at a constrained place is a break)."""
    out = []
    for li, (s, pattern) in enumerate(zip(lines, tpl.lines)):
        codes = line_codes(pattern, metre)
        bits = [tables.tone_bits(c, rhyme) for c in s]
        for i, code in enumerate(codes):
            need = code
            if code == GUPING:
                need = NEED_PING if not bits[i - 2] & PING else FREE
            if need == FREE:
                continue
            want = PING if need == NEED_PING else ZE
            if not bits[i] & want:
                kind = "unknown tone" if not bits[i] else ("孤平" if code == GUPING else "tone")
                out.append({"line": li + 1, "position": i + 1, "char": s[i], "expected": _tone_mark(want),
                            "found": _tone_mark(bits[i]), "kind": kind})
    return out


def format_check(result: dict) -> str:
    """``check_poem``'s result as the text ``rnn-apps check-poem`` prints."""
    out = []
    for i, line in enumerate(result["lines"]):
        marks = "".join(c["tone"] for c in line["characters"])
        ends = "/".join(line["end_groups"]) or "?"
        out.append(f"{i + 1}. {line['text']}  {marks}  end {line['end']}: {ends}")
    if result.get("heading"):
        out.insert(0, f"({' / '.join(result['heading'])}: the title or author before the poem, not checked as verse)")
    if result.get("split"):
        out.append(f"({result['split']})")
    if result.get("skipped"):
        out.append(f"(not checked: {result['skipped']}, which are not Chinese characters)")
    if result["form"] is None:
        out.append(result["note"])
        return "\n".join(out)
    r, m = result["rhyme"], result["metre"]
    rhymed = (f"form {result['form']}; rhyme ({result['rhyme_system']}): {r['group'] or 'none'}"
              f"{' (仄韵)' if r.get('tone') == '仄' else ''}, {'ok' if r['ok'] else 'broken'}")
    if m is None:
        out.append(f"{rhymed}; {result['note']}")
    else:
        out.append(f"{rhymed}; template {result['template']['name']}: "
                   f"strict {'ok' if m['strict_ok'] else 'broken'}, loose {'ok' if m['loose_ok'] else 'broken'}")
    for b in r["breaks"]:
        out.append(f"  rhyme: line {b['line']} {b['char']}: {b['kind']}")
    if m is None:
        return "\n".join(out)
    # the breaks in the order of the poem; those 一三五不论 allows marked
    shown = []
    for b in m["strict_breaks"]:
        loose = any(b["line"] == x["line"] and b["position"] == x["position"] for x in m["loose_breaks"])
        shown.append((b["line"], b["position"], f"  metre: line {b['line']} position {b['position']} {b['char']}: "
                      f"expected {b['expected']}, found {b['found']} ({b['kind']}{'' if loose else ', allowed by 一三五不论'})"))
    for b in m["loose_breaks"]:
        if b["kind"] == "孤平" or not any(b["line"] == x["line"] and b["position"] == x["position"]
                                         for x in m["strict_breaks"]):
            shown.append((b["line"], b["position"], f"  metre: line {b['line']} position {b['position']} {b['char']}: {b['kind']}"))
    out.extend(text for _, _, text in sorted(shown, key=lambda x: (x[0], x[1])))
    return "\n".join(out)
