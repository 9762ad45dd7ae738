import gzip
import json

import numpy as np
import pytest

from rnn_apps.apps.poetry import data as pdata
from rnn_apps.vocab import Vocabulary


def test_clean_poem_normalises_and_rejects():
    assert pdata.clean_poem("秦川雄帝宅，函谷壯皇居。") == "秦川雄帝宅，函谷壯皇居。"
    # annotations dropped, ？ and ； mapped, missing final punctuation added
    assert pdata.clean_poem("春眠不觉晓（一作春晓）；处处闻啼鸟？夜来风雨声") == "春眠不觉晓，处处闻啼鸟。夜来风雨声。"
    assert pdata.clean_poem("「白日」依山尽，《黄河》入海流，") == "白日依山尽，黄河入海流。"
    assert pdata.clean_poem("白日□山尽，黄河入海流。") is None  # lost character
    assert pdata.clean_poem("abc，def。") is None
    assert pdata.clean_poem("，，。") is None


def test_convert_script():
    assert pdata.convert_script("秦川雄帝宅，函谷壯皇居。", "simplified") == "秦川雄帝宅，函谷壮皇居。"
    assert pdata.convert_script("函谷壮皇居", "traditional") == "函谷壯皇居"
    with pytest.raises(ValueError, match="script"):
        pdata.convert_script("春", "klingon")


def _objs():
    return [
        {"title": "a", "author": "x", "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"]},
        {"title": "b", "author": "y", "paragraphs": ["白日□山盡，黃河入海流。"]},
        {"title": "c", "author": "z", "paragraphs": ["千山鳥飛絕，萬徑人蹤滅。"]},
    ]


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "json", "lines", "blocks"])
def test_read_formats(tmp_path, kind):
    objs = _objs()
    path = tmp_path / f"corpus.{kind}"
    if kind == "jsonl":
        path.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in objs), encoding="utf-8")
    elif kind == "jsonl.gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write("\n".join(json.dumps(o, ensure_ascii=False) for o in objs))
    elif kind == "json":
        path.write_text(json.dumps(objs, ensure_ascii=False), encoding="utf-8")
    elif kind == "lines":
        path.write_text("\n".join("".join(o["paragraphs"]) for o in objs) + "\n", encoding="utf-8")
    else:
        path.write_text("\n\n".join("\n".join(o["paragraphs"]) for o in objs), encoding="utf-8")
    poems = pdata.load_poems(str(path), "simplified")
    assert poems == ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "千山鸟飞绝，万径人踪灭。"]
    trad = pdata.load_poems(str(path), "traditional")
    assert trad[0].endswith("前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。")


def test_bad_corpora(tmp_path):
    with pytest.raises(pdata.CorpusError, match="No such corpus"):
        pdata.load_poems(str(tmp_path / "missing.txt"))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(pdata.CorpusError, match="not UTF-8"):
        pdata.load_poems(str(bad))
    empty = tmp_path / "empty.txt"
    empty.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(pdata.CorpusError, match="none of its 1 poems is usable"):
        pdata.load_poems(str(empty))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"paragraphs": ["床前明月光，疑是地上霜。"]}\n{oops\n', encoding="utf-8")
    with pytest.raises(pdata.CorpusError, match=":2: not a JSON object"):
        pdata.load_poems(str(broken))


def test_a_corpus_compressed_otherwise_than_gzip_says_how_to_decompress_it(tmp_path):
    """A .bz2 or .xz corpus was read as text: "line 1 is not UTF-8", with advice to convert from Latin-1."""
    import bz2
    import lzma

    import io
    import zipfile

    def zipped(data: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("poems.txt", data)
        return out.getvalue()

    for name, pack, tool in (("tang.jsonl.bz2", bz2.compress, "bunzip2 -k"), ("tang.txt.xz", lzma.compress, "unxz -k"),
                             ("poems.zip", zipped, "unzip")):  # a .zip too (was "line 1 is not UTF-8")
        path = tmp_path / name
        path.write_bytes(pack("床前明月光，疑是地上霜。\n".encode("utf-8")))
        with pytest.raises(pdata.CorpusError, match=rf"is \w+-compressed; decompress it first \({tool} .*{name}\)"):
            pdata.load_poems(str(path))


def test_a_corrupt_gzip_corpus_is_a_clear_error(tmp_path):
    """Compressed data that zlib cannot inflate crashed the command with a zlib.error traceback."""
    bad = tmp_path / "bad.txt.gz"
    # a gzip header, then a deflate block of the reserved type 3
    bad.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 32)
    with pytest.raises(pdata.CorpusError, match=r"Cannot read .*bad\.txt\.gz: corrupt gzip data \(.*invalid block"):
        pdata.load_poems(str(bad))
    cut = tmp_path / "cut.jsonl.gz"  # a file cut short: EOFError, read as clearly as before
    cut.write_bytes(gzip.compress(json.dumps(_objs()[0], ensure_ascii=False).encode("utf-8"))[:-12])
    with pytest.raises(pdata.CorpusError, match="Cannot read"):
        pdata.load_poems(str(cut))


def test_poems_left_out_are_counted_with_why(tmp_path):
    """Unusable poems were dropped without a count: a user's corpus could lose most of its poems unseen."""
    from rnn_apps import poems

    assert poems.clean_poem("白日□山尽，黄河入海流。") is None and poems.clean_poem("春眠。") is None
    path = tmp_path / "mine.txt"
    path.write_text("床前明月光，疑是地上霜。\n白日□山尽，黄河入海流。\n千山鸟飞绝，万径人●灭□\n春眠。\n（一作春晓）\n"
                    "Roses are red, violets are blue.\n", encoding="utf-8")
    kept, left = poems.load_poems_counted(str(path))
    assert kept == ["床前明月光，疑是地上霜。"] == pdata.load_poems(str(path))
    assert left == {"poems_read": 6, "poems_left_out": 5, "poems_left_out_why": {"symbols": 3, "short": 1, "empty": 1},
                    "poems_left_out_symbols": ["□", "●", "R", "o", "s"],  # the most frequent first, then as met
                    "heading_lines_set_aside": 0}
    assert poems.describe_left_out(left) == (
        "Read 6 poems; 5 left out (3 with other symbols such as '□', '●', 'R'; 1 shorter than 6 characters with "
        "their punctuation; 1 empty, or nothing but notes and punctuation).")
    assert poems.describe_left_out({"poems": 3}) is None  # nothing left out (or a run from before the count)
    cfg = {"script": "simplified", "val_fraction": 0.0, "seed": 1, "min_count": 1, "max_len": 64}
    stats = poems.prepare_corpus(str(path), cfg)[-1]
    assert stats["poems"] == 1 and {k: stats[k] for k in left} == left
    # a record of the chinese-poetry format without text is a poem read and left out, too
    path = tmp_path / "mine.jsonl"
    path.write_text('{"paragraphs": ["床前明月光，疑是地上霜。"]}\n{"paragraphs": []}\n', encoding="utf-8")
    kept, left = poems.load_poems_counted(str(path))
    assert len(kept) == 1 and left["poems_read"] == 2 and left["poems_left_out_why"] == {"empty": 1}
    assert pdata.read_raw_poems(str(path)) == ["床前明月光，疑是地上霜。"]


def test_a_corpus_without_a_usable_poem_says_why(tmp_path):
    path = tmp_path / "lost.txt"
    path.write_text("白日□山尽，黄河入海流。\n\u0007床前明月光，疑是地上霜。\n", encoding="utf-8")
    with pytest.raises(pdata.CorpusError) as e:
        pdata.load_poems(str(path))
    assert str(e.value) == (f"{path}: none of its 2 poems is usable (2 with other symbols such as '□', 'U+0007'); a "
                            "poem needs at least 6 Chinese characters with ，/。 punctuation and no other symbols.")


def test_split_is_seeded_and_disjoint(poems_file):
    poems = pdata.load_poems(poems_file)
    a = pdata.split_poems(poems, 0.2, seed=3)
    b = pdata.split_poems(poems, 0.2, seed=3)
    c = pdata.split_poems(poems, 0.2, seed=4)
    assert a == b and a != c
    train, val = a
    assert len(val) == 6 and len(train) == 24 and not set(train) & set(val)


def test_vocabulary_json_round_trip(tmp_path):
    v = Vocabulary.build(["春风春雨", "秋风"], min_count=1)
    assert v.tokens[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert v.tokens[4:6] == ["春", "风"]  # most frequent first, ties by character
    path = str(tmp_path / "vocab.json")
    v.save(path)
    assert json.load(open(path, encoding="utf-8"))["tokens"] == v.tokens
    w = Vocabulary.load(path)
    assert w.tokens == v.tokens and w.encode("春夏") == [v.index["春"], v.unk_id]
    assert v.unknown("春夏冬夏") == ["夏", "冬"]
    (tmp_path / "bad.json").write_text('{"tokens": ["a"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="not an rnn_apps vocabulary"):
        Vocabulary.load(str(tmp_path / "bad.json"))


def test_encode_long_poems_in_overlapping_pieces():
    v = Vocabulary.build(["一二三四五六七八九十，。"])
    poem = "一二三四五六七，八九十一二三四。" * 3  # 48 chars -> 50 tokens with bos/eos
    pieces = pdata.encode_poems([poem], v, max_len=16)
    assert [len(p) for p in pieces] == [17, 17, 17, 2]
    # every target is predicted exactly once: the pieces' targets concatenate to the poem + <eos>
    targets = np.concatenate([p[1:] for p in pieces])
    assert v.decode(targets) == poem and targets[-1] == v.eos_id
    assert pieces[0][0] == v.bos_id


def test_batch_plan_resumes_at_the_same_batch():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(4, 50, size=int(n)).astype(np.int32) for n in rng.integers(3, 60, size=200)]
    plan = pdata.BatchPlan(seqs, tokens_per_batch=256, bucket=8, seed=5)
    full = list(plan.iterate(0, epochs=3))
    assert len(full) == 3 * plan.steps_per_epoch
    for start in (0, 7, plan.steps_per_epoch, plan.steps_per_epoch + 3):
        resumed = list(plan.iterate(start, epochs=3))
        assert len(resumed) == len(full) - start
        for (x1, y1, w1), (x2, y2, w2) in zip(full[start:], resumed):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    # epochs are shuffled differently, and every sequence appears once per epoch
    e0 = plan.epoch_batches(0)
    e1 = plan.epoch_batches(1)
    assert sorted(np.concatenate(e0)) == list(range(200))
    assert any((a.shape != b.shape) or (a != b).any() for a, b in zip(e0, e1))
    x, y, w = full[0]
    np.testing.assert_array_equal(w, (y != 0).astype(np.float32))
    np.testing.assert_array_equal(x[:, 1:][w[:, :-1] > 0][: 5], y[:, :-1][w[:, :-1] > 0][: 5])


def test_batch_plan_rows_divide_among_replicas():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(4, 50, size=int(n)).astype(np.int32) for n in rng.integers(3, 60, size=101)]
    plan = pdata.BatchPlan(seqs, tokens_per_batch=200, bucket=8, seed=2, multiple=2)
    real = 0
    for x, y, w in plan.iterate(0, epochs=1):
        assert x.shape[0] % 2 == 0
        real += int((w.sum(axis=1) > 0).sum())
    assert real == 101  # every sequence once; filler rows have zero weight


def test_a_corpus_without_any_poem_says_so(tmp_path):
    """An empty file was "none of its 0 poems is usable ()"."""
    for name, content in (("empty.txt", ""), ("blank.txt", "\n \n")):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        with pytest.raises(pdata.CorpusError) as e:
            pdata.load_poems(str(path))
        assert str(e.value) == f"{path} holds no poem: it is empty, or holds only blank lines."


def test_blank_lines_around_a_file_of_one_poem_a_line_separate_nothing(tmp_path):
    """A file of poems one a line with an empty last line (as editors write it), or blank lines before the
    first poem, was read as poems separated by blank lines: one poem of all of them, and no validation."""
    poems = ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
             "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。"]
    for name, text in (("trail.txt", "\n".join(poems) + "\n\n"), ("spaces.txt", "\n".join(poems) + "\n \t\n"),
                       ("lead.txt", "\n\n" + "\n".join(poems) + "\n")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert pdata.load_poems(str(path)) == poems, name
    # nor does a stray blank line among many whole poems, one a line (each part was glued into one poem)
    path = tmp_path / "stray.txt"
    many = poems * 6
    path.write_text("\n".join(many[:9]) + "\n\n" + "\n".join(many[9:]) + "\n", encoding="utf-8")
    assert pdata.load_poems(str(path)) == many
    # poems written two couplets a line, a block each: blocks of a few lines, each block a poem
    path = tmp_path / "two_a_line.txt"
    eight = [p + p.replace("。", "！", 1) for p in poems]  # lines of two sentences each
    path.write_text("\n\n".join(f"{p}\n{p}" for p in eight) + "\n", encoding="utf-8")
    assert len(pdata.load_poems(str(path))) == 3
    # poems separated by blank lines, a line each of their verses, are still read so
    path = tmp_path / "blocks.txt"
    path.write_text("\n\n".join(p.replace("。", "。\n") for p in poems) + "\n\n", encoding="utf-8")
    assert pdata.load_poems(str(path)) == poems


def test_title_and_author_lines_before_poems_in_blocks_are_set_aside(tmp_path):
    """Poems copied from a web page, a block each with its title and author first (无题 / 佚名 / ...), were
    learned with the title and author glued onto the verse; they are now set aside, counted and named."""
    from rnn_apps.poems import describe_left_out, load_poems_counted

    path = tmp_path / "copied.txt"
    path.write_text("静夜思\n李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n\n"
                    "无题\n[唐] 佚名\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n\n"
                    # an unpunctuated first half line is verse (5 characters, as the verse's halves)
                    "登鹳雀楼\n白日依山尽\n黄河入海流。\n欲穷千里目，更上一层楼。\n\n"
                    # a title of the verse's length cannot be told from verse: it stays (the cautious side)
                    "寻隐者不遇\n松下问童子，言师采药去。\n只在此山中，云深不知处。\n", encoding="utf-8")
    poems, left_out = load_poems_counted(str(path))
    assert poems == ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
                     "白日依山尽黄河入海流。欲穷千里目，更上一层楼。", "寻隐者不遇松下问童子，言师采药去。只在此山中，云深不知处。"]
    assert left_out["heading_lines_set_aside"] == 5
    assert describe_left_out(left_out) == ("Read 4 poems; 5 title or author lines before the poems set aside (not "
                                           "learned as verse).")
    # unpunctuated poems have no heading to tell apart
    path.write_text("静夜思\n床前明月光\n疑是地上霜\n\n春晓\n春眠不觉晓\n处处闻啼鸟\n", encoding="utf-8")
    assert load_poems_counted(str(path))[1]["heading_lines_set_aside"] == 0
