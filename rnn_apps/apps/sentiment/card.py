"""The review classifier's card (``rnn-apps card sentiment``): hub metadata and the validation accuracy the
export recorded (``assets.extra/sentiment.json``). The card's body is written at export by
:func:`rnn_apps.apps.sentiment.export.write_model_card`; :func:`rnn_apps.cards.write_card` adds the rest."""

from __future__ import annotations


def HUB(app: str, meta: dict) -> dict:
    """The card's front matter (model hubs read it); ``own_data`` for a model trained on reviews of its user's
    own."""
    cell = (meta.get("config") or {}).get("cell", "lstm")
    return {"language": ["en"], "license": "mit", "pipeline_tag": "text-classification",
            "tags": ["rnn", cell, "bidirectional", "sentiment-analysis", "tensorflow"], "datasets": ["stanfordnlp/imdb"],
            "task": {"type": "text-classification", "name": "Movie-review sentiment"},
            "dataset": {"type": "stanfordnlp/imdb", "name": "IMDB reviews (aclImdb), validation part of the train split",
                        "split": "validation"},
            "own_data": {"task": {"type": "text-classification", "name": "Review sentiment"}}}


def metrics(version_dir: str, meta: dict) -> list:
    """The validation accuracy of the model (and of its parts, when it has an n-gram branch)."""
    out = []
    if meta.get("val_accuracy") is not None:
        out.append({"type": "accuracy", "name": "Validation accuracy", "value": round(meta["val_accuracy"], 4)})
    figures = (meta.get("ngram") or {}).get("figures") or {}
    for key, name in (("rnn_val_accuracy", "Validation accuracy, recurrent classifier alone"),
                      ("ngram_val_accuracy", "Validation accuracy, n-gram branch alone")):
        if figures.get(key) is not None:
            out.append({"type": "accuracy", "name": name, "value": round(figures[key], 4)})
    return out


INPUTS = {
    "run_dir": "the training run (its data, settings and learning curves)",
    "notes": "a Markdown file of your own for the card's 'How this version was trained' section",
}


def sections(version_dir: str, meta: dict, facts: dict, previous: str = "", run_dir=None, notes=None) -> str:
    """The card's body as :func:`rnn_apps.apps.sentiment.export.write_model_card` writes it at export."""
    import tempfile

    from rnn_apps import cards
    from rnn_apps.apps.sentiment.export import write_model_card

    if run_dir is None:
        raise cards.CardError("The sentiment card's body is written from its training run: give run_dir.")
    text = cards.read_text(notes) if notes else None
    with tempfile.TemporaryDirectory(prefix="rnn-apps-card-") as tmp:
        with open(write_model_card(tmp, version_dir, run_dir, notes=text), encoding="utf-8") as f:
            return cards.split_card(f.read())[1]  # write_card writes the front matter (and the data it names)
