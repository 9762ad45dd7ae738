"""Text helpers shared by the apps: user texts one a line from files or stdin, and OpenCC character tables."""

from __future__ import annotations

import functools
import itertools
import os
import re
import types
from typing import BinaryIO, Container, Iterator, Mapping, Optional


class Line(str):
    """A text read from a file or standard input that knows where it was read: ``origin`` ("reviews.txt, line
    8"), so that a message about it names the line, not its place among the non-blank texts; ``source``, the
    file's name as messages name it ("reviews.txt", "standard input"; None when not given), so that a caller
    can group texts by their file without taking ``origin`` apart; and ``blank_before``, the blank lines skipped
    right before it, so that output written one line per input line can keep the input's blank lines
    (:func:`blank_lines_before`)."""

    origin: str
    blank_before: int
    source: Optional[str]

    def __new__(cls, text: str, origin: str, blank_before: int = 0, source: Optional[str] = None):
        line = super().__new__(cls, text)
        line.origin = origin
        line.blank_before = blank_before
        line.source = source
        return line


def blank_lines_before(text) -> str:
    """The blank lines a :class:`Line` followed in its file ("" for any other text): printed before its result,
    they keep a command's output line for line with its input (``paste input.txt output.txt``)."""
    return "\n" * getattr(text, "blank_before", 0)


def text_name(text, fallback: str) -> str:
    """How a message names a text: where it was read (a :class:`Line`: "reviews.txt, line 8"), else
    ``fallback`` ("Review 8", its place among the texts given)."""
    return getattr(text, "origin", None) or fallback


def with_origin(row: dict, text) -> dict:
    """A command's JSON row for ``text``, with ``read_from`` ("reviews.txt, line 8") when the text was read from
    a file or standard input, so that the results can be lined up with the input's lines."""
    origin = getattr(text, "origin", None)
    return {**row, "read_from": origin} if origin else row


def iconv_hint(data: bytes) -> str:
    """The command that likely converts ``data`` (text that is not UTF-8) to UTF-8: GB18030 (GBK, GB2312)
    when the bytes read as Chinese in it, Big5 likewise, else Latin-1 (a Western European text)."""
    from rnn_apps.chinese import is_han

    for codec in ("gb18030", "big5"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if sum(map(is_han, text)) >= max(1, len(text.strip()) // 4):
            return f"iconv -f {codec} -t utf-8"
    return "iconv -f latin1 -t utf-8"


# Byte-order marks of the encodings a text editor saves "Unicode" text in, UTF-32's first: its
# little-endian mark begins with UTF-16's.
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32", "utf-32"), (b"\x00\x00\xfe\xff", "UTF-32", "utf-32"),
         (b"\xff\xfe", "UTF-16", "utf-16"), (b"\xfe\xff", "UTF-16", "utf-16"))


_SNIFF_BYTES = 4096  # how much of a file's start tells UTF-16 without a byte-order mark from UTF-8


def _utf16_without_bom(head: bytes) -> Optional[str]:
    """``"utf-16le"`` or ``"utf-16be"`` when ``head`` (a file's first bytes) reads as UTF-16 saved without a
    byte-order mark, else None.

    Only text mostly of ASCII characters is recognised: each of them has a NUL byte beside it, at odd offsets
    (little-endian) or even ones (big-endian), and a text file in UTF-8 has no NUL at all. UTF-16 of Chinese
    text has few NULs and is left to the invalid bytes it has as UTF-8.
    """
    if b"\0" not in head:  # the common case, at the cost of one scan
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    for nuls, other, codec in ((odd, even, "utf-16le"), (even, odd, "utf-16be")):
        # at least half the bytes on one side are NUL, hardly any on the other
        if nuls >= max(2, len(head) // 4) and other * 8 <= nuls:
            return codec
    return None


def decode_utf8(data: bytes, name: str, error: type = ValueError, *, line: int = 1,
                lead: str = "{name}, line {line}: not UTF-8 text") -> str:
    """``data`` (a whole file, or one line of it) decoded as UTF-8, or ``error`` with a message that says
    how to convert it: the one place that words a user's text file that is not UTF-8.

    A UTF-8 byte-order mark is dropped. A file in UTF-16 or UTF-32 (Windows Notepad's "Unicode"), known by
    its byte-order mark or, for UTF-16 of mostly ASCII text, by its NUL bytes, is named as such with the
    ``iconv`` command that converts it. Any other bad byte is named by its line and its byte within that
    line (both counted from 1; a line ends at LF, CRLF or a bare CR), with :func:`iconv_hint`'s guess of
    the encoding from the bytes of that line.

    Args:
        data: The bytes: a whole file, or a part of it that begins a line (a reader that streams lines).
        name: What to call the file in messages (its path, "standard input").
        error: The exception type to raise.
        line: The number of ``data``'s first line in the file; a byte-order mark is looked for only at
            line 1, the file's start.
        lead: The message's first words, a template of ``{name}`` and ``{line}`` (a caller's own wording,
            such as ``"{name}: line {line} is not UTF-8 text"``); the reason and the advice follow it.

    Returns:
        The text (line ends kept as they are).

    Raises:
        error: a file in UTF-16 or UTF-32, or bytes that are not UTF-8.
    """
    if line == 1:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        _check_unicode_head(data, name, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        # the bad byte's line and its place in it, as an editor counts them (a bare CR ends a line too)
        start = e.start
        breaks = data.count(b"\n", 0, start) + data.count(b"\r", 0, start) - data.count(b"\r\n", 0, start)
        begin = max(data.rfind(b"\n", 0, start), data.rfind(b"\r", 0, start)) + 1
        end = min((i for i in (data.find(b"\n", start), data.find(b"\r", start)) if i >= 0), default=len(data))
        where = lead.format(name=name, line=line + breaks)
        raise error(
            f"{where} ({e.reason} at byte {start - begin + 1} of the line). "
            f"Save it as UTF-8 (e.g. {iconv_hint(data[begin:end])})."
        ) from None


def _check_unicode_head(head: bytes, name: str, error: type) -> None:
    """Refuse a file whose first bytes ``head`` show it is compressed (:func:`refuse_compressed`), UTF-32 or
    UTF-16 (:func:`decode_utf8`'s checks of a file's start)."""
    refuse_compressed(head, name, error)
    for bom, encoding, codec in _BOMS:
        if head.startswith(bom):
            raise error(f"{name} is {encoding} text; save it as UTF-8 (e.g. iconv -f {codec} -t utf-8).")
    # ASCII saved as UTF-16 is valid UTF-8 (with a NUL after each letter): look before decoding
    codec = _utf16_without_bom(head[:_SNIFF_BYTES])
    if codec:
        raise error(f"{name} is UTF-16 text; save it as UTF-8 (e.g. iconv -f {codec} -t utf-8).")


# The magic numbers of the compressed files a user may hand over for text: none is the start of UTF-8 text (0x8b
# and 0xfd start no character; bzip2's "BZh" is followed by a digit and a block's binary magic).
_COMPRESSIONS = (("gzip", re.compile(rb"\x1f\x8b")), ("bzip2", re.compile(rb"BZh[1-9]\x31\x41\x59\x26\x53\x59")),
                 ("xz", re.compile(rb"\xfd7zXZ\x00")), ("zip", re.compile(rb"PK\x03\x04")))


def compression(head: bytes) -> Optional[str]:
    """``"gzip"``, ``"bzip2"``, ``"xz"`` or ``"zip"`` when ``head`` (a file's first 10 bytes or more) starts as a
    file so compressed does, else None."""
    return next((name for name, magic in _COMPRESSIONS if magic.match(head)), None)


# the command that undoes each compression, keeping the file
_UNPACK = {"gzip": "gunzip -k {}", "bzip2": "bunzip2 -k {}", "xz": "unxz -k {}", "zip": "unzip {}"}


def refuse_compressed(head: bytes, path: str, error: type = ValueError, allowed: tuple = ()) -> None:
    """Refuse a file whose first bytes ``head`` (10 or more) are those of a compressed file, unless its
    compression is ``allowed``, saying how to decompress it (not "line 1 is not UTF-8 text").

    Raises:
        error: e.g. "data.csv is bzip2-compressed; decompress it first (bunzip2 -k data.csv)."
    """
    packed = compression(head)
    if packed and packed not in allowed:
        raise error(f"{path} is {packed}-compressed; decompress it first ({_UNPACK[packed].format(path)}).")


def read_lines(stream: BinaryIO, name: str, error: type = ValueError) -> list[str]:
    """Texts of a binary stream, one a line (UTF-8; a byte-order mark is ignored; blank lines skipped), each a
    :class:`Line` that knows its file (``source``) and its line number (``origin``).

    A line ends at LF, CRLF or a bare CR (the line end of old Mac files), as in Python's universal newlines, and
    is numbered so: each line a CR ends has a number of its own, as in an editor. A stream in UTF-16 or UTF-32
    is known by its first few KiB, not by its first line alone (which a blank line may leave without a letter).

    Args:
        stream: A binary stream (a file opened with ``"rb"``, ``sys.stdin.buffer``).
        name: What to call the stream in messages (its path, "standard input").
        error: The exception type raised for a line that is not UTF-8.

    Raises:
        error: a stream in UTF-16 or UTF-32, or a line that is not UTF-8, naming ``name``, the line and the
            byte (:func:`decode_utf8`).
    """
    physical = iter(stream)  # lines ended by LF: a file of CR line ends is one
    head, size = [], 0
    for raw in physical:  # the first few KiB, held to tell UTF-16 from UTF-8 before any line is decoded
        head.append(raw)
        size += len(raw)
        if size >= _SNIFF_BYTES:
            break
    _check_unicode_head(b"".join(head)[:_SNIFF_BYTES], name, error)
    texts, blank, n = [], 0, 1  # n: the number of the next line, as an editor counts lines
    for raw in itertools.chain(head, physical):
        line = decode_utf8(raw, name, error, line=n)  # a line at a time: a large file is never held whole
        # one line end taken off (a CR before it is a line end of its own: b"a\r\r\n" is "a" and a blank line)
        line = line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith(("\n", "\r")) else line
        # A bare CR ends a line too: else every text of a file with CR line ends would be read as one.
        for part in line.split("\r"):
            if part.strip():
                texts.append(Line(part, f"{name}, line {n}", blank, name))
                blank = 0
            else:
                blank += 1
            n += 1
    return texts


def read_texts_file(path: str, stdin: Optional[BinaryIO] = None, error: type = ValueError, what: str = "text") -> list[str]:
    """Texts of a file, one a line; ``-`` reads ``stdin`` (a binary stream; default ``sys.stdin.buffer``).

    Raises:
        FileNotFoundError: no such file. ``error``: a directory, a file that cannot be read (no permission,
            a path through a file), or a line that is not UTF-8.
    """
    if path == "-":
        import sys

        return read_lines(stdin if stdin is not None else sys.stdin.buffer, "standard input", error)
    try:
        with open(path, "rb") as f:
            return read_lines(f, path, error)
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise error(f"{path} is a directory; give a file with one {what} a line.") from None
    except OSError as e:  # no permission, a path through a file: one line, as the others
        raise error(f"Cannot read {path}: {e.strerror or e}.") from None


def read_table(text: str, name: str, error: type = ValueError, *, tsv: bool = False,
               where: str = "{name}, line {line}") -> Iterator[tuple[int, list[str]]]:
    """The rows of a CSV or TSV table, each ``(the line it starts on, its cells)``, rows of empty cells skipped:
    the one reader of a user's table (sentiment's reviews, forecast's series), which words a broken table alike.

    A CSV is read strictly: a quote left open is an error naming the row that opened it, not every row after it
    read silently as one cell; text after a closing quote (``"abc"def``) is an error too. A TSV has no quoting.
    A line ends at LF, CRLF or a bare CR, as :func:`decode_utf8` counts lines (not at a form feed or U+2028,
    which ``str.splitlines`` would end it at).

    Args:
        text: The table's text (:func:`decode_utf8`'s, its byte-order mark dropped).
        name: What to call the file in messages (its path).
        error: The exception type to raise.
        tsv: Tab-separated without quoting; else comma-separated with ``"..."`` quoting.
        where: How a message names a line, a template of ``{name}`` and ``{line}`` (``"{name}:{line}"``); the
            reason follows it.

    Yields:
        ``(line, cells)``: the line number (from 1) the row starts on, and its cells as written.

    Raises:
        error: a quote never closed, text after a closing quote, a cell longer than ``csv.field_size_limit()``
            (131,072 characters) or any other malformed row, naming ``name`` and the line.
    """
    import csv
    import io

    reader = (csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE) if tsv
              else csv.reader(io.StringIO(text, newline=""), strict=True))
    kind = "TSV" if tsv else "CSV"
    end = 0  # the last line of the row read last
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if row and any(c.strip() for c in row):
                yield start, row
    except csv.Error as e:
        at = where.format(name=name, line=end + 1)  # the line the broken row starts on
        if "unexpected end of data" in str(e):  # the row that opened the quote, not the file's last line
            raise error(f"{at}: not valid CSV (a quote opened in this row is never closed).") from None
        if "field larger than field limit" in str(e):
            # a quote left open reads the rest of the file as one cell, which reaches the limit before its end
            raise error(f"{at}: not valid {kind} (a cell of this row runs past {csv.field_size_limit():,} "
                        "characters" + (": a quote opened in it may never be closed)." if not tsv else ").")) from None
        at = where.format(name=name, line=reader.line_num)
        if "expected after" in str(e):  # "abc"def: a quote inside a quoted text not doubled
            raise error(f"{at}: not valid CSV (text follows a closing quote; a quote inside a quoted text is "
                        'written twice: "He said ""wow"".").') from None
        raise error(f"{at}: not valid {kind} ({e}).") from None


@functools.lru_cache(maxsize=2)
def opencc_candidates(script: str) -> Mapping[str, tuple]:
    """OpenCC's character table into ``script`` ("simplified" or "traditional") as written: each character of
    the other script mapped to its candidates, in OpenCC's order (发 -> ("發", "髮")). Read once a process
    (a poem in traditional script and each fill of one read it twice, 3.5 ms a time); read-only."""
    import opencc

    name = "TSCharacters.txt" if script == "simplified" else "STCharacters.txt"
    path = os.path.join(os.path.dirname(opencc.__file__), "dictionary", name)
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2 and len(parts[0]) == 1:
                table[parts[0]] = tuple(parts[1].split(" "))
    return types.MappingProxyType(table)


@functools.lru_cache(maxsize=2)
def opencc_characters(script: str) -> Mapping[str, str]:
    """OpenCC's character table into ``script`` ("simplified" or "traditional"): each character of the other
    script that OpenCC converts to a single character, mapped to its first candidate (read-only, once a
    process)."""
    return types.MappingProxyType(
        {c: cands[0] for c, cands in opencc_candidates(script).items() if len(cands[0]) == 1})


def opencc_char_table(script: str, known: Container[str]) -> dict:
    """Character map into ``script`` ("simplified" or "traditional") from OpenCC's character table.

    Only maps a character the model does not know (not in ``known``) to a single character it does know,
    so that an exported model can convert input of the other script character by character in its graph.
    """
    return {c: t for c, t in opencc_characters(script).items() if t != c and t in known and c not in known}
