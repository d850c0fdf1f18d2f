"""Slow, obviously-correct references: per-window, per-token and per-edge loops (float64-friendly)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def temporal_reduce_reference(feats: Tensor, window: int = 16, threshold: float = 0.83, center: bool = True) -> Tensor:
    """Per-window loop of the official ``select_frame`` (no frame cap): ``(T, ...) -> (N,)`` kept indices."""
    flat = feats.reshape(feats.shape[0], -1).double()
    if center:
        flat = flat - flat.mean(0, keepdim=True)
    scale = max(float(feats.reshape(feats.shape[0], -1).double().norm(dim=1).max()), 1e-30)
    unit = []
    for row in flat:
        norm = float(row.norm())
        unit.append(row / norm if norm > 1e-6 * scale else torch.full_like(row, 1 / math.sqrt(row.numel())))
    kept = []
    for start in range(0, feats.shape[0], window):
        members = list(range(start, min(start + window, feats.shape[0])))
        n = len(members)
        for offset, i in enumerate(members):
            score = sum(float(unit[i] @ unit[j]) for j in members) / n
            if offset == n // 2:
                score = 0.0
            if score < threshold:
                kept.append(i)
    return torch.tensor(kept, dtype=torch.long)


def frame_relevance_reference(frame_tokens: Tensor, text_emb: Tensor) -> Tensor:
    """The explicit double mean of dot products, ``(F, P, D), (L, D) -> (F,)``."""
    return torch.einsum("fpd,ld->fpl", frame_tokens, text_emb).mean(dim=(1, 2))


def spatial_token_reduce_reference(frames: Tensor, window: int = 8, threshold: float = 0.8) -> list[tuple[int, int]]:
    """Per-token loop of STC: the ``(frame, position)`` pairs kept, in frame-major order."""
    kept = []
    for f in range(frames.shape[0]):
        first = (f // window) * window
        for p in range(frames.shape[1]):
            a, b = frames[f, p].double(), frames[first, p].double()
            cos = float(a @ b) / max(float(a.norm() * b.norm()), 1e-12)
            if f == first or cos < threshold:
                kept.append((f, p))
    return kept


def tome_reference(tokens: Tensor, budget: int) -> tuple[Tensor, Tensor, Tensor]:
    """ToMe bipartite soft matching, token by token, repeated until ``budget`` tokens remain.

    Args:
        tokens: ``(N, D)``.
        budget: tokens to keep.

    Returns:
        ``(x, sizes, rep)``: merged tokens, their sizes and the representative raw index, ordered by ``rep``.
    """
    items = [(i, tokens[i].double().clone(), 1.0) for i in range(tokens.shape[0])]  # (rep, value, size)
    while len(items) > budget:
        set_a, set_b = items[0::2], items[1::2]
        r = min(len(items) - budget, len(set_a))
        edges = []
        for ai, (_, va, _) in enumerate(set_a):
            sims = [float(va @ vb) / max(float(va.norm() * vb.norm()), 1e-12) for _, vb, _ in set_b]
            best = max(range(len(sims)), key=lambda j: (sims[j], -j))
            edges.append((sims[best], ai, best))
        edges.sort(key=lambda e: (-e[0], e[1]))
        merged_a = set()
        sums = [vb * sb for _, vb, sb in set_b]
        totals = [sb for _, _, sb in set_b]
        for _, ai, bj in edges[:r]:
            _, va, sa = set_a[ai]
            sums[bj] = sums[bj] + va * sa
            totals[bj] += sa
            merged_a.add(ai)
        items = [item for ai, item in enumerate(set_a) if ai not in merged_a]
        items += [(set_b[j][0], sums[j] / totals[j], totals[j]) for j in range(len(set_b))]
        items.sort(key=lambda item: item[0])
    return (
        torch.stack([v for _, v, _ in items]),
        torch.tensor([s for _, _, s in items], dtype=torch.float64),
        torch.tensor([r for r, _, _ in items]),
    )
