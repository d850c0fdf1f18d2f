"""`thrifty bench steepgs`: dense vs tiled rasterization, and SteepGS vs ADC density-control overhead."""

from __future__ import annotations

import math
from typing import Any

import torch

from thrifty.core.bench import BenchContext, peak_memory_mb, time_fn
from thrifty.steepgs.render import rasterize, render_2d
from thrifty.steepgs.strategy import ADCStrategy, SteepStrategy

DENSE_MAX_PAIRS = 35_000_000  # skip dense cases above this many (pixel, Gaussian) pairs (memory)


def _splats(n: int, size: int, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * size
    sigma = torch.rand(n, 2, generator=g) * 2.0 + 0.7
    angle = torch.rand(n, generator=g) * math.pi
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    covs = rot @ torch.diag_embed(sigma**2) @ rot.transpose(-1, -2)
    opac = torch.rand(n, generator=g) * 0.8 + 0.1
    colors = torch.rand(n, 3, generator=g)
    depths = torch.rand(n, generator=g)
    return [t.to(device) for t in (means, covs, opac, colors, depths)]


def bench_render(ctx: BenchContext) -> list[dict[str, Any]]:
    """Alpha-composited fwd+bwd time of the dense reference vs the 16x16 tiled path."""
    rows = []
    sizes = (64, 128)
    counts = (500, 2000) if ctx.quick else (500, 2000, 4000)
    for size in sizes:
        for n in counts:
            means, covs, opac, colors, depths = _splats(n, size, ctx.device)
            leaves = [t.requires_grad_() for t in (means, covs, opac, colors)]
            timings = {}
            for variant, tile in (("dense", None), ("tiled16", 16)):
                if tile is None and size * size * n > DENSE_MAX_PAIRS:
                    continue

                def step(
                    tile: int | None = tile, leaves: list = leaves, size: int = size, depths: torch.Tensor = depths
                ) -> None:
                    rasterize(*leaves, size, size, mode="alpha", depths=depths, tile_size=tile).sum().backward()

                t = time_fn(step, threads=ctx.threads)
                timings[variant] = t.median_ms
                rows.append(
                    {
                        "case": f"render fwd+bwd {size}x{size} N={n}",
                        "variant": variant,
                        "median_ms": t.median_ms,
                        "min_ms": t.min_ms,
                        "peak_mb": peak_memory_mb(step, ctx.device),
                    }
                )
            if "dense" in timings:
                rows[-1]["speedup"] = timings["dense"] / timings["tiled16"]
                rows[-1]["target"] = ">= 3x at N >= 2000" if n >= 2000 else ""
    return rows


def _train_step_fn(strategy: ADCStrategy, n: int, size: int, device: torch.device):
    """One fit step (render, backward, statistics update) of a 2D model with the given strategy."""
    means, _, _, colors, _ = _splats(n, size, device)
    params = {
        "means": means,
        "scales": torch.full((n, 2), 0.3, device=device),
        "angles": torch.zeros(n, device=device),
        "opacities": torch.zeros(n, device=device),
        "colors": colors,
    }
    params = {k: torch.nn.Parameter(v) for k, v in params.items()}
    target = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(1)).to(device)
    state = strategy.initialize_state(100.0)

    def step() -> None:
        img, info = render_2d(
            params["means"],
            params["scales"],
            params["angles"],
            params["opacities"],
            params["colors"],
            size,
            size,
            tile_size=16,
        )
        ((img - target) ** 2).mean().backward()
        strategy.update_state(params, state, info)
        for p in params.values():
            p.grad = None

    return step, params, state


def bench_density_control(ctx: BenchContext) -> list[dict[str, Any]]:
    """Per-step cost of the statistics each strategy accumulates, and the cost of one grow() call."""
    rows = []
    n, size = (1000, 64) if ctx.quick else (2000, 64)
    base = {}
    for variant, strategy in (
        ("adc", ADCStrategy(grow_grad2d=1e-9)),
        ("steepgs", SteepStrategy(grow_grad2d=0.0, s_thresh=0.0)),
    ):
        step, params, state = _train_step_fn(strategy, n, size, ctx.device)
        t = time_fn(step, threads=ctx.threads)
        row = {
            "case": f"train step + stats, N={n} {size}x{size}",
            "variant": variant,
            "median_ms": t.median_ms,
            "min_ms": t.min_ms,
        }
        base[variant] = t.median_ms
        if variant == "steepgs":
            row |= {"overhead": t.median_ms / base["adc"], "target": "<= 1.2x"}
        rows.append(row)
        step()
        optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
        snapshot = {k: v.detach().clone() for k, v in params.items()}
        stats = {k: v.clone() for k, v in state.items() if torch.is_tensor(v)}

        def grow(
            strategy=strategy, params=params, optimizers=optimizers, state=state, snapshot=snapshot, stats=stats
        ) -> None:
            strategy.grow(params, optimizers, state)
            for k, v in snapshot.items():  # undo growth so every timed call does the same work
                params[k] = torch.nn.Parameter(v.clone())
                optimizers[k].param_groups[0]["params"] = [params[k]]
                optimizers[k].state.clear()
            state.update({k: v.clone() for k, v in stats.items()})

        tg = time_fn(grow, threads=ctx.threads)
        rows.append(
            {
                "case": f"grow() all candidates, N={n}",
                "variant": variant,
                "median_ms": tg.median_ms,
                "min_ms": tg.min_ms,
            }
        )
    return rows


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """All benchmark rows (see module docstring)."""
    return bench_render(ctx) + bench_density_control(ctx)
