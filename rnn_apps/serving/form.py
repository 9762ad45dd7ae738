"""What form the try-it page of ``rnn-apps serve`` shows for a model: its *page form*.

A page form names one signature, the label of its button and, per input, the widget that collects it::

    {"format": "rnn_apps.page_form/1", "signature": "serving_default", "action": "Translate",
     "fields": [{"input": "text", "widget": "textarea", "label": "text", "placeholder": "an English sentence"}]}

Widgets: ``textarea`` and ``line`` (text), ``image`` (a file, sent as base64), ``number`` (one number) and
``numbers`` (a list of numbers, comma- or space-separated). The page reads the form from the model's metadata
(``GET /v1/models/<name>/metadata`` answers it as ``metadata.page_form``) and guesses nothing itself.

An export states its form in ``assets.extra/page_form.json`` (:func:`write_form`). For a model exported
before that, :func:`page_form` derives it once, when the version loads, from what the export did state: its
app (``assets.extra/<app>.json``, with its settings) and its signature. Inputs the form does not name get a
widget from their dtype and shape, so a model of no known app gets a working form too.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Mapping, Optional

FORM_FILE = "page_form.json"
FORMAT = "rnn_apps.page_form/1"
WIDGETS = ("textarea", "line", "image", "number", "numbers")
DEFAULT_SIGNATURE = "serving_default"

_LANGUAGES = {"en": "English", "zh": "Chinese"}


class FormError(ValueError):
    """A page form that is not well formed (the message says which part)."""


def field(input_name: str, widget: str, label: Optional[str] = None, placeholder: str = "") -> dict:
    """One input of a page form.

    Args:
        input_name: The signature input it fills.
        widget: One of :data:`WIDGETS`.
        label: What the page writes above it (default: the input name).
        placeholder: A hint shown in the empty widget (an example input).
    """
    if widget not in WIDGETS:
        raise FormError(f"widget must be one of {', '.join(WIDGETS)}; received {widget!r}.")
    if not isinstance(input_name, str) or not input_name:
        raise FormError(f"input must be a non-empty string; received {input_name!r}.")
    return {"input": input_name, "widget": widget, "label": label or input_name, "placeholder": placeholder}


def make_form(action: str, fields: List[dict], signature: str = DEFAULT_SIGNATURE) -> dict:
    """A page form: the button's label ``action``, the ``fields`` (:func:`field`) and the signature they fill."""
    form = {"format": FORMAT, "signature": signature, "action": action, "fields": list(fields)}
    check_form(form)
    return form


def check_form(form) -> None:
    """Raise :class:`FormError` unless ``form`` is a well-formed page form (any input names)."""
    if not isinstance(form, dict):
        raise FormError(f"a page form is a JSON object; received {type(form).__name__}.")
    if form.get("format") != FORMAT:
        raise FormError(f"format must be {FORMAT!r}; received {form.get('format')!r}.")
    for key in ("signature", "action"):
        if not isinstance(form.get(key), str) or not form[key]:
            raise FormError(f"{key} must be a non-empty string; received {form.get(key)!r}.")
    fields = form.get("fields")
    if not isinstance(fields, list):
        raise FormError(f"fields must be a list; received {type(fields).__name__}.")
    for i, f in enumerate(fields):
        if not isinstance(f, dict):
            raise FormError(f"fields[{i}] must be an object; received {type(f).__name__}.")
        field(f.get("input"), f.get("widget"), f.get("label"), f.get("placeholder", ""))


def write_form(model_dir: str, form: dict) -> str:
    """Write ``form`` to ``<model_dir>/assets.extra/page_form.json`` (for an exporter); returns the path.

    An exporter passes it to :func:`rnn_apps.export.atomic_export` as well: ``extra_files={FORM_FILE: form}``.
    """
    check_form(form)
    extra = os.path.join(model_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    path = os.path.join(extra, FORM_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(form, f, ensure_ascii=False, indent=1)
    return path


def app_form(app: str, settings: Optional[Mapping] = None) -> Optional[dict]:
    """The page form of a model of ``app`` (as its export would state it), or None for an unknown app.

    Args:
        app: The app (the name of its ``assets.extra/<app>.json``).
        settings: That file's content (the translation direction and forecast window are read from it).
    """
    settings = settings or {}
    config = settings.get("config") if isinstance(settings.get("config"), Mapping) else {}
    if app == "poetry":
        return make_form("Write a poem", [field("prompt", "textarea", placeholder="a character or a line to start "
                                                                                  "from, e.g. 春")])
    if app == "sentiment":
        return make_form("Classify", [field("text", "textarea", placeholder="a film review in English, e.g. "
                                                                            "A moving, beautifully acted film.")])
    if app == "translate":
        src, _, tgt = str(config.get("direction", "")).partition("-")  # e.g. en-zh
        hint = (f"{_LANGUAGES[src]} text to translate into {_LANGUAGES[tgt]}"
                if src in _LANGUAGES and tgt in _LANGUAGES else "a sentence to translate")
        return make_form("Translate", [field("text", "textarea", placeholder=hint)])
    if app == "fill":
        return make_form("Fill the blanks", [field("text", "textarea", placeholder="a poem with □ where characters "
                                                                                   "are missing, e.g. 床前明月□，疑是地上霜。")])
    if app == "caption":
        return make_form("Caption", [field("image", "image", label="image (PNG, JPEG, GIF or BMP)")])
    if app == "forecast":
        window = config.get("window")
        need = f"at least {window} " if isinstance(window, int) else ""
        return make_form("Forecast", [field("history", "numbers", label="history",
                                            placeholder=f"{need}past values, oldest first, separated by commas")])
    return None


def _widget_for(info: dict) -> str:
    """A widget for a signature input from its TF Serving metadata (dtype and shape) alone."""
    shape = info.get("tensor_shape", {})
    rank = None if shape.get("unknown_rank") else len(shape.get("dim", []))
    if info.get("dtype") == "DT_STRING":
        return "line"
    return "numbers" if rank is not None and rank >= 2 else "number"


def page_form(model_dir: str, app: Optional[str], signatures: Mapping[str, dict],
              settings: Optional[Mapping] = None) -> dict:
    """The page form of the model at ``model_dir``: the one its export stated, else one derived from its app.

    Every input of the form's signature gets a field (those the form does not name, a widget from their
    dtype and shape), fields of inputs the signature lacks are dropped, and a form naming a signature the
    model lacks falls back to ``serving_default`` (or the first signature).

    Args:
        model_dir: The version directory.
        app: The model's app (:func:`rnn_apps.serving.checks.model_app`), or None.
        signatures: Signature name -> its TF Serving metadata (``{"inputs": {name: tensor info}, ...}``).
        settings: The content of its ``assets.extra/<app>.json`` (:func:`rnn_apps.serving.checks.app_settings`).

    Returns:
        A page form (see the module's docstring); with no signature at all, one with no fields.
    """
    form = _stated_form(model_dir)
    if form is None and app:
        form = app_form(app, settings)
    form = dict(form or {"format": FORMAT, "signature": DEFAULT_SIGNATURE, "action": "Run", "fields": []})
    if form["signature"] not in signatures:
        fallback = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else next(iter(sorted(signatures)), "")
        if fallback != form["signature"]:
            form = {**form, "signature": fallback, "action": "Run", "fields": []}
    inputs: Dict[str, dict] = signatures.get(form["signature"], {}).get("inputs", {})
    named = {f["input"]: f for f in form["fields"] if f["input"] in inputs}
    form["fields"] = [named.get(name) or field(name, _widget_for(info)) for name, info in inputs.items()]
    return form


def _stated_form(model_dir: str) -> Optional[dict]:
    """The form in ``assets.extra/page_form.json``, or None when there is none or it is not well formed."""
    path = os.path.join(model_dir, "assets.extra", FORM_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            form = json.load(f)
        check_form(form)
    except (OSError, ValueError) as e:  # FormError is a ValueError: the page falls back on the app's form
        logging.getLogger("rnn_apps.serve").warning("%s is ignored: %s", path, e)
        return None
    return form
