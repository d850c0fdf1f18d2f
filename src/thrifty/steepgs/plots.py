"""Figures of the reproduction: PSNR-vs-count curves per variant and a turntable of a trained 3D model."""

from __future__ import annotations

import statistics
from typing import Any

import matplotlib.pyplot as plt
import torch

from thrifty.core.runs import RunContext
from thrifty.steepgs.render3d import render_3d
from thrifty.steepgs.scene import SKY


def curve_plot(ctx: RunContext, name: str, rows: list[dict[str, Any]], title: str) -> None:
    """Test PSNR vs #Gaussians, one line per variant (means over scenes and seeds per threshold)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        thresholds = sorted({r["threshold"] for r in rows if r["variant"] == variant})
        pts = [[r for r in rows if r["variant"] == variant and r["threshold"] == t] for t in thresholds]
        xs = [statistics.fmean(r["n_gaussians"] for r in p) for p in pts]
        ys = [statistics.fmean(r["test_psnr"] for r in p) for p in pts]
        ax.plot(xs, ys, marker="o", label=variant, linestyle="-" if len(xs) > 1 else "none")
    ax.set_xscale("log")
    ax.set_xlabel("#Gaussians")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ctx.save_figure(fig, name)


def turntable(ctx: RunContext, params: dict[str, torch.Tensor], test: list, label: str) -> None:
    """Render a trained model at the test views next to the ray-traced truth."""
    fig, axes = plt.subplots(2, len(test), figsize=(1.6 * len(test), 3.4), squeeze=False)
    background = torch.tensor(SKY, device=ctx.device)
    for i, (cam, truth) in enumerate(test):
        with torch.no_grad():
            img, _ = render_3d(params, cam, background=background)
        axes[0, i].imshow(img.clamp(0, 1).cpu().numpy())
        axes[1, i].imshow(truth.cpu().numpy())
        for ax in axes[:, i]:
            ax.axis("off")
    axes[0, 0].set_title(label, fontsize=8, loc="left")
    axes[1, 0].set_title("ray-traced truth", fontsize=8, loc="left")
    ctx.save_figure(fig, "turntable_3d")
