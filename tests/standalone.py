"""Run a script in a fresh Python process and read the JSON it prints last (e.g. a SavedModel loaded without
rnn_apps, to show that an export needs nothing of the package)."""

import json
import os
import subprocess
import sys

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run_script(code: str, tmp_path, *args: str, timeout: int = 300):
    """Write ``code`` to ``tmp_path/script.py``, run it with ``args`` (in ``tmp_path``), return its last line's JSON."""
    script = tmp_path / "script.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script), *map(str, args)], env=ENV, capture_output=True, text=True,
                       timeout=timeout, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
