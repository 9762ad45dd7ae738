"""Errors of ``rnn-apps serve``: answered as ``{"error": message}`` with an HTTP status."""

from __future__ import annotations

import re
from typing import Dict, Optional

from rnn_apps.limits import shown  # noqa: F401  (a name from a URL, cut for the message)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}




def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# A failed tf.debugging.assert_*: "assertion failed: [message] [Condition x >= y did not hold element-wise:]
# [x (name:0) = ] [3] [y (name:0) = ] [48]".
_ASSERT_DATA = re.compile(r"^assertion failed: \[(?P<msg>[^\]]*)\] \[(?P<data>.*)\]$", re.S)
_ASSERT = re.compile(r"^assertion failed: \[(?P<msg>[^\]]*)\] \[Condition [^\]]*\] \[x \([^)]*\) = \] \[(?P<x>[^\]]*)\]")


def tf_message(err: Exception) -> str:
    """The useful part of a TF runtime error: drop the node trace and ``[Op:...]`` suffix; a model's own
    assertion (``tf.debugging.assert_greater_equal(x, y, message=...)``) as its message and the value received."""
    msg = getattr(err, "message", None) or str(err)
    msg = msg.split("\n\t [[", 1)[0]
    msg = re.sub(r"\s*\[Op:[^\]]*\]\s*(name:.*)?$", "", msg.strip())
    kept, in_trace = [], False
    for line in msg.split("\n"):  # drop "Graph execution error:" and "Detected at node ..." traces
        if line.strip() == "Graph execution error:":
            continue
        if line.startswith("Detected at node"):
            in_trace = True
            continue
        if in_trace and (line.startswith((" ", "\t")) or line.strip() in ("", "<stack traces unavailable>")):
            continue
        in_trace = False
        kept.append(line)
    text = "\n".join(kept).strip() or msg.strip()
    m = _ASSERT.match(text)
    if m:
        return f"{m.group('msg')}; received {m.group('x').strip()}.".replace("\\'", "'")
    m = _ASSERT_DATA.match(text)
    if m:  # tf.debugging.Assert(ok, [message, data...]): the message, then what it was about
        data = ", ".join(d.strip() for d in m.group("data").split("] [") if d.strip())
        return f"{m.group('msg').strip().rstrip(':')}: {shown(data)}".replace("\\'", "'")
    return text
