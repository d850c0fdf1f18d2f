"""Shared Gaussian-splatting math: covariances, conics, per-pixel alpha and compositing.

Both renderers (the dense reference in :mod:`reference` and the tiled path in :mod:`render`) evaluate
pixels through exactly these functions, so they differ only in which (pixel, Gaussian) pairs they visit.
Pixel centres sit at integer + 0.5 (the gsplat convention).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
MODES = ("additive", "alpha")


def check_finite(name: str, tensor: Tensor) -> None:
    """Raise ValueError if ``tensor`` holds NaN or inf."""
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")


def check_rows(name: str, tensor: Tensor, n: int, tail: tuple[int, ...]) -> None:
    """Raise ValueError unless ``tensor`` has shape (n, *tail)."""
    if tuple(tensor.shape) != (n, *tail):
        raise ValueError(f"{name}: expected shape {(n, *tail)}, got {tuple(tensor.shape)}")


def rotation_2d(angles: Tensor) -> Tensor:
    """Rotation matrices (N, 2, 2) from angles (N,) in radians."""
    c, s = torch.cos(angles), torch.sin(angles)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rotation_from_quats(quats: Tensor) -> Tensor:
    """Rotation matrices (N, 3, 3) from quaternions (N, 4) in (w, x, y, z) order (normalised here)."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


def covariance(rotations: Tensor, log_scales: Tensor) -> Tensor:
    """Covariances R diag(s^2) R^T (N, d, d) from rotations (N, d, d) and log-scales (N, d)."""
    m = rotations * torch.exp(log_scales)[..., None, :]
    return m @ m.transpose(-1, -2)


def conics_from_covs(covs: Tensor) -> Tensor:
    """Closed-form inverses (N, 2, 2) of 2x2 covariances (N, 2, 2).

    All four entries are used separately, so autograd returns the symmetric dL/dSigma = -C (dL/dC) C that
    the splitting-matrix identity needs.
    """
    a, b, c, d = covs[:, 0, 0], covs[:, 0, 1], covs[:, 1, 0], covs[:, 1, 1]
    det = a * d - b * c
    if (det <= 0).any():
        raise ValueError("covs2d: expected positive-definite 2x2 covariances (det > 0)")
    return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[:, None, None]


def pixel_extents(covs: Tensor, sigma_cutoff: float) -> Tensor:
    """Half-widths (N, 2) of each Gaussian's axis-aligned box: sigma_cutoff * sqrt(diag(Sigma))."""
    diag = torch.diagonal(covs.detach(), dim1=-2, dim2=-1)
    return sigma_cutoff * diag.clamp_min(0).sqrt()


def conic_coefficients(conics: Tensor) -> Tensor:
    """(N, 3) quadratic-form coefficients (C00, C01 + C10, C11) of conics (N, 2, 2)."""
    return torch.stack([conics[:, 0, 0], conics[:, 0, 1] + conics[:, 1, 0], conics[:, 1, 1]], -1)


def splat_alpha(
    pixels: Tensor,
    means: Tensor,
    coeffs: Tensor,
    opacities: Tensor,
    extents: Tensor,
    clamp_alpha: bool,
    probe: Tensor | None = None,
) -> Tensor:
    """Per-pixel opacity alpha = o * G * box for every (pixel, Gaussian) pair of a batch.

    Args:
        pixels: (..., P, 1, 2) pixel centres.
        means, extents: (..., 1, K, 2) Gaussian centres and box half-widths.
        coeffs: (..., 1, K, 3) from :func:`conic_coefficients`.
        opacities: (..., 1, K).
        clamp_alpha: apply the 3DGS rules (alpha <= 0.99, alpha < 1/255 -> 0). Off for gradchecks.
        probe: optional (..., 1, K) zero tensor added to G; its gradient is sum_x dL/dG (the repo proxy).
    Returns:
        alpha of shape (..., P, K).
    """
    dx = pixels[..., 0] - means[..., 0]
    dy = pixels[..., 1] - means[..., 1]
    quad = dx * (coeffs[..., 0] * dx + coeffs[..., 1] * dy) + coeffs[..., 2] * (dy * dy)
    response = torch.exp(-0.5 * quad)
    if probe is not None:
        response = response + probe
    inside = (dx.detach().abs() <= extents[..., 0]) & (dy.detach().abs() <= extents[..., 1])
    alpha = opacities * response
    if clamp_alpha:
        alpha = alpha.clamp(max=ALPHA_MAX)
        inside = inside & (alpha.detach() >= ALPHA_MIN)
    return torch.where(inside, alpha, 0.0)


def composite(alpha: Tensor, colors: Tensor, mode: str, background: Tensor) -> Tensor:
    """Blend Gaussians along the last axis of ``alpha`` (already in front-to-back order).

    Args:
        alpha: (..., P, K).
        colors: (..., K, C).
        mode: "additive" (sum alpha * c) or "alpha" (front-to-back: sum alpha * T * c + T_K * bg).
        background: (C,).
    Returns:
        (..., P, C) pixel colours.
    """
    if mode == "additive":
        return alpha @ colors + background
    transmit = torch.cumprod(1.0 - alpha, dim=-1)
    before = torch.cat([torch.ones_like(alpha[..., :1]), transmit[..., :-1]], dim=-1)
    return (alpha * before) @ colors + transmit[..., -1:] * background


def pixel_grid(height: int, width: int, like: Tensor) -> Tensor:
    """Pixel centres (H*W, 2) as (x, y) = (col + 0.5, row + 0.5), row-major."""
    ys = torch.arange(height, device=like.device, dtype=like.dtype) + 0.5
    xs = torch.arange(width, device=like.device, dtype=like.dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)


def focal_from_fov(fov_deg: float, size: int) -> float:
    """Pinhole focal length in pixels for a field of view in degrees across ``size`` pixels."""
    return 0.5 * size / math.tan(math.radians(fov_deg) / 2)


def check_splats(
    means2d: Tensor, covs2d: Tensor, opacities: Tensor, colors: Tensor, mode: str, depths: Tensor | None
) -> None:
    """Validate the inputs shared by both rasterizers (clear ValueError naming the argument)."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if means2d.dim() != 2 or means2d.shape[1] != 2:
        raise ValueError(f"means2d: expected shape (N, 2), got {tuple(means2d.shape)}")
    n = means2d.shape[0]
    check_rows("covs2d", covs2d, n, (2, 2))
    check_rows("opacities", opacities, n, ())
    if colors.dim() != 2 or colors.shape[0] != n:
        raise ValueError(f"colors: expected shape ({n}, C), got {tuple(colors.shape)}")
    if depths is not None:
        check_rows("depths", depths, n, ())
    for name, tensor in (("means2d", means2d), ("covs2d", covs2d), ("opacities", opacities), ("colors", colors)):
        check_finite(name, tensor)


def front_to_back(n: int, depths: Tensor | None, mode: str, device: torch.device) -> Tensor:
    """Order (N,) in which Gaussians are blended: by increasing depth for "alpha", identity otherwise."""
    if mode == "alpha" and depths is not None:
        return torch.argsort(depths.detach(), stable=True)
    return torch.arange(n, device=device)
