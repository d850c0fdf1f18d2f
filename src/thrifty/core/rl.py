"""Model-agnostic GRPO pieces: group-relative advantages, the token-level clipped loss and the k3 KL.

These follow TRL's ``GRPOTrainer`` (``loss_type="grpo"``, token-level importance sampling, symmetric
clipping) so a policy trained with plain torch loops gets the same objective TRL optimises.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

LossType = Literal["grpo", "bnpo"]


def _check_rewards(rewards: Tensor, group_size: int) -> None:
    if group_size < 2:
        raise ValueError(f"group_size: expected at least 2 completions per prompt, got {group_size}")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards: expected shape (N * {group_size},), got {tuple(rewards.shape)}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards: expected finite values, got NaN or inf")


def group_advantages(rewards: Tensor, group_size: int, *, eps: float = 1e-4, scale: bool = True) -> Tensor:
    """GRPO advantages ``(R - mean_G) / (std_G + eps)`` with torch's unbiased std.

    Args:
        rewards: ``(N * G,)`` rewards, the ``G`` completions of each prompt contiguous.
        group_size: ``G``, completions per prompt (at least 2).
        eps: added to the std (1e-4 as in VideoAuto-R1 and TRL, not 1e-8).
        scale: divide by the std (``False`` gives Dr. GRPO's mean-centred advantages).

    Returns:
        ``(N * G,)`` advantages; a group whose rewards are all equal gets exactly zero.
    """
    _check_rewards(rewards, group_size)
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def informative_groups(rewards: Tensor, group_size: int) -> Tensor:
    """``(N,)`` bool: the groups whose rewards are not all equal (the others give no gradient)."""
    _check_rewards(rewards, group_size)
    grouped = rewards.view(-1, group_size)
    return (grouped != grouped[:, :1]).any(dim=1)


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi || ref): ``exp(ref - logp) - (ref - logp) - 1`` (>= 0)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip: float = 0.2,
    beta: float = 0.01,
    loss_type: LossType = "grpo",
    kl_ratio_correction: bool = False,
) -> Tensor:
    """Token-level PPO-clip GRPO loss with a k3 KL penalty.

    Args:
        logp: ``(B, L)`` log-probs of the sampled tokens under the current policy (with grad).
        old_logp: ``(B, L)`` log-probs under the policy that generated them (recomputed when one
            generation round feeds several optimiser steps; equal to ``logp.detach()`` on the first).
        ref_logp: ``(B, L)`` reference log-probs, or None when ``beta == 0``.
        advantages: ``(B,)`` per-sequence advantages.
        mask: ``(B, L)`` 1 for completion tokens, 0 for padding.
        clip: symmetric ratio clip ``epsilon``.
        beta: KL weight.
        loss_type: ``"grpo"`` (mean over tokens per sequence, then over sequences) or ``"bnpo"``
            (mean over all tokens of the batch).
        kl_ratio_correction: multiply the per-token KL by the importance ratio (TRL >= 1.x's default
            ``use_bias_correction_kl=True``); False is the paper's (TRL 0.23) objective.

    Returns:
        Scalar loss.
    """
    if logp.shape != old_logp.shape or logp.shape != mask.shape or logp.dim() != 2:
        raise ValueError(
            f"logp, old_logp, mask: expected equal (B, L) shapes, got {tuple(logp.shape)}, "
            f"{tuple(old_logp.shape)}, {tuple(mask.shape)}"
        )
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages: expected shape ({logp.shape[0]},), got {tuple(advantages.shape)}")
    if beta != 0 and (ref_logp is None or ref_logp.shape != logp.shape):
        raise ValueError("ref_logp: expected a (B, L) tensor when beta != 0")
    if loss_type not in ("grpo", "bnpo"):
        raise ValueError(f"loss_type: expected 'grpo' or 'bnpo', got {loss_type!r}")
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    if beta != 0:
        kl = k3_kl(logp, ref_logp)  # type: ignore[arg-type]
        per_token = per_token + beta * (kl * ratio if kl_ratio_correction else kl)
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def grpo_loss_reference(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip: float = 0.2,
    beta: float = 0.01,
) -> Tensor:
    """Slow per-sequence, per-token loop form of :func:`grpo_loss` (``loss_type="grpo"``), for tests."""
    seq_losses = []
    for b in range(logp.shape[0]):
        terms = []
        for t in range(logp.shape[1]):
            if not mask[b, t]:
                continue
            ratio = torch.exp(logp[b, t] - old_logp[b, t])
            clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
            term = -torch.minimum(ratio * advantages[b], clipped * advantages[b])
            if beta != 0:
                delta = ref_logp[b, t] - logp[b, t]  # type: ignore[index]
                term = term + beta * (torch.exp(delta) - delta - 1)
            terms.append(term)
        seq_losses.append(torch.stack(terms).mean() if terms else logp.new_zeros(()))
    return torch.stack(seq_losses).mean()
