"""Slow, obviously-correct references: the dense rasterizer and two splitting-matrix oracles.

* :func:`rasterize_dense` evaluates every (pixel, Gaussian) pair (memory O(P*N)).
* :func:`closed_form_splitting_matrix` computes S_i = sum_x g_i(x) G_i(x) (C d d^T C - C) from the
  per-pixel gradient g_i(x) = dL/dG_i(x) (retained by the dense rasterizer).
* :func:`autograd_splitting_matrix` takes the block-diagonal Hessian of
  Phi(u) = sum_x stopgrad(g) * G(x; u) with torch.autograd: the definition of S, no algebra involved.
"""

from __future__ import annotations

import torch
from torch import Tensor

from thrifty.steepgs.ops import (
    check_splats,
    composite,
    conic_coefficients,
    conics_from_covs,
    front_to_back,
    pixel_extents,
    pixel_grid,
    splat_alpha,
)


def rasterize_dense(
    means2d: Tensor,
    covs2d: Tensor,
    opacities: Tensor,
    colors: Tensor,
    height: int,
    width: int,
    *,
    mode: str = "alpha",
    depths: Tensor | None = None,
    background: Tensor | None = None,
    sigma_cutoff: float = 3.0,
    clamp_alpha: bool = True,
    probe: Tensor | None = None,
    keep_response: bool = False,
) -> tuple[Tensor, dict]:
    """Render N 2D splats by evaluating all H*W*N pairs.

    Args:
        means2d: (N, 2) centres in pixels (x, y). covs2d: (N, 2, 2). opacities: (N,). colors: (N, C).
        height, width: image size. mode: "additive" or "alpha". depths: (N,) sort keys for "alpha".
        background: (C,), zeros by default. sigma_cutoff: box half-width in standard deviations.
        clamp_alpha: the 3DGS alpha rules. probe: optional (N,) zeros whose grad is sum_x dL/dG.
        keep_response: also return the (P, N) response G (with retain_grad) for the closed-form S.
    Returns:
        image (H, W, C) and aux dict (``order``, and ``response`` if requested).
    """
    check_splats(means2d, covs2d, opacities, colors, mode, depths)
    bg = background if background is not None else colors.new_zeros(colors.shape[1])
    order = front_to_back(means2d.shape[0], depths, mode, means2d.device)
    pix = pixel_grid(height, width, means2d)[:, None, :]
    conics = conics_from_covs(covs2d)
    extents = pixel_extents(covs2d, sigma_cutoff)
    aux: dict = {"order": order}
    if keep_response:
        # Explicit G with retain_grad so tests can read g(x) = dL/dG(x) per pixel.
        d = pix - means2d[order][None]
        c = conics[order][None]
        quad = (
            c[..., 0, 0] * d[..., 0] ** 2
            + (c[..., 0, 1] + c[..., 1, 0]) * d[..., 0] * d[..., 1]
            + c[..., 1, 1] * d[..., 1] ** 2
        )
        response = torch.exp(-0.5 * quad)
        response.retain_grad()
        ext = extents[order][None]
        inside = (d[..., 0].abs() <= ext[..., 0]) & (d[..., 1].abs() <= ext[..., 1])
        alpha = opacities[order][None] * response * inside
        aux.update(response=response, pixels=pix[:, 0], inside=inside)
    else:
        alpha = splat_alpha(
            pix,
            means2d[order][None],
            conic_coefficients(conics)[order][None],
            opacities[order][None],
            extents[order][None],
            clamp_alpha,
            None if probe is None else probe[order][None],
        )
    image = composite(alpha, colors[order], mode, bg)
    return image.reshape(height, width, -1), aux


def closed_form_splitting_matrix(means2d: Tensor, covs2d: Tensor, aux: dict) -> Tensor:
    """S_i = sum_x g_i(x) G_i(x) (C_i d d^T C_i - C_i), d = x - u_i; needs ``keep_response`` + backward.

    Returns:
        (N, 2, 2) splitting matrices in the caller's (unsorted) Gaussian order.
    """
    response, order, pix = aux["response"], aux["order"], aux["pixels"]
    if response.grad is None:
        raise ValueError("aux['response']: expected a gradient; call backward() before this")
    conics = conics_from_covs(covs2d.detach())[order]
    d = pix[:, None, :] - means2d.detach()[order][None]  # (P, N, 2)
    cd = torch.einsum("nij,pnj->pni", conics, d)
    weight = response.grad * response.detach() * aux["inside"]  # (P, N)
    outer = torch.einsum("pn,pni,pnj->nij", weight, cd, cd)
    s_sorted = outer - weight.sum(0)[:, None, None] * conics
    out = torch.empty_like(s_sorted)
    out[order] = s_sorted
    return out


def autograd_splitting_matrix(means2d: Tensor, covs2d: Tensor, aux: dict) -> Tensor:
    """S from torch.autograd.functional.hessian of Phi(u) = sum_x stopgrad(g) G(x; u) (tiny N only).

    Returns:
        (N, 2, 2): the diagonal 2x2 blocks of the (2N, 2N) Hessian (Phi separates by Gaussian).
    """
    response, order, pix, inside = aux["response"], aux["order"], aux["pixels"], aux["inside"]
    g = (response.grad * inside).detach()
    conics = conics_from_covs(covs2d.detach())[order]
    n = means2d.shape[0]

    def phi(flat_means: Tensor) -> Tensor:
        d = pix[:, None, :] - flat_means.reshape(n, 2)[order][None]
        quad = torch.einsum("pni,nij,pnj->pn", d, conics, d)
        return (g * torch.exp(-0.5 * quad)).sum()

    hess = torch.autograd.functional.hessian(phi, means2d.detach().reshape(-1))
    blocks = hess.reshape(n, 2, n, 2)
    idx = torch.arange(n, device=means2d.device)
    return blocks[idx, :, idx, :]
