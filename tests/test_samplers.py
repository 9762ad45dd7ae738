"""The shared in-graph samplers against NumPy definitions."""

import numpy as np
import pytest
import tensorflow as tf

from rnn_apps import samplers


def test_top_k_keeps_the_k_largest():
    logits = tf.constant([[0.1, 3.0, 2.0, -1.0, 2.5], [5.0, 4.0, 3.0, 2.0, 1.0]])
    out = samplers.top_k_filter(logits, tf.constant([2, 0])).numpy()
    assert (out[0] > samplers.NEG_INF / 2).tolist() == [False, True, False, False, True]
    np.testing.assert_array_equal(out[1], logits.numpy()[1])  # k = 0: off



def test_top_k_filter_equals_a_sort_and_compiles_once_for_every_k():
    """The k-th largest logit by bisection equals the one a sort gives (ties kept, every sign and scale,
    masked tokens, k past the vocabulary, k <= 0 off); under XLA one program serves every k (with
    tf.math.top_k each new k compiled the poem decoder again)."""
    def by_sort(x, ks):
        out = x.copy()
        for i, k in enumerate(ks):
            if k > 0:
                kth = np.sort(x[i])[::-1][min(k, x.shape[1]) - 1]
                out[i] = np.where(x[i] >= kth, x[i], samplers.NEG_INF)
        return out

    rng = np.random.default_rng(0)
    for trial in range(120):
        B, V = int(rng.integers(1, 9)), int(rng.integers(1, 300))
        x = (rng.normal(size=(B, V)) * rng.choice([1e-3, 1.0, 1e3, 1e30])).astype(np.float32)
        if trial % 3 == 0:
            x = np.round(x)  # ties
        if trial % 5 == 0:
            x[:, : V // 2] = samplers.NEG_INF
        if trial % 7 == 0:
            x[0, 0], x[0, -1] = -0.0, 0.0
        ks = rng.integers(-2, V + 3, size=B).astype(np.int32)
        assert np.array_equal(samplers.top_k_filter(tf.constant(x), tf.constant(ks)).numpy(), by_sort(x, ks)), trial
    compiled = tf.function(samplers.top_k_filter, jit_compile=True)
    x = rng.normal(size=(4, 6461)).astype(np.float32)
    programs = set()
    for ks in ([1, 5, 40, 6461], [100, 0, -1, 100_000], [7, 7, 7, 7]):
        args = (tf.constant(x), tf.constant(ks, tf.int32))
        assert np.array_equal(compiled(*args).numpy(), by_sort(x, ks))
        programs.add(compiled.experimental_get_compiler_ir(*args)(stage="hlo"))
    assert len(programs) == 1  # the same XLA program whatever k (tf.math.top_k's differs for each k)


def test_top_p_keeps_the_smallest_nucleus():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 50)).astype(np.float32)
    for p in (0.1, 0.5, 0.9, 0.999):
        out = samplers.top_p_filter(tf.constant(logits), tf.constant([p] * 6)).numpy()
        for row, kept in zip(logits, out > samplers.NEG_INF / 2):
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            order = np.argsort(-row)
            n = int(np.searchsorted(np.cumsum(probs[order]), p) + 1)  # smallest set reaching p
            assert set(np.flatnonzero(kept)) == set(order[:n])
    out = samplers.top_p_filter(tf.constant(logits), tf.constant([1.0] * 6)).numpy()
    np.testing.assert_array_equal(out, logits)


def _nucleus(row, p):
    """NumPy definition: the smallest set of most likely tokens whose probability reaches p."""
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    order = np.argsort(-row, kind="stable")
    return set(order[: int(np.searchsorted(np.cumsum(probs[order]), p) + 1)])


@pytest.mark.parametrize("scale", [8.0, 1.0, 0.05])  # peaked to flat rows: small to large nuclei
def test_top_p_on_a_large_vocabulary(scale):
    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(8, 6465)) * scale).astype(np.float32)
    logits[3, 100:] = samplers.NEG_INF  # a masked row, as the poem decoder's forms make them
    top_p = np.array([0.9, 0.5, 0.99, 0.9, 1.0, 0.3, 0.95, 0.8], np.float32)
    out = samplers.top_p_filter(tf.constant(logits), tf.constant(top_p)).numpy()
    for row, p, kept in zip(logits, top_p, out > samplers.NEG_INF / 2):
        if p >= 1.0:
            assert kept.all()
        else:
            assert set(np.flatnonzero(kept)) == _nucleus(row, p)
    # a tie at the boundary keeps both tokens; a top_p of almost 0 keeps the most likely token only
    tied = np.array([[2.0, 1.0, 1.0, 0.5] + [samplers.NEG_INF] * 4], np.float32)
    out = samplers.top_p_filter(tf.constant(tied), tf.constant([0.6])).numpy()[0]
    assert (out > samplers.NEG_INF / 2).tolist() == [True, True, True] + [False] * 5
    out = samplers.top_p_filter(tf.constant(tied), tf.constant([1e-6])).numpy()[0]
    assert (out > samplers.NEG_INF / 2).tolist() == [True] + [False] * 7


def test_top_k_per_row_on_a_large_vocabulary():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 6465)).astype(np.float32)
    ks = np.array([1, 40, 0, 700], np.int32)
    out = samplers.top_k_filter(tf.constant(logits), tf.constant(ks)).numpy()
    for row, k, kept in zip(logits, ks, out > samplers.NEG_INF / 2):
        assert set(np.flatnonzero(kept)) == (set(range(len(row))) if k == 0 else set(np.argsort(-row)[:k]))


def test_sample_follows_the_distribution_and_the_seed():
    logits = tf.constant([[np.log(0.7), np.log(0.2), np.log(0.1), -1e9]] * 4000, tf.float32)
    seeds = tf.range(4000, dtype=tf.int64)
    ones = tf.ones([4000])
    draws = samplers.sample(logits, seeds, 3, ones, tf.zeros([4000], tf.int32), ones).numpy()
    freq = np.bincount(draws, minlength=4) / 4000
    np.testing.assert_allclose(freq[:3], [0.7, 0.2, 0.1], atol=0.03)
    assert freq[3] == 0  # a masked token is never drawn
    again = samplers.sample(logits, seeds, 3, ones, tf.zeros([4000], tf.int32), ones).numpy()
    other_step = samplers.sample(logits, seeds, 4, ones, tf.zeros([4000], tf.int32), ones).numpy()
    np.testing.assert_array_equal(draws, again)
    assert (draws != other_step).any()
    greedy = samplers.sample(logits, seeds, 3, tf.zeros([4000]), tf.zeros([4000], tf.int32), ones).numpy()
    assert (greedy == 0).all()


def test_uniform_is_in_the_open_interval_and_row_independent():
    u = samplers.uniform(tf.constant([1, 2, 3, 1], tf.int64), 7).numpy()
    assert ((u > 0) & (u < 1)).all() and u[0] == u[3] and len(set(u[:3])) == 3


def test_beam_search_step_picks_the_best_continuations():
    log_probs = tf.math.log(tf.constant([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    scores, parent, token = samplers.beam_search_step(log_probs, tf.constant([0.0, -1.0]), 2)
    assert token.numpy().tolist() == [0, 1] and parent.numpy().tolist() == [0, 0]
    assert scores.numpy()[0] == pytest.approx(np.log(0.5))


def _numpy_beam_search(table, bias, beam, steps, start, end, pad):
    """Textbook beam search for one row: hypotheses (tokens, score); an ended one is carried as it is."""
    hyps = [((), 0.0, False)]
    for _ in range(steps):
        if all(done for _, _, done in hyps):
            break
        candidates = []
        for tokens, score, done in hyps:
            if done:
                candidates.append((tokens + (pad,), score, True))
                continue
            prev = tokens[-1] if tokens else start
            logits = table[prev] + bias
            logp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
            candidates += [(tokens + (v,), score + logp[v], v == end) for v in range(len(logp))]
        hyps = sorted(candidates, key=lambda h: -h[1])[:beam]
    return hyps


@pytest.mark.parametrize("beam, end_bonus, steps", [(1, 0.8, 6), (3, 0.8, 6), (3, 3.0, 12)])
def test_beam_search_equals_a_textbook_search_and_best_beams_normalises_length(beam, end_bonus, steps):
    """beam_search over a toy decoder (next-token log-probabilities from the previous token and a per-row
    bias carried as the state) against a search written out in Python; best_beams against GNMT's score.
    With a large ``end_bonus`` every hypothesis ends before ``steps``, and the search stops there."""
    rng = np.random.default_rng(7)
    V, start, end, pad, B = 7, 0, 3, 1, 2
    table = rng.normal(size=(V, V)).astype(np.float32)
    table[:, [start, pad]] = samplers.NEG_INF  # never written by a live hypothesis
    table[:, end] += end_bonus  # hypotheses end at different lengths
    bias = rng.normal(size=(B, V)).astype(np.float32)

    def step(t, prev, states, finished):
        logits = tf.gather(tf.constant(table), prev) + states[0]
        return tf.nn.log_softmax(logits), states, tf.one_hot(prev, V)  # "attention": the token it read

    states = [tf.repeat(tf.constant(bias), beam, axis=0)]
    t, tokens, attention, scores, lengths = samplers.beam_search(step, states, B, beam, steps, V, start, end, pad)
    tokens, scores, lengths = tokens.numpy()[:, : int(t)], scores.numpy(), lengths.numpy()
    wanted = [_numpy_beam_search(table, bias[b], beam, steps, start, end, pad) for b in range(B)]
    # the steps taken: until the last row's hypotheses have all ended, or the bound
    assert int(t) == max(len(want[0][0]) for want in wanted)
    if end_bonus > 2:
        assert int(t) < steps
    for b, want in enumerate(wanted):
        for j, (w_tokens, w_score, _) in enumerate(want):
            row = b * beam + j
            n = list(w_tokens).index(end) + 1 if end in w_tokens else len(w_tokens)
            assert tokens[row, :n].tolist() == list(w_tokens[:n]) and (tokens[row, n:] == pad).all()
            assert lengths[row] == n and scores[row] == pytest.approx(w_score, abs=1e-4)
            # each step's attention is what the hypothesis read at that step: its previous token
            read = [start] + list(tokens[row, : int(t) - 1])
            np.testing.assert_array_equal(attention.numpy()[row, : int(t)].argmax(-1), read)
    for alpha in (0.0, 1.0):
        best = samplers.best_beams(tf.constant(scores), tf.constant(lengths), beam, alpha).numpy()
        gnmt = (scores / ((5.0 + lengths) / 6.0) ** alpha).reshape(B, beam)
        assert best.tolist() == (np.arange(B) * beam + gnmt.argmax(1)).tolist()
    # a short hypothesis ahead by total log-probability, behind by GNMT's score at α 1; and a bonus
    scores, lengths = tf.constant([-2.0, -2.5]), tf.constant([1, 7])
    assert samplers.best_beams(scores, lengths, 2).numpy().tolist() == [0]
    assert samplers.best_beams(scores, lengths, 2, 1.0).numpy().tolist() == [1]  # -2 / 1 against -2.5 / 2
    assert samplers.best_beams(scores, lengths, 2, 1.0, tf.constant([0.0, -1.0])).numpy().tolist() == [0]
