"""Logit distillation restricted to the answer tokens, and its slow reference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(s_logits: Tensor, t_logits: Tensor, labels: Tensor, alpha: float, tau: float) -> None:
    if s_logits.shape != t_logits.shape or s_logits.dim() != 2:
        raise ValueError(f"t_logits: expected the (N, V) shape of s_logits {tuple(s_logits.shape)}")
    if labels.shape != s_logits.shape[:1]:
        raise ValueError(f"labels: expected shape ({s_logits.shape[0]},), got {tuple(labels.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha}")
    if tau <= 0:
        raise ValueError(f"tau: expected a positive temperature, got {tau}")


def distill_loss(
    s_logits: Tensor,
    t_logits: Tensor,
    labels: Tensor,
    alpha: float = 0.5,
    tau: float = 1.0,
    restrict_ids: Sequence[int] | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """``alpha * CE(student, labels) + (1 - alpha) * tau^2 * KL(teacher || student)`` on answer positions.

    Args:
        s_logits, t_logits: ``(N, V)`` student and teacher logits (flattened positions).
        labels: ``(N,)`` target ids; positions equal to ``ignore_index`` (the prompt) are left out of both terms.
        alpha: weight of the cross-entropy term (the spec's 0.5).
        tau: softmax temperature of the KL term.
        restrict_ids: vocabulary ids the KL is computed over (the answer tokens); None = all ``V``.

    Returns:
        A scalar, the mean over the kept positions.
    """
    _check(s_logits, t_logits, labels, alpha, tau)
    keep = labels != ignore_index
    if not bool(keep.any()):
        raise ValueError("labels: expected at least one position that is not ignore_index")
    s, t, y = s_logits[keep], t_logits[keep], labels[keep]
    ce = F.cross_entropy(s, y)
    if restrict_ids is not None:
        ids = torch.as_tensor(list(restrict_ids), device=s.device, dtype=torch.long)
        s, t = s[:, ids], t[:, ids]
    kl = F.kl_div(F.log_softmax(s / tau, -1), F.log_softmax(t / tau, -1), reduction="batchmean", log_target=True)
    return alpha * ce + (1.0 - alpha) * tau * tau * kl


def distill_loss_reference(
    s_logits: Tensor,
    t_logits: Tensor,
    labels: Tensor,
    alpha: float = 0.5,
    tau: float = 1.0,
    restrict_ids: Sequence[int] | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """Per-position loop of :func:`distill_loss` with explicit ``sum p_t (log p_t - log p_s)``."""
    _check(s_logits, t_logits, labels, alpha, tau)
    ids = list(range(s_logits.shape[1])) if restrict_ids is None else list(restrict_ids)
    total, count = s_logits.new_zeros(()), 0
    for s_row, t_row, y in zip(s_logits, t_logits, labels.tolist(), strict=True):
        if y == ignore_index:
            continue
        ce = -torch.log_softmax(s_row, 0)[y]
        log_ps = torch.log_softmax(s_row[ids] / tau, 0)
        log_pt = torch.log_softmax(t_row[ids] / tau, 0)
        kl = (log_pt.exp() * (log_pt - log_ps)).sum()
        total, count = total + alpha * ce + (1.0 - alpha) * tau * tau * kl, count + 1
    return total / count
