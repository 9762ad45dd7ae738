"""Translation tasks: train the sequence-to-sequence model (resumable, early stopping) and reload a run.

A run directory holds ``config.json`` (settings, data, corpus statistics, the English capitalisation table),
``source_vocab.json``, ``target_vocab.json``, ``checkpoints/``, ``history.jsonl``, ``best.weights.h5`` (the
weights of the epoch with the lowest validation loss so far) and, at the end, ``final.weights.h5`` (the
best epoch's weights). Training goes through :func:`rnn_apps.training.fit_resumable`, so ``resume=True``
continues an interrupted run at the same step, with the same data order; early stopping reads the
run's history, so it also survives a resume.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Optional

import numpy as np

from rnn_apps.apps import base as contract
from rnn_apps.apps.base import CONFIG_FILE, RunOptions, TrainResult
from rnn_apps.apps.translate import data as tdata
from rnn_apps.checks import check_settings
from rnn_apps.vocab import SPECIALS, Vocabulary

SOURCE_VOCAB = "source_vocab.json"
TARGET_VOCAB = "target_vocab.json"

DEFAULTS = dict(
    direction="en-zh",
    embedding_dim=256,
    encoder_units=256,
    encoder_layers=1,
    decoder_units=512,
    cell="lstm",
    attention="luong",
    attention_units=256,
    dropout=0.3,
    learning_rate=2e-3,
    clipnorm=1.0,
    batch_size=64,
    source_min_count=2,
    target_min_count=2,
    max_source_len=60,
    max_target_len=80,
    val_fraction=0.06,
    patience=3,
    seed=1234,
    placeholder_share=0.25,
    concat_share=0.3,
    average_best=3,
    # A word in Latin letters inside Chinese is one token (rnn_apps.apps.translate.text.tokenize_zh); runs
    # saved before this setting read every letter as a token (missing: False).
    zh_latin_words=True,
)


def compile_model(model, learning_rate: float, clipnorm: float, total_steps: int):
    """Adam on a cosine decay (:func:`rnn_apps.apps.base.compile_model`); cross-entropy averaged over the
    target tokens of a batch, and token accuracy."""
    return contract.compile_model(model, learning_rate, clipnorm, total_steps,
                                  **contract.token_classification(reduction="mean_with_sample_weight"))


def _dataset(plan: tdata.PairBatches, start_step: int, epochs: Optional[int]):
    import tensorflow as tf

    spec = (
        (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.int32)),
        tf.TensorSpec((None, None), tf.int32),
        tf.TensorSpec((None, None), tf.float32),
    )
    from rnn_apps.datasets import generator_dataset

    total = None if epochs is None else plan.steps_per_epoch * epochs - start_step
    return generator_dataset(lambda: plan.iterate(start_step, epochs), spec, total)


_SENTENCE_START = {".", "!", "?", '"', "'", ":", "-", "—", "(", "…"}


def truecase_table(sentences: list[str]) -> dict:
    """For each lowercase English token, its most frequent spelling away from the start of a sentence,
    when that is not the lowercase one (``{"tom": "Tom", "i": "I"}``)."""
    from rnn_apps.apps.translate.text import tokenize_py

    lower = tokenize_py(sentences, "en")
    cased = tokenize_py(sentences, "en", lowercase=False)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for lo, ca in zip(lower, cased):
        if len(lo) != len(ca):
            continue
        for i, (a, b) in enumerate(zip(lo, ca)):
            if i > 0 and lo[i - 1] not in _SENTENCE_START and b.lower() == a:
                counts[a][b] += 1
    table = {}
    for tok, c in counts.items():
        best, _ = max(c.items(), key=lambda kv: (kv[1], kv[0] == tok))
        if best != tok:
            table[tok] = best
    return table


def encode_side(token_lists: list[list[str]], vocab: Vocabulary, bos: bool) -> list[np.ndarray]:
    """Ids of token lists: ``[<bos>] ids <eos>`` (targets, ``bos=True``) or ``ids <eos>`` (sources)."""
    head = [vocab.bos_id] if bos else []
    return [np.array(head + vocab.encode(t) + [vocab.eos_id], np.int32) for t in token_lists]


def prepare_corpus(data_path: str, cfg: dict, vocabs: Optional[tuple] = None, verbose: int = 0, grow: bool = False):
    """Load, split, tokenize, (build or grow the vocabularies) and encode a corpus.

    With ``grow`` (fine-tuning), ``vocabs`` keep every id and get the new training tokens that are frequent
    enough appended (``stats["new_source_tokens"]``, ``stats["new_target_tokens"]``).

    Returns:
        dict with ``source_vocab``, ``target_vocab``, ``train``/``val`` (lists of (source ids, target ids)
        within the length limits), ``val_pairs`` (every validation :class:`Pair`), ``truecase``, ``stats``.
    """
    from rnn_apps.apps.translate.text import tokenize_py

    src_lang, tgt_lang = tdata.parse_direction(cfg["direction"])
    pairs = tdata.load_pairs(data_path)
    train_pairs, val_pairs = tdata.split_pairs(pairs, cfg["val_fraction"], cfg["seed"])
    if not train_pairs:
        raise tdata.TranslationDataError(f"{data_path}: no pairs left for training after the validation split.")
    tok = {}
    latin_words = cfg.get("zh_latin_words", False)
    for name, part in (("train", train_pairs), ("val", val_pairs)):
        tok[name] = (tokenize_py([p.side(src_lang) for p in part], src_lang, latin_words=latin_words),
                     tokenize_py([p.side(tgt_lang) for p in part], tgt_lang, latin_words=latin_words))
    english = [p.en for p in train_pairs]
    truecase = truecase_table(english)
    # Runs saved before placeholder copies existed have no such setting: they trained without them.
    share = cfg.get("placeholder_share", 0.0)
    names = {}
    n_copies = 0
    if share > 0:
        en_side = tok["train"][0] if src_lang == "en" else tok["train"][1]
        names = tdata.name_table(en_side, [p.zh for p in train_pairs], truecase)
        new_src, new_tgt = tdata.placeholder_pairs(tok["train"][0], tok["train"][1], names, cfg["direction"],
                                                   share, cfg["seed"])
        n_copies = len(new_src)
        tok["train"] = (tok["train"][0] + new_src, tok["train"][1] + new_tgt)
    # Joined pairs are drawn from the originals only (the placeholder copies above are not joined).
    concat_share = cfg.get("concat_share", 0.0)
    n_joined = 0
    joined = ([], [])
    if concat_share > 0:
        n_orig = len(train_pairs)
        new_src, new_tgt = tdata.concatenated_pairs(tok["train"][0][:n_orig], tok["train"][1][:n_orig], concat_share,
                                                    cfg["seed"], cfg["max_source_len"], cfg["max_target_len"])
        n_joined = len(new_src)
        joined = (new_src, new_tgt)
    grown = [0, 0]
    if vocabs is None or grow:
        built = (Vocabulary.build(tok["train"][0], min_count=cfg["source_min_count"]),
                 Vocabulary.build(tok["train"][1], min_count=cfg["target_min_count"]))
        if vocabs is None:
            src_vocab, tgt_vocab = built
        else:
            src_vocab, tgt_vocab = (Vocabulary(v.tokens[len(SPECIALS):]) for v in vocabs)
            grown = [len(v.extend(b.tokens[len(SPECIALS):])) for v, b in zip((src_vocab, tgt_vocab), built)]
    else:
        src_vocab, tgt_vocab = vocabs
    # Joined after the vocabularies are built, so that a join does not count a rare token twice.
    tok["train"] = (tok["train"][0] + joined[0], tok["train"][1] + joined[1])
    encoded = {}
    dropped = {}
    for name in ("train", "val"):
        s_ids = encode_side(tok[name][0], src_vocab, bos=False)
        t_ids = encode_side(tok[name][1], tgt_vocab, bos=True)
        keep = [(s, t) for s, t in zip(s_ids, t_ids)
                if 1 < len(s) <= cfg["max_source_len"] + 1 and len(t) <= cfg["max_target_len"] + 2]
        dropped[name] = len(s_ids) - len(keep)
        encoded[name] = keep

    def unk_rate(name, side, vocab):
        toks = [t for row in tok[name][side] for t in row]
        return round(sum(t not in vocab for t in toks) / max(1, len(toks)), 4)

    stats = {
        "pairs": len(pairs),
        "train_pairs": len(train_pairs),
        "val_pairs": len(val_pairs),
        "train_pairs_used": len(encoded["train"]),
        "val_pairs_used": len(encoded["val"]),
        "dropped_too_long": dropped,
        "names": len(names),
        "placeholder_pairs": n_copies,
        "concatenated_pairs": n_joined,
        "new_source_tokens": grown[0],
        "new_target_tokens": grown[1],
        "source_vocab_size": len(src_vocab),
        "target_vocab_size": len(tgt_vocab),
        "train_source_tokens": int(sum(len(s) - 1 for s, _ in encoded["train"])),
        "train_target_tokens": int(sum(len(t) - 2 for _, t in encoded["train"])),
        "val_source_unknown_rate": unk_rate("val", 0, src_vocab) if val_pairs else None,
        "val_target_unknown_rate": unk_rate("val", 1, tgt_vocab) if val_pairs else None,
    }
    return {"source_vocab": src_vocab, "target_vocab": tgt_vocab, "train": encoded["train"], "val": encoded["val"],
            "val_pairs": val_pairs, "truecase": truecase, "names": names, "stats": stats}


def train(data_path: str, run_dir: str, epochs: int = 30, *, init_from: Optional[str] = None, **options) -> TrainResult:
    """Train a translator on a TSV of sentence pairs; checkpoints and weights go to ``run_dir``.

    Fine-tuning (``init_from``): the run starts from an exported translator's weights and keeps its
    architecture, direction and vocabularies; tokens of the new data seen at least ``source_min_count`` /
    ``target_min_count`` times get new embedding and output rows (:func:`rnn_apps.training.assign_grown_weights`).

    Args:
        data_path: ``english<TAB>chinese`` pairs (see :mod:`rnn_apps.apps.translate.data`).
        run_dir: Where the run's config, vocabularies, checkpoints and logs live.
        epochs: Most epochs (early stopping on the validation loss may end the run sooner).
        init_from: An exported translator (version or app directory) to fine-tune. A resumed run starts
            from its checkpoint (the base is read again only when it has none).
        **options: The run's :class:`~rnn_apps.apps.base.RunOptions` (``resume``: continue the run in
            ``run_dir``, its saved settings winning) and any of :data:`DEFAULTS` (None values are ignored).

    Returns:
        A summary dict: ``step``, ``history``, ``val_loss`` (best), ``stats``, ``seconds``, ``stopped_early``,
        and the objects ``model``, ``source_vocab``, ``target_vocab``, ``config``.
    """
    from rnn_apps import training
    from rnn_apps.apps.translate.model import build_model

    run, overrides = RunOptions.split(options, save_every=200)
    check_settings(overrides)  # sizes and rates, before the run directory is written
    cfg, saved = training.run_settings(run_dir, DEFAULTS, overrides, run.resume, CONFIG_FILE, app="translate",
                                       data=os.path.abspath(data_path))
    vocabs = None
    base_weights = None
    init_from = (saved or {}).get("init_from", init_from)
    if init_from and not contract.resumes_from_checkpoint(run_dir, saved):
        from rnn_apps.apps.translate.export import load_exported_model
        from rnn_apps.apps.translate.model import ARCHITECTURE
        from rnn_apps.export import resolve_model_dir

        init_from = os.path.abspath(resolve_model_dir(init_from))  # a resumed run may run from elsewhere
        base, base_src, base_tgt, base_cfg, _ = load_exported_model(init_from)
        base_weights = [v.numpy() for v in base.weights]
        cfg.update({k: base_cfg[k] for k in (*ARCHITECTURE, "direction")})
        # the base's vocabulary was built reading Chinese one way: the new pairs are read the same way
        cfg["zh_latin_words"] = base_cfg.get("zh_latin_words", False)
        vocabs = (base_src, base_tgt)
    if saved is not None:
        vocabs = (Vocabulary.load(os.path.join(run_dir, SOURCE_VOCAB)), Vocabulary.load(os.path.join(run_dir, TARGET_VOCAB)))
    tdata.parse_direction(cfg["direction"])
    training.set_seed(cfg["seed"])
    t0 = time.time()
    try:
        corpus = prepare_corpus(data_path, cfg, vocabs, run.verbose, grow=bool(init_from) and saved is None)
    except tdata.TranslationDataError:
        # a corpus refused before anything was written leaves no half run directory behind
        training.discard_new_run(run_dir)
        raise
    stats = corpus["stats"]
    src_vocab, tgt_vocab = corpus["source_vocab"], corpus["target_vocab"]
    if run.verbose:
        print(f"Corpus: {stats['pairs']:,} pairs, {stats['train_pairs_used']:,} for training and "
              f"{stats['val_pairs']:,} for validation; vocabularies {stats['source_vocab_size']:,} (source) and "
              f"{stats['target_vocab_size']:,} (target) ({time.time() - t0:.0f} s).")
    src_vocab.save(os.path.join(run_dir, SOURCE_VOCAB))
    tgt_vocab.save(os.path.join(run_dir, TARGET_VOCAB))
    contract.write_run_config(run_dir, {"settings": cfg, "data": os.path.abspath(data_path), "stats": stats,
                                        "truecase": corpus["truecase"], "names": corpus["names"], "init_from": init_from},
                              app="translate", saved=saved)

    strat = training.get_strategy(run.strategy)
    train_src, train_tgt = zip(*corpus["train"])
    plan = tdata.PairBatches(list(train_src), list(train_tgt), cfg["batch_size"], seed=cfg["seed"],
                             multiple=strat.num_replicas_in_sync)
    val_plan = None
    if corpus["val"]:
        val_src, val_tgt = zip(*corpus["val"])
        val_plan = tdata.PairBatches(list(val_src), list(val_tgt), cfg["batch_size"], shuffle=False,
                                     multiple=strat.num_replicas_in_sync)
    with strat.scope():
        model = build_model(len(src_vocab), len(tgt_vocab), cfg)
        if base_weights is not None:
            # A resumed run then loads its checkpoint over these.
            contract.assign_grown_weights(model, base_weights)
        compile_model(model, cfg["learning_rate"], cfg["clipnorm"], plan.steps_per_epoch * epochs)
    result = contract.fit_run(
        model, lambda start: _dataset(plan, start, None), plan.steps_per_epoch, epochs, run_dir, run, strategy=strat,
        app="translate", validation_data=_dataset(val_plan, 0, 1) if val_plan else None, keep_best="val_loss",
        # without validation pairs (a small file, --val-fraction 0) there is no loss to stop on: every epoch
        patience=cfg["patience"] if val_plan else 0, average_best=cfg.get("average_best", 0),
    )
    result.update({
        "val_loss": result["best"],
        "stats": stats,
        "seconds": round(time.time() - t0, 1),
        "model": model,
        "source_vocab": src_vocab,
        "target_vocab": tgt_vocab,
        "config": cfg,
        "truecase": corpus["truecase"],
    })
    return result


def load_run_model(run_dir: str, weights: Optional[str] = None):
    """Rebuild the model of a run and load its final (else best, else newest checkpoint) weights.

    Returns:
        ``(model, source_vocab, target_vocab, config, truecase)``.
    """
    from rnn_apps import training
    from rnn_apps.apps.translate.model import build_model

    run = contract.read_run_config(run_dir, CONFIG_FILE, "translation", expect="translate")
    cfg = run["settings"]
    src_vocab = Vocabulary.load(os.path.join(run_dir, SOURCE_VOCAB))
    tgt_vocab = Vocabulary.load(os.path.join(run_dir, TARGET_VOCAB))
    model = build_model(len(src_vocab), len(tgt_vocab), cfg)
    contract.load_run_weights(model, run_dir, lambda m: compile_model(m, cfg["learning_rate"], cfg["clipnorm"], 1),
                              weights, fallbacks=(training.BEST_WEIGHTS,))
    return model, src_vocab, tgt_vocab, cfg, run.get("truecase", {})
