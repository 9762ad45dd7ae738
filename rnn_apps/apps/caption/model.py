"""The captioner: a CNN encoder (small, from scratch; or a keras.applications backbone) and a recurrent
decoder from rnn_apps.cells, either with soft visual attention over the feature grid (Show, Attend and
Tell) or with the image injected at the first step only (Show and Tell, the notes' 1-to-N RNN).

Both decoders expose the same one-step interface, used by training (unrolled over the caption) and by the
exported model's in-graph greedy and beam-search loops::

    memory, states = decoder.start(features)            # features (batch, L, D)
    logits, states, alpha = decoder.step(ids, states, memory)
"""

from __future__ import annotations

from typing import Optional

import keras
from keras import ops

from rnn_apps import precision
from rnn_apps.backbones import make_backbone
from rnn_apps.cells import get_cell
from rnn_apps.checks import check_rate, check_units
from rnn_apps.layers.convolution import Conv2D
from rnn_apps.layers.normalization import BatchNormalization
from rnn_apps.layers.visual_attention import VisualAttention

VARIANTS = ("attention", "inject")
OUTPUTS = ("direct", "tied")


@keras.saving.register_keras_serializable(package="rnn_apps")
class CoordinateChannels(keras.layers.Layer):
    r"""Append two channels holding each cell's x and y coordinate in [-1, 1] (CoordConv, Liu et al., 2018).

    For an input (batch, H, W, C) the output is (batch, H, W, C + 2) with
    ``out[b, i, j] = [x[b, i, j], 2j/(W-1) - 1, 2i/(H-1) - 1]``, so that later layers (and the attention's
    context vectors) know where a feature is: the captions name left, right, above and below.
    """

    def call(self, x):
        shape = ops.shape(x)
        h, w = shape[1], shape[2]
        ys = ops.linspace(-1.0, 1.0, h) if x.shape[1] != 1 else ops.zeros((1,))
        xs = ops.linspace(-1.0, 1.0, w) if x.shape[2] != 1 else ops.zeros((1,))
        gy = ops.broadcast_to(ops.reshape(ys, (1, -1, 1, 1)), (shape[0], h, w, 1))
        gx = ops.broadcast_to(ops.reshape(xs, (1, 1, -1, 1)), (shape[0], h, w, 1))
        return ops.concatenate([x, ops.cast(gx, x.dtype), ops.cast(gy, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)


def build_encoder(
    image_size: int = 64,
    filters=(32, 64, 96, 128),
    feature_dim: int = 128,
    backbone: Optional[str] = None,
    backbone_weights: Optional[str] = None,
    backbone_trainable: bool = False,
    name: str = "encoder",
) -> keras.Model:
    """Images (batch, S, S, 3), float32 pixel values 0..255 -> annotation vectors (batch, L, feature_dim).

    Small CNN (default): coordinate channels, then per entry of ``filters`` a 3×3 convolution with batch
    normalisation and ReLU, a 2×2 max-pooling after all but the last: a 64 px image gives an 8×8 grid.
    With a backbone its last feature map is used (e.g. MobileNetV2 at 224 px: 7×7); the model then has
    ``backbone`` and ``head`` attributes (the head maps the backbone's grid to annotations). Either way
    coordinate channels are appended and a 1×1 convolution projects each cell to ``feature_dim``.
    """
    check_units(image_size, "image_size")
    check_units(feature_dim, "feature_dim")
    images = keras.Input((image_size, image_size, 3), name="image")
    if backbone:
        # backbone -> head as two nested models, so that training with a frozen backbone can run the head
        # on cached feature grids (see FeatureCaptionModel) and still export the whole encoder.
        base = make_backbone(backbone, image_size, backbone_weights)
        base.trainable = bool(backbone_trainable)
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(images)  # MobileNet's [-1, 1]
        grid = base(x, training=False if not backbone_trainable else None)
        head = _encoder_head(tuple(int(d) for d in grid.shape[1:]), feature_dim)
        model = keras.Model(images, head(grid), name=name)
        model.backbone, model.head = base, head
        model.grid = head.grid
        return model
    x = keras.layers.Rescaling(1 / 255.0, name="preprocess")(images)
    x = CoordinateChannels(name="coords_in")(x)
    for i, f in enumerate(filters):
        # rnn_apps.layers' Conv2D and BatchNormalization: Keras's layers with faster training steps
        x = Conv2D(int(f), 3, padding="same", use_bias=False, name=f"conv_{i + 1}")(x)
        x = BatchNormalization(name=f"bn_{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu_{i + 1}")(x)
        if i < len(filters) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{i + 1}")(x)
    out, grid = _annotations(x, feature_dim)
    model = keras.Model(images, out, name=name)
    model.backbone, model.head = None, None
    model.grid = grid
    return model


def _annotations(x, feature_dim: int):
    """Coordinate channels and a 1×1 projection of each cell: (batch, h, w, c) -> ((batch, h·w, feature_dim), (h, w))."""
    x = CoordinateChannels(name="coords_out")(x)
    x = Conv2D(feature_dim, 1, activation="relu", name="project")(x)
    h, w = int(x.shape[1]), int(x.shape[2])
    return keras.layers.Reshape((h * w, feature_dim), name="annotations")(x), (h, w)


def _encoder_head(grid_shape, feature_dim: int) -> keras.Model:
    """The trainable top of a backbone encoder: a feature grid (batch, h, w, c) -> annotation vectors."""
    grid = keras.Input(grid_shape, name="grid")
    out, hw = _annotations(grid, feature_dim)
    head = keras.Model(grid, out, name="head")
    head.grid = hw
    return head


def _states_list(cell, states):
    return list(states) if isinstance(states, (list, tuple)) else [states]


def _state_sizes(cell):
    return list(cell.state_size) if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]


@keras.saving.register_keras_serializable(package="rnn_apps")
class AttentionDecoder(keras.layers.Layer):
    r"""Recurrent decoder with soft visual attention (Xu et al., 2015, "Show, Attend and Tell").

    With annotation vectors a_1..a_L, word embedding E and a cell from ``rnn_apps.cells``::

        h_0, c_0 = tanh(mean_i(a_i) W_init + b_init)            (one dense layer per state)
        z_t, α_t = VisualAttention(a, h_{t-1})                   context and weights over the grid
        h_t, c_t = cell([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))
        p(y_t | y_<t, a) = softmax([h_t; z_t] W_o + b_o)                       output="direct"
        p(y_t | y_<t, a) = softmax(([h_t; z_t] W_p + b_p) Eᵀ + b_o)            output="tied"

    ``output="tied"`` is the deep output layer of Show, Attend and Tell with its word matrix tied to the
    embedding E (Press & Wolf, 2017, "Using the Output Embedding to Improve Language Models"): the
    output costs (units + D)·embedding_dim weights instead of (units + D)·vocab_size, which for a
    vocabulary of thousands of words is most of the decoder.

    Args:
        vocab_size, embedding_dim, units: Sizes (units: the cell's).
        cell: A name from ``rnn_apps.cells.CELLS``.
        attention_units: Hidden size of the attention scores.
        gate: Use the attention gate β_t.
        dropout: Dropout before the output layer in training.
        output: ``"direct"`` (a dense layer to the vocabulary) or ``"tied"`` (see above).

    In training, ``training_precision = "bfloat16"`` (set by :func:`rnn_apps.precision.set_training_precision`)
    rounds the operands of the cell's products (with an LSTM or GRU cell) and of the output layer's to bfloat16
    (:mod:`rnn_apps.precision`); the default ``"float32"`` changes nothing, and :meth:`step` never uses it.

    Call arguments:
        features: (batch, L, D) annotation vectors. ids: (batch, T) input tokens (<bos> first).

    Returns:
        Logits (batch, T, vocab_size).
    """

    training_precision = "float32"  # a training run's setting, not the model's: not in get_config

    def __init__(self, vocab_size, embedding_dim=64, units=256, cell="lstm", attention_units=128, gate=True,
                 dropout=0.0, output="direct", **kwargs):
        super().__init__(**kwargs)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}; received {output!r}.")
        self.output_kind = output
        self.vocab_size = check_units(vocab_size, "vocab_size")
        self.embedding_dim = check_units(embedding_dim, "embedding_dim")
        self.units = check_units(units, "units")
        self.cell_name = cell
        self.attention_units = check_units(attention_units, "attention_units")
        self.gate = bool(gate)
        self.dropout = check_rate(dropout, "dropout")
        self.embedding = keras.layers.Embedding(self.vocab_size, self.embedding_dim, name="embedding")
        self.attention = VisualAttention(self.attention_units, gate=self.gate, name="attention")
        self.cell = get_cell(cell)(self.units, name="cell")
        self.init_states = [keras.layers.Dense(s, activation="tanh", name=f"init_{i}")
                            for i, s in enumerate(_state_sizes(self.cell))]
        self.drop = keras.layers.Dropout(self.dropout, name="dropout")
        if output == "direct":
            self.logits = keras.layers.Dense(self.vocab_size, name="logits")
        else:
            self.output_projection = keras.layers.Dense(self.embedding_dim, name="output_projection")

    def build(self, features_shape, ids_shape=None):
        d = int(features_shape[-1])
        self.embedding.build((None,))
        self.attention.build((None, None, d), (None, self.units))
        self.cell.build((None, self.embedding_dim + d))
        for layer in self.init_states:
            layer.build((None, d))
        if self.output_kind == "direct":
            self.logits.build((None, self.units + d))
        else:
            self.output_projection.build((None, self.units + d))
            self.output_bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="output_bias")
        self.built = True

    def _logits(self, out, products="float32"):
        if self.output_kind == "direct":
            return precision.dense(self.logits, out, products)
        p = precision.dense(self.output_projection, out, products)
        return precision.matmul(p, self.embedding.embeddings, products, transpose_b=True) + self.output_bias

    def start(self, features, training=False):
        mean = ops.mean(features, axis=1)
        states = [layer(mean) for layer in self.init_states]
        return (features, self.attention.project_keys(features)), states

    def _advance(self, embedded, states, memory, training, products="float32"):
        """One step of attention and cell from the embedded input: ``([h_t; z_t], states, α_t)``."""
        features, keys = memory
        context, alpha = self.attention(features, states[0], keys=keys)
        x = ops.concatenate([embedded, context], axis=-1)
        cell = self.cell
        if products != "float32" and cell.supports_projected_inputs:
            # the cell's own step, its products in ``products`` (the cell's call has no such argument)
            if training and 0.0 < cell.dropout < 1.0:
                x = x * cell.get_dropout_mask(x)
            h, states = cell.step_projected(cell.project_inputs(x, product_dtype=products), list(states),
                                            training=training, product_dtype=products)
        else:
            h, states = cell(x, list(states), training=training)
        return ops.concatenate([h, context], axis=-1), _states_list(cell, states), alpha

    def step(self, ids, states, memory, training=False):
        out, states, alpha = self._advance(self.embedding(ids), states, memory, training)
        return self._logits(self.drop(out, training=training)), states, alpha

    def call(self, features, ids, training=False):
        memory, states = self.start(features, training)
        steps = ids.shape[1]
        if steps is None:
            raise ValueError("AttentionDecoder unrolls over the caption: its length must be static (pad to max_len).")
        embedded = self.embedding(ids)
        products = precision.training_products(self, training)
        outs = []
        for t in range(steps):
            out, states, _ = self._advance(embedded[:, t], states, memory, training, products)
            outs.append(out)
        # Only the recurrence needs the steps one by one: the output layer runs once on all of them, one
        # (batch·T, ·) product instead of T small ones (1.2x the training step of the photo captioner,
        # benchmarks/train.py --app caption). Dropout draws its mask per element either way.
        return self._logits(self.drop(ops.stack(outs, axis=1), training=training), products)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "units": self.units, "cell": self.cell_name, "attention_units": self.attention_units,
                "gate": self.gate, "dropout": self.dropout, "output": self.output_kind}


@keras.saving.register_keras_serializable(package="rnn_apps")
class InjectDecoder(keras.layers.Layer):
    r"""Recurrent decoder that sees the image once, as its first input (Vinyals et al., 2015, "Show and
    Tell"; the 1-to-N RNN of the notes)::

        x_{-1} = BN(flatten(a) W_I + b_I)                         the image as one input vector
        h_{-1}, c_{-1} = cell(x_{-1}, 0)
        h_t, c_t = cell(E y_{t-1}, (h_{t-1}, c_{t-1}))
        p(y_t | y_<t, a) = softmax(h_t W_o + b_o)

    The flattened grid keeps where things are. The image vector is batch-normalised: the flattened ReLU
    features share a large common offset which, unnormalised, saturates the gates so that every image
    gives the same state. Same arguments as :class:`AttentionDecoder` (no attention); ``step`` returns
    uniform weights in place of attention.
    """

    def __init__(self, vocab_size, embedding_dim=64, units=256, cell="lstm", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = check_units(vocab_size, "vocab_size")
        self.embedding_dim = check_units(embedding_dim, "embedding_dim")
        self.units = check_units(units, "units")
        self.cell_name = cell
        self.dropout = check_rate(dropout, "dropout")
        self.embedding = keras.layers.Embedding(self.vocab_size, self.embedding_dim, name="embedding")
        self.image_projection = keras.layers.Dense(self.embedding_dim, name="image_projection")
        self.image_norm = keras.layers.BatchNormalization(name="image_norm")
        self.cell = get_cell(cell)(self.units, name="cell")
        self.rnn = keras.layers.RNN(self.cell, return_sequences=True, name="rnn")
        self.drop = keras.layers.Dropout(self.dropout, name="dropout")
        self.logits = keras.layers.Dense(self.vocab_size, name="logits")

    def build(self, features_shape, ids_shape=None):
        length, d = features_shape[1], features_shape[2]
        if length is None:
            raise ValueError(f"InjectDecoder needs a static number of locations; received features {tuple(features_shape)}.")
        self.embedding.build((None,))
        self.image_projection.build((None, int(length) * int(d)))
        self.image_norm.build((None, self.embedding_dim))
        self.cell.build((None, self.embedding_dim))
        self.logits.build((None, self.units))
        self.built = True

    def start(self, features, training=False):
        flat = ops.reshape(features, (ops.shape(features)[0], -1))
        x = self.image_norm(self.image_projection(flat), training=training)
        zeros = [ops.zeros((ops.shape(features)[0], s), dtype=x.dtype) for s in _state_sizes(self.cell)]
        _, states = self.cell(x, zeros)
        return (ops.ones_like(features[:, :, 0]) / ops.cast(ops.shape(features)[1], x.dtype),), _states_list(self.cell, states)

    def step(self, ids, states, memory, training=False):
        h, states = self.cell(self.embedding(ids), list(states), training=training)
        return self.logits(self.drop(h, training=training)), _states_list(self.cell, states), memory[0]

    def call(self, features, ids, training=False):
        _, states = self.start(features, training)
        h = self.rnn(self.embedding(ids), initial_state=states, training=training)
        return self.logits(self.drop(h, training=training))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "units": self.units, "cell": self.cell_name, "dropout": self.dropout}


class FeatureCaptionModel(keras.Model):
    """The trainable part of a captioner whose backbone is frozen: ``model((grids, ids))`` -> logits.

    It shares its layers with a :class:`CaptionModel` (the encoder's ``head`` and the decoder), so that
    training on cached backbone features (:mod:`rnn_apps.apps.caption.features`) trains that model.
    """

    def __init__(self, head: keras.Model, decoder: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.head = head
        self.decoder = decoder

    def call(self, inputs, training=False):
        grids, ids = inputs
        return self.decoder(self.head(ops.cast(grids, "float32"), training=training), ids, training=training)


class CaptionModel(keras.Model):
    """Encoder + decoder: ``model((images, ids))`` -> logits (batch, T, vocab) (teacher forcing)."""

    def __init__(self, encoder: keras.Model, decoder: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    def call(self, inputs, training=False):
        images, ids = inputs
        features = self.encoder(images, training=training)
        return self.decoder(features, ids, training=training)


def build_caption_model(vocab_size: int, cfg: dict, max_len: int) -> CaptionModel:
    """Build (and build the weights of) the captioner described by a training config."""
    variant = cfg["variant"]
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; expected one of {list(VARIANTS)}.")
    encoder = build_encoder(cfg["image_size"], tuple(cfg["filters"]), cfg["feature_dim"], cfg.get("backbone"),
                            cfg.get("backbone_weights"), cfg.get("backbone_trainable", False))
    if variant == "attention":
        decoder = AttentionDecoder(vocab_size, cfg["embedding_dim"], cfg["units"], cfg["cell"], cfg["attention_units"],
                                   cfg.get("gate", True), cfg["dropout"], cfg.get("output", "direct"), name="decoder")
    else:
        decoder = InjectDecoder(vocab_size, cfg["embedding_dim"], cfg["units"], cfg["cell"], cfg["dropout"], name="decoder")
    model = CaptionModel(encoder, decoder, name=f"captioner_{variant}")
    s = cfg["image_size"]
    model((ops.zeros((1, s, s, 3)), ops.zeros((1, max_len), dtype="int32")))
    model.grid = encoder.grid
    return model
