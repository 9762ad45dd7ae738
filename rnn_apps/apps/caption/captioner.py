"""Library API over an exported caption model: caption image files or bytes, and plot the attention.

The model decodes the images and searches the captions in its graph (see
:mod:`rnn_apps.apps.caption.export`); this module checks the images first (:mod:`.images`), batches them,
and turns the model's errors into :class:`CaptionError` messages that name the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from rnn_apps import limits
from rnn_apps.apps.caption.export import load_config
from rnn_apps.apps.caption.images import (CaptionError, ImageInput, check_decodable, prepare_image, read_image_file,
                                         undecodable)
from rnn_apps.apps.caption import scenes
from rnn_apps.apps.base import Predictor, check_batch_size, text_list



@dataclass
class Caption:
    name: str
    caption: str
    log_probability: Optional[float] = None
    novelty: Optional[float] = None  # how unlike the model's training photos the image is (rnn_apps.apps.caption.novelty)
    words: list = field(default_factory=list)
    attention: Optional[np.ndarray] = None  # [words, H, W]
    notes: list = field(default_factory=list)

    def to_dict(self, with_attention: bool = False) -> dict:
        d = {"image": self.name, "caption": self.caption}
        if self.log_probability is not None:
            d["log_probability"] = round(float(self.log_probability), 4)
        if self.novelty is not None:
            d["novelty"] = round(float(self.novelty), 4)
        if with_attention and self.attention is not None:
            d["words"] = self.words
            # rounded as float64: a float32 0.0067 prints as 0.006699999794363976 in JSON
            d["attention"] = np.round(np.asarray(self.attention, np.float64), 4).tolist()
        if self.notes:
            d["notes"] = self.notes
        return d


class ImageCaptioner(Predictor):
    """Caption images with an exported caption model.

    The SavedModel is loaded on first use, so that bad inputs are refused before the model is read.

    Args:
        model_dir: A version directory or ``models/caption`` (newest version); default: the shipped model.
    """

    app = "caption"
    lazy = True

    def __init__(self, model_dir: Optional[str] = None):
        import tensorflow as tf

        super().__init__(model_dir)
        self.image_size = int(self.config["image_size"])
        self.grid = tuple(self.meta["grid"])
        # The beam width the model was measured best with (older exports: greedy).
        self.default_beam = int(self.meta.get("decoding", {}).get("default_beam", 1))
        # Above it an image is unlike every validation photo of the model (None: a model exported without
        # novelty prototypes).
        self.novelty_threshold = (self.meta.get("novelty") or {}).get("threshold")
        self._tf = tf

    @classmethod
    def read_meta(cls, model_dir: str) -> dict:
        return load_config(model_dir)

    def _call(self, images: Sequence[ImageInput], beam: int, attention: bool) -> list[Caption]:
        tf = self._tf
        sig = self.signatures["attention" if attention else "caption"]
        data = tf.constant([im.data for im in images], tf.string)
        out = sig(image=data, beam_size=tf.fill([len(images)], int(beam)))
        caps = [c.decode("utf-8") for c in out["caption"].numpy()]
        results = []
        for i, im in enumerate(images):
            r = Caption(im.name, caps[i], notes=list(im.notes))
            if not caps[i]:  # say so, rather than print an empty line as if it were an answer
                r.notes.append(f"{im.name}: the model ended the caption before its first word (no caption); "
                               "a wider --beam or another model may find one.")
            if self.meta.get("synthetic") and scenes.parse_caption(caps[i]) is None:
                # A model of the synthetic scenes can only describe scenes; an image unlike them (a photo,
                # a blank or tiny image) can make it stumble. Say so rather than pass it off as an answer.
                r.notes.append(f"{im.name}: the caption does not read as a description of shapes; the image is "
                               "probably unlike the synthetic scenes this model was trained on.")
            if "novelty" in out:
                r.novelty = float(out["novelty"].numpy()[i])
                if self.novelty_threshold is not None and r.novelty > self.novelty_threshold:
                    # The model describes any image as the nearest thing it knows; say when that is far.
                    r.notes.append(f"{im.name}: the image is unlike the photos this model was trained on (novelty "
                                   f"{r.novelty:.2f}; its validation photos score up to {self.novelty_threshold:.2f}); "
                                   "the caption is probably wrong.")
            if attention:
                n = int(out["length"].numpy()[i])
                r.words = [w.decode("utf-8") for w in out["words"].numpy()[i][:n]]
                r.attention = out["attention"].numpy()[i][:n]
            else:
                r.log_probability = float(out["log_probability"].numpy()[i])
            results.append(r)
        return results

    def caption_images(self, images: Sequence[ImageInput], beam: Optional[int] = None, attention: bool = False,
                       batch_size: int = 32, decodable: bool = False) -> list[Caption]:
        """Caption checked images (:func:`~rnn_apps.apps.caption.images.prepare_image`) in batches.

        Args:
            beam: Beam width, 1 (greedy) to 16; None: the model's default (:attr:`default_beam`).
            decodable: The images have passed :func:`~rnn_apps.apps.caption.images.check_decodable` (the
                command checks each file as it reads it), so they are not decoded once more before captioning.

        Raises:
            CaptionError: a bad beam size, or image data the model cannot decode (the file is named).
        """
        beam = self.default_beam if beam is None else beam
        with limits.errors_as(CaptionError):  # the server's check and words
            beam = limits.as_integer(beam, "beam")  # NumPy's integers too
            limits.check_number(limits.APPS["caption"], "beam_size", beam, where="beam")
        check_batch_size(batch_size, CaptionError)
        tf = self._tf
        # Every image decoded first: a truncated file (its header is whole) is named before any captioning,
        # rather than after the batches before it were captioned and thrown away.
        if not decodable:
            for im in images:
                check_decodable(im.data, im.name)
        results = []
        step = min(batch_size, limits.APPS["caption"].max_batch)  # the model refuses larger batches
        for i in range(0, len(images), step):
            chunk = list(images[i : i + step])
            try:
                results.extend(self._call(chunk, beam, attention))
            except tf.errors.InvalidArgumentError:
                for im in chunk:  # find the culprit (an image the check above let through)
                    try:
                        results.extend(self._call([im], beam, attention))
                    except tf.errors.InvalidArgumentError as e:
                        raise undecodable(im.name, e) from None
        return results

    def caption_files(self, paths: Sequence[str], beam: Optional[int] = None, attention: bool = False,
                      batch_size: int = 32) -> list[Caption]:
        """Read, check and caption image files (PNG, JPEG, GIF, BMP, WebP)."""
        paths = text_list(paths, "paths must be a list of image paths, not one path.")
        images = [read_image_file(p, self.image_size) for p in paths]
        return self.caption_images(images, beam, attention, batch_size)

    def caption_bytes(self, data: Sequence[bytes], beam: Optional[int] = None, attention: bool = False,
                      batch_size: int = 32) -> list[Caption]:
        """Check and caption images given as their files' bytes (``bytes``, ``bytearray`` or ``memoryview``)."""
        data = text_list(data, "data must be a list of images' bytes, not one image's.")
        images = []
        for i, d in enumerate(data):
            if not isinstance(d, (bytes, bytearray, memoryview)):
                raise CaptionError(f"image {i + 1} is a {type(d).__name__}; give the bytes of an image file.")
            images.append(prepare_image(bytes(d), f"image {i + 1}", self.image_size))
        return self.caption_images(images, beam, attention, batch_size)

    def caption_pixels(self, pixels: np.ndarray, beam: int = 1) -> list[str]:
        """Captions of decoded images, ``pixels`` [B, H, W, 3] RGB values from 0 to 255 (uint8, or whole numbers
        of another numeric type), without the file checks and notes of :meth:`caption_images` (for evaluation).

        Raises:
            CaptionError: not a [B, H, W, 3] array of numbers from 0 to 255, an image over the server's
                megapixels, or a bad beam.
        """
        tf = self._tf
        lim = limits.APPS["caption"]
        with limits.errors_as(CaptionError):  # the server's check and words
            beam = limits.as_integer(beam, "beam")
            limits.check_number(lim, "beam_size", beam, where="beam")
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or pixels.shape[-1] != 3:
            one = " (one image: pixels[None])" if pixels.ndim == 3 and pixels.shape[-1] == 3 else ""
            raise CaptionError(f"pixels must be RGB images [batch, height, width, 3]; received shape "
                               f"{list(pixels.shape)}{one}.")
        if pixels.dtype.kind not in "uif":
            raise CaptionError(f"pixels must be numbers from 0 to 255; received {pixels.dtype} values.")
        if not pixels.size:
            return []
        with limits.errors_as(CaptionError):
            limits.check_megapixels(lim, "pixels", pixels.shape[2], pixels.shape[1])
        # A cast to uint8 would wrap 256 to 0 and NaN to 0: such values are refused rather than captioned.
        if pixels.dtype != np.uint8:
            wrong = pixels[~np.isfinite(pixels)] if pixels.dtype.kind == "f" else pixels[:0]
            if wrong.size:
                raise CaptionError(f"pixels must be whole numbers from 0 to 255; received {wrong[0].item()}.")
            lo, hi = pixels.min().item(), pixels.max().item()
            if not (0 <= lo and hi <= 255):
                raise CaptionError(f"pixels must be whole numbers from 0 to 255; received values from {lo} to {hi}.")
            fraction = pixels[pixels != np.round(pixels)]
            if fraction.size:
                raise CaptionError(f"pixels must be whole numbers from 0 to 255; received {fraction[0].item()}.")
        step = lim.max_batch  # the model refuses larger batches
        captions = []
        for i in range(0, len(pixels), step):
            chunk = pixels[i : i + step]
            out = self.signatures["caption_pixels"](pixels=tf.constant(chunk, tf.uint8),
                                                    beam_size=tf.fill([len(chunk)], beam))
            captions += [c.decode("utf-8") for c in out["caption"].numpy()]
        return captions


def _display_pixels(data: bytes, size: int = 256) -> np.ndarray:
    """RGB pixels of an image for display, at most ``size`` px on its longer side."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (size, size))
        im = im.convert("RGB")
        scale = size / max(im.size)
        im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.NEAREST
                       if max(im.size) < size else Image.BILINEAR)
        return np.asarray(im)


def plot_attention(image_data: bytes, result: Caption, out_path: str, columns: int = 5) -> str:
    """Save a grid of overlays: the image, then for each word the image with its attention weights.

    The weights over the model's H×W feature grid are stretched over the whole image (bilinear), the
    brightest where the model looked when it chose the word.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if result.attention is None:
        raise CaptionError("No attention weights to plot (caption with attention=True).")
    pixels = _display_pixels(image_data)
    h, w = pixels.shape[:2]
    panels = 1 + len(result.words)
    cols = min(columns, panels)
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0][0].imshow(pixels)
    axes[0][0].set_title("image", fontsize=9)
    for i, word in enumerate(result.words, 1):
        ax = axes[i // cols][i % cols]
        ax.imshow(pixels)
        a = result.attention[i - 1]
        a = a / max(float(a.max()), 1e-9)
        ax.imshow(a, cmap="magma", alpha=0.6, extent=(0, w, h, 0), interpolation="bilinear", vmin=0, vmax=1)
        ax.set_title(word, fontsize=10)
    fig.suptitle(result.caption, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return out_path
