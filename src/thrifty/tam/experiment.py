"""``thrifty reproduce tam``: variants A (SAM 2), B (EfficientTAM), C (EdgeTAM), C' (global latents only),
C+KD (C distilled from A) and D (no memory) on SynthVOS, trained with the papers' recipe.

A is pretrained first (cached); every variant starts from it and trains the same number of steps, at the same
seed and on the same clips. Beside the variants the run reports the copy-first-frame floor, the calibrated
no-memory floor, a from-scratch ablation, seeds of the fine-tuning stage with t-intervals for the headline
differences and, when configured, a sweep of the perceiver's latent grid against storage.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy import stats

from thrifty.core.bench import timed_under_load
from thrifty.core.plots import bar_plot, line_plot
from thrifty.core.runs import Claim, Results, RunContext
from thrifty.tam.algorithm import (
    TrackedVideos,
    calibrate_threshold,
    copy_first_frame_tracks,
    score_tracks,
    track_videos,
)
from thrifty.tam.config import TamConfig, parse_latent_grid
from thrifty.tam.costs import BYTES_PER_VALUE, measure_costs
from thrifty.tam.data import VideoBatch, video_batch
from thrifty.tam.model import TinyTAM
from thrifty.tam.recipe import pretrained_a, train_variant, variant_model
from thrifty.tam.saved import save_tracker

EVAL_SEED = 10_000_000  # the evaluation set is fixed, whatever the run seed
CALIB_SEED = 20_000_000  # held-out videos for the threshold-calibration diagnostic
SEEDED_VARIANTS = ("A", "B", "C")  # the variants of the headline differences, rerun at every seed
COPY = "copy first frame"


def _video_sets(cfg: TamConfig) -> tuple[VideoBatch, VideoBatch | None]:
    size = cfg.model.image_size
    eval_set = video_batch([EVAL_SEED + i for i in range(cfg.eval_videos)], cfg.eval_len, size, cfg.p_occlude)
    calib_set = None
    if cfg.calib_videos:
        calib_set = video_batch([CALIB_SEED + i for i in range(cfg.calib_videos)], cfg.eval_len, size, cfg.p_occlude)
    return eval_set, calib_set


def _score(model: TinyTAM, eval_set: VideoBatch, calib_set: VideoBatch | None) -> dict[str, float]:
    """J&F at threshold 0 (overall / occluded) and, with a calibration set, at the calibrated threshold."""
    tracks = track_videos(model, eval_set)  # one tracking pass, scored at each threshold
    scores = score_tracks(tracks)
    if calib_set is not None:
        scores.update(_calibrated_scores(model, calib_set, tracks))
    return scores


def _calibrated_scores(model: TinyTAM, calib_set: VideoBatch, eval_tracks: TrackedVideos) -> dict[str, float]:
    """J&F on the evaluation set at the mask threshold that is best on the held-out calibration set."""
    threshold, _ = calibrate_threshold(model, calib_set)
    scores = score_tracks(eval_tracks, threshold)
    return {"threshold": threshold, "JF_calibrated": scores["JF"], "JF_occluded_calibrated": scores["JF_occluded"]}


class _Runner:
    """Trains, scores and saves variants of one run (shared evaluation sets, pretrained A, run directory)."""

    def __init__(self, cfg: TamConfig, ctx: RunContext) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.eval_set, self.calib_set = _video_sets(cfg)
        self.start, self.pretrain_info = None, {}
        if cfg.init == "from_A":
            self.start, self.pretrain_info = pretrained_a(cfg, ctx)
        self.curves: dict[str, tuple[list[int], list[float]]] = {}

    def run(
        self,
        name: str,
        label: str,
        *,
        scratch: bool = False,
        calibrate: bool = True,
        cfg: TamConfig | None = None,
        **kw: Any,
    ) -> tuple[TinyTAM, dict[str, float]]:
        """Train variant ``name`` (from A unless ``scratch``; ``cfg`` overrides the run's), score it, save it."""
        model, result, fresh = train_variant(
            name, cfg or self.cfg, self.ctx, start=None if scratch else self.start, label=label, **kw
        )
        row = _score(model, self.eval_set, self.calib_set if calibrate else None)
        row.update(final_loss=result.final_loss, train_s=result.elapsed_s, steps=float(len(result.losses)))
        row["fresh_tensors"] = float(len(fresh))
        self.curves[label] = (list(range(len(result.losses))), result.losses)
        self.ctx.log(f"eval/{label}", len(result.losses), **{k: float(v) for k, v in row.items()})
        meta = {"variant": label, "seed": self.ctx.seed, **{k: float(v) for k, v in row.items()}}
        save_tracker(self.ctx.out_dir / "models" / label.replace(" ", "_"), model, meta)
        return model, row


def run_experiment(cfg: TamConfig, ctx: RunContext) -> Results:
    """Pretrain A, train every variant from it, add floors, ablation, seeds and sweep, check the claims."""
    runner = _Runner(cfg, ctx)
    scratch = cfg.init == "scratch"
    models: dict[str, TinyTAM] = {}
    variants: dict[str, dict[str, float]] = {}
    for name in cfg.variants:
        teacher = models.get("A") if name == "C+KD" else None
        models[name], variants[name] = runner.run(name, name, scratch=scratch, teacher=teacher)
    _ablations(runner, models, variants)
    costs, load = timed_under_load(lambda: measure_costs(models, cfg, ctx))
    for name, cost in costs.items():
        variants[name].update(cost)
    floors = _add_floors(variants, runner.eval_set)
    seeds = _seed_differences(runner, variants, scratch)
    sweep = _latent_sweep(runner, variants)
    _plots(ctx, runner, variants, sweep)
    headline, checks = _claims(variants, seeds)
    extra: dict[str, Any] = {"eval_videos": cfg.eval_videos, "eval_occluded": variants[cfg.variants[0]]["n_occluded"]}
    extra.update(latency_load_avg_1min=load, floors=floors, seeds=seeds, latent_sweep=sweep)
    extra.update(pretrain=runner.pretrain_info, init=cfg.init)
    extra.update(_calibrated_differences(variants))
    return Results(variants=variants, headline=headline, checks=checks, extra=extra, notes=_notes(cfg))


def _ablations(runner: _Runner, models: dict[str, TinyTAM], variants: dict[str, dict[str, float]]) -> None:
    """The from-scratch rows (same total steps) and C with EdgeTAM's released perceiver init and one LR."""
    cfg = runner.cfg
    scratch = cfg.init == "scratch"
    if not scratch:
        for name in cfg.scratch_ablation:
            teacher = models.get("A") if name == "C+KD" else None
            _, variants[f"{name} scratch"] = runner.run(name, f"{name} scratch", scratch=True, teacher=teacher)
    if cfg.perceiver_init_ablation and "C" in cfg.variants:
        edgetam = cfg.replace(perceiver_branch_lr_scale=1.0)
        model_cfg = variant_model("C", cfg.model).replace(perceiver_init="random", perceiver_branch_gain=None)
        label = "C EdgeTAM init"
        _, variants[label] = runner.run("C", label, scratch=scratch, cfg=edgetam, model_cfg=model_cfg)


def _add_floors(variants: dict[str, dict[str, float]], eval_set: VideoBatch) -> dict[str, float]:
    """The copy-first-frame floor (a row of its own) and, beside every variant, its J&F above both floors."""
    copy = score_tracks(copy_first_frame_tracks(eval_set))
    d_cal = variants.get("D", {}).get("JF_calibrated", math.nan)
    for row in variants.values():
        row["JF_minus_copy"] = row["JF"] - copy["JF"]
        row["JF_calibrated_minus_D_calibrated"] = row.get("JF_calibrated", math.nan) - d_cal
    variants[COPY] = {**copy, "JF_minus_copy": 0.0}
    return {"copy_first_frame_JF": copy["JF"], "D_calibrated_JF": d_cal}


def _interval(values: list[float]) -> dict[str, Any]:
    """Mean and 95% Student-t interval of per-seed values (no interval for a single seed)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"values": values, "mean": mean, "low": math.nan, "high": math.nan}
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return {"values": values, "mean": mean, "low": mean - half, "high": mean + half}


def _seed_differences(runner: _Runner, variants: dict[str, dict[str, float]], scratch: bool) -> dict[str, Any]:
    """B - A and C - A at every seed of the fine-tuning stage (seed 0 of this run is the main variants)."""
    cfg, ctx = runner.cfg, runner.ctx
    if not all(n in variants for n in SEEDED_VARIANTS):
        return {}
    jf = {n: [variants[n]["JF"]] for n in SEEDED_VARIANTS}
    for k in range(1, cfg.n_seeds):
        for name in SEEDED_VARIANTS:
            seed = ctx.seed + k
            _, row = runner.run(name, f"{name} seed {seed}", scratch=scratch, calibrate=False, seed=seed)
            jf[name].append(row["JF"])
    out = {"seeds": [ctx.seed + k for k in range(cfg.n_seeds)], **{f"JF_{n}": v for n, v in jf.items()}}
    for other in ("B", "C"):
        out[f"{other}-A"] = _interval([x - a for x, a in zip(jf[other], jf["A"], strict=True)])
    return out


def _latent_sweep(runner: _Runner, variants: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """C at each latent grid of ``cfg.latent_sweep`` (and C itself): J&F against bytes stored relative to A."""
    cfg = runner.cfg
    if not cfg.latent_sweep or "A" not in variants or "C" not in variants:
        return []
    a_bytes = variants["A"]["bytes_per_frame"]
    base = f"{cfg.model.n_global}+{cfg.model.patch_grid[0]}x{cfg.model.patch_grid[1]}"
    rows = [{"grid": base, "JF": variants["C"]["JF"]}]
    for spec in cfg.latent_sweep:
        n_global, grid = parse_latent_grid(spec)
        model_cfg = variant_model("C", cfg.model).replace(n_global=n_global, patch_grid=grid)
        _, row = runner.run("C", f"C {spec}", scratch=cfg.init == "scratch", calibrate=False, model_cfg=model_cfg)
        rows.append({"grid": spec, "JF": row["JF"]})
    for row in rows:
        n_global, grid = parse_latent_grid(row["grid"])
        row["tokens"] = n_global + grid[0] * grid[1]
        row["storage_ratio"] = row["tokens"] * cfg.model.mem_dim * BYTES_PER_VALUE / a_bytes
    return sorted(rows, key=lambda r: r["storage_ratio"])


def _plots(ctx: RunContext, runner: _Runner, variants: dict[str, Any], sweep: list[dict[str, Any]]) -> None:
    main = {k: v for k, v in runner.curves.items() if k in variants}
    line_plot(ctx, "train_loss", main, xlabel="step", ylabel="loss (task + KD)", markers=False)
    bar_plot(ctx, "jf", {n: v["JF"] for n, v in variants.items()}, ylabel="J&F (%)")
    if sweep:
        xs, ys = [r["storage_ratio"] for r in sweep], [r["JF"] for r in sweep]
        line_plot(ctx, "latent_sweep", {"C": (xs, ys)}, xlabel="storage / A's", ylabel="J&F (%)", logx=True)


def _claims(v: dict[str, dict[str, float]], seeds: dict[str, Any]) -> tuple[Claim, list[Claim]]:
    needed = ("A", "B", "C", "C'", "C+KD", "D")
    if not all(n in v for n in needed):
        return Claim("variants run", "count", float(sum(n in v for n in needed)), 6.0, ">="), []
    a, b, c, d = v["A"], v["B"], v["C"], v["D"]
    n = len(seeds["seeds"])
    b_minus_a = seeds["B-A"]["mean"]
    head = Claim(f"B (EfficientTAM) J&F - A (SAM 2) J&F, mean of {n} seeds", "jf_diff", b_minus_a, -2.0, ">=")
    checks = [
        Claim("B/A cross-attention FLOPs", "flops_ratio", b["cross_core_gflops"] / a["cross_core_gflops"], 0.3, "<="),
        Claim(f"C (EdgeTAM) J&F - A J&F, mean of {n} seeds", "jf_diff", seeds["C-A"]["mean"], -4.0, ">="),
        Claim("C/A memory-attention latency, full bank", "latency_ratio", c["memattn_ms"] / a["memattn_ms"], 0.5, "<="),
        Claim("C/A bytes stored per frame", "storage_ratio", c["bytes_per_frame"] / a["bytes_per_frame"], 0.125, "<="),
        Claim("C J&F - C' (global only) J&F", "jf_diff", c["JF"] - v["C'"]["JF"], 0.0, ">="),
        Claim("C+KD J&F - C J&F", "jf_diff", v["C+KD"]["JF"] - c["JF"], 0.0, ">="),
        Claim("informative: A J&F - D J&F on all videos", "jf_diff", a["JF"] - d["JF"], 20.0, ">="),
        Claim("A J&F - D J&F on occluded videos", "jf_diff", a["JF_occluded"] - d["JF_occluded"], 0.0, ">="),
        Claim("B J&F - D J&F on occluded videos", "jf_diff", b["JF_occluded"] - d["JF_occluded"], 0.0, ">="),
    ]
    return head, checks


def _calibrated_differences(v: dict[str, dict[str, float]]) -> dict[str, float]:
    """The J&F comparisons again at val-calibrated thresholds: a diagnostic beside the claims, not a claim."""
    pairs = {"C-A": ("C", "A"), "B-A": ("B", "A"), "C-C'": ("C", "C'"), "C+KD-C": ("C+KD", "C"), "A-D": ("A", "D")}
    return {
        f"calibrated_jf_diff_{key}": v[x]["JF_calibrated"] - v[y]["JF_calibrated"]
        for key, (x, y) in pairs.items()
        if "JF_calibrated" in v.get(x, {}) and "JF_calibrated" in v.get(y, {})
    }


def _notes(cfg: TamConfig) -> str:
    recipe = (
        f"A pretrained {cfg.pretrain_steps} steps (cached), then every variant starts from it and trains "
        f"{cfg.steps} steps; 'scratch' rows train {cfg.pretrain_steps + cfg.steps} steps from scratch."
        if cfg.init == "from_A"
        else f"Every variant trains {cfg.pretrain_steps + cfg.steps} steps from scratch (the ablation recipe)."
    )
    return (
        f"{recipe} Seeds vary the fine-tuning stage (fresh modules, clip stream); A's pretraining is shared. "
        "Latency is measured at 1 thread, interleaved, on a possibly shared machine; FLOPs are analytic at a "
        "full bank. KD weights are an assumption [recon]."
    )
