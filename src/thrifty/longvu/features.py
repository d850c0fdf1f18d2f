"""Model-free frame features (HOG + colour histograms) and one-off threshold calibration."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from thrifty.longvu.ops import unit_frame_features


def hog_color_features(frames: Tensor, cell: int = 8, bins: int = 8) -> Tensor:
    """Per-frame HOG (scikit-image, on luminance) concatenated with per-channel colour histograms.

    Args:
        frames: ``(T, H, W, 3)`` float in ``[0, 1]``.
        cell: HOG cell size in pixels (2x2 cells per block).
        bins: histogram bins per colour channel (each histogram sums to 1).

    Returns:
        ``(T, F)`` float32 features (not centred; :func:`temporal_reduce` centres them).
    """
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected (T, H, W, 3) RGB frames, got shape {tuple(frames.shape)}")
    from skimage.feature import hog

    array = frames.detach().cpu().float().clamp(0, 1).numpy()
    gray = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    hogs = np.stack([hog(g, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2)) for g in gray])
    idx = np.minimum((array * bins).astype(np.int64), bins - 1)  # (T, H, W, 3)
    offsets = idx + np.arange(3) * bins
    hist = np.stack([np.bincount(o.ravel(), minlength=3 * bins) for o in offsets]).astype(np.float32)
    hist /= array.shape[1] * array.shape[2]
    return torch.from_numpy(np.concatenate([hogs.astype(np.float32), hist], axis=1))


def window_scores(feats: Tensor, window: int = 16, center: bool = True) -> Tensor:
    """The temporal step's per-frame mean similarity, middle frames excluded: ``(T, ...) -> (T - n_windows,)``."""
    unit = unit_frame_features(feats, center)
    scores = []
    for start in range(0, unit.shape[0], window):
        block = unit[start : start + window]
        score = (block @ block.T).mean(1)
        keep = torch.ones(block.shape[0], dtype=torch.bool)
        keep[block.shape[0] // 2] = False
        scores.append(score[keep])
    return torch.cat(scores)


def calibrate_threshold(scores: Tensor, keep_ratio: float) -> float:
    """The threshold under which a fraction ``keep_ratio`` of ``scores`` falls (keep iff ``score < tau``)."""
    if not 0 < keep_ratio < 1:
        raise ValueError(f"keep_ratio: expected a fraction in (0, 1), got {keep_ratio}")
    return float(torch.quantile(scores.double().flatten(), keep_ratio))


def stc_scores(frames: Tensor, window: int = 8) -> Tensor:
    """Cosines of non-first frames' tokens to their chunk's first frame: ``(N, P, D) -> (M,)``."""
    idx = torch.arange(frames.shape[0])
    sim = torch.nn.functional.cosine_similarity(frames, frames[(idx // window) * window], dim=-1, eps=1e-12)
    return sim[idx % window != 0].flatten()
