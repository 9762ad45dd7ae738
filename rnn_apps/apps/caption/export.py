"""The captioner's SavedModel: encoded image bytes in, captions out, decoding and the search in the graph.

Signatures (batch-first; loadable with plain ``tf.saved_model.load`` in a process that never imports
rnn_apps):

* ``serving_default``: ``{"image": string[B]}`` (encoded PNG, JPEG, GIF, BMP or WebP bytes, any size) ->
  ``{"caption": string[B]}``, with the model's default decoding (``default_beam`` of its config: 1 is greedy).
* ``caption``: ``{"image": string[B], "beam_size": int32[B]}`` -> ``{"caption": string[B],
  "log_probability": float32[B], "length": int32[B]}``, and ``"novelty": float32[B]`` for a model exported
  with novelty prototypes (:mod:`rnn_apps.apps.caption.novelty`: how unlike its training photos each image
  is; above ``novelty.threshold`` of its config the image counts as unfamiliar). The batch's largest beam
  size is used for every row (1: greedy); the best beam by total log-probability is returned.
* ``attention``: same inputs -> ``{"caption", "length", "words": string[B, T], "attention": float32[B, T, H, W]}``
  (and ``novelty``):
  the weights over the H×W feature grid with which each word was chosen (``words[b, t]`` is "" past the
  caption's end). A model without attention (the first-step injection variant) returns uniform weights.
* ``caption_pixels``: ``{"pixels": uint8[B, height, width, 3], "beam_size": int32[B]}`` -> as ``caption``
  (decoded images, for evaluation and benchmarks), ``novelty`` included.

Images are decoded with ``tf.io.decode_image`` (first frame of an animation, grey and RGBA to RGB) and
resized to the model's input size in the graph; bytes that are not an image fail with TensorFlow's
InvalidArgumentError (the ``rnn-apps caption`` command checks files before they reach the model).

Every signature refuses, with ``InvalidArgumentError`` and the command's words, what the command refuses
(:mod:`rnn_apps.graph_limits`): more than 16 images, a beam outside 1 to 16, an image above 25 megapixels
(the size in a PNG, GIF, BMP or JPEG header, read before the image is decoded; the height and width of
``pixels``).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from rnn_apps import export as shared_export
from rnn_apps import graph_limits, limits
from rnn_apps import samplers
from rnn_apps.apps.base import assign_weights, read_export, read_meta, save_module
from rnn_apps.apps.caption import data as cdata
from rnn_apps.apps.caption.images import decode_images
from rnn_apps.vocab import SPECIALS, Vocabulary

CONFIG_NAME = "caption.json"
# The widest beam the command line, the server (rnn_apps.limits) and the graph accept.
MAX_BEAM = int(limits.APPS["caption"].ranges["beam_size"].hi)
FORMAT = "rnn_apps.caption/1"
LIMITS = limits.APPS["caption"]  # checked in the graph too (rnn_apps.graph_limits), as the command checks them
NEG = -1e9


class CaptionModule(tf.Module):
    """The encoder and decoder weights and the in-graph decoding loops."""

    def __init__(self, model, vocab: Vocabulary, config: dict, weights_dtype: str = "float32",
                 prototypes: Optional[np.ndarray] = None):
        super().__init__(name="caption_model")
        # The weights as stored (float16 halves the SavedModel); the graph computes in float32 on them.
        self._stored = shared_export.StoredWeights(model, weights_dtype)
        self.model_weights = self._stored.variables  # in model.weights order, for fine-tuning
        self.weights_dtype = weights_dtype
        tokens = list(vocab.tokens)
        self.vocab_size = len(tokens)
        self._words = tf.constant(["" if i < len(SPECIALS) else t for i, t in enumerate(tokens)])
        mask = np.zeros(len(tokens), np.float32)
        mask[[Vocabulary.pad_id, Vocabulary.unk_id, Vocabulary.bos_id]] = NEG
        self._mask = tf.constant(mask)
        self.size = int(config["image_size"])
        self.max_len = int(config["max_len"])
        self.default_beam = int(config.get("default_beam") or 1)
        self.grid = tuple(int(g) for g in model.grid)
        self.locations = self.grid[0] * self.grid[1]
        # Unit rows [K, C] of the training photos' mean backbone features (rnn_apps.apps.caption.novelty),
        # a variable so that the SavedModel stores them once rather than in every signature's graph.
        self.prototypes = None
        if prototypes is not None:
            if model.encoder.backbone is None:
                raise ValueError("Novelty prototypes need a captioner with a backbone (e.g. MobileNetV2).")
            self.prototypes = tf.Variable(np.asarray(prototypes, np.float32), trainable=False, name="prototypes")

    @property
    def encoder(self):
        return self._stored.model.encoder

    @property
    def decoder(self):
        return self._stored.model.decoder

    # ------------------------------------------------------------------------------------ pieces
    def _features(self, pixels):
        """Annotation vectors [B, L, D] and, with prototypes, each image's novelty [B] (else None)."""
        if self.prototypes is None:
            return self.encoder(pixels, training=False), None
        # The encoder's own layers in its order (preprocess -> backbone -> head), with the backbone's grid
        # kept for the novelty: 1 - max_k cos(mean grid, p_k).
        enc = self.encoder
        grid = enc.backbone(enc.get_layer("preprocess")(pixels), training=False)
        mean = tf.math.l2_normalize(tf.reduce_mean(grid, axis=[1, 2]), axis=-1)
        novelty = 1.0 - tf.reduce_max(tf.matmul(mean, self.prototypes, transpose_b=True), axis=-1)
        return enc.head(grid, training=False), novelty

    def _text(self, ids):
        keep = (ids >= 4) & (tf.cumsum(tf.cast(ids == Vocabulary.eos_id, tf.int32), axis=1) == 0)
        words = tf.where(keep, tf.gather(self._words, ids), "")
        caption = tf.strings.reduce_join(tf.ragged.boolean_mask(words, keep), axis=1, separator=" ")
        return caption, words, tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)

    def _greedy(self, features):
        dec = self.decoder
        batch = tf.shape(features)[0]
        memory, states = dec.start(features)
        eos = Vocabulary.eos_id

        def body(t, prev, states, ids, alphas, logp, done):
            logits, states, alpha = dec.step(prev, states, memory)
            logits = logits + self._mask
            nxt = samplers.greedy(logits)
            nxt = tf.where(done, Vocabulary.pad_id, nxt)
            lp = tf.gather(tf.nn.log_softmax(logits), nxt, batch_dims=1)
            logp = logp + tf.where(done, 0.0, lp)
            ids = ids.write(t, nxt)
            alphas = alphas.write(t, tf.reshape(alpha, [batch, self.locations]))
            done = done | (nxt == eos)
            return t + 1, nxt, states, ids, alphas, logp, done

        def cond(t, prev, states, ids, alphas, logp, done):
            # at least one step, so that an empty batch still stacks a (0, 1) result
            return (t == 0) | ((t < self.max_len) & ~tf.reduce_all(done))

        start = (tf.constant(0), tf.fill([batch], Vocabulary.bos_id), states,
                 tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
                 tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None, self.locations]),
                 tf.zeros([batch]), tf.zeros([batch], tf.bool))
        _, _, _, ids, alphas, logp, _ = tf.while_loop(cond, body, start, maximum_iterations=self.max_len)
        ids = tf.transpose(ids.stack())  # [B, t]
        alphas = tf.transpose(alphas.stack(), [1, 0, 2])  # [B, t, L]
        return ids, alphas, logp

    def _beam(self, features, beam_size):
        dec = self.decoder
        k = beam_size
        batch = tf.shape(features)[0]
        memory, states = dec.start(tf.repeat(features, k, axis=0))
        rows, L = batch * k, self.locations

        def step(t, prev, states, finished):
            logits, states, alpha = dec.step(prev, states, memory)
            return tf.nn.log_softmax(logits + self._mask), list(states), tf.reshape(alpha, [rows, L])

        t, seqs, alphas, scores, lengths = samplers.beam_search(
            step, states, batch, k, self.max_len, L, Vocabulary.bos_id, Vocabulary.eos_id, Vocabulary.pad_id)
        # By total log-probability: GNMT's length normalisation scored no better on the photo captioner
        # (docs/caption.md).
        best = samplers.best_beams(scores, lengths, k)
        return tf.gather(seqs, best)[:, :t], tf.gather(alphas, best)[:, :t], tf.gather(scores, best)

    def _search(self, pixels, beam_size):
        features, novelty = self._features(pixels)
        if novelty is None:
            novelty = tf.zeros([tf.shape(pixels)[0]])
        # The signatures refuse a beam outside 1 to MAX_BEAM (rnn_apps.graph_limits); the clamp bounds the
        # search's memory (it grows with the beam) whatever calls it.
        k = tf.clip_by_value(tf.reduce_max(tf.concat([beam_size, [1]], 0)), 1, MAX_BEAM)
        return (*tf.cond(k > 1, lambda: self._beam(features, k), lambda: self._greedy(features)), novelty)

    def _empty(self):
        return tf.zeros([0, 0], tf.int32), tf.zeros([0, 0, self.locations]), tf.zeros([0]), tf.zeros([0])

    def _run(self, pixels, beam_size):
        # An empty batch is answered without running the network (some CPU kernels reject empty inputs).
        ids, alphas, logp, novelty = tf.cond(tf.shape(pixels)[0] > 0, lambda: self._search(pixels, beam_size),
                                             self._empty)
        caption, words, length = self._text(ids)
        return {"caption": caption, "log_probability": logp, "length": length, "words": words, "novelty": novelty,
                "attention": tf.reshape(alphas, [tf.shape(ids)[0], tf.shape(ids)[1], self.grid[0], self.grid[1]])}

    def _outputs(self, out: dict, keys: tuple) -> dict:
        """``out`` limited to ``keys``, and ``novelty`` when the model has prototypes."""
        return {k: out[k] for k in keys + (("novelty",) if self.prototypes is not None else ())}

    def _decode(self, image):
        return decode_images(image, self.size)

    # ------------------------------------------------------------------------------------ signatures
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
    def serving_default(self, image):
        image = graph_limits.checked(LIMITS, image=image)["image"]
        with self._stored.scope():
            beam = tf.fill(tf.shape(image), self.default_beam)
            return {"caption": self._run(self._decode(image), beam)["caption"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image"),
                                  tf.TensorSpec([None], tf.int32, name="beam_size")])
    def caption(self, image, beam_size):
        image, beam_size = graph_limits.checked(LIMITS, image=image, beam_size=beam_size).values()
        with self._stored.scope():
            return self._outputs(self._run(self._decode(image), beam_size), ("caption", "log_probability", "length"))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image"),
                                  tf.TensorSpec([None], tf.int32, name="beam_size")])
    def attention(self, image, beam_size):
        image, beam_size = graph_limits.checked(LIMITS, image=image, beam_size=beam_size).values()
        with self._stored.scope():
            return self._outputs(self._run(self._decode(image), beam_size), ("caption", "length", "words", "attention"))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels"),
                                  tf.TensorSpec([None], tf.int32, name="beam_size")])
    def caption_pixels(self, pixels, beam_size):
        pixels, beam_size = graph_limits.checked(LIMITS, pixels=pixels, beam_size=beam_size).values()
        with self._stored.scope():
            resized = tf.image.resize(tf.cast(pixels, tf.float32), [self.size, self.size], antialias=True)
            return self._outputs(self._run(resized, beam_size), ("caption", "log_probability", "length"))


def export_caption(model, vocab: Vocabulary, config: dict, app_dir: str, version: Optional[int] = None,
                   extra: Optional[dict] = None, weights_dtype: str = "float32", novelty: Optional[dict] = None) -> str:
    """Export a trained captioner to ``app_dir/<version>`` atomically; return the version directory.

    ``weights_dtype``: how the weights are stored, ``"float32"`` or ``"float16"`` (half the size; the graph
    computes in float32). ``novelty``: what :func:`rnn_apps.apps.caption.novelty.calibrate` returned (the
    signatures then give each image's novelty; the config keeps the threshold and how it was set).
    """
    module = CaptionModule(model, vocab, config, weights_dtype, None if novelty is None else novelty["prototypes"])
    signatures = {
        "serving_default": module.serving_default,
        "caption": module.caption,
        "attention": module.attention,
        "caption_pixels": module.caption_pixels,
    }

    meta = {"format": FORMAT, "config": config, "vocab": vocab.to_json(), "grid": list(module.grid),
            "decoding": {"default_beam": module.default_beam, "max_beam": MAX_BEAM},
            "weights_dtype": module.weights_dtype, **(extra or {})}
    if novelty is not None:
        meta["novelty"] = {k: v for k, v in novelty.items() if k != "prototypes"}
        meta["novelty"]["prototypes"] = int(len(novelty["prototypes"]))
    return save_module(module, signatures, app_dir, version, CONFIG_NAME, meta)


def export_run(model, vocab: Vocabulary, cfg: dict, synthetic: bool, app_dir: str, version: Optional[int] = None,
               run: Optional[dict] = None, default_beam: Optional[int] = None, weights_dtype: str = "float32",
               novelty: Optional[dict] = None) -> str:
    """Export a trained captioner with what its users need to know (scene settings for synthetic models).

    ``default_beam`` (1 to 16) replaces the run's setting: the beam of ``serving_default`` and of
    ``rnn-apps caption`` without ``--beam``. ``novelty``: see :func:`export_caption`.
    """
    # The weights file is inside the export; its name says where they came from, its path on this machine nothing.
    weights = cfg.get("backbone_weights")
    cfg = {**cfg, "backbone_weights": os.path.basename(weights) if isinstance(weights, str) else weights}
    if default_beam is not None:
        cfg["default_beam"] = cdata.check_default_beam(default_beam)
    extra = {"synthetic": bool(synthetic), "scene_settings": cdata.scene_settings(cfg) if synthetic else None}
    if run:
        extra["training"] = run
    return export_caption(model, vocab, cfg, app_dir, version, extra, weights_dtype, novelty)


def export_result(result, app_dir: str, version: Optional[int] = None, **kwargs) -> str:
    """Export what :func:`rnn_apps.apps.caption.task.train` returned (``kwargs``: ``run``, ``default_beam``
    of :func:`export_run`)."""
    return export_run(result["model"], result["vocab"], result["config"], result["synthetic"], app_dir, version,
                      **kwargs)


def load_config(model_dir: str) -> dict:
    """The settings, vocabulary and decoding of an exported caption model (``assets.extra/caption.json``)."""
    return read_meta(model_dir, CONFIG_NAME, "caption", FORMAT)


def load_weights_from_export(model_dir: str) -> dict:
    """The config, vocabulary and weights (in ``model.weights`` order) of an exported captioner (to fine-tune it),
    and its novelty prototypes (``"prototypes"``: float32 [K, C], or None for a model without them)."""
    model_dir, meta, loaded, weights = read_export(model_dir, load_config)
    prototypes = getattr(loaded, "prototypes", None)
    return {"config": meta["config"], "vocab": Vocabulary.from_json(meta["vocab"], model_dir), "weights": weights,
            "model_dir": model_dir, "meta": meta, "prototypes": None if prototypes is None else prototypes.numpy()}


def export_again(from_model: str, app_dir: str, version: Optional[int] = None, data: Optional[str] = None,
                 verbose: int = 1) -> str:
    """Export the weights of the exported model ``from_model`` again, with this version's graph (e.g. to gain
    the input limits checked in the graph), to ``app_dir/<version>``; its settings and figures are kept.
    Returns the version directory.

    Args:
        data: The caption set the model was trained on: its photos give the novelty prototypes and
            threshold (:func:`rnn_apps.apps.caption.novelty.from_caption_set`). Without it, those of
            ``from_model`` are kept (if it has them).
    """
    from rnn_apps.apps.caption import novelty as nov
    from rnn_apps.apps.caption.model import build_caption_model

    base = load_weights_from_export(from_model)
    cfg, vocab, meta = base["config"], base["vocab"], base["meta"]
    # The backbone's weights come with the others: its file is not read.
    model = build_caption_model(len(vocab), {**cfg, "backbone_weights": "none" if cfg.get("backbone") else None},
                                cfg["max_len"])
    assign_weights(model.weights, base["weights"], base["model_dir"])
    novelty = None
    if data is not None:
        novelty = nov.from_caption_set(model, cfg, data, verbose=verbose)
    elif meta.get("novelty") and base["prototypes"] is not None:
        novelty = {**meta["novelty"], "prototypes": base["prototypes"]}
    written = ("format", "config", "vocab", "grid", "decoding", "weights_dtype", "novelty")  # export_caption writes these
    extra = {k: v for k, v in meta.items() if k not in written}
    return export_caption(model, vocab, cfg, app_dir, version, extra, meta.get("weights_dtype", "float32"), novelty)
