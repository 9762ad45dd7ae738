"""Benchmark `rnn-apps serve`: requests/s and p50/p99 latency at 1, 8 and 16 concurrent clients,
with server-side batching on and off.

Starts the server in-process on a free loopback port over a models directory and sends each
model a typical TF Serving predict request (one example) over keep-alive HTTP connections::

    python benchmarks/serve.py                     # every model under models/
    python benchmarks/serve.py --only poetry --seconds 5
    python benchmarks/serve.py --batching on --clients 1 8
    python benchmarks/serve.py --toy               # toy models built on the fly (models/ empty)

Both settings are measured in the same run, one after the other, and the last lines give the
speed-up of 8 clients over 1 with and without batching (requests/s ratio, each request one
example: for the poem model, poems per second). The clients are threads of a separate process, as
clients of a real server would be, though on the same cores; ``--in-process-clients`` runs them in the
server's process instead, where they also share its GIL (the older, lower figures).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

REVIEW = "A moving, beautifully acted film; the story stayed with me for days. I would watch it again."
SENTENCE = "The weather is nice today, so we are going to the park."
SENTENCE_ZH = "今天天气很好，所以我们要去公园。"  # for a Chinese-to-English translator


def build_toy_models(root: str) -> None:
    """Tiny stand-ins with the real apps' signatures (poetry, sentiment, translate, caption)."""
    import tensorflow as tf

    class Poetry(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt")])
        def serve(self, prompt):
            return {"text": tf.strings.join([prompt, "，春眠不觉晓，处处闻啼鸟。"])}

    class Sentiment(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            n = tf.cast(tf.strings.length(text), tf.float32)
            p = tf.sigmoid(n / 100.0 - 0.5)
            return {"probability": p, "label": tf.where(p > 0.5, "positive", "negative")}

    class Translate(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"translation": tf.strings.upper(text)}

    class Caption(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
        def serve(self, image):
            # Each image is decoded, as a real caption model's first step; the caption gives its size.
            size = tf.map_fn(lambda b: tf.shape(tf.io.decode_image(b, channels=3, expand_animations=False))[:2],
                             image, fn_output_signature=tf.int32)
            width, height = tf.strings.as_string(size[:, 1]), tf.strings.as_string(size[:, 0])
            return {"caption": tf.strings.join(["a ", width, "x", height, " picture"])}

    for name, cls in (("poetry", Poetry), ("sentiment", Sentiment), ("translate", Translate),
                      ("caption", Caption)):
        m = cls()
        version_dir = os.path.join(root, name, "1")
        tf.saved_model.save(m, version_dir, signatures={"serving_default": m.serve})
        os.makedirs(os.path.join(version_dir, "assets.extra"))
        with open(os.path.join(version_dir, "assets.extra", f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump({"format": f"rnn_apps.{name}/1", "config": {}}, f)  # the app, as each export states it


def small_png_b64() -> str:
    import tensorflow as tf

    y, x = np.mgrid[0:64, 0:64]
    img = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    return base64.b64encode(tf.io.encode_png(img).numpy()).decode("ascii")


def typical_request(app, sig: dict, source_language: str = ""):
    """A typical predict body (one example) for a model of ``app`` (its ``assets.extra/<app>.json``; a
    translator's ``source_language``, e.g. "zh"), or for a model of no known app whose ``serving_default``
    takes strings only; else None."""
    typical = {
        "poetry": lambda: ("poem", {"instances": ["春"]}),
        "caption": lambda: ("64x64 PNG", {"instances": [{"b64": small_png_b64()}]}),
        "forecast": lambda: ("96 values", {"instances": [[round(float(np.sin(i / 4.0)), 4) for i in range(96)]]}),
        "fill": lambda: ("poem line", {"instances": ["床前明月□，疑是地上霜。"]}),
        "translate": lambda: ("sentence", {"instances": [SENTENCE_ZH if source_language == "zh" else SENTENCE]}),
        "sentiment": lambda: ("review", {"instances": [REVIEW]}),
    }
    if app in typical:
        return typical[app]()
    inputs = sig.get("inputs", {})
    if inputs and all(v["dtype"] == "DT_STRING" and len(v["tensor_shape"]["dim"]) == 1 for v in inputs.values()):
        return "strings", {"instances": [{k: "test" for k in inputs}]}
    return None


def _batches(port: int, name: str):
    """(examples, model calls) so far for ``name``, from the server's Prometheus metrics.

    On a connection of its own: one kept open through a long measurement would have been closed by the
    server's idle timeout meanwhile.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/monitoring/prometheus/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    key = f':tensorflow:serving:batching_session:processed_batch_size_{{}}{{{{model_name="{name}"}}}} '
    found = {}
    for part in ("sum", "count"):
        line = next((x for x in text.splitlines() if x.startswith(key.format(part))), None)
        found[part] = float(line.rsplit(" ", 1)[1]) if line else 0.0
    return found["sum"], found["count"]


def _get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def run_load(port: int, path: str, body: bytes, clients: int, seconds: float):
    latencies, errors = [], []
    lock = threading.Lock()
    start_evt = threading.Event()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        mine, bad = [], []
        start_evt.wait()
        end = time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    bad.append(f"{r.status}: {data[:200]!r}")
            except Exception as e:  # noqa: BLE001
                bad.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            t1 = time.perf_counter()
            mine.append(t1 - t0)
            if t1 >= end:
                break
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    start_evt.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": len(latencies) / wall if wall > 0 else 0.0,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def run_load_elsewhere(port: int, path: str, body: bytes, clients: int, seconds: float):
    """:func:`run_load` in a child process (started fresh: it imports neither TensorFlow nor the server)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_load, (port, path, body, clients, seconds))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="models", help="models directory (<name>/<version>/saved_model.pb)")
    ap.add_argument("--toy", action="store_true", help="build and serve toy models instead")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16], help="concurrency levels")
    ap.add_argument("--batching", choices=["on", "off", "both"], default="both",
                    help="server-side batching setting(s) to measure")
    ap.add_argument("--only", nargs="+", default=None, help="only these models")
    ap.add_argument("--max-batch-size", type=int, default=8, help="the server's --max-batch-size")
    ap.add_argument("--batch-threads", type=int, default=0,
                    help="the server's --batch-threads (0: one per CPU core, the server's default)")
    ap.add_argument("--batch-timeout-ms", type=float, default=5.0, help="the server's --batch-timeout-ms")
    ap.add_argument("--intra-op-threads", type=int, default=0,
                    help="the server's --intra-op-threads (0: TensorFlow's choice, one per core)")
    ap.add_argument("--inter-op-threads", type=int, default=0,
                    help="the server's --inter-op-threads (0: TensorFlow's choice, one per core)")
    ap.add_argument("--in-process-clients", action="store_true",
                    help="run the client threads in the server's process (they then share its GIL)")
    args = ap.parse_args(argv)
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.batching]

    import logging

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "queue depth" is the point here

    from rnn_apps.serving.server import set_tensorflow_threads

    set_tensorflow_threads(args.intra_op_threads, args.inter_op_threads)  # before the toy models use TensorFlow
    tmp = None
    models_dir = args.models
    if args.toy:
        tmp = tempfile.TemporaryDirectory(prefix="serve-bench-")
        models_dir = tmp.name
        t0 = time.time()
        build_toy_models(models_dir)
        print(f"built toy models in {models_dir} ({time.time() - t0:.1f}s)")
    elif args.only:
        # Serve only the models measured: the others would load and warm up meanwhile, on the same cores.
        tmp = tempfile.TemporaryDirectory(prefix="serve-bench-")
        for name in args.only:
            if os.path.isdir(os.path.join(args.models, name)):
                os.symlink(os.path.abspath(os.path.join(args.models, name)), os.path.join(tmp.name, name))
        models_dir = tmp.name
    rows = []
    try:
        for batching in settings:
            if not _measure(models_dir, args, batching, rows):
                return 1
    finally:
        if tmp is not None:
            tmp.cleanup()

    print()
    head = (f"{'model':<15} {'request':<10} {'batching':>8} {'clients':>7} {'requests':>8} {'req/s':>8} "
            f"{'p50 ms':>8} {'p99 ms':>8}  notes")
    print(head)
    print("-" * len(head))
    failed = False
    rps = {}
    for row in rows:
        if len(row) == 5:
            print(f"{row[0]:<15} {row[1]:<10} {row[2]:>8} {row[3]:>7} {'':>8} {'':>8} {'':>8} {'':>8}  {row[4]}")
            failed = failed or not row[4].startswith("skipped")
            continue
        name, label, on, c, res, note = row
        failed = failed or bool(res["errors"])
        rps[(name, on, c)] = res["rps"]
        print(f"{name:<15} {label:<10} {'on' if on else 'off':>8} {c:>7} {res['requests']:>8} {res['rps']:>8.1f} "
              f"{res['p50']:>8.2f} {res['p99']:>8.2f}  {note}")
    print()
    for (name, on, c), r in sorted(rps.items()):
        base = rps.get((name, on, 1))
        if c != 1 and base:
            print(f"{name}: {c} clients / 1 client, batching {'on' if on else 'off'}: {r / base:.2f}x requests/s")
    return 1 if failed else 0


def _measure(models_dir: str, args, batching: bool, rows: list) -> bool:
    """Measure every model with batching on or off, appending table rows; False if there is none."""
    from rnn_apps.serve import make_server
    from rnn_apps.serving.checks import languages

    server = make_server(models_dir, port=0, intra_op_threads=args.intra_op_threads,
                         inter_op_threads=args.inter_op_threads,
                         enable_batching=batching, max_batch_size=args.max_batch_size,
                         batch_threads=args.batch_threads, batch_timeout=args.batch_timeout_ms / 1000)
    names = [n for n in server.registry.names() if args.only is None or n in args.only]
    if not names:
        print(f"no models under {models_dir!r} (<name>/<version>/saved_model.pb); try --toy", file=sys.stderr)
        server.shutdown()
        return False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"serving {', '.join(names)} on port {server.port}, batching {'on' if batching else 'off'} "
          f"(max batch {args.max_batch_size}, batch threads {args.batch_threads or os.cpu_count()}, "
          f"batch timeout {args.batch_timeout_ms:g} ms, intra-op threads {args.intra_op_threads or 'one per core'}); "
          f"{args.seconds:g}s per measurement, clients {args.clients} "
          f"({'in the server process' if args.in_process_clients else 'in a separate process'}), "
          f"{os.cpu_count()} CPU(s)")
    tag = "on" if batching else "off"
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        preloaded = {}
        for name in server.registry.names():  # every model loaded and warmed up before any measurement
            t0 = time.time()
            preloaded[name] = (_get(conn, f"/v1/models/{name}/metadata"), time.time() - t0)
        for name in names:
            (status, md), load_s = preloaded[name]
            if status != 200:
                rows.append((name, "-", tag, "-", f"unavailable: {md.get('error', '')[:60]}"))
                continue
            sig = md["metadata"]["signature_def"]["signature_def"].get("serving_default", {})
            loaded = server.registry.get(name)  # loaded by the metadata request
            req = typical_request(loaded.app, sig, languages(loaded.settings)[0])
            if req is None:
                rows.append((name, "-", tag, "-", "skipped: no typical request for inputs "
                                                  + ", ".join(sig.get("inputs", {}))))
                continue
            label, body = req
            payload = json.dumps(body).encode("utf-8")
            path = f"/v1/models/{name}:predict"
            # A new connection: the last one may have idled past the server's timeout during the
            # previous model's measurements.
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
            conn.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            warm = json.loads(r.read())
            if r.status != 200:
                rows.append((name, label, tag, "-", f"error {r.status}: {warm.get('error', '')[:80]}"))
                continue
            sample = json.dumps(warm, ensure_ascii=False)
            print(f"  {name} (v{md['model_spec']['version']}, loaded and warmed up in {load_s:.1f}s): "
                  f"{json.dumps(body, ensure_ascii=False)[:60]} -> {sample[:80]}")
            for c in args.clients:
                before = _batches(server.port, name)
                load = run_load if args.in_process_clients else run_load_elsewhere
                res = load(server.port, path, payload, c, args.seconds)
                after = _batches(server.port, name)
                calls = after[1] - before[1]
                note = f"{(after[0] - before[0]) / calls:.1f} examples per model call" if calls else ""
                if res["errors"]:
                    note += f"; {res['errors']} errors ({res['first_error'][:50]})"
                rows.append((name, label, batching, c, res, note))
        conn.close()
    finally:
        server.shutdown()
        thread.join(10)
    return True


if __name__ == "__main__":
    sys.exit(main())
