"""A seeded moving-shapes video world with perception and reasoning questions (spec C4, redesigned).

Each clip has ``n_frames`` frames of ``size x size`` RGB. One to four objects (shape in plus/cross/tee, all
five pixels, colour in pure red/green/blue) move along one axis with an integer speed and bounce off the
walls; objects may appear late or vanish early; two visible objects never overlap. Equal-mass sprites and no
overlaps make one frame's reading (how many <colour> objects) easy; the hard part of a reasoning question is
the arithmetic over frames, which a trace of per-frame readings and running totals turns into one-token steps.

* perception (a glance): ``colour`` of the <shape>, ``count`` of the objects in the first frame, ``exists``
  a <colour> object; the rationale is a frame-by-frame description (``f1 none f2 red ... f8 red red``);
* reasoning (answer 0-9): ``tally`` = sum over frames of the number of <colour> objects visible, mod 10;
  ``tally_all`` = the same over all objects. Rationale: each frame's reading and the running total mod 10
  (``1 1 2 3 2 5 ... 3``); its last token is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS = ("red", "green", "blue")
SHAPES = ("plus", "cross", "tee")
PERCEPTION = ("colour", "count", "exists")
REASONING = ("tally", "tally_all")
QUESTION_TYPES = PERCEPTION + REASONING
FRAME_TAGS = tuple(f"f{t}" for t in range(1, 9))
SPECIALS = ("PAD", "EOS", "<box>", "</box>", "<think>", "</think>", "FALLBACK")
VOCAB: tuple[str, ...] = (
    *SPECIALS,
    *COLOURS,
    *SHAPES,
    "yes",
    "no",
    "none",
    *(str(d) for d in range(10)),
    *(f"Q_{q}" for q in QUESTION_TYPES),
    *FRAME_TAGS,
)
TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB)}
PAD, EOS = TOKEN_ID["PAD"], TOKEN_ID["EOS"]
QUESTION_LEN = 2
_RGB = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
_SPRITES = {
    "plus": np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool),
    "cross": np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], bool),
    "tee": np.array([[1, 1, 1], [0, 1, 0], [0, 1, 0]], bool),
}


@dataclass
class Obj:
    """One object: its look, its start position, velocity and visible frames ``[t0, t1]``."""

    colour: str
    shape: str
    pos: tuple[int, int]
    vel: tuple[int, int]
    t0: int
    t1: int

    def visible(self, t: int) -> bool:
        return self.t0 <= t <= self.t1


@dataclass
class Example:
    """One question about one clip: ``frames (F, H, W, 3)`` float32, token lists for question/answer/trace."""

    frames: np.ndarray
    qtype: str
    question: list[str]
    answer: str
    trace: list[str]

    @property
    def category(self) -> str:
        return "perception" if self.qtype in PERCEPTION else "reasoning"


def trajectory(obj: Obj, n_frames: int, size: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Positions per frame and the velocity used for each of the ``n_frames - 1`` moves (reflecting walls)."""
    limit = size - 3
    (y, x), (vy, vx) = obj.pos, obj.vel
    positions, vels = [(y, x)], []
    for _ in range(n_frames - 1):
        vels.append((vy, vx))
        y, x = y + vy, x + vx
        if not 0 <= y <= limit:
            y, vy = (-y, -vy) if y < 0 else (2 * limit - y, -vy)
        if not 0 <= x <= limit:
            x, vx = (-x, -vx) if x < 0 else (2 * limit - x, -vx)
        positions.append((y, x))
    return positions, vels


def render(objs: list[Obj], n_frames: int, size: int) -> np.ndarray:
    """``(F, H, W, 3)`` float32 frames on a black background."""
    frames = np.zeros((n_frames, size, size, 3), np.float32)
    for obj in objs:
        positions, _ = trajectory(obj, n_frames, size)
        sprite = _SPRITES[obj.shape]
        for t in range(obj.t0, obj.t1 + 1):
            y, x = positions[t]
            frames[t, y : y + 3, x : x + 3][sprite] = _RGB[obj.colour]
    return frames


def overlapping(objs: list[Obj], n_frames: int, size: int) -> bool:
    """Whether two objects' 3x3 boxes touch in a frame where both are visible."""
    paths = [trajectory(o, n_frames, size)[0] for o in objs]
    for i in range(len(objs)):
        for j in range(i):
            for t in range(n_frames):
                (yi, xi), (yj, xj) = paths[i][t], paths[j][t]
                both = objs[i].visible(t) and objs[j].visible(t)
                if both and abs(yi - yj) < 3 and abs(xi - xj) < 3:
                    return True
    return False


def _random_objects(rng: np.random.Generator, n_frames: int, size: int) -> list[Obj]:
    """1-4 objects; each new one is re-drawn (up to 20 times, else dropped) until it overlaps no earlier one."""
    objs: list[Obj] = []
    for _ in range(int(rng.integers(1, 5))):
        for _ in range(20):
            speed = int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1)
            vel = (speed, 0) if rng.random() < 0.5 else (0, speed)
            t0 = 0 if rng.random() < 0.5 else int(rng.integers(1, n_frames // 2))
            t1 = n_frames - 1 if rng.random() < 0.5 else int(rng.integers(n_frames // 2, n_frames - 1))
            pos = (int(rng.integers(0, size - 2)), int(rng.integers(0, size - 2)))
            obj = Obj(str(rng.choice(COLOURS)), str(rng.choice(SHAPES)), pos, vel, t0, t1)
            if not overlapping([*objs, obj], n_frames, size):
                objs.append(obj)
                break
    return objs


def counts_per_frame(objs: list[Obj], colour: str | None, n_frames: int) -> list[int]:
    """Visible objects of ``colour`` (every object when None) in each frame."""
    return [sum(o.visible(t) and colour in (None, o.colour) for o in objs) for t in range(n_frames)]


def tally_trace(counts: list[int]) -> list[str]:
    """Per frame: the reading and the running total mod 10; the last token is the answer."""
    trace, total = [], 0
    for c in counts:
        total = (total + c) % 10
        trace += [str(c), str(total)]
    return trace


def _ask(qtype: str, objs: list[Obj], rng: np.random.Generator, n_frames: int, size: int) -> tuple | None:
    """``(question tokens, answer, trace)`` or None when this clip cannot answer the question uniquely."""
    colour, shape = str(rng.choice(COLOURS)), str(rng.choice(SHAPES))
    with_colour = [o for o in objs if o.colour == colour]
    tags = FRAME_TAGS[:n_frames]
    if qtype == "colour":
        matches = [o for o in objs if o.shape == shape]
        if len(matches) != 1:
            return None
        seen = [matches[0].colour if matches[0].visible(t) else "none" for t in range(n_frames)]
        return [shape], matches[0].colour, [*_interleave(tags, seen), matches[0].colour]
    if qtype == "exists":
        answer = "yes" if with_colour else "no"
        counts = [str(c) for c in counts_per_frame(objs, colour, n_frames)]
        return [colour], answer, [*_interleave(tags, counts), answer]
    if qtype == "count":
        counts = [str(c) for c in counts_per_frame(objs, None, n_frames)]
        return [], counts[0], [*_interleave(tags, counts), counts[0]]
    if qtype == "tally":
        colour = str(rng.choice(sorted({o.colour for o in objs})))  # a colour that is in the clip
        trace = tally_trace(counts_per_frame(objs, colour, n_frames))
        return [colour], trace[-1], trace
    if qtype == "tally_all":
        trace = tally_trace(counts_per_frame(objs, None, n_frames))
        return [], trace[-1], trace
    raise ValueError(f"qtype: expected one of {QUESTION_TYPES}, got {qtype!r}")


def _interleave(tags: tuple[str, ...], readings: list[str]) -> list[str]:
    return [tok for pair in zip(tags, readings) for tok in pair]


def make_example(rng: np.random.Generator, qtype: str, n_frames: int = 8, size: int = 16) -> Example:
    """One example of question type ``qtype`` (rejection-sampled until the clip answers it uniquely)."""
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"qtype: expected one of {QUESTION_TYPES}, got {qtype!r}")
    if not 2 <= n_frames <= len(FRAME_TAGS):
        raise ValueError(f"n_frames: expected 2..{len(FRAME_TAGS)}, got {n_frames}")
    while True:
        objs = _random_objects(rng, n_frames, size)
        asked = _ask(qtype, objs, rng, n_frames, size)
        if asked is not None:
            question, answer, trace = asked
            return Example(render(objs, n_frames, size), qtype, [f"Q_{qtype}", *question], answer, trace)


def question_types(n: int, reasoning_share: float | None) -> list[str]:
    """The question type of each of ``n`` questions: cycling over all types (None), or a category mix.

    With ``reasoning_share = s`` a fraction ``s`` of the questions (spread evenly) are reasoning; the type
    cycles within each category.
    """
    if reasoning_share is None:
        return [QUESTION_TYPES[i % len(QUESTION_TYPES)] for i in range(n)]
    if not 0 <= reasoning_share <= 1:
        raise ValueError(f"reasoning_share: expected a fraction in [0, 1], got {reasoning_share}")
    out, seen = [], {"perception": 0, "reasoning": 0}
    for i in range(n):
        reasoning = int((i + 1) * reasoning_share) > int(i * reasoning_share)
        pool = REASONING if reasoning else PERCEPTION
        key = "reasoning" if reasoning else "perception"
        out.append(pool[seen[key] % len(pool)])
        seen[key] += 1
    return out


def make_split(
    seed: int, n_per_type: int, n_frames: int = 8, size: int = 16, reasoning_share: float | None = None
) -> list[Example]:
    """``n_per_type * len(QUESTION_TYPES)`` examples from ``numpy`` seed ``seed``.

    Balanced over question types by default; ``reasoning_share`` sets the category mix instead.
    """
    if n_per_type <= 0:
        raise ValueError(f"n_per_type: expected a positive integer, got {n_per_type}")
    rng = np.random.default_rng(seed)
    kinds = question_types(n_per_type * len(QUESTION_TYPES), reasoning_share)
    return [make_example(rng, q, n_frames, size) for q in kinds]


def encode(tokens: list[str]) -> list[int]:
    """Token strings -> ids of :data:`VOCAB`."""
    return [TOKEN_ID[t] for t in tokens]


def question_ids(example: Example) -> list[int]:
    """The question padded with PAD to :data:`QUESTION_LEN` ids."""
    ids = encode(example.question)
    return ids + [PAD] * (QUESTION_LEN - len(ids))
