"""benchmarks/serve.py runs end to end (toy models, short measurements): it loads every model first and
prints each model's rates and the speed-ups of several clients over one."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("waitress")

REPO = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)


def test_serve_benchmark_runs_on_toy_models():
    out = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "serve.py"), "--toy", "--seconds", "0.3",
                          "--clients", "1", "2", "--batching", "both"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    for name in ("poetry", "sentiment", "translate", "caption"):
        assert sum(line.startswith(name + " ") for line in lines) == 4  # 1 and 2 clients, batching on and off
        assert any(line.startswith(f"{name}: 2 clients / 1 client, batching on:") for line in lines)
