"""The input limits of :mod:`rnn_apps.limits` checked inside a SavedModel's graph.

``rnn-apps serve`` and the commands check a request in Python before the model runs. A SavedModel served
by TensorFlow Serving, or loaded with plain ``tf.saved_model.load``, runs none of that code: each app's
export therefore calls :func:`checked` on the inputs of its signatures, so that the graph itself refuses
what the command refuses, with an ``InvalidArgumentError`` (TF Serving answers 400) whose message is the
command's, in the words of :mod:`rnn_apps.limits`:

* the batch size (``max_batch``: the largest first dimension among the inputs);
* each text (``max_chars``, ``non_empty``, ``max_blanks``, ``choices``): valid UTF-8, its characters, not
  only whitespace, the count of blank marks and a Chinese character around them, one of the options;
* each number: finite, inside its :class:`~rnn_apps.limits.Range`; the values per example of a numeric
  input (``max_values``);
* each image (``max_megapixels``): the size in the header of an encoded PNG, GIF, BMP, JPEG or WebP (read
  before the image is decoded; a GIF's largest frame, then its frames together), or the height and width of
  a pixel array.

Checks that need the model's vocabulary (``known_words``, ``known_chars``, ``counted_words``) stay in
Python (``rnn-apps serve``, the commands): a graph answers those texts without refusing them.

Texts are named as ``rnn-apps serve`` names them: the input name, with the index in the batch when the
batch holds more than one (``text[1]``). :func:`message` gives the words of such an error back.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

import tensorflow as tf

from rnn_apps import limits as L
from rnn_apps.chinese import HAN_RANGES

_ASSERTION = re.compile(r"assertion failed: \[(.*)\]", re.S)
_C_ESCAPE = re.compile(r"\\([nrt'\"\\]|[0-7]{3})")
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "'": "'", '"': '"', "\\": "\\"}
# Python's str.isspace(), in RE2: ASCII whitespace and separators, the information separators, NEL, and
# the Unicode separators (Zs, Zl, Zp).
_SPACE = r"[\t\n\x{0b}\x{0c}\r\x{1c}-\x{1f}\x{85}\p{Z}]"
_HAN_RE2 = "".join(c if c == "-" else f"\\x{{{ord(c):x}}}" for c in HAN_RANGES)
_BLANKS_RE2 = "|".join(re.escape(b) for b in L.BLANK_MARKS)


# Not converted by AutoGraph: the checks branch on Python values only, and AutoGraph would read the source of
# their lambdas back by line, which can mix up lambdas of the same shape.
@tf.autograph.experimental.do_not_convert
def checked(app_limits: Optional[L.AppLimits], check_batch: bool = True, **inputs: tf.Tensor) -> Dict[str, tf.Tensor]:
    """The ``inputs`` of a signature, passed on only once they are inside ``app_limits``.

    Call it first in a signature's function, and compute on what it returns: the checks then run before
    the model's work, and a failed one stops the call with ``tf.errors.InvalidArgumentError``.

    Args:
        app_limits: The app's limits (:data:`rnn_apps.limits.APPS`); None checks nothing.
        check_batch: Whether to check the batch size (not for a model whose callers send the sentences
            of long texts together, more than ``max_batch`` of them for ``max_batch`` texts).
        **inputs: The signature's inputs by their names (the names the limits use), in the order the
            checks should run (the batch size first, then each input in turn).

    Returns:
        The same tensors (by name), each computed after all the checks.
    """
    if app_limits is None:
        return dict(inputs)
    done = _batch_check(app_limits, inputs) if check_batch else tf.constant(True)
    for name, x in inputs.items():
        for check in _checks_of(app_limits, name, x):
            with tf.control_dependencies([done]):
                done = check()
    with tf.control_dependencies([done]):
        return {name: tf.identity(x) for name, x in inputs.items()}


def message(error: Exception) -> Optional[str]:
    """The words of a failed graph check (what the command would say), from the ``InvalidArgumentError``
    it raised; None for another error."""
    text = getattr(error, "message", None) or str(error)
    m = _ASSERTION.search(text.split("\n\t [[", 1)[0])
    # These checks assert one string; a model's own assertion with data ("...] [Condition x >= y ...] [3]")
    # is another error, which rnn_apps.serving.errors.tf_message words.
    if not m or "] [" in m.group(1):
        return None
    # The Assert op writes its strings C-escaped (quotes, backslashes, control characters).
    return _C_ESCAPE.sub(lambda e: _UNESCAPE.get(e.group(1)) or chr(int(e.group(1), 8)), m.group(1))


# ------------------------------------------------------------------------------------------ checks

def _require(ok, words) -> tf.Tensor:
    """A tensor that is True once ``ok`` holds; otherwise the call fails with ``words()`` (a string tensor,
    built only then)."""
    def fail():
        with tf.control_dependencies([tf.debugging.Assert(False, [words()], summarize=1)]):
            return tf.constant(False)

    return tf.cond(ok, lambda: tf.constant(True), fail)


def _batch_check(lim: L.AppLimits, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
    rows = [tf.shape(x, out_type=tf.int64)[0] for x in inputs.values() if x.shape.rank is None or x.shape.rank >= 1]
    if not rows:
        return tf.constant(True)
    n = tf.reduce_max(tf.stack(rows))
    return _require(n <= lim.max_batch, lambda: _words(L.batch_message, lim, _Slot(n)))


def _checks_of(lim: L.AppLimits, name: str, x: tf.Tensor):
    """The checks of one input (functions returning a tensor), in the order the Python checks run."""
    if x.dtype == tf.string:
        if name in lim.max_megapixels:
            return [lambda: _image_check(lim, name, x)]
        if (name in lim.max_chars or name in lim.non_empty or name in lim.max_blanks or name in lim.han_when_given
                or name in lim.choices):
            return [lambda: _text_check(lim, name, x)]
        return []
    if not (x.dtype.is_floating or x.dtype.is_integer):
        return []
    out = []
    if name in lim.max_megapixels:
        if x.shape.rank == 4:  # pixels [B, H, W, C]
            out.append(lambda: _pixels_check(lim, name, x))
    elif x.shape.rank is not None and x.shape.rank >= 2:
        out.append(lambda: _values_check(lim, name, x))
    if name in lim.ranges:
        out.append(lambda: _range_check(lim, name, x))
    elif x.dtype.is_floating:
        out.append(lambda: _finite_check(name, x))
    return out


def _where(name: str, flat: tf.Tensor, i) -> tf.Tensor:
    """How the server names element ``i`` of an input: ``name`` alone when it is the only one."""
    return tf.cond(tf.size(flat) > 1, lambda: tf.strings.join([name, "[", tf.strings.as_string(i), "]"]),
                   lambda: tf.constant(name))


def _first(bad) -> tf.Tensor:
    """The index of the first True of a boolean vector (one is)."""
    return tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int64)


def _text_check(lim: L.AppLimits, name: str, x: tf.Tensor) -> tf.Tensor:
    """Each text in the order of :func:`rnn_apps.limits.check_text`; the message is the first failing
    check of the first text that fails one."""
    flat = tf.reshape(x, [-1])
    valid = tf.equal(tf.strings.unicode_transcode(flat, "UTF-8", "UTF-8", errors="replace"), flat)
    chars = tf.strings.length(flat, unit="UTF8_CHAR")
    problems = [(~valid, lambda where, i: _words(L.not_utf8_message, where)),
                (tf.strings.regex_full_match(flat, "(?s).*\\x00.*"), lambda where, i: _words(L.nul_message, where))]
    most = lim.max_chars.get(name)
    if most is not None:
        problems.append((chars > most, lambda where, i: _words(L.too_long_message, where,
                                                                _Slot(tf.gather(chars, i)), most)))
    if name in lim.non_empty:
        blank_only = tf.strings.regex_full_match(flat, f"{_SPACE}*")
        problems.append((blank_only, lambda where, i: _words(L.empty_message, lim, name, where)))
    if name in lim.max_blanks or name in lim.han_when_given:
        no_han = ~tf.strings.regex_full_match(flat, f"(?s).*[{_HAN_RE2}].*")
    if name in lim.max_blanks:
        fewest, most_blanks = lim.max_blanks[name]
        marks = chars - tf.strings.length(tf.strings.regex_replace(flat, _BLANKS_RE2, ""), unit="UTF8_CHAR")
        problems += [
            (marks < fewest, lambda where, i: _words(L.no_blank_message, where)),
            (marks > most_blanks, lambda where, i: _words(L.too_many_blanks_message, where,
                                                          _Slot(tf.gather(marks, i)), most_blanks)),
            (no_han, lambda where, i: _words(L.only_blanks_message, where)),
        ]
    if name in lim.han_when_given:
        given = ~tf.strings.regex_full_match(flat, f"{_SPACE}*")
        problems.append((given & no_han, lambda where, i: _words(L.no_han_message, lim, name, where)))
    if name in lim.choices:
        accepted = lim.choices[name]
        values = list(accepted.values) + ([""] if accepted.blank else [])
        named = tf.reduce_any(tf.equal(flat[:, None], tf.constant(values)[None, :]), axis=1)
        problems.append((~named, lambda where, i: _words(L.choice_message, where, accepted,
                                                          _Slot(tf.gather(flat, i)))))
    # The first failing check of each text: later checks count only where the earlier ones passed
    # (a text that is not UTF-8 has no meaningful length).
    code = tf.zeros_like(chars, tf.int32)
    for k, (bad, _) in enumerate(problems):
        code = tf.where((code == 0) & bad, k + 1, code)

    def words():
        i = _first(code > 0)
        where = _Slot(_where(name, flat, i))
        branches = [lambda w=w: w(where, i) for _, w in problems]
        return tf.switch_case(tf.gather(code, i) - 1, branches)

    return _require(tf.reduce_all(code == 0), words)


def _image_size(data: tf.Tensor):
    """(width, height, frames, frame_pixels, blocks, known) of encoded images [N] from their headers, as
    :func:`rnn_apps.apps.caption.images.image_header` reads them (known: a PNG, GIF, BMP, JPEG or WebP header;
    a GIF's frames are walked: its largest frame's size, its frames and their pixels in all, the blocks read)."""
    size = tf.strings.length(data)
    head = tf.strings.join([tf.strings.substr(data, 0, 32), "\0" * 32])  # the header, padded

    def number(offset, width, big_endian, signed=False):
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(head, offset, width), tf.uint8), tf.int64)
        raw = tf.reshape(raw, [-1, width])  # [N, width]; decode_raw gives [0, 0] for an empty batch
        weights = [256 ** k for k in range(width)]
        value = tf.reduce_sum(raw * tf.constant(weights[::-1] if big_endian else weights, tf.int64), axis=1)
        return tf.where(value >= 2 ** (8 * width - 1), value - 2 ** (8 * width), value) if signed else value

    def starts(offset, text):
        return tf.equal(tf.strings.substr(data, offset, len(text)), text)

    png = starts(0, b"\x89PNG\r\n\x1a\n") & (size >= 24)
    gif = (starts(0, b"GIF87a") | starts(0, b"GIF89a")) & (size >= 13)
    bmp = starts(0, b"BM") & (size >= 26)
    jpeg = starts(0, b"\xff\xd8")
    webp = starts(0, b"RIFF") & starts(8, b"WEBP") & (size >= 30)
    vp8, vp8l, vp8x = (webp & starts(12, chunk) for chunk in (b"VP8 ", b"VP8L", b"VP8X"))

    def one(s):
        """[width, height, frames, frame_pixels, blocks] of a GIF or a JPEG (zeros for another image)."""
        def jpeg_size():  # libjpeg reads the header only (the start-of-frame marker), not the compressed data.
            h, w = tf.unstack(tf.cast(tf.io.extract_jpeg_shape(s)[:2], tf.int64))
            return tf.stack([w, h, tf.constant(1, tf.int64), w * h, tf.constant(0, tf.int64)])

        is_gif = tf.reduce_any(tf.equal(tf.strings.substr(s, 0, 6), [b"GIF87a", b"GIF89a"])) \
            & (tf.strings.length(s) >= 13)
        return tf.cond(is_gif, lambda: _gif_frames(s), lambda: tf.cond(
            tf.equal(tf.strings.substr(s, 0, 2), b"\xff\xd8"), jpeg_size, lambda: tf.zeros([5], tf.int64)))

    walked = tf.map_fn(one, data, fn_output_signature=tf.TensorSpec([5], tf.int64))
    vp8l_bits = number(21, 4, False)
    width = tf.where(png, number(16, 4, True), tf.where(bmp, tf.abs(number(18, 4, False, signed=True)), tf.where(
        vp8, number(26, 2, False) % 0x4000, tf.where(vp8l, vp8l_bits % 0x4000 + 1, tf.where(
            vp8x, number(24, 3, False) + 1, walked[:, 0])))))
    height = tf.where(png, number(20, 4, True), tf.where(bmp, tf.abs(number(22, 4, False, signed=True)), tf.where(
        vp8, number(28, 2, False) % 0x4000, tf.where(vp8l, vp8l_bits // 0x4000 % 0x4000 + 1, tf.where(
            vp8x, number(27, 3, False) + 1, walked[:, 1])))))
    gif_or_jpeg = gif | jpeg
    frames = tf.where(gif_or_jpeg, walked[:, 2], tf.ones_like(width))
    frame_pixels = tf.where(gif_or_jpeg, walked[:, 3], width * height)
    return width, height, frames, frame_pixels, walked[:, 4], png | gif | bmp | jpeg | vp8 | vp8l | vp8x


def _gif_frames(s: tf.Tensor) -> tf.Tensor:
    """[width, height, frames, frame_pixels, blocks] of one GIF (at least 13 bytes), its blocks walked and counted
    as :func:`rnn_apps.apps.caption.images.image_header` walks and counts them (as giflib reads them: every frame):
    an image descriptor (0x2C) or an extension (0x21), each followed by pieces of data up to an empty one, until
    the trailer or a block of another kind, or more than :data:`rnn_apps.limits.MAX_GIF_BLOCKS` counted. A run of
    pieces of one length is skipped in one step (up to 1,024 of them), and counted once."""
    n = tf.cast(tf.strings.length(s), tf.int64)
    # the bytes, then zeros: past the end a piece's length is 0, and a run of pieces of another length ends
    b = tf.io.decode_raw(tf.strings.join([s, "\0" * (256 * 1024 + 16)]), tf.uint8)
    run, ten = tf.range(1024, dtype=tf.int64), tf.range(10, dtype=tf.int64)
    zero, one, most_run = (tf.constant(v, tf.int64) for v in (0, 1, 1024))

    def colour_table(flags):  # the size of the colour table a screen or frame's flags announce
        return tf.where(flags >= 0x80, tf.bitwise.left_shift(3 * one, flags % 8 + 1), zero)

    def step(state):
        # One state vector (each loop variable costs the loop's bookkeeping every step): the position, whether it
        # is in pieces of data, the length of the last piece, then width, height, frames, frame pixels, blocks
        # (what is returned), and whether the walk stopped.
        i, in_data, last, width, height, _, _, _, _ = tf.unstack(state)
        in_data = in_data > 0
        head = tf.unstack(tf.cast(tf.gather(b, i + ten), tf.int64))  # a block's first bytes, or a piece's length
        k = head[0]
        # in data: a run of pieces of length k (up to 1,024), counted once; an empty piece ends the data
        same = tf.equal(tf.gather(b, i + (k + 1) * run), tf.cast(k, tf.uint8))
        pieces = tf.where(tf.reduce_all(same), most_run, tf.argmax(tf.cast(~same, tf.int32), output_type=tf.int64))
        # else an image descriptor (left, top, width, height, flags; then the LZW code size) or an extension
        is_frame = ~in_data & tf.equal(k, 0x2C) & (i + 10 <= n)
        go = is_frame | (~in_data & tf.equal(k, 0x21))  # else the trailer, a block giflib does not know ...
        frame = tf.cast(is_frame, tf.int64)
        w, h = head[5] + 256 * head[6], head[7] + 256 * head[8]
        moved = tf.where(in_data, tf.where(k > 0, (k + 1) * pieces, one),
                         tf.where(is_frame, 11 + colour_table(head[9]), 2 * one))
        return [state + tf.stack([moved, tf.cast(tf.where(in_data, k > 0, go), tf.int64) - state[1],
                                  tf.where(in_data, k, -one) - last, frame * tf.maximum(w - width, 0),
                                  frame * tf.maximum(h - height, 0), frame, frame * w * h,
                                  tf.cast(tf.where(in_data, tf.not_equal(k, last), go), tf.int64),
                                  tf.cast(~in_data & ~go, tf.int64)])]

    start = tf.concat([[13 + colour_table(tf.cast(b[10], tf.int64))],  # past the screen and its colour table
                       tf.constant([0, -1, 0, 0, 0, 0, 0, 0], tf.int64)], 0)
    state = tf.while_loop(lambda state: tf.equal(state[8], 0) & (state[0] < n) & (state[7] <= L.MAX_GIF_BLOCKS),
                          step, [start], parallel_iterations=1)[0]
    return state[3:8]


def _too_big(lim: L.AppLimits, name: str, width, height):
    # in float64: a header's 32-bit width times its height can overflow int64
    return tf.cast(width, tf.float64) * tf.cast(height, tf.float64) > lim.max_megapixels[name] * 1e6


def _megapixels_words(lim: L.AppLimits, name: str, where, width, height) -> tf.Tensor:
    megapixels = tf.cast(width, tf.float64) * tf.cast(height, tf.float64) / 1e6
    return _words(L.megapixels_message, where, _Slot(width), _Slot(height), _Slot(megapixels),
                  lim.max_megapixels[name])


def _image_check(lim: L.AppLimits, name: str, x: tf.Tensor) -> tf.Tensor:
    """Encoded images: the size in their headers (a PNG's width is a 32-bit number: a small request can
    promise gigabytes of pixels), then a GIF's frames together (TensorFlow decodes every one), as
    :func:`rnn_apps.limits.check_megapixels` and :func:`rnn_apps.limits.check_frames` check them."""
    flat = tf.reshape(x, [-1])
    width, height, frames, frame_pixels, blocks, known = _image_size(flat)
    problem = tf.where(_too_big(lim, name, width, height), 1, tf.where(
        blocks > L.MAX_GIF_BLOCKS, 2, tf.where(frame_pixels > int(lim.max_megapixels[name] * 1e6), 3, 0)))
    problem = tf.where(known, problem, 0)

    def words():
        i = _first(problem > 0)
        where = _Slot(_where(name, flat, i))
        return tf.switch_case(tf.gather(problem, i) - 1, [
            lambda: _megapixels_words(lim, name, where, tf.gather(width, i), tf.gather(height, i)),
            lambda: _words(L.gif_blocks_message, where, L.MAX_GIF_BLOCKS),
            lambda: _words(L.frames_message, where, _Slot(tf.gather(frames, i)),
                           _Slot(tf.cast(tf.gather(frame_pixels, i), tf.float64) / 1e6), lim.max_megapixels[name])])

    return _require(tf.reduce_all(problem == 0), words)


def _pixels_check(lim: L.AppLimits, name: str, x: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(x, out_type=tf.int64)
    return _require(~_too_big(lim, name, shape[2], shape[1]),
                    lambda: _megapixels_words(lim, name, name, shape[2], shape[1]))


def _values_check(lim: L.AppLimits, name: str, x: tf.Tensor) -> tf.Tensor:
    n = tf.reduce_prod(tf.shape(x, out_type=tf.int64)[1:])
    return _require(n <= lim.max_values, lambda: _words(L.too_many_values_message, name, _Slot(n), lim.max_values))


def _range_check(lim: L.AppLimits, name: str, x: tf.Tensor) -> tf.Tensor:
    """As the server: the smallest value is checked, then the largest (NaN, when there is one, is both)."""
    r = lim.ranges[name]
    flat = tf.reshape(x, [-1])
    if x.dtype.is_floating:
        v = tf.cast(flat, tf.float64)
        # The bounds as the input's dtype holds them: a value the server's float64 check accepts (1e-6) is
        # not refused here once float32 has rounded it (to 9.99999997e-07), nor the other way round.
        lo, hi = (tf.constant(float(x.dtype.as_numpy_dtype(b)), tf.float64) for b in (r.lo, r.hi))
        inside = tf.math.is_finite(v)
    else:
        v = tf.cast(flat, tf.int64)
        # Bounds outside int64 bound nothing (the seed's range is int64's).
        lo = tf.constant(max(int(r.lo), -(2**63)), tf.int64)
        hi = tf.constant(min(int(r.hi), 2**63 - 1), tf.int64)
        inside = tf.ones_like(v, tf.bool)
    inside &= (v > lo) if r.lo_open else (v >= lo)
    inside &= (v < hi) if r.hi_open else (v <= hi)
    if r.min_positive and x.dtype.is_floating:  # (an integer input has no positive value below 1)
        tiny = tf.constant(float(x.dtype.as_numpy_dtype(r.min_positive)), tf.float64)
        inside &= ~((v > 0) & (v < tiny))

    def words():
        nan = tf.math.is_nan(v) if x.dtype.is_floating else tf.zeros_like(v, tf.bool)
        lowest = tf.argmin(tf.where(nan, tf.constant(float("inf"), v.dtype) if x.dtype.is_floating else v, v))
        value = tf.where(tf.gather(inside, lowest), tf.reduce_max(v), tf.gather(v, lowest))
        if not x.dtype.is_floating:
            return _words(L.range_message, name, r, _Slot(value))
        # NaN or an infinity: "must be a finite number", as limits.check_number says it (NaN first, as there)
        bad = ~tf.math.is_finite(v)
        first = tf.gather(v, tf.argmax(tf.cast(tf.where(tf.reduce_any(nan), nan, bad), tf.int32)))
        sent = tf.where(tf.math.is_nan(first), "NaN", tf.where(first > 0, "Infinity", "-Infinity"))
        return tf.cond(tf.reduce_any(bad), lambda: _words(L.not_finite_message, name, _Slot(sent)),
                       lambda: _words(L.range_message, name, r, _Slot(tf.cast(value, x.dtype))))

    return _require(tf.reduce_all(inside), words)


def _finite_check(name: str, x: tf.Tensor) -> tf.Tensor:
    flat = tf.reshape(x, [-1])
    bad = ~tf.math.is_finite(flat)
    return _require(~tf.reduce_any(bad), lambda: _words(L.not_finite_values_message, name,
                                                        _Slot(tf.gather(flat, _first(bad)))))


# ------------------------------------------------------------------------------------------ messages

class _Slot:
    """A tensor standing in for a value of a message function of :mod:`rnn_apps.limits`: formatted, it
    leaves a mark (its number and the format spec) where the graph puts the value's text."""

    def __init__(self, tensor):
        self.tensor = tensor
        self.index = None

    def __format__(self, spec: str) -> str:
        return f"\x00{self.index}\x01{spec}\x00"


def _words(message_fn, *args) -> tf.Tensor:
    """``message_fn(*args)`` as a string tensor, each :class:`_Slot` of ``args`` replaced by its tensor's
    text, formatted as ``format`` would format the value."""
    slots = [a for a in args if isinstance(a, _Slot)]
    for i, s in enumerate(slots):
        s.index = i
    parts = re.split("\x00(\\d+)\x01([^\x00]*)\x00", message_fn(*args))
    pieces = []
    for k, part in enumerate(parts):
        if k % 3 == 0:
            if part:
                pieces.append(tf.constant(part))
        elif k % 3 == 1:
            pieces.append(_formatted(slots[int(part)].tensor, parts[k + 1]))
    return tf.strings.join(pieces)


def _formatted(x, spec: str) -> tf.Tensor:
    """What ``format(value, spec)`` gives for the value of the scalar tensor ``x`` (the specs the
    messages use: "", "," and ".0f")."""
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.string:
        return x
    if spec == ",":
        return _grouped(tf.cast(x, tf.int64))
    if spec == ".0f":  # round half to even, as Python
        return tf.strings.as_string(tf.cast(tf.round(tf.cast(x, tf.float64)), tf.int64))
    if spec:
        raise ValueError(f"No graph formatting for the format spec {spec!r}; expected '', ',' or '.0f'.")
    if x.dtype.is_integer:
        return tf.strings.as_string(x)
    return _python_float(x)


def _grouped(n) -> tf.Tensor:
    """``f"{n:,}"`` of an int64 scalar."""
    digits = tf.strings.as_string(tf.abs(n))
    backwards = tf.strings.reduce_join(tf.reverse(tf.strings.bytes_split(digits), [0]))
    grouped = tf.strings.regex_replace(tf.strings.regex_replace(backwards, r"(\d\d\d)", r"\1,"), ",$", "")
    forwards = tf.strings.reduce_join(tf.reverse(tf.strings.bytes_split(grouped), [0]))
    return tf.strings.join([tf.where(n < 0, "-", ""), forwards])


def _python_float(x) -> tf.Tensor:
    """``str(v)`` of a float scalar as Python writes the number the user typed: a whole number as ``20.0``,
    others with the fewest digits that read back as the same value (``0.1``, ``1.5e-05``), ``nan``, ``inf``."""
    whole = tf.math.is_finite(x) & tf.equal(tf.floor(x), x) & (tf.abs(x) < 1e16)
    as_int = tf.strings.join([tf.strings.as_string(tf.cast(tf.where(whole, x, tf.zeros_like(x)), tf.int64)), ".0"])
    most = 9 if x.dtype == tf.float32 else 17  # digits that always read back as the same float
    text = tf.strings.as_string(x, precision=most, shortest=True)  # %g; also the text of NaN and infinities
    for precision in reversed(range(1, most)):  # the fewest digits that read back as the value
        fewer = tf.strings.as_string(x, precision=precision, shortest=True)
        text = tf.where(tf.equal(tf.strings.to_number(fewer, x.dtype), x), fewer, text)
    return tf.where(whole, as_int, text)
