"""``thrifty bench longvu``: compression time and peak memory against video length, with a fitted exponent.

Every compressor compresses random ``(T, 16, 32)`` tokens to 1/16 of them; the cost should grow linearly
in ``T`` (fitted log-log exponent, target <= 1.1). ToMe's vectorised rounds are compared with the
token-by-token reference loop at small ``T``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from thrifty.core.bench import BenchContext, peak_memory_mb, time_fn
from thrifty.longvu.baselines import BASELINES, ToMeMerge
from thrifty.longvu.compressor import LongVUCompressor
from thrifty.longvu.reference import tome_reference

TOKENS, DIM = 16, 32


def fitted_exponent(lengths: list[int], times: list[float]) -> float:
    """Least-squares slope of ``log time`` against ``log length``."""
    xs, ys = [math.log(v) for v in lengths], [math.log(max(t, 1e-9)) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """Rows per (frames, compressor): median/min ms and peak MB; plus one exponent row per compressor."""
    lengths = [64, 256, 1024] if ctx.quick else [64, 128, 256, 512, 1024, 2048]
    compressors = {"longvu": LongVUCompressor(temporal_threshold=0.3, stc_threshold=0.5)}
    compressors.update({name: cls() for name, cls in BASELINES.items()})
    g = torch.Generator().manual_seed(0)
    rows: list[dict[str, Any]] = []
    query = torch.randn(8, DIM, generator=g).to(ctx.device)
    for n_frames in lengths:
        video = torch.randn(n_frames, TOKENS, DIM, generator=g).to(ctx.device)
        budget = n_frames * TOKENS // 16
        for name, comp in compressors.items():

            def call(comp=comp, video=video, budget=budget) -> None:
                comp(video, budget, query, None, torch.Generator().manual_seed(0))

            t = time_fn(call, threads=ctx.threads, min_run_time=0.1 if ctx.quick else 0.3, warmup=1)
            rows.append(
                {
                    "case": f"T={n_frames}",
                    "variant": name,
                    "median_ms": t.median_ms,
                    "min_ms": t.min_ms,
                    "peak_mb": peak_memory_mb(call, ctx.device),
                }
            )
    for name in compressors:
        times = [r["median_ms"] for r in rows if r["variant"] == name]
        rows.append(
            {"case": "fitted exponent", "variant": name, "exponent": fitted_exponent(lengths, times), "target": 1.1}
        )
    rows.append(_tome_vs_reference(ctx))
    return rows


def _tome_vs_reference(ctx: BenchContext) -> dict[str, Any]:
    x = torch.randn(16, TOKENS, DIM, generator=torch.Generator().manual_seed(1))
    fast = time_fn(lambda: ToMeMerge()(x, 16), threads=ctx.threads, min_run_time=0.1, warmup=1)
    slow = time_fn(lambda: tome_reference(x.reshape(-1, DIM), 16), threads=ctx.threads, min_run_time=0.1, warmup=0)
    return {
        "case": "ToMe T=16 (256 tokens -> 16)",
        "variant": "tome vs reference loop",
        "median_ms": fast.median_ms,
        "reference_ms": slow.median_ms,
        "speedup": slow.median_ms / fast.median_ms,
    }
