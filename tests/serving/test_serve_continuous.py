"""`rnn-apps serve`: continuous batching (rnn_apps.serving.continuous), with a stand-in decoder and with a
real exported poem model."""

import shutil
import threading
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("flask")
pytest.importorskip("waitress")

from rnn_apps.serving.batching import Deadline, ScheduleError  # noqa: E402
from rnn_apps.serving.continuous import MAX_STEPS, STEPS, ContinuousBatcher  # noqa: E402
from rnn_apps.serving.errors import ApiError  # noqa: E402
from toys import call, predict  # noqa: E402

WIDTH = 40


class Sig:
    name = "serving_default"
    outputs = {"text": None}


class CountingDecoder:
    """A decoder in NumPy: row i writes its value ``length`` times, one per step, then ends; like the poem
    model's step function it stops early when a row ends. Records each call's rows and step budget."""

    def __init__(self):
        self.calls = []
        self.hook = None  # called from the decoding thread before each call
        self.fail = False

    def start(self, sig, arrays):
        n = arrays["x"]
        if (n <= 0).any():
            raise ApiError(400, "lengths must be positive")
        rows = len(n)
        return {"n": n.astype(np.int32), "t": np.zeros(rows, np.int32), "done": np.zeros(rows, bool),
                "ids": np.zeros((rows, WIDTH), np.int32)}

    def steps(self, state, steps):
        if self.hook:
            self.hook(len(self.calls))
        self.calls.append((len(state["done"]), steps))
        if self.fail:
            raise RuntimeError("the step function broke")
        s = {k: v.copy() for k, v in state.items()}
        for _ in range(min(steps, WIDTH)):
            live = ~s["done"]
            if not live.any():
                break
            s["ids"][live, s["t"][live]] = s["n"][live]
            s["t"][live] += 1
            newly = live & (s["t"] >= s["n"])
            s["done"] |= newly
            if newly.any():
                break
        return s

    def text(self, ids):
        return {"text": np.array([f"{(row > 0).sum()}x{row.max()}".encode() for row in ids], object),
                "extra": np.zeros(len(ids))}


def _submit(batcher, n, results, deadline=None):
    def run():
        try:
            results[n] = batcher.submit(Sig, {"x": np.array([n])}, deadline or Deadline(60))["text"][0].decode()
        except (ApiError, ScheduleError) as e:
            results[n] = e

    t = threading.Thread(target=run)
    t.start()
    return t


def _wait(cond, what):
    end = time.monotonic() + 30
    while not cond():
        assert time.monotonic() < end, what
        time.sleep(0.002)


def test_requests_join_a_running_batch_and_leave_when_their_rows_end():
    dec = CountingDecoder()
    batcher = ContinuousBatcher(dec, max_rows=4, steps=2)
    gate, entered, results = threading.Event(), threading.Event(), {}

    def hook(i):
        if i == 0:
            entered.set()
            assert gate.wait(30)  # the first (lone) call runs while two more requests arrive
        if i == 2:  # requests 3 and 20 are running: request 6 arrives and joins 20 when 3 has ended
            threads.append(_submit(batcher, 6, results))
            _wait(lambda: batcher.load() == 3, "request 6 waiting")

    dec.hook = hook
    threads = [_submit(batcher, 30, results)]
    assert entered.wait(30)
    threads += [_submit(batcher, 3, results), _submit(batcher, 20, results)]
    _wait(lambda: batcher.load() == 3, "two requests waiting")
    gate.set()
    for t in threads:
        t.join(30)
    assert results == {30: "30x30", 3: "3x3", 20: "20x20", 6: "6x6"}  # only the signature's outputs
    assert dec.calls[0] == (1, MAX_STEPS)  # a lone request runs to its end in one call
    assert dec.calls[1] == (2, 2)  # with company: a few steps at a time
    assert (2, 2) in dec.calls[3:] and all(rows <= 2 for rows, _ in dec.calls)  # 6 joined 20; 3 had left
    _wait(batcher.idle, "the decoding thread to end")


def test_a_full_batch_makes_requests_wait_their_turn():
    dec = CountingDecoder()
    batcher = ContinuousBatcher(dec, max_rows=2, steps=4)
    results = {}
    threads = [_submit(batcher, n, results) for n in (9, 8, 7, 6, 5)]
    for t in threads:
        t.join(30)
    assert results == {n: f"{n}x{n}" for n in (9, 8, 7, 6, 5)}
    assert max(rows for rows, _ in dec.calls) <= 2


def test_deadlines_bad_requests_and_failures_stay_with_their_requests():
    dec = CountingDecoder()
    batcher = ContinuousBatcher(dec, max_rows=4, steps=1)
    gate, entered, results = threading.Event(), threading.Event(), {}
    dec.hook = lambda i: (entered.set(), gate.wait(30)) if i == 0 else time.sleep(0.02)
    threads = [_submit(batcher, 1, results)]  # holds the first call until the next two wait together
    assert entered.wait(30)
    checks = []
    hangs_up = Deadline(60, client_gone=lambda: checks.append(1) or len(checks) > 3)
    threads += [_submit(batcher, 35, results, Deadline(0.1)), _submit(batcher, 30, results, hangs_up),
                _submit(batcher, 20, results)]
    _wait(lambda: batcher.load() == 4, "three requests waiting")
    gate.set()
    for t in threads:
        t.join(30)
    # the request past its deadline and the one whose client hung up are dropped between steps
    assert isinstance(results[35], ScheduleError) and results[35].status == 504
    assert isinstance(results[30], ScheduleError) and results[30].status == 499
    assert results[20] == "20x20" and results[1] == "1x1"
    # a request the model refuses gets its own 400 and nobody else's
    with pytest.raises(ApiError) as e:
        batcher.submit(Sig, {"x": np.array([-1])}, Deadline(60))
    assert e.value.status == 400
    # a failing step function fails the requests running, as a 500; the next request runs again
    dec.fail = True
    with pytest.raises(ApiError) as e:
        batcher.submit(Sig, {"x": np.array([3])}, Deadline(60))
    assert e.value.status == 500 and "the step function broke" in e.value.message
    dec.fail = False
    assert batcher.submit(Sig, {"x": np.array([2])}, Deadline(60))["text"][0] == b"2x2"
    _wait(batcher.idle, "the decoding thread to end")


def test_a_request_that_finds_the_model_idle_calls_the_signature_directly():
    from rnn_apps.serving.batching import Scheduler, SchedulerConfig

    dec = CountingDecoder()
    sched = Scheduler(SchedulerConfig(max_batch_size=4, batch_threads=2))
    entered, release, direct = threading.Event(), threading.Event(), []

    def signature(arrays):
        direct.append(int(arrays["x"][0]))
        entered.set()
        assert release.wait(30)
        return {"text": np.array([b"direct"], object)}

    def run(n):
        return sched.run(("m", 1, 0, "serving_default"), "m", signature, {"x": np.array([n])}, Deadline(60),
                         continuous=(dec, Sig))["text"][0]

    results = {}
    first = threading.Thread(target=lambda: results.update(first=run(7)))
    first.start()
    assert entered.wait(30)
    assert run(3) == b"3x3"  # meanwhile another request is decoded by a batcher
    release.set()
    first.join(30)
    assert results == {"first": b"direct"} and direct == [7] and dec.calls == [(1, MAX_STEPS)]
    assert run(2) == b"direct" and direct == [7, 2]  # the model is idle again: directly


def test_requests_fill_one_batch_before_another_batcher_starts():
    from rnn_apps.serving.batching import Scheduler, SchedulerConfig

    dec = CountingDecoder()
    sched = Scheduler(SchedulerConfig(max_batch_size=3, batch_threads=2))
    key = ("m", 1, 0, "serving_default")
    entered, release, gate = threading.Event(), threading.Event(), threading.Event()

    def signature(arrays):  # the first request runs directly and holds the model busy
        entered.set()
        assert release.wait(30)
        return {"text": np.array([b"direct"], object)}

    def run(n, results):
        results[n] = sched.run(key, "m", signature, {"x": np.array([n])}, Deadline(60),
                               continuous=(dec, Sig))["text"][0]

    def loads():
        return sorted(q.load() for q in list(sched._queues.values()))

    results = {}
    threads = [threading.Thread(target=run, args=(9, results))]
    threads[0].start()
    assert entered.wait(30)
    in_call = threading.Event()

    def hook(i):  # the batch's first call waits until every request has been placed
        in_call.set()
        assert gate.wait(30)

    dec.hook = hook
    for n, expected in ((3, [1]), (4, [2]), (5, [3]), (6, [1, 3])):
        threads.append(threading.Thread(target=run, args=(n, results)))
        threads[-1].start()
        _wait(lambda: loads() == expected, f"request {n} to be placed: {expected}")
        if n == 3:  # a request counts in the load while it waits, so see 3's call begin alone before 4 comes
            assert in_call.wait(30)
    gate.set()
    release.set()
    for t in threads:
        t.join(30)
    assert results == {9: b"direct", 3: b"3x3", 4: b"4x4", 5: b"5x5", 6: b"6x6"}
    # 3 ran to its end first (it was alone when its call began), then 4 and 5 together until 4 ended, then
    # 5 alone; 6 found that batch full and started the second batcher
    assert sorted(dec.calls) == [(1, MAX_STEPS)] * 3 + [(2, STEPS)], dec.calls


def test_served_poem_model_batches_continuously_and_writes_generate_s_poems(tiny_poem_model, tmp_path):
    from rnn_apps.serve import make_server
    from rnn_apps.serving.predict import run_signature

    shutil.copytree(tiny_poem_model, tmp_path / "m" / "poetry" / "1")
    srv = make_server(str(tmp_path / "m"), port=0, poll_seconds=0, batch_threads=1, max_batch_size=8)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.port}"
    try:
        assert call(srv, "GET", "/v1/models/poetry/metadata")[0] == 200
        model = srv.registry.get("poetry")
        assert model.decoder is not None and model.decoder.supports("generate")
        assert "decode_steps" not in model.signatures  # a function for the server, not a signature
        batches, steps = [], model.decoder.steps
        model.decoder.steps = lambda state, n: batches.append(len(state["done"])) or steps(state, n)

        def row(i):
            return {"prompt": "春", "form": ["", "wujue", "qijue", "auto"][i % 4], "acrostic": "", "temperature": 1.1,
                    "top_k": 0, "top_p": 0.9, "seed": 100 + i, "max_length": 30 + i, "rhyme": "", "metre": ""}

        rows = [row(i) for i in range(12)]
        arrays = {k: np.array([r[k] for r in rows], dtype=object if isinstance(rows[0][k], str) else None)
                  for k in rows[0]}
        arrays = {k: (np.array([x.encode() for x in v], object) if v.dtype == object else v) for k, v in arrays.items()}
        want = [x.decode() for x in run_signature(model.signatures["generate"], arrays)["text"]]
        got = [None] * len(rows)

        def client(i):
            status, out = predict(srv, "poetry", {"signature_name": "generate", "instances": [rows[i]]})
            assert status == 200, out
            got[i] = out["predictions"][0]

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(rows))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert [g["text"] for g in got] == want
        assert batches and max(batches) <= 8  # decoded by the continuous batcher
        assert all(g["characters"] == len(g["text"]) for g in got)
        # serving_default through the same batch: its one output
        status, out = predict(srv, "poetry", {"instances": ["春", "月"]})
        assert status == 200 and [p[0] for p in out["predictions"]] == ["春", "月"]
        # ... the command's default poem: a drawn form that rhymes and scans
        from rnn_apps.apps.poetry.prosody import Tables, check_poem

        tables = Tables.load()
        for poem in out["predictions"]:
            got = check_poem(poem, tables, "pingshui")
            assert got["form"] in ("wujue", "qijue", "wulv", "qilv"), (poem, got)
            assert got["rhyme"]["ok"] and got["metre"]["loose_ok"], (poem, got)
        status, out = predict(srv, "poetry", {"instances": ["春X"]})
        assert status == 400 and "X" in out["error"]
    finally:
        srv.shutdown()
        t.join(10)


def test_served_poem_model_refuses_a_start_the_acrostic_contradicts(tiny_poem_model, tmp_path):
    """Over REST as from the library: a start and an acrostic that disagree at a line head get the command's
    refusal (the graph alone would put the acrostic's character in place of the start's); where they
    disagree in some forms only, ``auto`` draws among the others and the poem begins with the start."""
    from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator
    from rnn_apps.serve import make_server

    shutil.copytree(tiny_poem_model, tmp_path / "m" / "poetry" / "1")
    srv = make_server(str(tmp_path / "m"), port=0, poll_seconds=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.port}"
    gen = PoemGenerator(tiny_poem_model, engine="tensorflow")
    known = [c for c in "春风吹拂柳枝夏秋冬月花山水" if not gen.unknown_characters(c)]
    start2, other = known[:2], next(c for c in known[2:] if c != known[0])  # a start, a head it does not begin with
    start2 = "".join(start2)

    def row(prompt, acrostic, form, seed=7):
        return {"prompt": prompt, "form": form, "acrostic": acrostic, "temperature": 0.8, "top_k": 0,
                "top_p": 0.9, "seed": seed, "max_length": 64, "rhyme": "", "metre": ""}

    try:
        for form in ("wujue", "auto", ""):
            with pytest.raises(PoemError) as e:
                gen.generate(start2, other, form, 1, seed=7)
            status, out = predict(srv, "poetry", {"signature_name": "generate", "instances": [row(start2, other, form)]})
            assert status == 400 and out["error"] == str(e.value), out
        # an acrostic with more heads than the form has lines: the command's words, not the graph's
        five = "".join(known[:5])
        with pytest.raises(PoemError) as e:
            gen.generate("", five, "wujue", 1, seed=7)
        status, out = predict(srv, "poetry", {"signature_name": "generate", "instances": [row("", five, "wujue")]})
        assert status == 400 and out["error"] == str(e.value) == \
            "wujue (五言绝句) has 4 lines, but the acrostic has 5 characters.", out
        # two poems: the second is named
        status, out = predict(srv, "poetry", {"signature_name": "generate",
                                              "instances": [row(start2, start2, "auto"), row(start2, other, "wujue")]})
        assert status == 400 and out["error"].endswith("(poem 1)"), out
        # a start of 6 characters whose 6th is not the acrostic's 2nd head: it opens line 2 of a five-character
        # form with the wrong character, so auto writes a seven-character poem
        k0, k1, k2 = known[0], known[1], next(c for c in known[2:] if c not in (known[0], known[1]))
        start6, heads = k0 + k1 * 5, k0 + k2 * 3
        for seed in range(4):
            status, out = predict(srv, "poetry", {"signature_name": "generate",
                                                  "instances": [row(start6, heads, "auto", seed)]})
            assert status == 200, out
            text = out["predictions"][0]["text"]
            assert text.startswith(start6) and len(text.split("，")[0]) == 7, text
            want = gen.generate(start6, heads, "auto", 1, temperature=0.8, top_k=0, top_p=0.9, seed=seed,
                                max_length=64)[0].text
            assert text == want
    finally:
        srv.shutdown()
        t.join(10)
