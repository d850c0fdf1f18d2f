"""Slow, obviously-correct references the tests compare the library against.

* :func:`reference_ddim_invert` / :func:`reference_reconstruct`: loops over diffusers' own
  ``DDIMInverseScheduler.step`` / ``DDIMScheduler.step``.
* :func:`reference_null_text_inversion`: NTI written the way the prompt-to-prompt notebook writes it
  (separate UNet calls per branch, the scheduler's ``step`` as ``prev_step``).
* :func:`reference_descriptor`: the geometry descriptor with explicit per-pixel loops (float64-friendly).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.optional import require
from thrifty.geo.ddim import _sample_of


def _unet_eps(unet: nn.Module, z: Tensor, t: Tensor, emb: Tensor) -> Tensor:
    return _sample_of(unet(z, t, encoder_hidden_states=emb.expand(z.shape[0], *emb.shape[1:])))


@torch.no_grad()
def reference_ddim_invert(unet: nn.Module, scheduler_config: dict, num_steps: int, z0: Tensor, cond: Tensor):
    """Text-only DDIM inversion with ``DDIMInverseScheduler.step``: ``[z_0, ..., z_S]``."""
    diffusers = require("diffusers")
    sched = diffusers.DDIMInverseScheduler.from_config(scheduler_config)
    sched.set_timesteps(num_steps)
    traj, z = [z0], z0
    for t in sched.timesteps:
        z = sched.step(_unet_eps(unet, z, t, cond), t, z).prev_sample
        traj.append(z)
    return traj


@torch.no_grad()
def reference_reconstruct(
    unet: nn.Module, scheduler_config: dict, num_steps: int, zT: Tensor, cond: Tensor, nulls: list[Tensor], w: float
) -> Tensor:
    """Guided DDIM sampling with ``DDIMScheduler.step(eta=0)``; ``nulls[s - 1]`` is step ``s``'s null."""
    diffusers = require("diffusers")
    sched = diffusers.DDIMScheduler.from_config(scheduler_config)
    sched.set_timesteps(num_steps)
    z = zT
    for i, t in enumerate(sched.timesteps):
        eps_u = _unet_eps(unet, z, t, nulls[num_steps - 1 - i])
        eps_c = _unet_eps(unet, z, t, cond)
        z = sched.step(eps_u + w * (eps_c - eps_u), t, z, eta=0.0).prev_sample
    return z


def reference_null_text_inversion(
    unet: nn.Module,
    scheduler_config: dict,
    num_steps: int,
    latents: list[Tensor],
    cond: Tensor,
    uncond: Tensor,
    w: float,
    num_inner_steps: int = 10,
    epsilon: float = 1e-5,
) -> list[Tensor]:
    """NTI as in the prompt-to-prompt notebook; returns nulls indexed ``s - 1`` for step ``s``."""
    diffusers = require("diffusers")
    sched = diffusers.DDIMScheduler.from_config(scheduler_config)
    sched.set_timesteps(num_steps)
    out: list[Tensor] = []
    latent_cur = latents[-1]
    for i in range(num_steps):
        uncond = uncond.clone().detach().requires_grad_(True)
        optimizer = torch.optim.Adam([uncond], lr=1e-2 * (1.0 - i / 100.0))
        latent_prev = latents[len(latents) - i - 2]
        t = sched.timesteps[i]
        with torch.no_grad():
            noise_pred_cond = _unet_eps(unet, latent_cur, t, cond)
        for _ in range(num_inner_steps):
            noise_pred_uncond = _unet_eps(unet, latent_cur, t, uncond)
            noise_pred = noise_pred_uncond + w * (noise_pred_cond - noise_pred_uncond)
            loss = F.mse_loss(sched.step(noise_pred, t, latent_cur, eta=0.0).prev_sample, latent_prev)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if loss.item() < epsilon + i * 2e-5:
                break
        out.append(uncond.detach())
        with torch.no_grad():
            eps_u, eps_c = _unet_eps(unet, latent_cur, t, uncond), _unet_eps(unet, latent_cur, t, cond)
            latent_cur = sched.step(eps_u + w * (eps_c - eps_u), t, latent_cur, eta=0.0).prev_sample
    return out[::-1]


def _gauss(sigma: float) -> list[float]:
    radius = max(1, math.ceil(2 * sigma))
    vals = [math.exp(-(x**2) / (2 * sigma**2)) for x in range(-radius, radius + 1)]
    return [v / sum(vals) for v in vals]


def reference_descriptor(x: Tensor, sigma: float) -> Tensor:
    """Sobel x, Sobel y and a Gaussian low-pass with replicate borders, by explicit loops: ``(B, 3C, H, W)``."""
    b, c, h, w = x.shape
    at = lambda img, i, j: img[min(max(i, 0), h - 1)][min(max(j, 0), w - 1)]  # noqa: E731
    kernel = _gauss(sigma)
    r = len(kernel) // 2
    planes_gx, planes_gy, planes_lp = [], [], []
    for bi in range(b):
        for ci in range(c):
            img = x[bi, ci]
            gx = [
                [
                    sum(at(img, i + di, j + 1) - at(img, i + di, j - 1) for di in (-1, 1))
                    + 2 * (at(img, i, j + 1) - at(img, i, j - 1))
                    for j in range(w)
                ]
                for i in range(h)
            ]
            gy = [
                [
                    sum(at(img, i + 1, j + dj) - at(img, i - 1, j + dj) for dj in (-1, 1))
                    + 2 * (at(img, i + 1, j) - at(img, i - 1, j))
                    for j in range(w)
                ]
                for i in range(h)
            ]
            lp = [
                [
                    sum(
                        kernel[a + r] * kernel[q + r] * at(img, i + a, j + q)
                        for a in range(-r, r + 1)
                        for q in range(-r, r + 1)
                    )
                    for j in range(w)
                ]
                for i in range(h)
            ]
            planes_gx.append(torch.stack([torch.stack(row) for row in gx]))
            planes_gy.append(torch.stack([torch.stack(row) for row in gy]))
            planes_lp.append(torch.stack([torch.stack(row) for row in lp]))
    shape = (b, c, h, w)
    return torch.cat([torch.stack(p).view(shape) for p in (planes_gx, planes_gy, planes_lp)], dim=1)


__all__ = ["reference_ddim_invert", "reference_descriptor", "reference_null_text_inversion", "reference_reconstruct"]
