"""Text to tokens and back, as TensorFlow string ops: the same code prepares training data and runs inside
the exported model, so a sentence is cut into tokens identically at training and at serving time.

English (word level):

1. invalid UTF-8 is replaced by U+FFFD, text lowercased, curly apostrophes and quotes made straight;
2. quotes at the edges of words are split off (``'hello',`` -> ``' hello ' ,``);
3. clitics are split as in the Penn Treebank: ``don't`` -> ``do n't``, ``Tom's`` -> ``tom 's``, ``I'm`` ->
   ``i 'm`` (also ``'re 'll 've 'd``);
4. every other character that is not a letter, a digit or an apostrophe is a token of its own;
5. whitespace separates tokens.

Chinese (character level): whitespace is dropped and every remaining character is a token, except a word
in Latin letters (``Kowalski``, ``iPhone``, ``MP3``, ``Wi-Fi``, ``New York``), which is one token: a name
or brand the model has not seen then reaches it as one ``<unk>``, which it learned to carry into the
translation (``我叫Kowalski。`` -> "I'm called Kowalski."), where letter by letter it came out mangled ("I lent
w to the w."). Models trained before this rule read every letter as a token; they are given the Latin words
they learned letter by letter (``spelled``: those frequent in their training text) that way. Training
converts traditional characters to simplified ones with OpenCC (:func:`rnn_apps.apps.translate.data.normalize_zh`);
a model that reads Chinese maps, in its graph, the traditional characters it does not know to simplified ones.

Detokenization (model output to text): Chinese characters are joined without spaces; English words are
joined with spaces, spaces before punctuation and clitics removed, words restored to their most frequent
capitalisation in the training text (``tom`` -> ``Tom``, ``i`` -> ``I``), and the first letter capitalised.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh")

# A word in Latin letters inside Chinese text: letters and digits after a first letter, words joined by one
# space, hyphen or apostrophe ("New York", "Wi-Fi", "O'Brien"). Letters with accents and full-width letters
# are Latin too.
LATIN_WORD = r"\p{Latin}[\p{Latin}\pN]*(?:[-' \x{2019}]\p{Latin}[\p{Latin}\pN]*)*"
# Latin words that the models trained on single letters learned letter by letter: the two names frequent in
# cmn-eng-30k.tsv's Chinese side (Tom in 183 pairs, Mary in 22; the next, Facebook, in 14 came out wrong
# letter by letter). Read as one <unk>, "Tom在医院。" came out "Tom is a hospital."; spelled, it is right.
CHARACTER_MODEL_SPELLED = ("Tom", "Mary")
_SEP = "\x1f"  # the unit separator: cannot be in text that reaches here (_clean keeps it, the split removes it)

# ---------------------------------------------------------------------------------------------- tokenize


def _clean(text):
    import tensorflow as tf

    t = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    return tf.strings.regex_replace(t, "[\u00a0\u3000\t\r\n]", " ")


def standardize_en(text, lowercase: bool = True):
    """English text (string tensor) to space-separated tokens (string tensor, same shape), lowercased unless not."""
    import tensorflow as tf

    t = _clean(text)
    if lowercase:
        t = tf.strings.lower(t, encoding="utf-8")
    t = tf.strings.regex_replace(t, "[\u2018\u2019\u02bc`\u00b4]", "'")
    t = tf.strings.regex_replace(t, "[\u201c\u201d\u00ab\u00bb]", '"')
    t = tf.strings.regex_replace(t, r"(^|[^\pL\pN])'", r"\1' ")
    t = tf.strings.regex_replace(t, r"'([^\pL\pN]|$)", r" '\1")
    t = tf.strings.regex_replace(t, r"(\pL)((?i:n't))\b", r"\1 \2")
    t = tf.strings.regex_replace(t, r"(\pL)'((?i:s|m|re|ll|ve|d))\b", r"\1 '\2")
    t = tf.strings.regex_replace(t, r"([^\pL\pN\s'])", r" \1 ")
    return tf.strings.strip(tf.strings.regex_replace(t, r"\s+", " "))


def _split_marked(t):
    """Strings with tokens between separators to a ragged tensor of the non-blank tokens."""
    import tensorflow as tf

    toks = tf.strings.split(t, sep=_SEP)
    return tf.ragged.boolean_mask(toks, tf.strings.length(toks) > 0)


def tokenize_zh(text, latin_words: bool = True, spelled=()):
    """Chinese text (string [B]) to characters [B, (tokens)], a word in Latin letters one token.

    Args:
        text: Strings.
        latin_words: Read a word in Latin letters (:data:`LATIN_WORD`) as one token; False: every letter
            is a token (how models trained before this rule read them).
        spelled: With ``latin_words``, Latin words still read letter by letter (exact spelling).
    """
    import tensorflow as tf

    t = _clean(text)
    if not latin_words:
        t = tf.strings.regex_replace(t, r"\s+", "")
        return tf.strings.unicode_split(t, "UTF-8", errors="replace")
    t = tf.strings.strip(tf.strings.regex_replace(t, _SEP, ""))
    # each Latin word and each other visible character between separators; whitespace outside them drops
    t = tf.strings.regex_replace(t, f"({LATIN_WORD}|\\S)", f"{_SEP}\\1{_SEP}")
    t = tf.strings.regex_replace(t, f"{_SEP}\\s+", _SEP)
    toks = _split_marked(t)
    if spelled:
        flat = toks.flat_values
        is_spelled = tf.reduce_any(tf.equal(flat[:, None], tf.constant(list(spelled))[None, :]), axis=1)
        marked = tf.where(is_spelled, tf.strings.regex_replace(flat, "(.)", f"\\1{_SEP}"), flat + _SEP)
        toks = _split_marked(tf.strings.reduce_join(toks.with_flat_values(marked), axis=1))
    return toks


def tokenize(text, language: str, lowercase: bool = True, latin_words: bool = True, spelled=()):
    """A batch of strings (string [B]) to a ragged string tensor [B, (tokens)].

    English is lowercased unless ``lowercase`` is False; ``latin_words`` and ``spelled`` are
    :func:`tokenize_zh`'s (Chinese only).
    """
    import tensorflow as tf

    if language == "en":
        return tf.strings.split(standardize_en(text, lowercase))
    if language == "zh":
        return tokenize_zh(text, latin_words, spelled)
    raise ValueError(f"language must be one of {LANGUAGES}; received {language!r}.")


def tokenize_py(texts, language: str, lowercase: bool = True, latin_words: bool = True) -> list[list[str]]:
    """:func:`tokenize` on a Python list of strings (runs the TensorFlow ops eagerly, in chunks)."""
    import tensorflow as tf

    texts = list(texts)
    out: list[list[str]] = []
    for i in range(0, len(texts), 4096):
        rag = tokenize(tf.constant(texts[i : i + 4096], tf.string), language, lowercase, latin_words)
        for row in rag.to_list():
            out.append([t.decode("utf-8") for t in row])
    return out


# ---------------------------------------------------------------------------------------------- detokenize


def detokenize(tokens, language: str, truecase=None):
    """Output tokens (string [B, T], "" for padding) to text (string [B]).

    Args:
        tokens: Dense string tensor, padding as "".
        language: The output language.
        truecase: For English, an optional ``tf.lookup`` table from a lowercase token to its usual spelling
            (default value "": keep the token).
    """
    import tensorflow as tf

    if language == "zh":
        return tf.strings.reduce_join(tokens, axis=1)
    if language != "en":
        raise ValueError(f"language must be one of {LANGUAGES}; received {language!r}.")
    if truecase is not None:
        cased = truecase.lookup(tokens)
        tokens = tf.where(cased != "", cased, tokens)
    t = tf.strings.reduce_join(tokens, axis=1, separator=" ")
    t = tf.strings.strip(tf.strings.regex_replace(t, r"\s+", " "))
    t = tf.strings.regex_replace(t, r" (n't|'s|'m|'re|'ll|'ve|'d)\b", r"\1")
    t = tf.strings.regex_replace(t, r" ([.,!?;:%)\]}])", r"\1")
    t = tf.strings.regex_replace(t, r"([(\[{$]) ", r"\1")
    # A quotation's marks hug it ('He said, " I'm tired. "' read as two stray marks) and a hyphen its words
    # ("six - thirty"): the tokens of "six-thirty" are six, -, thirty.
    t = tf.strings.regex_replace(t, r'" ([^"]*?) ?"', r'"\1"')
    t = tf.strings.regex_replace(t, r"(\w) - (\w)", r"\1-\2")
    t = tf.strings.join([t, " "])  # at least one character, so that substr(1) is in range
    n = tf.strings.length(t, unit="UTF8_CHAR")
    # the first letter is capitalised, after an opening quote too ('"Thank you."')
    at = tf.where(tf.strings.regex_full_match(t, r'"[\s\S]*'), 1, 0)
    head = tf.strings.substr(t, tf.zeros_like(n), at, unit="UTF8_CHAR")
    first = tf.strings.substr(t, at, tf.ones_like(n), unit="UTF8_CHAR")
    rest = tf.strings.substr(t, at + 1, n, unit="UTF8_CHAR")
    return tf.strings.strip(tf.strings.join([head, tf.strings.upper(first, encoding="utf-8"), rest]))


def detokenize_py(tokens: list[str], language: str, truecase: dict | None = None) -> str:
    """:func:`detokenize` of one token list (eager)."""
    import tensorflow as tf

    table = None
    if truecase:
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(truecase)), tf.constant(list(truecase.values()))), ""
        )
    t = tf.constant([list(tokens) or [""]])
    return detokenize(t, language, table).numpy()[0].decode("utf-8")


# ------------------------------------------------------------------------------ numbers kept or lost

_NUMBER = r"\d+(?:[.,:]\d+)*"
_EN_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
             "sixteen seventeen eighteen nineteen").split()
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_ZH_DIGITS = "零一二三四五六七八九"


def _english_words(n: int) -> set:
    """How English writes a whole number below 100 in words: {"twenty-five", "twenty five"}; 1 also "a"/"an"
    (一只狗: "a dog")."""
    if n == 1:
        return {"one", "a", "an"}
    if n < 20:
        return {_EN_SMALL[n]}
    tens, unit = _EN_TENS[n // 10 - 2], n % 10
    return {tens} if not unit else {f"{tens}-{_EN_SMALL[unit]}", f"{tens} {_EN_SMALL[unit]}"}


def _chinese_numerals(n: int) -> set:
    """How Chinese writes a whole number below 10,000 in characters: 25 -> {"二十五"}, 2 -> {"二", "两"},
    12 -> {"十二", "一十二"}, 2026 -> {"二千零二十六", "两千零二十六", "二零二六"} (a year read digit by digit)."""
    if n == 0:
        return {"零"}
    out, zero, text = [], False, str(n)
    for i, d in enumerate(text):
        unit = {3: "千", 2: "百", 1: "十"}.get(len(text) - 1 - i, "")
        if d == "0":
            zero = True
            continue
        out.append(("零" if zero and out else "") + _ZH_DIGITS[int(d)] + unit)
        zero = False
    full = "".join(out)
    forms = {full, "".join(_ZH_DIGITS[int(d)] for d in text)}
    if full.startswith("一十"):
        forms.add(full[1:])  # 十二, not 一十二, on its own
    if n == 2 or full[:2] in ("二千", "二百"):
        forms.add("两" + full[1:])  # 两 before a measure word, 千 or 百: 两本书, 两千
    return forms


def lost_numbers(source: str, translation: str, target_lang: str) -> list:
    """The numbers written in digits in ``source`` that ``translation`` does not carry, as digits or (a whole
    number below 100 in English, below 10,000 in Chinese) in words: the translation models often drop or
    change numbers ("他今年25岁。" -> "He was born in Africa."), and a reader should know.

    Args:
        source: The text translated (ASCII or full-width digits).
        translation: Its translation.
        target_lang: ``"en"`` or ``"zh"``, the translation's language.
    """
    import unicodedata

    import regex

    def numbers(text):
        return regex.findall(_NUMBER, unicodedata.normalize("NFKC", text))

    said = {n.replace(",", "") for n in numbers(translation)}
    plain = unicodedata.normalize("NFKC", translation).lower()
    lost = []
    for n in numbers(source):
        whole = n.replace(",", "")  # 1,500 is 1500
        if whole in said:
            continue
        if whole.isdigit() and int(whole) < (100 if target_lang == "en" else 10_000):
            words = _english_words(int(whole)) if target_lang == "en" else _chinese_numerals(int(whole))
            if target_lang == "en" and any(regex.search(rf"\b{regex.escape(w)}\b", plain) for w in words):
                continue
            if target_lang == "zh" and any(w in plain for w in words):
                continue
        if n not in lost:
            lost.append(n)
    return lost
