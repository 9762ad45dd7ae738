"""Poem corpora, shared by the poem and fill-in-the-blank apps: reading, cleaning, splitting and encoding.

A corpus is either the chinese-poetry project's format (JSON lines, or a JSON array, of objects with a
``paragraphs`` list; optionally gzip-compressed), such as the Complete Tang Poems, or a user's plain UTF-8
text file with one poem per line, or poems separated by blank lines. Both apps read, clean and split a
corpus the same way, so the fill model's validation poems are the poem model's.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import re
import zlib
from typing import Callable, Optional, Sequence

import numpy as np

from rnn_apps import textio
from rnn_apps.chinese import (
    COMMA, HAN_RANGES, PAUSES, PERIOD, PUNCT, QUOTES, SCRIPTS, SENTENCE_ENDS, convert_script, is_han,
)
from rnn_apps.vocab import SPECIALS, Vocabulary

# How a corpus is read, split and batched: the same for every model of poems, so that a fill model's
# validation poems are the poem model's (and were never trained on by either).
CORPUS_SETTINGS = dict(clipnorm=1.0, tokens_per_batch=8192, max_len=128, val_fraction=0.05, min_count=3,
                       script="simplified", seed=1234)

# Corpus cleaning (Python only; stricter than the input rules of rnn_apps.chinese: brackets and middle dots go too).
_BRACKETS = re.compile(r"（[^（）]*）|\([^()]*\)|\[[^\[\]]*\]|〖[^〖〗]*〗|\{[^{}]*\}|【[^【】]*】")
_DROP = re.compile(f"[{QUOTES}\\s·・]")
_TO_PERIOD = re.compile(f"[{SENTENCE_ENDS}]+")
_TO_COMMA = re.compile(f"[{PAUSES}]")
_VALID = re.compile(f"[{HAN_RANGES}，。]+")


class CorpusError(ValueError):
    """A corpus file that cannot be read or holds no usable poem."""


_OTHER = re.compile(f"[^{HAN_RANGES}，。]")
MIN_POEM_LENGTH = 6  # characters, its punctuation included
# Why a poem is left out (the reasons of _clean), as a training run's output words them.
LEFT_OUT_REASONS = {
    "symbols": "with other symbols",
    "short": f"shorter than {MIN_POEM_LENGTH} characters with their punctuation",
    "empty": "empty, or nothing but notes and punctuation",
}


def clean_poem(text: str) -> str | None:
    """Normalise one poem to Han characters with ，and 。; None if it is not a usable poem.

    Editorial annotations in brackets are removed, quotation and title marks dropped, ？！… become 。 and
    ；：、 become ，. A poem with other symbols (such as □ for a lost character) is rejected, since a model
    must not learn to write them.
    """
    t, why = _clean(text)
    return None if why else t


def _clean(text: str) -> tuple[str, str | None]:
    """``(cleaned text, None)`` for a usable poem; else ``(what cleaning left, the reason)``, a key of
    :data:`LEFT_OUT_REASONS`."""
    t = _BRACKETS.sub("", text)
    t = _DROP.sub("", t)
    t = _TO_PERIOD.sub(PERIOD, t)
    t = _TO_COMMA.sub(COMMA, t)
    t = re.sub(r"[，。]{2,}", lambda m: m.group(0)[-1], t)  # collapse doubled punctuation
    t = t.lstrip("，。")
    if not t:
        return t, "empty"
    if t[-1] == COMMA:
        t = t[:-1] + PERIOD
    elif t[-1] != PERIOD:
        t += PERIOD
    if not _VALID.fullmatch(t):
        return t, "symbols"
    if len(t) < MIN_POEM_LENGTH:
        return t, "short"
    return t, None


def _read_bytes(path: str) -> bytes:
    """The bytes of a corpus file, decompressed when it is gzipped (whatever its name); another compression is
    refused with the command that undoes it."""
    with open(path, "rb") as f:
        head = f.read(10)
    textio.refuse_compressed(head, path, CorpusError, allowed=("gzip",))
    with (gzip.open if textio.compression(head) == "gzip" else open)(path, "rb") as f:
        return f.read()


def _poem_from_obj(obj) -> str | None:
    if isinstance(obj, dict):
        lines = obj.get("paragraphs", obj.get("content"))
        if isinstance(lines, list) and all(isinstance(x, str) for x in lines):
            return "".join(lines)
        if isinstance(lines, str):
            return lines
    return None


def read_raw_poems(path: str) -> list[str]:
    """Read the poems of a corpus file as raw strings (before cleaning).

    Raises:
        CorpusError: the file is missing, not UTF-8, or not in a supported format.
    """
    return [p for p in _read_records(path)[0] if p]


def _read_records(path: str) -> tuple[list[str], int]:
    """The poems of a corpus file as :func:`read_raw_poems` reads them, with ``""`` for each JSON object
    that holds no poem text (so that a count of the poems read counts it), and how many title and author
    lines were set aside (:func:`_without_heading`)."""
    if not os.path.isfile(path):
        raise CorpusError(f"No such corpus file: {path}")
    try:
        data = _read_bytes(path)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a file cut short, EOFError
        raise CorpusError(f"Cannot read {path}: {e}") from None
    except zlib.error as e:  # the compressed data itself is corrupt
        raise CorpusError(f"Cannot read {path}: corrupt gzip data ({e}).") from None
    # line ends as a file opened as text reads them: a bare CR (old Mac files) ends a line too
    text = textio.decode_utf8(data, path, CorpusError).replace("\r\n", "\n").replace("\r", "\n")
    stripped = text.lstrip("\ufeff \n\r\t")
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            objs = json.loads(stripped) if stripped.startswith("[") else None
        except json.JSONDecodeError:
            objs = None
        if objs is None:  # JSON lines
            objs = []
            for n, line in enumerate(stripped.splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    objs.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{path}:{n}: not a JSON object ({e.msg}).") from None
        poems = [p or "" for p in map(_poem_from_obj, objs)]
        if not any(poems):
            raise CorpusError(f"{path}: no object with a 'paragraphs' list of strings.")
        return poems, 0
    # Blank lines before the first poem or after the last (an editor's final empty line) separate nothing:
    # read as separators, they made a file of one poem a line a single poem.
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(blocks) > 1 and not _whole_poems_a_line(blocks, lines):
        poems, headings = [], 0
        for b in blocks:
            body, heading = _without_heading([line.strip() for line in b.splitlines() if line.strip()])
            poems.append(re.sub(r"\s+", "", "".join(body)))
            headings += heading
        return poems, headings
    return lines, 0


_MARKS = re.compile(f"[{COMMA}{PERIOD}{SENTENCE_ENDS}{PAUSES}.]")  # a mark that ends a line of verse or its half
_HAN = re.compile(f"[{HAN_RANGES}]")


def _without_heading(lines: Sequence[str]) -> tuple[Sequence[str], int]:
    """A poem's lines without the title and author lines that a poem copied from a book or web page starts
    with (无题 / 佚名 / 床前明月光，...), and how many were set aside; read as verse, they were glued onto it.

    At most two first lines are a heading, and only when none of them has a punctuation mark and every line
    after them has one. Such a line with as many Chinese characters as a half line of the verse after it is
    verse, and so is every line after it (白日依山尽 above 黄河入海流。... is the first half of its couplet, left
    unpunctuated): a title of the verse's length stays verse, the cautious side of ``check-poem``'s rule.
    """
    k = 0
    while k < min(2, len(lines) - 1) and not _MARKS.search(lines[k]):
        k += 1
    if not k or not all(_MARKS.search(line) for line in lines[k:]):
        return lines, 0
    halves = {len(_HAN.findall(h)) for line in lines[k:] for h in _MARKS.split(line)} - {0}
    verse = next((i for i in range(k) if len(_HAN.findall(lines[i])) in halves), k)
    return lines[verse:], verse


def _whole_poems_a_line(blocks: Sequence[str], lines: Sequence[str]) -> bool:
    """Whether a text with blank lines is still one poem a line, its blank lines stray: its lines are whole
    poems (two sentences or more each, where a line of verse holds one couplet) and its blocks are far longer
    than poems (a median of more than 8 lines). A poem written two couplets a line, a block each, has lines
    of two sentences too, but blocks of a few lines."""
    whole = sum(len(_SENTENCE_ENDS.findall(line)) >= 2 for line in lines)
    block_lines = sorted(sum(1 for line in b.splitlines() if line.strip()) for b in blocks)
    return whole >= 0.9 * len(lines) and block_lines[len(block_lines) // 2] > 8


_SENTENCE_ENDS = re.compile(f"[{PERIOD}{SENTENCE_ENDS}]")


def load_poems(path: str, script: str = "simplified") -> list[str]:
    """Read, convert to ``script`` and clean the poems of ``path``; unusable poems are skipped
    (:func:`load_poems_counted` also says how many, and why).

    Raises:
        CorpusError: no usable poem in the file.
    """
    return load_poems_counted(path, script)[0]


def load_poems_counted(path: str, script: str = "simplified") -> tuple[list[str], dict]:
    """Read, convert to ``script`` and clean the poems of ``path``, counting the poems left out.

    A poem :func:`clean_poem` rejects is left out; a user training on a corpus of their own needs to know how
    many were and why (a corpus that marks lost characters with □ can lose most of its poems).

    Returns:
        ``(poems, left_out)``: the usable poems, and a dict (JSON-ready, for a run's stats) with ``poems_read``
        (every poem of the file), ``poems_left_out``, ``poems_left_out_why`` (the count for each reason that
        occurred: the keys of :data:`LEFT_OUT_REASONS`) and ``poems_left_out_symbols`` (the symbols that left
        out most poems, at most five; :func:`describe_left_out` words it all), and
        ``heading_lines_set_aside`` (title and author lines before poems written a block each).

    Raises:
        CorpusError: no usable poem in the file (saying why the poems were left out).
        ValueError: an unknown ``script``.
    """
    if script not in SCRIPTS:
        raise ValueError(f"script must be one of {SCRIPTS}; received {script!r}.")
    raw, headings = _read_records(path)
    poems = []
    why: collections.Counter = collections.Counter()
    symbols: collections.Counter = collections.Counter()
    for r in raw:
        t, reason = _clean(convert_script(r, script)) if r else ("", "empty")
        if reason is None:
            poems.append(t)
            continue
        why[reason] += 1
        if reason == "symbols":
            for c in dict.fromkeys(_OTHER.findall(t)):  # each symbol once a poem, in the order met
                symbols[c] += 1
    left_out = {
        "poems_read": len(raw),
        "poems_left_out": len(raw) - len(poems),
        "poems_left_out_why": {k: why[k] for k in LEFT_OUT_REASONS if why[k]},
        # the most frequent first; a tie in the order met (sorted is stable), so the same file says the same
        "poems_left_out_symbols": [_shown_symbol(c) for c in sorted(symbols, key=lambda c: -symbols[c])[:5]],
        "heading_lines_set_aside": headings,
    }
    if not raw:
        raise CorpusError(f"{path} holds no poem: it is empty, or holds only blank lines.")
    if not poems:
        raise CorpusError(
            f"{path}: none of its {len(raw)} poems is usable ({_reasons(left_out)}); a poem needs at least "
            f"{MIN_POEM_LENGTH} Chinese characters with ，/。 punctuation and no other symbols."
        )
    return poems, left_out


def _shown_symbol(c: str) -> str:
    """A symbol as a message can show it: itself, or its code point when it does not print (a private-use
    character standing for a rare one, a control character)."""
    return c if c.isprintable() and not c.isspace() else f"U+{ord(c):04X}"


def _reasons(left_out: dict) -> str:
    """``"30 with other symbols such as '□', '●'; 2 empty, ..."`` from the counts of :func:`load_poems_counted`."""
    parts = []
    for key, n in left_out.get("poems_left_out_why", {}).items():
        text = f"{n:,} {LEFT_OUT_REASONS.get(key, key)}"
        if key == "symbols" and left_out.get("poems_left_out_symbols"):
            # quoted: a symbol may be a comma or a full stop
            text += f" such as {', '.join(repr(c) for c in left_out['poems_left_out_symbols'][:3])}"
        parts.append(text)
    return "; ".join(parts)


def report_split_corpus(data_path: str, stats: dict, val_fraction: float, run_dir: str, verbose: int,
                        seconds: float, unit: str = "tokens") -> None:
    """The poem and fill apps' check of a corpus read and split for a training run, and their words about it.

    A split that leaves no poem for training is refused (the new run directory discarded, so that the same
    command with a lower ``val_fraction`` starts afresh); with ``verbose``, the poems the cleaning left out
    (:func:`describe_left_out`: a user's own corpus may lose many) and the corpus read, its ``unit`` counted
    ("characters", "tokens"), are printed.

    Raises:
        rnn_apps.training.TrainingError: no poem left for training.
    """
    from rnn_apps import training

    if not stats["train_tokens"]:
        training.discard_new_run(run_dir)
        raise training.TrainingError(f"{data_path}: no poems left for training after the validation split "
                                     f"(--val-fraction {val_fraction}); lower it or give more poems.")
    if verbose:
        note = describe_left_out(stats)
        if note:
            print(note)
        print(f"Corpus: {stats['poems']} poems, {stats['train_tokens']} training and {stats['val_tokens']} validation "
              f"{unit}, vocabulary {stats['vocab_size']} ({seconds:.0f} s).")


def describe_left_out(stats: dict) -> str | None:
    """One line for a training run's output, e.g. ``"Read 1,204 poems; 37 left out (30 with other symbols such
    as '□', '●'; 7 shorter than 6 characters with their punctuation)."``; None when no poem was left out (or
    ``stats`` predate the count).

    Args:
        stats: A run's corpus statistics (:func:`prepare_corpus`), or the counts of :func:`load_poems_counted`.
    """
    headings = stats.get("heading_lines_set_aside")
    heading = (f" {headings:,} title or author line{'s' * (headings != 1)} before the poems set aside (not "
               "learned as verse)." if headings else "")
    if not stats.get("poems_left_out"):
        return f"Read {stats['poems_read']:,} poems;{heading}" if heading else None
    return f"Read {stats['poems_read']:,} poems; {stats['poems_left_out']:,} left out ({_reasons(stats)}).{heading}"


def split_poems(poems: Sequence[str], val_fraction: float = 0.05, seed: int = 1234):
    """Split into (train, validation) with a seeded permutation; validation gets ``val_fraction``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); received {val_fraction}.")
    order = np.random.default_rng(seed).permutation(len(poems))
    n_val = int(round(len(poems) * val_fraction))
    if val_fraction > 0 and len(poems) > 1:
        n_val = max(1, n_val)
    val = [poems[i] for i in order[:n_val]]
    train = [poems[i] for i in order[n_val:]]
    return train, val


def encode_poems(poems: Sequence[str], vocab: Vocabulary, max_len: int = 128) -> list[np.ndarray]:
    """Encode each poem as ``<bos> chars <eos>`` and cut long ones into pieces of ``max_len + 1`` tokens.

    Consecutive pieces overlap by one token so that every target is predicted exactly once.
    """
    out = []
    for p in poems:
        ids = np.asarray([vocab.bos_id] + vocab.encode(p) + [vocab.eos_id], dtype=np.int32)
        step = max_len
        for s in range(0, max(1, len(ids) - 1), step):
            piece = ids[s : s + max_len + 1]
            if len(piece) >= 2:
                out.append(piece)
    return out


def grow_vocabulary(vocab: Vocabulary, data_path: str, cfg: dict, min_count: int = 1, verbose: int = 0) -> list[str]:
    """Fine-tuning a model of poems: append to ``vocab`` the characters it lacks that the corpus's training
    poems use at least ``min_count`` times, keeping every existing id (new ids follow the old ones).

    The poems are read, cleaned and split as :func:`prepare_corpus` does (``cfg``: ``script``,
    ``val_fraction``, ``seed``), so the validation poems add nothing. ``verbose`` prints what was added.

    Returns:
        The characters added, most frequent first.

    Raises:
        CorpusError: the corpus holds no usable poem.
        ValueError: ``min_count`` is not a whole number of at least 1.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be a whole number of at least 1; received {min_count!r}.")
    train, _ = split_poems(load_poems(data_path, cfg["script"]), cfg["val_fraction"], cfg["seed"])
    fresh = Vocabulary.build(train, min_count=min_count)
    added = vocab.extend(t for t in fresh.tokens[len(SPECIALS):] if is_han(t) or t in PUNCT)
    if verbose and added:
        print(f"Adding {len(added)} new characters to the vocabulary: {''.join(added[:40])}"
              f"{'…' if len(added) > 40 else ''}")
    return added


def prepare_corpus(data_path: str, cfg: dict, vocab: Optional[Vocabulary] = None,
                   build_vocab: Optional[Callable] = None, unpredicted: int = 1):
    """Load, split, (build the vocabulary of) and encode a corpus, as every model of poems does.

    Args:
        data_path: A corpus file (see :func:`read_raw_poems`).
        cfg: The run's settings (``script``, ``val_fraction``, ``seed``, ``min_count``, ``max_len`` of
            :data:`CORPUS_SETTINGS`).
        vocab: The vocabulary of a resumed or fine-tuned run; default: one built from the training poems
            with ``build_vocab(train_poems, min_count)`` (default :meth:`Vocabulary.build`).
        unpredicted: Tokens of each encoded sequence that are not predicted, for the token counts (1: the
            ``<bos>`` of a left-to-right model; 2: both bookends, for a model that predicts each character
            from both sides).

    Returns:
        ``(vocab, train poems, validation poems, train sequences, validation sequences, stats)``; ``stats``
        also count the poems left out (the counts of :func:`load_poems_counted`; :func:`describe_left_out`).
    """
    poems, left_out = load_poems_counted(data_path, cfg["script"])
    train, val = split_poems(poems, cfg["val_fraction"], cfg["seed"])
    if vocab is None:
        vocab = (build_vocab or (lambda p, m: Vocabulary.build(p, min_count=m)))(train, cfg["min_count"])
    tr = encode_poems(train, vocab, cfg["max_len"])
    va = encode_poems(val, vocab, cfg["max_len"]) if val else []
    stats = {
        "poems": len(poems),
        "train_poems": len(train),
        "val_poems": len(val),
        "train_tokens": int(sum(len(s) - unpredicted for s in tr)),
        "val_tokens": int(sum(len(s) - unpredicted for s in va)),
        "vocab_size": len(vocab),
        **left_out,
    }
    return vocab, train, val, tr, va, stats

