"""The poem model's data: corpora (:mod:`rnn_apps.poems`), Chinese text (:mod:`rnn_apps.chinese`) and
length-bucketed batches (:mod:`rnn_apps.batches`), shared with the fill-in-the-blank app and gathered here
under the names the poem app has always used.
"""

from __future__ import annotations

from rnn_apps.batches import BatchPlan, batch_dataset
from rnn_apps.chinese import COMMA, PERIOD, PUNCT, SCRIPTS, convert_script, is_han
from rnn_apps.poems import (
    CorpusError,
    clean_poem,
    encode_poems,
    load_poems,
    read_raw_poems,
    split_poems,
)

__all__ = ["BatchPlan", "COMMA", "CorpusError", "PERIOD", "PUNCT", "SCRIPTS", "batch_dataset", "clean_poem",
           "convert_script", "encode_poems", "is_han", "load_poems", "read_raw_poems", "split_poems"]
