"""Model cards (rnn_apps.cards, `rnn-apps card`): front matter hubs read, facts computed from the model,
measured sections kept, a new version's card with the old changelog."""

import os
import shutil

import pytest
from click.testing import CliRunner

from rnn_apps import cards
from rnn_apps.cli import cli


def _front(text: str) -> dict:
    import yaml

    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0][4:])


@pytest.fixture()
def app_dir(tmp_path, tiny_poem_model):
    """A copy of the tiny poem model as version 1 of an app directory."""
    d = tmp_path / "poetry"
    shutil.copytree(tiny_poem_model, d / "1")
    return d


def test_facts_are_measured_from_the_files(app_dir):
    import numpy as np
    import tensorflow as tf

    facts = cards.model_facts(str(app_dir / "1"))
    loaded = tf.saved_model.load(str(app_dir / "1"))
    assert facts["parameters"] == sum(int(np.prod(v.shape)) for v in loaded.model_weights)
    files = [os.path.join(r, f) for r, _, fs in os.walk(app_dir / "1") for f in fs]
    assert facts["size_bytes"] == sum(os.path.getsize(f) for f in files) and facts["version"] == "1"
    assert set(facts["signatures"]) == set(loaded.signatures)
    assert facts["signatures"]["serving_default"]["inputs"] == {"prompt": "string[?]"}


def test_card_keeps_the_measured_body_of_its_version_and_hubs_read_it(app_dir):
    body = "# My poem model\n\nIntro.\n\n## Figures\n\n* Measured: 3.14 bits.\n\n## Versions\n\n* 1: the first.\n"
    (app_dir / "README.md").write_text(body, encoding="utf-8")
    r = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir), "--json"])
    assert r.exit_code == 0, r.output
    text = (app_dir / "README.md").read_text(encoding="utf-8")
    front = _front(text)
    assert front["rnn_apps"] == {"app": "poetry", "version": "1"} and front["language"] == ["zh"]
    assert "model-index" not in front  # the tiny model has no stated figures
    assert "* Measured: 3.14 bits." in text and text.index("Intro.") < text.index(cards.FACTS_HEADING) < text.index(
        "## Figures") < text.index("## Versions")
    again = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir)])
    assert again.exit_code == 0 and (app_dir / "README.md").read_text(encoding="utf-8") == text  # idempotent
    # A new version: a body from its own settings; the changelog moves over.
    shutil.copytree(app_dir / "1", app_dir / "2")
    cards.write_card("poetry", str(app_dir))
    text = (app_dir / "README.md").read_text(encoding="utf-8")
    assert _front(text)["rnn_apps"]["version"] == "2" and "3.14" not in text
    assert "| units |" in text and "* 1: the first." in text


def test_stated_figures_become_the_model_index(app_dir, monkeypatch):
    import tensorflow as tf

    from rnn_apps.apps.poetry import card

    checksum = tf.saved_model.experimental.read_fingerprint(str(app_dir / "1")).saved_model_checksum
    monkeypatch.setitem(card.SHIPPED_FIGURES, checksum, [{"type": "bits_per_character", "name": "b", "value": 9.5}])
    cards.write_card("poetry", str(app_dir))
    index = _front((app_dir / "README.md").read_text(encoding="utf-8"))["model-index"][0]
    assert index["results"][0]["metrics"] == [{"type": "bits_per_character", "name": "b", "value": 9.5}]
    assert index["results"][0]["dataset"]["split"] == "validation"


def test_figures_a_card_states_are_kept_with_its_body(app_dir):
    (app_dir / "README.md").write_text(
        "---\nlicense: mit\nmodel-index:\n- name: mine\n  results:\n  - task: {type: text-generation}\n"
        "    dataset: {type: poems, name: my poems, split: test}\n    metrics:\n"
        "    - {type: bits_per_character, value: 6.5, name: Test bits per character}\n---\n\n# Mine\n\nIntro.\n",
        encoding="utf-8")
    cards.write_card("poetry", str(app_dir))
    text = (app_dir / "README.md").read_text(encoding="utf-8")
    result = _front(text)["model-index"][0]["results"][0]
    assert result["metrics"] == [{"type": "bits_per_character", "name": "Test bits per character", "value": 6.5}]
    assert result["dataset"]["split"] == "test" and "# Mine\n\nIntro." in text


def test_bad_card_requests_are_one_line(app_dir):
    r = CliRunner().invoke(cli, ["card", "nosuchapp", "--model", str(app_dir)])
    assert r.exit_code == 1 and "No card writer for 'nosuchapp'" in r.output
    r = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir), "-i", "colour=red"])
    assert r.exit_code == 1 and "takes no input colour" in r.output and "run_dir" in r.output
    r = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir), "-i", "run_dir"])
    assert r.exit_code == 2 and "NAME=VALUE" in r.output


def test_a_run_dir_that_is_no_training_run_is_one_line(app_dir, tmp_path):
    """A run_dir without config.json was a traceback (sentiment) or a bare [Errno 2] (the others)."""
    from rnn_apps.paths import models_root

    out = str(tmp_path / "card.md")
    requests = [["poetry", "--model", str(app_dir), "-i", f"run_dir={tmp_path}", "-i", "data=poems.txt"]]
    if os.path.isdir(os.path.join(models_root(), "sentiment")):  # the shipped model: its card reads run_dir alone
        requests.append(["sentiment", "-i", f"run_dir={tmp_path}"])
    for request in requests:
        r = CliRunner().invoke(cli, ["card", *request, "--out", out])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
        assert f"run_dir={tmp_path} is not a training run" in r.output and "config.json" in r.output
    assert not os.path.exists(out)


def test_a_card_notes_file_that_cannot_be_read_is_one_line(tmp_path):
    bad = tmp_path / "notes.md"
    bad.write_bytes(b"caf\xe9\n")
    with pytest.raises(cards.CardError, match="notes.md is not UTF-8 text"):
        cards.read_text(str(bad))
    with pytest.raises(cards.CardError, match="Cannot read the text file"):
        cards.read_text(str(tmp_path))
    good = tmp_path / "good.md"
    good.write_text("# Mine\n", encoding="utf-8")
    assert cards.read_text(str(good)) == "# Mine\n" and cards.read_text(None) is None


def test_card_says_where_its_version_lies(app_dir, tmp_path):
    """A card in the project's layout names ``models/<app>/<version>/``; an export elsewhere names the
    version's directory beside the card, not a models/ path that does not exist."""
    assert cards.version_path("poetry", str(app_dir / "1")) == "`1/` beside this card"
    shipped = tmp_path / "models" / "poetry" / "3"
    assert cards.version_path("poetry", str(shipped)) == "`models/poetry/3/`"
    assert cards.version_path("fill", str(shipped)) == "`3/` beside this card"  # not fill's directory
    cards.write_card("poetry", str(app_dir))
    text = (app_dir / "README.md").read_text(encoding="utf-8")
    assert "Version 1 in `1/` beside this card" in text and "models/poetry/1" not in text


def test_a_model_exported_again_keeps_its_cards_body_with_new_samples(app_dir, tmp_path):
    """`rnn-apps card poetry -i from_card=OLD` for a version exported again from another (same weights): the old
    card's measured body and figures stay, its samples are the new version's poems, the changelog moves over."""
    from rnn_apps.apps.poetry.generate import PoemGenerator

    old = ("---\nmodel-index:\n  - name: m\n    results:\n      - task: {type: text-generation}\n"
           "        dataset: {type: d, name: d, split: validation}\n        metrics:\n"
           "          - {type: bits_per_character, name: Validation bits per character, value: 3.14}\n---\n"
           "# My poem model\n\nIntro.\n\n## Figures\n\n* Measured: 3.14 bits.\n\n## Samples\n\nA stale poem.\n\n"
           "## Versions\n\n* 1: the first.\n")
    (tmp_path / "old.md").write_text(old, encoding="utf-8")
    (app_dir / "README.md").write_text(old, encoding="utf-8")
    shutil.copytree(app_dir / "1", app_dir / "2")
    r = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir), "-i", f"from_card={tmp_path / 'old.md'}"])
    assert r.exit_code == 0, r.output
    text = (app_dir / "README.md").read_text(encoding="utf-8")
    front = _front(text)
    assert front["rnn_apps"]["version"] == "2" and "* Measured: 3.14 bits." in text and "* 1: the first." in text
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == 3.14
    assert "A stale poem." not in text
    default = PoemGenerator(str(app_dir / "2")).generate(form="auto", n=2, seed=2026)
    assert all("> " + "<br>".join(p.lines) in text for p in default)
    for bad, says in ((tmp_path / "missing.md", "Cannot read the card"), (tmp_path / "no-samples.md", "no Samples")):
        if "no-samples" in str(bad):
            bad.write_text("# A card\n\nNo samples here.\n", encoding="utf-8")
        r = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir), "-i", f"from_card={bad}"])
        assert r.exit_code != 0 and says in r.output and "Traceback" not in r.output, r.output


def test_cards_name_the_cell_class_of_rnn_apps_cells():
    """Every --cell by the class a user imports from rnn_apps.cells (spelled out here, not read back from the
    registry) and, in prose, by that class's short name, one helper for every card."""
    from rnn_apps import cells
    from rnn_apps.apps.forecast.card import body

    assert {n: cards.cell_class(n) for n in cells.CELLS} == {
        "simple_rnn": "SimpleRNNCell", "lstm": "LSTMCell", "peephole_lstm": "PeepholeLSTMCell",
        "coupled_lstm": "CoupledLSTMCell", "gru": "GRUCell"}
    assert [cards.cell_class(n) for n in ("GRU", "mystery")] == ["GRUCell", "mystery"]
    # a forecaster's card names its cell both ways (its title said "simple_rnn", the network line the class)
    meta = {"config": {"cell": "simple_rnn", "mode": "direct", "window": 8, "horizon": 2, "units": 4},
            "scale": 1.5, "summary": {"series": {"source": "/data/runs/../load.csv", "name": "mw"}}}
    text = body("forecast", meta)
    assert text.startswith("# Forecaster of column `mw` of `load.csv` (SimpleRNN, direct 2-step forecasts)\n")
    assert "→ `rnn_apps.cells.SimpleRNNCell` of 4 units →" in text
    assert {n: cards.cell_name(n) for n in cells.CELLS} == {
        "simple_rnn": "SimpleRNN", "lstm": "LSTM", "peephole_lstm": "PeepholeLSTM", "coupled_lstm": "CoupledLSTM",
        "gru": "GRU"}
    assert [cards.cell_name(n) for n in ("GRU", "mystery", "MysteryCell")] == ["GRU", "mystery", "MysteryCell"]


def test_a_cards_changelog_gains_the_versions_its_writer_adds():
    """The old card's changelog is kept (it may say more of a version than the writer does), and an entry the
    card writer's changelog has for a version the old card lacks is added in its place."""
    kept = "## Versions\n\n* **2** (shipped): two, in the card's words.\n* 1: one.\n"
    written = "## Versions\n\n* 3: three.\n* 2: two.\n* 1: one, in the writer's words.\n"
    assert cards.merge_versions(kept, written) == (
        "## Versions\n\n* 3: three.\n* **2** (shipped): two, in the card's words.\n* 1: one.\n")
    assert cards.merge_versions(kept, "## Versions\n\n* 1: one.\n") == kept
    closing = kept + "\nVersion 1 was taken out of `models/`.\n"  # a closing paragraph stays last
    assert cards.merge_versions(closing, written) == (
        "## Versions\n\n* 3: three.\n* **2** (shipped): two, in the card's words.\n* 1: one.\n\n"
        "Version 1 was taken out of `models/`.\n")
    assert cards.merge_versions(None, written) == written and cards.merge_versions(kept, None) == kept
    body = "# Mine\n\nIntro.\n\n## Figures\n\nSome.\n\n" + written
    facts = {"version": "3", "size_mb": 1.0, "parameters": 10, "signatures": {}}
    text = cards.compose("poetry", "/tmp/x/poetry/3", body, facts, {}, [], kept)
    assert text.endswith("## Versions\n\n* 3: three.\n* **2** (shipped): two, in the card's words.\n* 1: one.\n")


def test_a_card_of_a_model_trained_on_the_users_own_poems_names_their_file(app_dir, tiny_poem_run, poems_file):
    """A model trained on a user's own poems: its card names their file, not the Complete Tang Poems, their
    licence or hub entries, and says where it trained from what its run recorded, never the project's machine;
    refreshed later without measuring, the card says the same."""
    run_dir, _ = tiny_poem_run
    out = cards.write_card("poetry", str(app_dir), run_dir=run_dir, data=poems_file)
    text = open(out["card"], encoding="utf-8").read()
    for shipped in ("Tang", "全唐诗", "chinese-poetry", "project's", "shared with other work", "shared/data"):
        assert shipped not in text, shipped
    assert "# Poem model (Char-RNN on `poems.txt`)" in text and "* Corpus: `poems.txt`, " in text
    front = _front(text)
    assert "datasets" not in front and front["rnn_apps"] == {"app": "poetry", "version": "1", "data": "poems.txt"}
    assert f"* Trained on a machine with {os.cpu_count()} CPU core" in text
    cards.write_card("poetry", str(app_dir))
    assert (app_dir / "README.md").read_text(encoding="utf-8") == text


def test_the_poem_cards_speed_line_names_the_version_the_benchmark_measured(app_dir, tiny_poem_run, poems_file,
                                                                           tmp_path):
    """benchmarks/generate.py --json records the model it measured, and the card names that version: it named
    the version it described (here 1), whatever the JSON had measured. A JSON without the record names none."""
    import json

    run_dir, _ = tiny_poem_run
    figures = {"1": {"in-graph": {"chars_per_s": 1591.2, "ms_per_step": 0.6201}, "floor_over_in_graph": 0.8612,
                     "numpy": {"ms_per_step": 2.31}}, "64": {"in-graph": {"chars_per_s": 9029.3}}}
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"model": "models/poetry/9", **figures}), encoding="utf-8")
    out = cards.write_card("poetry", str(app_dir), run_dir=run_dir, data=poems_file, bench=str(bench))
    text = open(out["card"], encoding="utf-8").read()
    assert ("(`python benchmarks/generate.py`, measured on version 9): 1591 chars/s at batch 1 (0.62 ms a step, 86 % "
            "of the matrix-product floor), 9029 chars/s at batch 64. `rnn-apps generate-poem` runs the NumPy engine "
            "instead, about 2.3 ms a step at batch 1 ([docs/poetry.md](../../docs/poetry.md#the-shipped-model)).\n"
            ) in text and "measured on version 1" not in text
    from rnn_apps.apps.poetry.card import speed_line

    del figures["1"]["numpy"]  # a JSON written before the benchmark recorded its model and timed the NumPy engine
    line = speed_line(figures)
    assert "(`python benchmarks/generate.py`): 1591 chars/s at batch 1" in line and "version" not in line
    assert line.endswith("runs the NumPy engine instead ([docs/poetry.md](../../docs/poetry.md#the-shipped-model)).")


def test_the_card_written_at_export_names_the_users_own_poems(tmp_path, tiny_poem_run):
    """`train --export`, `export --run-dir` and `export --from-model` write a card at once: for a model of a
    user's own poems it carried the shipped corpus's hub `datasets` (the export did not say the data)."""
    from rnn_apps.cli.common import export_trained

    run_dir, result = tiny_poem_run
    trained = tmp_path / "trained" / "poetry"
    export_trained(result, str(trained))  # what train poetry --export does after training
    front = _front((trained / "README.md").read_text(encoding="utf-8"))
    assert "datasets" not in front and front["rnn_apps"] == {"app": "poetry", "version": "1", "data": "poems.txt"}
    # what export --run-dir and export --from-model hand the card they write (an export takes long: one here)
    assert os.path.basename(cards.exported_from(run_dir=run_dir)) == "poems.txt"
    assert cards.exported_from(from_model=str(trained / "1")) == "poems.txt"
    (trained / "README.md").unlink()  # a model without a card says nothing of its data
    assert cards.exported_from() is None and cards.exported_from(from_model=str(trained)) is None


def test_the_card_recorded_beside_a_version_is_read_only_for_that_version(tmp_path):
    """recorded_card: the rnn_apps record of <app_dir>/README.md when it is the card of that version, else {}
    (no card, one that cannot be read, another version's); base_model_name: a base by its last two path parts."""
    app_dir = tmp_path / "models" / "poetry"
    (app_dir / "2").mkdir(parents=True)
    version = str(app_dir / "2")
    assert cards.recorded_card(version) == {}
    card = app_dir / "README.md"
    card.write_text('---\nrnn_apps:\n  app: "poetry"\n  version: "2"\n  data: "poems.txt"\n---\n# Poems\n',
                    encoding="utf-8")
    assert cards.recorded_card(version) == {"app": "poetry", "version": "2", "data": "poems.txt"}
    assert cards.recorded_card(version + os.sep) == cards.recorded_card(version)
    assert cards.recorded_card(str(app_dir / "1")) == {}  # the card of another version
    card.write_bytes(b"---\nrnn_apps: {version: '2'}\n---\n\xff")
    assert cards.recorded_card(version) == {}  # not UTF-8: no card to read
    card.write_text("---\nrnn_apps: 2\n---\n", encoding="utf-8")
    assert cards.recorded_card(version) == {} and cards.card_record(cards.read_card_front(str(card))) == {}
    assert cards.base_model_name(version) == os.path.join("poetry", "2")
    assert cards.base_model_name(str(app_dir) + os.sep) == os.path.join("models", "poetry")


def test_cards_name_the_shipped_corpus_and_the_projects_machine_only_for_the_shipped_runs():
    """The shipped models' runs (a shipped corpus, no machine recorded) keep their cards' words; any other run is
    described by what it recorded: its machine, or none named; its own data, without the shipped corpus's hub
    entries or licence."""
    from rnn_apps.apps.poetry.card import HUB
    from rnn_apps.apps.translate.card import HUB as translate_hub

    shipped, mine = {"data": "/x/shared/data/tang-poems.jsonl.gz"}, {"data": "/home/me/mypoems.jsonl"}
    assert cards.trained_on_line(shipped, 7200) == (
        "* Trained on the project's CPU machine (2 cores) in 2.0 h of logged wall time (the machine was shared with "
        "other work part of the time).")
    assert cards.trained_on_line(mine, 600) == "* Trained in 10 min of logged wall time."
    machine = {"cpus": 16, "gpus": 1, "platform": "Linux-6.1-x86_64"}
    for run in (shipped, mine):
        assert cards.trained_on_line({**run, "machine": machine}, 600) == (
            "* Trained on a machine with 16 CPU cores and 1 GPU in 10 min of logged wall time.")
    assert cards.trained_on_line({**mine, "machine": {"cpus": 4, "gpus": 0}}, 60, note="fit time") == (
        "* Trained on a machine with 4 CPU cores in 1 min of logged wall time (fit time).")
    jax = {**shipped, "trained_on": "one H100 GPU", "recipe": "rnn_apps/apps/poetry/train_jax.py"}
    assert cards.trained_on_line(jax, 600) == (
        "* Trained on one H100 GPU with `rnn_apps/apps/poetry/train_jax.py` in 10 min of logged wall time.")
    assert cards.shipped_corpus("../shared/data/flickr8k/") == "flickr8k" and cards.own_data("tfds:imdb_reviews") is None
    assert cards.own_data("/d/cmn-eng-30k.tsv") is None and cards.own_data("/d/my reviews.csv") == "my reviews.csv"
    assert cards.hub_for_data(HUB, cards.own_data(shipped["data"])) is HUB
    metrics = [{"type": "bits_per_character", "name": "Validation bits per character", "value": 3.0}]
    front = _front(cards.front_matter("poetry", cards.hub_for_data(HUB, "mypoems.jsonl"), metrics, "1", "mypoems.jsonl"))
    result = front["model-index"][0]["results"][0]
    assert "datasets" not in front and front["rnn_apps"]["data"] == "mypoems.jsonl"
    assert result["dataset"] == {"type": "mypoems.jsonl", "name": "mypoems.jsonl, the validation split",
                                 "split": "validation"}
    assert result["task"] == {"type": "text-generation", "name": "Poem generation"}
    front = _front(cards.front_matter("translate", cards.hub_for_data(translate_hub("translate", {}), "p.tsv"), [], "1"))
    assert "license" not in front and "datasets" not in front  # Tatoeba's licence is not that of the user's pairs


def test_a_run_records_its_machine_and_a_resumed_run_keeps_its_first_record(tiny_poem_run, poems_file, tmp_path):
    """A run's config records the machine it trains on (CPU cores, GPUs, platform; no host or user name); a
    resumed run keeps the record of the machine it began on, or none when it began before runs recorded one."""
    import getpass
    import json
    import platform

    from rnn_apps.apps import base
    from rnn_apps.apps.poetry import task

    run_dir, _ = tiny_poem_run
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        machine = json.load(f)["machine"]
    assert machine["cpus"] == os.cpu_count() and set(machine) <= {"cpus", "gpus", "platform"}
    assert all(name not in json.dumps(machine) for name in (platform.node(), getpass.getuser()) if name)
    first = {"cpus": 64, "gpus": 8, "platform": "Linux-elsewhere"}
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    with open(resumed / "config.json", encoding="utf-8") as f:
        record = json.load(f)
    (resumed / "config.json").write_text(json.dumps({**record, "machine": first}), encoding="utf-8")
    task.train(poems_file, str(resumed), epochs=2, resume=True, verbose=0, save_every=0)
    assert json.loads((resumed / "config.json").read_text(encoding="utf-8"))["machine"] == first
    older = {"settings": {}}  # a run begun before runs recorded their machine
    base.write_run_config(str(tmp_path), {"settings": {}}, saved=older)
    assert "machine" not in json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    base.write_run_config(str(tmp_path), {"settings": {}, "trained_on": "one H100 GPU"})
    assert "machine" not in json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))


def test_a_generic_card_names_only_commands_that_exist():
    """The generic body said "trained with `rnn-apps train forecast`" (the forecaster is trained by `rnn-apps
    forecast`) and `rnn-apps train translate-zh-en` (the translate app's commands train it): every command a
    body names resolves in the command line, and the forecaster's body is its own card module's."""
    import re

    import click

    def resolves(words):
        command, ctx = cli, click.Context(cli)
        for word in words:
            command = command.get_command(ctx, word) if isinstance(command, click.Group) else None
            if command is None:
                return False
        return True

    meta = {"config": {"units": 8}, "summary": {"step": 3}, "exported": "2026-01-01"}
    for app in cards.CARD_MODULES:
        body = cards.generic_body(app, meta)
        named = re.findall(r"`rnn-apps ([^`]+)`", body)
        assert all(resolves(c.split()[:2] if c.startswith(("train ", "fine-tune ")) else c.split()[:1]) for c in named), \
            (app, named)
        assert "train forecast" not in body and "train translate-zh-en" not in body and "train caption-" not in body
    assert cards.training_commands("forecast") == ["rnn-apps forecast", "rnn-apps fine-tune forecast"]
    assert cards.training_commands("translate-zh-en") == ["rnn-apps train translate", "rnn-apps fine-tune translate"]
    assert cards.generic_body("forecast", meta).startswith("# Forecaster")
    assert "trained with `rnn-apps train poetry` or `rnn-apps fine-tune poetry`." in cards.generic_body("poetry", meta)


def test_a_card_written_elsewhere_links_to_the_figures_beside_the_model(app_dir, tmp_path):
    """`card --out` elsewhere kept `![attention](attention.png)`, which led nowhere, and made a missing folder where
    the other commands' outputs refuse one."""
    (app_dir / "attention.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    body = ("# My poem model\n\n![attention](attention.png) [the web](https://example.org/a.png) [top](#figures) "
            "![gone](missing.png)\n\n## Figures\n\n* Measured.\n")
    (app_dir / "README.md").write_text(body, encoding="utf-8")
    (tmp_path / "docs").mkdir()
    out = tmp_path / "docs" / "card.md"
    r = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    assert "![attention](../poetry/attention.png)" in text  # from docs/ to the app directory's file
    assert "[the web](https://example.org/a.png)" in text and "[top](#figures)" in text and "(missing.png)" in text
    assert "(attention.png)" in (app_dir / "README.md").read_text(encoding="utf-8")  # the app's own card: as it was
    r = CliRunner().invoke(cli, ["card", "poetry", "--model", str(app_dir), "--out", str(tmp_path / "no" / "c.md")])
    assert r.exit_code == 2 and "does not exist; create it first" in r.output and not (tmp_path / "no").exists()
