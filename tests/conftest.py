import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Commands run by the tests keep their XLA cache in a temporary directory, not in the user's home.
os.environ.setdefault("RNN_APPS_CACHE", tempfile.mkdtemp(prefix="rnn-apps-test-cache-"))

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="session")
def poems_file():
    return os.path.join(FIXTURES, "poems.txt")


@pytest.fixture(scope="session")
def tiny_poem_run(tmp_path_factory, poems_file):
    """A tiny Char-RNN trained for a few steps on the fixture poems (quality is irrelevant)."""
    from rnn_apps.apps.poetry import task

    run_dir = str(tmp_path_factory.mktemp("poem_run"))
    result = task.train(
        poems_file, run_dir, epochs=2, verbose=0, embedding_dim=16, units=24, num_layers=2,
        tokens_per_batch=512, min_count=1, val_fraction=0.1, seed=7, save_every=0,
        # the same weights on every machine (auto would take bfloat16 products only where the CPU runs them faster):
        # tests that compare engines sample from this model, and a near-tie may fall either way for other weights
        precision="float32",
    )
    return run_dir, result


@pytest.fixture(scope="session")
def tiny_poem_model(tmp_path_factory, tiny_poem_run):
    """The tiny model exported as a SavedModel under models/poetry/1."""
    from rnn_apps.apps.poetry.export import export_poetry

    run_dir, result = tiny_poem_run
    models = tmp_path_factory.mktemp("models")
    path = export_poetry(result["model"], result["vocab"], result["config"], str(models / "poetry"))
    return path
