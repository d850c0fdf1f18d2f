"""``thrifty reproduce flashnas``: hardware-in-the-loop search on a tiny Shakespeare LM.

Stages: train (or load) the backbone near convergence; collect importance scores; refit the latency models
from the stored ExecuTorch dataset; screen candidates with three searches (random, FLOPs-guided,
latency-model-guided), each repeated over seeds at an equal number of low-fidelity evaluations; re-train the
screened front at the final budget and measure it on ExecuTorch, interleaved and repeated; read the speed-up
of the fastest candidate within each loss bound (the pick: within ``max_loss_increase``); compare the pick
with a param-matched deep-thin baseline, and inheritance with random init. The claims, including the two
``informative: ...`` checks (timing spread against the headline effect; search strategies against their seed
spread), are computed in :mod:`thrifty.flashnas.experiment_claims`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from thrifty.core.bench import timed_under_load
from thrifty.core.checkpoint import cache_dir
from thrifty.core.runs import Results, RunContext
from thrifty.flashnas.algorithm import ImportanceScores, extract_subnet
from thrifty.flashnas.config import FlashNASConfig, SubnetConfig
from thrifty.flashnas.dataset import LatencyDataset
from thrifty.flashnas.experiment_claims import build_results
from thrifty.flashnas.latency import (
    LatencyKey,
    dense_gmacs_per_token,
    interleaved_times,
    latency_callable,
    param_count,
    total_gmacs,
)
from thrifty.flashnas.latency_model import LatencyModel, spearman
from thrifty.flashnas.model import FlashLM
from thrifty.flashnas.plots import front_plot, latency_fit_plot, pareto_plot
from thrifty.flashnas.saved import save_flash_lm
from thrifty.flashnas.search import SearchSpace, hypervolume_2d, run_search
from thrifty.flashnas.selection import TimingStats, fastest_within, pick_finalists
from thrifty.flashnas.training import (
    TextData,
    calibration_batches,
    continue_pretraining,
    get_backbone,
    val_bpc,
)

STRATEGIES = ("random", "flops", "latency")
TARGET_PREFILL_SPEEDUP = 1.5  # the target; it also sets the latency budget of the search


def latency_report(
    dataset: LatencyDataset, residual: str = "gp"
) -> tuple[dict[str, LatencyModel], dict[str, dict[str, float]], dict[str, tuple]]:
    """Fit a latency model per measured key; LOO R^2 and rank correlations of model and proxies.

    Returns ``(models, report, key -> (measured ms, leave-one-out predicted ms))``.
    """
    models, report, loo_pairs = {}, {}, {}
    for key, ms in sorted(dataset.ms.items()):
        parsed = LatencyKey.parse(key)
        gp = LatencyModel(parsed.mode, parsed.seq_len, residual=residual)  # type: ignore[arg-type]
        linear = LatencyModel(parsed.mode, parsed.seq_len, residual="none")
        loo = gp.loo_predictions(dataset.archs, ms)
        report[key] = {
            "n": len(ms),
            "loo_r2_linear_gp": 1 - float(((ms - loo) ** 2).sum() / ((ms - ms.mean()) ** 2).sum()),
            "loo_r2_linear_only": linear.loo_r2(dataset.archs, ms),
            "loo_r2_log_linear_gp": gp.loo_r2(dataset.archs, ms, log=True),
            "rho_latency_model": spearman(loo, ms),
            "rho_params": spearman([param_count(a) for a in dataset.archs], ms),
            "rho_flops_dense": spearman([dense_gmacs_per_token(a) for a in dataset.archs], ms),
            "rho_macs_total": spearman([total_gmacs(a, parsed.mode, parsed.seq_len) for a in dataset.archs], ms),
            **{f"cost_{k}": v for k, v in linear.fit(dataset.archs, ms).costs().items()},
        }
        models[key] = gp.fit(dataset.archs, ms)
        loo_pairs[key] = (ms, loo)
    return models, report, loo_pairs


def skip_speedups(dataset: LatencyDataset) -> dict[str, dict[str, float]]:
    """Speed-ups of the stored attention-skipping series over its all-attention member."""
    series = {r["name"]: r["ms"] for r in dataset.raw.get("skip_series", [])}
    full = series.get("attn_4of4")
    if not full:
        return {}
    return {name: {k: full[k] / ms[k] for k in ms} for name, ms in series.items()}


def deep_thin_config(backbone: FlashLM, space: SearchSpace, target_params: int) -> SubnetConfig:
    """Hand-made baseline (MobileLLM-style deep-thin): every layer kept, all with attention; width, FFN and
    KV groups (heads thin with the width) chosen on the search grid to match ``target_params``."""
    bcfg = backbone.cfg
    group = bcfg.n_heads // bcfg.n_kv_heads
    best = None
    for width in space.widths:
        for ffn in space.ffns:
            for kv in space.kv_heads:
                sub = SubnetConfig(
                    tuple(range(bcfg.n_layers)), width, (ffn,) * bcfg.n_layers, kv * group, kv, (True,) * bcfg.n_layers
                )
                gap = abs(param_count(sub.arch(bcfg)) - target_params)
                if width < bcfg.d_model and (best is None or gap < best[0]):
                    best = (gap, sub)
    if best is None:
        raise ValueError("space: expected at least one width below the backbone's for the deep-thin baseline")
    return best[1]


def deployable(model: FlashLM) -> FlashLM:
    """A CPU copy on the export-friendly attention path."""
    out = copy.deepcopy(model).cpu().eval()
    out.attn_impl = "matmul"
    return out


class Timer:
    """Runtime callables (ExecuTorch when available) built once per model, timed interleaved and repeated."""

    def __init__(self, cfg: FlashNASConfig) -> None:
        from thrifty.core.deploy import executorch_available, set_executorch_threads

        self.cfg = cfg
        self.backend = "executorch" if cfg.use_executorch and executorch_available() else "eager"
        if self.backend == "executorch":
            set_executorch_threads(1)
        torch.set_num_threads(1)
        self.keys = [LatencyKey("prefill", t) for t in cfg.latency_seq_lens] + [LatencyKey("decode", cfg.decode_kv_len)]
        self.calls: dict[str, Callable[[], object]] = {}
        self.cache = cache_dir("executorch") if cfg.lowering_cache else None
        self.sizes: dict[str, float] = {}

    def add(self, name: str, model: FlashLM) -> None:
        for key in self.keys:
            fn, size = latency_callable(
                deployable(model), mode=key.mode, seq_len=key.seq_len, backend=self.backend, cache=self.cache
            )
            self.calls[f"{name}/{key.name}"] = fn
            self.sizes[name] = max(self.sizes.get(name, 0.0), size)

    def measure(self, names: list[str]) -> dict[str, dict[str, TimingStats]]:
        """``name -> key -> TimingStats`` of ``names``, every call round-robin (machine drift hits all alike)."""
        calls = {label: fn for label, fn in self.calls.items() if label.split("/")[0] in names}
        times = interleaved_times(calls, warmup=self.cfg.latency_warmup, reps=self.cfg.latency_reps)
        out: dict[str, dict[str, TimingStats]] = {name: {} for name in names}
        for label, ms in times.items():
            name, key = label.split("/")
            out[name][key] = TimingStats.of(ms)
        return out


def _screen(
    cfg: FlashNASConfig,
    ctx: RunContext,
    data: TextData,
    backbone: FlashLM,
    scores: ImportanceScores,
    pool: list[SubnetConfig],
    pred: np.ndarray,
    ref_loss: float,
) -> tuple[dict[str, list[list[int]]], dict[int, float]]:
    """Every strategy, ``search_repeats`` times with its own seeds, at ``search_budget`` low-fidelity evaluations.

    Returns ``(strategy -> [evaluated indices per repeat], pool index -> screened val bits/char)``.
    """
    bpc: dict[int, float] = {}

    def evaluate(i: int) -> float:  # cached: a candidate drawn twice is trained once (training is seeded)
        if i not in bpc:
            sub = extract_subnet(backbone, pool[i], scores)
            bpc[i] = continue_pretraining(sub, backbone, cfg, ctx, data, cfg.cpt_steps, series=f"cpt/cand{i}")[-1]
            ctx.log("search/eval", len(bpc), candidate=i, bpc=bpc[i], pred_prefill_ms=float(pred[i]))
        return bpc[i]

    n_init = min(3, cfg.search_budget)
    flops = np.array([dense_gmacs_per_token(c.arch(backbone.cfg)) for c in pool])
    evals: dict[str, list[list[int]]] = {s: [] for s in STRATEGIES}
    for rep in ctx.progress(range(cfg.search_repeats), desc="search repeats"):
        seeds = {s: ctx.seed * 1000 + 10 * rep + k for k, s in enumerate(STRATEGIES)}  # no shared first draws
        common = {"n_init": n_init, "ref_loss": ref_loss}
        evals["random"].append(
            run_search(pool, backbone.cfg, evaluate, cfg.search_budget, method="random", seed=seeds["random"])
        )
        for name, cost in (("flops", flops), ("latency", pred)):
            evals[name].append(
                run_search(
                    pool,
                    backbone.cfg,
                    evaluate,
                    cfg.search_budget,
                    method="ehvi",
                    cost=cost,
                    seed=seeds[name],
                    **common,
                )
            )
    return evals, bpc


def _strategy_metrics(
    evals: dict[str, list[list[int]]], bpc: dict[int, float], pred: np.ndarray, budget_ms: float, ref: tuple
) -> dict[str, dict[str, Any]]:
    """Per strategy: hypervolume and best screened loss within the latency budget, one value per repeat."""
    out = {}
    for name, repeats in evals.items():
        hv, best = [], []
        for chosen in repeats:
            losses, costs = np.array([bpc[i] for i in chosen]), pred[chosen]
            hv.append(hypervolume_2d(losses, costs, ref))
            within = losses[costs <= budget_ms]
            best.append(float(within.min()) if len(within) else float("nan"))
        out[name] = {
            "hypervolume": hv,
            "hypervolume_mean": float(np.mean(hv)),
            "hypervolume_std": float(np.std(hv, ddof=1)) if len(hv) > 1 else float("nan"),
            "best_bpc_within_budget": best,
            "evaluations": len(repeats[0]) if repeats else 0,
        }
    return out


def _finalise(
    cfg: FlashNASConfig,
    ctx: RunContext,
    data: TextData,
    backbone: FlashLM,
    scores: ImportanceScores,
    configs: dict[str, SubnetConfig],
) -> tuple[dict[str, FlashLM], dict[str, list[float]]]:
    """Each subnet inherited and continued for ``final_steps``; ``name -> [bpc at half budget, bpc at end]``."""
    models, curves = {}, {}
    for name, sub_cfg in configs.items():
        model = extract_subnet(backbone, sub_cfg, scores)
        half = max(cfg.final_steps // 2, 1)
        curves[name] = continue_pretraining(
            model, backbone, cfg, ctx, data, cfg.final_steps, series=f"final/{name}", eval_every=half
        )
        models[name] = model.eval()
        meta = {"subnet": sub_cfg.to_dict(), "val_bpc": curves[name][-1], "seed": ctx.seed}
        save_flash_lm(ctx.out_dir / "models" / name, model, meta)
    return models, curves


def _inheritance(
    cfg: FlashNASConfig,
    ctx: RunContext,
    data: TextData,
    backbone: FlashLM,
    sub_cfg: SubnetConfig,
    inherited_bpc: float,
) -> dict[str, float]:
    """The pick's architecture from random init, continued for the same ``cpt_steps`` as its screening."""
    torch.manual_seed(ctx.seed + 5)
    scratch = FlashLM(sub_cfg.arch(backbone.cfg), "sdpa").to(ctx.device)
    random_bpc = continue_pretraining(scratch, backbone, cfg, ctx, data, cfg.cpt_steps, series="cpt/random_init")[-1]
    return {"inherited_bpc": inherited_bpc, "random_init_bpc": random_bpc, "cpt_steps": cfg.cpt_steps}


def _variants(
    backbone: FlashLM,
    base_bpc: float,
    models: dict[str, FlashLM],
    cfgs: dict[str, SubnetConfig],
    curves: dict[str, list[float]],
    timings: dict[str, dict[str, TimingStats]],
    timer: Timer,
    lat_models: dict[str, LatencyModel],
) -> dict[str, dict[str, Any]]:
    """One row per measured model: loss (half and full budget), relative loss, min/median/IQR latency, shape."""
    out: dict[str, dict[str, Any]] = {
        "backbone": {"val_bpc": base_bpc, "rel_loss": 0.0, "params": backbone.num_params()}
    }
    for name, model in models.items():
        arch = cfgs[name].arch(backbone.cfg)
        out[name] = {
            "val_bpc": curves[name][-1],
            "val_bpc_half_budget": curves[name][0],
            "rel_loss": curves[name][-1] / base_bpc - 1,
            "params": model.num_params(),
            "layers": len(cfgs[name].layers),
            "attn_layers": sum(cfgs[name].attn),
            "d_model": arch.d_model,
            "ffn": list(arch.ffn),
        }
    for name, row in out.items():
        row["pte_mb"] = timer.sizes.get(name, 0.0)
        for key, stats in timings.get(name, {}).items():
            row |= {f"{key}_min_ms": stats.min_ms, f"{key}_ms": stats.median_ms, f"{key}_rel_iqr": stats.rel_spread}
        arch = backbone.cfg if name == "backbone" else cfgs[name].arch(backbone.cfg)
        for key, model in lat_models.items():
            row[f"pred_{key}_ms"] = float(model.predict([arch])[0][0])
    return out


def run_experiment(cfg: FlashNASConfig, ctx: RunContext) -> Results:
    """The reproduction; see the module docstring."""
    torch.set_num_threads(ctx.threads)
    data = TextData.load(ctx.seed)
    backbone, cached = get_backbone(cfg, ctx, data)
    backbone.eval()
    base_bpc = val_bpc(backbone, cfg, ctx, data)
    save_flash_lm(ctx.out_dir / "models" / "backbone", backbone, {"val_bpc": base_bpc, "seed": ctx.seed})
    scores = ImportanceScores.collect(backbone, calibration_batches(cfg, ctx, data))

    dataset = LatencyDataset.load(cfg.latency_dataset) if cfg.latency_dataset else LatencyDataset.load()
    lat_models, lat_report, loo_pairs = latency_report(dataset, cfg.latency_residual)
    latency_fit_plot(ctx, loo_pairs)
    pre_key = max((k for k in lat_models if k.startswith("prefill")), key=lambda k: LatencyKey.parse(k).seq_len)

    space = SearchSpace.from_backbone(backbone.cfg, cfg.width_step, cfg.ffn_step)
    pool = space.pool(backbone, scores, cfg.n_candidates, ctx.generator(11))
    pred = lat_models[pre_key].predict([c.arch(backbone.cfg) for c in pool])[0]
    base_pred = float(lat_models[pre_key].predict([backbone.cfg])[0][0])
    ref = (base_bpc * (1 + cfg.screen_loss_bound), base_pred)
    evals, bpc = _screen(cfg, ctx, data, backbone, scores, pool, pred, ref[0])
    budget_ms = base_pred / TARGET_PREFILL_SPEEDUP
    strat = _strategy_metrics(evals, bpc, pred, budget_ms, ref)

    screened = [i for repeats in evals.values() for chosen in repeats for i in chosen]
    finalist_ids = pick_finalists(screened, bpc, pred, cfg.final_candidates)
    configs = {f"cand{i}": pool[i] for i in finalist_ids}
    finals, curves = _finalise(cfg, ctx, data, backbone, scores, configs)
    timer = Timer(cfg)
    for name, model in {"backbone": backbone, **finals}.items():
        timer.add(name, model)
    timings, load = timed_under_load(lambda: timer.measure(["backbone", *finals]))
    pre = f"prefill_{max(cfg.latency_seq_lens)}"
    rel = {name: curves[name][-1] / base_bpc - 1 for name in finals} | {"backbone": 0.0}
    median_pre = {name: timings[name][pre].median_ms for name in rel}
    chosen = fastest_within(rel, median_pre, cfg.max_loss_increase) or "backbone"

    # The pruned model the baselines are compared with: the pick, or (when no finalist is within the bound and
    # the pick is the backbone itself) the finalist with the lowest loss.
    compared = chosen if chosen in configs else min(finals, key=lambda name: rel[name])
    pick = int(compared[4:])
    thin_cfg = deep_thin_config(backbone, space, param_count(pool[pick].arch(backbone.cfg)))
    thin, thin_curve = _finalise(cfg, ctx, data, backbone, scores, {"deep_thin": thin_cfg})
    timer.add("deep_thin", thin["deep_thin"])
    timings["deep_thin"] = timer.measure(["backbone", compared, "deep_thin"])["deep_thin"]  # interleaved with both
    curves |= thin_curve
    inherit = _inheritance(cfg, ctx, data, backbone, pool[pick], bpc[pick])
    all_cfgs = {**configs, "deep_thin": thin_cfg}
    variants = _variants(backbone, base_bpc, {**finals, **thin}, all_cfgs, curves, timings, timer, lat_models)
    pareto_plot(ctx, pool, bpc, {k: [i for c in v for i in c] for k, v in evals.items()}, pred, variants, pre_key)
    front_plot(ctx, variants, pre, chosen)
    info = {
        "budget_ms": budget_ms,
        "backbone_pred_ms": base_pred,
        "hv_ref": list(ref),
        "key": pre_key,
        "drift": dataset.drift(),
        "chosen": chosen,
        "compared_with_baselines": compared,
        "chosen_config": configs[chosen].to_dict() if chosen in configs else None,
        "deep_thin": thin_cfg.to_dict(),
        "finalists": {f"cand{i}": pool[i].to_dict() for i in finalist_ids},
        "load_avg_1min": load,
        "backbone_cached": cached,
        "backend": timer.backend,
    }
    return build_results(cfg, variants, lat_report, strat, inherit, skip_speedups(dataset), info)
