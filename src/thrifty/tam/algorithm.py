"""Training and evaluation: the SAM 2 loss, EdgeTAM distillation, clip unrolling, J&F evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.tam.data import VideoBatch
from thrifty.tam.metrics import evaluate_vos
from thrifty.tam.model import TinyTAM


def sigmoid_focal_loss(logits: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Per-object mean focal loss ``(B,)`` of ``(B, 1, H, W)`` logits (SAM 2 ``sigmoid_focal_loss``)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma * (alpha * target + (1 - alpha) * (1 - target))
    return loss.flatten(1).mean(1)


def dice_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Per-object dice loss ``(B,)``."""
    prob = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    return 1 - (2 * (prob * target).sum(1) + 1) / (prob.sum(1) + target.sum(1) + 1)


def sam2_loss(
    logits: Tensor,
    iou_pred: Tensor,
    obj_logit: Tensor,
    gt: Tensor,
    weights: tuple[float, float, float, float] = (20.0, 1.0, 1.0, 1.0),
    focal: tuple[float, float] = (0.25, 2.0),
) -> dict[str, Tensor]:
    """SAM 2's per-frame loss: ``20 focal + 1 dice + 1 |IoU_pred - IoU| + 1 BCE(object)``.

    Mask and IoU terms count only where the object is present; everything is divided by the number of objects.

    Args:
        logits: ``(B, 1, H, W)``. iou_pred: ``(B, 1)``. obj_logit: ``(B, 1)``. gt: ``(B, 1, H, W)`` in {0, 1}.

    Returns:
        dict with ``loss`` (scalar) and the weighted terms.
    """
    if logits.shape != gt.shape:
        raise ValueError(f"gt: expected shape {tuple(logits.shape)}, got {tuple(gt.shape)}")
    present = (gt.flatten(1).sum(1) > 0).to(logits.dtype)
    n_obj = max(gt.shape[0], 1)
    with torch.no_grad():
        pred = logits > 0
        inter = (pred & (gt > 0)).flatten(1).sum(1).to(logits.dtype)
        union = (pred | (gt > 0)).flatten(1).sum(1).to(logits.dtype)
        actual_iou = inter / union.clamp(min=1)
    terms = {
        "focal": weights[0] * (sigmoid_focal_loss(logits, gt, *focal) * present).sum() / n_obj,
        "dice": weights[1] * (dice_loss(logits, gt) * present).sum() / n_obj,
        "iou": weights[2] * ((iou_pred[:, 0] - actual_iou).abs() * present).sum() / n_obj,
        "obj": weights[3] * F.binary_cross_entropy_with_logits(obj_logit[:, 0], present, reduction="sum") / n_obj,
    }
    terms["loss"] = sum(terms.values())
    return terms


def distill_loss(
    student: dict[str, Tensor], teacher: dict[str, Tensor], w_enc: float = 1.0, w_mem: float = 1.0
) -> Tensor:
    """EdgeTAM distillation [recon]: MSE on encoder (``feat``) and memory-attention (``cond``) outputs."""
    return w_enc * F.mse_loss(student["feat"], teacher["feat"].detach()) + w_mem * F.mse_loss(
        student["cond"], teacher["cond"].detach()
    )


def unroll_clip(
    model: TinyTAM,
    frames: Tensor,
    masks: Tensor,
    teacher: TinyTAM | None = None,
    kd_weights: tuple[float, float] = (1.0, 1.0),
    gated_mask_loss: bool = False,
) -> dict[str, Tensor]:
    """Track a batch of clips from a ground-truth first-frame mask; memories come from PREDICTED masks.

    Args:
        frames: ``(B, T, 3, S, S)``. masks: ``(B, T, 1, S, S)``. teacher: frozen model for distillation.
        gated_mask_loss: score the mask terms on the object-gated logits (SAM 2: a frame judged absent is
            ``-1024`` everywhere, so a present object there costs ~``20 * 256 * area`` with no gradient).
            [recon] Default False: the mask terms use the logits before the gate (``masks_ungated``); memories
            and evaluation still use the gated masks. The gradient-free spikes were the "divergence" of the
            perceiver variants' training loss at 64 px.

    Returns:
        dict with the mean ``loss`` over frames 1..T-1 (plus ``kd`` when distilling).
    """
    bank = model.new_bank()
    t_bank = teacher.new_bank() if teacher is not None else None
    model.track_step(frames[:, 0], bank, 0, mask_prompt=masks[:, 0])
    if teacher is not None:
        with torch.no_grad():
            teacher.track_step(frames[:, 0], t_bank, 0, mask_prompt=masks[:, 0])
    total, kd = frames.new_zeros(()), frames.new_zeros(())
    for t in range(1, frames.shape[1]):
        out = model.track_step(frames[:, t], bank, t)
        logits = out["masks"] if gated_mask_loss else out["masks_ungated"]
        total = total + sam2_loss(logits, out["iou"], out["obj_logit"], masks[:, t])["loss"]
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher.track_step(frames[:, t], t_bank, t)
            kd = kd + distill_loss(out, t_out, *kd_weights)
    n = frames.shape[1] - 1
    result = {"task": total / n, "kd": kd / n}
    result["loss"] = result["task"] + result["kd"]
    return result


@torch.no_grad()
def video_logits(model: TinyTAM, frames: Tensor, first_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Track a batch of videos from a first-frame mask.

    Args:
        frames: ``(B, T, 3, S, S)``. first_mask: ``(B, 1, S, S)`` in {0, 1}.

    Returns:
        Mask logits ``(B, T, 1, S, S)`` (frame 0 is the prompt as ``20 m - 10``; ``-1024`` where the object is
        judged absent) and object logits ``(B, T)``.
    """
    bank = model.new_bank()
    out = model.track_step(frames[:, 0], bank, 0, mask_prompt=first_mask)
    logits, scores = [out["masks"]], [out["obj_logit"][:, 0]]
    for t in range(1, frames.shape[1]):
        out = model.track_step(frames[:, t], bank, t)
        logits.append(out["masks"])
        scores.append(out["obj_logit"][:, 0])
    return torch.stack(logits, 1), torch.stack(scores, 1)


@torch.no_grad()
def predict_video(model: TinyTAM, frames: Tensor, first_mask: Tensor, threshold: float = 0.0) -> tuple[Tensor, Tensor]:
    """Masks ``(B, T, 1, S, S)`` (bool, ``logit > threshold``; SAM 2 uses 0) and object logits ``(B, T)``."""
    logits, scores = video_logits(model, frames, first_mask)
    return logits > threshold, scores


@dataclass
class TrackedVideos:
    """One tracking pass over a set of videos: per video ``gts`` ``(T, S, S)`` bool and mask ``logits``
    ``(T, S, S)`` float, and which videos hold a full-occlusion episode."""

    gts: list[np.ndarray]
    logits: list[np.ndarray]
    occluded: list[bool]


@torch.no_grad()
def track_videos(model: TinyTAM, videos: VideoBatch, batch: int = 16) -> TrackedVideos:
    """Track every video of ``videos`` from its first-frame mask (``batch`` videos at a time, eval mode)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gts, logits = [], []
    for i in range(0, videos.frames.shape[0], batch):
        frames = videos.frames[i : i + batch].to(device)
        masks = videos.masks[i : i + batch].to(device)
        lg, _ = video_logits(model, frames, masks[:, 0])
        logits += [x[:, 0].float().cpu().numpy() for x in lg]
        gts += [x[:, 0].cpu().numpy() > 0.5 for x in masks]
    model.train(was_training)
    return TrackedVideos(gts, logits, [bool(o) for o in videos.occluded.tolist()])


def copy_first_frame_tracks(videos: VideoBatch) -> TrackedVideos:
    """The copy-first-frame floor: every frame predicts the prompt mask (logit +1 inside, -1 outside)."""
    first = videos.masks[:, :1, 0].cpu().numpy() > 0.5  # (B, 1, S, S)
    t_len = videos.masks.shape[1]
    logits = [np.repeat(np.where(f, 1.0, -1.0), t_len, axis=0).astype(np.float32) for f in first]
    gts = [x[:, 0].cpu().numpy() > 0.5 for x in videos.masks]
    return TrackedVideos(gts, logits, [bool(o) for o in videos.occluded.tolist()])


def score_tracks(tracks: TrackedVideos, threshold: float = 0.0) -> dict[str, float]:
    """DAVIS J&F of tracked videos binarised at ``threshold``, overall and on the occluded videos."""
    preds = [lg > threshold for lg in tracks.logits]
    res = evaluate_vos(tracks.gts, preds)
    occ = [i for i, o in enumerate(tracks.occluded) if o]
    occ_res = evaluate_vos([tracks.gts[i] for i in occ], [preds[i] for i in occ]) if occ else {"JF": float("nan")}
    res["JF_occluded"] = occ_res["JF"]
    res["n_videos"], res["n_occluded"] = float(len(tracks.gts)), float(len(occ))
    return res


def evaluate(model: TinyTAM, videos: VideoBatch, batch: int = 16, threshold: float = 0.0) -> dict[str, float]:
    """DAVIS J&F on ``videos`` (one object each), overall and on the videos with a full-occlusion episode.

    Args:
        threshold: mask-logit threshold of the binarised prediction (SAM 2: 0). Tracking itself does not
            depend on it: memories are built from the logits.
    """
    return score_tracks(track_videos(model, videos, batch), threshold)


def calibrate_threshold(
    model: TinyTAM,
    videos: VideoBatch,
    thresholds: tuple[float, ...] = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0),
    batch: int = 16,
) -> tuple[float, float]:
    """The mask-logit threshold with the best J&F on held-out ``videos`` (a diagnostic, not SAM 2's protocol).

    Focal-loss training leaves young models under-confident: their logits can rank object pixels well while
    staying below 0. Calibrating on a validation set (never on the evaluation set) separates "has not
    learned the mask" from "has not yet calibrated it".

    Returns:
        ``(threshold, J&F at it)``; ties go to the threshold closest to 0.
    """
    if not thresholds:
        raise ValueError("thresholds: expected at least one threshold")
    tracks = track_videos(model, videos, batch)
    scored = [(evaluate_vos(tracks.gts, [lg > t for lg in tracks.logits])["JF"], -abs(t), t) for t in thresholds]
    best = max(scored)
    return best[2], best[0]


def as_numpy_masks(x: Tensor) -> np.ndarray:
    """``(T, 1, H, W)`` tensor -> ``(T, H, W)`` bool array."""
    return x[:, 0].detach().cpu().numpy() > 0.5
