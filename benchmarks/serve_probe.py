"""Hostile and heavy requests against `rnn-apps serve` over the shipped models: status, time, server memory.

Starts ``rnn-apps serve`` as a child process on a free loopback port (so that its memory is its own),
sends each case once, and prints the answer's status and first words, the time it took, and the
server's resident memory (VmRSS) after it, plus its peak (VmHWM) at the end::

    python benchmarks/serve_probe.py                     # the models under models/
    python benchmarks/serve_probe.py --warmup-effect     # first-request latency with and without warm-up

Every case is refused with a 4xx or bounded (finishes in seconds); the figures show how much.
Only loopback (127.0.0.1) is contacted.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def start_server(models: str, *extra: str):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "rnn_apps.cli", "serve", "--models", models, "--port", "0",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        m = re.search(r"http://127\.0\.0\.1:(\d+)/v1/models", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain the log
            return proc, int(m.group(1))
    raise SystemExit(f"the server did not start (exit {proc.wait()})")


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def request(port, method, path, body=b"", headers=None, timeout=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (e.g. 413) and closed before the whole body was sent
        r = conn.getresponse()
        data = r.read()
        return r.status, data, time.perf_counter() - t0
    finally:
        conn.close()


def predict(port, model, body, headers=None, timeout=300):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    return request(port, "POST", f"/v1/models/{model}:predict", raw, headers, timeout)


def apps_to_models(models_dir: str) -> dict:
    from rnn_apps.export import latest_version_dir
    from rnn_apps.serving.checks import model_app

    out = {}
    for name in sorted(os.listdir(models_dir)):
        v = latest_version_dir(os.path.join(models_dir, name))
        app = model_app(v) if v else None
        if app and app not in out:
            out[app] = name
    return out


def big_png(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def cases(m: dict, port: int):
    """(label, function(port) -> (status, body, seconds))."""
    P, F, S, T, C, R = (m.get(k) for k in ("poetry", "fill", "sentiment", "translate", "caption", "forecast"))
    gen = {"prompt": "春", "form": "", "acrostic": "", "temperature": 0.8, "top_p": 0.9, "top_k": 0, "seed": 1,
           "max_length": 64}
    if P:  # inputs this version's generate signature has beyond those: "" or 0
        _, md, _ = request(port, "GET", f"/v1/models/{P}/metadata")
        sig = json.loads(md)["metadata"]["signature_def"]["signature_def"].get("generate", {})
        for k, info in sig.get("inputs", {}).items():
            gen.setdefault(k, "" if info["dtype"] == "DT_STRING" else 0)
    out = []
    if F:
        out += [
            ("fill: 1,000 characters", lambda p: predict(p, F, {"instances": ["床前明月□" * 200]})),
            ("fill: 14 MB body", lambda p: predict(p, F, {"instances": ["床前明月□" * 980_000]})),
            ("fill: 512 characters, 64 blanks (largest accepted)",
             lambda p: predict(p, F, {"instances": ["床前□月光，" * 64 + ("疑是地上霜。" * 22)[:128]]})),
        ]
    if P:
        out += [
            ("poetry: 1,000 prompts", lambda p: predict(p, P, {"instances": ["春"] * 1000})),
            ("poetry: 64 prompts (largest accepted)", lambda p: predict(p, P, {"instances": ["春"] * 64})),
            ("poetry: temperature NaN", lambda p: predict(p, P, json.dumps(
                {"signature_name": "generate", "instances": [dict(gen, temperature=float("nan"))]}).encode())),
            ("poetry: temperature -1", lambda p: predict(p, P, {"signature_name": "generate",
                                                                 "instances": [dict(gen, temperature=-1.0)]})),
            ("poetry: top_p 0", lambda p: predict(p, P, {"signature_name": "generate",
                                                          "instances": [dict(gen, top_p=0.0)]})),
        ]
    if C:
        png = {"b64": base64.b64encode(big_png(64, 64)).decode()}
        out += [
            ("caption: beam_size 20,000", lambda p: predict(p, C, {"signature_name": "caption", "instances": [
                {"image": png, "beam_size": 20000}]})),
            ("caption: 12000x12000 PNG", lambda p: predict(p, C, {"instances": [
                {"b64": base64.b64encode(big_png(12000, 12000)).decode()}]})),
            ("caption: invalid base64", lambda p: predict(p, C, {"instances": [{"b64": "!!!not base64!!!"}]})),
        ]
    if S:
        review = " ".join(["good"] * 60)
        out += [
            ("sentiment: 40,000 reviews of 60 words", lambda p: predict(p, S, {"instances": [review] * 40000})),
            ("sentiment: empty review", lambda p: predict(p, S, {"instances": [""]})),
            ("sentiment: punctuation only", lambda p: predict(p, S, {"instances": ["!!! ..."]})),
        ]
    if T:
        out += [
            ("translate: empty text", lambda p: predict(p, T, {"instances": [""]})),
            ("translate: unknown words only", lambda p: predict(p, T, {"instances": ["qzxv blorfing wugs"]})),
            ("translate: a paragraph of 40 sentences (cut into sentences, as the command does)",
             lambda p: predict(p, T, {"instances": [" ".join(["The weather is nice today, so we are going to the "
                                                             "park."] * 40)]})),
            ("translate: 100,001 characters", lambda p: predict(p, T, {"instances": ["a" * 100_001]})),
        ]
    if R:
        out += [("forecast: NaN history", lambda p: predict(p, R, b'{"instances": [[' + b"NaN, " * 99 + b"1.0]]}"))]
    if P and F:
        out += [("2 fills of 512 characters at once: a 1-poem request meanwhile",
                 lambda p: short_behind_long(p, F, P, {"instances": ["床前□月光，" * 64 + ("疑是地上霜。" * 22)[:128]]}))]
    if P:
        out += [
            ("JSON: lone surrogate", lambda p: predict(p, P, b'{"instances": ["\\ud800"]}')),
            ("JSON: nested 100,000 deep", lambda p: predict(p, P, b'{"instances": ' + b"[" * 100000 + b"]" * 100000 + b"}")),
            ("URL: /versions/\u00b2", lambda p: request(p, "GET", f"/v1/models/{P}/versions/%C2%B2")),
            ("gzip bomb: 256 MB of spaces", lambda p: predict(p, P, gzip.compress(b" " * 2**28, 1),
                                                            {"Content-Encoding": "gzip"})),
            ("cross-site text/plain POST", lambda p: predict(p, P, {"instances": ["春"]}, {
                "Content-Type": "text/plain", "Origin": "http://evil.example"})),
            ("Host: evil.example", lambda p: request(p, "GET", "/v1/models", headers={"Host": "evil.example"})),
            ("100 idle connections, then a poem", lambda p: idle_then(p, P)),
            ("2 poetry batches of 64 at once: a 1-poem request meanwhile",
             lambda p: short_behind_long(p, P, P, {"instances": ["月"] * 64})),
            ("client hangs up during a batch of 64", lambda p: hang_up(p, P)),
        ]
    return out


def idle_then(port, model):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    try:
        time.sleep(1.5)
        return predict(port, model, {"instances": ["春"]}, timeout=120)
    finally:
        for s in socks:
            s.close()


def short_behind_long(port, long_model, short_model, long_body):
    """Two long requests at once, and a short one sent while they run: its answer and time."""
    results = []
    heavy = [threading.Thread(target=lambda: results.append(predict(port, long_model, long_body)))
             for _ in range(2)]
    for t in heavy:
        t.start()
    time.sleep(0.5)
    light = predict(port, short_model, {"instances": ["春"]})
    for t in heavy:
        t.join()
    long_s = ", ".join(f"{r[2]:.1f}" for r in results)
    return light[0], light[1][:60] + f" (the long requests took {long_s} s)".encode(), light[2]


def hang_up(port, model):
    t0 = time.perf_counter()
    try:
        predict(port, model, {"instances": ["春"] * 64}, timeout=0.5)
    except (socket.timeout, TimeoutError):
        pass
    time.sleep(2)
    status, text, _ = request(port, "GET", "/monitoring/prometheus/metrics")
    n = sum(float(x.rsplit(" ", 1)[1]) for x in text.decode().splitlines()
            if x.startswith(":tensorflow:serving:request_count") and 'status="499"' in x)
    return status, f"{n:g} request(s) cancelled (499) in the metrics".encode(), time.perf_counter() - t0


def probe(models: str) -> None:
    m = apps_to_models(models)
    proc, port = start_server(models)
    try:
        for app, name in m.items():  # load every model before measuring (metadata waits for the load; status does not)
            request(port, "GET", f"/v1/models/{name}/metadata")
        print(f"server pid {proc.pid}, port {port}; models {m}; memory after loading {rss_mb(proc.pid):.0f} MB")
        print(f"{'case':<58} {'status':>6} {'seconds':>8} {'RSS MB':>7}  answer")
        for label, fn in cases(m, port):
            status, body, secs = fn(port)
            text = body.decode("utf-8", "replace").replace("\n", " ")
            text = re.sub(r"\s+", " ", text)[:110]
            print(f"{label:<58} {status:>6} {secs:>8.2f} {rss_mb(proc.pid):>7.0f}  {text}", flush=True)
        print(f"peak server memory (VmHWM): {rss_mb(proc.pid, 'VmHWM'):.0f} MB")
    finally:
        proc.terminate()
        proc.wait(30)


def rest_body(sig: str, inputs: dict) -> dict:
    """A REST predict body (columnar ``inputs``) of one example of a warm-up request, its values written as
    the server writes outputs (bytes that are not UTF-8 as ``{"b64": ...}``)."""
    from rnn_apps.serving.codec import to_json

    return {"signature_name": sig, "inputs": {k: to_json(v if v.ndim == 0 else v[:1], k) for k, v in inputs.items()}}


def warmup_effect(models: str) -> None:
    """First and second request to every signature of every model, with and without warm-up."""
    from rnn_apps.export import latest_version_dir
    from rnn_apps.serving.checks import app_settings, model_app
    from rnn_apps.serving.registry import signature_defs
    from rnn_apps.serving.warmup import default_requests

    bodies = {}  # model -> [(signature, body)], one per signature
    for name in sorted(os.listdir(models)):
        v = latest_version_dir(os.path.join(models, name))
        app = model_app(v) if v else None
        if not app:
            continue
        seen = {}
        for sig, inputs in default_requests(app, app_settings(v, app), signatures=signature_defs(v)):
            seen.setdefault(sig, rest_body(sig, inputs))
        bodies[name] = list(seen.items())
    print(f"{'model':<16} {'signature':<20} {'warm-up':>8} {'load s':>7} {'1st ms':>8} {'2nd ms':>8}")
    for flag in ("--warmup", "--no-warmup"):
        proc, port = start_server(models, flag, "--poll-seconds", "0")
        try:
            for name, sigs in bodies.items():
                _, _, load = request(port, "GET", f"/v1/models/{name}/metadata")  # loads (and warms up) the model
                for sig, body in sigs:
                    s1, _, first = predict(port, name, body)
                    s2, _, second = predict(port, name, body)
                    print(f"{name:<16} {sig:<20} {flag[2:]:>8} {load:>7.1f} {first * 1000:>8.0f} {second * 1000:>8.0f}"
                          + ("" if s1 == s2 == 200 else f"  (status {s1}, {s2})"), flush=True)
                    load = 0.0
        finally:
            proc.terminate()
            proc.wait(30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="models", help="models directory (<name>/<version>/saved_model.pb)")
    ap.add_argument("--warmup-effect", action="store_true", help="measure first-request latency instead")
    args = ap.parse_args(argv)
    (warmup_effect if args.warmup_effect else probe)(args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
