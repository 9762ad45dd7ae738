"""Text to tokens and back, as TensorFlow string ops: the same code prepares training data and runs inside
the exported model, so a sentence is cut into tokens identically at training and at serving time.

English (word level):

1. invalid UTF-8 is replaced by U+FFFD, text lowercased, curly apostrophes and quotes made straight;
2. quotes at the edges of words are split off (``'hello',`` -> ``' hello ' ,``);
3. clitics are split as in the Penn Treebank: ``don't`` -> ``do n't``, ``Tom's`` -> ``tom 's``, ``I'm`` ->
   ``i 'm`` (also ``'re 'll 've 'd``);
4. every other character that is not a letter, a digit or an apostrophe is a token of its own;
5. whitespace separates tokens.

Chinese (character level): whitespace is dropped and every remaining character is a token. Training
converts traditional characters to simplified ones with OpenCC (:func:`rnn_apps.apps.translate.data.normalize_zh`);
a model that reads Chinese maps, in its graph, the traditional characters it does not know to simplified ones.

Detokenization (model output to text): Chinese characters are joined without spaces; English words are
joined with spaces, spaces before punctuation and clitics removed, words restored to their most frequent
capitalisation in the training text (``tom`` -> ``Tom``, ``i`` -> ``I``), and the first letter capitalised.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh")

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


def tokenize(text, language: str, lowercase: bool = True):
    """A batch of strings (string [B]) to a ragged string tensor [B, (tokens)] (English lowercased unless not)."""
    import tensorflow as tf

    if language == "en":
        return tf.strings.split(standardize_en(text, lowercase))
    if language == "zh":
        t = tf.strings.regex_replace(_clean(text), r"\s+", "")
        return tf.strings.unicode_split(t, "UTF-8", errors="replace")
    raise ValueError(f"language must be one of {LANGUAGES}; received {language!r}.")


def tokenize_py(texts, language: str, lowercase: bool = True) -> list[list[str]]:
    """:func:`tokenize` on a Python list of strings (runs the TensorFlow ops eagerly, in chunks)."""
    import tensorflow as tf

    texts = list(texts)
    out: list[list[str]] = []
    for i in range(0, len(texts), 4096):
        rag = tokenize(tf.constant(texts[i : i + 4096], tf.string), language, lowercase)
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
    t = tf.strings.join([t, " "])  # at least one character, so that substr(1) is in range
    n = tf.strings.length(t, unit="UTF8_CHAR")
    first = tf.strings.substr(t, tf.zeros_like(n), tf.ones_like(n), unit="UTF8_CHAR")
    rest = tf.strings.substr(t, tf.ones_like(n), n, unit="UTF8_CHAR")
    return tf.strings.strip(tf.strings.join([tf.strings.upper(first, encoding="utf-8"), rest]))


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
