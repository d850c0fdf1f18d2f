"""Reconstruction and structure metrics, per image, on ``(B, 3, H, W)`` images in [0, 1].

PSNR and SSIM are torchmetrics'; Canny edges are scikit-image's. Written here (no maintained library has
them): gradient-magnitude SSIM, a tolerant edge F1 on the Canny maps, and the PIE-Bench-style
self-similarity structure distance on any feature function (here the UNet's mid-block, DINO being unavailable).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from thrifty.core.optional import require
from thrifty.geo.ddim import DiffusionModel, check_image
from thrifty.geo.geometry import sobel

LUMA = (0.299, 0.587, 0.114)


def _pair(a: Tensor, b: Tensor) -> None:
    check_image(a, "a")
    check_image(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"b: expected shape {tuple(a.shape)}, got {tuple(b.shape)}")


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB (data range 1): ``(B,)``."""
    _pair(a, b)
    tm = require("torchmetrics.functional.image")
    return tm.peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(a: Tensor, b: Tensor, kernel_size: int = 7) -> Tensor:
    """Per-image SSIM (Gaussian window, data range 1): ``(B,)``."""
    _pair(a, b)
    tm = require("torchmetrics.functional.image")
    return tm.structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=kernel_size, reduction="none")


def gray(image: Tensor) -> Tensor:
    """Luminance ``(B, 1, H, W)`` of ``(B, 3, H, W)``."""
    return (image * torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def grad_magnitude(image: Tensor) -> Tensor:
    """Sobel gradient magnitude of the luminance, ``(B, 1, H, W)``."""
    gx, gy = sobel(gray(image))
    return (gx**2 + gy**2).sqrt()


def grad_ssim(a: Tensor, b: Tensor, kernel_size: int = 7) -> Tensor:
    """SSIM of the Sobel gradient-magnitude maps (data range = the larger map's maximum): ``(B,)``."""
    _pair(a, b)
    ga, gb = grad_magnitude(a), grad_magnitude(b)
    top = float(torch.maximum(ga.max(), gb.max()).clamp_min(1e-8))
    tm = require("torchmetrics.functional.image")
    return tm.structural_similarity_index_measure(ga, gb, data_range=top, kernel_size=kernel_size, reduction="none")


def canny_edges(image: Tensor, sigma: float = 1.0) -> np.ndarray:
    """Boolean Canny edge maps ``(B, H, W)`` of the luminance (scikit-image)."""
    feature = require("skimage.feature")
    lum = gray(image.detach().cpu().double())[:, 0].numpy()
    return np.stack([feature.canny(x, sigma=sigma) for x in lum])


def edge_f1(a: Tensor, b: Tensor, sigma: float = 1.0, tolerance: int = 1) -> Tensor:
    """Per-image F1 of ``a``'s Canny edges against ``b``'s, a match allowed within ``tolerance`` pixels.

    Precision: fraction of ``a``'s edge pixels within ``tolerance`` (Chebyshev) of an edge of ``b``; recall the
    converse. Two edge-free images score 1. Returns ``(B,)``.
    """
    _pair(a, b)
    ndimage = require("scipy.ndimage")
    ea, eb = canny_edges(a, sigma), canny_edges(b, sigma)
    scores = []
    for pa, pb in zip(ea, eb, strict=True):
        if not pa.any() and not pb.any():
            scores.append(1.0)
            continue
        grow = np.ones((2 * tolerance + 1,) * 2, dtype=bool)
        near_a = ndimage.binary_dilation(pa, grow) if tolerance else pa
        near_b = ndimage.binary_dilation(pb, grow) if tolerance else pb
        precision = (pa & near_b).sum() / max(pa.sum(), 1)
        recall = (pb & near_a).sum() / max(pb.sum(), 1)
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return torch.tensor(scores, dtype=torch.float32)


def self_similarity(features: Tensor) -> Tensor:
    """Cosine self-similarity of spatial tokens: ``(B, C, h, w)`` -> ``(B, h*w, h*w)``."""
    tokens = torch.nn.functional.normalize(features.flatten(2).transpose(1, 2), dim=-1)
    return tokens @ tokens.transpose(1, 2)


def structure_distance(a: Tensor, b: Tensor, feature_fn: Callable[[Tensor], Tensor]) -> Tensor:
    """PIE-Bench's structure distance: MSE between the self-similarity matrices of ``feature_fn``: ``(B,)``."""
    _pair(a, b)
    with torch.no_grad():
        sa, sb = self_similarity(feature_fn(a)), self_similarity(feature_fn(b))
    return ((sa - sb) ** 2).mean(dim=(1, 2))


def unet_mid_features(model: DiffusionModel, emb: Tensor, step: int = 1) -> Callable[[Tensor], Tensor]:
    """``feature_fn(image) -> (B, C, h, w)``: the UNet mid-block output on the clean latent at ``tau_step``."""
    mid = getattr(model.unet, "mid_block", None)
    if mid is None:
        raise ValueError("model: expected a UNet with a mid_block for structure features")

    def features(image: Tensor) -> Tensor:
        captured: list[Tensor] = []
        handle = mid.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            with torch.no_grad():
                model.eps(model.encode(image), step, emb)
        finally:
            handle.remove()
        return captured[0]

    return features


def paired_difference(a: Tensor, b: Tensor) -> tuple[float, float]:
    """Mean and standard error of the per-image difference ``a - b`` (both ``(N,)``, same images, paired).

    The SE is ``std(a - b, unbiased) / sqrt(N)``; it is NaN for ``N = 1``.
    """
    if a.dim() != 1 or a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"b: expected a non-empty (N,) tensor matching a {tuple(a.shape)}, got {tuple(b.shape)}")
    diff = (a - b).double()
    n = diff.numel()
    se = float(diff.std(unbiased=True) / n**0.5) if n > 1 else float("nan")
    return float(diff.mean()), se


__all__ = [
    "canny_edges",
    "edge_f1",
    "grad_magnitude",
    "grad_ssim",
    "gray",
    "paired_difference",
    "psnr",
    "self_similarity",
    "ssim",
    "structure_distance",
    "unet_mid_features",
]
