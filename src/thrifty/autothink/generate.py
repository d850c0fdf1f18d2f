"""Confidence-gated answering: answer, and think only when the first answer is not confident.

``generate_auto`` is a true early exit (the official ``inference_demo.py``): greedy decoding stops at
``<think>``; if the confidence of the first box reaches ``tau`` the first answer is returned, otherwise
decoding resumes from the same KV cache. It therefore equals one-shot greedy decoding token for token, and
counts only the tokens it generated. ``generate_posthoc`` is the official lmms-eval behaviour: generate the
whole response, then choose.

Confidence = ``exp(mean log p)`` over the tokens of the first box's content, from the raw logits at
temperature 1 (never post-processed generation scores); -1 when a1 is missing or the fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from thrifty.autothink.format import DEFAULT_FORMAT, AnswerTwiceFormat, Span, parse_answer_twice
from thrifty.autothink.rewards import is_fallback
from thrifty.autothink.sessions import make_session


@dataclass
class AutoResult:
    """One gated answer.

    Attributes:
        ids: generated token ids (prompt excluded).
        used: ``"a1"`` (exited at the first answer) or ``"a2"`` (thought and answered again).
        answer: the chosen answer string (None when that box is missing).
        conf: confidence of the first answer (-1 for the fallback or a missing box).
        n_tokens: tokens generated (``len(ids)``).
        a1_end: tokens up to and including ``<think>`` (the early-exit length).
        token_logps: raw log-probabilities of the generated tokens at temperature 1.
    """

    ids: list[int]
    used: Literal["a1", "a2"]
    answer: str | None
    conf: float
    n_tokens: int
    a1_end: int
    token_logps: list[float] = field(repr=False)


def answer_confidence(token_logps: Tensor | Sequence[float], span: Span | None) -> float:
    """``exp(mean(token_logps[span]))``: the geometric mean of the span's probabilities; -1 if no span."""
    if span is None or span[1] <= span[0]:
        return -1.0
    logps = torch.as_tensor(token_logps, dtype=torch.float64)
    if span[1] > logps.numel() or span[0] < 0:
        raise ValueError(f"span: expected a range inside the {logps.numel()} token log-probs, got {span}")
    return float(torch.exp(logps[span[0] : span[1]].mean()))


def first_answer_confidence(
    ids: Sequence[int], token_logps: Sequence[float], vocab: Sequence[str], fmt: AnswerTwiceFormat
) -> tuple[float, str | None]:
    """Confidence and text of the first box of a (partial) response; -1 for the fallback or no box."""
    parsed = parse_answer_twice(ids, vocab, fmt)
    if parsed.a1 is None or is_fallback(parsed.a1, fmt):
        return -1.0, parsed.a1
    return answer_confidence(token_logps, parsed.a1_span), parsed.a1


def _tag_id(vocab: Sequence[str], tag: str) -> int:
    if tag not in vocab:
        raise ValueError(f"vocab: expected the tag {tag!r} in the vocabulary")
    return list(vocab).index(tag)


def _check_args(tau: float, max_first: int, max_total: int) -> None:
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau: expected a confidence threshold in [0, 1], got {tau}")
    if not 0 < max_first <= max_total:
        raise ValueError(f"max_first: expected 0 < max_first <= max_total={max_total}, got {max_first}")


def _check_context(session: Any, prompt: Any, max_total: int) -> None:
    p_len = session.prompt_length(prompt)
    if session.max_context is not None and p_len + max_total > session.max_context:
        raise ValueError(
            f"prompt: {p_len} prompt tokens + max_total={max_total} exceed the context of {session.max_context}"
        )


def _decode(session: Any, logits: Tensor, stop_ids: set[int], n_max: int, out: list[int], logps: list[float]) -> Tensor:
    """Greedy steps (batch 1) until a stop token is emitted or ``n_max`` tokens exist; returns last logits."""
    while len(out) < n_max:
        raw = torch.log_softmax(logits[0].float(), dim=-1)
        token = int(raw.argmax())
        out.append(token)
        logps.append(float(raw[token]))
        if token in stop_ids:
            break
        logits = session.step(torch.tensor([token], device=logits.device))
    return logits


@torch.no_grad()
def generate_auto(
    model: Any,
    prompt: Any,
    vocab: Sequence[str],
    *,
    tau: float = 0.97,
    max_first: int = 32,
    max_total: int = 128,
    fmt: AnswerTwiceFormat = DEFAULT_FORMAT,
) -> AutoResult:
    """Answer, and think only when needed, with a true early exit and KV-cache resume (batch 1).

    Args:
        model: a :class:`~thrifty.core.lm.TransformerLM`, a transformers causal LM, or a model with
            ``decode_session()`` (the video LM).
        prompt: ``(1, P)`` token ids, or the model's own prompt type.
        vocab: id -> token string (must hold the format tags and ``fmt.eos``).
        tau: confidence threshold in [0, 1].
        max_first: most tokens of the first stage (up to ``<think>``).
        max_total: most generated tokens in all.
        fmt: the format tags.
    """
    _check_args(tau, max_first, max_total)
    think_id, eos_id = _tag_id(vocab, fmt.think[0]), _tag_id(vocab, fmt.eos)
    session = make_session(model)
    _check_context(session, prompt, max_total)
    ids: list[int] = []
    logps: list[float] = []
    logits = _decode(session, session.prefill(prompt), {think_id, eos_id}, max_first, ids, logps)
    conf, a1 = first_answer_confidence(ids, logps, vocab, fmt)
    a1_end = len(ids)
    if ids[-1] == eos_id or conf >= tau:
        return AutoResult(ids, "a1", a1, conf, len(ids), a1_end, logps)
    if ids[-1] == think_id:
        logits = session.step(torch.tensor([think_id], device=logits.device))
    _decode(session, logits, {eos_id}, max_total, ids, logps)
    a2 = parse_answer_twice(ids, vocab, fmt).a2
    return AutoResult(ids, "a2", a2, conf, len(ids), a1_end, logps)


@torch.no_grad()
def generate_posthoc(
    model: Any,
    prompt: Any,
    vocab: Sequence[str],
    *,
    tau: float = 0.97,
    max_total: int = 128,
    fmt: AnswerTwiceFormat = DEFAULT_FORMAT,
) -> AutoResult:
    """The official evaluation: generate the whole response, then pick a1 (conf >= tau) or a2 post hoc."""
    _check_args(tau, 1, max_total)
    eos_id = _tag_id(vocab, fmt.eos)
    session = make_session(model)
    _check_context(session, prompt, max_total)
    ids: list[int] = []
    logps: list[float] = []
    _decode(session, session.prefill(prompt), {eos_id}, max_total, ids, logps)
    think_id = _tag_id(vocab, fmt.think[0])
    a1_end = ids.index(think_id) + 1 if think_id in ids else len(ids)
    conf, a1 = first_answer_confidence(ids[:a1_end], logps[:a1_end], vocab, fmt)
    parsed = parse_answer_twice(ids, vocab, fmt)
    used: Literal["a1", "a2"] = "a1" if conf >= tau else "a2"
    return AutoResult(ids, used, a1 if used == "a1" else parsed.a2, conf, len(ids), a1_end, logps)


@torch.no_grad()
def greedy_reference(model: Any, prompt: Any, max_new_tokens: int, stop_id: int | None = None) -> list[int]:
    """Slow reference: one-shot greedy decoding recomputing the full forward (no cache) at every step."""
    session = make_session(model)
    completion: list[int] = []
    device = next(iter(model.parameters())).device if hasattr(model, "parameters") else None
    for _ in range(max_new_tokens):
        comp = torch.tensor([completion], dtype=torch.long, device=device)
        token = int(session.logits_full(prompt, comp)[0, -1].float().argmax())
        completion.append(token)
        if token == stop_id:
            break
    return completion
