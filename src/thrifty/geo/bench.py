"""``thrifty bench geo``: seconds per image and per DDIM step of each inversion, and GEO's cost over NTI's.

A random-init 16 px diffusers UNet (the reproduction's quick shape), a batch of 4 images, 8 DDIM steps and
3 inner Adam updates per step with early stopping disabled, so every optimised arm spends its whole budget.
GEO runs at horizons 1, 2, 4 with ``lambda = 1`` and both conditional-branch choices **[reconstruction]**.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from thrifty.core.bench import BenchContext, time_fn
from thrifty.geo.ddim import DiffusionModel, ddim_invert
from thrifty.geo.inversion import GeometricAccumulationLoss, direct_inversion_offsets, optimize_null_embeddings
from thrifty.geo.model import tiny_unet
from thrifty.geo.training import sampling_scheduler

BATCH, SIZE, STEPS, INNER, W = 4, 16, 8, 3, 7.5


def _arms(model: DiffusionModel, image: torch.Tensor, cond: torch.Tensor, null: torch.Tensor, quick: bool):
    traj = ddim_invert(model, model.encode(image), cond)

    def nti(loss: GeometricAccumulationLoss) -> Callable[[], Any]:
        return lambda: optimize_null_embeddings(
            model,
            traj,
            cond,
            null,
            w=W,
            inner_steps=INNER,
            early_stop=-1.0,
            early_stop_growth=0.0,
            loss=loss,
            image=image,
        )

    arms: dict[str, Callable[[], Any]] = {
        "ddim_inversion": lambda: ddim_invert(model, model.encode(image), cond),
        "direct_offsets": lambda: direct_inversion_offsets(model, traj, cond, null, W),
        "nti": nti(GeometricAccumulationLoss()),
    }
    for k in (1, 2) if quick else (1, 2, 4):
        for branch in ("exact", "pivot"):
            arms[f"geo_k{k}_{branch}"] = nti(GeometricAccumulationLoss(horizon=k, lambda_geo=1.0, cond_branch=branch))
    if quick:
        arms["geo_k4_exact"] = nti(GeometricAccumulationLoss(horizon=4, lambda_geo=1.0))
    return arms


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """One row per arm: seconds per image and per DDIM step, and the GEO / NTI cost ratio next to ``k``."""
    torch.manual_seed(0)
    unet = tiny_unet(SIZE, (16, 32), 32, head_dim=8).to(ctx.device).eval()
    model = DiffusionModel(unet, sampling_scheduler(), STEPS)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(BATCH, 3, SIZE, SIZE, generator=g).to(ctx.device)
    cond, null = (torch.randn(1, 4, 32, generator=g).to(ctx.device) for _ in range(2))
    rows = []
    for name, fn in _arms(model, image, cond, null, ctx.quick).items():
        timing = time_fn(fn, threads=ctx.threads, min_run_time=0.5 if ctx.quick else 2.0, warmup=1)
        seconds = timing.median_ms / 1e3
        rows.append(
            {
                "case": f"B={BATCH} {SIZE}px S={STEPS} inner={INNER} w={W}",
                "variant": name,
                "median_ms": timing.median_ms,
                "min_ms": timing.min_ms,
                "s_per_image": seconds / BATCH,
                "ms_per_image_step": 1e3 * seconds / BATCH / STEPS,
            }
        )
    base = next(r["median_ms"] for r in rows if r["variant"] == "nti")
    for row in rows:
        if row["variant"].startswith("geo_k"):
            row["horizon"] = int(row["variant"].split("_")[1][1:])
            row["cost_vs_nti"] = row["median_ms"] / base
    return rows


__all__ = ["run_bench"]
