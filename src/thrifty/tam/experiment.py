"""``thrifty reproduce tam``: variants A (SAM 2), B (EfficientTAM), C (EdgeTAM), C' (global latents only),
C+KD (C distilled from A) and D (no memory), trained with the same seed and budget on SynthVOS."""

from __future__ import annotations

import statistics
from typing import Any

import torch

from thrifty.core.bench import time_fn
from thrifty.core.plots import bar_plot, line_plot
from thrifty.core.runs import Claim, Results, RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.tam.algorithm import TrackedVideos, calibrate_threshold, score_tracks, track_videos, unroll_clip
from thrifty.tam.config import TamConfig, TamModelConfig
from thrifty.tam.data import VideoBatch, video_batch
from thrifty.tam.flops import memory_attention_flops
from thrifty.tam.model import TinyTAM

EVAL_SEED = 10_000_000  # the evaluation set is fixed, whatever the run seed
CALIB_SEED = 20_000_000  # held-out videos for the threshold-calibration diagnostic
BYTES_PER_VALUE = 4  # float32 memories


def variant_model(name: str, base: TamModelConfig) -> TamModelConfig:
    """The tracker config of one variant."""
    if name == "A":
        return base.replace(memory="full")
    if name == "B":
        return base.replace(memory="pooled")
    if name in ("C", "C+KD"):
        return base.replace(memory="perceiver")
    if name == "C'":
        n = base.n_global + base.patch_grid[0] * base.patch_grid[1]
        return base.replace(memory="perceiver", n_global=n, patch_grid=(0, 0))
    if name == "D":
        return base.replace(memory="none")
    raise ValueError(f"name: expected one of A, B, C, C', C+KD, D, got {name!r}")


def train_variant(name: str, cfg: TamConfig, ctx: RunContext, teacher: TinyTAM | None) -> tuple[TinyTAM, Any]:
    """Build (seeded) and train one variant for ``cfg.steps`` steps on the shared clip stream."""
    torch.manual_seed(ctx.seed)
    model = TinyTAM(variant_model(name, cfg.model)).to(ctx.device)
    size = cfg.model.image_size

    def batch_fn(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        seeds = [ctx.seed * 1_000_003 + step * cfg.batch + i for i in range(cfg.batch)]
        vb = video_batch(seeds, cfg.clip_len, size, cfg.p_occlude).to(ctx.device)
        return vb.frames, vb.masks

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return unroll_clip(m, *batch, teacher=teacher, kd_weights=(cfg.kd_weight_enc, cfg.kd_weight_mem))["loss"]

    tcfg = TrainConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=max(1, cfg.steps // 20),
        min_lr_ratio=0.05,
        weight_decay=0.01,
        grad_clip=1.0,
        log_every=max(1, cfg.steps // 20),
    )
    result = train(model, loss_fn, batch_fn, tcfg, ctx=ctx, series=f"train/{name}", progress_desc=name)
    return model.eval(), result


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
    samples: dict[str, dict[str, list[float]]] = {n: {"mem": [], "step": []} for n in models}
    with torch.no_grad():
        for _ in range(3):  # interleave the variants so machine load hits them alike
            for name, (mem_fn, step_fn) in timers.items():
                samples[name]["mem"].append(time_fn(mem_fn, threads=1, min_run_time=cfg.timing_s).median_ms)
                samples[name]["step"].append(time_fn(step_fn, threads=1, min_run_time=cfg.timing_s).median_ms)
    for name in models:
        costs[name]["memattn_ms"] = statistics.median(samples[name]["mem"])
        costs[name]["step_ms"] = statistics.median(samples[name]["step"])
    return costs


def _claims(v: dict[str, dict[str, float]]) -> tuple[Claim, list[Claim]]:
    a, b, c = v["A"], v["B"], v["C"]
    head = Claim("B (EfficientTAM) J&F - A (SAM 2) J&F", "jf_diff", b["JF"] - a["JF"], -2.0, ">=")
    checks = [
        Claim(
            "B/A cross-attention FLOPs",
            "flops_ratio",
            b["cross_core_gflops"] / a["cross_core_gflops"],
            0.3,
            "<=",
        ),
        Claim("C (EdgeTAM) J&F - A J&F", "jf_diff", c["JF"] - a["JF"], -4.0, ">="),
        Claim("C/A memory-attention latency", "latency_ratio", c["memattn_ms"] / a["memattn_ms"], 0.5, "<="),
        Claim(
            "C/A bytes stored per frame",
            "storage_ratio",
            c["bytes_per_frame"] / a["bytes_per_frame"],
            0.125,
            "<=",
        ),
        Claim("C J&F - C' (global only) J&F", "jf_diff", c["JF"] - v["C'"]["JF"], 0.0, ">="),
        Claim("C+KD J&F - C J&F", "jf_diff", v["C+KD"]["JF"] - c["JF"], 0.0, ">="),
        Claim("A J&F - D J&F on occluded videos", "jf_diff", a["JF_occluded"] - v["D"]["JF_occluded"], 0.0, ">="),
        Claim("B J&F - D J&F on occluded videos", "jf_diff", b["JF_occluded"] - v["D"]["JF_occluded"], 0.0, ">="),
    ]
    return head, checks


def run_experiment(cfg: TamConfig, ctx: RunContext) -> Results:
    """Train every variant with the same budget, evaluate on the fixed set, measure costs, check claims."""
    variants, curves = _train_and_score(cfg, ctx)
    line_plot(ctx, "train_loss", curves, xlabel="step", ylabel="loss (task + KD)", markers=False)
    bar_plot(ctx, "jf", {n: v["JF"] for n, v in variants.items()}, ylabel="J&F (%)")
    if all(n in variants for n in ("A", "B", "C", "C'", "C+KD", "D")):
        headline, checks = _claims(variants)
    else:
        headline, checks = Claim("variants run", "count", float(len(variants)), 6.0, ">="), []
    notes = (
        "Tiny CPU scale: one seed, a few hundred steps; J&F differences of a few points are within seed "
        "noise. Latency is measured at 1 thread, interleaved, on a shared machine; FLOPs are analytic at a "
        "full bank (1 conditioning + 6 recent frames + pointers). KD weights are an assumption [recon]."
    )
    extra = {"eval_videos": cfg.eval_videos, "eval_occluded": variants[cfg.variants[0]]["n_occluded"]}
    extra.update(_calibrated_differences(variants))
    return Results(variants=variants, headline=headline, checks=checks, extra=extra, notes=notes)


def _calibrated_differences(v: dict[str, dict[str, float]]) -> dict[str, float]:
    """The J&F comparisons again at val-calibrated thresholds: a diagnostic beside the claims, not a claim."""
    pairs = {"C-A": ("C", "A"), "B-A": ("B", "A"), "C-C'": ("C", "C'"), "C+KD-C": ("C+KD", "C")}
    return {
        f"calibrated_jf_diff_{key}": v[x]["JF_calibrated"] - v[y]["JF_calibrated"]
        for key, (x, y) in pairs.items()
        if "JF_calibrated" in v.get(x, {}) and "JF_calibrated" in v.get(y, {})
    }


def _train_and_score(cfg: TamConfig, ctx: RunContext) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    size = cfg.model.image_size
    eval_set = video_batch([EVAL_SEED + i for i in range(cfg.eval_videos)], cfg.eval_len, size, cfg.p_occlude)
    calib_set = None
    if cfg.calib_videos:
        calib_set = video_batch([CALIB_SEED + i for i in range(cfg.calib_videos)], cfg.eval_len, size, cfg.p_occlude)
    models: dict[str, TinyTAM] = {}
    variants: dict[str, dict[str, float]] = {}
    curves = {}
    for name in cfg.variants:
        teacher = models.get("A") if name == "C+KD" else None
        model, result = train_variant(name, cfg, ctx, teacher)
        models[name] = model
        tracks = track_videos(model, eval_set)  # one tracking pass, scored at each threshold
        scores = score_tracks(tracks)
        if calib_set is not None:
            scores.update(_calibrated_scores(model, calib_set, tracks))
        variants[name] = {**scores, "final_loss": result.final_loss, "train_s": result.elapsed_s}
        curves[name] = (list(range(len(result.losses))), result.losses)
        ctx.log(f"eval/{name}", cfg.steps, **{k: float(x) for k, x in scores.items()})
    for name, cost in measure_costs(models, cfg, ctx).items():
        variants[name].update(cost)
    return variants, curves


def _calibrated_scores(model: TinyTAM, calib_set: VideoBatch, eval_tracks: TrackedVideos) -> dict[str, float]:
    """J&F on the evaluation set at the mask threshold that is best on the held-out calibration set."""
    threshold, _ = calibrate_threshold(model, calib_set)
    scores = score_tracks(eval_tracks, threshold)
    return {"threshold": threshold, "JF_calibrated": scores["JF"], "JF_occluded_calibrated": scores["JF_occluded"]}
