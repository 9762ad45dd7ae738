"""Model cards: one writer for every app's ``models/<app>/README.md``.

A card is Hugging Face-style Markdown: YAML front matter (language, license, tags, datasets and a
``model-index`` with the measured metrics, so that model hubs and tools read the figures), a title, the
app's own sections, and a section of facts computed here once for every app from the exported
SavedModel (version, size on disk, parameters, signatures). See
https://huggingface.co/docs/hub/model-cards for the front matter's fields.

Each app's ``rnn_apps.apps.<app>.card`` module describes its card with:

* ``HUB``: the front matter (``language``, ``license``, ``tags``, ``datasets``, ``pipeline_tag``, and
  ``task`` and ``dataset`` for the model-index), a dict or a function ``(app, meta) -> dict``, written for
  the shipped corpus; its optional ``own_data`` holds the entries that replace those for a model trained on
  data of its user's own (:func:`hub_for_data`);
* the model's measured figures (dicts with ``type``, ``name``, ``value`` and optionally ``split``): those
  stated in ``SHIPPED_FIGURES`` for a shipped model (by its SavedModel fingerprint, see
  :func:`shipped_figures`) and those ``metrics(version_dir, meta) -> list`` reads from the model's own
  ``assets.extra``;
* optionally ``INPUTS`` (name -> what it is) and ``sections(version_dir, meta, facts, previous, **inputs)``,
  the card's body written from measurements (a training run, evaluation JSON files ...), a string or
  ``(body, metrics)``; ``previous`` is the body of the existing card of the same version;
* optionally ``body(app, meta)``, the body of a new version's card written from its ``assets.extra`` record
  alone, when no measurements are given (else :func:`generic_body`'s table of settings).

:func:`write_card` keeps the body of an existing card of the same version (its measured sections) when no
measurements are given, so that a card can be refreshed without measuring again; a card of another version
makes way for the new body, and its ``## Versions`` section (the changelog) is carried over. The figures of
the front matter are those measured with the body, else those stated for a shipped model or recorded by the
export, else (for a kept body) those the existing card states.

A card names a shipped corpus (its name, licence and hub entries) only for a run trained on it
(:func:`shipped_corpus`); a card of a model trained on a file of its user's own names that file, and its
front matter records the file's name (``rnn_apps.data``) so that a card refreshed later says the same.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from typing import Optional

FACTS_HEADING = "## The exported model"
VERSIONS_HEADING = "## Versions"

CARD_MODULES = {"poetry": "poetry", "sentiment": "sentiment", "translate": "translate", "translate-zh-en": "translate",
                "fill": "fill", "forecast": "forecast", "caption": "caption", "caption-shapes": "caption"}
"""The app whose card module writes each model directory's card (caption-shapes: the caption app's)."""


SHIPPED_CORPORA = {
    "tang-poems.jsonl.gz": "tang",
    "cmn-eng.tsv": "tatoeba",
    "cmn-eng-30k.tsv": "tatoeba",
    "aclImdb-train.tar.gz": "imdb",
    "aclImdb_v1.tar.gz": "imdb",
    "aclImdb": "imdb",
    "tfds:imdb_reviews": "imdb",
    "tfds": "imdb",
    "flickr8k": "flickr8k",
    "Flickr8k": "flickr8k",
}
"""The corpora the shipped models were trained on (``../shared/data``, and the original downloads' names), by
the base name of the data a training run records: the corpus each is."""


class CardError(ValueError):
    """A card cannot be written: an unknown app, a missing input, or no model."""


def dir_size(path: str) -> int:
    """Bytes of all files under ``path``."""
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _spec(spec) -> str:
    shape = "[" + ", ".join("?" if d is None else str(d) for d in spec.shape) + "]" if spec.shape.rank is not None \
        else "[...]"
    return f"{spec.dtype.name}{shape}"


def model_facts(version_dir: str) -> dict:
    """What every card says of an exported model, computed from its files.

    Returns:
        ``{"version", "size_bytes", "size_mb", "parameters", "signatures"}``: the version directory's name,
        its size on disk (bytes; MB = 10**6 bytes), the number of weights (every floating-point variable
        the SavedModel stores: the network's ``model_weights`` and any other, such as the sentiment
        model's n-gram weights, which its answers use too) and, for each signature, its inputs and outputs
        as ``dtype[shape]``.
    """
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)
    prefix = os.path.join(version_dir, "variables", "variables")
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    parameters = int(sum(int(np.prod(shape)) for name, shape in tf.train.list_variables(prefix)
                         if name.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and dtypes[name].is_floating))
    signatures = {}
    for name in sorted(loaded.signatures):
        fn = loaded.signatures[name]
        inputs = fn.structured_input_signature[1]
        signatures[name] = {"inputs": {k: _spec(s) for k, s in sorted(inputs.items())},
                            "outputs": {k: _spec(s) for k, s in sorted(fn.structured_outputs.items())}}
    size = dir_size(version_dir)
    return {"version": os.path.basename(os.path.normpath(version_dir)), "size_bytes": size,
            "size_mb": round(size / 1e6, 1), "parameters": parameters, "signatures": signatures}


def version_path(app: str, version_dir: str) -> str:
    """Where a card says its version lies: ``models/<app>/<version>/`` for a model in the project's layout,
    else the version's directory beside the card (an export to a directory of the user's own)."""
    version_dir = os.path.normpath(version_dir)
    app_dir = os.path.dirname(version_dir)
    version = os.path.basename(version_dir)
    if os.path.basename(app_dir) == app and os.path.basename(os.path.dirname(os.path.abspath(app_dir))) == "models":
        return f"`models/{app}/{version}/`"
    return f"`{version}/` beside this card"


def facts_section(app: str, facts: dict, where: Optional[str] = None) -> str:
    """The card's section of computed facts: version, size, parameters and the signatures' inputs and outputs.

    ``where``: where the version lies (:func:`version_path`; default ``models/<app>/<version>/``).
    """
    where = where or f"`models/{app}/{facts['version']}/`"
    lines = [FACTS_HEADING, "",
             f"Version {facts['version']} in {where}, a TensorFlow SavedModel in TF Serving's "
             f"layout: **{facts['size_mb']} MB** on disk, **{facts['parameters']:,} parameters**. It loads with "
             "`tf.saved_model.load` alone; `rnn-apps serve` serves it over TF Serving's REST API.", "",
             "| signature | inputs | outputs |", "| --- | --- | --- |"]
    for name, sig in facts["signatures"].items():
        ins = ", ".join(f"`{k}` {v}" for k, v in sig["inputs"].items()) or "—"
        outs = ", ".join(f"`{k}` {v}" for k, v in sig["outputs"].items()) or "—"
        lines.append(f"| `{name}` | {ins} | {outs} |")
    return "\n".join(lines) + "\n"


def _yaml(value, indent: int) -> list:
    """``value`` as block YAML lines; scalars are written as JSON, which YAML reads as the same value."""
    pad = " " * indent
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.extend(_yaml(v, indent + 2))
            else:
                out.append(f"{pad}{k}: {json.dumps(v, ensure_ascii=False)}")
        return out
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, (dict, list)) and v:
                inner = _yaml(v, indent + 2)
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {json.dumps(v, ensure_ascii=False)}")
        return out
    return [pad + json.dumps(value, ensure_ascii=False)]


def cell_class(name: str) -> str:
    """The class in ``rnn_apps.cells`` of a ``--cell`` name (``lstm`` -> ``LSTMCell``), as a card names a
    network's cell; the name itself when it is none of them."""
    from rnn_apps.cells import CELLS

    cls = CELLS.get(str(name).lower())
    return cls.__name__ if cls else str(name)


def cell_name(name: str) -> str:
    """The short name a card's prose gives a ``--cell`` (``lstm`` -> ``LSTM``, ``gru`` -> ``GRU``,
    ``simple_rnn`` -> ``SimpleRNN``): its class in ``rnn_apps.cells`` (:func:`cell_class`) without ``Cell``; the
    name itself when it is none of them."""
    cls = cell_class(name)
    return cls[: -len("Cell")] if cls != str(name) and cls.endswith("Cell") else cls


def data_name(data: str) -> str:
    """The name a card gives the data a run trained on: its file's or directory's base name."""
    return os.path.basename(os.path.normpath(data))


def base_model_name(path: str) -> str:
    """The name a card gives the base model a fine-tuning started from: the last two parts of its path
    (``models/sentiment``, ``forecast/2``), not the user's whole path."""
    return os.path.join(*os.path.normpath(path).split(os.sep)[-2:])


def shipped_corpus(data: Optional[str]) -> Optional[str]:
    """The shipped corpus (``"tang"``, ``"tatoeba"``, ``"imdb"``, ``"flickr8k"``) that ``data``, the path a run
    recorded, is by its base name (:data:`SHIPPED_CORPORA`), or None: data of the user's own, or no data."""
    return SHIPPED_CORPORA.get(data_name(data)) if data else None


def own_data(data: Optional[str]) -> Optional[str]:
    """The name of ``data`` (:func:`data_name`) when it is data of the user's own, else None: a shipped corpus,
    or no data recorded (a run on generated data, such as the synthetic scenes, or one older than the record),
    whose card keeps the shipped model's words."""
    return data_name(data) if data and not shipped_corpus(data) else None


def hub_for_data(hub: dict, own: Optional[str]) -> dict:
    """The front matter of a model trained on ``own``, data of its user's own (:func:`own_data`): ``hub``
    without the shipped corpus's ``datasets``, with the entries of its ``own_data`` (a task named without the
    corpus, no licence of the corpus's) and a model-index ``dataset`` naming ``own``; ``hub`` itself for a
    shipped corpus (``own`` None)."""
    if not own:
        return hub
    out = {k: v for k, v in hub.items() if k not in ("datasets", "own_data")}
    out.update(hub.get("own_data") or {})
    if "dataset" in hub:
        split = hub["dataset"].get("split", "validation")
        out["dataset"] = {"type": own, "name": f"{own}, the {split} split", "split": split}
    return out


def front_matter(app: str, hub: dict, metrics: list, version: str, data: Optional[str] = None) -> str:
    """The card's YAML front matter, with a ``model-index`` entry holding ``metrics`` (when there are any).

    ``data``: the name of the user's own data the model was trained on (:func:`own_data`), recorded under
    ``rnn_apps``; None for a shipped corpus.
    """
    meta = {k: hub[k] for k in ("language", "license", "library_name", "tags", "datasets", "pipeline_tag") if hub.get(k)}
    meta.setdefault("library_name", "tensorflow")
    if metrics:
        dataset = dict(hub["dataset"])
        results = []
        for split in dict.fromkeys(m.get("split", dataset.get("split", "validation")) for m in metrics):
            ms = [{k: m[k] for k in ("type", "value", "name") if k in m} for m in metrics
                  if m.get("split", dataset.get("split", "validation")) == split]
            results.append({"task": hub["task"], "dataset": {**dataset, "split": split}, "metrics": ms})
        meta["model-index"] = [{"name": f"rnn-apps-{app}", "results": results}]
    meta["rnn_apps"] = {"app": app, "version": version, **({"data": data} if data else {})}
    return "---\n" + "\n".join(_yaml(meta, 0)) + "\n---\n"


def split_card(text: str) -> tuple[dict, str]:
    """``(the card's front matter as a dict, {} without one; the Markdown body)``."""
    import yaml

    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0:
        return {}, text
    try:
        front = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError:
        front = {}
    return (front if isinstance(front, dict) else {}), text[end + 5:].lstrip("\n")


def card_record(front: dict) -> dict:
    """The ``rnn_apps`` record of a card's front matter (its app, version and data: :func:`front_matter`), {}
    when it has none."""
    record = front.get("rnn_apps")
    return record if isinstance(record, dict) else {}


def read_card_front(path: str) -> dict:
    """The front matter of the card at ``path`` (:func:`split_card`), {} when it has none or cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return split_card(f.read())[0]
    except (OSError, UnicodeDecodeError):
        return {}


def recorded_card(version_dir: str) -> dict:
    """The ``rnn_apps`` record (:func:`card_record`) of the card beside a version directory
    (``<app_dir>/README.md``) when that card is of this version (its record names the version directory); {}
    otherwise: no card, one that cannot be read, or the card of another version."""
    version_dir = os.path.normpath(version_dir)
    record = card_record(read_card_front(os.path.join(os.path.dirname(version_dir), "README.md")))
    return record if str(record.get("version")) == os.path.basename(version_dir) else {}


def stated_metrics(front: dict) -> list:
    """The metrics of a card's front matter (its model-index), each with its dataset's ``split``."""
    out = []
    for model in front.get("model-index") or []:
        for result in (model or {}).get("results") or []:
            split = ((result or {}).get("dataset") or {}).get("split")
            for m in (result or {}).get("metrics") or []:
                if isinstance(m, dict) and "type" in m and "value" in m:
                    out.append({**{k: m[k] for k in ("type", "name", "value") if k in m},
                                **({"split": split} if split else {})})
    return out


def _headings(lines: list) -> list:
    """``(index, level)`` of the Markdown headings among ``lines``, outside fenced code blocks."""
    found, fenced = [], False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append((i, len(line.split(" ", 1)[0])))
    return found


def section(body: str, heading: str) -> Optional[str]:
    """The section of ``body`` under the line ``heading`` (to the next heading of its level or above), or None."""
    lines = body.split("\n")
    heads = _headings(lines)
    level = len(heading.split(" ", 1)[0])
    for n, (i, lv) in enumerate(heads):
        if lines[i].rstrip() == heading:
            end = next((j for j, lj in heads[n + 1:] if lj <= level), len(lines))
            return "\n".join(lines[i:end]).rstrip("\n") + "\n"
    return None


def without_section(body: str, heading: str) -> str:
    part = section(body, heading)
    return body if part is None else body.replace(part, "", 1).replace("\n\n\n", "\n\n")


def card_module(app: str):
    """The card module of the app that writes ``models/<app>``'s card."""
    if app not in CARD_MODULES:
        raise CardError(f"No card writer for {app!r}; expected one of {', '.join(sorted(CARD_MODULES))}.")
    return importlib.import_module(f"rnn_apps.apps.{CARD_MODULES[app]}.card")


def _version_entries(part: str) -> tuple[list, str]:
    """The entries of a versions section, ``(version number or None, the entry's lines)`` in order, and the
    text after them (a closing paragraph)."""
    entries, tail, gap = [], [], False
    for line in part.split("\n")[1:]:  # the heading first
        if tail:
            tail.append(line)
        elif line.startswith("* "):
            m = re.match(r"\* \**(\d+)\b", line)
            entries.append((int(m.group(1)) if m else None, [line]))
        elif not line.strip():
            gap = bool(entries)
        elif entries and not gap or line.startswith((" ", "\t")):  # the entry goes on
            entries[-1][1].append(line)
        else:
            tail.append(line)
    return entries, "\n".join(tail).strip("\n")


def merge_versions(kept: Optional[str], written: Optional[str]) -> Optional[str]:
    """A card's versions section: the entries of ``kept`` (the existing card's changelog, which may say more
    of a version than its generator does) and, in their place by version number, those of ``written`` (the
    generated body's) for versions ``kept`` lacks; either section alone when there is one."""
    if not kept or not written:
        return kept or written
    (old, tail), (new, _) = _version_entries(kept), _version_entries(written)
    have = {v for v, _ in old if v is not None}
    added = [(v, lines) for v, lines in new if v is not None and v not in have]
    if not added:
        return kept
    entries = list(old)
    for v, lines in added:  # newest first, as the changelogs are written
        at = next((i for i, (w, _) in enumerate(entries) if w is not None and w < v), len(entries))
        entries.insert(at, (v, lines))
    text = "\n".join([VERSIONS_HEADING, "", *("\n".join(lines) for _, lines in entries)]) + "\n"
    return text + ("\n" + tail + "\n" if tail else "")


def compose(app: str, version_dir: str, body: str, facts: dict, hub: dict, metrics: list,
            versions: Optional[str] = None, data: Optional[str] = None) -> str:
    """A whole card: front matter (``data``: see :func:`front_matter`), ``body`` (its title first) with the facts
    section after the title's paragraphs (before the first ``##`` section), and the versions section last:
    ``versions`` (the old card's changelog) with the entries of the body's own for versions it lacks
    (:func:`merge_versions`)."""
    versions = merge_versions(versions, section(body, VERSIONS_HEADING))
    body = without_section(without_section(body, FACTS_HEADING), VERSIONS_HEADING).strip("\n") + "\n"
    lines = body.split("\n")
    at = next((i for i, level in _headings(lines) if level == 2), len(lines))
    body = ("\n".join(lines[:at]).rstrip("\n") + "\n\n" + facts_section(app, facts, version_path(app, version_dir)) + "\n"
            + "\n".join(lines[at:]))
    if versions:
        body = body.rstrip("\n") + "\n\n" + versions.strip("\n") + "\n"
    return front_matter(app, hub, metrics, facts["version"], data) + "\n" + body


def write_card(app: str, model_dir: Optional[str] = None, out: Optional[str] = None, *,
               trained_on: Optional[str] = None, **inputs) -> str:
    """Write the model card of ``app``'s model (the newest version of ``model_dir``, default models/<app>).

    Args:
        app: The model directory's name under models/ (``poetry``, ``caption-shapes`` ...).
        model_dir: A version directory or an app directory.
        out: Where to write (default: ``README.md`` in the model's app directory); the card there (else the
            app directory's) is the existing card.
        trained_on: The data the model was trained on (the path a run recorded, or a name), for a card
            written at export (:func:`exported_from`): a user's own data drops the shipped corpus's
            ``datasets`` and licence. A ``run_dir`` input says it instead.
        **inputs: Measurements for the app's ``sections`` (its ``INPUTS``); without them the body of an
            existing card of the same version is kept, else a body is written from the model's own settings.

    Returns:
        ``{"card": path written, "facts": model_facts(...), "metrics": [...]}``.
    """
    from rnn_apps.export import read_extra, resolve_model_dir
    from rnn_apps.paths import default_model_dir

    module = card_module(app)
    version_dir = resolve_model_dir(model_dir or default_model_dir(app))
    app_dir = os.path.dirname(os.path.normpath(version_dir))
    out = out or os.path.join(app_dir, "README.md")
    meta = read_extra(version_dir, f"{CARD_MODULES[app]}.json")  # the record every export writes
    unknown = sorted(set(inputs) - set(getattr(module, "INPUTS", {})))
    if unknown:
        takes = ", ".join(f"{k} ({v})" for k, v in getattr(module, "INPUTS", {}).items()) or "none"
        raise CardError(f"The {app} card takes no input {', '.join(unknown)}; it takes: {takes}.")
    for name, value in inputs.items():  # run_dir, forward_run_dir ...: each app's card reads its config.json
        if name.endswith("run_dir") and value is not None and not os.path.isfile(os.path.join(value, "config.json")):
            raise CardError(f"{name}={value} is not a training run: expected the --run-dir of a training command "
                            "(a directory with config.json).")
    facts = model_facts(version_dir)
    old_front, old_body = {}, ""
    previous = next((p for p in (out, os.path.join(app_dir, "README.md")) if os.path.exists(p)), None)
    if previous:
        with open(previous, encoding="utf-8") as f:
            old_front, old_body = split_card(f.read())
    # A card of no stated version was written before cards said it: it describes the newest version.
    old_version = card_record(old_front).get("version")
    same_version = bool(old_body) and old_version in (None, facts["version"])
    measured = []
    if inputs:
        body = module.sections(version_dir, meta, facts, previous=old_body if same_version else "", **inputs)
        if isinstance(body, tuple):  # (body, the metrics measured with it)
            body, measured = body
    elif same_version:
        body = old_body
    else:
        body = generic_body(app, meta)
    figures = list(measured) or shipped_figures(version_dir, getattr(module, "SHIPPED_FIGURES", {}))
    if hasattr(module, "metrics") and not measured:
        figures += module.metrics(version_dir, meta)
    if not figures and same_version and not inputs:  # the figures the card states, kept with its body
        figures = stated_metrics(old_front)
    # The data the card describes: the measured run's, else (a kept body) what the existing card recorded.
    run_dir = inputs.get("run_dir")
    if run_dir is not None:
        data = own_data(read_json(os.path.join(run_dir, "config.json")).get("data"))
    elif trained_on is not None:
        data = own_data(trained_on)
    else:
        data = own_data(card_record(old_front).get("data")) if same_version else None
    hub = hub_for_data(module.HUB(app, meta) if callable(module.HUB) else module.HUB, data)
    text = compose(app, version_dir, body, facts, hub, figures,
                   section(old_body, VERSIONS_HEADING) if old_body else None, data)
    text = relink(text, app_dir, os.path.dirname(os.path.abspath(out)))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)
    return {"card": out, "facts": facts, "metrics": figures}


def relink(text: str, app_dir: str, out_dir: str) -> str:
    """A card's links to files of its app directory (``![attention](attention.png)``), made to reach them from
    ``out_dir``, where the card is written; links to anything else are left as they are."""
    if os.path.abspath(app_dir) == os.path.abspath(out_dir):
        return text

    def fix(m):
        target = m.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:|[#/]", target, re.I) or not os.path.isfile(os.path.join(app_dir, target)):
            return m.group(0)  # a web address, an anchor, an absolute path, or no file of the app directory
        return f"{m.group(1)}({os.path.relpath(os.path.join(app_dir, target), out_dir)})"

    return re.sub(r"(!?\[[^\]\n]*\])\(([^)\s]+)\)", fix, text)


def shipped_figures(version_dir: str, table: dict) -> list:
    """The figures stated in ``table`` (SavedModel fingerprint -> metrics) for this model, or ``[]``.

    A metric is a dict or a tuple ``(type, name, value)``.

    The fingerprint's checksum of ``saved_model.pb`` names the exact model the figures were measured on, so
    that a model trained again (even into the same version number) does not inherit them.
    """
    if not table:
        return []
    import tensorflow as tf

    try:
        checksum = tf.saved_model.experimental.read_fingerprint(version_dir).saved_model_checksum
    except Exception:  # no fingerprint.pb (a model written by an old TensorFlow): no stated figures
        return []
    return [dict(zip(("type", "name", "value"), m)) if isinstance(m, tuple) else dict(m)
            for m in table.get(checksum, [])]


def machine_text(run: dict) -> Optional[str]:
    """The machine a run's config records (``machine``, :func:`rnn_apps.apps.base.machine_record`) in words,
    e.g. "a machine with 16 CPU cores and 1 GPU", or None when it records none."""
    machine = run.get("machine")
    if not isinstance(machine, dict) or not machine.get("cpus"):
        return None
    gpus = machine.get("gpus") or 0
    return (f"a machine with {machine['cpus']} CPU core{'s' if machine['cpus'] != 1 else ''}"
            + (f" and {gpus} GPU{'s' if gpus != 1 else ''}" if gpus else ""))


def project_run(run: dict) -> bool:
    """Whether a run's card may speak of the project's own machine: a run on a shipped corpus (or on no recorded
    data, such as the synthetic scenes) that recorded neither its machine nor ``trained_on``. These are the
    shipped models' runs, made before runs recorded their machine; a user's run records its machine, and a
    run on the user's own data is never said to have trained on the project's machine."""
    return not run.get("machine") and not run.get("trained_on") and not own_data(run.get("data"))


def where_trained(run: dict, project: str) -> str:
    """Where a run trained, as " on ..." to follow "trained", from its config alone: ``trained_on`` (the JAX
    recipes'), the machine it recorded (:func:`machine_text`), ``project`` (the words for the project's
    machine) for a shipped model's run (:func:`project_run`), else "" (nothing recorded, no machine named)."""
    if run.get("trained_on"):
        return f" on {run['trained_on']}"
    machine = machine_text(run)
    if machine:
        return f" on {machine}"
    return f" on {project}" if project_run(run) else ""


def trained_on_line(run: dict, seconds: float, shared: str = "the machine was shared with other work part of "
                    "the time", note: str = "") -> str:
    """Where and how long a run trained, a line of a card, from the run's config alone.

    * ``trained_on`` and ``recipe`` (set by the JAX recipes, :mod:`rnn_apps.train_jax`): said as they are;
    * else the machine the run recorded: "Trained on a machine with N CPU cores (and G GPUs)";
    * else, for a shipped model's run (a shipped corpus and no machine recorded, :func:`project_run`), the
      project's CPU machine, with ``shared`` (a note on that machine) in brackets;
    * else the logged wall time alone, naming no machine.

    ``note``: a note on the time (e.g. what it leaves out) in brackets, for any run but the JAX recipes'.
    """
    took = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
    if run.get("trained_on"):
        recipe = f" with `{run['recipe']}`" if run.get("recipe") else ""
        return f"* Trained on {run['trained_on']}{recipe} in {took} of logged wall time."
    where = where_trained(run, "the project's CPU machine (2 cores)")
    notes = [n for n in (shared if project_run(run) else "", note) if n]
    return f"* Trained{where} in {took} of logged wall time" + (f" ({'; '.join(notes)})." if notes else ".")


def read_json(path: Optional[str]):
    """The JSON file at ``path`` (an input of a card: an evaluation or a benchmark), or None without a path."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise CardError(f"Cannot read the JSON file {path}: {e}") from None


def card_exported_from(from_card: str, run_dir: Optional[str], what: str) -> tuple[dict, str]:
    """``(front matter, body)`` of the card of the export a model was exported again from (``from_card``), for
    a card of ``what`` ("poem", "photo") that takes a training run or that card, not both."""
    if run_dir is not None:
        raise CardError(f"The {what} card takes run_dir (a trained model) or from_card (a model exported again), "
                        "not both.")
    try:
        with open(from_card, encoding="utf-8") as f:
            return split_card(f.read())
    except (OSError, UnicodeDecodeError) as e:
        raise CardError(f"Cannot read the card {from_card}: {getattr(e, 'strerror', None) or e}.") from None


def exported_from(run_dir: Optional[str] = None, from_model: Optional[str] = None) -> Optional[str]:
    """The data a model being exported was trained on, for its card's ``trained_on``: what the training run
    ``run_dir`` recorded, or what the card of ``from_model`` (a model exported again) recorded for that
    version; None when neither says (a run on generated data, or a model without a card)."""
    if run_dir is not None:
        path = os.path.join(run_dir, "config.json")
        return (read_json(path) or {}).get("data") if os.path.isfile(path) else None
    if from_model is not None:
        from rnn_apps.export import resolve_model_dir

        return recorded_card(resolve_model_dir(from_model)).get("data")
    return None


def read_text(path: Optional[str]) -> Optional[str]:
    """The UTF-8 text file at ``path`` (an input of a card: notes of your own), or None without a path."""
    if path is None:
        return None
    from rnn_apps import textio

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CardError(f"Cannot read the text file {path}: {e.strerror or e}.") from None
    text = textio.decode_utf8(data, path, CardError, lead="{name} is not UTF-8 text: line {line}")
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as a file opened as text reads them


def training_commands(app: str) -> list:
    """The ``rnn-apps`` commands that train a model of ``models/<app>`` (``app`` may be ``translate-zh-en``,
    whose commands are the translate app's), as the app's ``COMMANDS`` declares them: ``train X`` and
    ``fine-tune X``, or, for an app without a ``train`` verb (the forecaster), its top-level command of its
    name (``rnn-apps forecast``) and ``fine-tune X``."""
    package = CARD_MODULES.get(app, app)
    try:
        commands = importlib.import_module(f"rnn_apps.apps.{package}.commands").COMMANDS
    except ImportError:
        return []
    named = {verb: [c.name for c in commands.get(verb, ())] for verb in (None, "train", "fine-tune")}
    train = ([f"rnn-apps train {package}"] if package in named["train"] else
             [f"rnn-apps {package}"] if package in named[None] else [])
    return train + ([f"rnn-apps fine-tune {package}"] if package in named["fine-tune"] else [])


def generic_body(app: str, meta: dict) -> str:
    """A body written from the model's own ``assets.extra`` record: the card module's ``body(app, meta)`` when it
    has one (the forecaster's), else its settings and its training summary, naming the commands that train
    such a model (:func:`training_commands`) and no other."""
    module = card_module(app) if app in CARD_MODULES else None
    if module is not None and hasattr(module, "body"):
        return module.body(app, meta)
    commands = training_commands(app)
    made = " or ".join(f"`{c}`" for c in commands)
    lines = [f"# {app} model", "", f"Exported {meta.get('exported', 'by rnn-apps')}"
             + (f"; trained with {made}." if made else "."),
             "", "## Settings", "", "| setting | value |", "| --- | --- |"]
    for k, v in sorted((meta.get("config") or {}).items()):
        lines.append(f"| {k} | {json.dumps(v, ensure_ascii=False)} |")
    figures = [(k, v) for k, v in (meta.get("summary") or {}).items()
               if v is not None and not isinstance(v, (dict, list))]
    if figures:  # none known (an export that kept no figure): no empty table
        lines += ["", "## Training summary", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in figures]
    return "\n".join(lines) + "\n"
