"""Image bytes: header checks before decoding (Python side) and the decoding the model does in its graph.

The command line reads each file, checks from its header alone that it is a PNG, JPEG, GIF, BMP or WebP image
of a sensible size, and only then hands the bytes to the model, which decodes and resizes them in its
graph (:func:`decode_images`). A JPEG above :data:`MAX_PIXELS` is first decoded at a reduced scale with
Pillow (JPEG's DCT scaling, so the full image never sits in memory); other formats above it are refused
with a message that says so.

``rnn-apps serve`` checks the images of a request with the same reader (:func:`check_image`), in the same
words; the exported graph reads the same sizes (:mod:`rnn_apps.graph_limits`).
"""

from __future__ import annotations

import io
import os
import re
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from rnn_apps import limits

# 25 megapixels (e.g. 5000 x 5000), the limit the server applies too (rnn_apps.limits).
MAX_PIXELS = int(limits.APPS["caption"].max_megapixels["image"] * 1_000_000)
MAX_FILE_BYTES = 200 * 2**20
DOWNSCALE_TO = 1024
# A JPEG above MAX_PIXELS is decoded at a reduced scale (its DCT at 1/2, 1/4 or 1/8), so it costs an eighth of
# its pixels at most; Pillow still refuses to open one above twice its MAX_IMAGE_PIXELS (179 megapixels) as a
# possible decompression bomb. This bound stays below that and is said in the project's words.
MAX_JPEG_PIXELS = 150_000_000
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")


class CaptionError(ValueError):
    """An image or a request the captioner cannot work with (with a message a person can act on)."""


class ImageHeader(NamedTuple):
    """What an image's header says (:func:`image_header`), before anything is decoded.

    Attributes:
        format: "PNG", "JPEG", "GIF", "BMP" or "WEBP".
        width, height: The size TensorFlow decodes the image at: a GIF's largest frame width and height (its
            "screen" size is not what is decoded); a WebP's canvas.
        frames: The frames TensorFlow decodes: a GIF's every frame (giflib holds them all in memory, though the
            model looks at the first); 1 for the other formats.
        frame_pixels: The pixels of those frames in all (``width * height`` for one frame).
        blocks: The blocks read to find a GIF's frames (frames, extensions, their pieces of data, but a piece as
            long as the one before it), at most :data:`rnn_apps.limits.MAX_GIF_BLOCKS` + 1; 0 for other formats.
    """

    format: str
    width: int
    height: int
    frames: int
    frame_pixels: int
    blocks: int = 0


@dataclass
class ImageInput:
    """An image ready for the model: its (possibly re-encoded) bytes, format, size and notes for the user."""

    name: str
    data: bytes
    format: str
    width: int
    height: int
    notes: list = field(default_factory=list)


def _jpeg_size(data: bytes):
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise CaptionError("corrupt JPEG header (expected a marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            raise CaptionError("corrupt JPEG header (segment length)")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    raise CaptionError("truncated or corrupt JPEG (no frame header with the image size)")


def _gif_frames(data: bytes) -> ImageHeader:
    """A GIF's frames, from the image descriptor of each (its screen size is not what TensorFlow decodes).

    giflib reads every frame into memory (a frame of w × h pixels takes w × h bytes) before TensorFlow keeps
    the first, at the largest width and height of them all. So the frames' own pixels summed bound the memory
    of a decode with ``expand_animations=False``, the only one here (measured: one 4999 × 5000 frame and 3,000
    of 1 × 1, 70 KB, took 95 MB); ``tf.io.decode_gif``, which allocates every frame at the largest size, would
    need frames × that size. The blocks are walked as giflib walks them: an
    image descriptor (0x2C) or an extension (0x21), each followed by pieces of data (a length byte, then that
    many bytes) up to an empty one, until the trailer or a block of another kind. Each block counts, but a
    piece of data as long as the one before it (encoders cut data into 255-byte pieces), and the walk stops
    once more than :data:`rnn_apps.limits.MAX_GIF_BLOCKS` counted; :mod:`rnn_apps.graph_limits` walks alike.

    Raises:
        CaptionError: no whole first frame (TensorFlow could not decode one).
    """
    n, most = len(data), limits.MAX_GIF_BLOCKS
    if n < 13:
        raise CaptionError("truncated GIF")
    i = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # after the screen and its colour table
    width = height = frames = pixels = blocks = 0
    whole = False  # whether the first frame's data ends (with its empty piece)
    ended = False  # whether the walk stopped at the trailer or a block of another kind, not at the end of the data
    while i < n and blocks <= most:
        if data[i] == 0x2C:  # left, top, width, height, flags (a local colour table), then the LZW code size
            if i + 10 > n:
                break
            w, h = struct.unpack_from("<HH", data, i + 5)
            width, height, frames, pixels = max(width, w), max(height, h), frames + 1, pixels + w * h
            i += 10 + (3 << ((data[i + 9] & 7) + 1) if data[i + 9] & 0x80 else 0) + 1
        elif data[i] == 0x21:  # an extension: its label, then pieces of data
            i += 2
        else:  # the trailer (0x3B), or a block giflib does not know: it reads no further
            ended = True
            break
        blocks += 1
        last = -1
        while i < n and blocks <= most:  # pieces of data, a run of pieces of one length at a time
            size = data[i]
            blocks += size != last
            if size == 0:
                i += 1
                whole = whole or frames == 1
                break
            lengths = data[i:i + (size + 1) * 4096:size + 1]  # the length bytes of the next pieces of this size
            i += (size + 1) * (len(lengths) - len(lengths.lstrip(bytes([size]))))
            last = size
    if not whole and blocks <= most:
        raise CaptionError("corrupt GIF (no frame before its end)" if ended else "truncated GIF (no whole frame)")
    return ImageHeader("GIF", width, height, frames, pixels, blocks)


def image_header(data: bytes) -> ImageHeader:
    """The format, size and frames read from the header of an image (a GIF's frame headers), without decoding
    it: what the command line and ``rnn-apps serve`` check before the model decodes the image.

    Raises:
        CaptionError: not a PNG, JPEG, GIF, BMP or WebP image, or a corrupt header.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise CaptionError("truncated or corrupt PNG (no IHDR header)")
        if b"IEND" not in data[-16:]:  # libpng would decode a cut file as a partly blank image
            raise CaptionError("truncated PNG (no IEND chunk at its end)")
        w, h = struct.unpack(">II", data[16:24])
        return ImageHeader("PNG", w, h, 1, w * h)
    if data[:3] == b"\xff\xd8\xff":
        w, h = _jpeg_size(data)
        return ImageHeader("JPEG", w, h, 1, w * h)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif_frames(data)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return ImageHeader("BMP", abs(w), abs(h), 1, abs(w * h))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            w, h = w & 0x3FFF, h & 0x3FFF
        elif chunk == b"VP8L":
            (bits,) = struct.unpack("<I", data[21:25])
            w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        elif chunk == b"VP8X":  # the canvas (of every frame of an animation)
            w, h = 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        else:
            raise CaptionError("corrupt WebP header")
        return ImageHeader("WEBP", w, h, 1, w * h)
    raise CaptionError("not a PNG, JPEG, GIF, BMP or WebP image")


def check_image(data: bytes, name: str = "image") -> ImageHeader:
    """The header of image bytes (:func:`image_header`), checked as the command line and ``rnn-apps serve``
    check it before the model decodes the image: not empty, a PNG, JPEG, GIF, BMP or WebP header that is
    whole, a size that is not zero. Their sizes are checked against the limits by the caller (the command
    reads a large JPEG at a reduced scale; the server refuses it).

    Args:
        data: The encoded image.
        name: How messages name it (a file name; the server's ``image[2]``).

    Raises:
        CaptionError: its message names the image and says what to do.
    """
    if not data:
        raise CaptionError(f"{name}: the file is empty.")
    try:
        header = image_header(data)
    except CaptionError as e:
        # a cut file of a known format is named as such; anything else is told which formats are read
        hint = "the file is cut short or damaged" if str(e).startswith("truncated") else "give a PNG, JPEG, GIF, BMP or WebP image"
        raise CaptionError(f"{name}: {e}; {hint}.") from None
    if header.width <= 0 or header.height <= 0:
        raise CaptionError(f"{name}: the {header.format} header gives a size of {header.width}×{header.height} "
                           "pixels.")
    return header


def decoder_words(err: Exception) -> str:
    """The useful part of a TensorFlow image decoder's error ("Invalid PNG data, size 12432")."""
    text = re.sub(r"\s*\[Op:\w+\]", "", str(err)).strip()  # an eager op's error names the op
    m = re.search(r"(Unknown image file format[^\n]*|Invalid [A-Z]+ data[^\n]*|[^\n]*corrupt[^\n]*)", text, re.I)
    if m:
        return m.group(1).strip().rstrip(".")
    return text.splitlines()[0][:200] if text else type(err).__name__


def undecodable(name: str, err: Exception) -> CaptionError:
    """The error for image data whose header :func:`check_image` read but whose pixels TensorFlow's decoder
    refused with ``err`` (a file cut short or damaged after its header)."""
    return CaptionError(f"{name}: the image data cannot be decoded ({decoder_words(err)}); the image is corrupt or "
                        "truncated.")


def check_decodable(data: bytes, name: str = "image") -> None:
    """Decode ``data`` as the model's graph does (:func:`decode_images`) and raise :func:`undecodable`'s error
    when TensorFlow cannot; for a header :func:`check_image` accepted, so that its pixels are bounded."""
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as e:
        raise undecodable(name, e) from None


def _downscale_jpeg(data: bytes, name: str) -> bytes:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        raise CaptionError(f"{name}: the image is larger than {MAX_PIXELS / 1e6:.0f} megapixels; downscale it first "
                           "(or install Pillow, which reads large JPEGs at a reduced scale).") from None
    import warnings

    try:
        with warnings.catch_warnings():  # the size was checked (MAX_JPEG_PIXELS): no bomb warning on stderr
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            im.draft("RGB", (DOWNSCALE_TO, DOWNSCALE_TO))
            im = im.convert("RGB")
            im.thumbnail((DOWNSCALE_TO, DOWNSCALE_TO))
            out = io.BytesIO()
            im.save(out, format="PNG")
            return out.getvalue()
    except Exception as e:
        raise CaptionError(f"{name}: cannot read the JPEG data ({type(e).__name__}: {e}).") from None


# EXIF orientation tag (0x0112): 1 is upright; 2-8 say how a viewer turns or mirrors the stored pixels.
_ORIENTATION_TAG = 0x0112


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation of an image (1 when it has none, or none Pillow can read); reads the header only."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # no EXIF worth trusting: the pixels as stored, as the SavedModel reads them
        return 1


def _upright(data: bytes, name: str, max_side: int) -> tuple:
    """The image turned as its EXIF orientation says (as photo viewers show it; phones store the pixels
    sideways and set the tag), at most ``max_side`` pixels a side, re-encoded as PNG: ``(bytes, w, h)``."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (max_side, max_side))  # a large JPEG is decoded at a reduced scale
            im = ImageOps.exif_transpose(im.convert("RGB") if im.mode not in ("RGB", "L") else im)
            im.thumbnail((max_side, max_side))
            out = io.BytesIO()
            im.save(out, format="PNG")
            return out.getvalue(), im.width, im.height
    except Exception as e:
        raise CaptionError(f"{name}: cannot read the image data ({type(e).__name__}: {e}).") from None


def prepare_image(data: bytes, name: str = "image", model_size: int = 64) -> ImageInput:
    """Check image bytes by their header; downscale a huge JPEG; turn a photo upright as its EXIF orientation
    says; note images far smaller than the model's.

    Raises:
        CaptionError: empty, not an image, a corrupt header, a zero size, or too many pixels.
    """
    if len(data) > MAX_FILE_BYTES:
        raise CaptionError(f"{name}: the file is {len(data) / 2**20:.0f} MB; at most {MAX_FILE_BYTES // 2**20} MB is read.")
    header = check_image(data, name)
    fmt, w, h = header.format, header.width, header.height
    img = ImageInput(name, data, fmt, w, h)
    if w * h > MAX_PIXELS:
        if fmt != "JPEG":
            with limits.errors_as(CaptionError):  # the server's check and words
                limits.check_megapixels(limits.APPS["caption"], "image", w, h, where=name)
        elif w * h > MAX_JPEG_PIXELS:
            raise CaptionError(limits.megapixels_message(name, w, h, w * h / 1e6, MAX_JPEG_PIXELS / 1e6, "JPEG images"))
        img.data = _downscale_jpeg(data, name)
        img.format = "PNG"
        img.notes.append(f"{name}: {w:,}×{h:,} pixels; read at a reduced scale.")
    elif min(w, h) < max(8, model_size // 8):
        img.notes.append(f"{name}: only {w}×{h} pixels (the model looks at {model_size}×{model_size}); "
                         "the caption is a guess.")
    if fmt == "GIF":  # its frames together: giflib reads them all (the server's words); a large JPEG is downscaled
        with limits.errors_as(CaptionError):
            limits.check_frames(limits.APPS["caption"], "image", header.frames, header.frame_pixels, header.blocks,
                                where=name)
    orientation = exif_orientation(data) if fmt in ("JPEG", "WEBP", "PNG") else 1
    if orientation != 1:
        # The SavedModel decodes the pixels as stored (tf.io.decode_image ignores EXIF): a phone photo would be
        # read sideways. Here it is turned first, as a viewer shows it.
        img.data, img.width, img.height = _upright(data, name, DOWNSCALE_TO if w * h > MAX_PIXELS else max(w, h))
        img.format = "PNG"
        img.notes.append(f"{name}: turned upright as its EXIF orientation ({orientation}) says.")
    return img


def read_image_file(path: str, model_size: int = 64) -> ImageInput:
    """Read and check one image file (PNG, JPEG, GIF, BMP, WebP; see :func:`prepare_image`)."""
    if not os.path.exists(path):
        raise CaptionError(f"{path}: no such file.")
    if os.path.isdir(path):
        raise CaptionError(f"{path} is a directory; give image files.")
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise CaptionError(f"{path}: the file is {size / 2**20:.0f} MB; at most {MAX_FILE_BYTES // 2**20} MB is read.")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CaptionError(f"{path}: cannot read it ({e.strerror or e}).") from None
    return prepare_image(data, path, model_size)


def decode_images(data, size: int):
    """In-graph: encoded PNG/JPEG/GIF/BMP/WebP strings [B] -> float32 pixels 0..255 [B, size, size, 3].

    Any size is resized (area-weighted when shrinking) to size × size; grey and RGBA images become RGB; an
    animated GIF gives its first frame.
    """
    import tensorflow as tf

    def one(s):
        img = tf.io.decode_image(s, channels=3, expand_animations=False, dtype=tf.uint8)
        img.set_shape([None, None, 3])
        return tf.image.resize(tf.cast(img, tf.float32), [size, size], antialias=True)

    return tf.map_fn(one, data, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
