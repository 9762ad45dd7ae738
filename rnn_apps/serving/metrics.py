"""Prometheus metrics of ``rnn-apps serve`` at ``/monitoring/prometheus/metrics`` (TF Serving's path).

Text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/), with TF
Serving's metric names where it has one:

* ``:tensorflow:serving:request_count{model_name, API, entrypoint, status}``: requests to ``/v1/models/...``
  answered, each once, by HTTP status: those refused before a model (403, 413) too, and a request whose client
  hung up before its answer as 499 (``API`` is predict, metadata or status, or classify and regress;
  ``entrypoint`` is REST);
* ``:tensorflow:serving:request_latency{model_name, API, entrypoint}``: histogram of seconds from the
  request line to the reply (TF Serving reports microseconds under the same name);
* ``:tensorflow:serving:batching_session:processed_batch_size{model_name}``: histogram of examples per
  model call (after server-side batching);
* ``:tensorflow:core:servable_state{model_name, version, state}``: 1 for each version's load state.
"""

from __future__ import annotations

import bisect
import threading
from typing import Callable, Dict, Iterable, List, Tuple

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

P = ":tensorflow:serving:"


def _labels(pairs: Iterable[Tuple[str, str]]) -> str:
    def esc(v: str) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in pairs) + "}"


class _Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0

    def observe(self, x: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, x)] += 1
        self.sum += x

    def lines(self, name: str, labels: Tuple[Tuple[str, str], ...]) -> List[str]:
        out, acc = [], 0
        for le, c in zip(self.buckets + (float("inf"),), self.counts):
            acc += c
            le_s = "+Inf" if le == float("inf") else f"{le:g}"
            out.append(f"{name}_bucket{_labels(labels + (('le', le_s),))} {acc}")
        out.append(f"{name}_sum{_labels(labels)} {self.sum:.6f}")
        out.append(f"{name}_count{_labels(labels)} {acc}")
        return out


class Metrics:
    """Counters and histograms of one server (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._requests: Dict[tuple, int] = {}
        self._latency: Dict[tuple, _Histogram] = {}
        self._batches: Dict[str, _Histogram] = {}

    def request(self, model: str, api: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (("model_name", model), ("API", api), ("entrypoint", "REST"), ("status", str(status)))
            self._requests[key] = self._requests.get(key, 0) + 1
            lkey = key[:3]
            h = self._latency.get(lkey)
            if h is None:
                h = self._latency[lkey] = _Histogram(LATENCY_BUCKETS)
            h.observe(seconds)

    def batch(self, model: str, size: int) -> None:
        with self._lock:
            h = self._batches.get(model)
            if h is None:
                h = self._batches[model] = _Histogram(BATCH_BUCKETS)
            h.observe(size)

    def render(self, states: Callable[[], List[Tuple[str, int, str]]]) -> str:
        """The exposition text; ``states()`` lists (model, version, state) of the known versions."""
        lines = [f"# HELP {P}request_count Requests answered, by model, API and HTTP status.",
                 f"# TYPE {P}request_count counter"]
        with self._lock:
            lines += [f"{P}request_count{_labels(k)} {v}" for k, v in sorted(self._requests.items())]
            lines += [f"# HELP {P}request_latency Seconds from request to reply.",
                      f"# TYPE {P}request_latency histogram"]
            for k, h in sorted(self._latency.items()):
                lines += h.lines(f"{P}request_latency", k)
            name = f"{P}batching_session:processed_batch_size"
            lines += [f"# HELP {name} Examples per model call (after server-side batching).",
                      f"# TYPE {name} histogram"]
            for m, h in sorted(self._batches.items()):
                lines += h.lines(name, (("model_name", m),))
        lines += ["# HELP :tensorflow:core:servable_state Load state of each model version (1: in this state).",
                  "# TYPE :tensorflow:core:servable_state gauge"]
        for model, version, state in states():
            lines.append(":tensorflow:core:servable_state"
                         + _labels((("model_name", model), ("version", str(version)), ("state", state))) + " 1")
        return "\n".join(lines) + "\n"
