"""Moderation metrics with unsafe as the positive class (F1, FPR, precision, recall)."""

from __future__ import annotations

from torch import Tensor


def binary_metrics(pred: Tensor, gold: Tensor) -> dict[str, float]:
    """``pred, gold (N,)`` bool (True = unsafe) -> ``{"F1", "FPR", "precision", "recall"}``.

    Empty denominators give 0.0 (F1 of a model that never predicts unsafe is 0).
    """
    if pred.shape != gold.shape:
        raise ValueError(f"pred: expected the shape of gold {tuple(gold.shape)}, got {tuple(pred.shape)}")
    pred, gold = pred.bool(), gold.bool()
    tp = int((pred & gold).sum())
    fp = int((pred & ~gold).sum())
    fn = int((~pred & gold).sum())
    tn = int((~pred & ~gold).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"F1": f1, "FPR": fp / (fp + tn) if fp + tn else 0.0, "precision": precision, "recall": recall}
