"""Library API over an exported sentiment model: classify reviews, read them from files or stdin.

The model does the work in its graph (see :mod:`rnn_apps.apps.sentiment.export`); this module loads it,
refuses input it cannot answer with a message a person can act on, and shapes the results.

* Empty (or whitespace-only) text, and text without a single word (only punctuation or symbols): an error
  naming the review.
* Long reviews: the model reads the first ``max_len // 4`` and the last ``max_len - max_len // 4`` words
  (100 and 300 for the shipped settings); the answer says ``"truncated": true``. A 1 MB review is answered
  in well under a second.
* Files and stdin: one review a line, UTF-8 (a byte-order mark is ignored, blank lines are skipped); a line
  that is not UTF-8 is an error naming its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Optional, Sequence

from rnn_apps import limits, textio
from rnn_apps.apps.base import Predictor, check_batch_size, check_is_text, read_meta, text_list


class SentimentError(ValueError):
    """Input the sentiment model cannot answer (with a message that says what to do)."""


@dataclass
class Prediction:
    """One answer: ``label`` (positive/negative) and ``probability`` (of the positive class)."""

    label: str
    probability: float
    words: int
    truncated: bool

    def to_dict(self) -> dict:
        return {"label": self.label, "probability": self.probability, "words": self.words, "truncated": self.truncated}


LIMITS = limits.APPS["sentiment"]
MAX_REVIEW_CHARS = LIMITS.max_chars["text"]  # the limit `rnn-apps serve` applies too


def read_reviews_file(path: str, stdin: Optional[BinaryIO] = None) -> list[str]:
    """Reviews of a file, one a line; ``-`` reads ``stdin`` (a binary stream). A ``.csv``/``.tsv`` file is read
    as a table: its text column (:func:`rnn_apps.apps.sentiment.data.read_review_column`)."""
    from rnn_apps.apps.sentiment import data as sdata

    if path != "-" and sdata.is_table(path):
        try:
            return sdata.read_review_column(path)
        except sdata.SentimentDataError as e:
            raise SentimentError(str(e)) from None
    return textio.read_texts_file(path, stdin, SentimentError, "review")


class SentimentClassifier(Predictor):
    """Classify reviews with an exported sentiment model.

    Args:
        model_dir: A version directory or ``models/sentiment`` (newest version); default: the shipped model.
    """

    app = "sentiment"

    def __init__(self, model_dir: Optional[str] = None):
        super().__init__(model_dir)
        self.max_len = int(self.config["max_len"])

    @classmethod
    def read_meta(cls, model_dir: str) -> dict:
        from rnn_apps.apps.sentiment.export import FORMAT

        return read_meta(model_dir, f"{cls.app}.json", cls.app, FORMAT)

    def _check(self, texts: Sequence[str]) -> None:
        self.check_texts(texts, SentimentError, "Review", "No review to classify.")  # the server's checks and words

    def probabilities(self, texts: Sequence[str], batch_size: int = 64):
        """P(positive) of each text as a float32 NumPy array, without the checks of :meth:`classify`.

        Texts are batched by length (a batch is padded to its longest text, at most ``max_len`` words).
        """
        return self._outputs("serving_default", ("probability",), texts, batch_size)["probability"]

    @property
    def has_branches(self) -> bool:
        """Whether the model answers from two branches (an n-gram branch beside the recurrent classifier)."""
        return "branches" in self.signatures

    def branch_probabilities(self, texts: Sequence[str], batch_size: int = 64) -> dict:
        """Each branch's P(positive) and the joint one, without the checks of :meth:`classify`.

        Returns:
            ``{"probability", "rnn_probability", "ngram_probability"}``, float32 NumPy arrays.

        Raises:
            SentimentError: the model has one branch only (:attr:`has_branches`).
        """
        if not self.has_branches:
            raise SentimentError(f"The model {self.model_dir} has no n-gram branch: it answers from its recurrent "
                                 "classifier alone.")
        return self._outputs("branches", ("probability", "rnn_probability", "ngram_probability"), texts, batch_size)

    def _outputs(self, signature: str, names: Sequence[str], texts: Sequence[str], batch_size: int) -> dict:
        """The outputs ``names`` of ``signature`` for ``texts``, in batches of similar lengths."""
        import numpy as np
        import tensorflow as tf

        texts = text_list(texts)
        step = min(check_batch_size(batch_size, SentimentError), LIMITS.max_batch)  # the model refuses larger ones
        for i, t in enumerate(texts, 1):
            check_is_text(t, i, SentimentError, "Review")
        fn = self.signatures[signature]
        out = {k: np.zeros(len(texts), np.float32) for k in names}
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for s in range(0, len(order), step):
            idx = order[s : s + step]
            got = fn(text=tf.constant([texts[i] for i in idx]))
            for k in names:
                out[k][idx] = got[k].numpy()
        return out

    def _count_words(self, texts: Sequence[str], batch_size: int):
        """``(batches, counts, known)``: the texts in batches of similar length (a batch is padded to its longest
        review, at most ``max_len`` words) as (indices, string tensor), and each text's words and known words
        (None when the model does not count them)."""
        import tensorflow as tf

        step = min(check_batch_size(batch_size, SentimentError), LIMITS.max_batch)  # the model refuses larger ones
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [(idx, tf.constant([texts[i].encode("utf-8") for i in idx]))
                   for idx in (order[s : s + step] for s in range(0, len(order), step))]
        counts, known = [0] * len(texts), [None] * len(texts)
        for idx, batch in batches:
            words = self.signatures["words"](text=batch)
            for j, i in enumerate(idx):
                counts[i] = int(words["words"][j])
                known[i] = int(words["known_words"][j]) if "known_words" in words else None
        return batches, counts, known

    @staticmethod
    def _check_words(text: str, i: int, count: int, known) -> None:
        with limits.errors_as(SentimentError):
            limits.check_word_count(LIMITS, textio.text_name(text, f"Review {i + 1}"), count, known)

    def refusals(self, texts: Sequence[str], batch_size: int = 32) -> dict:
        """What :meth:`classify` would refuse, review by review: index -> message (an empty or over-long review,
        one without a word, or without one the model knows), so that a caller can classify the others."""
        refused = self.text_refusals(texts, SentimentError, "Review")
        todo = [i for i in range(len(texts)) if i not in refused]
        if todo:
            _, counts, known = self._count_words([texts[i] for i in todo], batch_size)
            for i, count, k in zip(todo, counts, known):
                try:
                    self._check_words(texts[i], i, count, k)
                except SentimentError as e:
                    refused[i] = str(e)
        return refused

    def classify(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        """Label and P(positive) of each review, in order.

        Raises:
            SentimentError: an empty review, one without any word or without one the model knows, one that is
                not text.
        """
        self._check(texts)
        batches, counts, known = self._count_words(texts, batch_size)
        # Every review's words are counted (cheap) before any is classified, so that the error names the
        # first bad review of the input, not the first of the length order.
        for i in range(len(texts)):
            self._check_words(texts[i], i, counts[i], known[i])
        results: dict = {}
        for idx, batch in batches:
            pred = self.signatures["serving_default"](text=batch)
            for i, p, lab in zip(idx, pred["probability"].numpy(), pred["label"].numpy()):
                results[i] = Prediction(lab.decode("utf-8"), float(p), counts[i], counts[i] > self.max_len)
        return [results[i] for i in range(len(texts))]
