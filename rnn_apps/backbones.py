"""ImageNet backbones for the image apps: ``keras.applications`` models, with weights from a file.

``keras.applications.MobileNetV2(weights="imagenet")`` downloads its weights on first use. Where there is no
network, the same ImageNet training is often at hand as a TensorFlow Lite model (for example Coral's
``mobilenet_v2_1.0_224_quant.tflite``, Apache-2.0). :func:`mobilenet_v2_from_tflite` turns such a file into
``keras.applications.MobileNetV2(weights=None)`` layer for layer:

* every uint8 (or int8) tensor is dequantised, ``w = (q - zero_point) * scale`` (per tensor or per channel);
* TFLite folds each batch normalisation into the convolution before it, so a convolution arrives as a kernel
  and a bias. Keras's MobileNetV2 keeps its convolutions bias-free with a ``BatchNormalization`` after each;
  the bias goes there as ``beta``, with ``gamma = 1``, ``moving_mean = 0`` and ``moving_variance = 1 - ε``,
  so that ``(x - 0) / sqrt(1 - ε + ε) * 1 + beta = x + bias`` exactly;
* kernels change layout: a convolution's ``[out, h, w, in]`` becomes ``[h, w, in, out]``, a depthwise
  convolution's ``[1, h, w, in·m]`` becomes ``[h, w, in, m]``.

Both graphs are Sandler et al. (2018), "MobileNetV2: Inverted Residuals and Linear Bottlenecks"; the
convolutions come in the same order in both, which is how they are paired (and every shape is checked).
The float model differs from the quantised one only by the activations' rounding, which the quantised
model does and the float model does not: features agree closely and the ImageNet top-1 class agrees on
real photos (``tests/test_backbones.py`` compares against ``tf.lite.Interpreter``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

BACKBONES = {"mobilenet_v2": "MobileNetV2"}
_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


class BackboneError(ValueError):
    """A backbone that cannot be built as asked (unknown name, weights missing or not matching, no network)."""


@dataclass
class TFLiteConvolutions:
    """The convolutions of a TFLite model in execution order, dequantised, in Keras's kernel layout.

    Attributes:
        kinds: ``"conv"`` or ``"depthwise"`` for each convolution.
        kernels: float32 kernels, ``[h, w, in, out]`` (conv) or ``[h, w, in, multiplier]`` (depthwise).
        biases: float32 biases (the folded batch normalisations).
        input_scale, input_zero_point: How the model's uint8 input maps to real values
            (``x = (q - zero_point) * scale``), e.g. 1/128 and 128 for MobileNet's [-1, 1].
    """

    kinds: list = field(default_factory=list)
    kernels: list = field(default_factory=list)
    biases: list = field(default_factory=list)
    input_scale: float = 1.0
    input_zero_point: int = 0


def tflite_interpreter(path: str):
    """A TFLite interpreter without the default delegate, so every constant tensor stays readable."""
    import tensorflow as tf

    interpreter_cls = getattr(getattr(tf, "lite", None), "Interpreter", None)
    kwargs = {}
    if interpreter_cls is None:  # TensorFlow builds without tf.lite: the LiteRT package has the same class
        try:
            from ai_edge_litert.interpreter import Interpreter as interpreter_cls  # type: ignore
        except ImportError:
            raise BackboneError("Reading a .tflite file needs tf.lite or the ai-edge-litert package.") from None
    else:
        kwargs["experimental_op_resolver_type"] = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    import warnings

    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to LiteRT; it still works
        warnings.simplefilter("ignore")
        try:
            it = interpreter_cls(model_path=path, **kwargs)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BackboneError(f"{path} is not a TensorFlow Lite model TFLite can read: {str(e).strip()[:200]}") from None
    return it


def _dequantize(it, index: int) -> np.ndarray:
    detail = it.get_tensor_details()[index]
    q = it.get_tensor(index)
    params = detail["quantization_parameters"]
    scales, zeros = params["scales"], params["zero_points"]
    if q.dtype in (np.float32, np.float16):
        return q.astype(np.float32)
    if len(scales) == 0:
        raise BackboneError(f"Tensor {detail['name']!r} is {q.dtype} without quantisation parameters.")
    if len(scales) == 1:
        return (q.astype(np.float32) - float(zeros[0])) * float(scales[0])
    axis = params["quantized_dimension"]  # per-channel: one scale along this axis
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q.astype(np.float32) - zeros.reshape(shape).astype(np.float32)) * scales.reshape(shape).astype(np.float32)


def read_tflite_convolutions(path: str) -> TFLiteConvolutions:
    """Read every CONV_2D and DEPTHWISE_CONV_2D of a TFLite model, in execution order (see the module doc).

    Raises:
        BackboneError: the file is missing or is not a TFLite model.
    """
    if not os.path.isfile(path):
        raise BackboneError(f"Backbone weights file not found: {path}.")
    it = tflite_interpreter(path)
    quant = it.get_input_details()[0]["quantization"]
    out = TFLiteConvolutions(input_scale=float(quant[0] or 1.0), input_zero_point=int(quant[1]))
    for op in it._get_ops_details():  # noqa: SLF001 - the interpreter's only listing of the graph's ops
        if op["op_name"] not in _CONV_OPS:
            continue
        _, w_index, b_index = (int(i) for i in op["inputs"][:3])
        w = _dequantize(it, w_index)
        b = _dequantize(it, b_index) if b_index >= 0 else np.zeros(w.shape[0], np.float32)
        if op["op_name"] == "CONV_2D":  # [out, h, w, in] -> [h, w, in, out]
            out.kinds.append("conv")
            out.kernels.append(np.transpose(w, (1, 2, 3, 0)))
        else:  # [1, h, w, in * m] -> [h, w, in, m]; MobileNets use m = 1
            out.kinds.append("depthwise")
            out.kernels.append(w.reshape(w.shape[1], w.shape[2], w.shape[3], 1))
        out.biases.append(b.astype(np.float32))
    if not out.kernels:
        raise BackboneError(f"{path} holds no convolution to take weights from.")
    return out


def load_tflite_into(model, convs: TFLiteConvolutions, source: str = "the TFLite model") -> int:
    """Fill a Keras model's convolutions (and the batch normalisations after them) from ``convs``.

    Convolutions are paired in order; extra TFLite convolutions at the end (an ImageNet classifier the
    Keras model was built without) are left out. Returns the number of convolutions filled.

    Raises:
        BackboneError: the two models' convolutions do not match in number or shape.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    if len(convs.kernels) < len(layers):
        raise BackboneError(f"{source} has {len(convs.kernels)} convolutions; {model.name} needs {len(layers)}.")
    following = {}
    for prev, layer in zip(model.layers, model.layers[1:]):
        if isinstance(layer, keras.layers.BatchNormalization):
            following[id(prev)] = layer
    for i, layer in enumerate(layers):
        kernel, bias = convs.kernels[i], convs.biases[i]
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        want = tuple(layer.kernel.shape)
        if (convs.kinds[i] == "depthwise") != depthwise or tuple(kernel.shape) != want:
            raise BackboneError(f"Convolution {i} ({layer.name}) of {model.name} is {want}; {source} has "
                                f"{convs.kinds[i]} {tuple(kernel.shape)}: not the same architecture.")
        if layer.use_bias:
            layer.set_weights([kernel, bias])
            continue
        bn = following.get(id(layer))
        if bn is None:
            raise BackboneError(f"{layer.name} has no bias and no batch normalisation after it to take the bias.")
        layer.set_weights([kernel])
        params = {"gamma": np.ones_like(bias), "beta": bias, "moving_mean": np.zeros_like(bias),
                  "moving_variance": np.full_like(bias, 1.0 - bn.epsilon)}
        bn.set_weights([params[w.name] for w in bn.weights])
    return len(layers)


def mobilenet_v2_from_tflite(path: str, image_size: int = 224, include_top: bool = False):
    """``keras.applications.MobileNetV2(weights=None)`` with the weights of a TFLite MobileNetV2 (width 1.0).

    Args:
        path: A ``.tflite`` MobileNetV2 (float, or uint8/int8 quantised).
        image_size: Input side in pixels (the weights work at any size; ImageNet's is 224).
        include_top: Keep Keras's 1,000-class classifier (left random: TFLite's has 1,001 classes).

    Returns:
        The Keras model; inputs in MobileNet's [-1, 1] (``x / 127.5 - 1``), like Keras's own weights.
    """
    import keras

    convs = read_tflite_convolutions(path)
    model = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=include_top,
                                           weights=None)
    load_tflite_into(model, convs, path)
    return model


def check_backbone(name: str, weights: Optional[str]) -> None:
    """Raise :class:`BackboneError` unless ``name`` is known and ``weights`` names a way to get its weights."""
    if name not in BACKBONES:
        raise BackboneError(f"Unknown backbone {name!r}; expected one of {sorted(BACKBONES)}.")
    if weights is None:
        raise BackboneError(
            f"--backbone {name} needs --backbone-weights: a TFLite model of it (mobilenet_v2_1.0_224_quant.tflite), "
            "a Keras weights file without top (mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5), "
            "'imagenet' to download them (needs network), or 'none' to train it from random weights."
        )
    if weights not in ("imagenet", "none") and not os.path.isfile(weights):
        raise BackboneError(f"Backbone weights file not found: {weights}.")


def make_backbone(name: str, image_size: int, weights: Optional[str]):
    """A keras.applications backbone without its classifier, its weights loaded from a file.

    Args:
        name: ``"mobilenet_v2"``.
        image_size: Input side in pixels (at least 32).
        weights: A ``.tflite`` model of the same network (converted by :func:`mobilenet_v2_from_tflite`), a
            Keras weights file (``.h5`` / ``.weights.h5``) of the same architecture without top, ``"imagenet"``
            to let Keras download them (needs network), or ``"none"`` to start from random weights.

    Raises:
        BackboneError: unknown backbone, a missing or mismatched weights file, or a download that failed.
    """
    import keras

    check_backbone(name, weights)
    cls = getattr(keras.applications, BACKBONES[name])
    shape = (image_size, image_size, 3)
    if weights == "imagenet":
        try:
            return cls(input_shape=shape, include_top=False, weights="imagenet")
        except Exception as e:  # no network, a proxy, a refused download ...
            raise BackboneError(
                f"Could not download the ImageNet weights of {name} ({type(e).__name__}: {str(e).strip()[:200]}). "
                "Without network, pass --backbone-weights FILE with weights you already hold (a .tflite model "
                "of the same network works)."
            ) from None
    if weights.endswith(".tflite"):
        return mobilenet_v2_from_tflite(weights, image_size)
    model = cls(input_shape=shape, include_top=False, weights=None)
    if weights == "none":
        return model
    try:
        model.load_weights(weights)
    except Exception as e:
        raise BackboneError(f"Cannot load {weights} into {name} without top: {type(e).__name__}: {str(e)[:300]}") from None
    return model
