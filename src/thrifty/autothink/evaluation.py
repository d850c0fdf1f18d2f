"""Greedy evaluation of each arm per question category, the tau sweep and tau selection on validation.

Each test question is decoded greedily once to the end (batched, KV cache); because the true early exit
equals one-shot greedy decoding token for token (tested), the gated answer and its token count for any tau
follow from that one decode: exit -> a1 and the tokens up to ``<think>``; otherwise a2 and all tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from thrifty.autothink.format import parse_answer_twice, parse_cot, parse_direct
from thrifty.autothink.generate import first_answer_confidence
from thrifty.autothink.model import VideoLM
from thrifty.autothink.rewards import exact_match_reward
from thrifty.autothink.training import FMT, Arm, prompts_of, sample
from thrifty.autothink.world import TOKEN_ID, VOCAB, Example

# 0.0 = exit whenever a1 is an answer (the fallback and a missing box have confidence -1, so they still think)
TAUS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0)
CATEGORIES = ("perception", "reasoning")


@dataclass
class Decoded:
    """Per-question outcome of one greedy decode: correctness of each answer, confidence, token counts."""

    category: str
    a1_ok: bool
    a2_ok: bool
    conf: float
    n_full: int
    n_first: int


@torch.no_grad()
def decode_all(model: VideoLM, examples: list[Example], arm: Arm, max_len: int, chunk: int = 256) -> list[Decoded]:
    """Greedy-decode every example (batched) and score it for ``arm``."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    think = TOKEN_ID["<think>"]
    for lo in range(0, len(examples), chunk):
        part = examples[lo : lo + chunk]
        ids, mask, logps = sample(model, prompts_of(part, device), max_len, 0.0, None)
        for ex, row, m, lp in zip(part, ids.cpu(), mask.cpu(), logps.cpu()):
            tokens, row_lp = row[m].tolist(), lp[m].tolist()
            out.append(_score(ex, arm, tokens, row_lp, think))
    return out


def _score(ex: Example, arm: Arm, tokens: list[int], logps: list[float], think: int) -> Decoded:
    if arm == "twice":
        parsed = parse_answer_twice(tokens, VOCAB, FMT)
        n_first = tokens.index(think) + 1 if think in tokens else len(tokens)
        conf, _ = first_answer_confidence(tokens[:n_first], logps[:n_first], VOCAB, FMT)
        a1_ok, a2_ok = exact_match_reward(parsed.a1, ex.answer) > 0, exact_match_reward(parsed.a2, ex.answer) > 0
        return Decoded(ex.category, a1_ok, a2_ok, conf, len(tokens), n_first)
    answer, _ = (parse_direct if arm == "direct" else parse_cot)(tokens, VOCAB, FMT)
    ok = exact_match_reward(answer, ex.answer) > 0
    return Decoded(ex.category, ok, ok, -1.0, len(tokens), len(tokens))


def category_metrics(decoded: list[Decoded], tau: float | None) -> dict[str, dict[str, float]]:
    """Per category: accuracy of a1, a2 and auto (at ``tau``; None = a baseline), think rate, mean tokens."""
    metrics = {}
    for cat in (*CATEGORIES, "all"):
        rows = [d for d in decoded if cat in ("all", d.category)]
        if not rows:
            continue
        exits = np.array([tau is not None and d.conf >= tau for d in rows])
        a1 = np.array([d.a1_ok for d in rows])
        a2 = np.array([d.a2_ok for d in rows])
        tokens = np.where(exits, [d.n_first for d in rows], [d.n_full for d in rows])
        metrics[cat] = {
            "acc_a1": float(a1.mean()),
            "acc_a2": float(a2.mean()),
            "acc_auto": float(np.where(exits, a1, a2).mean()),
            "think_rate": float(1 - exits.mean()) if tau is not None else float("nan"),
            "tokens": float(tokens.mean()),
            "tokens_always_think": float(np.mean([d.n_full for d in rows])),
        }
    return metrics


def perfect_gating_tokens(decoded: list[Decoded]) -> float:
    """Mean tokens if the gate exited on every perception question and thought on every reasoning one."""
    return float(np.mean([d.n_first if d.category == "perception" else d.n_full for d in decoded]))


def choose_tau(val: list[Decoded], taus: tuple[float, ...] = TAUS, tol: float = 0.01) -> float:
    """The tau with the fewest validation tokens among those within ``tol`` of the best validation accuracy."""
    scored = [(category_metrics(val, t)["all"], t) for t in taus]
    best = max(m["acc_auto"] for m, _ in scored)
    return min((m["tokens"], -t, t) for m, t in scored if m["acc_auto"] >= best - tol)[2]
