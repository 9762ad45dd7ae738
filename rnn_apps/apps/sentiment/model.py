"""The sentiment classifier and the language model that pre-trains it.

Text to ids (the same TensorFlow ops in the tf.data pipeline of training and inside the exported model):

1. :func:`standardize`: invalid UTF-8 replaced by U+FFFD, Unicode lowercasing, ``<br />`` to a space, curly
   apostrophes to ``'``, every character that is not a letter, a digit or an apostrophe to a space, and
   apostrophes at the edges of words dropped, so ``"Don't!"`` gives ``don't`` and ``'quoted'`` ``quoted``.
2. ``keras.layers.TextVectorization`` splits on whitespace and looks words up in the vocabulary adapted on
   the training reviews (and the unlabelled ones when pre-training): id 0 is padding, 1 an unknown word, then
   the most frequent words, most frequent first.
3. :func:`head_tail`: a review of more than ``max_len`` words keeps its first ``max_len // 4`` and its last
   ``max_len - max_len // 4`` words (400: the first 100 and the last 300). Reviews tend to end with their
   verdict; keeping head and tail beat keeping either end in Sun et al. (2019), *How to fine-tune BERT for
   text classification?*, on IMDB.

The classifier (:func:`build_classifier`) reads ids: ``Embedding(mask_zero=True)`` -> word dropout ->
:class:`~rnn_apps.layers.DeepBidirectionalRNN` (cells from :mod:`rnn_apps.cells`) -> masked max and mean
pooling over the valid steps -> dropout -> ``Dense(1, sigmoid)``: the probability that the review is positive.
It is a :class:`ReviewClassifier`, a functional model whose training step can add adversarial training on
the word embeddings (Miyato, Dai & Goodfellow, 2017).

:class:`BiLanguageModel` shares the classifier's embedding and encoder and trains them as two language
models at once (ULMFiT, Howard & Ruder 2018; ELMo's two directions, Peters et al. 2018): each forward cell
predicts the next word, each backward cell the previous one.
"""

from __future__ import annotations

import math
import numbers

import keras

from rnn_apps.checks import check_positive_ints
from rnn_apps.layers import DeepBidirectionalRNN

HEAD_FRACTION = 0.25
PAD_ID, OOV_ID = 0, 1


def clean_text(text):
    """The first steps of every standardisation here: invalid UTF-8 to U+FFFD, lowercase, ``<br />`` to a
    space, curly apostrophes to ``'`` (string tensor)."""
    import tensorflow as tf

    t = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    t = tf.strings.lower(t, encoding="utf-8")
    t = tf.strings.regex_replace(t, r"(?i)<br\s*/?>", " ")
    return tf.strings.regex_replace(t, "[\u2018\u2019\u02bc`\u00b4]", "'")


def strip_edge_apostrophes(text):
    """Drop apostrophes at the edges of words (``'quoted'`` -> ``quoted``; ``don't`` stays) (string tensor)."""
    import tensorflow as tf

    t = tf.strings.regex_replace(text, r"(^|\s)'+", " ")
    return tf.strings.regex_replace(t, r"'+(\s|$)", " ")


@keras.saving.register_keras_serializable(package="rnn_apps", name="sentiment_standardize")
def standardize(text):
    """Lowercase, drop ``<br />`` and punctuation, keep letters, digits and in-word apostrophes (string tensor)."""
    import tensorflow as tf

    return strip_edge_apostrophes(tf.strings.regex_replace(clean_text(text), r"[^\pL\pN']+", " "))


def make_vectorizer(vocabulary=None, max_tokens: int | None = None) -> keras.layers.TextVectorization:
    """A ragged ``TextVectorization`` with :func:`standardize`; adapt it, or give it a ``vocabulary`` (words only)."""
    return keras.layers.TextVectorization(
        max_tokens=max_tokens,
        standardize=standardize,
        split="whitespace",
        output_mode="int",
        ragged=True,
        vocabulary=list(vocabulary) if vocabulary is not None else None,
        name="vectorizer",
    )


def vocabulary_words(vectorizer) -> list[str]:
    """The vocabulary without the padding and unknown-word entries (what :func:`make_vectorizer` takes)."""
    vocab = [str(w) for w in vectorizer.get_vocabulary()]
    return vocab[2:] if vocab[:2] == ["", "[UNK]"] else vocab


def head_tail(ids, max_len: int):
    """Keep the first ``max_len // 4`` and the last ``max_len - max_len // 4`` ids of longer rows (ragged)."""
    import tensorflow as tf

    head = int(max_len * HEAD_FRACTION)
    n = ids.row_lengths()
    keep = tf.minimum(n, max_len)
    pos = tf.ragged.range(keep)
    rows = pos.value_rowids()
    flat = pos.flat_values
    flat = tf.where(flat >= head, flat + tf.gather(n - keep, rows), flat)
    values = tf.gather(ids.flat_values, tf.gather(ids.row_starts(), rows) + flat)
    return pos.with_flat_values(values)


def ragged_ids(vectorizer, texts, max_len: int | None):
    """int32 ragged ids of a batch of strings (head/tail-truncated to ``max_len`` unless None)."""
    import tensorflow as tf

    ids = vectorizer(texts)
    ids = ids.with_flat_values(tf.cast(ids.flat_values, tf.int32))
    return head_tail(ids, max_len) if max_len else ids


def dense_ids(vectorizer, texts, max_len: int):
    """int32 ids [batch, T] padded with 0, T >= 1 (an empty review is one padding step, fully masked)."""
    import tensorflow as tf

    ids = ragged_ids(vectorizer, texts, max_len).to_tensor(PAD_ID)
    return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])


def encode_texts(vectorizer, texts, max_len: int | None = None, batch_size: int = 1024) -> list:
    """Ids of many texts as a list of int32 NumPy arrays (vectorized in a tf.data pipeline)."""
    import numpy as np
    import tensorflow as tf

    texts = list(texts)
    if not texts:
        return []
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(batch_size)
    ds = ds.map(lambda t: ragged_ids(vectorizer, t, max_len), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    out = []
    for r in ds:
        values, splits = r.flat_values.numpy(), r.row_splits.numpy()
        out.extend(np.split(values, splits[1:-1]))
    return out


@keras.saving.register_keras_serializable(package="rnn_apps")
class MaskedMaxMeanPooling(keras.layers.Layer):
    """Concatenated max and mean over the valid time steps: (batch, time, d) -> (batch, 2d).

    Masked (padding) steps are ignored; a sequence without a valid step pools to zeros.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        ops = keras.ops
        if mask is None:
            valid = ops.ones(ops.shape(x)[:2], dtype=x.dtype)
        else:
            valid = ops.cast(mask, x.dtype)
        v = ops.expand_dims(valid, -1)
        count = ops.sum(v, axis=1)
        mean = ops.sum(x * v, axis=1) / ops.maximum(count, 1.0)
        big = ops.cast(1e9, x.dtype)
        mx = ops.max(ops.where(v > 0, x, -big), axis=1)
        mx = ops.where(count > 0, mx, ops.zeros_like(mx))
        return ops.concatenate([mx, mean], axis=-1)

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])


def _scale_l2(x, epsilon):
    """``epsilon · x / ‖x‖₂`` per example over all axes but the first (the max-abs rescale avoids overflow)."""
    ops = keras.ops
    axes = tuple(range(1, len(x.shape)))
    alpha = ops.max(ops.abs(x), axis=axes, keepdims=True) + 1e-12
    norm = alpha * ops.sqrt(ops.sum(ops.square(x / alpha), axis=axes, keepdims=True) + 1e-6)
    return epsilon * x / norm


def check_adversarial_epsilon(value) -> float:
    """``value`` as a float if it is a finite number >= 0 (adversarial training's ε; 0: off), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < float("inf"):
        raise ValueError(f"adversarial_epsilon must be a finite number >= 0 (0: off; Miyato et al. use 5); "
                         f"received {value!r}.")
    return float(value)


def _add_gradients(a, b):
    """The sum of two gradients of one variable, either of which may be None or ``tf.IndexedSlices``."""
    import tensorflow as tf

    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


class ReviewClassifier(keras.Model):
    """The classifier's functional graph, with optional adversarial training of its word embeddings.

    With ``adversarial_epsilon`` ε > 0 (:meth:`train_step`, TensorFlow backend) each training step adds the
    loss of the same batch with its word embeddings ``e`` moved a small step in the direction that hurts most
    (Miyato, Dai & Goodfellow, 2017, *Adversarial training methods for semi-supervised text
    classification*, arXiv:1605.07725)::

        g = ∇ₑ L(e)                      (one backward pass, which also gives the clean gradient)
        r = ε · σ_E · g / ‖g‖₂           (per review, over all its words and dimensions)
        loss = L(e) + L(e + r)

    σ_E is the standard deviation of the embedding matrix's entries (not differentiated): Miyato et al.
    normalise each embedding dimension to unit variance and use ε = 5; scaling ``r`` by σ_E gives ε the same
    units and keeps the model from escaping the perturbation by growing its embeddings. A step costs about
    two plain ones. ε = 0 is Keras's own training step. Inference is unchanged.
    """

    def __init__(self, *args, adversarial_epsilon: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.adversarial_epsilon = adversarial_epsilon  # checked by the setter

    @property
    def adversarial_epsilon(self) -> float:
        return self._adversarial_epsilon

    @adversarial_epsilon.setter
    def adversarial_epsilon(self, value):
        self._adversarial_epsilon = check_adversarial_epsilon(value)

    def from_embeddings(self, embedded, mask, training=False):
        """The layers after the embedding: word dropout, encoder, pooling, dropout, classifier."""
        x = self.get_layer("word_dropout")(embedded, training=training)
        x = self.get_layer("encoder")(x, mask=mask, training=training)
        x = self.get_layer("pooling")(x, mask=mask)
        x = self.get_layer("dropout")(x, training=training)
        return self.get_layer("classifier")(x)

    def adversarial_perturbation(self, grad, mask):
        """``r = ε · σ_E · g / ‖g‖₂`` of the loss's gradient ``g`` with respect to the embedded words."""
        ops = keras.ops
        g = ops.stop_gradient(grad) * ops.expand_dims(ops.cast(mask, grad.dtype), -1)
        sigma = ops.stop_gradient(ops.std(self.get_layer("embedding").embeddings))
        return _scale_l2(g, self.adversarial_epsilon * sigma)

    def train_step(self, data):
        if not self.adversarial_epsilon:
            return super().train_step(data)
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        embedding = self.get_layer("embedding")
        variables = self.trainable_variables
        mask = tf.not_equal(x, PAD_ID)
        with tf.GradientTape() as tape:
            embedded = embedding(x)
            y_pred = self.from_embeddings(embedded, mask, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)
        grad_e, *grads = tape.gradient(scaled, [embedded, *variables])
        r = self.adversarial_perturbation(grad_e, mask)
        with tf.GradientTape() as tape:
            y_adv = self.from_embeddings(embedding(x) + r, mask, training=True)
            adv_loss = self.compute_loss(x, y, y_adv, sample_weight, training=True)
            adv_scaled = self.optimizer.scale_loss(adv_loss)
        grads = [_add_gradients(a, b) for a, b in zip(grads, tape.gradient(adv_scaled, variables))]
        self.optimizer.apply_gradients(zip(grads, variables))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync  # compute_loss divides by it
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state((loss + adv_loss) * replicas, sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight)


def build_classifier(
    vocab_size: int,
    embedding_dim: int = 256,
    units: int = 256,
    num_layers: int = 1,
    cell: str = "lstm",
    dropout: float = 0.3,
    word_dropout: float = 0.1,
    recurrent_dropout: float = 0.0,
    seed: int | None = None,
    adversarial_epsilon: float = 0.0,
    name: str = "sentiment",
) -> ReviewClassifier:
    """The classifier: ids (batch, time) int32 -> P(positive) (batch, 1).

    Layers are named ``embedding``, ``word_dropout``, ``encoder``, ``pooling``, ``dropout``, ``classifier``.

    Args:
        vocab_size: Vocabulary size, padding and unknown-word ids included.
        embedding_dim: Word embedding size.
        units: Units per direction of each bidirectional layer.
        num_layers: Bidirectional layers.
        cell: A name from ``rnn_apps.cells.CELLS``.
        dropout: Dropout between recurrent layers and before the classifier.
        word_dropout: Share of words whose whole embedding is zeroed in training.
        recurrent_dropout: The cells' dropout on the recurrent state.
        seed: Seed of the dropout masks.
        adversarial_epsilon: Adversarial training's ε (:class:`ReviewClassifier`; 0: off).
    """
    check_positive_ints(vocab_size=vocab_size, embedding_dim=embedding_dim, units=units, num_layers=num_layers)
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(ids)
    x = keras.layers.Dropout(word_dropout, noise_shape=(None, None, 1), seed=seed, name="word_dropout")(x)
    x = DeepBidirectionalRNN(
        cell, units, num_layers, dropout=dropout, seed=seed, name="encoder",
        cell_kwargs={"recurrent_dropout": recurrent_dropout} if recurrent_dropout else None,
    )(x)
    x = MaskedMaxMeanPooling(name="pooling")(x)
    x = keras.layers.Dropout(dropout, seed=None if seed is None else seed + 100, name="dropout")(x)
    p = keras.layers.Dense(1, activation="sigmoid", name="classifier")(x)
    return ReviewClassifier(ids, p, name=name, adversarial_epsilon=adversarial_epsilon)


def build_from_config(vocab_size: int, cfg: dict) -> ReviewClassifier:
    """The classifier of a run's (or an export's) settings ``cfg`` (:data:`~rnn_apps.apps.sentiment.task.DEFAULTS`)."""
    return build_classifier(vocab_size, cfg["embedding_dim"], cfg["units"], cfg["num_layers"], cfg["cell"],
                            cfg["dropout"], cfg["word_dropout"], cfg["recurrent_dropout"], seed=cfg["seed"],
                            adversarial_epsilon=cfg.get("adversarial", 0.0))


class BiLanguageModel(keras.Model):
    """Forward and backward language models over a classifier's embedding and encoder (shared layers).

    Layer 0's forward cells read the words left to right and, through a linear head, predict the next word;
    its backward cells read right to left and predict the previous one. Above layer 0 each direction reads
    only its own direction's outputs from below (the other half of the layer's input is zeros), so neither
    model sees the word it predicts; the classifier later reads both halves (those kernel rows start from
    their initial values). The output embedding is tied to the input embedding (Press & Wolf, 2017), with
    a bias per word.

    Training uses a sampled softmax (Jean et al., 2015) over ``num_sampled`` words drawn log-uniformly
    (the vocabulary is sorted by frequency), with stateless draws seeded by ``(seed, optimizer step)`` so a
    resumed run draws what an uninterrupted one would; evaluation uses the full softmax, so ``val_loss``
    is the true cross-entropy (natural log; perplexity = exp(val_loss)).

    Inputs are ids (batch, time); targets (batch, time, 2) (next, previous word) with weights of the same
    shape (see :func:`rnn_apps.apps.sentiment.data.lm_batches`).
    """

    def __init__(self, classifier: keras.Model, num_sampled: int = 1024, seed: int = 0, **kwargs):
        super().__init__(name=kwargs.pop("name", "bi_language_model"), **kwargs)
        self.embedding = classifier.get_layer("embedding")
        self.word_dropout = classifier.get_layer("word_dropout")
        self.encoder = classifier.get_layer("encoder")
        if self.encoder.merge_mode != "concat":
            raise ValueError("Language-model pre-training needs the encoder's merge_mode 'concat'.")
        self.vocab_size = int(self.embedding.input_dim)
        self.embedding_dim = int(self.embedding.output_dim)
        self.num_sampled = int(num_sampled)
        self.sample_seed = int(seed)
        self.forward_head = keras.layers.Dense(self.embedding_dim, name="lm_forward_head")
        self.backward_head = keras.layers.Dense(self.embedding_dim, name="lm_backward_head")
        self.softmax_bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="lm_softmax_bias")
        units = self.encoder.units
        self.forward_head.build((None, None, units))
        self.backward_head.build((None, None, units))

    def head_weights(self) -> list:
        """The weights of the LM that are not the classifier's (heads and softmax bias), in a fixed order."""
        return [*self.forward_head.weights, *self.backward_head.weights, self.softmax_bias]

    def call(self, ids, training=False):
        ops = keras.ops
        mask = ops.not_equal(ids, PAD_ID)
        x = self.word_dropout(self.embedding(ids), training=training)
        f = b = x
        for k, bi in enumerate(self.encoder.bidirectional_layers):
            if k == 0:
                f_in = b_in = x
            else:
                drop = self.encoder.dropout_layers[k - 1]
                f_in = drop(ops.concatenate([f, ops.zeros_like(b)], axis=-1), training=training)
                b_in = drop(ops.concatenate([ops.zeros_like(f), b], axis=-1), training=training)
            f = bi.forward_layer(f_in, mask=mask, training=training)
            b = ops.flip(bi.backward_layer(b_in, mask=mask, training=training), axis=1)
        return ops.stack([self.forward_head(f), self.backward_head(b)], axis=2)

    def _sampled_values(self, num_true_labels):
        """Log-uniform candidates over ids 1..V-1 (no padding) and their expected counts, drawn statelessly."""
        import tensorflow as tf

        n = self.vocab_size - 1  # classes 1 .. V-1
        step = tf.cast(self.optimizer.iterations, tf.int64) if self.optimizer is not None else tf.constant(0, tf.int64)
        seed = tf.stack([tf.constant(self.sample_seed, tf.int64), step])
        u = tf.random.stateless_uniform([self.num_sampled], seed=seed, dtype=tf.float64)
        k = tf.clip_by_value(tf.cast(tf.floor(tf.exp(u * math.log(n + 1.0))), tf.int64) - 1, 0, n - 1)

        def expected(ids):
            r = tf.cast(ids - 1, tf.float64)
            p = (tf.math.log(r + 2.0) - tf.math.log(r + 1.0)) / math.log(n + 1.0)
            return tf.cast(p * self.num_sampled, tf.float32)

        return k + 1, expected(num_true_labels), expected(k + 1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        import tensorflow as tf

        h = tf.reshape(y_pred, [-1, self.embedding_dim])
        t = tf.reshape(tf.cast(y, tf.int64), [-1])
        w = tf.reshape(tf.cast(sample_weight, h.dtype), [-1])
        keep = tf.where(w > 0)[:, 0]
        h, t, w = tf.gather(h, keep), tf.gather(t, keep), tf.gather(w, keep)
        emb = self.embedding.embeddings
        if training and self.num_sampled < self.vocab_size - 1:
            sampled = self._sampled_values(t[:, None])
            ce = tf.nn.sampled_softmax_loss(
                weights=emb, biases=self.softmax_bias, labels=t[:, None], inputs=h, num_sampled=self.num_sampled,
                num_classes=self.vocab_size, sampled_values=sampled, remove_accidental_hits=True,
            )
        else:
            logits = tf.matmul(h, emb, transpose_b=True) + self.softmax_bias
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=t, logits=logits)
        loss = tf.reduce_sum(ce * w) / tf.maximum(tf.reduce_sum(w), 1.0)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss
