"""Null-text inversion (NTI), negative-prompt inversion, Direct Inversion, and GEO's loss **[reconstruction]**.

NTI follows the reference implementations (google/prompt-to-prompt, cure-lab/PnPInversion): going from the
noisy end, the null embedding of step ``s`` starts from the previous step's (detached), is optimised with
Adam at ``lr * (1 - i * lr_decay)`` (``i`` = 0, 1, ... counts steps from the noisy end) for up to
``inner_steps`` updates, stopping once the pre-update loss falls below ``early_stop + i * early_stop_growth``;
the running latent then advances with the optimised embedding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.geo.ddim import DiffusionModel, cfg_eps, check_guidance, check_image, ddim_step, denoise_step, predict_x0
from thrifty.geo.geometry import GeometryDescriptor


class GeometricAccumulationLoss(nn.Module):
    """GEO's geometric accumulation loss for the null embedding of one step **[reconstruction]**.

    ``L_s(null) = sum_{j=1..k} a_j ||zbar_{s-j}(null) - z*_{s-j}||^2 + lambda_geo * G(D(x0_hat), I)``:
    ``zbar_{s-j}`` unrolls ``k`` guided reverse steps from the running latent with the *same* ``null``
    (accumulated trajectory error); ``x0_hat`` is the clean latent predicted inside the last unrolled step,
    decoded to pixels by ``decode`` and compared with the source image by the geometry descriptor ``G``.
    With ``horizon=1`` and ``lambda_geo=0`` this is exactly NTI's one-step latent MSE. GEO's equations are
    not public: the unrolling, the weights, where ``x0_hat`` is taken and the descriptor are all choices of
    this reconstruction, exposed as parameters.

    Args:
        horizon: unrolled steps ``k`` (1 = NTI).
        lambda_geo: weight of the pixel-space geometry term (0 = off).
        descriptor: the geometry distance (default: :class:`GeometryDescriptor`, Sobel L1 + low-pass L2).
        decode: latent -> pixels in [0, 1] (default: ``model.decode``; identity-like for pixel models).
        weights: ``a_1..a_k`` (default all ones).
        cond_branch: ``"exact"`` re-evaluates the conditional branch on the unrolled latents (2 UNet
            calls per extra step); ``"pivot"`` evaluates it without gradient on the pivot latents (1 call with
            gradient per extra step) **[reconstruction]**.
        truncate: near the clean end fewer than ``k`` steps remain; ``True`` unrolls only those,
            ``False`` raises.
    """

    def __init__(
        self,
        horizon: int = 1,
        lambda_geo: float = 0.0,
        descriptor: nn.Module | None = None,
        decode: Callable[[Tensor], Tensor] | None = None,
        weights: Sequence[float] | None = None,
        cond_branch: Literal["exact", "pivot"] = "exact",
        truncate: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon: expected a positive int, got {horizon!r}")
        if lambda_geo < 0:
            raise ValueError(f"lambda_geo: expected a non-negative weight, got {lambda_geo}")
        if weights is not None and len(weights) != horizon:
            raise ValueError(f"weights: expected {horizon} weights (one per unrolled step), got {len(weights)}")
        if cond_branch not in ("exact", "pivot"):
            raise ValueError(f"cond_branch: expected 'exact' or 'pivot', got {cond_branch!r}")
        self.horizon, self.lambda_geo, self.truncate, self.cond_branch = horizon, lambda_geo, truncate, cond_branch
        self.descriptor = descriptor if descriptor is not None else GeometryDescriptor()
        self.decode = decode
        self.weights = tuple(weights) if weights is not None else (1.0,) * horizon

    def steps_at(self, step: int) -> int:
        """Unrolled steps used at DDIM step ``step`` (``step`` steps remain below it)."""
        if self.horizon > step and not self.truncate:
            raise ValueError(f"horizon: {self.horizon} is larger than the {step} remaining steps (truncate=False)")
        return min(self.horizon, step)

    def forward(
        self,
        model: DiffusionModel,
        z: Tensor,
        step: int,
        traj: Sequence[Tensor],
        cond: Tensor,
        null: Tensor,
        w: float,
        eps_cond: Tensor | None = None,
        image: Tensor | None = None,
        region: Tensor | None = None,
    ) -> Tensor:
        """Scalar loss of ``null`` at DDIM step ``step``.

        Args:
            z: ``(B, C, H, W)`` running latent at level ``step``.
            traj: pivot trajectory (``S + 1`` latents).
            cond, null: ``(B or 1, L, D)`` embeddings.
            eps_cond: conditional noise at ``(z, step)`` if already computed (NTI caches it, without grad).
            image: ``(B, 3, H, W)`` source image in [0, 1]; required when ``lambda_geo > 0``.
            region: ``(B, 1, H, W)`` weights of the geometry term (1 = compared), or None for everywhere.
        """
        if self.lambda_geo > 0 and image is None:
            raise ValueError("image: required by the geometry term (lambda_geo > 0)")
        total, zc, x0 = z.new_zeros(()), z, z
        for j in range(self.steps_at(step)):
            s = step - j
            eps_c = eps_cond if j == 0 and eps_cond is not None else None
            if eps_c is None and self.cond_branch == "pivot":
                with torch.no_grad():
                    eps_c = model.eps(traj[s], s, cond)
            if eps_c is None:
                eps = cfg_eps(model, zc, s, cond, null, w)
            else:
                eps_u = model.eps(zc, s, null)
                eps = eps_u + w * (eps_c - eps_u)
            x0 = predict_x0(zc, eps, model.levels[s])
            zc = ddim_step(eps, model.levels[s], model.levels[s - 1], zc)
            total = total + self.weights[j] * F.mse_loss(zc, traj[s - 1])
        if self.lambda_geo > 0:
            decode = self.decode or model.decode
            total = total + self.lambda_geo * self.descriptor(decode(x0), image, region)
        return total


@dataclass
class NullInversion:
    """Result of :func:`optimize_null_embeddings`.

    Attributes:
        nulls: ``S`` optimised null embeddings ``(B, L, D)``; index ``s - 1`` is step ``s``.
        inner_steps: Adam updates used at each step (same indexing).
        final_losses: the last loss evaluated at each step (same indexing).
    """

    nulls: list[Tensor]
    inner_steps: list[int] = field(default_factory=list)
    final_losses: list[float] = field(default_factory=list)


def optimize_null_embeddings(
    model: DiffusionModel,
    traj: Sequence[Tensor],
    cond: Tensor,
    uncond0: Tensor,
    w: float = 7.5,
    inner_steps: int = 10,
    lr: float = 1e-2,
    lr_decay: float = 1e-2,
    early_stop: float = 1e-5,
    early_stop_growth: float = 2e-5,
    loss: GeometricAccumulationLoss | None = None,
    image: Tensor | None = None,
    region: Tensor | None = None,
) -> NullInversion:
    """Null-text inversion (the reference code's schedule), optionally with GEO's loss.

    Args:
        traj: pivot trajectory ``[z*_0, ..., z*_S]`` from :func:`ddim_invert` at ``w = 1``.
        cond: ``(B or 1, L, D)`` source prompt embedding; uncond0: ``(1 or B, L, D)`` initial null embedding.
        w: guidance scale; inner_steps: maximum Adam updates per step (the optimisation budget).
        lr, lr_decay: Adam lr at the ``i``-th step from the noisy end is ``lr * (1 - i * lr_decay)``.
        early_stop, early_stop_growth: stop once the loss < ``early_stop + i * early_stop_growth``.
        loss: default ``GeometricAccumulationLoss()`` (horizon 1, lambda 0: NTI's loss).
        image, region: source image and geometry region for a loss with ``lambda_geo > 0``.
            With a batch, early stopping waits for the whole batch's mean loss.
    """
    check_guidance(w)
    if len(traj) != model.num_steps + 1:
        raise ValueError(f"traj: expected {model.num_steps + 1} latents (S + 1), got {len(traj)}")
    if not isinstance(inner_steps, int) or inner_steps < 1:
        raise ValueError(f"inner_steps: expected a positive int, got {inner_steps!r}")
    if image is not None:
        check_image(image)
    loss = loss if loss is not None else GeometricAccumulationLoss()
    if loss.horizon > model.num_steps:
        raise ValueError(f"horizon: {loss.horizon} is larger than the {model.num_steps} DDIM steps")
    batch = traj[0].shape[0]
    null = uncond0.detach().float().expand(batch, *uncond0.shape[1:]).clone()
    nulls: list[Tensor] = [None] * model.num_steps  # type: ignore[list-item]
    used, finals = [0] * model.num_steps, [0.0] * model.num_steps
    z = traj[-1]
    for i, step in enumerate(range(model.num_steps, 0, -1)):
        null = null.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([null], lr=lr * (1.0 - i * lr_decay))
        with torch.no_grad():
            eps_cond = model.eps(z, step, cond)
        for j in range(inner_steps):
            value = loss(model, z, step, traj, cond, null, w, eps_cond=eps_cond, image=image, region=region)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            used[step - 1], finals[step - 1] = j + 1, float(value.detach())
            if finals[step - 1] < early_stop + i * early_stop_growth:
                break
        nulls[step - 1] = null.detach()
        with torch.no_grad():
            z = denoise_step(model, z, step, cond, nulls[step - 1], w)
    return NullInversion(nulls, used, finals)


def negative_prompt_nulls(model: DiffusionModel, cond: Tensor) -> list[Tensor]:
    """Negative-prompt inversion: the source prompt embedding serves as every step's null embedding."""
    return [cond.detach()] * model.num_steps


@torch.no_grad()
def direct_inversion_offsets(
    model: DiffusionModel, traj: Sequence[Tensor], cond: Tensor, uncond: Tensor | Sequence[Tensor], w: float
) -> list[Tensor]:
    """Direct (PnP) Inversion: ``d_s = z*_{s-1} - DDIMprev(CFG(z*_s))`` along the pivot, for any ``w``.

    Adding ``d_s`` after each guided step (``reconstruct(..., offsets=d)``) lands on the pivot trajectory,
    so reconstruction is exact by construction. Returns ``S`` offsets, index ``s - 1`` for step ``s``.
    """
    check_guidance(w)
    if len(traj) != model.num_steps + 1:
        raise ValueError(f"traj: expected {model.num_steps + 1} latents (S + 1), got {len(traj)}")
    nulls = [uncond] * model.num_steps if isinstance(uncond, Tensor) else list(uncond)
    return [
        traj[step - 1] - denoise_step(model, traj[step], step, cond, nulls[step - 1], w)
        for step in range(1, model.num_steps + 1)
    ]


__all__ = [
    "GeometricAccumulationLoss",
    "NullInversion",
    "direct_inversion_offsets",
    "negative_prompt_nulls",
    "optimize_null_embeddings",
]
