"""Errors that the CLI reports as one line (they carry a message a person can act on)."""


def known_error_types() -> tuple:
    from rnn_apps.apps.poetry.data import CorpusError
    from rnn_apps.apps.poetry.generate import PoemError
    from rnn_apps.training import TrainingError

    return (CorpusError, PoemError, TrainingError, FileNotFoundError, FileExistsError)
