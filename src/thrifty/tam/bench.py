"""``thrifty bench tam``: per-frame latency of memory attention and of the whole tracking step.

A (SAM 2 full), B (EfficientTAM pooled) and C (EdgeTAM perceiver, latents = 1/8 of the map) at two map sizes
with a full memory bank (1 conditioning + 6 recent frames, 16 pointers), random weights, threads pinned.
FLOPs come from the analytic counter (torch's counter misses CPU SDPA).
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from thrifty.core.bench import BenchContext, time_fn
from thrifty.tam.config import TamModelConfig
from thrifty.tam.flops import memory_attention_flops
from thrifty.tam.model import TinyTAM

VARIANTS = {"A sam2-full": "full", "B efficienttam-pooled": "pooled", "C edgetam-perceiver": "perceiver"}


def _model_cfg(image_size: int, memory: str) -> TamModelConfig:
    side = image_size // 4
    patch = max(1, side // 4)  # patch latents on a (side/4)^2 grid, as many global ones: 1/8 of the map
    return TamModelConfig(image_size=image_size, memory=memory, n_global=patch * patch, patch_grid=(patch, patch))


def _prepare(cfg: TamModelConfig, ctx: BenchContext, n_frames: int) -> dict[str, Any]:
    """A model with a full bank, its analytic FLOPs and the two callables to time."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyTAM(cfg).to(ctx.device).eval()
    s = cfg.image_size
    frames = torch.rand(n_frames + 1, 1, 3, s, s, generator=gen).to(ctx.device)
    bank = model.new_bank()
    with torch.no_grad():
        model.track_step(frames[0], bank, 0, mask_prompt=(frames[0, :, :1] > 0.5).float())
        for t in range(1, n_frames):
            model.track_step(frames[t], bank, t)
        feat = model.encoder(frames[n_frames])
        lay = bank.gather(n_frames, model.tpos).layout
    attended = lay.n_frames * model.tokens_per_frame()[1] + lay.n_ptr_tokens
    flops = memory_attention_flops(
        model.grid[0] ** 2, lay.n_tokens, attended, cfg.dim, cfg.mem_dim, cfg.mem_layers, cfg.mem_ffn
    )
    return {
        "mem_fn": lambda: model.condition(feat, bank, n_frames),
        "step_fn": lambda: model.track_step(frames[n_frames], bank, n_frames, store=False),
        "memattn_gflops": flops["total"] / 1e9,
        "cross_core_gflops": flops["cross_core"] / 1e9,
        "mem_tokens": lay.n_tokens,
    }


def _timed(preps: dict[str, dict[str, Any]], ctx: BenchContext, rounds: int = 3) -> None:
    """Median over ``rounds`` interleaved rounds (so machine load hits every variant alike), in place."""
    min_s = 0.2 if ctx.quick else 1.0
    samples: dict[str, dict[str, list[float]]] = {n: {"mem": [], "step": [], "min": []} for n in preps}
    with torch.no_grad():
        for _ in range(rounds):
            for name, prep in preps.items():
                t = time_fn(prep["mem_fn"], threads=ctx.threads, min_run_time=min_s)
                samples[name]["mem"].append(t.median_ms)
                samples[name]["min"].append(t.min_ms)
                step = time_fn(prep["step_fn"], threads=ctx.threads, min_run_time=min_s)
                samples[name]["step"].append(step.median_ms)
    for name, prep in preps.items():
        prep["memattn_ms"] = statistics.median(samples[name]["mem"])
        prep["memattn_min_ms"] = min(samples[name]["min"])
        prep["step_ms"] = statistics.median(samples[name]["step"])


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """Rows ``case, variant, median_ms (memory attention), step_ms, GFLOPs, speedup vs A``."""
    sizes = (32, 64) if ctx.quick else (64, 128)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        preps = {name: _prepare(_model_cfg(size, memory), ctx, n_frames=17) for name, memory in VARIANTS.items()}
        _timed(preps, ctx)
        base = preps["A sam2-full"]
        for name, r in preps.items():
            rows.append(
                {
                    "case": f"map {size // 4}x{size // 4} ({size}px)",
                    "variant": name,
                    "median_ms": r["memattn_ms"],
                    "min_ms": r["memattn_min_ms"],
                    "step_ms": r["step_ms"],
                    "mem_tokens": r["mem_tokens"],
                    "memattn_gflops": r["memattn_gflops"],
                    "cross_gflops": r["cross_core_gflops"],
                    "speedup_vs_A": base["memattn_ms"] / r["memattn_ms"],
                    "flops_ratio_vs_A": r["memattn_gflops"] / base["memattn_gflops"],
                }
            )
    return rows
