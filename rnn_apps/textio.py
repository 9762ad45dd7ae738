"""Text helpers shared by the apps: user texts one a line from files or stdin, and OpenCC character tables."""

from __future__ import annotations

import os
from typing import BinaryIO, Container, Optional


class Line(str):
    """A text read from a file or standard input that knows where it was read: ``origin`` ("reviews.txt, line
    8"), so that a message about it names the line, not its place among the non-blank texts, and
    ``blank_before``, the blank lines skipped right before it, so that output written one line per input line
    can keep the input's blank lines (:func:`blank_lines_before`)."""

    origin: str
    blank_before: int

    def __new__(cls, text: str, origin: str, blank_before: int = 0):
        line = super().__new__(cls, text)
        line.origin = origin
        line.blank_before = blank_before
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


def read_lines(stream: BinaryIO, name: str, error: type = ValueError) -> list[str]:
    """Texts of a binary stream, one a line (UTF-8; a byte-order mark is ignored; blank lines skipped), each a
    :class:`Line` that knows its line number.

    A line ends at LF, CRLF or a bare CR (the line end of old Mac files), as in Python's universal newlines.

    Args:
        stream: A binary stream (a file opened with ``"rb"``, ``sys.stdin.buffer``).
        name: What to call the stream in messages (its path, "standard input").
        error: The exception type raised for a line that is not UTF-8.

    Raises:
        error: a line that is not UTF-8, naming ``name``, the line and the byte.
    """
    texts, blank = [], 0
    for n, raw in enumerate(stream, 1):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if n == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16's byte-order mark (Windows' "Unicode")
            raise error(f"{name} is UTF-16 text; save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8).")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(
                f"{name}, line {n}: not UTF-8 text ({e.reason} at byte {e.start + 1} of the line). "
                f"Save the file as UTF-8 (e.g. {iconv_hint(raw)})."
            ) from None
        # A bare CR ends a line too: else every text of a file with CR line ends would be read as one.
        for part in line.rstrip("\r\n").split("\r"):
            if part.strip():
                texts.append(Line(part, f"{name}, line {n}", blank))
                blank = 0
            else:
                blank += 1
    return texts


def read_texts_file(path: str, stdin: Optional[BinaryIO] = None, error: type = ValueError, what: str = "text") -> list[str]:
    """Texts of a file, one a line; ``-`` reads ``stdin`` (a binary stream; default ``sys.stdin.buffer``).

    Raises:
        FileNotFoundError: no such file. ``error``: a directory, or a line that is not UTF-8.
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


def opencc_characters(script: str) -> dict:
    """OpenCC's character table into ``script`` ("simplified" or "traditional"): each character of the other
    script that OpenCC converts to a single character, mapped to its first candidate."""
    import opencc

    name = "TSCharacters.txt" if script == "simplified" else "STCharacters.txt"
    path = os.path.join(os.path.dirname(opencc.__file__), "dictionary", name)
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2 and len(parts[0]) == 1:
                target = parts[1].split(" ")[0]
                if len(target) == 1:
                    table[parts[0]] = target
    return table


def opencc_char_table(script: str, known: Container[str]) -> dict:
    """Character map into ``script`` ("simplified" or "traditional") from OpenCC's character table.

    Only maps a character the model does not know (not in ``known``) to a single character it does know,
    so that an exported model can convert input of the other script character by character in its graph.
    """
    return {c: t for c, t in opencc_characters(script).items() if t != c and t in known and c not in known}
