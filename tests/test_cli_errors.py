"""One-line errors, not tracebacks, for bad command-line input: damaged models, bad ranges, busy ports."""

import math
import os
import socket
import sys
import time

import pytest
from click.testing import CliRunner

from rnn_apps.cli import cli


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    # click's own errors exit 2 and ClickExceptions 1; neither may come with a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("value, words", [("nan", "not a finite number"), ("0", "range"), ("-1", "range"),
                                          ("inf", "range")])
def test_forecast_learning_rate_must_be_positive_and_finite(value, words):
    r = run("forecast", "--learning-rate", value)
    assert r.exit_code == 2 and words in r.output


def test_finite_float_range_type():
    from rnn_apps.cli.common import FiniteFloatRange

    t = FiniteFloatRange(0, 10, min_open=True)
    assert t.convert("2.5", None, None) == 2.5
    for bad in ("nan", "-nan", "0"):
        with pytest.raises(Exception) as e:
            t.convert(bad, None, None)
        assert "finite" in str(e.value) or "range" in str(e.value)
    assert not math.isnan(t.convert("1e-9", None, None))


def test_batch_size_must_be_a_positive_integer():
    import numpy as np

    from rnn_apps.apps.base import check_batch_size
    from rnn_apps.apps.sentiment.classify import SentimentError

    for bad in (0, -1, 1.5, True, None, "8"):
        with pytest.raises(SentimentError, match=r"batch_size must be a positive integer; received "):
            check_batch_size(bad, SentimentError)
    assert check_batch_size(1, SentimentError) == 1
    assert type(check_batch_size(np.int64(8), SentimentError)) is int


def damaged_copy(tmp_path, app):
    """The shipped model's settings (assets.extra) with a truncated saved_model.pb (an export cut short)."""
    import shutil

    from rnn_apps.export import latest_version_dir
    from rnn_apps.paths import models_root

    src = latest_version_dir(os.path.join(models_root(), app))
    if src is None:
        pytest.skip(f"no shipped {app} model")
    d = tmp_path / app / "1"
    shutil.copytree(os.path.join(src, "assets.extra"), d / "assets.extra")
    os.makedirs(d / "variables")
    with open(os.path.join(src, "saved_model.pb"), "rb") as f:
        (d / "saved_model.pb").write_bytes(f.read(4000))
    return str(d)


@pytest.mark.parametrize("app, command", [("sentiment", ["classify", "a good film"]),
                                          ("translate", ["translate", "hello"]),
                                          ("fill", ["fill-poem", "床前□月光"])])
def test_damaged_model_is_one_line(tmp_path, app, command):
    pytest.importorskip("tensorflow")
    r = run(*command, "--model", damaged_copy(tmp_path, app))
    assert r.exit_code == 1 and "Could not load the model" in r.output and "--model" in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("missing, names", [("variables", "variables/variables"), ("assets/ngrams.txt", "ngrams.txt")])
def test_a_model_missing_a_file_is_one_line_naming_it(tmp_path, missing, names):
    """A copy without its weights or one of its assets: TensorFlow's error (stack notes, advice on devices)
    was printed as it came, being of a known type; now the one line of a damaged model, naming the file."""
    import shutil

    from rnn_apps.export import latest_version_dir
    from rnn_apps.paths import models_root

    pytest.importorskip("tensorflow")
    src = latest_version_dir(os.path.join(models_root(), "sentiment"))
    if src is None or not os.path.exists(os.path.join(src, missing)):
        pytest.skip("no shipped sentiment model with that file")
    d = tmp_path / "sentiment" / "1"
    shutil.copytree(src, d)
    target = d / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    r = run("classify", "a good film", "--model", str(d))
    assert r.exit_code == 1 and r.output.startswith("Error: Could not load the model (") and names in r.output
    assert r.output.rstrip().endswith("export it again, or choose another with --model.")
    assert len(r.output.strip().splitlines()) == 1 and "device" not in r.output, r.output


def test_serve_port_range_and_busy_port(tmp_path):
    r = run("serve", "--models", str(tmp_path), "--port", "99999")
    assert r.exit_code == 2 and "99999" in r.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run("serve", "--models", str(tmp_path), "--port", str(s.getsockname()[1]))
    assert r.exit_code == 1 and "in use" in r.output
    r = run("serve", "--models", str(tmp_path), "--host", "no-such-host.invalid", "--port", "0")
    assert r.exit_code == 1 and "cannot listen on no-such-host.invalid" in r.output


def test_serve_keeps_tensorflow_start_up_lines_off_its_log(tiny_poem_model):
    """The server's stderr is its log: TensorFlow's native start-up lines (CUDA probes, absl notices) printed
    from the thread that loads the models went into it, after the banner."""
    import json
    import signal
    import subprocess
    import urllib.request

    env = {k: v for k, v in os.environ.items() if k != "RNN_APPS_VERBOSE"}
    models = os.path.dirname(os.path.dirname(tiny_poem_model))  # <models>/poetry/<version>
    proc = subprocess.Popen([sys.executable, "-m", "rnn_apps.cli", "serve", "--models", models, "--port", "0",
                             "--no-warmup"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = next(line for line in proc.stdout if "REST API at" in line).split(" at ")[1].split("v1/")[0]
        deadline = time.monotonic() + 180
        while True:  # until the model is loaded: TensorFlow was imported and ran by then
            try:
                with urllib.request.urlopen(url + "v1/models/poetry", timeout=5) as r:
                    if json.load(r)["model_version_status"][0]["state"] == "AVAILABLE":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the model never became available"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "loaded model poetry" in err and "absl" not in err and "cuda" not in err.lower(), err


def test_commands_share_the_server_limits():
    from rnn_apps import limits
    from rnn_apps.apps.fill.data import FillError, parse_text
    from rnn_apps.apps.sentiment.classify import SentimentClassifier, SentimentError

    fill = limits.APPS["fill"]
    assert parse_text("月" + "□" * fill.max_blanks["text"][1]).count("□") == 64
    with pytest.raises(FillError, match="65 blanks; at most 64"):
        parse_text("月" + "□" * 65)
    with pytest.raises(FillError, match="at most 512"):
        parse_text("月" * 512 + "□")
    clf = SentimentClassifier.__new__(SentimentClassifier)  # the input checks need no model
    with pytest.raises(SentimentError, match="at most 2,000,000"):
        clf._check(["good " * 400001])
    with pytest.raises(limits.LimitError, match="at most 2,000,000"):
        limits.check_text(limits.APPS["sentiment"], "text", "good " * 400001)


@pytest.mark.parametrize("args, words", [
    (["--seed", "99999999999999999999999"], "--seed"),
    # a negative seed read modulo 2**63 gave the poems of another seed (-2**62 those of 2**62)
    (["--seed", "-1"], "seed must be an integer from 0 to 9,223,372,036,854,775,807; received -1."),
    (["--temperature", "nan"], "temperature must be a finite number; received NaN."),
    (["--temperature", "-1"], "temperature must be in [0, 10], 0 or at least 1e-06 (0 is greedy); received -1.0."),
    # tiny positive values overflow float32 once the logits are divided (the engines sampled noise)
    (["--temperature", "2e-38"], "temperature must be in [0, 10], 0 or at least 1e-06 (0 is greedy); received 2e-38."),
    (["--top-p", "0"], "top_p must be in [1e-06, 1] (1 is off); received 0.0."),
    (["--top-p", "1e-46"], "top_p must be in [1e-06, 1] (1 is off); received 1e-46."),
    (["--top-p", "nan"], "top_p must be a finite number; received NaN.")])
def test_generate_poem_sampling_values(args, words):
    r = run("generate-poem", *args)
    assert r.exit_code == 2 and words in r.output


def test_generate_poem_takes_the_seeds_the_server_takes():
    """The command refused seeds above 2**62 that the server and the graph accept (up to 2**63 - 1); the
    last poem's seed (seed + n - 1) must be one too, on either engine."""
    top = str(2**63 - 1)
    poems = [run("generate-poem", "--seed", top, "--form", "wujue", "--engine", e) for e in ("numpy", "tensorflow")]
    assert [r.exit_code for r in poems] == [0, 0] and poems[0].stdout == poems[1].stdout
    r = run("generate-poem", "--seed", top, "-n", "2")
    assert r.exit_code == 1 and "seed + 1 (the last poem's seed) must be an integer from 0 to" in r.output


# ----------------------------------------------------------------------------------- files a command writes


@pytest.mark.parametrize("args", [
    ["forecast", "--plot", "{tmp}/forecast.xyz"],
    ["translate", "Hello.", "--plot-attention", "{tmp}/attention.docx"],
    ["caption", "photo.jpg", "--plot-attention", "{tmp}/attention.xyz"],
])
def test_a_figure_format_matplotlib_cannot_write_is_refused_before_any_work(tmp_path, args):
    r = run(*[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2 and "a figure cannot be written as ." in r.output and ".png" in r.output


@pytest.mark.parametrize("args", [
    ["forecast", "--output", "{tmp}/no/such/folder/next.csv"],
    ["forecast", "--plot", "{tmp}/no/such/folder/forecast.png"],
    ["caption", "photo.jpg", "--plot-attention", "{tmp}/nope/attention.png"],
    ["evaluate", "translate", "--data", "pairs.tsv", "--output", "{tmp}/nope/out.tsv"],
    ["demo", "long-memory", "--quick", "--plot", "{tmp}/nope/long_memory.png"],
])
def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path, args):
    r = run(*[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2 and "does not exist; create it first" in r.output
    assert not (tmp_path / "nope").exists() and not (tmp_path / "no").exists()


def test_an_empty_output_path_is_refused_not_skipped():
    r = run("forecast", "--plot", "")
    assert r.exit_code == 2 and "expected a file path; received an empty one" in r.output


def test_output_file_type_accepts_figures_matplotlib_writes(tmp_path):
    from rnn_apps.cli.common import OutputFile

    for name in ("a.png", "b.PDF", "c.svg"):  # no extension: test_a_figure_without_an_extension_is_named_as_written
        assert OutputFile(figure=True).convert(str(tmp_path / name), None, None) == str(tmp_path / name)
    assert OutputFile().convert(str(tmp_path / "next.csv"), None, None) == str(tmp_path / "next.csv")


# ----------------------------------------------------------------------------------- evaluate --limit


@pytest.mark.parametrize("args, words", [
    (["evaluate", "translate", "--data", "pairs.tsv", "--limit", "0"], "'--limit': 0 is not in the range x>=1"),
    (["evaluate", "translate", "--data", "pairs.tsv", "--limit", "-1"], "'--limit': -1 is not in the range x>=1"),
    (["evaluate", "fill", "--data", "poems.txt", "--limit", "-2"], "'--limit': -2 is not in the range x>=1"),
    (["evaluate", "fill", "--data", "poems.txt", "--limit", "0"], "'--limit': 0 is not in the range x>=1"),
    (["evaluate", "caption", "--data", ".", "--limit", "0"], "'--limit': 0 is not in the range x>=1"),
    (["evaluate", "caption", "--data", ".", "--examples", "-1"], "'--examples': -1 is not in the range x>=0"),
    (["evaluate", "caption", "--synthetic", "--count", "0"], "'--count': 0 is not in the range x>=1"),
])
def test_evaluate_counts_must_be_positive(args, words):
    """A --limit of 0 or -1 sliced the data ([:0] meant all poems to one command, [:-1] all pairs but the last
    to another) and reported figures on the wrong number of examples without a word."""
    r = run(*args)
    assert r.exit_code == 2 and words in r.output


def test_evaluate_libraries_refuse_a_limit_below_one_before_loading_a_model(tmp_path):
    from rnn_apps.apps.fill.data import FillError
    from rnn_apps.apps.fill.filler import evaluate_masked
    from rnn_apps.apps.translate.evaluate import evaluate_pairs
    from rnn_apps.apps.translate.translate import TranslateError

    with pytest.raises(TranslateError, match="limit must be a positive number of pairs; received -1"):
        evaluate_pairs(str(tmp_path / "pairs.tsv"), str(tmp_path), limit=-1)
    with pytest.raises(FillError, match="limit must be a positive number of poems; received 0"):
        evaluate_masked(str(tmp_path / "poems.txt"), str(tmp_path), limit=0)


def test_generate_poem_max_length_out_of_range_says_its_range():
    """--max-length 0 was answered with a message about the (empty) start instead of the accepted range."""
    from rnn_apps.apps.poetry.generate import PoemError, PoemGenerator

    gen = PoemGenerator.__new__(PoemGenerator)  # the input checks need no model
    for bad in (0, -5, 1, 513):
        with pytest.raises(PoemError, match=f"max_length must be an integer from 8 to 512; received {bad}"):
            gen._check("", "", "", bad)


# ----------------------------------------------------------------------------------- text files as written


def test_text_files_with_cr_line_ends_hold_one_text_a_line():
    """A file with bare CR line ends (old Mac software) was read as ONE review or sentence."""
    import io

    from rnn_apps.textio import read_lines

    assert read_lines(io.BytesIO(b"great movie\rbad movie\r"), "f") == ["great movie", "bad movie"]
    assert read_lines(io.BytesIO(b"\xef\xbb\xbfa\r\nb\n\rc"), "f") == ["a", "b", "c"]


def test_compression_is_known_by_the_compressors_own_output():
    import bz2
    import gzip
    import lzma

    from rnn_apps import textio

    text = "BZh,label\nBZh9 is a name,1\n".encode()  # a table that starts with bzip2's letters is text
    for name, packed in (("gzip", gzip.compress(text)), ("bzip2", bz2.compress(text)), ("xz", lzma.compress(text))):
        assert textio.compression(packed[:10]) == name
    assert textio.compression(text[:10]) is None and textio.compression(b"") is None


def test_read_lines_numbers_the_lines_of_cr_line_ends_and_knows_utf16_past_a_blank_first_line():
    """A file with bare CR line ends labelled every text "line 1"; UTF-16 without a byte-order mark was looked
    for in the first line only, so a file that began with a blank line had "a NUL character" on every line."""
    import io

    from rnn_apps.textio import read_lines

    texts = read_lines(io.BytesIO(b"Good film.\rBad film.\rGreat one.\r"), "f.txt")
    assert [t.origin for t in texts] == ["f.txt, line 1", "f.txt, line 2", "f.txt, line 3"]
    assert [t.source for t in texts] == ["f.txt"] * 3  # the file, for a caller that groups texts by it
    # CR, CRLF and LF mixed: a CR before a CRLF ends a (blank) line of its own
    texts = read_lines(io.BytesIO(b"a\r\r\nb\n\rc"), "f")
    assert [(t, t.origin, t.blank_before) for t in texts] == [("a", "f, line 1", 0), ("b", "f, line 3", 1),
                                                              ("c", "f, line 5", 1)]
    # a bad byte after a line of CR line ends: counted on from the lines before, not from the LF-ended ones
    with pytest.raises(ValueError, match=r"^f, line 3: not UTF-8 text \(invalid start byte at byte 2 of the line\)"):
        read_lines(io.BytesIO(b"a\rb\nc\xff\n"), "f")
    for first in ("\n", "a\n", "\r\n\n"):
        data = (first + "A lovely film.\nAwful.\n").encode("utf-16-le")
        with pytest.raises(ValueError, match=r"^f is UTF-16 text; save it as UTF-8 \(e\.g\. iconv -f utf-16le "):
            read_lines(io.BytesIO(data), "f")


def test_poem_files_with_cr_line_ends_keep_poems_apart(tmp_path):
    from rnn_apps.apps.poetry.generate import read_poems_file

    p = tmp_path / "poems.txt"
    p.write_bytes("白日依山尽，黄河入海流。\r欲穷千里目，更上一层楼。\r\r床前明月光，疑是地上霜。\r".encode())
    assert read_poems_file(str(p)) == ["白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。",
                                       "床前明月光，疑是地上霜。"]


def test_fill_texts_lose_a_byte_order_mark(tmp_path):
    """A BOM (Windows Notepad writes one) was read as an unknown first character of the poem."""
    import io

    from rnn_apps.apps.fill.filler import read_texts_file

    p = tmp_path / "lines.txt"
    p.write_bytes("\ufeff床前明月□，疑是地上霜。\n".encode())
    assert read_texts_file(str(p)) == ["床前明月□，疑是地上霜。"]
    assert read_texts_file("-", io.BytesIO(p.read_bytes())) == ["床前明月□，疑是地上霜。"]


def _readers():
    """Each reader of a user's file a command uses, with how its message about bytes that are not UTF-8 starts
    ({path}, {line}): the wording its own tests pin."""
    from rnn_apps import cards, poems
    from rnn_apps.apps.caption import data as cdata
    from rnn_apps.apps.forecast import data as fdata
    from rnn_apps.apps.poetry import generate
    from rnn_apps.apps.sentiment import classify
    from rnn_apps.apps.sentiment import data as sdata
    from rnn_apps.apps.translate import data as tdata

    return {
        "check-poem": (generate.read_poems_file, generate.PoemError, "{path}, line {line}: not UTF-8 text"),
        "classify": (classify.read_reviews_file, classify.SentimentError, "{path}, line {line}: not UTF-8 text"),
        "sentiment data": (sdata.read_labelled_file, sdata.SentimentDataError, "{path}: line {line} is not UTF-8 text"),
        "translate data": (tdata.load_pairs, tdata.TranslationDataError, "{path}, line {line}: not UTF-8 text"),
        "forecast data": (fdata.read_csv, fdata.ForecastDataError, "{path}, line {line}: not UTF-8 text"),
        "poem corpus": (poems.read_raw_poems, poems.CorpusError, "{path}, line {line}: not UTF-8 text"),
        "card notes": (cards.read_text, cards.CardError, "{path} is not UTF-8 text: line {line}"),
        # a caption set's captions were read with bad bytes replaced by "�", which became a word
        "caption set": (cdata._read_flickr_captions, cdata.CaptionDataError, "{path}, line {line}: not UTF-8 text"),
    }


READERS = ["check-poem", "classify", "sentiment data", "translate data", "forecast data", "poem corpus", "card notes",
           "caption set"]
FIRST_LINE = "Moon.\t明月。\n"  # a line every reader takes (a pair for the translation data)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("codec, named", [("utf-16", "utf-16"), ("utf-16-le", "utf-16le"), ("utf-16-be", "utf-16be"),
                                          ("utf-32", "utf-32")])
def test_a_file_in_utf16_or_utf32_is_named_so_by_every_reader(tmp_path, reader, codec, named):
    """Only the readers of one text a line knew UTF-16 (Notepad's "Unicode"); the others called it "not UTF-8
    text (invalid start byte at byte 0)" and suggested converting it from Latin-1."""
    read, error, _ = _readers()[reader]
    p = tmp_path / "data.txt"
    p.write_bytes((FIRST_LINE + "Good night.\t晚安。\n").encode(codec))  # no byte-order mark in utf-16-le/-be
    encoding = "UTF-32" if named == "utf-32" else "UTF-16"
    with pytest.raises(error) as e:
        read(str(p))
    assert str(e.value) == f"{p} is {encoding} text; save it as UTF-8 (e.g. iconv -f {named} -t utf-8)."


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("line, hint", [
    (b"Caf\xe9 au lait.\t" + "咖啡。\n".encode(), "invalid continuation byte at byte 4 of the line). Save it as UTF-8 "
                                                "(e.g. iconv -f latin1 -t utf-8)."),
    ("Moon.\t床前明月光。\n".encode("gbk"), "invalid start byte at byte 7 of the line). Save it as UTF-8 "
                                          "(e.g. iconv -f gb18030 -t utf-8)."),
], ids=["latin1", "gbk"])
def test_a_byte_that_is_not_utf8_is_named_by_its_line_and_its_byte_in_the_line(tmp_path, reader, line, hint):
    """Each reader counted the bad byte its own way: from 0 or 1, in the file or in the line, or not at all."""
    read, error, lead = _readers()[reader]
    p = tmp_path / "data.txt"
    p.write_bytes(b"\xef\xbb\xbf" + FIRST_LINE.encode() + line)  # the BOM is not counted: an editor hides it
    with pytest.raises(error) as e:
        read(str(p))
    assert str(e.value) == lead.format(path=p, line=2) + " (" + hint


def test_check_poem_names_a_utf16_file_and_the_line_of_a_gbk_byte(tmp_path):
    u16 = tmp_path / "u16.txt"
    u16.write_bytes("静夜思\n".encode("utf-16"))
    r = run("check-poem", "--file", str(u16))
    assert r.exit_code == 1 and f"{u16} is UTF-16 text; save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)." in r.output
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("床前明月光，疑是地上霜。\n\n".encode() + "白日依山尽，黄河入海流。\n".encode("gbk"))
    r = run("check-poem", "--file", str(gbk))
    assert r.exit_code == 1 and f"{gbk}, line 3: not UTF-8 text (invalid start byte at byte 1 of the line)" in r.output
    assert "iconv -f gb18030 -t utf-8" in r.output


def test_decode_utf8_counts_lines_as_an_editor_and_reads_no_utf16_into_utf8():
    from rnn_apps.textio import decode_utf8

    assert decode_utf8("\ufeff床前明月光\n".encode(), "f") == "床前明月光\n"  # the BOM dropped
    assert decode_utf8(b"\xef\xbb\xbfa", "f", line=2) == "\ufeffa"  # a BOM only begins a file
    # a few NULs are no UTF-16: left to the readers that refuse them
    assert decode_utf8(b"a\0b\n\0\0\0\n", "f") == "a\0b\n\0\0\0\n"
    with pytest.raises(ValueError, match=r"^f, line 5: not UTF-8 text \(invalid start byte at byte 2 of the line\)"):
        decode_utf8(b"a\rb\r\nc\n\nx\xff", "f")  # CR, CRLF and LF each end a line
    with pytest.raises(RuntimeError, match=r"^f: line 9 is not UTF-8 text \(invalid continuation byte at byte 3 "):
        decode_utf8(b"\n\nna\xefve", "f", RuntimeError, line=7, lead="{name}: line {line} is not UTF-8 text")


@pytest.mark.parametrize("args, words", [
    (["serve", "--max-body-mb", "nan"], "'nan' is not a finite number"),
    (["serve", "--poll-seconds", "nan"], "'nan' is not a finite number"),
    (["serve", "--batch-timeout-ms", "nan"], "'nan' is not a finite number"),
    (["serve", "--request-timeout", "nan"], "'nan' is not a finite number"),
    (["serve", "--poll-seconds", "1e12"], "not in the range 0<=x<=86400"),
    (["serve", "--request-timeout", "inf"], "not in the range 0.1<=x<=86400"),
    (["forecast", "--val-fraction", "nan"], "'nan' is not a finite number"),
    (["export", "translate", "--run-dir", "runs/translate", "--length-penalty", "nan"], "'nan' is not a finite number"),
])
def test_float_options_refuse_nan_and_waits_too_long_for_a_timer(tmp_path, args, words):
    """click's FloatRange lets NaN through (every comparison with NaN is false): serve then crashed with a
    traceback (or started with NaN settings), forecast trained before failing; a wait of 1e12 s overflowed."""
    r = run(*args, *(["--models", str(tmp_path), "--port", "0"] if args[0] == "serve" else []))
    assert r.exit_code == 2 and words in r.output


@pytest.mark.parametrize("args", [["export", "caption", "--run-dir", "runs/caption"], ["train", "caption"],
                                  ["export", "translate", "--run-dir", "runs/translate"], ["train", "translate"],
                                  ["fine-tune", "translate", "--data", "pairs.tsv"]])
@pytest.mark.parametrize("beam, words", [("0", "the default beam width must be an integer from 1 to 16"),
                                         ("17", "the default beam width must be an integer from 1 to 16"),
                                         ("2.5", "'2.5' is not an integer")])
def test_default_beam_is_checked_before_any_work_in_every_command(args, beam, words):
    """`export caption --default-beam 0` was refused only after the run loaded and the photos' novelty was
    measured (minutes); every --default-beam now says the decoders' range at once."""
    r = run(*args, "--default-beam", beam)
    assert r.exit_code == 2 and words in r.output, r.output


@pytest.mark.parametrize("args", [["translate", "--file"], ["classify", "--file"], ["fill-poem", "--file"],
                                  ["check-poem", "--file"], ["evaluate", "translate", "--data"],
                                  ["train", "translate", "--run-dir", "{tmp}/run", "--data"]])
def test_a_path_through_a_file_is_one_line(tmp_path, args):
    """`translate --file notes.txt/x` (a path through a file: NotADirectoryError, as PermissionError for a file
    without read permission) printed a traceback."""
    (tmp_path / "notes.txt").write_text("x\n", encoding="utf-8")
    bad = str(tmp_path / "notes.txt" / "x")
    r = run(*(a.format(tmp=tmp_path) for a in args), bad)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.strip().splitlines()[-1] in (f"Error: {bad}: not a directory.",
                                                 f"Error: Cannot read {bad}: Not a directory."), r.output


def test_the_caption_decoders_output_layer_is_not_called_an_output_file():
    """`--output` names a file to write in forecast and evaluate translate; train caption's choice of output
    layer is --output-layer (its old spelling still read, not shown)."""
    help_text = run("train", "caption", "--help").output
    assert "--output-layer [direct|tied]" in help_text and "--output " not in help_text
    for flag in ("--output-layer", "--output"):
        r = run("train", "caption", flag, "wide")
        assert r.exit_code == 2 and "Invalid value for '--output-layer'" in r.output, r.output


def test_unknown_words_are_shortened_in_the_one_line_error():
    """A text of one 100,000-letter word was echoed whole in the error line."""
    from rnn_apps import limits

    with pytest.raises(limits.LimitError) as e:
        limits.check_words(limits.APPS["translate"], "Text 1", ["a" * 100_000], ["a" * 100_000], ("en", "zh"))
    assert len(str(e.value)) < 200 and "(" + "a" * 29 + "…)" in str(e.value)
    with pytest.raises(limits.LimitError, match=r"knows none of its words \(qzx, vvv\)"):
        limits.check_words(limits.APPS["translate"], "Text 1", ["qzx", "vvv"], ["qzx", "vvv"])


def test_caption_translate_model_without_lang_zh_is_refused_not_ignored():
    r = run("caption", "photo.jpg", "--translate-model", "models/translate")
    assert r.exit_code == 2 and "is used with --lang zh only" in r.output


def test_a_text_without_chinese_characters_is_refused_by_a_chinese_to_english_model():
    """The zh-en model's vocabulary knows Latin letters (names, brands), so "I love you." was read letter by
    letter and translated as "Let's meet in v."."""
    from rnn_apps import limits

    lim = limits.APPS["translate"]
    with pytest.raises(limits.LimitError, match=r"^Text 1 has no Chinese characters; the model translates Chinese "
                                                r"into English\. Check the language\.$"):
        limits.check_words(lim, "Text 1", ["I", "love", "you", "."], [], ("zh", "en"))
    limits.check_words(lim, "Text 1", ["Tom", "是", "朋友", "。"], [], ("zh", "en"))  # a name in a Chinese text
    limits.check_words(lim, "Text 1", ["I", "love", "you", "."], [], ("en", "zh"))
    r = run("translate", "--direction", "zh-en", "我爱你。", "I love you.")
    assert r.exit_code == 1 and "Text 2 has no Chinese characters" in r.output and "Traceback" not in r.output


def test_training_commands_print_their_error_without_tensorflow_start_up_lines(tmp_path):
    """train/fine-tune/export/evaluate sentiment printed TensorFlow's native start-up lines (oneDNN, CUDA
    probes) before their one-line error: its module imports TensorFlow."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "RNN_APPS_VERBOSE")}
    r = subprocess.run([sys.executable, "-m", "rnn_apps.cli", "evaluate", "sentiment", "--data",
                        str(tmp_path / "missing")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [f"Error: No such file or directory: {tmp_path / 'missing'} (expected an aclImdb "
                                     "directory or .tar.gz, a .csv/.tsv, or tfds:imdb_reviews)."], r.stderr


def _all_commands(group=cli, path=()):
    """(words that call it, command) of every command of the CLI."""
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*path, name))
        else:
            yield (*path, name), command


def _commands_with(option):
    return [words for words, command in _all_commands() if any(option in p.opts for p in command.params)]


def test_a_number_option_given_a_word_names_the_number_it_wants():
    """Click calls an IntRange's value an "integer range" ("'abc' is not a valid integer range."), which reads
    as if a range were expected; every integer and number option says "integer" or "number"."""
    import click

    seen = 0
    for words, command in _all_commands():
        for p in command.params:
            numeric = isinstance(p.type, (click.IntRange, click.FloatRange))
            if not isinstance(p, click.Option) or p.is_flag or not numeric:
                continue
            r = CliRunner().invoke(cli, [*words, p.opts[0], "abc"])
            wanted = "integer" if isinstance(p.type, click.IntRange) else "number"
            assert r.exit_code == 2 and f"'abc' is not a valid {wanted}." in r.output, (words, p.opts[0], r.output)
            assert "range" not in r.output.splitlines()[-1], (words, p.opts[0], r.output)
            seen += 1
    assert seen > 60  # the walk reached the commands' options


@pytest.mark.parametrize("command", [c for c in _commands_with("--seed") if c != ("generate-poem",)],
                         ids=" ".join)
def test_every_seed_out_of_range_is_a_usage_error(command):
    """NumPy and Keras take seeds of 0 to 2**32 - 1: a seed outside is refused by the option, not by a
    traceback from inside NumPy (generate-poem takes signed seeds of its own range)."""
    for seed in ("-1", str(2**32)):
        r = CliRunner().invoke(cli, [*command, "--seed", seed])
        assert r.exit_code == 2 and "'--seed'" in r.output and "0<=x<=4294967295" in r.output, (command, r.output)


def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path):
    """--output/--plot/--plot-attention naming an input file would replace the user's data or photo."""
    data = tmp_path / "sales.csv"
    data.write_text("t,v\n" + "".join(f"{i},{i % 7}\n" for i in range(60)), encoding="utf-8")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n")
    texts = tmp_path / "texts.txt"
    texts.write_text("Hello.\nGood night.\n", encoding="utf-8")
    cases = [
        (["forecast", "--data", str(data), "--column", "v", "--output", str(data)], "--output"),
        (["fine-tune", "forecast", "--data", str(data), "--column", "v", "--output", str(data)], "--output"),
        (["caption", str(photo), "--plot-attention", str(photo)], "--plot-attention"),
        (["evaluate", "translate", "--data", str(texts), "--output", str(texts)], "--output"),
    ]
    before = {p: p.read_bytes() for p in (data, photo, texts)}
    for args, option in cases:
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and f"{option} " in r.output and "is an input file" in r.output, (args, r.output)
    # numbered plots of several texts (texts-1.png ... texts-3.png), one of them an input file
    (tmp_path / "texts-2.png").write_text("Thank you.\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["translate", "--file", str(texts), "--file", str(tmp_path / "texts-2.png"),
                                 "--plot-attention", str(tmp_path / "texts.png")])
    assert r.exit_code == 2 and "texts-2.png is an input file" in r.output, r.output
    assert {p: p.read_bytes() for p in (data, photo, texts)} == before


def test_a_figure_without_an_extension_is_named_as_written(tmp_path):
    """matplotlib adds .png to a name without an extension: the option gives the command that name."""
    from rnn_apps.cli.common import OutputFile

    assert OutputFile(figure=True).convert(str(tmp_path / "plot"), None, None) == str(tmp_path / "plot.png")
    assert OutputFile(figure=True).convert(str(tmp_path / "plot.svg"), None, None) == str(tmp_path / "plot.svg")
    assert OutputFile().convert(str(tmp_path / "out"), None, None) == str(tmp_path / "out")


def test_a_shipped_model_named_models_app_is_found_from_any_directory(tmp_path, monkeypatch):
    """The --help examples say --model models/caption-shapes: from another directory that named nothing."""
    from rnn_apps.export import resolve_model_dir
    from rnn_apps.paths import default_model_dir

    shipped = resolve_model_dir(default_model_dir("fill"))
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("models/fill") == shipped
    with pytest.raises(FileNotFoundError, match="No SavedModel at models/nothing"):
        resolve_model_dir("models/nothing")
    (tmp_path / "models" / "fill").mkdir(parents=True)  # a folder of the user's own is theirs: not replaced
    with pytest.raises(FileNotFoundError, match="No SavedModel at models/fill"):
        resolve_model_dir("models/fill")


def test_an_export_into_dot_models_replaces_the_shipped_model_of_its_app_only(tmp_path, monkeypatch, capsys):
    """After one app was exported into ./models, every other app read ./models/<app> (fill-poem weighed with
    the user's tiny poem model; fine-tune forecast: "No SavedModel at ./models/forecast"). Now the default is
    chosen per app: ./models/<app> when it holds a model, else the shipped one."""
    from pathlib import Path

    from rnn_apps import paths
    from rnn_apps.export import resolve_model_dir

    monkeypatch.delenv("RNN_APPS_MODELS", raising=False)
    shipped = str(Path(paths.__file__).resolve().parent.parent / "models")
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "models" / "poetry" / "1"
    own.mkdir(parents=True)
    (own / "saved_model.pb").write_bytes(b"model")
    (tmp_path / "models" / "forecast").mkdir()  # no model in it (e.g. an export that failed): not used
    (tmp_path / "models" / "fill" / ".tmp-1-99").mkdir(parents=True)  # half-written: not a model either

    assert paths.models_root() == shipped
    capsys.readouterr()
    assert paths.default_model_dir("poetry") == str(tmp_path / "models" / "poetry")
    # said (once), so that its answers are not taken for the shipped model's
    assert capsys.readouterr().err == (f"Note: using {tmp_path / 'models' / 'poetry'} (a model in the working "
                                       f"directory's models/), not the shipped {os.path.join(shipped, 'poetry')}.\n")
    paths.default_model_dir("poetry")
    assert capsys.readouterr().err == ""
    for app in ("forecast", "fill", "sentiment"):
        assert paths.default_model_dir(app) == os.path.join(shipped, app)
        assert resolve_model_dir(paths.default_model_dir(app)).startswith(os.path.join(shipped, app, ""))
    assert resolve_model_dir("models/sentiment").startswith(os.path.join(shipped, "sentiment", ""))

    # $RNN_APPS_MODELS names the models directory of every app; a model missing there says why it was looked for
    monkeypatch.setenv("RNN_APPS_MODELS", str(tmp_path / "models"))
    assert paths.models_root() == str(tmp_path / "models")
    assert paths.default_model_dir("forecast") == str(tmp_path / "models" / "forecast")
    with pytest.raises(FileNotFoundError) as e:
        resolve_model_dir(paths.default_model_dir("forecast"))
    assert str(e.value).startswith(f"No SavedModel at {tmp_path / 'models' / 'forecast'} ($RNN_APPS_MODELS="
                                   f"{tmp_path / 'models'} is the models directory; unset it for the shipped models): ")


def test_a_usage_error_is_one_line_from_the_console_script():
    """The README promises one-line errors; click's usage block ("Usage: ... Try ... --help") came first."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "rnn_apps.cli", "generate-poem", "--top-k", "-3"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == ["Error: Invalid value for '--top-k': top_k must be an integer from 0 to 100,000 "
                                     "(0 is off); received -3. (rnn-apps generate-poem --help shows the options)"]
    r = subprocess.run([sys.executable, "-m", "rnn_apps.cli", "no-such-verb"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "Error: No such command 'no-such-verb'. (rnn-apps --help lists the commands)"]


# ----------------------------------------------------------------------------------- training settings

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
POEMS, PAIRS = os.path.join(FIXTURES, "poems.txt"), os.path.join(FIXTURES, "pairs.tsv")


@pytest.mark.parametrize("args, option, words", [
    (["train", "poetry", "--data", POEMS, "--units", "0"], "--units", "0 is not in the range x>=1"),
    (["train", "poetry", "--data", POEMS, "--layers", "0"], "--layers", "0 is not in the range x>=1"),
    (["train", "poetry", "--data", POEMS, "--embedding-dim", "0"], "--embedding-dim", "0 is not in the range x>=1"),
    (["train", "poetry", "--data", POEMS, "--tokens-per-batch", "0"], "--tokens-per-batch", "x>=1"),
    (["train", "poetry", "--data", POEMS, "--dropout", "1.5"], "--dropout", "1.5 is not in the range 0<=x<1"),
    (["train", "poetry", "--data", POEMS, "--dropout", "nan"], "--dropout", "'nan' is not a finite number"),
    (["train", "translate", "--data", PAIRS, "--batch-size", "0"], "--batch-size", "0 is not in the range x>=1"),
    (["train", "translate", "--data", PAIRS, "--encoder-layers", "0"], "--encoder-layers", "x>=1"),
    (["train", "translate", "--data", PAIRS, "--dropout", "1"], "--dropout", "1.0 is not in the range 0<=x<1"),
    (["fine-tune", "translate", "--data", PAIRS, "--batch-size", "0"], "--batch-size", "x>=1"),
    (["train", "sentiment", "--data", PAIRS, "--units", "0"], "--units", "0 is not in the range x>=1"),
    (["train", "sentiment", "--data", PAIRS, "--batch-size", "0"], "--batch-size", "0 is not in the range x>=1"),
    (["train", "sentiment", "--data", PAIRS, "--max-len", "0"], "--max-len", "0 is not in the range x>=1"),
    (["train", "sentiment", "--data", PAIRS, "--max-tokens", "2"], "--max-tokens", "2 is not in the range x>=3"),
    (["train", "sentiment", "--data", PAIRS, "--layer-lr-decay", "0.5"], "--layer-lr-decay", "x>=1"),
    (["train", "sentiment", "--data", PAIRS, "--adversarial", "-1"], "--adversarial", "x>=0"),
    (["fine-tune", "sentiment", "--data", PAIRS, "--batch-size", "0"], "--batch-size", "x>=1"),
    (["train", "fill", "--data", POEMS, "--units", "0"], "--units", "0 is not in the range x>=1"),
    (["train", "fill", "--data", POEMS, "--mask-rate", "1.2"], "--mask-rate", "1.2 is not in the range 0<=x<1"),
    (["train", "fill", "--data", POEMS, "--max-steps", "-1"], "--max-steps", "-1 is not in the range x>=0"),
    (["train", "caption", "--synthetic", "--units", "0"], "--units", "0 is not in the range x>=1"),
    (["train", "caption", "--synthetic", "--dropout", "-0.1"], "--dropout", "0<=x<1"),
    (["train", "caption", "--synthetic", "--max-len", "0"], "--max-len", "x>=1"),
    (["train", "caption", "--synthetic", "--steps-per-epoch", "0"], "--steps-per-epoch", "x>=1"),
    (["train", "caption", "--synthetic", "--flip-prob", "2"], "--flip-prob", "0<=x<=1"),
    (["train", "caption", "--synthetic", "--max-shapes", "5"], "--max-shapes", "1<=x<=4"),
    (["train", "caption", "--synthetic", "--default-beam", "0"], "--default-beam", "must be an integer from 1 to 16"),
    (["fine-tune", "caption", "--data", FIXTURES, "--batch-size", "0"], "--batch-size", "x>=1"),
])
def test_training_settings_out_of_range_are_usage_errors_before_the_run_dir(tmp_path, args, option, words):
    """--units 0, --dropout 1.5, --batch-size 0 ... crashed with a traceback from inside Keras (or trained with a
    batch of 1, or reviews cut to no word) after the run directory's config.json was written."""
    run_dir = tmp_path / "run"
    r = run(*args, "--run-dir", str(run_dir))
    assert r.exit_code == 2 and f"Invalid value for '{option}': " in r.output and words in r.output, r.output
    assert not run_dir.exists()


_TRAINING_COMMANDS = [("forecast",), *(c for c in _commands_with("--epochs") if c[0] in ("train", "fine-tune"))]
# The options whose range is deliberately an app's own: forecast's back-test needs a share above 0.
_OWN_RANGES = {(("forecast",), "--val-fraction"), (("fine-tune", "forecast"), "--val-fraction")}


def _numeric_options(command):
    import click

    group = cli
    for name in command:
        group = group.get_command(click.Context(group), name)
    return {p.opts[0]: p.type for p in group.params if isinstance(p.type, (click.types.IntParamType,
                                                                            click.types.FloatParamType))}


def test_every_training_setting_has_a_range():
    """Every number a train or fine-tune command takes is a range, so that a value no model can train with is a
    usage error."""
    import click

    assert {("train", "poetry"), ("fine-tune", "forecast"), ("train", "caption")} <= set(_TRAINING_COMMANDS)
    plain = [(c, o) for c in _TRAINING_COMMANDS for o, t in _numeric_options(c).items()
             if not isinstance(t, click.types._NumberRangeBase)]
    assert not plain


def test_the_same_training_option_has_the_same_range_in_every_command():
    from rnn_apps.cli import options

    ranges = {}
    for command in _TRAINING_COMMANDS:
        for option, t in _numeric_options(command).items():
            if (command, option) not in _OWN_RANGES:
                ranges.setdefault(option, {}).setdefault((t.min, t.max, t.min_open, t.max_open), []).append(command)
    assert {o: r for o, r in ranges.items() if len(r) > 1} == {}
    sizes = ("--units", "--layers", "--embedding-dim", "--batch-size", "--max-len", "--tokens-per-batch",
             "--encoder-units", "--encoder-layers", "--decoder-units", "--attention-units", "--feature-dim",
             "--image-size", "--steps-per-epoch", "--window", "--horizon")
    assert {o: list(ranges[o]) for o in sizes} == {o: [(1, None, False, False)] for o in sizes}
    for option in ("--dropout", "--mask-rate"):
        assert list(ranges[option]) == [(0, 1, False, True)]
    assert (options.SIZE.min, options.RATE.min, options.RATE.max, options.RATE.max_open) == (1, 0, 1, True)
