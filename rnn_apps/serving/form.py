"""What form the try-it page of ``rnn-apps serve`` shows for a model: its *page form*.

A page form names one signature, the label of its button and, per input, the widget that collects it::

    {"format": "rnn_apps.page_form/1", "signature": "serving_default", "action": "Translate",
     "fields": [{"input": "text", "widget": "textarea", "label": "text", "placeholder": "an English sentence"}]}

Widgets: ``textarea`` and ``line`` (text), ``image`` (a file, sent as base64), ``number`` (one number),
``numbers`` (a list of numbers, comma- or space-separated) and ``choice`` (one of the field's ``choices``,
each ``{"value": ..., "label": ...}``). A field may also give the widget's initial ``value``, mark itself
``more`` (shown under "more settings", for inputs most people leave as they are) and, for a number, say
``"if_empty": "random"`` (left empty, the page sends a random integer: a seed). The page reads the form from
the model's metadata (``GET /v1/models/<name>/metadata`` answers it as ``metadata.page_form``) and guesses
nothing itself.

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

from rnn_apps.limits import LANGUAGES

FORM_FILE = "page_form.json"
FORMAT = "rnn_apps.page_form/1"
WIDGETS = ("textarea", "line", "image", "number", "numbers", "choice")
IF_EMPTY = ("random",)
DEFAULT_SIGNATURE = "serving_default"



class FormError(ValueError):
    """A page form that is not well formed (the message says which part)."""


def field(input_name: str, widget: str, label: Optional[str] = None, placeholder: str = "", *,
          value=None, choices: Optional[List[dict]] = None, more: bool = False,
          if_empty: Optional[str] = None) -> dict:
    """One input of a page form.

    Args:
        input_name: The signature input it fills.
        widget: One of :data:`WIDGETS`.
        label: What the page writes above it (default: the input name).
        placeholder: A hint shown in the empty widget (an example input).
        value: The widget's initial value (a string, or a number for ``number``): the model's default.
        choices: For ``choice`` (and only for it): the options, ``{"value": str, "label": str}`` each.
        more: Show it under "more settings" (closed at first).
        if_empty: For ``number``: ``"random"`` sends a random integer when the widget is left empty.
    """
    if widget not in WIDGETS:
        raise FormError(f"widget must be one of {', '.join(WIDGETS)}; received {widget!r}.")
    if not isinstance(input_name, str) or not input_name:
        raise FormError(f"input must be a non-empty string; received {input_name!r}.")
    f = {"input": input_name, "widget": widget, "label": label or input_name, "placeholder": placeholder}
    if (choices is not None) != (widget == "choice"):
        raise FormError(f"choices go with the choice widget, and it needs them; received widget {widget!r} and "
                        f"choices {choices!r}.")
    if choices is not None:
        if not isinstance(choices, list) or not choices or not all(
                isinstance(c, dict) and set(c) == {"value", "label"} and all(isinstance(v, str) for v in c.values())
                for c in choices):
            raise FormError(f"choices must be a non-empty list of {{\"value\": str, \"label\": str}}; received "
                            f"{choices!r}.")
        f["choices"] = [dict(c) for c in choices]
    if value is not None:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (isinstance(value, str) or (number and widget == "number")):
            raise FormError(f"value must be a string (a number for the number widget); received {value!r}.")
        if choices is not None and value not in [c["value"] for c in choices]:
            raise FormError(f"value must be one of the choices; received {value!r}.")
        f["value"] = value
    if not isinstance(more, bool):
        raise FormError(f"more must be true or false; received {more!r}.")
    if more:
        f["more"] = True
    if if_empty is not None:
        if if_empty not in IF_EMPTY or widget != "number":
            raise FormError(f"if_empty must be one of {', '.join(IF_EMPTY)}, for a number; received {if_empty!r} for "
                            f"{widget!r}.")
        f["if_empty"] = if_empty
    return f


def make_form(action: str, fields: List[dict], signature: str = DEFAULT_SIGNATURE,
              show: Optional[str] = None) -> dict:
    """A page form: the button's label ``action``, the ``fields`` (:func:`field`) and the signature they fill;
    ``show`` names the one output the page writes as the result (default: every output; the response's JSON
    is always shown below it)."""
    form = {"format": FORMAT, "signature": signature, "action": action, "fields": list(fields)}
    if show is not None:
        form["show"] = show
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
    if "show" in form and (not isinstance(form["show"], str) or not form["show"]):
        raise FormError(f"show must be the name of an output; received {form['show']!r}.")
    fields = form.get("fields")
    if not isinstance(fields, list):
        raise FormError(f"fields must be a list; received {type(fields).__name__}.")
    for i, f in enumerate(fields):
        if not isinstance(f, dict):
            raise FormError(f"fields[{i}] must be an object; received {type(f).__name__}.")
        known = {"input", "widget", "label", "placeholder", "value", "choices", "more", "if_empty"}
        if set(f) - known:
            raise FormError(f"fields[{i}] has keys a page form does not know: {', '.join(sorted(set(f) - known))}.")
        field(f.get("input"), f.get("widget"), f.get("label"), f.get("placeholder", ""), value=f.get("value"),
              choices=f.get("choices"), more=f.get("more", False), if_empty=f.get("if_empty"))


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


def app_form(app: str, settings: Optional[Mapping] = None, signatures: Optional[Mapping] = None) -> Optional[dict]:
    """The page form of a model of ``app`` (as its export would state it), or None for an unknown app.

    Args:
        app: The app (the name of its ``assets.extra/<app>.json``).
        settings: That file's content (the translation direction and forecast window are read from it).
        signatures: The model's signatures by name, when known: a poem model without ``generate`` (before
            version 7) gets the prompt of ``serving_default`` only.
    """
    settings = settings or {}
    config = settings.get("config") if isinstance(settings.get("config"), Mapping) else {}
    if app == "poetry":
        if signatures is not None and "generate" not in signatures:
            return make_form("Write a poem", [_POEM_PROMPT])
        return _poem_form()
    if app == "sentiment":
        return make_form("Classify", [field("text", "textarea", placeholder="a film review in English, e.g. "
                                                                            "A moving, beautifully acted film.")])
    decoding = settings.get("decoding") if isinstance(settings.get("decoding"), Mapping) else {}
    beam = decoding.get("default_beam")
    beam = beam if isinstance(beam, int) and not isinstance(beam, bool) and beam >= 1 else 1
    if app == "translate":
        src, _, tgt = str(config.get("direction", "")).partition("-")  # e.g. en-zh
        hint = (f"{LANGUAGES[src]} text to translate into {LANGUAGES[tgt]}"
                if src in LANGUAGES and tgt in LANGUAGES else "a sentence to translate")
        text = field("text", "textarea", placeholder=hint)
        if signatures is not None and "translate" not in signatures:
            return make_form("Translate", [text])
        # the command's --beam and --max-length, with its defaults (the model's beam, its own length bound)
        return make_form("Translate", [
            text,
            field("beam_size", "number", label="beam (1 is greedy)", value=beam, more=True),
            field("max_length", "number", label="max_length (most tokens written; 0: the model's bound)", value=0,
                  more=True),
        ], signature="translate", show="translation")
    if app == "fill":
        text = field("text", "textarea", placeholder="a poem with □ where characters are missing, e.g. "
                                                     "床前明月□，疑是地上霜。")
        if signatures is not None and "fill" not in signatures:
            return make_form("Fill the blanks", [text])
        return make_form("Fill the blanks", [
            text, field("top_k", "number", label="candidates shown per blank (1 to 50)", value=5, more=True),
        ], signature="fill")
    if app == "caption":
        image = field("image", "image", label="image (PNG, JPEG, GIF, BMP or WebP)")
        if signatures is not None and "caption" not in signatures:
            return make_form("Caption", [image])
        return make_form("Caption", [image, field("beam_size", "number", label="beam (1 is greedy)", value=beam,
                                                  more=True)], signature="caption", show="caption")
    if app == "forecast":
        window = config.get("window")
        need = f"at least {window} " if isinstance(window, int) else ""
        return make_form("Forecast", [field("history", "numbers", label="history",
                                            placeholder=f"{need}past values, oldest first, separated by commas")])
    return None


_POEM_PROMPT = field("prompt", "textarea", placeholder="a character or a line to start from, e.g. 春 (or nothing)")


def _poem_form() -> dict:
    """The poem model's ``generate``: the command's options, with its defaults."""
    from rnn_apps import limits
    from rnn_apps.apps.poetry import constants, prosody

    def options(name, labels):
        accepted = limits.APPS["poetry"].choices[name]
        return [{"value": v, "label": labels.get(v, v)} for v in accepted.values]

    forms = options("form", {constants.AUTO_FORM: "auto: one of the four forms, drawn for each poem",
                             **{k: f"{v} {k}" for k, v in constants.FORM_NAMES.items()}})
    forms.append({"value": "", "label": "free form (no rhyme or metre)"})
    rhymes = options("rhyme", {"pingshui": "平水韵 pingshui", "xinyun": "中华新韵 xinyun", "none": "none"})
    metres = options("metre", {"strict": "strict: every position", "loose": "loose: 一三五不论, no 孤平",
                               "none": "none"})
    sampling = constants.DEFAULT_SAMPLING
    return make_form("Write a poem", [
        _POEM_PROMPT,
        field("form", "choice", choices=forms, value=constants.AUTO_FORM),
        field("acrostic", "line", label="acrostic (藏头诗)", placeholder="characters that open the lines, e.g. 春夏秋冬"),
        field("rhyme", "choice", choices=rhymes, value=prosody.DEFAULT_RHYME, more=True),
        field("metre", "choice", label="metre (平仄)", choices=metres, value=prosody.DEFAULT_METRE, more=True),
        field("temperature", "number", label="temperature (0 is greedy)", value=sampling["temperature"], more=True),
        field("top_p", "number", label="top_p (1 is off)", value=sampling["top_p"], more=True),
        field("top_k", "number", label="top_k (0 is off)", value=sampling["top_k"], more=True),
        field("max_length", "number", label="max_length (of a free-form poem)", value=sampling["max_length"],
              more=True),
        field("seed", "number", placeholder="empty: a random seed", more=True, if_empty="random"),
    ], signature="generate", show="text")


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

    Every input of the form's signature gets a field (those the form does not name, after the form's own, a
    widget from their dtype and shape), fields of inputs the signature lacks are dropped, and a form naming a
    signature the model lacks falls back to ``serving_default`` (or the first signature).

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
        form = app_form(app, settings, signatures)
    form = dict(form or {"format": FORMAT, "signature": DEFAULT_SIGNATURE, "action": "Run", "fields": []})
    if form["signature"] not in signatures:
        fallback = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else next(iter(sorted(signatures)), "")
        if fallback != form["signature"]:
            form = {"format": FORMAT, "signature": fallback, "action": "Run", "fields": []}
    outputs = signatures.get(form["signature"], {}).get("outputs")
    if "show" in form and outputs is not None and form["show"] not in outputs:
        del form["show"]  # an output the signature lacks: the page shows them all
    inputs: Dict[str, dict] = signatures.get(form["signature"], {}).get("inputs", {})
    # The form's fields in its order (signatures list their inputs alphabetically), then the inputs it leaves out.
    named = [f for f in form["fields"] if f["input"] in inputs]
    form["fields"] = named + [field(name, _widget_for(info)) for name, info in inputs.items()
                              if name not in {f["input"] for f in named}]
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
