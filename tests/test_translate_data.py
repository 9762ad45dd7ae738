"""Translation's parts that need no trained model: the attention layer against NumPy, tokens, pairs, batches,
BLEU, names and joined pairs."""

import os

import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
PAIRS = os.path.join(FIXTURES, "pairs.tsv")
TINY = dict(embedding_dim=16, encoder_units=16, decoder_units=24, attention_units=8, val_fraction=0.2, seed=3,
            batch_size=8, source_min_count=1, target_min_count=1, learning_rate=1e-2, dropout=0.1,
            concat_share=0.0)  # test_translate.py's step counts assume the corpus as it is (joins: tested below)


# ------------------------------------------------------------------------------------------ attention layer


def _reference_attention(layer, q, v, mask):
    """Step-by-step NumPy: e_ts = score(q_t, v_s), softmax over valid s, c_t = sum_s a_ts v_s."""
    w = {x.name: np.asarray(x.numpy(), np.float64) for x in layer.weights}
    B, T, _ = q.shape
    S = v.shape[1]
    ctx = np.zeros((B, T, v.shape[2]))
    att = np.zeros((B, T, S))
    for b in range(B):
        for t in range(T):
            e = np.zeros(S)
            for s in range(S):
                if layer.score == "additive":
                    e[s] = w["score_vector"] @ np.tanh(q[b, t] @ w["query_kernel"] + v[b, s] @ w["key_kernel"] + w["bias"])
                elif layer.score == "general":
                    e[s] = q[b, t] @ w["kernel"] @ v[b, s]
                else:
                    e[s] = q[b, t] @ v[b, s]
            if mask[b].any():
                e = np.where(mask[b], e, -np.inf)
                a = np.exp(e - e.max())
                a /= a.sum()
            else:  # no valid source step: uniform weights, not NaN
                a = np.full(S, 1.0 / S)
            att[b, t] = a
            ctx[b, t] = a @ v[b]
    return ctx, att


@pytest.mark.parametrize("score,dq,units", [("additive", 5, 7), ("bahdanau", 6, 4), ("general", 5, None),
                                            ("luong", 3, None), ("dot", 6, None)])
def test_attention_matches_numpy_step_by_step(score, dq, units):
    import keras

    from rnn_apps.layers import GlobalAttention

    rng = np.random.default_rng(0)
    B, T, S, dv = 3, 4, 5, 6
    q = rng.normal(size=(B, T, dq)).astype(np.float32)
    v = rng.normal(size=(B, S, dv)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)  # the last row has no valid step
    layer = GlobalAttention(score, units=units)
    ctx, att = layer(q, v, value_mask=mask)
    ref_ctx, ref_att = _reference_attention(layer, q.astype(np.float64), v.astype(np.float64), mask)
    np.testing.assert_allclose(np.asarray(att), ref_att, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ctx), ref_ctx, rtol=1e-4, atol=1e-5)
    assert np.asarray(att)[1, :, 2:].max() == 0.0
    # One decoder step at a time, with precomputed keys, gives the same rows.
    keys = layer.compute_keys(v)
    c1, a1 = layer(q[:, 2], v, value_mask=mask, keys=keys)
    np.testing.assert_allclose(np.asarray(a1), np.asarray(att)[:, 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(c1), np.asarray(ctx)[:, 2], rtol=1e-5, atol=1e-6)
    # The config round-trips (and through Keras serialization).
    clone = GlobalAttention.from_config(layer.get_config())
    clone.build(q.shape, v.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(q, v, value_mask=mask)[1]), np.asarray(att), rtol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert again.get_config() == layer.get_config()


def test_attention_argument_errors():
    from rnn_apps.layers import GlobalAttention

    with pytest.raises(ValueError, match=r"`score` must be one of .*received 'cosine'"):
        GlobalAttention("cosine")
    with pytest.raises(ValueError, match="`units` is required for the additive"):
        GlobalAttention("additive")
    with pytest.raises(ValueError, match="same size; received 4 and 6"):
        GlobalAttention("dot")(np.zeros((1, 2, 4), np.float32), np.zeros((1, 3, 6), np.float32))
    with pytest.raises(ValueError, match="rank 3 .* received shape"):
        GlobalAttention("general")(np.zeros((1, 2, 4), np.float32), np.zeros((3, 6), np.float32))


# ------------------------------------------------------------------------------------------ text and data


def test_tokenization_and_detokenization():
    from rnn_apps.apps.translate.text import detokenize_py, tokenize_py

    en = tokenize_py(["Don't touch Tom's dog!", "I'm 'happy', really.", "", "  "], "en")
    assert en[0] == ["do", "n't", "touch", "tom", "'s", "dog", "!"]
    assert en[1] == ["i", "'m", "'", "happy", "'", ",", "really", "."]
    assert en[2] == [] and en[3] == []
    assert tokenize_py(["我爱 你。", ""], "zh") == [["我", "爱", "你", "。"], []]
    assert detokenize_py(en[0], "en", {"tom": "Tom"}) == "Don't touch Tom's dog!"
    assert detokenize_py(["i", "love", "you", "."], "en", {"i": "I"}) == "I love you."
    assert detokenize_py(["我", "爱", "你", "。"], "zh") == "我爱你。"
    assert detokenize_py([], "en") == ""
    # quotation marks hug their quotation and a hyphen its words ('He said, " I'm very tired. "', "six - thirty")
    said = ["he", "said", ",", '"', "i", "'m", "very", "tired", ".", '"']
    assert detokenize_py(said, "en", {"i": "I"}) == 'He said, "I\'m very tired."'
    assert detokenize_py(['"', "thank", "you", ".", '"'], "en") == '"Thank you."'
    assert detokenize_py(["get", "up", "at", "six", "-", "thirty", "."], "en") == "Get up at six-thirty."
    assert detokenize_py(['"', "hi"], "en") == '" hi'  # an unmatched mark is left as it is


def test_pairs_loading_split_and_errors(tmp_path):
    from rnn_apps.apps.translate import data as tdata

    pairs = tdata.load_pairs(PAIRS)
    # 我喜歡茶。 converted to simplified repeats an earlier pair: kept once
    assert len(pairs) == 45 and pairs[0] == tdata.Pair("Hi.", "你好。")
    assert pairs.count(tdata.Pair("I like tea.", "我喜欢茶。")) == 1
    raw = tdata.load_pairs(PAIRS, normalize=False)
    assert len(raw) == 46 and tdata.Pair("I like tea.", "我喜歡茶。") in raw
    train, val = tdata.split_pairs(pairs, 0.2, 3)
    assert (train, val) == tdata.split_pairs(pairs, 0.2, 3) and len(train) + len(val) == len(pairs)
    assert not {p.en.lower() for p in train} & {p.en.lower() for p in val}  # both "I like tea." on one side
    f = tmp_path / "three.tsv"
    f.write_bytes("\ufeffHi.\t你好。\tCC-BY 2.0 (France) Attribution: tatoeba.org\n\nRun!\t跑！\n".encode())
    assert [(p.en, p.zh) for p in tdata.load_pairs(str(f))] == [("Hi.", "你好。"), ("Run!", "跑！")]
    # a header line was read as a pair (and learned: "english" -> "chinese"); only the first line can be one
    f.write_text("english\tchinese\n\nHi.\t你好。\nRun!\t跑！\n", encoding="utf-8")
    assert [p.en for p in tdata.load_pairs(str(f))] == ["Hi.", "Run!"]
    # nor a Chinese column name (English<TAB>中文 was learned as a pair)
    f.write_text("English\t中文\nHi.\t你好。\n", encoding="utf-8")
    assert [p.en for p in tdata.load_pairs(str(f))] == ["Hi."]
    # every cell in quotes (a spreadsheet's "quote all"): " was the most frequent token of both vocabularies
    f.write_text('"english"\t"chinese"\n"Hi."\t"你好。"\n"He said ""run""."\t"他说“跑”。"\n', encoding="utf-8")
    assert [(p.en, p.zh) for p in tdata.load_pairs(str(f))] == [("Hi.", "你好。"), ('He said "run".', "他说“跑”。")]
    # a file where only some sentences are quoted keeps their quotes (Tatoeba has 108 such pairs)
    f.write_text('"Help!"\t"救命！"\nRun!\t跑！\n', encoding="utf-8")
    assert [p.en for p in tdata.load_pairs(str(f))] == ['"Help!"', "Run!"]
    f.write_text('"Hi."\t""\n', encoding="utf-8")
    with pytest.raises(tdata.TranslationDataError, match="line 1: expected 'english<TAB>chinese'.*nothing but its quotes"):
        tdata.load_pairs(str(f))
    f.write_text("en\tzh\n", encoding="utf-8")
    with pytest.raises(tdata.TranslationDataError, match="holds no sentence pairs"):
        tdata.load_pairs(str(f))
    f.write_text("Hi.\t你好。\nno tab here\n", encoding="utf-8")
    with pytest.raises(tdata.TranslationDataError, match="line 2: expected 'english<TAB>chinese'"):
        tdata.load_pairs(str(f))
    with pytest.raises(FileNotFoundError, match="No such file"):
        tdata.load_pairs(str(tmp_path / "nope.tsv"))
    # a gzipped TSV was "line 1 is not UTF-8 text ... (e.g. iconv -f latin1 -t utf-8)"
    import gzip

    packed = tmp_path / "pairs.tsv.gz"
    packed.write_bytes(gzip.compress("Hi.\t你好。\n".encode()))
    with pytest.raises(tdata.TranslationDataError,
                       match=rf"^{packed} is gzip-compressed; decompress it first \(gunzip -k {packed}\)\.$"):
        tdata.load_pairs(str(packed))
    assert tdata.split_sentences("Hi. How are you? Fine!", "en") == ["Hi.", "How are you?", "Fine!"]
    assert tdata.split_sentences("你好。你好吗？好", "zh") == ["你好。", "你好吗？", "好"]


def _fixture_rows():
    with open(PAIRS, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def test_a_corpus_with_its_columns_swapped_or_without_chinese_is_refused(tmp_path):
    """Such a file trained a translator without a word, which then translated garbage."""
    from rnn_apps.apps.translate import data as tdata

    rows = _fixture_rows()
    f = tmp_path / "pairs.tsv"
    f.write_text("".join(f"{zh}\t{en}\n" for en, zh in rows), encoding="utf-8")
    with pytest.raises(tdata.TranslationDataError) as e:
        tdata.load_pairs(str(f))
    assert str(e.value) == (f"{f}: its first column holds Chinese and its second English in 100% of its 46 rows "
                            "(line 1: '你好。'<TAB>'Hi.'); the file must be English<TAB>Chinese[<TAB>attribution] "
                            "(swap the columns).")
    f.write_text("".join(f"{en}\t{en}\n" for en, _ in rows), encoding="utf-8")
    with pytest.raises(tdata.TranslationDataError, match=r"its second column, the Chinese one, holds no Chinese "
                                                         r"character in 100% of its 46 rows \(first at line 1: 'Hi.'\)"):
        tdata.load_pairs(str(f))
    f.write_text("".join(f"{zh}\t{zh}\n" for _, zh in rows), encoding="utf-8")
    with pytest.raises(tdata.TranslationDataError, match=r"its first column, the English one, holds Chinese "
                                                         r"characters in 100% of its 46 rows"):
        tdata.load_pairs(str(f), normalize=False)  # evaluation reads the same way


def test_a_few_odd_rows_of_a_real_corpus_are_kept():
    """A real corpus has a Chinese side in digits or Latin letters here and there: up to MAX_ODD_SHARE of the rows
    pass (the shipped Tatoeba files have none)."""
    from rnn_apps.apps.translate import data as tdata

    rows = [(n, en, zh) for n, (en, zh) in enumerate(_fixture_rows(), 1)]
    odd = int(tdata.MAX_ODD_SHARE * len(rows))  # 9 of 46
    mixed = [(n, en, "OK" if n <= odd else zh) for n, en, zh in rows]
    tdata.check_languages("mine.tsv", mixed)
    mixed = [(n, zh, en) if n <= odd else (n, en, zh) for n, en, zh in rows]  # a few pairs the other way round
    tdata.check_languages("mine.tsv", mixed)
    with pytest.raises(tdata.TranslationDataError, match=r"holds no Chinese character in 22% of its 46 rows"):
        tdata.check_languages("mine.tsv", [(n, en, "OK" if n <= odd + 1 else zh) for n, en, zh in rows])
    assert len(tdata.load_pairs(PAIRS)) == 45


@pytest.mark.parametrize("text, sentences", [
    ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
    ('"Are you OK?" he asked. She nodded.', ['"Are you OK?" he asked.', "She nodded."]),
    ("I like fruit, e.g. apples. Yes!", ["I like fruit, e.g. apples.", "Yes!"]),
    ("J. K. Rowling wrote it. It sold well.", ["J. K. Rowling wrote it.", "It sold well."]),
    ("It costs 3.5 dollars. I paid 2000 yen.", ["It costs 3.5 dollars.", "I paid 2000 yen."]),
    ('Tom said "Hi." Mary left.', ['Tom said "Hi."', "Mary left."]),
    ("Wait... What? No way!", ["Wait...", "What?", "No way!"]),
    ("What is it?", ["What is it?"]),
    ("i am tired. let's go home.", ["i am tired.", "let's go home."]),
])
def test_english_sentences_end_where_a_reader_sees_an_end(text, sentences):
    from rnn_apps.sentences import split_sentences

    assert split_sentences(text, "en") == sentences


@pytest.mark.parametrize("text, sentences", [
    ("我爱你. 我想你.", ["我爱你.", "我想你."]),  # a half-width stop after a character (the second was lost)
    ("你好……我是汤姆。", ["你好……", "我是汤姆。"]),
    ("我想…我不知道", ["我想…", "我不知道"]),
    ("他说：“我很累。”然后走了。", ["他说：“我很累。”", "然后走了。"]),
    ("价格是3.5元。我住在U.S.很久了", ["价格是3.5元。", "我住在U.S.很久了"]),  # no end inside a number or Latin
])
def test_chinese_sentences_end_where_a_reader_sees_an_end(text, sentences):
    from rnn_apps.sentences import split_sentences

    assert split_sentences(text, "zh") == sentences


def test_every_text_of_several_sentences_is_cut_however_short():
    """The translators learned from pairs of one sentence and drop the later sentences of a short paragraph
    ("It is late. I am tired. Let's go home." came out as two sentences): each sentence is read alone."""
    from rnn_apps.sentences import sentence_pieces

    words = lambda xs: [len(x.split()) for x in xs]  # noqa: E731  (a token count)
    assert sentence_pieces("It is late. I am tired. Let's go home.", "en", words) == [
        "It is late.", "I am tired.", "Let's go home."]
    assert sentence_pieces("今天很冷。我不想出去。", "zh", lambda xs: [len(x) for x in xs]) == ["今天很冷。", "我不想出去。"]
    assert sentence_pieces("  Mr. Smith is here.  ", "en", words) == ["Mr. Smith is here."]
    long_one = " ".join(["word"] * 130) + "."
    assert len(sentence_pieces(long_one, "en", words, max_tokens=60)) == 3  # a long sentence: pieces


def test_pair_batches_resume_at_any_step():
    from rnn_apps.apps.translate.data import PairBatches

    rng = np.random.default_rng(1)
    src = [rng.integers(4, 50, size=rng.integers(2, 9)) for _ in range(37)]
    tgt = [np.concatenate([[2], rng.integers(4, 50, size=rng.integers(1, 9)), [3]]) for _ in range(37)]
    plan = PairBatches(src, tgt, batch_size=8, seed=5)
    full = [b for _, b in zip(range(13), plan.iterate(0))]
    tail = [b for _, b in zip(range(6), plan.iterate(7))]
    for a, b in zip(full[7:], tail):
        np.testing.assert_array_equal(a[0][0], b[0][0])
        np.testing.assert_array_equal(a[1], b[1])
    (x, y_in), y_out, w = full[0]
    assert (y_in[:, 0] == 2).all() and w.sum() == (y_out != 0).sum()
    assert plan.steps_per_epoch == 5 and sum(len(b[1]) for b in full[:5]) == 37


# ------------------------------------------------------------------------------------------ BLEU


def test_bleu_known_cases():
    from rnn_apps.apps.translate.evaluate import corpus_bleu

    assert corpus_bleu(["我爱你。"], ["我爱你。"], "zh")[0] == pytest.approx(100.0)
    # all n-gram precisions 1, hypothesis 6 tokens against 8: BLEU = exp(1 - 8/6) = 71.65
    score, sig = corpus_bleu(["a b c d e f"], ["a b c d e f g h"], "en")
    assert score == pytest.approx(100 * np.exp(1 - 8 / 6), abs=1e-2) and "tok:13a" in sig
    # 'zh' tokenization scores Chinese by character: the same 6-of-8 case
    assert corpus_bleu(["我们喜欢音乐"], ["我们喜欢音乐。。"], "zh")[0] == pytest.approx(100 * np.exp(1 - 8 / 6), abs=1e-2)


# ------------------------------------------------------------------------------------------ unknown words, names


def test_name_table_and_placeholder_pairs():
    from rnn_apps.apps.translate import data as tdata

    english = [["tom", "is", "here", "."], ["i", "saw", "tom", "."], ["tom", "likes", "tea", "."],
               ["boston", "is", "big", "."], ["i", "like", "boston", "."], ["go", "to", "boston", "."],
               ["ask", "sam", "."], ["sam", "left", "."], ["i", "saw", "sam", "."]]
    chinese = ["汤姆在这里。", "我看见了汤姆。", "汤姆喜欢茶。", "波士顿很大。", "我喜欢波士顿。", "去波士顿。",
               "问他。", "他走了。", "我看见了山姆。"]  # "sam" has no steady rendering
    truecase = {"tom": "Tom", "boston": "Boston", "sam": "Sam", "i": "I"}
    table = tdata.name_table(english, chinese, truecase, min_count=3, min_share=0.8)
    assert table == {"tom": "汤姆", "boston": "波士顿"}
    zh_tokens = [list(z) for z in chinese]
    src, tgt = tdata.placeholder_pairs(english, zh_tokens, table, "en-zh", share=1.0, seed=0)
    assert len(src) == 6
    assert src[0] == ["<unk>", "is", "here", "."] and tgt[0] == ["<unk>", "在", "这", "里", "。"]
    assert src[4] == ["i", "like", "<unk>", "."] and tgt[4] == ["我", "喜", "欢", "<unk>", "。"]
    back_src, back_tgt = tdata.placeholder_pairs(zh_tokens, english, table, "zh-en", share=1.0, seed=0)
    assert back_src == tgt and back_tgt == src
    assert tdata.placeholder_pairs(english, zh_tokens, table, "en-zh", share=0.0, seed=0) == ([], [])
    with pytest.raises(ValueError, match="share must be in"):
        tdata.placeholder_pairs(english, zh_tokens, table, "en-zh", share=1.5, seed=0)


def test_concatenated_pairs():
    """Joined pairs: two different pairs, source with source and target with target, within the limits."""
    from rnn_apps.apps.translate import data as tdata

    src = [[f"w{i}", "."] for i in range(20)]
    tgt = [[f"z{i}", "。"] for i in range(20)]
    new_src, new_tgt = tdata.concatenated_pairs(src, tgt, share=0.5, seed=3, max_source_len=60, max_target_len=80)
    assert len(new_src) == len(new_tgt) == 10
    for s, t in zip(new_src, new_tgt):
        a, b = int(s[0][1:]), int(s[2][1:])
        assert a != b and s == src[a] + src[b] and t == tgt[a] + tgt[b]
    assert tdata.concatenated_pairs(src, tgt, 0.5, 3, 60, 80) == (new_src, new_tgt)  # seeded
    assert tdata.concatenated_pairs(src, tgt, 0.5, 3, max_source_len=3, max_target_len=80) == ([], [])
    assert tdata.concatenated_pairs(src, tgt, 0.0, 3, 60, 80) == ([], [])
    with pytest.raises(ValueError, match="share must be in"):
        tdata.concatenated_pairs(src, tgt, 1.5, 3, 60, 80)


def test_corpus_with_joined_pairs():
    """Joined pairs add their share of training pairs, never validation pairs, and leave the vocabularies alone."""
    from rnn_apps.apps.translate.task import DEFAULTS, prepare_corpus

    base = prepare_corpus(PAIRS, {**DEFAULTS, **TINY})
    joined = prepare_corpus(PAIRS, {**DEFAULTS, **TINY, "concat_share": 0.5})
    n = base["stats"]["train_pairs"]
    assert joined["stats"]["concatenated_pairs"] == round(0.5 * n) and base["stats"]["concatenated_pairs"] == 0
    assert len(joined["train"]) == len(base["train"]) + round(0.5 * n)
    assert len(joined["val"]) == len(base["val"])
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(joined["val"], base["val"]))
    assert joined["source_vocab"].tokens == base["source_vocab"].tokens
    assert joined["target_vocab"].tokens == base["target_vocab"].tokens
    eos = base["source_vocab"].eos_id
    # a joined source is two training sources, the first's <eos> dropped
    longest = max(len(s) for s, _ in base["train"])
    assert max(len(s) for s, _ in joined["train"]) > longest and all(s[-1] == eos for s, _ in joined["train"])


def test_a_word_in_latin_letters_is_one_chinese_token():
    """Letter by letter, 我叫Kowalski。 came out "I lent w to the w.": a Latin word (with its digits,
    hyphens, apostrophes, and the words of a name) is one token, which an unseen name reaches the model as."""
    import tensorflow as tf

    from rnn_apps.apps.translate.text import tokenize_py, tokenize_zh

    texts = ["我叫Kowalski。", " 我住在New York。", "用Wi-Fi和MP3，O'Brien说", "José在Ｇｏｏｇｌｅ", "我有2个哥哥",
             "Tom 把Mary拉出水", "   ", "a\x1fb中"]
    assert tokenize_py(texts, "zh") == [
        ["我", "叫", "Kowalski", "。"], ["我", "住", "在", "New York", "。"],
        ["用", "Wi-Fi", "和", "MP3", "，", "O'Brien", "说"], ["José", "在", "Ｇｏｏｇｌｅ"], ["我", "有", "2", "个", "哥", "哥"],
        ["Tom", "把", "Mary", "拉", "出", "水"], [], ["ab", "中"]]
    # a model trained on letters reads the names it learned letter by letter so, and every other one whole
    spelled = tokenize_zh(tf.constant(["Tom 把Mary和Tomas"]), spelled=("Tom", "Mary")).to_list()
    assert [[t.decode() for t in row] for row in spelled] == [["T", "o", "m", "把", "M", "a", "r", "y", "和", "Tomas"]]
    # the reading of such models' training data: every character a token, whitespace dropped
    assert tokenize_py(["我叫Ko wa。"], "zh", latin_words=False) == [["我", "叫", "K", "o", "w", "a", "。"]]


@pytest.mark.parametrize("source, translation, target, lost", [
    ("他今年25岁。", "He was born in Africa.", "en", ["25"]),
    ("我有3本书。", "I have three books.", "en", []),
    ("我有3本书。", "I have 3 books.", "en", []),
    ("我有2只猫和1只狗。", "I have a dog and a cat.", "en", ["2"]),  # "a dog": 1 is carried
    ("现在是下午3点。", "Now is the time for action.", "en", ["3"]),
    ("他25岁。", "He is twenty-five.", "en", []),
    ("他25岁。", "He is 2 or 5.", "en", ["25"]),  # digits of another number do not count
    ("It costs 1,500 yen.", "这要1500日元。", "zh", []),
    ("It costs 1,500 yen.", "这是1000日元。", "zh", ["1,500"]),
    ("I am 25 years old.", "我十二岁了。", "zh", ["25"]),
    ("I am 25 years old.", "我二十五岁了。", "zh", []),
    ("I have 2 books.", "我有两本书。", "zh", []),
    ("I have 12 books.", "我有十二本书。", "zh", []),
    ("It was 2,000 years ago.", "那是两千年前。", "zh", []),
    ("He left in 2026.", "他二零二六年走了。", "zh", []),
    ("ＩＤ是１２３。", "The ID is 123.", "en", []),  # full-width digits
    ("Room 101, 101.", "101号房间。", "zh", []),  # a number said once is carried
])
def test_numbers_the_translation_does_not_carry_are_named(source, translation, target, lost):
    from rnn_apps.apps.translate.text import lost_numbers

    assert lost_numbers(source, translation, target) == lost
