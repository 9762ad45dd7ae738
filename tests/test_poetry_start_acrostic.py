"""A start and an acrostic that disagree at a line head are refused, not silently overridden.

`rnn-apps generate-poem --start 春 --acrostic 夏 --form wujue` used to write a poem beginning with 夏 (the
acrostic's head replaced the start's character), and `--json` still said "start": "春". Every path through
rnn_apps (the command, the library on both engines, the NumPy engine's signature twin) now refuses such a
request with one line naming both characters; a start and an acrostic that agree still write the same poems.
"""

import json
import os

import pytest

from rnn_apps.apps.poetry.fast import ModelInputError, NumpyPoemModel
from rnn_apps.apps.poetry.generate import (
    PoemError, PoemGenerator, auto_forms, check_start_fits_acrostic, start_acrostic_conflicts,
)
from rnn_apps.export import latest_version_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = latest_version_dir(os.path.join(REPO, "models", "poetry")) or ""  # the newest shipped poem model
HAS_SHIPPED = os.path.isfile(os.path.join(SHIPPED, "variables", "variables.index"))

BUG = ("The start 春风吹 opens line 1 with 春, but the acrostic 夏 asks for 夏 there; begin the start with 夏, "
       "or drop the start or the acrostic.")


def _refusal(start, acrostic, form):
    with pytest.raises(PoemError) as e:
        check_start_fits_acrostic(start, acrostic, form)
    return str(e.value)


# ----------------------------------------------------------------------------------------- the rule (pure Python)

def test_the_line_heads_a_start_covers_in_each_form():
    # line 1 in every form, free form with an acrostic too
    for form in ("wujue", "qijue", "wulv", "qilv", "", "auto"):
        assert _refusal("春风吹", "夏", form) == BUG, form
    assert start_acrostic_conflicts("春", "夏", "wujue") == [(1, "春", "夏")]
    # the 6th character heads line 2 of a five-character form, the 8th of a seven-character one (and of free
    # form with an acrostic, whose lines have seven characters); the start's marks do not move its characters
    assert start_acrostic_conflicts("春风吹拂柳枝", "春夏秋冬", "wujue") == [(2, "枝", "夏")]
    assert start_acrostic_conflicts("春风吹拂柳，枝", "春夏秋冬", "wulv") == [(2, "枝", "夏")]
    assert start_acrostic_conflicts("春风吹拂柳枝", "春夏秋冬", "qijue") == []
    assert start_acrostic_conflicts("春风吹拂柳枝花草", "春夏秋冬", "qilv") == [(2, "草", "夏")]
    assert start_acrostic_conflicts("春风吹拂柳枝花草", "春夏秋冬", "") == [(2, "草", "夏")]
    assert start_acrostic_conflicts("秋风吹拂柳枝", "春夏秋冬", "wujue") == [(1, "秋", "春"), (2, "枝", "夏")]
    assert _refusal("春风吹拂柳枝", "春夏秋冬", "wujue") == (
        "The start 春风吹拂柳枝 opens line 2 with 枝 (wujue, 五言绝句: 5 characters a line), but the acrostic 春夏秋冬 "
        "asks for 夏 there; make its 6th character 夏, cut it to its first 5 characters, or drop the start or the "
        "acrostic.")
    assert _refusal("春风吹拂柳枝花草", "春夏秋冬", "") == (
        "The start 春风吹拂柳枝花草 opens line 2 with 草 (free form with an acrostic: 7 characters a line), but the "
        "acrostic 春夏秋冬 asks for 夏 there; make its 8th character 夏, cut it to its first 7 characters, or drop "
        "the start or the acrostic.")
    assert _refusal("秋风吹拂柳枝", "春夏秋冬", "wujue").startswith(
        "The start 秋风吹拂柳枝 opens line 1 with 秋 and line 2 with 枝 (wujue, 五言绝句: 5 characters a line), but the "
        "acrostic 春夏秋冬 asks for 春 and 夏 there; make its 1st and 6th characters 春 and 夏, or drop")


def test_what_passes():
    for form in ("wujue", "qijue", "wulv", "qilv", "", "auto"):
        check_start_fits_acrostic("春风", "春夏秋冬", form)  # they agree
        check_start_fits_acrostic("春风吹拂柳", "春夏秋冬", form)  # no second line head
        check_start_fits_acrostic("春风吹", "", form)  # no acrostic
        check_start_fits_acrostic("", "夏", form)  # no start
    check_start_fits_acrostic("春风吹拂柳夏", "春夏秋冬", "wujue")  # its 6th character is line 2's head
    check_start_fits_acrostic("，春风", "春夏", "wujue")  # a mark is no line's character
    # the model's reading: a character of the other script that it converts agrees with its own
    check_start_fits_acrostic("東風", "东西", "wujue", chars=lambda t: list(t.replace("東", "东")))
    with pytest.raises(PoemError, match="Unknown form 'sonnet'"):
        check_start_fits_acrostic("春", "夏", "sonnet")


def test_auto_draws_only_forms_where_they_agree():
    # 枝 heads line 2 of the five-character forms: only the seven-character ones are drawn
    assert auto_forms("春风吹拂柳枝", "春夏秋冬") == ["qijue"]
    assert auto_forms("春风吹拂柳枝", "春夏") == ["qijue", "qilv"]
    check_start_fits_acrostic("春风吹拂柳枝", "春夏秋冬", "auto")
    assert auto_forms("春风吹拂柳夏", "春夏秋冬") == ["wujue", "qijue"]  # 夏 heads line 2, or is in line 1
    assert auto_forms("春风", "春夏秋冬") == ["wujue", "qijue"]  # as before: they agree in both
    # a disagreement in every form that fits is refused, naming each
    assert _refusal("春风吹拂柳枝花草", "春夏秋冬", "auto") == (
        "The start 春风吹拂柳枝花草 and the acrostic 春夏秋冬 disagree at a line head in every form they fit (wujue: "
        "line 2 opens with 枝, not 夏; qijue: line 2 opens with 草, not 夏); change those characters of the start, "
        "shorten it, or drop the start or the acrostic.")
    # no form has room for 9 heads: free form, seven-character lines
    with pytest.raises(PoemError, match="free form with an acrostic"):
        check_start_fits_acrostic("春风吹拂柳枝花草", "春夏秋冬春夏秋冬春", "auto")


# ----------------------------------------------------------------------------------------- the library, both engines

@pytest.fixture(scope="module")
def han(tiny_poem_model):
    npm = NumpyPoemModel(tiny_poem_model)
    return "".join(t for i, t in enumerate(npm.tokens) if npm.content[i])


@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
def test_library_refuses_on_both_engines(tiny_poem_model, han, engine):
    gen = PoemGenerator(tiny_poem_model, engine=engine)
    start, other = han[:3], han[3]
    want = (f"The start {start} opens line 1 with {start[0]}, but the acrostic {other} asks for {other} there; "
            f"begin the start with {other}, or drop the start or the acrostic.")
    for form in ("wujue", "qijue", "wulv", "qilv", "", "auto"):
        with pytest.raises(PoemError) as e:
            gen.generate(start=start, acrostic=other, form=form, seed=1)
        assert str(e.value) == want, form
    with pytest.raises(PoemError, match=r"opens line 2 with .* \(wujue"):
        gen.generate(start=han[:6], acrostic=han[0] + han[7], form="wujue", seed=1)
    # they agree: the start is kept and the acrostic heads the lines
    heads = han[0] + han[5:8]
    for form in ("wujue", "qijue", "auto"):
        poem = gen.generate(start=han[:2], acrostic=heads, form=form, seed=1)[0]
        assert poem.text.startswith(han[:2]) and [line[0] for line in poem.lines] == list(heads), (form, poem.text)
        assert poem.to_dict()["start"] == han[:2]


def test_engines_write_the_same_poems_where_they_agree(tiny_poem_model, han):
    kwargs = dict(start=han[:2], acrostic=han[0] + han[5:8], n=4, seed=3)
    tf_poems = PoemGenerator(tiny_poem_model, engine="tensorflow").generate(**kwargs)
    np_poems = PoemGenerator(tiny_poem_model, engine="numpy").generate(**kwargs)
    assert [p.to_dict() for p in np_poems] == [p.to_dict() for p in tf_poems]


def test_the_numpy_signature_twin_refuses(tiny_poem_model, han):
    npm = NumpyPoemModel(tiny_poem_model)

    def generate(prompts, forms, acrostics):
        B = len(prompts)
        return npm.generate(prompts, forms, acrostics, [0.8] * B, [0] * B, [0.9] * B, list(range(B)), [64] * B)

    for form in ("wujue", "", "auto"):
        with pytest.raises(ModelInputError, match=f"opens line 1 with {han[0]}"):
            generate([han[:3]], [form], [han[3]])
    with pytest.raises(ModelInputError, match=r"\(row 1\)$"):
        generate([han[:2], han[:3]], ["wujue", "wujue"], [han[0], han[3]])
    assert generate([han[:2]], ["wujue"], [han[0]])["text"][0].startswith(han[:2])


# ----------------------------------------------------------------------------------------- the command

def _run(*args):
    from click.testing import CliRunner

    from rnn_apps.cli import cli

    return CliRunner().invoke(cli, ["generate-poem", "--engine", "numpy", *args])


@pytest.mark.skipif(not HAS_SHIPPED, reason="no shipped poem model in models/poetry")
def test_command_refuses_a_start_the_acrostic_would_override():
    for form in ("wujue", "qijue", "free", "auto"):
        res = _run("--start", "春", "--acrostic", "夏", "--form", form, "--seed", "1", "--json")
        assert res.exit_code == 1, (form, res.output)
        assert res.output.strip() == ("Error: The start 春 opens line 1 with 春, but the acrostic 夏 asks for 夏 there; "
                                      "begin the start with 夏, or drop the start or the acrostic."), form
    res = _run("--start", "春风吹", "--acrostic", "夏", "--form", "wujue", "--seed", "1")
    assert res.exit_code == 1 and res.output.strip() == "Error: " + BUG
    res = _run("--start", "春风吹拂柳枝", "--acrostic", "春夏秋冬", "--form", "wulv", "--seed", "1")
    assert res.exit_code == 1 and "opens line 2 with 枝" in res.output
    res = _run("--start", "春风吹拂柳枝花草", "--acrostic", "春夏秋冬", "--form", "free", "--seed", "1")
    assert res.exit_code == 1 and "opens line 2 with 草 (free form with an acrostic" in res.output
    res = _run("--start", "春风吹拂柳枝花草", "--acrostic", "春夏秋冬", "--seed", "1")
    assert res.exit_code == 1 and "disagree at a line head in every form they fit" in res.output


@pytest.mark.skipif(not HAS_SHIPPED, reason="no shipped poem model in models/poetry")
def test_command_keeps_a_start_that_agrees():
    # the poems written before the check for these seeds (version 10)
    for form in ("auto", "wujue"):
        res = _run("--start", "春风", "--acrostic", "春夏秋冬", "--form", form, "--seed", "1", "--json")
        assert res.exit_code == 0, res.output
        (row,) = json.loads(res.output)
        assert (row["start"], row["acrostic"], row["form"]) == ("春风", "春夏秋冬", "wujue")
        if os.path.basename(SHIPPED) in ("10", "11", "12"):
            assert row["text"] == "春风无限花，夏去一生家。秋气又归寺，冬风犹在衙。"
    # auto: 枝 would head line 2 of a five-character form, so every poem is a 七言绝句 that keeps the start
    res = _run("--start", "春风吹拂柳枝", "--acrostic", "春夏秋冬", "-n", "8", "--seed", "1", "--json")
    assert res.exit_code == 0, res.output
    for row in json.loads(res.output):
        assert row["form"] == "qijue" and row["text"].startswith(row["start"]), row
        assert [line[0] for line in row["lines"]] == list("春夏秋冬")
