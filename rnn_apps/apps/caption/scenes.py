"""Synthetic scenes: the captioning app's built-in data set, needing no download.

A scene is a small image (64 px by default) on a light background with one to four shapes (circle,
square, triangle) in one of five colours and two sizes, and captions that name every shape and the
spatial relation of each shape to the next one::

    a small red circle to the left of a large blue square above a small green triangle

**Rules that make every caption unambiguous** (so a perfect captioner exists):

* Shapes do not overlap (their boxes are at least ``gap`` pixels apart) and lie wholly inside the image.
* The canonical order of the shapes is left to right by their centres, and every two centres differ by at
  least ``min_dx`` pixels horizontally, so the order can be seen.
* The relation of shape i to shape i+1 is "to the left of" when the horizontal distance of their centres
  exceeds the vertical one, else "above" or "below"; the two distances differ by at least ``margin``
  pixels, so the relation can be seen too.

**Phrasings.** Each scene has several captions: the chain of shapes left to right or right to left
(relations inverted: "to the right of", "below" for "above", ...), each bare, after "there is" or after
"a picture of". They all state the same facts, :func:`parse_caption` reads any of them back into
:class:`Facts`, and :func:`facts_match` compares facts with the chain direction set aside: that is the
exact-match criterion of ``rnn-apps evaluate caption --synthetic``.

**Determinism.** ``generate_scenes(n, seed)`` gives the same scenes for the same seed and settings, on
any machine (NumPy's PCG64 generator seeded with ``numpy.random.SeedSequence(seed)``; the seed may be an
int or a sequence of ints). Training draws its batch for global step ``s`` from the seed
``(train_seed, 1, s)`` and its validation scenes from ``(train_seed, 2)``: an evaluation seed given as a
plain int never meets them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (215, 35, 35),
    "green": (35, 150, 55),
    "blue": (35, 75, 215),
    "yellow": (235, 195, 20),
    "purple": (140, 50, 180),
}
SIZES = {"small": 5.0, "large": 9.0}  # half-extent in pixels at 64 px; scaled with the image size
RELATIONS = ("left", "right", "above", "below")
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}
RELATION_WORDS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
PREFIXES = ("", "there is", "a picture of")

DEFAULT_SETTINGS = dict(
    image_size=64,
    min_shapes=1,
    max_shapes=3,
    shapes=SHAPES,
    colours=tuple(COLOURS),
    sizes=tuple(SIZES),
    gap=3.0,
    min_dx=5.0,
    margin=6.0,
    colour_jitter=12,
)


def vocabulary_words() -> list[str]:
    """Every word a synthetic caption can use, in a fixed order (the synthetic model's vocabulary)."""
    words = ["a", "there", "is", "picture", "of", "to", "the"]
    words += list(SIZES) + list(COLOURS) + list(SHAPES) + ["left", "right", "above", "below"]
    return words


@dataclass(frozen=True)
class Shape:
    """One shape of a scene: what it is and where (centre in pixels, x to the right, y downwards)."""

    shape: str
    colour: str
    size: str
    x: float
    y: float

    @property
    def words(self) -> tuple:
        return (self.size, self.colour, self.shape)


@dataclass(frozen=True)
class Facts:
    """What a caption states: the shapes in chain order and the relation of each shape to the next."""

    objects: tuple  # ((size, colour, shape), ...)
    relations: tuple  # ("left" | "right" | "above" | "below", ...), one fewer than objects

    def reversed(self) -> "Facts":
        return Facts(tuple(reversed(self.objects)), tuple(INVERSE[r] for r in reversed(self.relations)))

    def to_dict(self) -> dict:
        return {"objects": [" ".join(o) for o in self.objects], "relations": list(self.relations)}


@dataclass
class Scene:
    """A rendered scene: ``image`` uint8 [S, S, 3] and its shapes in canonical (left-to-right) order."""

    image: np.ndarray
    shapes: tuple
    relations: tuple
    settings: dict = field(default_factory=dict, repr=False)

    @property
    def facts(self) -> Facts:
        return Facts(tuple(s.words for s in self.shapes), tuple(self.relations))

    def captions(self) -> list[str]:
        """Every phrasing of the scene's facts (the references of BLEU), canonical first."""
        return all_captions(self.facts)

    def caption(self, rng: Optional[np.random.Generator] = None, reverse_prob: float = 0.25) -> str:
        """One phrasing: a random prefix; the chain right to left with probability ``reverse_prob``."""
        if rng is None:
            return self.captions()[0]
        facts = self.facts
        if len(facts.objects) > 1 and rng.random() < reverse_prob:
            facts = facts.reversed()
        return render_caption(facts, PREFIXES[int(rng.integers(len(PREFIXES)))])


def render_caption(facts: Facts, prefix: str = "") -> str:
    parts = [prefix] if prefix else []
    for i, obj in enumerate(facts.objects):
        if i:
            parts.append(RELATION_WORDS[facts.relations[i - 1]])
        parts.append("a " + " ".join(obj))
    return " ".join(parts)


def all_captions(facts: Facts) -> list[str]:
    out = []
    directions = [facts] + ([facts.reversed()] if len(facts.objects) > 1 else [])
    for f in directions:
        for p in PREFIXES:
            out.append(render_caption(f, p))
    return out


def parse_caption(text: str) -> Optional[Facts]:
    """Read a caption back into :class:`Facts`; None when it is not a well-formed scene caption.

    Any phrasing of :func:`all_captions` is accepted, with any spacing, capitals and a final full stop.
    """
    words = text.lower().replace(".", " ").replace(",", " ").split()
    for p in PREFIXES:
        pw = p.split()
        if pw and words[: len(pw)] == pw and (len(words) <= len(pw) or words[len(pw)] == "a"):
            words = words[len(pw):]
            break
    objects, relations = [], []
    i = 0
    rel_tokens = {tuple(v.split()): k for k, v in RELATION_WORDS.items()}
    while True:
        if words[i : i + 1] != ["a"] or i + 4 > len(words):
            return None
        size, colour, shape = words[i + 1 : i + 4]
        if size not in SIZES or colour not in COLOURS or shape not in SHAPES:
            return None
        objects.append((size, colour, shape))
        i += 4
        if i == len(words):
            break
        for toks, rel in rel_tokens.items():
            if tuple(words[i : i + len(toks)]) == toks:
                relations.append(rel)
                i += len(toks)
                break
        else:
            return None
    return Facts(tuple(objects), tuple(relations))


def facts_match(predicted: Optional[Facts], truth: Facts) -> bool:
    """Whether a caption's facts are the scene's: same shapes, colours, sizes and relations, in either
    chain direction (a chain read right to left states the same facts)."""
    if predicted is None:
        return False
    return predicted == truth or predicted.reversed() == truth


def caption_matches(caption: str, scene_or_facts: Union[Scene, Facts]) -> bool:
    truth = scene_or_facts.facts if isinstance(scene_or_facts, Scene) else scene_or_facts
    return facts_match(parse_caption(caption), truth)


# ----------------------------------------------------------------------------------------------- geometry


def _check_settings(settings: dict) -> dict:
    s = {**DEFAULT_SETTINGS, **{k: v for k, v in settings.items() if v is not None}}
    unknown = set(s) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ValueError(f"Unknown scene settings {sorted(unknown)}; expected some of {sorted(DEFAULT_SETTINGS)}.")
    size = s["image_size"]
    if not isinstance(size, int) or not 32 <= size <= 512:
        raise ValueError(f"image_size must be an integer from 32 to 512; received {size!r}.")
    if not (1 <= s["min_shapes"] <= s["max_shapes"] <= 4):
        raise ValueError(f"Need 1 <= min_shapes <= max_shapes <= 4; received {s['min_shapes']} and {s['max_shapes']}.")
    for key, known in (("shapes", SHAPES), ("colours", tuple(COLOURS)), ("sizes", tuple(SIZES))):
        bad = [v for v in s[key] if v not in known]
        if bad or not s[key]:
            raise ValueError(f"{key} must be a non-empty subset of {list(known)}; received {list(s[key])}.")
        s[key] = tuple(s[key])
    return s


def _relation(a: Shape, b: Shape) -> str:
    """The relation of ``a`` to ``b`` where ``a`` is the left one of the pair."""
    dx, dy = b.x - a.x, b.y - a.y
    if abs(dx) > abs(dy):
        return "left" if dx > 0 else "right"
    return "above" if dy > 0 else "below"


def _place(rng: np.random.Generator, n: int, s: dict) -> Optional[list]:
    scale = s["image_size"] / 64.0
    gap, min_dx, margin = s["gap"] * scale, s["min_dx"] * scale, s["margin"] * scale
    placed: list[Shape] = []
    for _ in range(n):
        for _attempt in range(60):
            size = s["sizes"][int(rng.integers(len(s["sizes"])))]
            r = SIZES[size] * scale
            lo, hi = r + 1.0, s["image_size"] - 1.0 - r
            x, y = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
            ok = True
            for o in placed:
                ro = SIZES[o.size] * scale
                if abs(o.x - x) < r + ro + gap and abs(o.y - y) < r + ro + gap:
                    ok = False  # boxes too close
                    break
                if abs(o.x - x) < min_dx:
                    ok = False  # left-to-right order not clear
                    break
            if ok:
                shape = s["shapes"][int(rng.integers(len(s["shapes"])))]
                colour = s["colours"][int(rng.integers(len(s["colours"])))]
                placed.append(Shape(shape, colour, size, x, y))
                break
        else:
            return None
    placed.sort(key=lambda o: o.x)
    for a, b in zip(placed, placed[1:]):
        if abs(abs(b.x - a.x) - abs(b.y - a.y)) < margin:
            return None  # relation not clear
    return placed


def _render(rng: np.random.Generator, shapes: Sequence[Shape], s: dict) -> np.ndarray:
    size = s["image_size"]
    scale = size / 64.0
    bg = rng.integers(228, 256, size=3)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg.astype(np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    jitter = int(s["colour_jitter"])
    for o in shapes:
        r = SIZES[o.size] * scale
        if o.shape == "circle":
            mask = (xx - o.x) ** 2 + (yy - o.y) ** 2 <= r * r
        elif o.shape == "square":
            h = r * 0.9  # about the area of the circle
            mask = (np.abs(xx - o.x) <= h) & (np.abs(yy - o.y) <= h)
        else:  # triangle pointing up, apex at y - r, base at y + r
            top = o.y - r
            mask = (yy >= top) & (yy <= o.y + r) & (np.abs(xx - o.x) <= (yy - top) * 0.5 * 1.1)
        colour = np.clip(np.array(COLOURS[o.colour]) + rng.integers(-jitter, jitter + 1, size=3), 0, 255)
        img[mask] = colour.astype(np.uint8)
    return img


def generate_scene(rng: np.random.Generator, settings: Optional[dict] = None) -> Scene:
    """One scene drawn with ``rng`` (see the module docstring for the rules)."""
    s = _check_settings(settings or {})
    n = int(rng.integers(s["min_shapes"], s["max_shapes"] + 1))
    while True:
        placed = _place(rng, n, s)
        if placed is not None:
            break
    relations = tuple(_relation(a, b) for a, b in zip(placed, placed[1:]))
    return Scene(_render(rng, placed, s), tuple(placed), relations, s)


def generate_scenes(count: int, seed: Union[int, Sequence[int]], settings: Optional[dict] = None) -> list[Scene]:
    """``count`` scenes, the same for the same ``seed`` and ``settings``."""
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer; received {count!r}.")
    s = _check_settings(settings or {})
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    return [generate_scene(rng, s) for _ in range(int(count))]


def scene_batch(count: int, seed, settings: Optional[dict] = None, reverse_prob: float = 0.25):
    """``count`` scenes as (images uint8 [count, S, S, 3], one sampled caption each, the scenes)."""
    scenes = generate_scenes(count, seed, settings)
    rng = np.random.default_rng(np.random.SeedSequence([*np.atleast_1d(seed).tolist(), 99]))
    captions = [sc.caption(rng, reverse_prob) for sc in scenes]
    images = np.stack([sc.image for sc in scenes]) if scenes else np.zeros((0, 1, 1, 3), np.uint8)
    return images, captions, scenes


def max_caption_words(max_shapes: int) -> int:
    """The longest caption (in words) of scenes with ``max_shapes`` shapes."""
    return 3 + 4 * max_shapes + 4 * (max_shapes - 1)
