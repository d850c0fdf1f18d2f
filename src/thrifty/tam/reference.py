"""Slow, obviously-correct references: complex RoPE, explicit-loop pooled attention, pixel-loop J&F."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from thrifty.tam.attention import MemoryLayout, RoPEAttention


def rope_complex_reference(
    x: Tensor, h: int, w: int, theta: float = 1e4, repeat: int = 1, n_tail_skip: int = 0
) -> Tensor:
    """SAM 2's complex form: ``x`` ``(..., N, D)`` as ``D/2`` complex pairs times ``exp(i * angle)``."""
    d = x.shape[-1]
    freqs = 1.0 / (theta ** (torch.arange(0, d, 4, dtype=torch.float64)[: d // 4] / d))
    angles = []
    for t in range(h * w):  # one token at a time: column x = t mod w, row y = t div w
        col, row = t % w, t // w
        angles.append(torch.cat([col * freqs, row * freqs]))
    table = torch.polar(torch.ones(h * w, d // 2, dtype=torch.float64), torch.stack(angles)).repeat(repeat, 1)
    n_rot = x.shape[-2] - n_tail_skip
    xc = torch.view_as_complex(x[..., :n_rot, :].to(torch.float64).reshape(*x.shape[:-2], n_rot, d // 2, 2))
    rotated = torch.view_as_real(xc * table).flatten(-2).to(x.dtype)
    return torch.cat([rotated, x[..., n_rot:, :]], dim=-2)


def rope_attention_reference(
    module: RoPEAttention,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_grid: tuple[int, int],
    layout: MemoryLayout,
    pooled: bool = False,
) -> Tensor:
    """The same computation as ``module.forward`` written with explicit loops.

    Pooling (when ``pooled``) averages each ``s x s`` window of every frame by a Python loop and adds
    ``ln(s^2)`` to those logit columns; pointer columns are left as they are.
    Supports ``n_nope_per_frame = 0``.
    """
    b = q.shape[0]
    heads, s = module.heads, module.pool
    qh = module.q_proj(q).view(b, q.shape[1], heads, -1).transpose(1, 2)
    kh = module.k_proj(k).view(b, k.shape[1], heads, -1).transpose(1, 2)
    vh = module.v_proj(v).view(b, v.shape[1], heads, -1).transpose(1, 2)
    qh = rope_complex_reference(qh, *q_grid, module.theta)
    kh = rope_complex_reference(kh, *layout.grid, module.theta, layout.n_frames, layout.n_ptr_tokens)
    keys, values, bias = [], [], []
    gh, gw = layout.grid
    for f in range(layout.n_frames):
        base = f * gh * gw
        if not pooled:
            for t in range(gh * gw):
                keys.append(kh[:, :, base + t])
                values.append(vh[:, :, base + t])
                bias.append(0.0)
            continue
        for wy in range(0, gh, s):
            for wx in range(0, gw, s):
                idx = [base + (wy + dy) * gw + wx + dx for dy in range(s) for dx in range(s)]
                keys.append(kh[:, :, idx].mean(2))
                values.append(vh[:, :, idx].mean(2))
                bias.append(math.log(s * s))
    for p in range(layout.n_ptr_tokens):
        keys.append(kh[:, :, layout.n_frames * gh * gw + p])
        values.append(vh[:, :, layout.n_frames * gh * gw + p])
        bias.append(0.0)
    kk, vv = torch.stack(keys, 2), torch.stack(values, 2)
    bias_row = torch.tensor(bias, dtype=q.dtype, device=q.device)
    logits = qh @ kk.transpose(-2, -1) / math.sqrt(qh.shape[-1]) + bias_row
    out = torch.softmax(logits, -1) @ vv
    return module.out_proj(out.transpose(1, 2).flatten(2))


def boundary_f_reference(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """Boundary F with pixel loops: a boundary pixel matches if one of the other map lies within the disk."""

    def bmap(m: np.ndarray) -> np.ndarray:
        h, w = m.shape
        out = np.zeros_like(m, dtype=bool)
        for y in range(h):
            for x in range(w):
                right = m[y, x + 1] if x + 1 < w else False
                down = m[y + 1, x] if y + 1 < h else False
                diag = m[y + 1, x + 1] if (y + 1 < h and x + 1 < w) else False
                if y == h - 1 and x == w - 1:
                    out[y, x] = False
                elif y == h - 1:
                    out[y, x] = m[y, x] != right
                elif x == w - 1:
                    out[y, x] = m[y, x] != down
                else:
                    out[y, x] = m[y, x] != right or m[y, x] != down or m[y, x] != diag
        return out

    def matched(src: np.ndarray, dst: np.ndarray) -> int:
        ys, xs = np.nonzero(dst)
        return sum(
            any((y - yy) ** 2 + (x - xx) ** 2 <= radius**2 for yy, xx in zip(ys, xs, strict=True))
            for y, x in zip(*np.nonzero(src), strict=True)
        )

    bp, bg = bmap(pred.astype(bool)), bmap(gt.astype(bool))
    if bp.sum() == 0 and bg.sum() == 0:
        return 1.0
    if bp.sum() == 0 or bg.sum() == 0:
        return 0.0
    precision, recall = matched(bp, bg) / bp.sum(), matched(bg, bp) / bg.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
