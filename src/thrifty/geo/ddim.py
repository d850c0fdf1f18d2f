"""Deterministic DDIM (eta = 0) in both directions, classifier-free guidance, and a model adapter.

One timestep convention, pinned and tested against diffusers' ``DDIMScheduler.step`` and
``DDIMInverseScheduler.step`` (the convention of prompt-to-prompt and of diffusers after PR #5145):

* ``S`` DDIM steps have ascending timesteps ``tau_1 < ... < tau_S`` (the scheduler's list, reversed), and
  ``S + 1`` noise *levels* with ``alpha_bar`` values ``levels[0] = final_alpha_cumprod`` and
  ``levels[s] = alphas_cumprod[tau_s]``.
* Step ``s`` (1-based) joins level ``s - 1`` and level ``s``; the UNet is always evaluated at timestep
  ``tau_s``. Inverting evaluates it on the less noisy latent ``z_{s-1}`` (the standard approximation
  ``eps(z_{s-1}, tau_s) ~ eps(z_s, tau_s)``); denoising evaluates it on ``z_s``.
* Per-step lists (null embeddings, Direct Inversion offsets) have length ``S`` and hold step ``s`` at
  index ``s - 1``; a trajectory has length ``S + 1`` and holds level ``s`` at index ``s``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn


def ddim_step(eps: Tensor, alpha_from: Tensor | float, alpha_to: Tensor | float, z: Tensor) -> Tensor:
    """One deterministic DDIM move of ``z`` from noise level ``alpha_from`` to ``alpha_to`` (either direction).

    ``x0 = (z - sqrt(1 - a_from) eps) / sqrt(a_from)``; returns ``sqrt(a_to) x0 + sqrt(1 - a_to) eps``.

    Args:
        eps: ``(B, C, H, W)`` predicted noise.
        alpha_from, alpha_to: cumulative ``alpha_bar`` of the source and destination levels.
        z: ``(B, C, H, W)`` latent at level ``alpha_from``.
    """
    alpha_from = torch.as_tensor(alpha_from, dtype=z.dtype, device=z.device)
    alpha_to = torch.as_tensor(alpha_to, dtype=z.dtype, device=z.device)
    x0 = predict_x0(z, eps, alpha_from)
    return alpha_to.sqrt() * x0 + (1 - alpha_to).sqrt() * eps


def predict_x0(z: Tensor, eps: Tensor, alpha: Tensor | float) -> Tensor:
    """The clean latent predicted from ``z`` at level ``alpha``: ``(z - sqrt(1 - a) eps) / sqrt(a)``."""
    alpha = torch.as_tensor(alpha, dtype=z.dtype, device=z.device)
    return (z - (1 - alpha).sqrt() * eps) / alpha.sqrt()


def _sample_of(out: Any) -> Tensor:
    """The tensor of a diffusers model output (``.sample``), a tuple, or a plain tensor."""
    if isinstance(out, Tensor):
        return out
    if hasattr(out, "sample"):
        return out.sample
    return out[0]


class DiffusionModel:
    """An epsilon-prediction UNet, its DDIM noise levels and (for latent models) a VAE.

    Works unchanged with Stable Diffusion's components (``UNet2DConditionModel``, ``DDIMScheduler``,
    ``AutoencoderKL``) and with pixel-space models (``vae=None``: ``z = 2 * image - 1``).

    Args:
        unet: called as ``unet(z, t, encoder_hidden_states=emb)``; returns a tensor or a ``.sample`` output.
        scheduler: a diffusers DDIM scheduler (``DDIMScheduler`` or ``DDIMInverseScheduler``); it is
            copied from its config, so the caller's instance is not mutated.
        num_steps: DDIM steps ``S``.
        vae: optional ``AutoencoderKL``; images are encoded to the latent mean times ``scaling_factor``.
        scaling_factor: latent scale (defaults to ``vae.config.scaling_factor``).

    Raises:
        ValueError: the scheduler predicts anything but epsilon, or its timesteps are not uniformly spaced.
    """

    def __init__(
        self,
        unet: nn.Module,
        scheduler: Any,
        num_steps: int,
        vae: nn.Module | None = None,
        scaling_factor: float | None = None,
    ) -> None:
        config = scheduler.config
        prediction = config.get("prediction_type", "epsilon")
        if prediction != "epsilon":
            raise ValueError(f"scheduler: expected prediction_type 'epsilon' (inversion needs it), got {prediction!r}")
        if not isinstance(num_steps, int) or not 1 <= num_steps <= config.num_train_timesteps:
            raise ValueError(f"num_steps: expected an int in 1..{config.num_train_timesteps}, got {num_steps!r}")
        sched = type(scheduler).from_config(config)
        sched.set_timesteps(num_steps)
        ascending = sched.timesteps.flip(0) if sched.timesteps[0] > sched.timesteps[-1] else sched.timesteps
        ratio = config.num_train_timesteps // num_steps
        if num_steps > 1 and not bool((ascending.diff() == ratio).all()):
            raise ValueError(f"scheduler: expected timesteps spaced by {ratio}, got {ascending.tolist()}")
        final = getattr(sched, "final_alpha_cumprod", getattr(sched, "initial_alpha_cumprod", None))
        if final is None:
            raise ValueError("scheduler: expected a DDIM scheduler with final_alpha_cumprod or initial_alpha_cumprod")
        self.unet, self.vae, self.num_steps = unet, vae, num_steps
        self.scaling_factor = float(scaling_factor or (vae.config.scaling_factor if vae is not None else 1.0))
        self.timesteps = ascending.long()
        self.levels = torch.cat([torch.as_tensor(final).reshape(1), sched.alphas_cumprod[ascending]]).float()

    def eps(self, z: Tensor, step: int, emb: Tensor) -> Tensor:
        """``eps_theta(z, tau_step, emb)``; ``z`` ``(B, C, H, W)``, ``emb`` ``(B or 1, L, D)`` broadcast to ``B``."""
        emb = emb.expand(z.shape[0], *emb.shape[1:]) if emb.shape[0] == 1 else emb
        t = self.timesteps[step - 1].to(z.device)
        return _sample_of(self.unet(z, t, encoder_hidden_states=emb))

    def encode(self, image: Tensor) -> Tensor:
        """``(B, 3, H, W)`` image in [0, 1] -> latent ``z_0``."""
        check_image(image)
        x = image * 2 - 1
        if self.vae is None:
            return x
        return self.vae.encode(x).latent_dist.mean * self.scaling_factor

    def decode(self, z: Tensor) -> Tensor:
        """Latent -> image in (about) [0, 1]; differentiable (used inside the geometry loss)."""
        x = z if self.vae is None else _sample_of(self.vae.decode(z / self.scaling_factor))
        return (x + 1) / 2


def check_image(image: Tensor, name: str = "image") -> None:
    """Raise ``ValueError`` unless ``image`` is a float ``(B, 3, H, W)`` tensor with values in [0, 1]."""
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[1] != 3 or not image.is_floating_point():
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"{name}: expected a float tensor of shape (B, 3, H, W), got {shape}")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name}: expected values in [0, 1], got [{lo:.3g}, {hi:.3g}]")


def check_guidance(w: float) -> None:
    """Raise ``ValueError`` unless the guidance scale is at least 1."""
    if not w >= 1:
        raise ValueError(f"w: expected a guidance scale >= 1, got {w}")


def cfg_eps(model: DiffusionModel, z: Tensor, step: int, cond: Tensor, uncond: Tensor | None, w: float) -> Tensor:
    """Classifier-free guided noise ``eps_u + w (eps_c - eps_u)`` at step ``step``, one batched UNet call.

    At ``w = 1`` with ``uncond=None`` only the conditional branch runs. With an ``uncond`` at ``w = 1`` the
    result equals ``eps_c`` and ``uncond`` gets an exactly zero gradient.

    Args:
        z: ``(B, C, H, W)``; cond, uncond: ``(B or 1, L, D)`` embeddings.
    """
    if uncond is None:
        if w != 1:
            raise ValueError(f"uncond: required when w != 1 (got w={w})")
        return model.eps(z, step, cond)
    batch = z.shape[0]
    embs = torch.cat([uncond.expand(batch, *uncond.shape[1:]), cond.expand(batch, *cond.shape[1:])])
    eps_u, eps_c = model.eps(torch.cat([z, z]), step, embs).chunk(2)
    return eps_u + w * (eps_c - eps_u)


def denoise_step(model: DiffusionModel, z: Tensor, step: int, cond: Tensor, uncond: Tensor | None, w: float) -> Tensor:
    """``z_{step-1}`` from ``z_step`` with guided noise at ``tau_step``."""
    eps = cfg_eps(model, z, step, cond, uncond, w)
    return ddim_step(eps, model.levels[step], model.levels[step - 1], z)


@torch.no_grad()
def ddim_invert(
    model: DiffusionModel, z0: Tensor, cond: Tensor, uncond: Tensor | None = None, w: float = 1.0
) -> list[Tensor]:
    """The DDIM inversion (pivot) trajectory ``[z_0, z_1, ..., z_S]`` (eta = 0, eps at the destination step).

    Args:
        z0: ``(B, C, H, W)`` clean latent; cond/uncond: ``(B or 1, L, D)``; w: guidance (1 = text only).
    """
    check_guidance(w)
    z0 = z0.detach()
    traj, z = [z0], z0
    for step in range(1, model.num_steps + 1):
        eps = cfg_eps(model, z, step, cond, uncond, w)
        z = ddim_step(eps, model.levels[step - 1], model.levels[step], z)
        traj.append(z)
    return traj


def _per_step(value: Tensor | Sequence[Tensor] | None, num_steps: int, name: str) -> list[Tensor | None]:
    if value is None or isinstance(value, Tensor):
        return [value] * num_steps
    if len(value) != num_steps:
        raise ValueError(f"{name}: expected one tensor per DDIM step ({num_steps}), got {len(value)}")
    return list(value)


def reconstruct(
    model: DiffusionModel,
    zT: Tensor,
    cond: Tensor,
    uncond: Tensor | Sequence[Tensor] | None,
    w: float,
    offsets: Sequence[Tensor] | None = None,
    guidance_fn: Callable[[Tensor, int], Tensor] | None = None,
) -> Tensor:
    """Denoise ``zT`` (level ``S``) to ``z_0`` with guided DDIM.

    Args:
        zT: ``(B, C, H, W)``.
        cond: ``(B or 1, L, D)``.
        uncond: one null embedding, or one per step (index ``s - 1`` for step ``s``, as NTI returns them).
        w: guidance scale (>= 1).
        offsets: Direct Inversion offsets (index ``s - 1``), added after each step.
        guidance_fn: ``guidance_fn(z, step) -> z`` applied before each step (geometry guidance).

    Returns:
        ``(B, C, H, W)`` latent ``z_0`` (decode it with ``model.decode``).
    """
    check_guidance(w)
    nulls = _per_step(uncond, model.num_steps, "uncond")
    adds = _per_step(offsets, model.num_steps, "offsets")
    z = zT
    for step in range(model.num_steps, 0, -1):
        if guidance_fn is not None:
            z = guidance_fn(z, step)
        with torch.no_grad():
            z = denoise_step(model, z, step, cond, nulls[step - 1], w)
        if adds[step - 1] is not None:
            z = z + adds[step - 1]
    return z


__all__ = [
    "DiffusionModel",
    "cfg_eps",
    "check_guidance",
    "check_image",
    "ddim_invert",
    "ddim_step",
    "denoise_step",
    "predict_x0",
    "reconstruct",
]
