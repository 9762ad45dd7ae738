"""Fill blanks with an exported fill model (the command line's library side)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from rnn_apps import limits, textio
from rnn_apps.apps.base import Predictor, check_batch_size, text_list
from rnn_apps.apps.fill import data as fdata
from rnn_apps.apps.fill.data import FillError
from rnn_apps.chinese import convert_script, normalize, written_script
from rnn_apps.poems import load_poems, split_poems

# The fill model's candidates per blank that a poem model weighs (the most the `fill` signature gives).
WEIGHED_CANDIDATES = 50
# Characters after a blank that the poem model reads to weigh its candidates: on 600 validation poems, 16
# chose as well as the whole rest of the poem (top-1 28.2 % against 28.2 %; 8 gave 27.3 %), in half the time.
AFTER_WINDOW = 16


@dataclass
class FillResult:
    input: str
    text: str
    blanks: list = field(default_factory=list)  # one list of (character, probability) per blank, in text order
    unknown_characters: list = field(default_factory=list)
    converted_to_simplified: bool = False
    script: str = "simplified"  # the script of the filled characters and candidates (the text's own)

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "text": self.text,
            "blanks": [
                {"index": i + 1, "candidates": [{"character": c, "probability": round(p, 6)} for c, p in cands]}
                for i, cands in enumerate(self.blanks)
            ],
            "unknown_characters": self.unknown_characters,
            "converted_to_simplified": self.converted_to_simplified,
            "script": self.script,
        }


def read_texts_file(path: str, stdin=None) -> list[str]:
    """Texts of a UTF-8 file, one a line ('-': ``stdin``, a binary stream), as
    :func:`rnn_apps.textio.read_texts_file` reads them; its errors are FillErrors."""
    try:
        return [textio.Line(t.strip(), t.origin, t.blank_before, t.source)
                for t in textio.read_texts_file(path, stdin, FillError, "text")]
    except FileNotFoundError as e:  # one line, as every fill error (textio words the other OSErrors)
        raise FillError(str(e)) from None


class Filler(Predictor):
    """An exported fill model (``models/fill/<version>``) loaded with ``tf.saved_model.load``.

    Args:
        model_dir: A version directory or ``models/fill`` (newest version); default: the shipped model.
    """

    app = "fill"

    def run(self, texts: Sequence[str], top_k: int = 5):
        """The raw outputs of the graph (numpy) for already-checked texts."""
        import tensorflow as tf

        out = self.loaded.fill(tf.constant(list(texts)), tf.constant(int(top_k), tf.int32))
        return {k: v.numpy() for k, v in out.items()}

    def fill(self, texts: Sequence[str], top_k: int = 5, batch_size: int = 32, poem_model=None) -> list[FillResult]:
        """Fill the □ (＿, _) of each text; raises FillError for input the model cannot take.

        Each result's text is the text as given, spaces, punctuation and blank marks' places kept, with each
        blank's chosen character in it; in a text written in traditional script, the chosen characters and the
        candidates are written back in it (:func:`write_back`).

        Args:
            texts: Texts with blanks.
            top_k: Candidates kept for each blank.
            batch_size: Texts per model call.
            poem_model: A poem language model (:func:`load_poem_model`) that weighs the fill model's
                candidates (:func:`weigh_candidates`); None: the fill model alone, as its SavedModel answers.
        """
        texts = text_list(texts)
        step = min(check_batch_size(batch_size, FillError), limits.APPS["fill"].max_batch)  # the model's most
        with limits.errors_as(FillError):  # the server's check and words
            limits.check_number(limits.APPS["fill"], "top_k", top_k)
        script = self.config.get("script", "simplified")
        cleaned, converted = [], []
        for i, t in enumerate(texts, 1):
            # as the graph will read it (quotes and title marks dropped, runs of ！ or …… one 。), so that the
            # blanks' places in the filled text it answers with are known
            p = normalize(fdata.parse_text(t, textio.text_name(t, f"Text {i}")))
            if script == "simplified":
                c = convert_script(p, "simplified")
                # OpenCC keeps the length of a character string; fall back to the in-graph table otherwise.
                if len(c) == len(p) and c.count(fdata.BLANKS[0]) == p.count(fdata.BLANKS[0]):
                    converted.append(c != p)
                    p = c
                else:
                    converted.append(False)
            else:
                converted.append(False)
            cleaned.append(p)
        results = []
        for s in range(0, len(cleaned), step):
            out = self.run(cleaned[s : s + step], WEIGHED_CANDIDATES if poem_model is not None else top_k)
            for r, t in enumerate(texts[s : s + step]):
                n = int(out["blanks"][r])
                blanks = []
                for j in range(n):
                    blanks.append([(c.decode("utf-8"), float(p)) for c, p in zip(out["candidates"][r, j], out["probabilities"][r, j])
                                   if c])
                filled = out["text"][r].decode("utf-8")
                gaps = [i for i, c in enumerate(cleaned[s + r]) if c == fdata.BLANKS[0]]
                if poem_model is not None:
                    filled, blanks = weigh_candidates(poem_model, filled, gaps, blanks)
                filled, blanks, written = write_back(t, filled, gaps, [b[:top_k] for b in blanks])
                results.append(FillResult(
                    input=t,
                    text=filled,
                    blanks=blanks,
                    unknown_characters=list(dict.fromkeys(out["unknown"][r].decode("utf-8"))),
                    converted_to_simplified=bool(converted[s + r] or out["converted"][r]),
                    script=written,
                ))
        return results


def write_back(text: str, filled: str, gaps: Sequence[int], blanks: list) -> tuple[str, list, str]:
    """The user's ``text`` with its blanks filled, and the candidates, in the text's own script.

    The model reads a cleaned text (no whitespace, every blank mark □, traditional script converted to
    simplified) and answers with it filled. The answer given back is the user's text as typed, each blank
    mark (□, ＿ or _) replaced by the character the model chose for it, so that nothing of the text is lost
    (its spaces, its ？ and ！, its traditional characters). When the text is written in traditional script
    (:func:`rnn_apps.chinese.written_script`), each chosen character and each candidate is written the way
    the Tang poems write it beside its neighbours (:class:`rnn_apps.traditional.TraditionalTable`; OpenCC's
    character table for a character they never write).

    Args:
        text: The text as the user gave it.
        filled: The cleaned text as the model (and the poem model) filled it: the context of each choice.
        gaps: The positions of the blanks in ``filled``, in order.
        blanks: Each blank's ``(character, probability)`` candidates, the chosen one first.

    Returns:
        The filled text, the candidates, and the script they are written in (``"traditional"`` or
        ``"simplified"``). Should ``filled`` not line up with the text's blanks, it is returned as it is.
    """
    marks = [i for i, c in enumerate(text) if c in fdata.BLANKS]
    if len(marks) != len(gaps) or len(gaps) != len(blanks) or any(g >= len(filled) for g in gaps):
        return filled, blanks, "simplified"
    if written_script(text) == "traditional":
        from rnn_apps.textio import opencc_characters
        from rnn_apps.traditional import TraditionalTable

        table, single = TraditionalTable.load(), opencc_characters("traditional")

        def own(c: str, g: int) -> str:  # c in the gap of the simplified text, in the poems' form there
            return table.choose(filled[:g] + c + filled[g + 1:], g) or single.get(c, c)
        script = "traditional"
    else:
        def own(c: str, g: int) -> str:
            return c
        script = "simplified"
    chars = list(text)
    for m, g, cands in zip(marks, gaps, blanks):
        chars[m] = own(cands[0][0] if cands else filled[g], g)  # the blank's choice: its first candidate
    return "".join(chars), [[(own(c, g), p) for c, p in cands] for g, cands in zip(gaps, blanks)], script


def load_poem_model(model_dir: str | None = None):
    """The poem language model that weighs fill candidates: the poem app's generator on its NumPy engine
    (``models/poetry``'s newest version by default), asked for by name (:mod:`rnn_apps.predictors`); its
    ``reader()`` reads texts. Raises FillError when there is none to use."""
    from rnn_apps.predictors import load_predictor

    try:
        return load_predictor("poetry", model_dir, engine="numpy")
    except FileNotFoundError as e:
        raise FillError(f"{e} Give --poem-model DIR (a poem model) or --poem-model none.") from None
    except (OSError, ValueError, KeyError) as e:  # not a poem model's export, or one the NumPy engine cannot run
        raise FillError(f"{model_dir or 'The shipped poem model'} cannot weigh the candidates: {e} Give "
                        "--poem-model DIR (a models/poetry version) or --poem-model none.") from None


def weigh_candidates(poem_model, text: str, gaps: Sequence[int], blanks: list, window: int = AFTER_WINDOW):
    """Weigh each blank's candidates by a left-to-right poem model: a product of the two models' experts.

    The fill model gives p_fill(c) for each candidate c of a blank from the characters on both sides; the
    poem language model gives p_lm(x) of the whole text x by the chain rule, which for the text with c in
    the gap is, up to a factor shared by the candidates, p_lm(c | before) · p_lm(after | before, c). Each
    candidate's new probability is proportional to p_fill(c) · p_lm(c · after | before), normalised over
    the candidates (a product of experts, Hinton 2002): a character must suit both the fill model and the
    way the poem goes on after it, which a forward model reads better than the fill model's context.

    The blanks are weighed left to right, each with the ones before it set to their new choice and the ones
    after to the fill model's; the poem model reads the text once and ``window`` characters after each blank.

    Args:
        poem_model: A poem language model with a ``reader()`` (:func:`load_poem_model`).
        text: The text as the fill model filled it (the same length as the input, blanks at ``gaps``).
        gaps: The positions of the blanks in ``text``, in order.
        blanks: For each blank, the fill model's ``(character, probability)`` candidates.
        window: Characters after a blank that the poem model reads.

    Returns:
        The text with each blank's new first choice, and each blank's candidates ordered by their new
        probabilities.
    """
    import numpy as np

    if len(gaps) != len(blanks) or any(g >= len(text) for g in gaps):
        return text, blanks  # the filled text does not line up with the input's blanks: leave it as it is
    chars = list(text)
    reader = poem_model.reader()
    done = 0
    weighed = []
    for g, cands in zip(gaps, blanks):
        if not cands:
            weighed.append(cands)
            continue
        reader.read("".join(chars[done:g]))
        after = "".join(chars[g + 1 : g + 1 + window])
        lm = reader.continuations([c for c, _ in cands], after, ends=g + 1 + window >= len(chars))
        score = np.log(np.maximum([p for _, p in cands], 1e-30)) + lm
        prob = np.exp(score - score.max())
        prob /= prob.sum()
        order = np.argsort(-prob, kind="stable")
        weighed.append([(cands[k][0], float(prob[k])) for k in order])
        chars[g] = weighed[-1][0][0]
        done = g
    return "".join(chars), weighed


def evaluate_masked(data_path: str, model_dir: str | None = None, split: str = "val", seed: int = 0,
                    batch_size: int = 64, limit: int | None = None, progress: bool = False,
                    poem_model=None) -> dict:
    """Masked-character accuracy: one Han character of each poem hidden (uniformly at random, ``seed``).

    The poems are the model's own validation split (``split="val"``: the poem corpus loader, split with the
    seed and fraction in the model's config), its training poems (``"train"``) or all. The model predicts
    the hidden character from the rest of the poem; top-1 and top-5 accuracy are the shares of poems whose
    character is the first candidate or among the first five. A hidden character outside the model's
    vocabulary counts as a miss (the model cannot write it). A poem longer than the model accepts
    (:data:`rnn_apps.apps.fill.data.MAX_CHARS`) is read in a window of that many characters around the
    hidden one. With ``poem_model`` (:func:`load_poem_model`) the candidates are weighed by it, as
    ``rnn-apps fill-poem`` weighs them by default (:func:`weigh_candidates`).
    """
    if limit is not None and limit < 1:  # poems[:limit] would score too few poems, or all of them, without a word
        raise FillError(f"limit must be a positive number of poems; received {limit}.")
    check_batch_size(batch_size, FillError)
    filler = Filler(model_dir)
    cfg = filler.config
    poems = load_poems(data_path, cfg.get("script", "simplified"))
    if split != "all":
        train, val = split_poems(poems, cfg.get("val_fraction", 0.05), cfg.get("seed", 1234))
        poems = val if split == "val" else train
    if limit is not None:
        poems = poems[:limit]
    texts, positions, answers = fdata.hide_one(poems, seed)
    texts = [_window(t, p) for t, p in zip(texts, positions)]
    keep = [i for i, p in enumerate(positions) if p >= 0]
    batch_size = min(batch_size, limits.APPS["fill"].max_batch)  # the model refuses larger batches
    order = sorted(keep, key=lambda i: len(texts[i]))
    known = set(filler.meta["vocab"]["tokens"])
    top1 = top5 = oov = 0
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        out = filler.run([texts[i] for i in idx], WEIGHED_CANDIDATES if poem_model is not None else 5)
        for r, i in enumerate(idx):
            cands = [c.decode("utf-8") for c in out["candidates"][r, 0]]
            if poem_model is not None:
                ranked = [(c, float(p)) for c, p in zip(cands, out["probabilities"][r, 0]) if c]
                text = out["text"][r].decode("utf-8")
                gaps = [k for k, c in enumerate(texts[i]) if c == fdata.BLANKS[0]]
                if len(gaps) == 1:  # the hidden character is the text's only blank (else: the fill model's)
                    _, (ranked,) = weigh_candidates(poem_model, text, gaps, [ranked])
                cands = [c for c, _ in ranked]
            cands = cands[:5]
            top1 += cands[0] == answers[i]
            top5 += answers[i] in cands
            oov += answers[i] not in known
        if progress:
            print(f"\r{min(s + batch_size, len(order))}/{len(order)} poems", end="", flush=True)
    if progress:
        print()
    n = len(order)
    return {
        "model": filler.model_dir,
        "poem_model": poem_model.model_dir if poem_model is not None else None,
        "kind": cfg.get("kind"),
        "split": split,
        "poems": n,
        "positions": f"one Han character per poem, uniformly at random (seed {seed})",
        "seed": seed,
        "top1_accuracy": top1 / max(n, 1),
        "top5_accuracy": top5 / max(n, 1),
        "hidden_out_of_vocabulary": oov,
    }


def _window(text: str, position: int, most: int = fdata.MAX_CHARS) -> str:
    """``text`` cut to at most ``most`` characters around ``position`` (the model refuses longer texts)."""
    if len(text) <= most:
        return text
    start = min(max(0, position - most // 2), len(text) - most)
    return text[start:start + most]
