"""A seeded moving-shapes video world with perception and reasoning questions (spec C4).

Each clip has ``n_frames`` frames of ``size x size`` RGB. One to four objects (shape in square/plus/dot,
colour in red/green/blue) move along one axis with an integer speed and bounce off the walls; objects may
appear late or vanish early. Perception questions are answerable from one glance; reasoning questions need
several steps, and come with a program trace as the rationale:

* perception: ``colour`` of the <shape>, ``direction`` of the <colour> object, ``exists`` a <colour> object;
* reasoning: ``count`` distinct objects, ``bounces`` of the <colour> object, ``sum`` = #<c1> in the first
  frame + #<c2> in the last frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS = ("red", "green", "blue")
SHAPES = ("square", "plus", "dot")
DIRECTIONS = ("left", "right", "up", "down")
PERCEPTION = ("colour", "direction", "exists")
REASONING = ("count", "bounces", "sum")
QUESTION_TYPES = PERCEPTION + REASONING
SPECIALS = ("PAD", "EOS", "<box>", "</box>", "<think>", "</think>", "FALLBACK")
VOCAB: tuple[str, ...] = (
    *SPECIALS,
    *COLOURS,
    *SHAPES,
    *DIRECTIONS,
    "yes",
    "no",
    *(str(d) for d in range(10)),
    *(f"Q_{q}" for q in QUESTION_TYPES),
    "f1",
    "f8",
    "sum",
    "n",
)
TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB)}
PAD, EOS = TOKEN_ID["PAD"], TOKEN_ID["EOS"]
QUESTION_LEN = 3
_RGB = {"red": (1.0, 0.1, 0.1), "green": (0.1, 1.0, 0.1), "blue": (0.1, 0.2, 1.0)}
_SPRITES = {
    "square": np.ones((3, 3), bool),
    "plus": np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool),
    "dot": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], bool),
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


def direction_name(vel: tuple[int, int]) -> str:
    vy, vx = vel
    if vx:
        return "right" if vx > 0 else "left"
    return "down" if vy > 0 else "up"


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


def _random_objects(rng: np.random.Generator, n_frames: int, size: int) -> list[Obj]:
    objs = []
    for _ in range(int(rng.integers(1, 5))):
        speed = int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1)
        vel = (speed, 0) if rng.random() < 0.5 else (0, speed)
        t0 = 0 if rng.random() < 0.7 else int(rng.integers(1, n_frames // 2))
        t1 = n_frames - 1 if rng.random() < 0.7 else int(rng.integers(n_frames // 2, n_frames - 1))
        pos = (int(rng.integers(0, size - 2)), int(rng.integers(0, size - 2)))
        objs.append(Obj(str(rng.choice(COLOURS)), str(rng.choice(SHAPES)), pos, vel, t0, t1))
    return objs


def _ask(qtype: str, objs: list[Obj], rng: np.random.Generator, n_frames: int, size: int) -> tuple | None:
    """``(question tokens, answer, trace)`` or None when this clip cannot answer the question uniquely."""
    colour, shape = str(rng.choice(COLOURS)), str(rng.choice(SHAPES))
    with_colour = [o for o in objs if o.colour == colour]
    if qtype == "colour":
        matches = [o for o in objs if o.shape == shape]
        return None if len(matches) != 1 else ([shape], matches[0].colour, [shape, matches[0].colour])
    if qtype == "exists":
        answer = "yes" if with_colour else "no"
        return [colour], answer, [colour, answer]
    if qtype == "direction":
        if len(with_colour) != 1 or with_colour[0].t0 != 0:
            return None
        answer = direction_name(trajectory(with_colour[0], n_frames, size)[1][0])
        return [colour], answer, [colour, answer]
    if qtype == "count":
        ordered = sorted(objs, key=lambda o: o.t0)
        return [], str(len(objs)), [tok for o in ordered for tok in (o.colour, o.shape)] + ["n", str(len(objs))]
    if qtype == "bounces":
        if len(with_colour) != 1 or (with_colour[0].t0, with_colour[0].t1) != (0, n_frames - 1):
            return None
        dirs = [direction_name(v) for v in trajectory(with_colour[0], n_frames, size)[1]]
        flips = sum(a != b for a, b in zip(dirs, dirs[1:]))
        return [colour], str(flips), dirs + ["n", str(flips)]
    if qtype == "sum":
        second = str(rng.choice(COLOURS))
        first_n = sum(o.colour == colour and o.t0 == 0 for o in objs)
        last_n = sum(o.colour == second and o.t1 == n_frames - 1 for o in objs)
        total = first_n + last_n
        return [colour, second], str(total), ["f1", str(first_n), "f8", str(last_n), "sum", str(total)]
    raise ValueError(f"qtype: expected one of {QUESTION_TYPES}, got {qtype!r}")


def make_example(rng: np.random.Generator, qtype: str, n_frames: int = 8, size: int = 16) -> Example:
    """One example of question type ``qtype`` (rejection-sampled until the clip answers it uniquely)."""
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"qtype: expected one of {QUESTION_TYPES}, got {qtype!r}")
    while True:
        objs = _random_objects(rng, n_frames, size)
        asked = _ask(qtype, objs, rng, n_frames, size)
        if asked is not None:
            question, answer, trace = asked
            return Example(render(objs, n_frames, size), qtype, [f"Q_{qtype}", *question], answer, trace)


def make_split(seed: int, n_per_type: int, n_frames: int = 8, size: int = 16) -> list[Example]:
    """``n_per_type`` examples of every question type, interleaved, from ``numpy`` seed ``seed``."""
    if n_per_type <= 0:
        raise ValueError(f"n_per_type: expected a positive integer, got {n_per_type}")
    rng = np.random.default_rng(seed)
    return [make_example(rng, q, n_frames, size) for _ in range(n_per_type) for q in QUESTION_TYPES]


def encode(tokens: list[str]) -> list[int]:
    """Token strings -> ids of :data:`VOCAB`."""
    return [TOKEN_ID[t] for t in tokens]


def question_ids(example: Example) -> list[int]:
    """The question padded with PAD to :data:`QUESTION_LEN` ids."""
    ids = encode(example.question)
    return ids + [PAD] * (QUESTION_LEN - len(ids))
