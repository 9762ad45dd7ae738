"""Movie reviews for the sentiment app: readers, cleaning, the validation split and resumable batches.

Sources (see :func:`load_reviews`):

* The Large Movie Review Dataset (Maas et al., 2011) in its original layout,
  ``aclImdb/{train,test}/{pos,neg}/ID_RATING.txt`` and ``aclImdb/train/unsup/ID_0.txt``, read from the
  extracted directory or straight from ``aclImdb_v1.tar.gz`` (streamed member by member, nothing is
  extracted to disk). The label comes from the ``pos``/``neg`` directory, the 1-10 rating from the file name.
* TensorFlow Datasets ``imdb_reviews`` (``tfds:imdb_reviews``), for users who are online.
* A user's own CSV or TSV of (text, label), label one of 0, 1, neg, pos, negative, positive.

Reviews are cleaned by :func:`clean_review`: the ``<br />`` line breaks of the IMDB HTML become spaces and
runs of whitespace one space; everything else a review says is kept (the model's own standardisation
lowercases and drops punctuation, see :mod:`rnn_apps.apps.sentiment.model`).
"""

from __future__ import annotations

import os
import re
import socket
import tarfile
import urllib.request
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from rnn_apps import limits, textio

SPLITS = ("train", "test")
GROUPS = ("pos", "neg", "unsup")
LABELS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1}
TEXT_COLUMNS = ("text", "review", "sentence", "content")
LABEL_COLUMNS = ("label", "sentiment", "polarity", "class")
TFDS_PREFIX = "tfds:"

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg|unsup)/([^/]+)\.txt$")
_RATING = re.compile(r"^\d+_(\d+)$")


class SentimentDataError(ValueError):
    """A review source that cannot be read, or holds no usable review (the message says what to do)."""


@dataclass(frozen=True)
class Review:
    """One review.

    Attributes:
        text: The cleaned text (see :func:`clean_review`).
        label: 1 positive, 0 negative, None unlabelled.
        rating: The 1-10 rating from an aclImdb file name (None elsewhere; 0 in ``unsup`` files).
        id: Where it came from, e.g. ``train/pos/8035_7`` or ``my.csv:12``.
    """

    text: str
    label: Optional[int]
    rating: Optional[int] = None
    id: str = ""


def clean_review(text: str) -> str:
    """Replace ``<br />`` markup by a space and collapse whitespace; keep everything else."""
    return _SPACE.sub(" ", _BR.sub(" ", text)).strip()


def _decode(raw: bytes, where: str) -> str:
    """The text of a review file (or an aclImdb member) ``where``, its byte-order mark dropped.

    Raises:
        SentimentDataError: a compressed file, a file in UTF-16 or UTF-32, or bytes that are not UTF-8, naming
            the line and the byte (:func:`rnn_apps.textio.decode_utf8`).
    """
    return textio.decode_utf8(  # which refuses a compressed file (a reviews.csv.gz, say)
        raw, where, SentimentDataError, lead="{name}: line {line} is not UTF-8 text")


# ------------------------------------------------------------------------------------------ aclImdb


def _rating(stem: str) -> Optional[int]:
    m = _RATING.match(stem)
    return int(m.group(1)) if m else None


def _make_review(raw: bytes, split: str, group: str, stem: str, where: str) -> Review:
    label = None if group == "unsup" else int(group == "pos")
    return Review(clean_review(_decode(raw, where)), label, _rating(stem), f"{split}/{group}/{stem}")


def _id_key(review: Review):
    """Sort key: group, then the numeric id of ``ID_RATING`` names (else the name)."""
    group, _, stem = review.id.rpartition("/")
    head = stem.split("_", 1)[0]
    return (group, int(head) if head.isdigit() else -1, stem)


def _iter_tar(path: str, split: str, groups: Sequence[str], seen: set) -> Iterator[Review]:
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                m = _MEMBER.search(member.name)
                if not m:
                    continue
                seen.add(m.group(1))
                if m.group(1) != split or m.group(2) not in groups:
                    continue
                f = tar.extractfile(member)
                yield _make_review(f.read(), split, m.group(2), m.group(3), f"{path}:{member.name}")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise SentimentDataError(f"Cannot read {path} as a .tar(.gz) archive: {e}") from None


def _split_dir(path: str, split: str) -> Optional[str]:
    """The directory holding ``pos``/``neg``/``unsup`` for ``split`` under ``path``, or None."""
    if any(os.path.isdir(os.path.join(path, g)) for g in GROUPS):
        return path  # a split directory given directly (any name)
    for candidate in (os.path.join(path, "aclImdb", split), os.path.join(path, split)):
        if os.path.isdir(candidate):
            return candidate
    return None


def _iter_dir(path: str, split: str, groups: Sequence[str]) -> Iterator[Review]:
    root = _split_dir(path, split)
    if root is None:
        return
    for group in groups:
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for name in sorted(os.listdir(gdir)):
            if not name.endswith(".txt"):
                continue
            full = os.path.join(gdir, name)
            with open(full, "rb") as f:
                yield _make_review(f.read(), split, group, name[:-4], full)


def read_aclimdb(path: str, split: str = "train", groups: Sequence[str] = ("pos", "neg")) -> list[Review]:
    """Read one split of the Large Movie Review Dataset from a directory or a .tar(.gz), sorted by id.

    Args:
        path: ``aclImdb_v1.tar.gz`` (or any tar holding ``.../train/pos/*.txt`` ...), the ``aclImdb``
            directory, its parent, or a directory with ``pos``/``neg`` (and ``unsup``) subdirectories.
        split: ``"train"`` or ``"test"``.
        groups: Which of ``pos``, ``neg``, ``unsup`` to read.

    Raises:
        SentimentDataError: missing path, unreadable archive, non-UTF-8 file, or no review of that split.
    """
    if split not in SPLITS:
        raise SentimentDataError(f"split must be one of {', '.join(SPLITS)}; received {split!r}.")
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise SentimentDataError(f"groups must be among {', '.join(GROUPS)}; received {bad}.")
    seen: set = set()
    if os.path.isdir(path):
        reviews = list(_iter_dir(path, split, groups))
        seen = {s for s in SPLITS if _split_dir(path, s)}
    elif os.path.isfile(path):
        reviews = list(_iter_tar(path, split, groups, seen))
    else:
        raise SentimentDataError(f"No such file or directory: {path}")
    if not reviews:
        has = f"it holds the {', '.join(sorted(seen))} split" if seen else "no aclImdb reviews were found in it"
        hint = " (the IMDB test split is in the original aclImdb_v1.tar.gz)" if split == "test" else ""
        raise SentimentDataError(
            f"{path}: no {split} reviews in {'/'.join(groups)}; {has}{hint}. Expected the aclImdb layout "
            "aclImdb/{train,test}/{pos,neg}/ID_RATING.txt."
        )
    reviews.sort(key=_id_key)
    return reviews


# ------------------------------------------------------------------------------------------ CSV / TSV


def parse_label(value: str) -> Optional[int]:
    """0/1 from ``0, 1, neg, pos, negative, positive`` (any case); None if it is none of them."""
    return LABELS.get(value.strip().lower())


def is_table(path: str) -> bool:
    """Whether ``path`` names a CSV or TSV table (by its extension), rather than a file of one text a line."""
    return path.lower().endswith((".csv", ".tsv", ".tab"))


def _columns(row: Sequence[str]) -> str:
    """A table row's first cells as a message names them: ``'text', 'stars'``."""
    return ", ".join(repr(limits.shown(c, 30)) for c in row[:5]) + (" ..." if len(row) > 5 else "")


def _table_rows(path: str, text: str, tsv: bool) -> Iterator[tuple]:
    """The rows of the CSV or TSV table ``text`` (the file ``path``), each ``(the line it starts on, its cells)``,
    blank rows skipped (:func:`rnn_apps.textio.read_table`): the one reader of both the text column of
    ``classify --file`` and the labelled rows of training and evaluation, which word a broken table alike.

    Raises:
        SentimentDataError: ``path:line: not valid CSV (...)``.
    """
    return textio.read_table(text, path, SentimentDataError, tsv=tsv, where="{name}:{line}")


def read_review_column(path: str) -> list:
    """The reviews of a CSV/TSV table's text column (named in its header: text, review, sentence or content),
    each a :class:`rnn_apps.textio.Line` that knows its row ("reviews.csv, line 4"); a quoted review may span
    lines. A row whose text is empty is kept, empty, so that ``classify`` names it as a review it cannot
    classify, as it names an empty review given on the command line.

    Raises:
        SentimentDataError: no such file, not UTF-8, not valid CSV, or no header naming a text column.
    """
    from rnn_apps.textio import Line

    if not os.path.isfile(path):
        raise SentimentDataError(f"No such file: {path}")
    with open(path, "rb") as f:
        text = _decode(f.read(), path)  # its byte-order mark dropped
    column, out, width = None, [], 0
    for start, row in _table_rows(path, text, path.lower().endswith((".tsv", ".tab"))):
        if column is None:
            cells = [c.strip().lower() for c in row]
            column = next((i for i, c in enumerate(cells) if c in TEXT_COLUMNS), None)
            if column is None:
                raise SentimentDataError(
                    f"{path} is a table whose header names no text column (its first row: {_columns(row)}); name the "
                    f"reviews' column one of {', '.join(TEXT_COLUMNS)}, or give a file of one review a line.")
            width = len(row)
            continue
        if len(row) <= column:  # skipped without a word before: a row cut short, or a comma missing
            raise SentimentDataError(f"{path}:{start}: the row has {len(row)} column{'s' * (len(row) != 1)}; "
                                     f"the header has {width} (the reviews in column {column + 1}).")
        out.append(Line(row[column], f"{path}, line {start}", source=path))
    return out


def read_labelled_file(path: str) -> list[Review]:
    """Read a CSV or TSV of (text, label); the first row may be a header naming the columns.

    Without a header the columns are ``text, label``. A header may name them in any order (text:
    text/review/sentence/content; label: label/sentiment/polarity/class); other columns are ignored.
    ``.tsv``/``.tab`` files (or a first line with a tab) are tab-separated without quoting; others are CSV
    with ``"..."`` quoting for texts holding commas. Blank lines are skipped.

    Raises:
        SentimentDataError: with ``path:line`` for a bad label, a wrong column count, an empty text, bytes that
            are not UTF-8, a header naming a text column but no label column (or the other way round), or a
            broken CSV (a quote never closed), worded as ``classify --file`` words them (:func:`_table_rows`).
    """
    if not os.path.isfile(path):
        raise SentimentDataError(f"No such file: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    text = _decode(raw, path)  # its byte-order mark dropped
    first = text.split("\n", 1)[0]
    tsv = path.lower().endswith((".tsv", ".tab")) or (not path.lower().endswith(".csv") and "\t" in first)
    name = os.path.basename(path)
    reviews: list[Review] = []
    text_col, label_col, width = 0, 1, 2
    header_done = False
    for start, row in _table_rows(path, text, tsv):
        if not header_done:
            header_done = True
            cells = [c.strip().lower() for c in row]
            t = next((i for i, c in enumerate(cells) if c in TEXT_COLUMNS), None)
            lab = next((i for i, c in enumerate(cells) if c in LABEL_COLUMNS), None)
            if t is not None and lab is not None:
                text_col, label_col, width, header_width = t, lab, None, len(row)
                continue
            if (t is not None or lab is not None) and (len(row) < 2 or parse_label(row[1]) is None):
                # a header (it names a column) that lacks the other: not a row of data with a bad label
                raise SentimentDataError(
                    f"{path}:{start}: the header names no {'label' if lab is None else 'text'} column (its columns: "
                    f"{_columns(row)}); name the "
                    + (f"labels' column one of {', '.join(LABEL_COLUMNS)} (labels 0, 1, neg, pos, negative or "
                       "positive)" if lab is None else f"reviews' column one of {', '.join(TEXT_COLUMNS)}")
                    + ", or leave the header out and write the columns text, label.")
        if width is not None and len(row) != width:
            if len(row) > 2 and parse_label(row[1]) is not None:  # a text and its label, then other columns
                hint = ("Remove the other columns, or add a header naming the text and label columns (text, label; "
                        "other columns are then ignored).")
            else:
                hint = ('Put texts that hold commas in double quotes, or use a .tsv file.' if not tsv else
                        'A TSV line is: text<TAB>label.')
            raise SentimentDataError(f"{path}:{start}: expected 2 columns (text, label), found {len(row)}. " + hint)
        if width is None and len(row) <= max(text_col, label_col):  # a row cut short, or a comma missing
            raise SentimentDataError(f"{path}:{start}: the row has {len(row)} column{'s' * (len(row) != 1)}; the "
                                     f"header has {header_width} (the reviews in column {text_col + 1}, the labels in "
                                     f"column {label_col + 1}).")
        label = parse_label(row[label_col])
        if label is None and parse_label(row[text_col]) is not None:
            # A label where the text should be and text where the label should be: the columns are the other
            # way round (a file written label,text without a header, or a header naming them wrongly).
            read_as, fix = (("without a header the columns are read as text, label",
                             "give a header row that names them, e.g. label,text") if width is not None else
                            (f"the header names column {text_col + 1} the text and column {label_col + 1} the label",
                             "the names in the header"))
            raise SentimentDataError(
                f"{path}:{start}: the columns look swapped: the text column holds {limits.shown(row[text_col], 30)!r}, "
                f"a label, and the label column {limits.shown(row[label_col], 30)!r} ({read_as}). Swap the columns, "
                f"or {fix}.")
        if label is None:
            raise SentimentDataError(
                f"{path}:{start}: label {limits.shown(row[label_col], 30)!r} is not one of 0, 1, neg, pos, negative, "
                "positive"
                + (" (without a header the columns are read as text, label; name them in a header row, e.g. "
                   "label,text)"
                   if len(row[label_col]) > 30 else ".")
            )
        review = clean_review(row[text_col])
        if not review:
            raise SentimentDataError(f"{path}:{start}: the text is empty.")
        reviews.append(Review(review, label, None, f"{name}:{start}"))
    if not reviews:
        raise SentimentDataError(f"{path}: no (text, label) rows.")
    return reviews


def check_both_labels(reviews: Sequence[Review], source: str, which: str = "its labelled reviews",
                      remedy: str = "") -> None:
    """Refuse reviews that are all of one label.

    A classifier trained on one label learns to answer that label whatever the text, and its validation
    accuracy (of one label too) looks perfect, so such data is an error rather than a run.

    Args:
        reviews: Labelled reviews.
        source: The data, for the message.
        which: What the reviews are, for the message (e.g. the training reviews after the validation split).
        remedy: What to do, when it is not adding reviews of the missing label.

    Raises:
        SentimentDataError: with the count of each label.
    """
    positive = sum(r.label == 1 for r in reviews)
    negative = sum(r.label == 0 for r in reviews)
    if positive and negative:
        return
    missing = "negative (label 0 or neg)" if positive else "positive (label 1 or pos)"
    raise SentimentDataError(
        f"{source}: {which} are {positive:,} positive and {negative:,} negative; a classifier needs reviews of both "
        f"labels to learn to tell them apart. {remedy or f'Add {missing} reviews.'}")


# ------------------------------------------------------------------------------------------ TFDS


# Where TFDS's imdb_reviews downloads aclImdb_v1.tar.gz from (its homepage).
IMDB_HOST = "ai.stanford.edu"


def _tfds_prepared(tfds, data_dir: Optional[str]) -> bool:
    """Whether TFDS's ``imdb_reviews`` is already downloaded and prepared in ``data_dir`` (no network needed)."""
    try:
        return bool(tfds.builder("imdb_reviews", data_dir=data_dir).is_prepared())
    except Exception:  # noqa: BLE001 - an older TFDS, a damaged folder: let tfds.load say what is wrong
        return True


def load_tfds_imdb(split: str = "train", data_dir: Optional[str] = None, download: bool = True) -> list[Review]:
    """Read TensorFlow Datasets ``imdb_reviews`` (downloaded on first use, about 80 MB).

    Args:
        split: ``train``, ``test`` or ``unsup`` (TFDS's ``unsupervised``).
        data_dir: TFDS's data directory (default ``~/tensorflow_datasets``).
        download: Download and prepare the data when it is not there yet.

    Raises:
        SentimentDataError: TFDS is not installed, or the data is neither there nor downloadable (offline).
    """
    names = {"train": "train", "test": "test", "unsup": "unsupervised", "unsupervised": "unsupervised"}
    if split not in names:
        raise SentimentDataError(f"split must be one of train, test, unsup; received {split!r}.")
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise SentimentDataError("TensorFlow Datasets is not installed: pip install tensorflow-datasets") from None
    offline = ("offline, pass --data with the path of aclImdb_v1.tar.gz or of its extracted aclImdb directory "
               "instead.")
    if download and not _tfds_prepared(tfds, data_dir) and not urllib.request.getproxies():
        # TFDS retries an unreachable host for minutes before it gives up: ask the host once, briefly, first
        # (not through a proxy, which a direct connection would bypass).
        try:
            socket.create_connection((IMDB_HOST, 80), timeout=10).close()
        except OSError as e:
            raise SentimentDataError(f"TensorFlow Datasets downloads 'imdb_reviews' from {IMDB_HOST} on first use, "
                                     f"which cannot be reached ({e}); {offline}") from None
    try:
        ds = tfds.load("imdb_reviews", split=names[split], data_dir=data_dir, download=download, shuffle_files=False)
        rows = list(tfds.as_numpy(ds))
    except ImportError as e:  # a module TFDS needs is missing: not the network's fault
        raise SentimentDataError(f"TensorFlow Datasets cannot load 'imdb_reviews': {e} (install it, e.g. pip "
                                 f"install {e.name or 'the missing module'}; pip install -e . installs what rnn-apps "
                                 "needs), or pass --data with the path of aclImdb_v1.tar.gz or of its extracted "
                                 "aclImdb directory.") from None
    except Exception as e:  # network, missing data, ...: TFDS raises many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SentimentDataError(
            f"Could not load TensorFlow Datasets 'imdb_reviews' ({type(e).__name__}: {msg[:300]}). It is downloaded "
            f"from {IMDB_HOST} on first use, which needs a network; {offline}"
        ) from None
    reviews = []
    for i, ex in enumerate(rows):
        raw = ex["text"]
        text = clean_review(raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw))
        label = int(ex["label"])
        reviews.append(Review(text, label if label in (0, 1) else None, None, f"tfds:{names[split]}/{i}"))
    return reviews


# ------------------------------------------------------------------------------------------ any source


def is_tfds(source: str) -> bool:
    return source.startswith(TFDS_PREFIX) or source == "tfds"


def load_reviews(source: str, split: str = "train", unsup: bool = False) -> tuple[list[Review], list[Review]]:
    """Labelled reviews of ``split`` and (with ``unsup``) unlabelled ones, from any supported source.

    Args:
        source: An aclImdb directory or tar(.gz); ``tfds:imdb_reviews`` (or ``tfds``); a ``.csv``/``.tsv``
            (or any other file that is not a tar archive) of (text, label).
        split: ``train`` or ``test`` (a CSV/TSV is read whole whatever the split).
        unsup: Also read the unlabelled reviews (aclImdb ``train/unsup``, TFDS ``unsupervised``).

    Returns:
        ``(labelled, unlabelled)``; ``unlabelled`` is empty unless asked for and available.
    """
    if is_tfds(source):
        name = source[len(TFDS_PREFIX):] if source.startswith(TFDS_PREFIX) else "imdb_reviews"
        if name not in ("", "imdb_reviews"):
            raise SentimentDataError(f"Only the TensorFlow Datasets source 'imdb_reviews' is supported; received {name!r}.")
        return load_tfds_imdb(split), (load_tfds_imdb("unsup") if unsup and split == "train" else [])
    if os.path.isdir(source):
        groups = ("pos", "neg", "unsup") if unsup else ("pos", "neg")
        reviews = read_aclimdb(source, split, groups)
    elif _is_archive(source):
        groups = ("pos", "neg", "unsup") if unsup else ("pos", "neg")
        reviews = read_aclimdb(source, split, groups)
    elif os.path.isfile(source):
        return read_labelled_file(source), []
    else:
        raise SentimentDataError(
            f"No such file or directory: {source} (expected an aclImdb directory or .tar.gz, a .csv/.tsv, "
            "or tfds:imdb_reviews)."
        )
    labelled = [r for r in reviews if r.label is not None]
    unlabelled = [r for r in reviews if r.label is None]
    if not labelled:
        raise SentimentDataError(f"{source}: no labelled ({split}/pos, {split}/neg) reviews.")
    return labelled, unlabelled


def has_splits(source: str) -> bool:
    """Whether ``source`` holds aclImdb's train and test splits (TFDS, the archive, the ``aclImdb`` directory or
    its parent), rather than one set of reviews (a CSV/TSV, or a directory with ``pos``/``neg`` itself), which
    is read whole whatever split is asked for."""
    if is_tfds(source):
        return True
    if os.path.isdir(source):
        return not any(os.path.isdir(os.path.join(source, g)) for g in GROUPS)
    return _is_archive(source)


_ARCHIVE_NAMES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def _is_archive(source: str) -> bool:
    """Whether ``source`` is a file to read as an aclImdb archive: a tar, a file named as one, or a compressed
    file that does not decompress or decompresses to a tar. A damaged archive is then named as such (by
    :func:`read_aclimdb`), not read as a table whose first line is "not UTF-8 text"; another compressed file
    (a gzipped table of reviews) is refused with the command that decompresses it (:func:`_decode`)."""
    if not os.path.isfile(source):
        return False
    if source.lower().endswith(_ARCHIVE_NAMES) or tarfile.is_tarfile(source):
        return True
    with open(source, "rb") as f:
        packed = textio.compression(f.read(10))
    if packed not in ("gzip", "bzip2", "xz"):  # a zip file (not an aclImdb archive) is refused by _decode
        return False
    import bz2
    import gzip
    import lzma
    import zlib

    try:
        with {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[packed](source, "rb") as f:
            start = f.read(512)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return True  # damaged
    return start[257:262] == b"ustar"  # a tar's header


VAL_SPLITS = ("blocks", "random")
VAL_BLOCK = 100
_POSITION = re.compile(r"(\d+)(?:_\d+)?$")


def _position(review: Review) -> int:
    """Where a review stands in its source: the id number of ``ID_RATING`` names, a CSV line, a TFDS index."""
    m = _POSITION.search(review.id)
    return int(m.group(1)) if m else -1


def check_val_split(by) -> None:
    """Refuse a validation split that is not one of ``VAL_SPLITS``."""
    if by not in VAL_SPLITS:
        raise SentimentDataError(f"The validation split is one of {', '.join(VAL_SPLITS)}; received {by!r}.")


def split_train_val(reviews: Sequence[Review], val_fraction: float = 0.1, seed: int = 1234, by: str = "random"):
    """Split labelled reviews into (train, validation), stratified by label, with a seeded permutation.

    Args:
        reviews: Labelled reviews.
        val_fraction: Share of each class held out, in [0, 1).
        seed: Seed of the permutation.
        by: ``random`` draws validation reviews one by one. ``blocks`` draws whole blocks of
            ``VAL_BLOCK`` reviews that stand next to each other in their source (by the number in their id;
            smaller blocks where validation would get fewer than 10 of them): aclImdb
            numbers the reviews of one film consecutively (at most 30 a film), so the films of the validation
            reviews are (but for one at each block's edge) not among the training reviews, as the films of
            IMDB's test split are not among its train split's. With ``random`` a film's reviews, some nearly
            identical, fall on both sides and validation accuracy is optimistic.

    The result depends only on the reviews (sorted by id first), ``val_fraction``, ``seed`` and ``by``, not on
    the order they were read in (a tar's member order, a directory listing).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SentimentDataError(f"val_fraction must be in [0, 1); received {val_fraction}.")
    check_val_split(by)
    ordered = sorted(reviews, key=lambda r: (_position(r), r.id, r.text) if by == "blocks" else (r.id, r.text))
    train, val = [], []
    for label in (0, 1):
        group = [r for r in ordered if r.label == label]
        n_val = int(round(len(group) * val_fraction))
        if val_fraction > 0 and len(group) > 1:
            n_val = max(1, n_val)
        rng = np.random.default_rng([seed, label])
        if by == "blocks" and n_val:
            size = max(1, min(VAL_BLOCK, n_val // 10))
            blocks = rng.permutation(-(-len(group) // size))
            chosen = set(blocks[:max(1, int(round(n_val / size)))].tolist())
            held = [i // size in chosen for i in range(len(group))]
        else:
            held = np.zeros(len(group), bool)
            held[rng.permutation(len(group))[:n_val]] = True
        val.extend(r for r, h in zip(group, held) if h)
        train.extend(r for r, h in zip(group, held) if not h)
    return train, val


# ------------------------------------------------------------------------------------------ batches


@dataclass
class BucketBatches:
    """Deterministic, resumable batches of sequence indices, grouped by length.

    Sequences are put in buckets of lengths padded up to a multiple of ``bucket``; each epoch shuffles every
    bucket, cuts it into batches and shuffles the batches, with a generator seeded by ``(seed, epoch)`` only,
    so a run resumed at global step ``s`` sees exactly the batches of an uninterrupted run from ``s`` on.

    Args:
        lengths: Length of each sequence.
        batch_size: Rows per batch; 0 to size batches by ``tokens_per_batch`` instead.
        tokens_per_batch: Padded tokens per batch when ``batch_size`` is 0.
        bucket: Width of the length buckets.
        min_rows: With ``batch_size``, widen the buckets (in steps of ``bucket``) until there are at most
            ``len(lengths) // min_rows`` of them, so a small set of sequences still gets batches of about
            ``batch_size`` rows instead of one short batch per narrow bucket; 0 keeps ``bucket``.
        max_batch: Most rows of a batch sized by tokens.
        seed: Seed of the order.
        multiple: Rows are a multiple of this (the replicas of a strategy); makers fill with empty rows.
        shuffle: False for a fixed order (validation).
    """

    lengths: Sequence[int]
    batch_size: int = 64
    tokens_per_batch: int = 0
    bucket: int = 16
    min_rows: int = 0
    max_batch: int = 512
    seed: int = 0
    multiple: int = 1
    shuffle: bool = True

    def __post_init__(self):
        lengths = np.asarray(self.lengths, dtype=np.int64)
        if lengths.size == 0:
            raise SentimentDataError("No sequences to batch.")
        width = self.bucket
        if self.batch_size and self.min_rows:
            most = max(1, lengths.size // self.min_rows)
            # buckets as padded below (an empty review, 0 tokens, shares the first); one holds every length
            # once the width reaches the longest
            while width < lengths.max() and len(np.unique(np.maximum(1, -(-lengths // width)))) > most:
                width += self.bucket
        self.padded = np.maximum(width, -(-lengths // width) * width)
        if width != self.bucket:  # a wide last bucket pads no further than the longest sequence
            self.padded = np.minimum(self.padded, max(int(lengths.max()), self.bucket))
        self._buckets = {int(L): np.flatnonzero(self.padded == L) for L in np.unique(self.padded)}
        m = max(1, int(self.multiple))
        sizes = {}
        for L in self._buckets:
            rows = self.batch_size if self.batch_size else min(self.max_batch, max(1, self.tokens_per_batch // L))
            sizes[L] = int(max(m, (rows // m) * m))
        self._sizes = sizes
        self.steps_per_epoch = sum(-(-len(ix) // sizes[L]) for L, ix in self._buckets.items())

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for L in sorted(self._buckets):
            ix = rng.permutation(self._buckets[L]) if self.shuffle else self._buckets[L]
            size = self._sizes[L]
            batches.extend(ix[i : i + size] for i in range(0, len(ix), size))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def iterate(self, start_step: int = 0, epochs: Optional[int] = None) -> Iterator[np.ndarray]:
        """Yield index batches from global step ``start_step`` on (``epochs`` epochs in all, or forever)."""
        epoch, skip = divmod(start_step, self.steps_per_epoch)
        while epochs is None or epoch < epochs:
            yield from self.epoch_batches(epoch)[skip:]
            epoch, skip = epoch + 1, 0

    def rows(self, n: int) -> int:
        m = max(1, int(self.multiple))
        return -(-n // m) * m

    def width(self, index: np.ndarray) -> int:
        return int(self.padded[index].max())


def classifier_batches(plan: BucketBatches, seqs: Sequence[np.ndarray], labels: Sequence[int], start_step: int = 0,
                       epochs: Optional[int] = None) -> Iterator[tuple]:
    """``(ids int32 [B, T], labels float32 [B, 1], weights float32 [B])``; filler rows have weight 0."""
    for index in plan.iterate(start_step, epochs):
        rows, T = plan.rows(len(index)), plan.width(index)
        x = np.zeros((rows, T), np.int32)
        y = np.zeros((rows, 1), np.float32)
        w = np.zeros((rows,), np.float32)
        for r, i in enumerate(index):
            s = seqs[i]
            x[r, : len(s)] = s
            y[r, 0] = labels[i]
            w[r] = 1.0
        yield x, y, w


def lm_batches(plan: BucketBatches, seqs: Sequence[np.ndarray], start_step: int = 0,
               epochs: Optional[int] = None) -> Iterator[tuple]:
    """Language-model batches ``(ids [B, T], targets [B, T, 2], weights [B, T, 2])``.

    Target ``[..., 0]`` is the next token (forward LM), ``[..., 1]`` the previous one (backward LM); a
    position without one (the ends, padding) has weight 0.
    """
    for index in plan.iterate(start_step, epochs):
        rows, T = plan.rows(len(index)), plan.width(index)
        x = np.zeros((rows, T), np.int32)
        y = np.zeros((rows, T, 2), np.int32)
        w = np.zeros((rows, T, 2), np.float32)
        for r, i in enumerate(index):
            s = seqs[i]
            n = len(s)
            x[r, :n] = s
            y[r, : n - 1, 0] = s[1:]
            w[r, : n - 1, 0] = 1.0
            y[r, 1:n, 1] = s[:-1]
            w[r, 1:n, 1] = 1.0
        yield x, y, w


def chunk_sequences(seqs: Sequence[np.ndarray], length: int) -> list[np.ndarray]:
    """Cut each sequence into consecutive pieces of at most ``length`` tokens (pieces under 2 are dropped)."""
    out = []
    for s in seqs:
        for i in range(0, len(s), length):
            piece = s[i : i + length]
            if len(piece) >= 2:
                out.append(piece)
    return out
