"""Errors that the CLI reports as one line (they carry a message a person can act on)."""


def known_error_types() -> tuple:
    from rnn_apps.apps.caption.data import CaptionDataError
    from rnn_apps.apps.caption.images import CaptionError
    from rnn_apps.apps.poetry.data import CorpusError
    from rnn_apps.apps.poetry.generate import PoemError
    from rnn_apps.apps.sentiment.classify import SentimentError
    from rnn_apps.apps.sentiment.data import SentimentDataError
    from rnn_apps.apps.translate.data import TranslationDataError
    from rnn_apps.apps.translate.translate import TranslateError
    from rnn_apps.training import TrainingError

    return (CaptionDataError, CaptionError, CorpusError, PoemError, SentimentDataError, SentimentError, TranslationDataError,
            TranslateError, TrainingError, FileNotFoundError, FileExistsError)
