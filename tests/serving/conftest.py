"""Fixtures of the serving tests: toy models of every app, a server over them, and servers with options."""

import shutil
import threading

import pytest

from rnn_apps.serve import make_server
from toys import MAX_BODY, save_poetry, save_sentiment, save_caption, save_echo, save_fill, save_translate, save_forecast, mark_app


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    models = root / "models"
    save_poetry(str(models / "poetry" / "1"))
    save_sentiment(str(models / "sentiment" / "1"))
    save_caption(str(models / "caption" / "1"))
    save_echo(str(models / "echo" / "1"))
    save_fill(str(models / "fill" / "1"))
    save_forecast(str(models / "forecast" / "1"))
    save_translate(str(models / "translate" / "1"))
    for app in ("poetry", "sentiment", "caption", "fill", "forecast", "translate"):
        mark_app(models / app / "1", app)
    (models / "broken" / "1").mkdir(parents=True)
    (models / "broken" / "1" / "saved_model.pb").write_bytes(b"this is not a protobuf")
    shutil.copytree(models / "poetry" / "1", models / "rolling" / "1")
    save_poetry(str(root / "staging" / "rolling-2"), tail="，v2")
    (models / "notes.txt").write_text("not a model")
    return root


@pytest.fixture(scope="module")
def server(models):
    srv = make_server(str(models / "models"), host="127.0.0.1", port=0,
                      max_body_bytes=MAX_BODY, poll_seconds=0.2)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.port}"
    yield srv
    srv.shutdown()
    t.join(10)
    assert not t.is_alive()


@pytest.fixture()
def start(models):
    """Start a server with options over (a copy of) some toy models; stopped at the end of the test."""
    started = []

    def run(names, tmp, **options):
        for name in names:
            shutil.copytree(models / "models" / name, tmp / "m" / name)
        srv = make_server(str(tmp / "m"), port=0, poll_seconds=0, **options)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        srv.base = f"http://127.0.0.1:{srv.port}"
        started.append((srv, t))
        return srv

    yield run
    for srv, t in started:
        srv.shutdown()
        t.join(10)
