"""Traditional characters for a simplified poem or line, chosen the way the Tang poems write them.

A simplified character can stand for several traditional ones (发: 發 "send out" or 髮 "hair"; 里: 里 "mile"
or 裏 "inside"; 云: 云 "say" or 雲 "cloud"). OpenCC converts by the phrases of modern prose, so a poem's 千万里
came out as 千萬裏 and 白发 could come out as 白發. This table is learned from the training poems of the
Complete Tang Poems (全唐诗, whose text is traditional; the poem model's 95 % training split, seed 1234): for
each simplified character, the traditional characters the poems write for it and how often, and for one of
several, how often each stands after and before each simplified neighbour. A character s is then the
candidate t of highest

    log P(t | s) + Σ over the two neighbours n of [log P(t | s, n) - log P(t | s)],

P(t | s, n) the share of n's sightings beside s that were t, smoothed towards P(t | s) with 5 pseudo
counts: a neighbour seen beside s twice moves the choice a little, one seen hundreds of times decides it,
one never seen adds nothing. Forms that only simplified script writes (the corpus's 无 for 無; OpenCC's
``STCharacters.txt``) are not choices. Characters the poems never write keep OpenCC's conversion.

Build (reads the corpus once, about 10 s)::

    python -m rnn_apps.traditional --poems ../shared/data/tang-poems.jsonl.gz \
        [--out rnn_apps/traditional.json.gz]

On the 2,743 validation poems (their own traditional text as the reference), characters that differ from
it: 1,075 of 164,486 (0.65 %) against 1,903 (1.16 %) with OpenCC's phrases; poems with any difference 786
against 1,193. Many remaining differences are variants of one character (卻/却, 峯/峰, 迴/回) that the
corpus itself writes both ways. On 4,036 occurrences of characters with distinct meanings (里 云 发 余 干
后 征 斗 台 面 松 谷 冲 制 复 几 只 系 钟 历 须 当 尽 并 卷 获 御 叶 范 丑 朴 咸), 181 differ against OpenCC's 381.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import json
import math
import os
from typing import Iterable, Optional

DEFAULT_PATH = os.path.join(os.path.dirname(__file__), "traditional.json.gz")
PSEUDO_COUNTS = 5.0  # sightings of a neighbour worth as much as the candidates' overall frequencies
# Neighbour pairs seen fewer times are left out: the pairs seen once are half the table, and on the
# validation poems keeping them changed 1,075 differing characters to 1,060 (181 to 174 of distinct meanings).
MIN_COUNT = 2


def build(pairs: Iterable[tuple[str, str]], min_count: int = MIN_COUNT) -> dict:
    """The table from ``(simplified, traditional)`` texts of equal length, character for character (others are
    left out): ``candidates`` (simplified -> {traditional: count}; a character the texts write only in a form
    that simplified script alone writes has none, and keeps OpenCC's conversion), and for the characters of
    several candidates ``left`` / ``right`` (neighbour + simplified + traditional / simplified + traditional +
    neighbour -> count) and ``left_any`` / ``right_any`` (neighbour + simplified / simplified + neighbour)."""
    from rnn_apps.chinese import simplified_only_characters

    pairs = [(s, t) for s, t in pairs if len(s) == len(t)]
    simplified_only = simplified_only_characters()
    candidates: dict = collections.defaultdict(collections.Counter)
    for s, t in pairs:
        for a, b in zip(s, t):
            if b not in simplified_only:  # 无 written for 無 somewhere: only traditional forms are choices
                candidates[a][b] += 1
    several = {a for a, c in candidates.items() if len(c) > 1}
    left, right, left_any, right_any = (collections.Counter() for _ in range(4))
    for s, t in pairs:
        for i, (a, b) in enumerate(zip(s, t)):
            if a in several and b in candidates[a]:
                if i > 0:  # keyed by the simplified character too: 沈 is a form of both 沈 and 沉
                    left[s[i - 1] + a + b] += 1
                    left_any[s[i - 1] + a] += 1
                if i + 1 < len(s):
                    right[a + b + s[i + 1]] += 1
                    right_any[a + s[i + 1]] += 1
    keep = lambda counter: {k: v for k, v in sorted(counter.items()) if v >= min_count}  # noqa: E731
    return {
        "about": "Traditional forms of simplified characters in the Tang poems (rnn_apps.traditional)",
        "candidates": {a: dict(c.most_common()) for a, c in sorted(candidates.items())},
        "left": keep(left), "right": keep(right), "left_any": keep(left_any), "right_any": keep(right_any),
    }


class TraditionalTable:
    """:func:`build`'s table, and the choice of a character's traditional form in its context.

    Args:
        data: The parsed ``traditional.json``.
    """

    def __init__(self, data: dict):
        self.candidates = data["candidates"]
        self.left, self.right = data["left"], data["right"]
        self.left_any, self.right_any = data["left_any"], data["right_any"]
        self._totals = {a: sum(c.values()) for a, c in self.candidates.items()}

    @classmethod
    @functools.lru_cache(maxsize=2)
    def load(cls, path: Optional[str] = None) -> "TraditionalTable":
        """The table shipped with the package (or the one at ``path``, gzipped JSON), read once a process."""
        with gzip.open(path or DEFAULT_PATH, "rt", encoding="utf-8") as f:
            return cls(json.load(f))

    def choose(self, text: str, i: int) -> Optional[str]:
        """The traditional form of ``text[i]`` (a simplified text) in its context; None when the poems never
        write the character (the caller keeps another conversion)."""
        a = text[i]
        cands = self.candidates.get(a)
        if not cands:
            return None
        if len(cands) == 1:
            return next(iter(cands))
        total = self._totals[a]
        before = text[i - 1] if i > 0 else None
        after = text[i + 1] if i + 1 < len(text) else None
        best = None
        for b, n in cands.items():
            prior = n / total
            score = math.log(prior)
            if before is not None:
                score += self._beside(self.left.get(before + a + b, 0), self.left_any.get(before + a, 0), prior)
            if after is not None:
                score += self._beside(self.right.get(a + b + after, 0), self.right_any.get(a + after, 0), prior)
            if best is None or score > best[0]:
                best = (score, b)
        return best[1]

    @staticmethod
    def _beside(count: int, count_any: int, prior: float) -> float:
        """What one neighbour adds to a candidate's score: log P(candidate | neighbour) - log P(candidate), the
        first from the ``count`` of the neighbour's ``count_any`` sightings beside the character that were
        this candidate, smoothed towards its ``prior`` with :data:`PSEUDO_COUNTS`. A neighbour seen twice
        moves the choice a little, one seen hundreds of times decides it; one never seen adds nothing."""
        return math.log((count + PSEUDO_COUNTS * prior) / (count_any + PSEUDO_COUNTS)) - math.log(prior)


def tang_pairs(path: str, val_fraction: float = 0.05, seed: int = 1234) -> list[tuple[str, str]]:
    """``(simplified, traditional)`` texts of the training poems of ``path``: the poems the poem model reads,
    cleaned as it reads them and split as it splits them (its validation poems are left out)."""
    from rnn_apps.chinese import convert_script
    from rnn_apps.poems import clean_poem, read_raw_poems, split_poems

    both = []
    for r in read_raw_poems(path):
        s = clean_poem(convert_script(r, "simplified"))
        if s is not None:  # the poems load_poems gives, in its order: the split is the poem model's
            both.append((s, clean_poem(r) or ""))
    train, _ = split_poems(both, val_fraction, seed)
    return [(s, t) for s, t in train if t]


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Build the table of traditional forms that poems and fills are written back in.")
    parser.add_argument("--poems", required=True, help="The Tang poems (chinese-poetry JSON lines, traditional).")
    parser.add_argument("--out", default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    table = build(tang_pairs(args.poems))
    # no name and mtime 0 in the gzip header: the same corpus gives the same bytes, wherever they are written
    with open(args.out, "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as f:
        f.write(json.dumps(table, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    print(f"{args.out}: {len(table['candidates'])} characters, {sum(map(len, (table['left'], table['right'])))} "
          f"neighbour pairs, {os.path.getsize(args.out) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
