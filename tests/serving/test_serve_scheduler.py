"""`rnn-apps serve`: the scheduler (no HTTP), warm-up requests and exports."""

import os
import threading

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("flask")
pytest.importorskip("waitress")

from toys import (  # noqa: E402
    save_fill, save_counter, predict,
)

# --------------------------------------------------------------------------- scheduler (no HTTP)


def test_scheduler_heavy_lane_deadline_and_light_requests():
    import numpy as np

    from rnn_apps.serving.batching import Deadline, ScheduleError, Scheduler, SchedulerConfig

    sched = Scheduler(SchedulerConfig(enable_batching=False, heavy_slots=1, heavy_queue=1, light_rows=2,
                                      max_batch_size=4))
    release, entered = threading.Event(), threading.Event()

    def slow(arrays):
        entered.set()
        release.wait(30)
        return {"y": arrays["x"]}

    heavy = {"x": np.arange(3)}
    first = threading.Thread(target=lambda: sched.run(("m",), "m", slow, heavy, Deadline(60)))
    first.start()
    assert entered.wait(30)
    try:
        # a short request is not queued behind the long one
        out = sched.run(("m",), "m", lambda a: {"y": a["x"] * 2}, {"x": np.arange(2)}, Deadline(60))
        assert out["y"].tolist() == [0, 2]
        # a second heavy request waits for the slot and is cancelled at its deadline
        with pytest.raises(ScheduleError) as e:
            sched.run(("m",), "m", slow, heavy, Deadline(0.3))
        assert e.value.status == 504
        # ... or when its client hangs up
        with pytest.raises(ScheduleError) as e:
            sched.run(("m",), "m", slow, heavy, Deadline(60, client_gone=lambda: True))
        assert e.value.status == 499
    finally:
        release.set()
        first.join(30)


def test_batch_waits_for_the_clients_of_the_batch_that_just_ended():
    """Closed-loop clients: requests that waited through a running batch do not start alone the moment it
    ends; they wait (up to the batch timeout, counted from then) for the clients whose answers just went
    out, so the next call merges them all instead of alternating halves."""
    import time

    import numpy as np

    from rnn_apps.serving.batching import BatchQueue, Deadline

    q = BatchQueue(max_batch_size=8, timeout=0.3, threads=1)
    gates = [threading.Event(), threading.Event()]
    calls = []

    def run(arrays):
        calls.append(len(arrays["x"]))
        if len(calls) <= len(gates):
            assert gates[len(calls) - 1].wait(30)
        return {"y": arrays["x"]}

    def client(i):
        t = threading.Thread(target=lambda: q.submit(run, {"x": np.array([i])}, Deadline(60)))
        t.start()
        return t

    def pending(n):
        end = time.monotonic() + 30
        while len(q._pending) != n and time.monotonic() < end:
            time.sleep(0.005)
        assert len(q._pending) == n

    first = client(0)
    pending(0)  # it runs (first call) and holds the queue
    a = [client(1), client(2)]
    pending(2)
    gates[0].set()  # the first call ends; the two waiting requests run together (second call)
    pending(0)
    b = [client(3), client(4)]
    pending(2)
    time.sleep(0.5)  # the second call lasts longer than the batch timeout
    gates[1].set()
    for t in [first, *a]:
        t.join(30)
    c = client(5)  # a client of the second call sends its next request
    for t in [*b, c]:
        t.join(30)
    assert calls == [1, 2, 3]


def test_a_large_request_with_a_scalar_input_runs_in_chunks_too():
    """A signature with a scalar input (translate's beam_size, fill's top_k) ran a large request in one
    call: 8,000 sentences of one text took 81 s past the 60 s deadline. Its rows now run in chunks, each
    with the scalar, and the deadline and a client's hang-up stop it between chunks."""
    import numpy as np

    from rnn_apps.serving.batching import Deadline, ScheduleError, Scheduler, SchedulerConfig

    sched = Scheduler(SchedulerConfig(heavy_slots=1, light_rows=2, max_batch_size=4))
    calls = []

    def run(arrays):
        calls.append((len(arrays["text"]), int(arrays["beam"])))
        return {"y": arrays["text"] * int(arrays["beam"])}

    out = sched.run(("m",), "m", run, {"text": np.arange(10), "beam": np.array(3)}, Deadline(60))
    assert out["y"].tolist() == [3 * i for i in range(10)] and calls == [(4, 3), (4, 3), (2, 3)]
    calls.clear()
    with pytest.raises(ScheduleError) as e:
        sched.run(("m",), "m", run, {"text": np.arange(10), "beam": np.array(3)},
                  Deadline(60, client_gone=lambda: len(calls) > 0))
    assert e.value.status == 499 and calls == [(4, 3)]


def test_scheduler_sheds_load_and_stops_between_chunks():
    import numpy as np

    from rnn_apps.serving.batching import Deadline, ScheduleError, Scheduler, SchedulerConfig

    sched = Scheduler(SchedulerConfig(heavy_slots=1, heavy_queue=0, light_rows=2, max_batch_size=2))
    calls = []
    gone = []

    def run(arrays):
        calls.append(len(arrays["x"]))
        gone.append(True)  # the client hangs up during the first chunk
        return {"y": arrays["x"]}

    with pytest.raises(ScheduleError) as e:
        sched.run(("m",), "m", run, {"x": np.arange(10)}, Deadline(60, client_gone=lambda: len(gone) > 0))
    assert e.value.status == 499 and calls == [2]  # the other 4 chunks never ran
    hold, entered = threading.Event(), threading.Event()

    def blocking(arrays):
        entered.set()
        hold.wait(30)
        return {"y": arrays["x"]}

    t = threading.Thread(target=lambda: sched.run(("m",), "m", blocking, {"x": np.arange(3)}, Deadline(60)))
    t.start()
    assert entered.wait(30)
    try:
        with pytest.raises(ScheduleError) as e:  # heavy_queue=0: nobody may wait for the busy slot
            sched.run(("m",), "m", blocking, {"x": np.arange(3)}, Deadline(60))
        assert e.value.status == 503
        with pytest.raises(ScheduleError) as e:  # one example, but known to be large (its app's limits)
            sched.run(("m",), "m", blocking, {"x": np.arange(1)}, Deadline(60), large=True)
        assert e.value.status == 503
        assert sched.run(("m",), "m", lambda a: {"y": a["x"]}, {"x": np.arange(1)}, Deadline(60))["y"].tolist() == [0]
    finally:
        hold.set()
        t.join(30)


# --------------------------------------------------------------------------- warm-up and export


def test_warmup_file_round_trip_and_wire_format(tmp_path):
    import numpy as np

    from rnn_apps.serving import warmup

    reqs = [("serving_default", {"prompt": np.array(["春".encode(), b"\xff"], dtype=object)}),
            ("fill", {"text": np.array([b"a"], dtype=object), "top_k": np.array(3, np.int32)}),
            ("serving_default", {"history": np.array([[1.5, -2.0]], np.float32)})]
    warmup.write_warmup(str(tmp_path), "m", reqs)
    back = warmup.read_warmup(str(tmp_path))
    assert [s for s, _ in back] == [s for s, _ in reqs]
    for (_, a), (_, b) in zip(reqs, back):
        assert sorted(a) == sorted(b)
        for k in a:
            assert b[k].dtype.kind == a[k].dtype.kind and b[k].tolist() == a[k].tolist()
    # the same bytes parsed by the protobuf library, from a descriptor of TF Serving's messages
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorflow.core.framework import tensor_pb2

    fd = descriptor_pb2.FileDescriptorProto(name="t.proto", package="tensorflow.serving",
                                            dependency=["tensorflow/core/framework/tensor.proto"])

    def msg(name, *fields):
        m = fd.message_type.add(name=name)
        for fname, number, tname in fields:
            m.field.add(name=fname, number=number, label=1, type=11 if tname else 9,
                        type_name=tname or None)
        return m

    msg("ModelSpec", ("name", 1, None), ("signature_name", 3, None))
    req = msg("PredictRequest", ("model_spec", 1, ".tensorflow.serving.ModelSpec"))
    entry = req.nested_type.add(name="InputsEntry", options=descriptor_pb2.MessageOptions(map_entry=True))
    entry.field.add(name="key", number=1, label=1, type=9)
    entry.field.add(name="value", number=2, label=1, type=11, type_name=".tensorflow.TensorProto")
    req.field.add(name="inputs", number=2, label=3, type=11,
                  type_name=".tensorflow.serving.PredictRequest.InputsEntry")
    msg("PredictLog", ("request", 1, ".tensorflow.serving.PredictRequest"))
    msg("PredictionLog", ("predict_log", 6, ".tensorflow.serving.PredictLog"))
    pool = descriptor_pool.DescriptorPool()
    for dep in _proto_deps(tensor_pb2.DESCRIPTOR):
        pool.Add(dep)
    pool.Add(fd)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.PredictionLog"))
    log = cls.FromString(warmup.encode_request("poetry", "fill", reqs[1][1]))
    r = log.predict_log.request
    assert (r.model_spec.name, r.model_spec.signature_name) == ("poetry", "fill")
    assert sorted(r.inputs) == ["text", "top_k"]
    assert tf.make_ndarray(r.inputs["top_k"]).tolist() == 3


def _proto_deps(fdesc, seen=None):
    """FileDescriptorProtos of ``fdesc`` and its imports, dependencies first."""
    from google.protobuf import descriptor_pb2

    seen = set() if seen is None else seen
    out = []
    for dep in fdesc.dependencies:
        out += _proto_deps(dep, seen)
    if fdesc.name not in seen:
        seen.add(fdesc.name)
        p = descriptor_pb2.FileDescriptorProto()
        fdesc.CopyToProto(p)
        out.append(p)
    return out


def test_server_replays_warmup_before_serving(tmp_path, start):
    import numpy as np

    from rnn_apps.serving import warmup

    vdir = tmp_path / "m" / "c" / "1"
    save_counter(str(vdir))
    warmup.write_warmup(str(vdir), "c", [("serving_default", {"x": np.array([b"a"] * n, dtype=object)})
                                         for n in (1, 2, 3)])
    srv = start([], tmp_path)
    assert predict(srv, "c", {"instances": ["q"]}) == (200, {"predictions": [4]})
    # a warm-up request that fails makes the version fail to load, as in TF Serving
    bad = tmp_path / "m" / "c" / "2"
    save_counter(str(bad))
    warmup.write_warmup(str(bad), "c", [("serving_default", {"nope": np.array([b"a"], dtype=object)})])
    status, err = predict(srv, "c", {"instances": ["q"]}, version=2)
    assert status == 503 and "warm-up" in err["error"]


def _record(payload_field: int, request: bytes) -> bytes:
    """A PredictionLog holding one log of field ``payload_field`` whose request is ``request``."""
    from rnn_apps.serving.warmup import _field

    return _field(payload_field, _field(1, request))


def _example_input(examples, context=None) -> bytes:
    """An ``Input`` message: an example_list (1), or an example_list_with_context (2) with ``context``."""
    from rnn_apps.serving.warmup import _field

    body = b"".join(_field(1, e) for e in examples)
    return _field(1, body) if context is None else _field(2, body + _field(2, context))


def _example(**features) -> bytes:
    feats = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()])) for k, v in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def _write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as w:
        for rec in records:
            w.write(rec)


def _counter_with_warmup(vdir, records):
    """A counting toy model at ``vdir`` whose warm-up file holds ``records``; returns the file's path."""
    from rnn_apps.serving import warmup

    save_counter(str(vdir))
    path = vdir / "assets.extra" / warmup.WARMUP_FILE
    path.parent.mkdir()
    _write_records(path, records)
    return path


def test_classify_regress_and_multi_inference_warmup_records_are_replayed(tmp_path, start):
    """TF Serving replays classify, regress and multi-inference logs too (tf.Example protos fed to the
    signature's one string input); with a context, each example's features add to the context's."""
    from rnn_apps.serving import warmup
    from rnn_apps.serving.warmup import _field

    spec = _field(1, _field(3, b"serving_default"))
    with_context = _example_input([_example(text="a film")], context=_example(text="ignored", lang="en"))
    records = [
        _record(2, spec + _field(2, _example_input([_example(text="good"), _example(text="bad")]))),  # classify
        _record(3, spec + _field(2, with_context)),  # regress
        # multi-inference: two tasks (model_spec 1 of each), one input (2)
        _record(4, _field(1, spec) + _field(1, spec) + _field(2, _example_input([_example(text="x")]))),
    ]
    requests = [r for rec in records for r in warmup.decode_requests(rec)]
    assert [(s, sorted(i)) for s, i in requests] == [("serving_default", [warmup.EXAMPLES])] * 4
    assert requests[0][1][warmup.EXAMPLES].size == 2
    parsed = tf.io.parse_single_example(requests[1][1][warmup.EXAMPLES][0],
                                        {k: tf.io.FixedLenFeature([], tf.string) for k in ("text", "lang")})
    assert {k: v.numpy() for k, v in parsed.items()} == {"text": b"a film", "lang": b"en"}
    _counter_with_warmup(tmp_path / "m" / "c" / "1", records)
    srv = start([], tmp_path)
    assert predict(srv, "c", {"instances": ["q"]}) == (200, {"predictions": [5]})  # 4 replayed, then this one


def test_a_warmup_file_that_tf_serving_refuses_fails_the_load_with_its_reason(tmp_path, start):
    """Records TF Serving cannot replay, more than 1,000 records, a cut file and inputs of another type
    fail the load, naming the file and the record; fixing the file (only it) makes the version load."""
    import numpy as np

    from rnn_apps.serving import warmup

    from rnn_apps.serving.warmup import _field

    good = warmup.encode_request("c", "serving_default", {"x": np.array([b"a"], dtype=object)})
    cases = {
        "more than 1,000 records": [good] * 1001,
        "record 2: the record holds no request TF Serving replays": [good, _record(5, b"")],  # a session-run log
        "record 1: unsupported wire type": [b"hello"],
        # a predict request whose tensor is not a TensorProto (protobuf's DecodeError, not a ValueError)
        "record 1: Error parsing message": [_record(6, _field(2, _field(1, b"x") + _field(2, b"\xff\xff")))],
        "input x is float32; the signature takes string":
            [warmup.encode_request("c", "serving_default", {"x": np.array([1.0], np.float32)})],
        "record 3 is cut short or corrupt": [good] * 3,
    }
    srv = None
    for version, (expected, records) in enumerate(cases.items(), start=1):
        path = _counter_with_warmup(tmp_path / "m" / "c" / str(version), records)
        if expected.startswith("record 3"):
            path.write_bytes(path.read_bytes()[:-5])
        srv = srv or start([], tmp_path)
        status, err = predict(srv, "c", {"instances": ["q"]}, version=version)
        assert status == 503 and expected in err["error"], (expected, err)
        assert "warm-up" in err["error"]
    _write_records(path, [good])  # the last version's file mended: it is loaded anew
    assert predict(srv, "c", {"instances": ["q"]}, version=len(cases)) == (200, {"predictions": [2]})


def test_builtin_warmup_starts_every_generating_signature_and_skips_unusable_settings(tiny_poem_model, tmp_path,
                                                                                     monkeypatch, caplog):
    """A model without a warm-up file gets the app's built-in requests, continuous batching's start function
    of each generating signature included; settings they cannot be made from are logged and the version
    still loads (a built-in request never fails a load)."""
    import shutil

    import numpy as np

    from rnn_apps.serving import registry, warmup

    vdir = str(tmp_path / "1")
    shutil.copytree(tiny_poem_model, vdir)
    os.remove(os.path.join(vdir, "assets.extra", warmup.WARMUP_FILE))
    model = registry.LoadedModel("poetry", 1, vdir)
    # continuous batching begins poems with a start function per signature (decode_start_generate,
    # decode_start_serving_default): each is warmed up once, the shared step function compiled once
    started, compiled = [], []
    start, warm = model.decoder.start, model.decoder.warm_up
    model.decoder.start = lambda sig, arrays: started.append(sig.name) or start(sig, arrays)
    model.decoder.warm_up = lambda state, rows: compiled.append(rows) or warm(state, rows)
    default_requests = warmup.default_requests
    assert model.warm_up() == len(default_requests("poetry", model.settings, model.signatures)) > 0
    assert sorted(started) == ["generate", "serving_default"] and compiled == [registry.WARMUP_ROWS]
    assert model.decoder is not None
    monkeypatch.setattr(warmup, "default_requests", lambda *a, **k: 1 / 0)
    with caplog.at_level("WARNING"):
        assert model.warm_up() == 0
    assert "no built-in warm-up (ZeroDivisionError" in caplog.text
    for beam, window in ((2**31, 2**40), ("4", 0)):  # the defaults stay within the apps' limits
        reqs = default_requests("caption", {"decoding": {"default_beam": beam}})
        assert {int(np.max(i["beam_size"])) for s, i in reqs if "beam_size" in i} <= {1, 16}
        (_, inputs), = default_requests("forecast", {"config": {"window": window}})
        assert inputs["history"].shape == (1, 48)


def test_builtin_warmup_poem_start_is_one_the_model_knows():
    """The poem graph refuses a start with characters it does not know, and a warm-up request that fails
    fails the version's load: a model without 春 gets an empty start."""
    from rnn_apps.serving.warmup import default_requests

    def starts(settings):
        return {i["prompt"][0].decode() for s, i in default_requests("poetry", settings) if s == "generate"}

    vocab = {"tokens": ["<pad>", "<unk>", "<bos>", "<eos>", "月", "光"]}
    assert starts({"vocab": vocab}) == {""}
    assert starts({"vocab": dict(vocab, tokens=vocab["tokens"] + ["春"])}) == {"春"}


def test_warmup_runs_the_input_checks_too(tiny_poem_model, monkeypatch):
    """The checks before a model call (here the poem model's unknown_characters signature) are warmed up
    with the model, so the first request does not pay for their first call; a warm-up request beyond the
    app's limits still warms the model."""
    from rnn_apps.serving import registry

    checked = []
    real = registry.check_limits
    monkeypatch.setattr(registry, "check_limits", lambda model, arrays: checked.append(arrays) or real(model, arrays))
    model = registry.LoadedModel("poetry", 1, tiny_poem_model)
    calls = []
    sig = model.signatures["unknown_characters"]
    fn = sig.fn
    sig.fn = lambda **kw: calls.append(kw) or fn(**kw)
    n = model.warm_up()
    assert n >= 1 and len(checked) == n  # the checks ran for every request
    assert calls  # and called the model's signature
    assert {frozenset(a) for a in checked} == {frozenset(sig.inputs) for sig in model.signatures.values()}
    monkeypatch.setattr(registry, "check_limits", lambda model, arrays: (_ for _ in ()).throw(
        registry.ApiError(400, "beyond the limits")))
    assert model.warm_up() >= 1  # refused by the checks, still replayed


def test_no_warmup_option(tmp_path, start):
    import numpy as np

    from rnn_apps.serving import warmup

    vdir = tmp_path / "m" / "c" / "1"
    save_counter(str(vdir))
    warmup.write_warmup(str(vdir), "c", [("serving_default", {"x": np.array([b"a"], dtype=object)})])
    srv = start([], tmp_path, warmup=False)
    assert predict(srv, "c", {"instances": ["q"]}) == (200, {"predictions": [1]})


def test_export_writes_warmup_and_removes_stale_temporaries(tmp_path):
    import subprocess
    import sys

    from rnn_apps import export
    from rnn_apps.serving import warmup

    app = tmp_path / "fill"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = app / f".tmp-1-{int(dead.stdout)}"  # an export killed mid-way (its process is gone)
    running = app / f".tmp-1-{os.getppid()}"  # an export still running (its process is alive)
    for d in (stale, running):
        d.mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"half")
    v = export.atomic_export(lambda p: save_fill(p), str(app), extra_files={"fill.json": {"config": {}}})
    assert not stale.exists() and running.exists()
    (sig, inputs), = warmup.read_warmup(v)
    assert sig == "serving_default" and inputs["text"].tolist() == ["床前明月□，疑是地上霜。".encode()]
    v2 = export.atomic_export(lambda p: save_fill(p), str(app), extra_files={"notes.json": {}})
    assert warmup.read_warmup(v2) is None  # not an app's export: no warm-up written
    # the export states what the page shows; a form the exporter gives is kept as it is
    from rnn_apps.serving import form

    assert export.read_extra(v, form.FORM_FILE) == form.app_form("fill")
    assert not os.path.exists(os.path.join(v2, "assets.extra", form.FORM_FILE))
    own = form.make_form("Complete", [form.field("text", "line")])
    v3 = export.atomic_export(lambda p: save_fill(p), str(app), extra_files={"fill.json": {}, form.FORM_FILE: own})
    assert export.read_extra(v3, form.FORM_FILE) == own


def test_large_by_app_limits():
    import numpy as np

    from rnn_apps import limits
    from rnn_apps.serving.checks import is_large

    fill = limits.APPS["fill"]
    texts = lambda *t: {"text": np.array([x.encode() for x in t], dtype=object)}  # noqa: E731
    assert not is_large(fill, texts("床前明月□" * 25))  # 125 characters
    assert is_large(fill, texts("床前明月□" * 26))
    assert is_large(fill, texts("床前明月□" * 13, "床前明月□" * 13))  # counted over the whole request
    assert not is_large(limits.APPS["sentiment"], {"text": np.array([b"a" * 10000], dtype=object)})
    assert not is_large(None, texts("床前明月□" * 100))


def test_scheduler_settings_are_checked():
    from rnn_apps.serving.batching import SchedulerConfig

    for bad in ({"max_batch_size": 0}, {"heavy_slots": 1.5}, {"heavy_queue": -1}, {"batch_timeout": -0.1},
                {"request_timeout": float("nan")}, {"light_rows": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SchedulerConfig(**bad)
