"""The claims of the flashnas reproduction, computed from the measured variants (see ``experiment.py``)."""

from __future__ import annotations

import math
from typing import Any

from thrifty.core.runs import Claim, Results
from thrifty.flashnas.config import FlashNASConfig
from thrifty.flashnas.latency_model import spearman
from thrifty.flashnas.selection import fastest_within, paired_difference, speedup_resolution

STRICT = 1e-9  # turns a ">= 0" difference into "> 0"
CPT_SHARE = 0.1  # continued pretraining at most this share of the backbone's training (else CPT is extra training)


def speedups_at_bounds(
    variants: dict[str, dict[str, Any]], bounds: tuple[float, ...], pre: str, dec: str
) -> dict[str, dict[str, Any]]:
    """For each relative-loss bound, the fastest search finalist within it and its speed-ups over the backbone."""
    finalists = {n: v for n, v in variants.items() if n.startswith("cand") or n == "backbone"}
    rel = {n: v["rel_loss"] for n, v in finalists.items()}
    median = {n: v[pre] for n, v in finalists.items()}
    base = variants["backbone"]
    out = {}
    for bound in bounds:
        name = fastest_within(rel, median, bound) or "backbone"
        out[f"+{100 * bound:g}%"] = {
            "model": name,
            "rel_loss": rel[name],
            "prefill_speedup": base[pre] / finalists[name][pre],
            "decode_speedup": base[dec] / finalists[name][dec],
        }
    return out


def _search_claims(strat: dict[str, dict[str, Any]]) -> list[Claim]:
    lat_rand, se_rand = paired_difference(strat["latency"]["hypervolume"], strat["random"]["hypervolume"])
    lat_flops, _ = paired_difference(strat["latency"]["hypervolume"], strat["flops"]["hypervolume"])
    resolution = abs(lat_rand) / se_rand if se_rand and not math.isnan(se_rand) else float("nan")
    if se_rand == 0.0:
        resolution = math.inf if lat_rand else 0.0
    return [
        Claim(
            "informative: search strategies differ beyond their seed spread (|HV latency - random| / SE)",
            "resolution",
            min(resolution, 1e6),
            2.0,
            ">=",
        ),
        Claim(
            "search: latency-guided - random, mean hypervolume (higher is better)", "hv_diff", lat_rand, STRICT, ">="
        ),
        Claim("search: latency-guided - FLOPs-guided, mean hypervolume", "hv_diff", lat_flops, STRICT, ">="),
    ]


def _ranking_stability(variants: dict[str, dict[str, Any]]) -> float:
    finalists = [v for n, v in variants.items() if n.startswith("cand")]
    if len(finalists) < 3:
        return float("nan")
    return spearman([v["val_bpc_half_budget"] for v in finalists], [v["val_bpc"] for v in finalists])


def build_results(
    cfg: FlashNASConfig,
    variants: dict[str, dict[str, Any]],
    lat_report: dict,
    strat: dict[str, dict[str, Any]],
    inherit: dict[str, float],
    skips: dict,
    info: dict[str, Any],
) -> Results:
    """Headline: prefill speed-up of the fastest finalist within ``max_loss_increase``; checks as the issue lists."""
    pre, dec = f"prefill_{max(cfg.latency_seq_lens)}_ms", f"decode_{cfg.decode_kv_len}_ms"
    chosen, base = info["chosen"], variants["backbone"]
    pick, thin = variants[chosen], variants["deep_thin"]
    compared = info["compared_with_baselines"]
    pruned = variants[compared]
    rep = lat_report[info["key"]]
    resolution = speedup_resolution(base[pre], base[pre[:-3] + "_rel_iqr"], pick[pre], pick[pre[:-3] + "_rel_iqr"])
    checks = [
        Claim("pick vs backbone: measured decode speed-up (same model)", "speedup", base[dec] / pick[dec], 1.3, ">="),
        Claim(
            "informative: timing spread smaller than the headline effect (|log speed-up| / IQR noise)",
            "resolution",
            resolution,
            1.0,
            ">=",
        ),
        *_search_claims(strat),
        Claim(
            "ranking stable when the CPT budget doubles (Spearman, finalists)",
            "rho",
            _ranking_stability(variants),
            0.8,
            ">=",
        ),
        Claim(
            "continued pretraining <= 10% of the backbone's training",
            "share",
            cfg.final_steps / cfg.train_steps,
            CPT_SHARE,
            "<=",
        ),
        Claim(
            "pruned model vs param-matched deep-thin: prefill speed-up", "speedup", thin[pre] / pruned[pre], 1.0, ">="
        ),
        Claim("pruned model - deep-thin: val bpc", "bpc_diff", pruned["val_bpc"] - thin["val_bpc"], 0.0, "<="),
        Claim(f"latency model LOO R^2 ({info['key']})", "r2", rep["loo_r2_linear_gp"], 0.9, ">="),
        Claim(
            f"rank corr: latency model - params ({info['key']})",
            "rho_diff",
            rep["rho_latency_model"] - rep["rho_params"],
            0.0,
            ">=",
        ),
        Claim(
            "inheritance - random init at equal CPT steps (bpc)",
            "bpc_diff",
            inherit["inherited_bpc"] - inherit["random_init_bpc"],
            0.0,
            "<=",
        ),
    ]
    headline = Claim(
        f"fastest within +{100 * cfg.max_loss_increase:g}% loss: prefill speed-up at T={max(cfg.latency_seq_lens)}",
        "speedup",
        base[pre] / pick[pre],
        1.5,
        ">=",
    )
    at_bounds = speedups_at_bounds(variants, cfg.loss_bounds, pre, dec)
    notes = (
        f"Latency backend {info['backend']} (1 thread, {cfg.latency_reps} interleaved runs per call; medians decide, "
        f"min and relative IQR beside them; 1-min load average {info['load_avg_1min']}). "
        f"Backbone {'loaded from cache' if info['backbone_cached'] else 'trained in this run'}. "
        f"Pick: {chosen} (the backbone itself when no finalist is within the bound); the pruned model compared "
        f"with deep-thin and random init: {compared}. Speed-ups by loss bound: "
        + "; ".join(
            f"{b}: {v['model']} {v['prefill_speedup']:.2f}x prefill, {v['decode_speedup']:.2f}x decode"
            for b, v in at_bounds.items()
        )
        + ". Search strategies are compared on screened loss and predicted latency over "
        f"{cfg.search_repeats} seeded repeats; only the finalists are re-trained and measured."
    )
    extra = {
        "speedups_at_bounds": at_bounds,
        "latency_models": lat_report,
        "search": strat,
        "inheritance": inherit,
        "attention_skipping": skips,
        **info,
    }
    return Results(variants=variants, headline=headline, checks=checks, extra=extra, notes=notes)
