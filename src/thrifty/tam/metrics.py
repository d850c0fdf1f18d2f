"""DAVIS J&F exactly as ``davis2017-evaluation`` computes it (spec section 6)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.morphology import disk


def db_eval_iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J of two ``(H, W)`` boolean masks; an empty union scores 1."""
    gt, pred = _check_pair(gt, pred)
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    union = np.logical_or(gt, pred).sum()
    return 1.0 if union == 0 else float(np.logical_and(gt, pred).sum() / union)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Boundary map: ``seg ^ E | seg ^ S | seg ^ SE`` (one-pixel shifts), last row/column handled as DAVIS."""
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """DAVIS tolerance ``ceil(bound_th * ||(H, W)||)``: 1 px at 64^2, 8 px at 480x854."""
    return bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape))


def db_eval_boundary(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float:
    """Boundary F of two ``(H, W)`` boolean masks (disk dilation; empty/empty = 1)."""
    gt, pred = _check_pair(gt, pred)
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    radius = int(boundary_radius(gt.shape, bound_th))
    fg, gt_b = seg2bmap(pred), seg2bmap(gt)
    selem = disk(radius).astype(bool)
    fg_dil, gt_dil = ndimage.binary_dilation(fg, selem), ndimage.binary_dilation(gt_b, selem)
    n_fg, n_gt = fg.sum(), gt_b.sum()
    if n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_fg == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision, recall = (fg & gt_dil).sum() / n_fg, (gt_b & fg_dil).sum() / n_gt
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def db_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """``(mean, recall = mean(x > 0.5), decay)`` of one object's per-frame scores (DAVIS 4 bins)."""
    x = np.asarray(per_frame, dtype=np.float64)
    mean, recall = float(np.nanmean(x)), float(np.nanmean(x > 0.5))
    ids = np.round(np.linspace(1, len(x), 5) + 1e-10) - 1
    ids = ids.astype(np.uint8)  # DAVIS quirk: uint8 bin indices
    bins = [x[ids[i] : ids[i + 1] + 1] for i in range(4)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3])) if len(x) >= 4 else float("nan")
    return mean, recall, decay


def evaluate_vos(gts: list[np.ndarray], preds: list[np.ndarray], skip_first_last: bool = True) -> dict[str, float]:
    """J&F over objects: each element is one object's ``(T, H, W)`` boolean ground truth / prediction.

    Returns:
        ``{"JF", "J", "F"}`` in percent: per-object means over frames (first and last excluded), averaged
        over OBJECTS, then ``JF = (J + F) / 2``.
    """
    if len(gts) != len(preds) or not gts:
        raise ValueError(f"gts, preds: expected equally long non-empty lists, got {len(gts)} and {len(preds)}")
    j_obj, f_obj = [], []
    for gt, pred in zip(gts, preds, strict=True):
        if gt.shape != pred.shape or gt.ndim != 3:
            raise ValueError(f"gts, preds: expected matching (T, H, W) arrays, got {gt.shape} and {pred.shape}")
        frames = range(1, gt.shape[0] - 1) if skip_first_last else range(gt.shape[0])
        if len(frames) == 0:
            raise ValueError(
                f"gts: a video needs at least 3 frames when the first and last are skipped, got {gt.shape[0]}"
            )
        j_obj.append(np.mean([db_eval_iou(gt[t], pred[t]) for t in frames]))
        f_obj.append(np.mean([db_eval_boundary(gt[t], pred[t]) for t in frames]))
    j, f = 100 * float(np.mean(j_obj)), 100 * float(np.mean(f_obj))
    return {"JF": (j + f) / 2, "J": j, "F": f}


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"gt, pred: expected two (H, W) masks of the same shape, got {gt.shape} and {pred.shape}")
    return gt.astype(bool), pred.astype(bool)
