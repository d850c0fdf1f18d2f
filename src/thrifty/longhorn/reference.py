"""Readable oracles: the Longhorn recurrence written exactly as the paper states it, and GLA's recurrence.

These are slow per-step loops used by the tests; nothing here is on a fast path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def naive_longhorn_scan(
    x: Tensor,
    k: Tensor,
    q: Tensor,
    beta_logit: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Diagonal Longhorn recurrence, paper form ``eps = beta / (1 + beta ||k||^2)``, ``beta = sigmoid(u)``.

    Args:
        x, beta_logit, z: ``(B, L, E)``; k, q: ``(B, L, N)``; D: ``(E,)``; initial_state: ``(B, E, N)``.

    Returns:
        ``(y (B, L, E), final state (B, E, N))``, computed in x's dtype.
    """
    batch, length, channels = x.shape
    state = initial_state if initial_state is not None else x.new_zeros(batch, channels, k.shape[-1])
    outputs = []
    for t in range(length):
        beta = torch.sigmoid(beta_logit[:, t])  # (B, E)
        eps = beta / (1.0 + beta * (k[:, t] ** 2).sum(-1, keepdim=True))
        forget = 1.0 - eps[:, :, None] * k[:, t, None, :] ** 2  # (B, E, N)
        state = forget * state + (eps * x[:, t])[:, :, None] * k[:, t, None, :]
        y_t = (state * q[:, t, None, :]).sum(-1)
        if D is not None:
            y_t = y_t + D * x[:, t]
        if z is not None:
            y_t = y_t * F.silu(z[:, t])
        outputs.append(y_t)
    return torch.stack(outputs, 1), state


def exact_objective(state: Tensor, prev_state: Tensor, k_t: Tensor, x_t: Tensor, beta_t: Tensor) -> Tensor:
    """The online-regression objective of one step (spec §2.1), summed over the batch.

    ``||S - S_prev||_F^2 + sum_i beta_i (S k - x)_i^2`` with state ``(B, E, N)``, k_t ``(B, N)``,
    x_t and beta_t ``(B, E)``.
    """
    residual = torch.einsum("ben,bn->be", state, k_t) - x_t
    return ((state - prev_state) ** 2).sum() + (beta_t * residual**2).sum()


def naive_gla_recurrent(
    q: Tensor, k: Tensor, v: Tensor, log_gate: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Gated linear attention stepwise: ``S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T``, ``o_t = S_t^T q_t``.

    Args:
        q, k, log_gate: ``(B, H, L, K)`` (log_gate <= 0 decays the key dimension); v: ``(B, H, L, V)``;
        initial_state: ``(B, H, K, V)``.

    Returns:
        ``(o (B, H, L, V), final state (B, H, K, V))``.
    """
    batch, heads, length, dk = q.shape
    state = initial_state if initial_state is not None else q.new_zeros(batch, heads, dk, v.shape[-1])
    outputs = []
    for t in range(length):
        state = torch.exp(log_gate[:, :, t])[..., None] * state + k[:, :, t, :, None] * v[:, :, t, None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], state))
    return torch.stack(outputs, 2), state
