"""Token samplers shared by every app that decodes, written as small in-graph TensorFlow functions.

They work on a batch of logits ``[batch, vocab]`` with per-row controls, inside ``tf.while_loop`` bodies
of exported SavedModels, so a whole generation runs as one graph call:

* :func:`greedy` - the most likely token;
* :func:`apply_temperature` - divide the logits by T (T <= 0 means greedy);
* :func:`top_k_filter` - keep the k most likely tokens (k <= 0: off);
* :func:`top_p_filter` - nucleus sampling (Holtzman et al., 2020): keep the smallest set whose probability
  reaches p (p >= 1: off), by bisection, without sorting;
* :func:`sample` - all of the above, then an inverse-CDF draw with one counter-based uniform per row keyed
  by (row seed, step), so that a row's result depends only on its own seed and inputs, not on what else
  is in the batch;
* :func:`beam_search_step` - one step of beam search over ``[batch * beam, vocab]`` log-probabilities;
* :func:`beam_search` - the whole search over a decoder's step function, and :func:`best_beams` - each
  row's best hypothesis, with GNMT's length normalisation.
"""

from __future__ import annotations

import tensorflow as tf

NEG_INF = -1e9

_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _splitmix64(x):
    """The SplitMix64 finaliser (Steele et al., 2014) on a uint64 tensor: a strong bit mixer."""
    u = lambda c: tf.constant(c, tf.uint64)  # noqa: E731
    x = x + u(_GOLDEN)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, u(30))) * u(_M1)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, u(27))) * u(_M2)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, u(31)))


def uniform(seeds, step):
    """One uniform number in (0, 1) per row, a pure function of (row seed, step).

    Args:
        seeds: int64 [batch], one seed per row.
        step: int32 scalar, the decoding step.

    Returns:
        float32 [batch].
    """
    s = tf.cast(tf.bitwise.bitwise_and(tf.cast(seeds, tf.int64), tf.constant(0x7FFFFFFFFFFFFFFF, tf.int64)), tf.uint64)
    bits = _splitmix64(_splitmix64(s) + tf.cast(step, tf.uint64) * tf.constant(_GOLDEN, tf.uint64))
    mantissa = tf.cast(tf.bitwise.right_shift(bits, tf.constant(40, tf.uint64)), tf.float32)  # 24 bits
    return (mantissa + 0.5) / 2.0**24


def greedy(logits):
    """The most likely token of each row: int32 [batch]."""
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def apply_temperature(logits, temperature):
    """Divide each row by its temperature (float32 [batch]); rows with T <= 0 are left as they are."""
    t = tf.where(temperature > 0, temperature, tf.ones_like(temperature))
    return logits / t[:, None]


def top_k_filter(logits, top_k):
    """Mask all but the ``top_k`` (int32 [batch]) largest logits of each row; k <= 0 leaves the row alone.

    Tokens tied with the k-th largest logit are kept too. The k-th largest logit of a row is the largest t
    with at least k logits >= t, found by bisection, one count over the row per round, on the logits'
    float32 bit patterns turned into unsigned integers that order as the numbers do (a number >= 0 with
    its sign bit set, a negative one with every bit flipped): at most 32 rounds. Not ``tf.math.top_k``:
    under XLA its k is a constant, so every new k that a request asked for compiled the poem model's
    decoder again (1-2 s, and memory never given back). A row of 6,461 logits at batch 8 took 0.85-0.97 ms
    (XLA's top-k of k 40: 0.47 ms, but one program per k).
    """
    vocab = tf.shape(logits)[-1]
    k = tf.clip_by_value(top_k, 1, vocab)[:, None]
    sign = tf.constant(0x80000000, tf.uint32)
    one = tf.constant(1, tf.uint32)
    bits = tf.bitcast(logits, tf.uint32)
    keys = tf.where(tf.bitwise.bitwise_and(bits, sign) != 0, tf.bitwise.invert(bits), tf.bitwise.bitwise_or(bits, sign))
    # the answer lies in [lo, hi] throughout: at least k keys >= lo; fewer than k > hi
    lo = tf.reduce_min(keys, axis=-1, keepdims=True)
    hi = tf.reduce_max(keys, axis=-1, keepdims=True)

    def halve(lo, hi):
        mid = lo + (hi - lo) // 2 + one  # in (lo, hi]: no overflow, as hi - lo < 2**32
        reaches = tf.reduce_sum(tf.cast(keys >= mid, tf.int32), axis=-1, keepdims=True) >= k
        return tf.where(reaches, mid, lo), tf.where(reaches, hi, mid - one)

    kth_key, _ = tf.while_loop(lambda lo, hi: tf.reduce_any(lo < hi), halve, (lo, hi), maximum_iterations=40)
    kth_bits = tf.where(tf.bitwise.bitwise_and(kth_key, sign) == 0, tf.bitwise.invert(kth_key),
                        tf.bitwise.bitwise_xor(kth_key, sign))
    kth = tf.bitcast(kth_bits, tf.float32)
    keep = (logits >= kth) | (top_k <= 0)[:, None]  # compared as numbers: -0.0 and 0.0 tie, as in a sort
    return tf.where(keep, logits, tf.fill(tf.shape(logits), NEG_INF))


def top_p_filter(logits, top_p):
    """Nucleus filter: keep the most likely tokens whose cumulative probability first reaches ``top_p``.

    ``top_p`` is float32 [batch]; p >= 1 leaves the row alone. The most likely token is always kept, and
    tokens tied with the last kept one are kept too.

    With p_(1) >= p_(2) >= ... the row's probabilities in order and S_n their partial sums, the nucleus is
    the first n tokens for the smallest n with S_n >= top_p, i.e. every token with probability at least
    t* = p_(n), the largest t for which g(t) = Σ_{p_j >= t} p_j still reaches top_p. g falls as t grows, so
    t* is found by bisection, one masked sum over the row per round. The bisection runs on the bit
    patterns of the float32 probabilities (for numbers >= 0 they order as the numbers do), so it ends at
    t* exactly after at most 31 rounds, and it starts from the bounds (1 - top_p) / V <= t* (the tokens
    below that carry less than 1 - top_p together) and 2 max p > t*. A poem model's nucleus at p 0.9
    holds hundreds of its 6,461 characters, and this is several times faster than sorting each row at
    every step.
    """
    probs = tf.nn.softmax(logits, axis=-1)
    vocab = tf.cast(tf.shape(logits)[-1], tf.float32)
    target = top_p[:, None]
    # g(lo) >= top_p and g(hi) < top_p throughout; every candidate t* is a probability in [lo, hi).
    lo = tf.bitcast(tf.maximum((1.0 - target) / vocab, 0.0) * 0.5, tf.int32)  # halved: rounding in the sum
    hi = tf.bitcast(2.0 * tf.reduce_max(probs, axis=-1, keepdims=True) + 1e-30, tf.int32)

    def halve(lo, hi):
        mid = lo + (hi - lo) // 2
        at_least = probs >= tf.bitcast(mid, tf.float32)  # compared as floats: the row's pass stays vectorised
        reaches = tf.reduce_sum(tf.where(at_least, probs, 0.0), axis=-1, keepdims=True) >= target
        return tf.where(reaches, mid, lo), tf.where(reaches, hi, mid)

    def open_interval(lo, hi):
        return tf.reduce_any(hi - lo > 1)  # some row's bounds are not yet adjacent

    lo, hi = tf.while_loop(open_interval, halve, (lo, hi), maximum_iterations=40)
    keep = (probs >= tf.bitcast(lo, tf.float32)) | (top_p >= 1.0)[:, None]
    return tf.where(keep, logits, tf.fill(tf.shape(logits), NEG_INF))


CDF_BLOCK = 128  # tokens per block of the two-level inverse CDF (see categorical)


def categorical(logits, u):
    """Inverse-CDF draw of one token per row from ``softmax(logits)`` with the row's uniform ``u``.

    The drawn token is the number of tokens whose cumulative probability is below u times the total.
    It is found in two levels, as a cumulative sum over the whole vocabulary costs more than the rest of
    the draw: the sums of blocks of ``CDF_BLOCK`` tokens locate the block, then the cumulative sum
    inside that block the token. Tokens with ``NEG_INF`` logits have probability 0 and are never drawn.
    """
    probs = tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))
    V = tf.shape(logits)[-1]
    n_blocks = (V + CDF_BLOCK - 1) // CDF_BLOCK
    blocks = tf.reshape(tf.pad(probs, [[0, 0], [0, n_blocks * CDF_BLOCK - V]]), [-1, n_blocks, CDF_BLOCK])
    block_cdf = tf.cumsum(tf.reduce_sum(blocks, axis=-1), axis=-1)  # [B, n_blocks]
    target = u * block_cdf[:, -1]
    k = tf.minimum(tf.reduce_sum(tf.cast(block_cdf < target[:, None], tf.int32), axis=-1), n_blocks - 1)
    before = tf.where(k > 0, tf.gather(block_cdf, tf.maximum(k - 1, 0), batch_dims=1), 0.0)
    inner = tf.gather(blocks, k, batch_dims=1)  # [B, CDF_BLOCK]
    j = tf.reduce_sum(tf.cast(before[:, None] + tf.cumsum(inner, axis=-1) < target[:, None], tf.int32), axis=-1)
    # Rounding may put the target just past the block's last token with a probability: take that one.
    positions = tf.range(CDF_BLOCK)[None, :]
    last = tf.reduce_max(tf.where(inner > 0, positions, 0), axis=-1)
    return tf.minimum(k * CDF_BLOCK + tf.minimum(j, last), V - 1)


def sample(logits, seeds, step, temperature, top_k, top_p):
    """Draw one token per row: temperature, then top-k and top-p filters, then an inverse-CDF draw.

    Rows whose temperature is <= 0 are decoded greedily. The sorting filters run only when a row asks
    for them. The draw uses one counter-based uniform per row (:func:`uniform`), so a row's tokens depend
    only on its seed and its own inputs.

    Args:
        logits: float32 [batch, vocab] (already masked with ``NEG_INF`` where tokens are not allowed).
        seeds: int64 [batch] row seeds.
        step: int32 scalar step number.
        temperature: float32 [batch]. top_k: int32 [batch]. top_p: float32 [batch].

    Returns:
        int32 [batch] token ids.
    """
    scaled = apply_temperature(logits, temperature)
    scaled = tf.cond(tf.reduce_any(top_k > 0), lambda: top_k_filter(scaled, top_k), lambda: scaled)
    scaled = tf.cond(tf.reduce_any(top_p < 1.0), lambda: top_p_filter(scaled, top_p), lambda: scaled)
    drawn = categorical(scaled, uniform(seeds, step))
    return tf.where(temperature > 0, drawn, greedy(logits))


def beam_search_step(log_probs, beam_scores, beam_size):
    """One step of beam search.

    Args:
        log_probs: float32 [batch * beam, vocab], the next-token log-probabilities of every live beam.
        beam_scores: float32 [batch * beam], the beams' cumulative scores.
        beam_size: int.

    Returns:
        (new_scores [batch * beam], parent [batch * beam] index into the old beams (flat), token [batch * beam]).
    """
    vocab = tf.shape(log_probs)[-1]
    total = tf.reshape(beam_scores[:, None] + log_probs, [-1, beam_size * vocab])
    scores, flat = tf.math.top_k(total, k=beam_size)
    batch = tf.shape(total)[0]
    parent_in_row = flat // vocab
    token = flat % vocab
    parent = parent_in_row + tf.range(batch)[:, None] * beam_size
    return tf.reshape(scores, [-1]), tf.reshape(parent, [-1]), tf.reshape(token, [-1])


def beam_search(step, states, batch_size, beam_size, max_steps, attention_size, start_id, end_id, pad_id):
    """Beam search over a decoder's step function, as one ``tf.while_loop``.

    Each of the ``batch_size`` rows keeps ``beam_size`` hypotheses, rows ``b * beam_size`` to
    ``b * beam_size + beam_size - 1``; only the first is live at the start, so the first step branches from
    one hypothesis. Every step extends each hypothesis by every token and keeps the ``beam_size`` best
    continuations of each row by total log-probability (:func:`beam_search_step`). A hypothesis that
    wrote ``end_id`` (or ``pad_id``) has ended: from then on it writes ``pad_id`` at no cost, so it keeps its
    score and competes with the live ones. The search stops when every hypothesis has ended or after
    ``max_steps`` steps.

    Args:
        step: ``step(t, prev, states, finished) -> (log_probs, states, attention)``: the decoder's step
            ``t`` (int32 scalar) from the tokens ``prev`` [B * beam] and the list of ``states``
            [B * beam, ...]; ``log_probs`` float32 [B * beam, vocab] with the masks and forced tokens of the
            app already applied; ``attention`` float32 [B * beam, attention_size] (what the app reports for
            the token; ``finished`` [B * beam] bool says which hypotheses had already ended).
        states: list of the decoder's start states, each [B * beam, ...] (every row repeated beam times).
        batch_size: int32 scalar B. beam_size: int. max_steps: int32 scalar T.
        attention_size: int32 scalar, the length of each step's ``attention``.
        start_id, end_id, pad_id: the start, end and padding tokens.

    Returns:
        ``(steps, tokens, attention, scores, lengths)``: the steps taken, int32 scalar; every hypothesis's
        tokens [B * beam, T] (0 after the last step) and attention [B * beam, T, attention_size]; its total
        log-probability [B * beam]; its length in tokens, the end token included [B * beam].
    """
    rows = batch_size * beam_size
    cols = tf.range(max_steps)[None, :]

    def body(t, prev, states, scores, tokens, attention, lengths, finished):
        log_probs, new_states, att = step(t, prev, states, finished)
        only_pad = tf.where(tf.range(tf.shape(log_probs)[-1]) == pad_id, 0.0, NEG_INF)
        log_probs = tf.where(finished[:, None], only_pad[None, :], log_probs)  # an ended hypothesis only pads
        scores, parent, token = beam_search_step(log_probs, scores, beam_size)
        states = [tf.gather(s, parent) for s in new_states]
        finished = tf.gather(finished, parent)
        lengths = tf.gather(lengths, parent) + tf.cast(~finished, tf.int32)
        at_t = tf.equal(cols, t)
        tokens = tf.where(at_t, token[:, None], tf.gather(tokens, parent))
        attention = tf.where(at_t[:, :, None], tf.gather(att, parent)[:, None, :], tf.gather(attention, parent))
        finished = finished | (token == end_id) | (token == pad_id)
        return t + 1, token, states, scores, tokens, attention, lengths, finished

    start = (tf.constant(0), tf.fill([rows], start_id), list(states),
             tf.where(tf.range(rows) % beam_size == 0, 0.0, NEG_INF),  # one live hypothesis per row
             tf.zeros([rows, max_steps], tf.int32), tf.zeros([rows, max_steps, attention_size]),
             tf.zeros([rows], tf.int32), tf.zeros([rows], tf.bool))
    steps, _, _, scores, tokens, attention, lengths, _ = tf.while_loop(
        lambda t, *args: (t < max_steps) & ~tf.reduce_all(args[-1]), body, start, maximum_iterations=max_steps)
    return steps, tokens, attention, scores, lengths


def best_beams(scores, lengths, beam_size, length_penalty=0.0, bonus=None):
    """The flat index of each row's best hypothesis of :func:`beam_search`.

    The score is GNMT's (Wu et al., 2016, "Google's Neural Machine Translation System", eq. 14), without
    its coverage term, which an app may add as ``bonus``::

        s(Y) = log P(Y) / lp(Y) + bonus,    lp(Y) = ((5 + |Y|) / 6) ** α

    α (``length_penalty``) 0 ranks by total log-probability, which favours short hypotheses; α > 0 divides
    it by lp(Y), which favours longer hypotheses the more, the larger α.

    Args:
        scores: float32 [B * beam], total log-probabilities. lengths: int32 [B * beam], tokens (the end
            included). beam_size: int. length_penalty: float α >= 0. bonus: float32 [B * beam] or None.

    Returns:
        int32 [B], indices into the B * beam hypotheses.
    """
    final = scores / tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, length_penalty)
    if bonus is not None:
        final += bonus
    best = tf.argmax(tf.reshape(final, [-1, beam_size]), axis=1, output_type=tf.int32)
    return tf.range(tf.shape(best)[0]) * beam_size + best
