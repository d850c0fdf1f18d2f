"""Per-variant costs: stored and attended memory tokens, bytes, analytic memory-attention FLOPs at a full bank
and interleaved single-thread latencies (memory attention alone and the whole tracking step)."""

from __future__ import annotations

import statistics

import torch

from thrifty.core.bench import time_fn
from thrifty.core.runs import RunContext
from thrifty.tam.config import TamConfig
from thrifty.tam.flops import memory_attention_flops
from thrifty.tam.model import TinyTAM

BYTES_PER_VALUE = 4  # float32 memories
LATENCY_ROUNDS = 5


def _filled_bank(model: TinyTAM, n_frames: int, device: torch.device, gen: torch.Generator):
    """A bank after ``n_frames`` tracked random frames (full: all memory slots and pointers used)."""
    s = model.cfg.image_size
    bank = model.new_bank()
    frames = torch.rand(n_frames + 1, 1, 3, s, s, generator=gen).to(device)
    first = (torch.rand(1, 1, s, s, generator=gen) > 0.5).float().to(device)
    with torch.no_grad():
        model.track_step(frames[0], bank, 0, mask_prompt=first)
        for t in range(1, n_frames):
            model.track_step(frames[t], bank, t)
    return bank, frames[n_frames]


def measure_costs(models: dict[str, TinyTAM], cfg: TamConfig, ctx: RunContext) -> dict[str, dict[str, float]]:
    """Tokens, bytes, analytic FLOPs (full bank) and interleaved median latencies per frame (1 thread)."""
    n_frames = cfg.model.max_obj_ptrs + 1
    costs: dict[str, dict[str, float]] = {}
    timers = {}
    for name, model in models.items():
        stored, attended = model.tokens_per_frame()
        m = model.cfg
        bank, frame = _filled_bank(model, n_frames, ctx.device, ctx.generator(7))
        costs[name] = {
            "tokens_stored_per_frame": stored,
            "tokens_attended_per_frame": attended,
            "bytes_per_frame": stored * m.mem_dim * BYTES_PER_VALUE,
            "params": sum(p.numel() for p in model.parameters()),
        }
        if model.memory_attention is not None:
            lay = bank.gather(n_frames, model.tpos).layout
            flops = memory_attention_flops(
                model.grid[0] * model.grid[1],
                lay.n_tokens,
                lay.n_frames * attended + lay.n_ptr_tokens,
                m.dim,
                m.mem_dim,
                m.mem_layers,
                m.mem_ffn,
            )
        else:
            flops = {"total": 0, "cross_core": 0}
        costs[name].update(memattn_gflops=flops["total"] / 1e9, cross_core_gflops=flops["cross_core"] / 1e9)
        feat = model.encoder(frame).detach()
        timers[name] = (
            lambda mo=model, b=bank, f=feat: mo.condition(f, b, n_frames),
            lambda mo=model, b=bank, x=frame: mo.track_step(x, b, n_frames, store=False),
        )
    for name, latency in _interleaved_latencies(timers, cfg.timing_s).items():
        costs[name].update(latency)
    return costs


def _interleaved_latencies(timers: dict[str, tuple], timing_s: float) -> dict[str, dict[str, float]]:
    """Median memory-attention and step ms over ``LATENCY_ROUNDS`` interleaved rounds (so machine load hits
    every variant alike), the round-to-round spread, and each variant's per-round ratio to A's."""
    samples: dict[str, dict[str, list[float]]] = {n: {"mem": [], "step": []} for n in timers}
    with torch.no_grad():
        for _ in range(LATENCY_ROUNDS):
            for name, (mem_fn, step_fn) in timers.items():
                samples[name]["mem"].append(time_fn(mem_fn, threads=1, min_run_time=timing_s).median_ms)
                samples[name]["step"].append(time_fn(step_fn, threads=1, min_run_time=timing_s).median_ms)
    out: dict[str, dict[str, float]] = {}
    for name, sample in samples.items():
        mem = sample["mem"]
        out[name] = {
            "memattn_ms": statistics.median(mem),
            "memattn_min_ms": min(mem),
            "memattn_rel_spread": (max(mem) - min(mem)) / statistics.median(mem),
            "step_ms": statistics.median(sample["step"]),
        }
        if "A" in samples:  # the latency claim's ratio per interleaved round: its spread beside the median
            ratios = [x / a for x, a in zip(mem, samples["A"]["mem"], strict=True)]
            out[name].update(memattn_ratio_A_min=min(ratios), memattn_ratio_A_max=max(ratios))
    return out
