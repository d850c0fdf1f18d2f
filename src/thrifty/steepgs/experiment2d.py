"""The 2D example of the reproduction: additive splats fitted to photos (an example and unit check of S).

Not a claim: a single-view 2D fit reads only transient curvature (S = 0 at a stationary Gaussian, spec
section 2.2), so it cannot show SteepGS's multi-view effect. It runs only with ``run_2d=True``.
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.data import load_photo
from thrifty.core.runs import RunContext
from thrifty.steepgs.algorithm import fit_image_2d
from thrifty.steepgs.config import SteepGSConfig
from thrifty.steepgs.variants import make_strategy

LRS_2D = {"means": 0.05, "scales": 0.01, "angles": 0.01, "colors": 0.01, "opacities": 0.05}


def run_2d(cfg: SteepGSConfig, ctx: RunContext) -> list[dict[str, Any]]:
    """All (image, seed, threshold, variant) 2D fits; one row each."""
    rows = []
    jobs = [
        (img, s, t, v)
        for img in cfg.images
        for s in range(cfg.seeds)
        for t in cfg.thresholds_2d
        for v in cfg.variants_2d
    ]
    for image_name, seed, threshold, variant in ctx.progress(jobs, desc="steepgs 2D"):
        image = load_photo(image_name, size=cfg.image_size).to(ctx.device)
        split_gen = torch.Generator().manual_seed(ctx.seed + 1000 * seed)
        holdout = (torch.rand(image.shape[:2], generator=split_gen) < cfg.holdout_frac).to(ctx.device)
        strategy = make_strategy(
            variant,
            threshold,
            every=cfg.refine_every_2d,
            stop=cfg.refine_stop_2d,
            reset_every=0,
            s_thresh=cfg.s_thresh,
            clone_shift=cfg.clone_shift_px,
            seed=ctx.seed + seed,
        )
        fit = fit_image_2d(
            image,
            holdout,
            strategy,
            steps=cfg.steps_2d,
            n_init=cfg.n_init_2d,
            lrs=LRS_2D,
            generator=torch.Generator().manual_seed(ctx.seed + seed),
            train_frac=cfg.train_frac,
            tile_size=cfg.tile_size,
            eps2d=cfg.eps2d,
        )
        row = {
            "task": "2d",
            "scene": image_name,
            "seed": seed,
            "threshold": threshold,
            "variant": variant,
            "n_gaussians": fit.n_gaussians,
            "train_psnr": fit.train_psnr,
            "test_psnr": fit.test_psnr,
        }
        ctx.log(f"fit2d/{variant}", len(rows), **{k: float(row[k]) for k in ("n_gaussians", "test_psnr", "threshold")})
        rows.append(row)
    return rows
