"""VideoAuto-R1's rewards: task rewards, the answer-twice total, and TRL ``reward_funcs`` callables.

Total reward ``R = w1 * R1 + w2 * R2 + lam * R_fmt``, with ``w1 = 0.9, w2 = 1.1, lam = 1``; when ``R2 > 0.7``
and the first answer is the fallback, ``R2 += alpha / w2`` (``alpha = 0.3`` after the weight). The TRL
functions follow ``reward_funcs`` (``(completions, **dataset_columns) -> list[float]``) and are combined by
``GRPOConfig(reward_weights=[0.9, 1.1, 1.0])`` as in the official ``accuracy_boxed1 accuracy_boxed2
format_twice_boxed`` setup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from thrifty.autothink.format import DEFAULT_FORMAT, AnswerTwiceFormat, ParsedTwice, parse_answer_twice

TaskReward = Callable[[str, Any], float]

_YES = {"yes", "y", "true", "correct"}
_NO = {"no", "n", "false", "incorrect"}
_CHOICE = re.compile(r"^(?:\(([A-Za-z])\)|([A-Za-z])[.:)]|([A-Za-z]))(?:\s|$)")


def normalize_answer(answer: str) -> str:
    """Lower-case, collapse spaces, reduce "(A)"/"A."/"A" to the letter, map yes/no synonyms."""
    text = " ".join(answer.strip().split())
    match = _CHOICE.match(text)
    if match:
        return next(g for g in match.groups() if g).lower()
    low = text.lower().rstrip(".")
    if low in _YES:
        return "yes"
    if low in _NO:
        return "no"
    return low


def exact_match_reward(pred: str | None, gt: Any) -> float:
    """1.0 when the normalised prediction equals the normalised ground truth, else 0.0."""
    if pred is None:
        return 0.0
    return 1.0 if normalize_answer(pred) == normalize_answer(str(gt)) else 0.0


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, str):
        nums = re.findall(r"-?\d+(?:\.\d+)?", value)
        if len(nums) != 2:
            return None
        value = (float(nums[0]), float(nums[1]))
    start, end = float(value[0]), float(value[1])
    return (start, end) if end >= start else None


def temporal_iou_reward(pred: str | Sequence[float] | None, gt: str | Sequence[float]) -> float:
    """Temporal IoU of two ``(start, end)`` segments; unparsable or inverted predictions score 0."""
    p, g = (None if pred is None else _interval(pred)), _interval(gt)
    if p is None or g is None:
        return 0.0
    inter = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
    union = max(p[1], g[1]) - min(p[0], g[0])
    return inter / union if union > 0 else float(p == g)


TASK_REWARDS: dict[str, TaskReward] = {"exact_match": exact_match_reward, "iou": temporal_iou_reward}


def _task(fn: TaskReward, pred: str | None, gt: Any) -> float:
    value = 0.0 if pred is None else float(fn(pred, gt))
    if math.isnan(value):
        raise ValueError(f"task_reward_fn: returned NaN for prediction {pred!r} and ground truth {gt!r}")
    return value


def is_fallback(a1: str | None, fmt: AnswerTwiceFormat = DEFAULT_FORMAT) -> bool:
    """The first answer is the fallback string ("Let's analyze ..." in the paper)."""
    return a1 is not None and a1.lstrip().startswith(fmt.fallback)


def answer_twice_reward(
    parsed: ParsedTwice,
    gt: Any,
    task_reward_fn: TaskReward = exact_match_reward,
    *,
    w1: float = 0.9,
    w2: float = 1.1,
    lam: float = 1.0,
    alpha: float = 0.3,
    bonus_gate: float = 0.7,
    fmt: AnswerTwiceFormat = DEFAULT_FORMAT,
) -> float:
    """``w1 * R1 + w2 * R2 + lam * R_fmt``, with the gated fallback bonus ``alpha`` inside ``R2``.

    Args:
        parsed: the parsed response.
        gt: ground truth passed to ``task_reward_fn``.
        task_reward_fn: ``(prediction, gt) -> float`` (exact match, temporal IoU, ...); NaN raises.
        w1, w2, lam: weights of R1, R2 and the format reward.
        alpha: fallback bonus (after the weight) when ``R2 > bonus_gate`` and a1 is the fallback.
        bonus_gate: the R2 threshold of the bonus.
        fmt: the tags (its ``fallback`` string).
    """
    r1 = _task(task_reward_fn, parsed.a1, gt)
    r2 = _task(task_reward_fn, parsed.a2, gt)
    if r2 > bonus_gate and is_fallback(parsed.a1, fmt):
        r2 += alpha / w2
    return w1 * r1 + w2 * r2 + lam * float(parsed.fmt_ok)


def _texts(completions: Sequence[Any]) -> list[str]:
    """TRL passes strings (standard) or message lists (conversational): the last message's content."""
    return [c if isinstance(c, str) else str(c[-1]["content"]) for c in completions]


def _types(problem_type: Sequence[str] | None, n: int) -> list[str]:
    types = list(problem_type) if problem_type is not None else ["exact_match"] * n
    for t in types:
        if t not in TASK_REWARDS:
            raise ValueError(f"problem_type: expected one of {sorted(TASK_REWARDS)}, got {t!r}")
    return types


def accuracy_boxed1(
    completions: Sequence[Any], solution: Sequence[Any], problem_type: Sequence[str] | None = None, **kwargs: Any
) -> list[float]:
    """TRL reward function: task reward of the first answer (0 unless exactly one box before ``<think>``)."""
    texts = _texts(completions)
    return [
        _task(TASK_REWARDS[t], parse_answer_twice(c).a1, gt)
        for c, gt, t in zip(texts, solution, _types(problem_type, len(texts)), strict=True)
    ]


def accuracy_boxed2(
    completions: Sequence[Any], solution: Sequence[Any], problem_type: Sequence[str] | None = None, **kwargs: Any
) -> list[float]:
    """TRL reward function: task reward of the second answer plus the gated fallback bonus ``0.3 / 1.1``."""
    out = []
    for c, gt, t in zip(_texts(completions), solution, _types(problem_type, len(completions)), strict=True):
        parsed = parse_answer_twice(c)
        r2 = _task(TASK_REWARDS[t], parsed.a2, gt)
        out.append(r2 + 0.3 / 1.1 if r2 > 0.7 and is_fallback(parsed.a1) else r2)
    return out


def format_twice_boxed(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """TRL reward function: 1.0 when the response follows the strict answer-think-answer format."""
    return [float(parse_answer_twice(c).fmt_ok) for c in _texts(completions)]


TRL_REWARD_FUNCS = (accuracy_boxed1, accuracy_boxed2, format_twice_boxed)
TRL_REWARD_WEIGHTS = (0.9, 1.1, 1.0)
