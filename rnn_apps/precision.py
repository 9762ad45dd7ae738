"""The precision of the matrix products in training steps: float32, or bfloat16 products where the CPU is faster.

A CPU with bfloat16 dot-product instructions (such as AVX512_BF16) multiplies bfloat16 matrices about twice as
fast as float32 ones through TensorFlow's oneDNN kernels (measured on an AMD EPYC: docs/cells.md); a CPU
without them emulates bfloat16 and may be slower. With ``bfloat16`` products, the layers that support it
(:class:`rnn_apps.layers.ProjectedRNN`, :class:`rnn_apps.layers.TiedLogits`, the translator's output head, the
captioners' attention decoder, :class:`rnn_apps.layers.Conv2D` in the captioners' encoders) round the
two operands of their large products to bfloat16 in training steps only,

    A B  ->  float32( bf16(A) bf16(B) ),

the products accumulating in float32 inside the kernel and their results rounded to bfloat16 once. Every
other operation stays float32: the weights and the optimizer's state, the LSTM's gates and cell state, the
softmax and the loss. It is the trade that TensorFloat-32 makes on GPUs (bfloat16 for training: Kalamkar et
al., 2019, "A Study of BFLOAT16 for Deep Learning Training"); inference, evaluation and exported models are
not affected, and the weights are the same variables, so a run may change precision when it resumes.

``auto`` (the training commands' default) times one product of each kind on the machine and takes
bfloat16 only where it measured faster by a clear margin (:func:`resolve`).
"""

from __future__ import annotations

import functools
import time

CHOICES = ("auto", "float32", "bfloat16")
PRODUCT_DTYPES = ("float32", "bfloat16")  # what a choice resolves to
# bfloat16 is taken only this much faster: the operands' casts cost a memory pass each, which a product that is
# barely faster does not repay
AUTO_MARGIN = 1.25


def check_choice(choice: str) -> str:
    """``choice`` when it is one of :data:`CHOICES`, else a ValueError that names them."""
    if choice not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}; received {choice!r}.")
    return choice


def product(a, b, dtype: str = "float32", transpose_a: bool = False, transpose_b: bool = False):
    """``a @ b`` (TensorFlow's ``matmul``, batched over leading axes) with both operands cast to ``dtype`` first
    (``float32``: the product as it is); the result in ``a``'s dtype. With ``bfloat16`` the products of its
    gradient take bfloat16 operands too."""
    import tensorflow as tf

    if dtype == "float32" or dtype is None:
        return tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    a = tf.convert_to_tensor(a)
    out = a.dtype
    if a.shape.rank > 2 and len(b.shape) == 2 and not transpose_a:
        # (..., k) @ (k, n) as one 2-D product: the batched kernel broadcasting b runs slower
        flat = product(tf.reshape(a, [-1, tf.shape(a)[-1]]), b, dtype, transpose_b=transpose_b)
        result = tf.reshape(flat, tf.concat([tf.shape(a)[:-1], tf.shape(flat)[-1:]], 0))
        result.set_shape(a.shape[:-1].concatenate(flat.shape[-1:]))  # the static shape that the reshape loses
        return result
    return tf.cast(tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype), transpose_a=transpose_a, transpose_b=transpose_b),
                   out)


@functools.lru_cache(maxsize=None)
def bfloat16_speedup(size: int = 768, repeats: int = 9) -> float:
    """How many times faster a (size x size) bfloat16 matrix product runs than a float32 one here: the fastest
    of ``repeats`` timings of each, taken in alternation so that both see the same load (a few tenths of a
    second). Measured once a process."""
    import tensorflow as tf

    runs = {}
    with tf.device("/CPU:0"):
        a = tf.random.stateless_normal((size, size), seed=(1, 2))
        for dtype in (tf.float32, tf.bfloat16):
            x = tf.cast(a, dtype)
            runs[dtype.name] = tf.function(lambda x=x: tf.matmul(tf.matmul(x, x), x))  # two products a call
            runs[dtype.name]()  # traced and warmed up outside the timings
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run().numpy()
            best[name] = min(best[name], time.perf_counter() - start)
    return best["float32"] / best["bfloat16"]


def resolve(choice: str) -> tuple:
    """``(dtype, why)``: the product precision that ``choice`` (one of :data:`CHOICES`) means on this machine,
    and a sentence saying why. ``auto`` measures (:func:`bfloat16_speedup`) and takes bfloat16 when it is at
    least :data:`AUTO_MARGIN` times as fast as float32, on CPUs: with a GPU, whose own kernels decide, it keeps
    float32."""
    check_choice(choice)
    if choice != "auto":
        return choice, f"{choice} matrix products (as asked)"
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "float32", "float32 matrix products (auto takes bfloat16 on CPUs only, and a GPU is visible)"
    speedup = bfloat16_speedup()
    if speedup >= AUTO_MARGIN:
        return "bfloat16", f"bfloat16 matrix products: measured {speedup:.2f}x as fast as float32 on this CPU"
    return "float32", f"float32 matrix products: bfloat16 measured {speedup:.2f}x as fast on this CPU"


def matmul(a, b, dtype: str = "float32", transpose_b: bool = False):
    """``a @ b`` (``a @ bᵀ`` with ``transpose_b``) as the layers write their products: ``keras.ops.matmul`` in
    float32, the graphs that inference runs, and :func:`product` in another ``dtype`` (training steps only)."""
    if dtype == "float32" or dtype is None:
        from keras import ops

        return ops.matmul(a, ops.transpose(b) if transpose_b else b)
    return product(a, b, dtype, transpose_b=transpose_b)


def training_products(layer, training) -> str:
    """The dtype of ``layer``'s large products in this call: its ``training_precision`` in training steps on
    TensorFlow (bfloat16 products are TensorFlow's kernels), float32 otherwise (inference, other backends)."""
    import keras

    if training and keras.backend.backend() == "tensorflow":
        return layer.training_precision
    return "float32"


def dense(layer, inputs, dtype: str = "float32"):
    """What the ``keras.layers.Dense`` ``layer`` computes, ``activation(inputs W + b)``, with the product in
    ``dtype`` (:func:`product`); ``float32`` calls the layer itself, so inference graphs stay the same."""
    if dtype == "float32" or dtype is None:
        return layer(inputs)
    from keras import ops

    if not layer.built:  # as its first call would build it
        layer.build(tuple(inputs.shape))
    x = product(inputs, layer.kernel, dtype)
    if layer.use_bias:
        x = ops.add(x, layer.bias)  # a BiasAdd, as Dense adds it
    return layer.activation(x)


def supporting_layers(model) -> list:
    """The layers of ``model`` (itself included) that can compute their products in bfloat16 in training steps:
    those with a ``training_precision`` attribute."""
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if hasattr(layer, "training_precision")]


def set_training_precision(model, dtype: str) -> int:
    """Make every layer of ``model`` that supports it (:func:`supporting_layers`) compute its large products in
    ``dtype`` (``"float32"`` or ``"bfloat16"``) in training steps; return how many layers do. Set it before the
    training step is first traced (before ``fit``): a traced step keeps the precision it was traced with."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16'; received {dtype!r}.")
    layers = supporting_layers(model)
    for layer in layers:
        layer.training_precision = dtype
    return len(layers)
