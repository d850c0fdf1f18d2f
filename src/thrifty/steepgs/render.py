"""Differentiable Gaussian rendering in pure PyTorch: tiled 2D rasterizer, 2D and 3D front-ends.

The tiled path buckets Gaussians into tile_size x tile_size tiles by their sigma_cutoff boxes, pads
each tile's list to the longest one, and composites tile by tile; it visits a subset of the pairs the
dense reference (:func:`thrifty.steepgs.reference.rasterize_dense`) visits and the skipped pairs have
alpha exactly 0, so both paths agree to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from thrifty.steepgs.ops import (
    check_finite,
    check_rows,
    check_splats,
    composite,
    conic_coefficients,
    conics_from_covs,
    covariance,
    front_to_back,
    pixel_extents,
    rotation_2d,
    splat_alpha,
)
from thrifty.steepgs.reference import rasterize_dense


def _tile_lists(
    means2d: Tensor, extents: Tensor, live: Tensor, order: Tensor, height: int, width: int, tile: int
) -> tuple[Tensor, int, int]:
    """Per-tile Gaussian index lists (n_tiles, K), padded with N, each in blending order."""
    n = means2d.shape[0]
    tiles_x, tiles_y = -(-width // tile), -(-height // tile)
    mu = means2d.detach()
    lo = torch.floor((mu - extents - 0.5) / tile).long()
    hi = torch.floor((mu + extents - 0.5) / tile).long()
    lo[:, 0].clamp_(min=0)
    lo[:, 1].clamp_(min=0)
    hi[:, 0].clamp_(max=tiles_x - 1)
    hi[:, 1].clamp_(max=tiles_y - 1)
    span = (hi - lo + 1).clamp_min(0)
    counts = span[:, 0] * span[:, 1] * live
    gid = torch.repeat_interleave(torch.arange(n, device=mu.device), counts)
    if gid.numel() == 0:
        return torch.full((tiles_x * tiles_y, 1), n, device=mu.device), tiles_x, tiles_y
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(gid.numel(), device=mu.device) - first[gid]
    tx = lo[gid, 0] + local % span[gid, 0]
    ty = lo[gid, 1] + local // span[gid, 0]
    tile_id = ty * tiles_x + tx
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=mu.device)
    sort = torch.argsort(tile_id * n + rank[gid])
    tile_id, gid = tile_id[sort], gid[sort]
    per_tile = torch.bincount(tile_id, minlength=tiles_x * tiles_y)
    slot = torch.arange(gid.numel(), device=mu.device) - (torch.cumsum(per_tile, 0) - per_tile)[tile_id]
    lists = torch.full((tiles_x * tiles_y, int(per_tile.max())), n, device=mu.device)
    lists[tile_id, slot] = gid
    return lists, tiles_x, tiles_y


def rasterize(
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
    tile_size: int | None = 16,
    sigma_cutoff: float = 3.0,
    clamp_alpha: bool = True,
    probe: Tensor | None = None,
) -> Tensor:
    """Render N 2D splats into an (H, W, C) image; ``tile_size=None`` uses the dense reference.

    Args:
        means2d: (N, 2) pixel centres (x, y); pixel (row i, col j) has centre (j + 0.5, i + 0.5).
        covs2d: (N, 2, 2) positive-definite covariances in pixels^2.
        opacities: (N,) in [0, 1]. colors: (N, C).
        mode: "additive" (I = sum o c G + bg) or "alpha" (front-to-back compositing by ``depths``).
        depths: (N,) sort keys for "alpha" (input order if None).
        background: (C,), zeros by default. tile_size: tile edge in pixels or None (dense).
        sigma_cutoff: each Gaussian is cut to its box of +/- sigma_cutoff standard deviations per axis.
        clamp_alpha: the 3DGS rules alpha <= 0.99 and alpha < 1/255 -> 0 (turn off for gradcheck).
        probe: optional (N,) zero tensor added to the response G; its gradient is sum_x dL/dG
            (what the official SteepGS code accumulates for its ``inv_cov`` proxy).
    Returns:
        (H, W, C) image.
    """
    if tile_size is None:
        return rasterize_dense(
            means2d,
            covs2d,
            opacities,
            colors,
            height,
            width,
            mode=mode,
            depths=depths,
            background=background,
            sigma_cutoff=sigma_cutoff,
            clamp_alpha=clamp_alpha,
            probe=probe,
        )[0]
    if tile_size <= 0:
        raise ValueError(f"tile_size: expected a positive integer or None, got {tile_size}")
    check_splats(means2d, covs2d, opacities, colors, mode, depths)
    n, channels = means2d.shape[0], colors.shape[1]
    bg = background if background is not None else colors.new_zeros(channels)
    order = front_to_back(n, depths, mode, means2d.device)
    extents = pixel_extents(covs2d, sigma_cutoff)
    # Zero-opacity Gaussians (e.g. behind the camera) join no tile: they contribute alpha = 0 anyway.
    lists, tiles_x, tiles_y = _tile_lists(means2d, extents, opacities.detach() > 0, order, height, width, tile_size)
    # One padding Gaussian (index N) with opacity 0 fills the short lists.
    pad = lambda t, v: torch.cat([t, t.new_full((1, *t.shape[1:]), v)])  # noqa: E731
    mu = pad(means2d, 0.0)[lists][:, None]  # (T, 1, K, 2)
    conic = pad(conic_coefficients(conics_from_covs(covs2d)), 0.0)[lists][:, None]
    opac = pad(opacities, 0.0)[lists][:, None]
    ext = pad(extents, 0.0)[lists][:, None]
    prb = None if probe is None else pad(probe, 0.0)[lists][:, None]
    local = torch.arange(tile_size, device=means2d.device, dtype=means2d.dtype) + 0.5
    ly, lx = torch.meshgrid(local, local, indexing="ij")
    offs = torch.stack([lx.reshape(-1), ly.reshape(-1)], -1)  # (tile^2, 2)
    t_idx = torch.arange(tiles_x * tiles_y, device=means2d.device)
    origin = torch.stack([t_idx % tiles_x, t_idx // tiles_x], -1).to(means2d.dtype) * tile_size
    pix = (origin[:, None, :] + offs[None])[:, :, None, :]  # (T, tile^2, 1, 2)
    alpha = splat_alpha(pix, mu, conic, opac, ext, clamp_alpha, prb)  # (T, tile^2, K)
    tiles = composite(alpha, pad(colors, 0.0)[lists], mode, bg)  # (T, tile^2, C)
    image = tiles.reshape(tiles_y, tiles_x, tile_size, tile_size, channels).permute(0, 2, 1, 3, 4)
    return image.reshape(tiles_y * tile_size, tiles_x * tile_size, channels)[:height, :width]


def render_2d(
    means: Tensor,
    log_scales: Tensor,
    angles: Tensor,
    opacity_logits: Tensor,
    colors: Tensor,
    height: int,
    width: int,
    *,
    mode: str = "additive",
    depths: Tensor | None = None,
    background: Tensor | None = None,
    tile_size: int | None = 16,
    clamp_alpha: bool = True,
    eps2d: float = 0.0,
) -> tuple[Tensor, dict]:
    """Render a 2D Gaussian image model; returns the image and ``info`` for density control.

    Args:
        means: (N, 2) pixels. log_scales: (N, 2). angles: (N,). opacity_logits: (N,). colors: (N, C).
        eps2d: isotropic low-pass added to each covariance (3DGS uses 0.3 px^2 on screen) [recon]; it
            keeps Gaussians from shrinking below a pixel, which is what lets held-out pixels be predicted.
    Returns:
        image (H, W, C); info with the non-leaf ``means2d``, ``covs2d``, ``opacities`` (grads retained),
        ``probe`` (zeros, grad = sum_x dL/dG), ``visible`` (N,) bool, ``width``, ``height``.
    """
    n = means.shape[0]
    for name, t, tail in (
        ("log_scales", log_scales, (2,)),
        ("angles", angles, ()),
        ("opacity_logits", opacity_logits, ()),
    ):
        check_rows(name, t, n, tail)
        check_finite(name, t)
    means2d = means * 1.0
    if eps2d < 0:
        raise ValueError(f"eps2d: expected >= 0, got {eps2d}")
    covs2d = covariance(rotation_2d(angles), log_scales)
    if eps2d > 0:
        covs2d = covs2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    opac = torch.sigmoid(opacity_logits)
    probe = means.new_zeros(n, requires_grad=True)
    for t in (means2d, covs2d, opac):
        if t.requires_grad:
            t.retain_grad()
    image = rasterize(
        means2d,
        covs2d,
        opac,
        colors,
        height,
        width,
        mode=mode,
        depths=depths,
        background=background,
        tile_size=tile_size,
        clamp_alpha=clamp_alpha,
        probe=probe,
    )
    info = {
        "means2d": means2d,
        "covs2d": covs2d,
        "opacities": opac,
        "probe": probe,
        "width": width,
        "height": height,
        "visible": torch.ones(n, dtype=torch.bool, device=means.device),
        "dim": 2,
    }
    return image, info
