"""Sentence pairs for translation: reading, script normalisation, the train/validation split and batches.

The corpus format is the tab-separated one of the Tatoeba Project as distributed by manythings.org/anki:
one pair a line, ``english<TAB>chinese[<TAB>attribution]`` (UTF-8; extra columns are ignored). The
English-Chinese file mixes simplified and traditional script; :func:`normalize_zh` converts Chinese to
simplified (OpenCC), so a model learns one script and writes simplified Chinese.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from rnn_apps import limits, sentences, textio

DIRECTIONS = ("en-zh", "zh-en")


class TranslationDataError(ValueError):
    """A corpus that cannot be read (with the file and line at fault)."""


@dataclass(frozen=True)
class Pair:
    en: str
    zh: str

    def side(self, language: str) -> str:
        return self.en if language == "en" else self.zh


def parse_direction(direction: str) -> tuple[str, str]:
    """``"en-zh"`` -> ``("en", "zh")``; raises TranslationDataError for anything else."""
    if direction not in DIRECTIONS:
        raise TranslationDataError(f"direction must be one of {', '.join(DIRECTIONS)}; received {direction!r}.")
    src, tgt = direction.split("-")
    return src, tgt


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def normalize_zh(text: str) -> str:
    """Chinese text in simplified script (OpenCC t2s), whitespace trimmed."""
    return _t2s().convert(text.strip())


_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def looks_chinese(text: str) -> bool:
    return bool(_HAN.search(text))


# Share of a corpus's rows that may be out of place (English with Chinese characters, Chinese without any)
# before the file is refused. A real corpus has a few such rows (a Chinese side that is all digits or Latin
# letters, such as "OK" or "3:30"); a file with its columns swapped, or without Chinese, has them in nearly
# every row. The shipped Tatoeba files have none.
MAX_ODD_SHARE = 0.2
_LAYOUT = "the file must be English<TAB>Chinese[<TAB>attribution]"


def check_languages(path: str, rows: list[tuple[int, str, str]]) -> None:
    """Refuse a corpus whose columns do not hold English then Chinese.

    A model trained on such a file trains without complaint and then translates garbage, so the file is
    refused up front: when most rows hold Chinese in the first column and none in the second (the columns
    swapped), or when more than :data:`MAX_ODD_SHARE` of the rows have no Chinese in the second column, or
    Chinese in the first.

    Args:
        path: The file, for the message.
        rows: ``(line number, first column, second column)`` of every pair read.

    Raises:
        TranslationDataError: naming the file, the share of rows at fault and the first of them.
    """
    n = len(rows)
    if not n:
        return

    def share(k: int) -> str:
        return f"{k / n:.0%} of its {n:,} row{'s' * (n != 1)}"

    swapped = [r for r in rows if looks_chinese(r[1]) and not looks_chinese(r[2])]
    if len(swapped) > n / 2:
        line, first, second = swapped[0]
        raise TranslationDataError(
            f"{path}: its first column holds Chinese and its second English in {share(len(swapped))} (line {line}: "
            f"{limits.shown(first, 30)!r}<TAB>{limits.shown(second, 30)!r}); {_LAYOUT} (swap the columns).")
    no_chinese = [r for r in rows if not looks_chinese(r[2])]
    if len(no_chinese) > MAX_ODD_SHARE * n:
        line, _, second = no_chinese[0]
        raise TranslationDataError(
            f"{path}: its second column, the Chinese one, holds no Chinese character in {share(len(no_chinese))} "
            f"(first at line {line}: {limits.shown(second, 30)!r}); {_LAYOUT}.")
    chinese_first = [r for r in rows if looks_chinese(r[1])]
    if len(chinese_first) > MAX_ODD_SHARE * n:
        line, first, _ = chinese_first[0]
        raise TranslationDataError(
            f"{path}: its first column, the English one, holds Chinese characters in {share(len(chinese_first))} "
            f"(first at line {line}: {limits.shown(first, 30)!r}); {_LAYOUT}.")


# The column names of a header line ("english", "zh", "source_text", 中文); a sentence has a mark or more Chinese.
_HEADER = re.compile(r"[A-Za-z][A-Za-z _-]*|英文|英语|英語|中文|汉语|漢語|华语|華語|原文|译文|譯文|翻译|翻譯")


def _quoted(cell: str) -> bool:
    return len(cell) >= 2 and cell[0] == cell[-1] == '"'


def load_pairs(path: str, normalize: bool = True) -> list[Pair]:
    """Read sentence pairs from a TSV file (``english<TAB>chinese[<TAB>...]``).

    Blank lines are skipped; a byte-order mark is ignored; a first line of two column names (words of Latin
    letters without a full stop, or a Chinese name of a language: ``english<TAB>chinese``, ``en<TAB>zh``,
    ``English<TAB>中文``) is a header and is skipped. A file whose every cell is in double quotes (a
    spreadsheet's "quote all") is read without them. With
    ``normalize`` the Chinese side is converted to simplified script, and pairs that become identical (one
    sentence written in both scripts, or a line given twice) are kept once, in the order of their first line.

    Raises:
        FileNotFoundError: no such file.
        TranslationDataError: a line without two non-empty columns, or not UTF-8 (naming the line; a file in
            UTF-16 or UTF-32 is named as such: :func:`rnn_apps.textio.decode_utf8`); columns
            that do not hold English then Chinese (:func:`check_languages`).
    """
    rows = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise TranslationDataError(f"{path} is a directory; give a TSV file of english<TAB>chinese pairs.") from None
    with f:
        for n, raw in enumerate(f, 1):
            line = textio.decode_utf8(raw, path, TranslationDataError, line=n).rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
                raise TranslationDataError(
                    f"{path}, line {n}: expected 'english<TAB>chinese' (two non-empty tab-separated columns); "
                    f"received {line[:80]!r}."
                )
            rows.append((n, cols[0].strip(), cols[1].strip()))
    if rows and all(_quoted(en) and _quoted(zh) for _, en, zh in rows):
        # every cell in quotes, as spreadsheets write a TSV with "quote all": the quotes are not the sentences'
        rows = [(n, en[1:-1].replace('""', '"').strip(), zh[1:-1].replace('""', '"').strip()) for n, en, zh in rows]
        empty = next((n for n, en, zh in rows if not en or not zh), None)
        if empty is not None:
            raise TranslationDataError(f"{path}, line {empty}: expected 'english<TAB>chinese' (two non-empty "
                                       "columns); a cell holds nothing but its quotes.")
    if rows and _HEADER.fullmatch(rows[0][1]) and _HEADER.fullmatch(rows[0][2]):  # it would be learned as a pair
        rows = rows[1:]
    pairs = [Pair(en, normalize_zh(zh) if normalize else zh) for _, en, zh in rows]
    if not pairs:
        raise TranslationDataError(f"{path} holds no sentence pairs.")
    check_languages(path, rows)
    return list(dict.fromkeys(pairs)) if normalize else pairs


def split_pairs(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """A seeded split that keeps every pair of one English sentence on the same side.

    Tatoeba often gives several translations of one sentence; grouping them by the (lowercased) English
    sentence keeps the validation sentences unseen in training.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise TranslationDataError(f"val_fraction must be in [0, 1); received {val_fraction}.")
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.en.lower(), []).append(i)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_val = int(round(val_fraction * len(keys)))
    val_keys = {keys[i] for i in order[:n_val]}
    train = [p for p in pairs if p.en.lower() not in val_keys]
    val = [p for p in pairs if p.en.lower() in val_keys]
    return train, val


_ALL_HAN = re.compile(r"^[\u3400-\u9fff\uf900-\ufaff]+$")


def name_table(english_tokens: list[list[str]], chinese: list[str], truecase: dict, min_count: int = 5,
               min_share: float = 0.8) -> dict[str, str]:
    """Names and their usual Chinese rendering, mined from a parallel corpus (``{"tom": "汤姆", "boston": "波士顿"}``).

    A candidate is an English word that the corpus capitalises inside sentences (``truecase``, see
    :func:`rnn_apps.apps.translate.task.truecase_table`), seen in at least ``min_count`` pairs. Its rendering
    is the longest run of 2 to 4 Chinese characters that stands in at least ``min_share`` of those pairs'
    Chinese and whose pairs are in at least ``min_share`` the word's (so that neither side is common without
    the other). Dice-style co-occurrence mining of this kind is the classic first step of named-entity
    transliteration lexicons (e.g. Huang, Vogel & Waibel, 2003).

    Args:
        english_tokens: The lowercased English tokens of each pair.
        chinese: The (simplified) Chinese sentence of each pair.
        truecase: Lowercase token -> its usual spelling inside a sentence.
        min_count: Fewest pairs a name must stand in.
        min_share: Least share of co-occurrence, in both directions.
    """
    import collections

    if len(english_tokens) != len(chinese):
        raise ValueError(f"Need one Chinese sentence per English one; received {len(english_tokens)} and {len(chinese)}.")
    names = {k for k, v in truecase.items() if v[:1].isupper() and k.isalpha() and len(k) > 2}
    where: dict[str, list[int]] = collections.defaultdict(list)
    for i, toks in enumerate(english_tokens):
        for w in set(toks) & names:
            where[w].append(i)
    table = {}
    for w, rows in where.items():
        if len(rows) < min_count:
            continue
        runs = collections.Counter()
        for i in rows:
            z = chinese[i]
            runs.update({z[j : j + n] for n in (2, 3, 4) for j in range(len(z) - n + 1)})
        best = None
        for run, k in runs.most_common(40):
            if k < min_share * len(rows):
                break
            if not _ALL_HAN.match(run):
                continue
            total = sum(run in z for z in chinese)
            if k >= min_share * total and (best is None or (len(run) > len(best[0]) and k >= 0.9 * best[1])):
                best = (run, k)
        if best:
            table[w] = best[0]
    return table


def placeholder_pairs(source: list[list[str]], target: list[list[str]], table: dict[str, str], direction: str,
                      share: float, seed: int, placeholder: str = "<unk>") -> tuple[list, list]:
    """Copies of some training pairs with one name replaced by ``placeholder`` on both sides.

    A word the model does not know reaches it as ``<unk>``; these copies teach it to write ``<unk>`` where
    such a word goes, and the decoder then puts the source word back through the attention alignment
    (the placeholder approach of Luong et al., 2015, "Addressing the Rare Word Problem in NMT"). A pair
    qualifies when its English holds a name of ``table`` once and its Chinese that name's rendering once;
    each qualifying pair is copied with probability ``share`` (seeded).

    Args:
        source, target: Token lists (English words, Chinese characters) in the order of ``direction``.
        table: English name -> Chinese rendering (:func:`name_table`).
        direction: ``"en-zh"`` or ``"zh-en"``.
        share: Probability, in [0, 1], that a qualifying pair is copied.
        seed: Seed of the choice.

    Returns:
        ``(new_sources, new_targets)``: the copies only.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1]; received {share}.")
    src_lang, _ = parse_direction(direction)
    rng = np.random.default_rng([seed, 7])
    out_src, out_tgt = [], []
    for s, t in zip(source, target):
        en, zh = (s, t) if src_lang == "en" else (t, s)
        hits = [w for w in set(en) & table.keys() if en.count(w) == 1]
        if not hits or rng.random() >= share:
            continue
        w = sorted(hits)[0]
        run = list(table[w])
        at = [j for j in range(len(zh) - len(run) + 1) if zh[j : j + len(run)] == run]
        if len(at) != 1:
            continue
        j = at[0]
        new_en = [placeholder if x == w else x for x in en]
        new_zh = zh[:j] + [placeholder] + zh[j + len(run):]
        a, b = (new_en, new_zh) if src_lang == "en" else (new_zh, new_en)
        out_src.append(a)
        out_tgt.append(b)
    return out_src, out_tgt


def concatenated_pairs(source: list[list[str]], target: list[list[str]], share: float, seed: int,
                       max_source_len: int, max_target_len: int) -> tuple[list, list]:
    """Longer training pairs made by joining two random training pairs, source to source, target to target.

    Tatoeba's sentences are short (median six English words), and a model trained only on them learns to end
    its output after the first clause of a longer input. Joined pairs teach it to translate every clause it
    is given (concatenation augmentation: Varis & Bojar, 2021, "Sequence Length is a Domain: Length-based
    Overfitting in Transformer Models"; Nguyen et al., 2021, "Data Augmentation by Concatenation for
    Low-Resource Translation"). The two pairs are drawn at random (seeded) without regard to meaning; a join
    longer than the length limits is skipped.

    Args:
        source, target: Token lists of the training pairs.
        share: New pairs as a share of the training pairs, in [0, 1].
        seed: Seed of the draw.
        max_source_len, max_target_len: Longest join kept, in tokens.

    Returns:
        ``(new_sources, new_targets)``: the joined pairs only.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1]; received {share}.")
    if len(source) != len(target):
        raise ValueError(f"source and target must pair up; received {len(source)} and {len(target)} lists.")
    n = int(round(share * len(source)))
    if n == 0 or len(source) < 2:
        return [], []
    rng = np.random.default_rng([seed, 11])
    first = rng.integers(0, len(source), size=n)
    # A second index that is never the first: draw from the others and step over i.
    second = rng.integers(0, len(source) - 1, size=n)
    second = second + (second >= first)
    out_src, out_tgt = [], []
    for i, j in zip(first.tolist(), second.tolist()):
        s, t = source[i] + source[j], target[i] + target[j]
        if len(s) <= max_source_len and len(t) <= max_target_len:
            out_src.append(s)
            out_tgt.append(t)
    return out_src, out_tgt


@dataclass
class PairBatches:
    """Deterministic, resumable batches of (source, target) id sequences, similar lengths together.

    Each epoch has ``steps_per_epoch`` batches of at most ``batch_size`` pairs; the order of an epoch depends
    only on ``seed`` and the epoch number (pairs are shuffled, sorted by length inside windows of 50
    batches, and the batches shuffled), so a run resumed at step ``s`` sees the batches an uninterrupted
    run would have seen.

    ``sources`` hold the source ids followed by ``<eos>``; ``targets`` ``<bos> ids <eos>``: a batch is
    ``((source, target_in), target_out, weights)`` with target_in/out the target without its last/first id.
    """

    sources: list
    targets: list
    batch_size: int = 64
    seed: int = 0
    shuffle: bool = True
    window: int = 50
    multiple: int = 1
    _lengths: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if not self.sources or len(self.sources) != len(self.targets):
            raise ValueError(f"Need equally many sources and targets (> 0); received {len(self.sources)} and {len(self.targets)}.")
        self._lengths = np.array([max(len(s), len(t)) for s, t in zip(self.sources, self.targets)])
        self.steps_per_epoch = -(-len(self.sources) // self.batch_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        n = len(self.sources)
        if not self.shuffle:
            order = np.argsort(self._lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(n)
        w = self.batch_size * self.window
        batches = []
        for i in range(0, n, w):
            chunk = perm[i : i + w]
            chunk = chunk[np.argsort(self._lengths[chunk], kind="stable")]
            batches.extend(chunk[j : j + self.batch_size] for j in range(0, len(chunk), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def make(self, index):
        """Arrays ``((source, target_in), target_out, weights)`` of one batch; padding (id 0) has weight 0.

        With ``multiple`` > 1 the batch is filled up with empty, zero-weight rows to a multiple of it.
        """
        src = [self.sources[i] for i in index]
        tgt = [self.targets[i] for i in index]
        S = max(len(s) for s in src)
        T = max(len(t) for t in tgt) - 1
        m = max(1, int(self.multiple))
        rows = -(-len(index) // m) * m
        x = np.zeros((rows, S), np.int32)
        y_in = np.zeros((rows, T), np.int32)
        y_out = np.zeros((rows, T), np.int32)
        for r, (s, t) in enumerate(zip(src, tgt)):
            x[r, : len(s)] = s
            y_in[r, : len(t) - 1] = t[:-1]
            y_out[r, : len(t) - 1] = t[1:]
        return (x, y_in), y_out, (y_out != 0).astype(np.float32)

    def iterate(self, start_step: int = 0, epochs: Optional[int] = None) -> Iterator:
        epoch, skip = divmod(start_step, self.steps_per_epoch)
        while epochs is None or epoch < epochs:
            for index in self.epoch_batches(epoch)[skip:]:
                yield self.make(index)
            epoch, skip = epoch + 1, 0


def split_sentences(text: str, language: str) -> list[str]:
    """Cut a paragraph into sentences (:func:`rnn_apps.sentences.split_sentences`, shared with the server)."""
    return sentences.split_sentences(text, language)
