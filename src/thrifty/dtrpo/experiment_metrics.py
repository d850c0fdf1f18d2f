"""Measurements of the dTRPO reproduction beyond accuracy: update wall-clock, estimator variance, plots."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from thrifty.core.bench import time_fn
from thrifty.core.runs import RunContext
from thrifty.dtrpo.algorithm import DTRPOTrainer, PreferencePairs
from thrifty.dtrpo.config import DTRPOConfig
from thrifty.dtrpo.estimators import LogProbEstimator, logratio
from thrifty.dtrpo.model import mdlm_loss

EstimatorFactory = Callable[[str, DTRPOConfig], LogProbEstimator]


def _head(pairs: PreferencePairs, n: int) -> PreferencePairs:
    idx = torch.arange(min(n, len(pairs)), device=pairs.prompt.device)
    return PreferencePairs(
        pairs.prompt[idx],
        pairs.chosen[idx],
        pairs.rejected[idx],
        None if pairs.chosen_order is None else pairs.chosen_order[idx],
        None if pairs.rejected_order is None else pairs.rejected_order[idx],
    )


def _update_fn(
    arm: str,
    sft_model: nn.Module,
    batch_pairs: PreferencePairs,
    cfg: DTRPOConfig,
    make_estimator: EstimatorFactory,
    seed: int,
) -> Callable[[], None]:
    """One optimiser update of ``arm`` on a fixed batch (a throwaway copy of the SFT model)."""
    policy = copy.deepcopy(sft_model).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)  # the update's cost does not depend on lr
    if arm == "sft":
        gen = torch.Generator().manual_seed(seed)

        def loss() -> torch.Tensor:
            return mdlm_loss(policy, batch_pairs.prompt, batch_pairs.chosen, cfg.block, generator=gen)
    else:
        trainer = DTRPOTrainer(
            policy,
            copy.deepcopy(sft_model),
            make_estimator(arm, cfg),
            mask_seed=seed,
        )
        trainer.prepare(batch_pairs)
        batch = trainer.make_batch(
            batch_pairs, torch.arange(len(batch_pairs), device=batch_pairs.prompt.device), torch.Generator()
        )

        def loss() -> torch.Tensor:
            return trainer.loss(policy, batch)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    return step


def update_times_ms(
    cfg: DTRPOConfig, ctx: RunContext, sft_model: nn.Module, pairs: PreferencePairs, make_estimator: EstimatorFactory
) -> dict[str, Any]:
    """Median ms per update (loss, backward, AdamW step) of every arm on one batch of ``dpo_batch`` pairs.

    Reference scores are cached (as in training), so the timed update is the policy's work only. Arms are
    timed round-robin ``timing_rounds`` times (to spread load from other processes over all arms).

    Returns:
        ``{"median_ms": {arm: lowest round median}, "ratio_rounds": [dtrpo_rec / exact per round]}``.
    """
    batch_pairs = _head(pairs, cfg.dpo_batch)
    fns = {arm: _update_fn(arm, sft_model, batch_pairs, cfg, make_estimator, ctx.seed) for arm in cfg.arms}
    rounds: list[dict[str, float]] = []
    for _ in range(cfg.timing_rounds):
        rounds.append(
            {
                arm: time_fn(fn, threads=ctx.threads, min_run_time=cfg.timing_s, warmup=1).median_ms
                for arm, fn in fns.items()
            }
        )
    best = {arm: min(r[arm] for r in rounds) for arm in cfg.arms}
    ratios = [r["dtrpo_rec"] / r["exact"] if "dtrpo_rec" in r else float("nan") for r in rounds]
    return {"median_ms": best, "ratio_rounds": ratios}


@torch.no_grad()
def estimator_variance(
    policy: nn.Module,
    ref: nn.Module,
    pairs: PreferencePairs,
    cfg: DTRPOConfig,
    ctx: RunContext,
    make_estimator: EstimatorFactory,
) -> dict[str, float]:
    """Per chosen response, the variance of the estimated log-ratio across ``var_seeds`` mask seeds, averaged.

    All estimators score the same trained policy against the SFT reference. The exact-trajectory estimator
    replays the recorded order and so has zero variance by construction.
    """
    sub = _head(pairs, cfg.var_pairs)
    policy.eval()
    out: dict[str, float] = {}
    for arm in cfg.arms:
        if arm == "sft":
            continue
        est = make_estimator(arm, cfg)
        values = []
        for seed in range(cfg.var_seeds):
            plan = est.plan(
                sub.prompt, sub.chosen, torch.Generator().manual_seed(ctx.seed + 100 + seed), sub.chosen_order
            )
            values.append(logratio(policy, ref, sub.prompt, sub.chosen, plan))
        out[arm] = float(torch.stack(values).double().var(dim=0).mean())
    return out


def plot_arms(ctx: RunContext, variants: dict[str, dict[str, Any]]) -> None:
    """Held-out accuracy per variant with its 95% interval, and accuracy against wall-clock per update."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(variants)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    errors = [variants[n].get("ci95", 0.0) for n in names]
    left.bar(names, [variants[n]["accuracy"] for n in names], yerr=errors, color="tab:blue", capsize=3)
    left.set_ylabel("held-out exact match (95% interval)")
    left.tick_params(axis="x", rotation=45)
    for name in names:
        if "ms_per_update" in variants[name]:
            right.scatter(variants[name]["ms_per_update"], variants[name]["accuracy"])
            right.annotate(name, (variants[name]["ms_per_update"], variants[name]["accuracy"]))
    right.axhline(variants["sft_start"]["accuracy"], ls="--", color="gray", label="SFT start")
    right.set_xscale("log")
    right.set_xlabel("ms per update (log)")
    right.set_ylabel("held-out exact match")
    right.legend()
    ctx.save_figure(fig, "dtrpo_arms")
