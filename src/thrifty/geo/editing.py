"""GEO's boosted image prompt edit **[reconstruction]** and latent geometry guidance.

Assumptions (GEO's procedure is described only in words; each is a choice of this reconstruction):
1. The user's pixel edit (brush strokes, a pasted patch, SDEdit) gives the edited image ``I'``.
2. ``I'`` is inverted text-only (``w = 1``) under the target prompt ``P*``, giving ``z'_T``.
3. The original ``I`` is inverted with GEO's loss (or NTI's), giving per-step null embeddings.
4. ``z'_T`` is denoised with standard CFG under ``P*`` using those nulls, and before every step the
   latent moves down the gradient of the geometry distance of its decoded prediction to ``I``:
   ``z <- z - eta * grad_z G(D(x0_hat(z)), I)``, restricted to outside the edited region when a mask is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thrifty.geo.ddim import DiffusionModel, cfg_eps, check_guidance, check_image, ddim_invert, predict_x0, reconstruct
from thrifty.geo.geometry import GeometryDescriptor
from thrifty.geo.inversion import GeometricAccumulationLoss, optimize_null_embeddings


def geometry_guidance(
    model: DiffusionModel,
    image: Tensor,
    cond: Tensor,
    nulls: Sequence[Tensor],
    w: float,
    eta: float,
    descriptor: nn.Module | None = None,
    region: Tensor | None = None,
) -> Callable[[Tensor, int], Tensor]:
    """``guidance_fn(z, step)`` for :func:`reconstruct`: ``z - eta * grad_z G(D(x0_hat(z)), image)``.

    Costs one guided UNet forward and backward per step. ``region`` ``(B, 1, H, W)`` weights the geometry
    distance (1 = compared).
    """
    descriptor = descriptor if descriptor is not None else GeometryDescriptor()

    def guide(z: Tensor, step: int) -> Tensor:
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            eps = cfg_eps(model, zg, step, cond, nulls[step - 1], w)
            x0 = predict_x0(zg, eps, model.levels[step])
            (grad,) = torch.autograd.grad(descriptor(model.decode(x0), image, region), zg)
        return z - eta * grad

    return guide


@dataclass
class EditResult:
    """Output of :func:`boosted_image_prompt_edit`: the edited image ``(B, 3, H, W)`` and the nulls used."""

    image: Tensor
    nulls: list[Tensor]


def boosted_image_prompt_edit(
    model: DiffusionModel,
    image: Tensor,
    edited_image: Tensor,
    src_cond: Tensor,
    tgt_cond: Tensor,
    uncond: Tensor,
    w: float = 7.5,
    mask: Tensor | None = None,
    eta_geo: float = 0.1,
    loss: GeometricAccumulationLoss | None = None,
    inner_steps: int = 10,
) -> EditResult:
    """Boosted image prompt edit **[reconstruction]**; see the module docstring for the four steps.

    Args:
        image: ``(B, 3, H, W)`` original image in [0, 1]; edited_image: the pixel-edited ``I'``, same shape.
        src_cond, tgt_cond: ``(B or 1, L, D)`` source and target prompt embeddings; uncond: initial null.
        w: guidance scale (>= 1).
        mask: ``(B, 1, H, W)`` in [0, 1], 1 inside the edited region; geometry guidance acts outside it.
        eta_geo: geometry guidance step size (0 turns it off).
        loss: the inversion loss (default NTI's); inner_steps: Adam updates per step.
    """
    _check_edit_inputs(image, edited_image, w, mask, eta_geo)
    inversion = optimize_null_embeddings(
        model, _pivot(model, image, src_cond), src_cond, uncond, w, inner_steps=inner_steps, loss=loss, image=image
    )
    edited = guided_edit(model, image, edited_image, tgt_cond, inversion.nulls, w, mask=mask, eta_geo=eta_geo)
    return EditResult(edited, inversion.nulls)


def _pivot(model: DiffusionModel, image: Tensor, cond: Tensor) -> list[Tensor]:
    with torch.no_grad():
        return ddim_invert(model, model.encode(image), cond)


def guided_edit(
    model: DiffusionModel,
    image: Tensor,
    edited_image: Tensor,
    tgt_cond: Tensor,
    nulls: Sequence[Tensor],
    w: float = 7.5,
    mask: Tensor | None = None,
    eta_geo: float = 0.1,
) -> Tensor:
    """Steps 2 and 4 of the boosted image prompt edit **[reconstruction]**, given nulls from inverting ``image``.

    Lets a caller reuse one NTI/GEO inversion for both a prompt-swap edit and this edit.

    Args:
        image, edited_image: ``(B, 3, H, W)`` in [0, 1]; mask: ``(B, 1, H, W)``, 1 inside the edited region.
        tgt_cond: ``(B or 1, L, D)`` target prompt embedding; nulls: ``S`` per-step nulls (index ``s - 1``).
        w: guidance scale; eta_geo: geometry guidance step size (0 = off).

    Returns:
        ``(B, 3, H, W)`` edited image in [0, 1].
    """
    _check_edit_inputs(image, edited_image, w, mask, eta_geo)
    z_edit_T = _pivot(model, edited_image, tgt_cond)[-1]
    region = None if mask is None else 1 - mask
    guide = None
    if eta_geo > 0:
        guide = geometry_guidance(model, image, tgt_cond, nulls, w, eta_geo, region=region)
    z0 = reconstruct(model, z_edit_T, tgt_cond, nulls, w, guidance_fn=guide)
    with torch.no_grad():
        return model.decode(z0).clamp(0, 1)


def _check_edit_inputs(image: Tensor, edited_image: Tensor, w: float, mask: Tensor | None, eta_geo: float) -> None:
    check_image(image)
    check_image(edited_image, "edited_image")
    check_guidance(w)
    if edited_image.shape != image.shape:
        raise ValueError(f"edited_image: expected shape {tuple(image.shape)}, got {tuple(edited_image.shape)}")
    if mask is not None and (mask.shape != (image.shape[0], 1, *image.shape[2:])):
        raise ValueError(f"mask: expected shape {(image.shape[0], 1, *image.shape[2:])}, got {tuple(mask.shape)}")
    if eta_geo < 0:
        raise ValueError(f"eta_geo: expected a non-negative step size, got {eta_geo}")


def paste_patch(image: Tensor, donor: Tensor, fraction: float = 0.5) -> tuple[Tensor, Tensor]:
    """A pixel edit for the reproduction: paste the central square of ``donor`` into ``image``.

    Stands in for a user's brush/paste edit (step 1) **[reconstruction]**: the square has side
    ``round(fraction * min(H, W))`` (at least 1 pixel), centred.

    Args:
        image, donor: ``(B, 3, H, W)`` in [0, 1]; fraction: side of the square over the image side, in (0, 1].

    Returns:
        ``(edited, mask)``: ``(B, 3, H, W)`` image and ``(B, 1, H, W)`` mask, 1 inside the pasted square.
    """
    check_image(image)
    check_image(donor, "donor")
    if donor.shape != image.shape:
        raise ValueError(f"donor: expected shape {tuple(image.shape)}, got {tuple(donor.shape)}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected a value in (0, 1], got {fraction}")
    height, width = image.shape[2:]
    side = max(1, round(fraction * min(height, width)))
    top, left = (height - side) // 2, (width - side) // 2
    mask = image.new_zeros(image.shape[0], 1, height, width)
    mask[:, :, top : top + side, left : left + side] = 1
    return image * (1 - mask) + donor * mask, mask


__all__ = ["EditResult", "boosted_image_prompt_edit", "geometry_guidance", "guided_edit", "paste_patch"]
