"""Arms of the dTRPO reproduction: equal-budget training, a per-arm ``(beta, lr)`` sweep, seeds, intervals.

Every variant trains from the same SFT weights for ``dpo_steps`` steps of ``dpo_batch`` pairs. Seed ``s``
fixes the batch order (the same pair indices in every arm, so arms are paired by seed) and the masks. The
sweep runs on seed 0 and is selected on validation accuracy; seeds ``1 .. n_seeds-1`` rerun the selected
setting. Intervals are 95% Student-t over seeds.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.dtrpo.algorithm import DTRPOTrainer, PreferencePairs
from thrifty.dtrpo.config import DTRPOConfig
from thrifty.dtrpo.estimators import LogProbEstimator
from thrifty.dtrpo.model import mdlm_loss
from thrifty.dtrpo.tasks import AdditionTask

EstimatorFactory = Callable[[str, DTRPOConfig], LogProbEstimator]
AccuracyFn = Callable[[nn.Module, AdditionTask, Tensor, DTRPOConfig, torch.device], float]
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, half-width)`` of the 95% Student-t interval of the mean (``inf`` half-width for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("inf")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, _T95.get(n - 1, 1.96) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Variant:
    """One arm and its NLL weight: ``nll_weight = 0`` is pure DPO, ``> 0`` adds the RPO term."""

    arm: str
    nll_weight: float

    @property
    def name(self) -> str:
        return self.arm if self.arm == "sft" or self.nll_weight == 0 else f"{self.arm}+rpo"


@dataclass
class VariantRuns:
    """What one variant measured: the sweep on validation (seed 0) and the selected setting's seeds."""

    variant: Variant
    beta: float
    lr: float
    val_accuracy: float
    sweep_val: dict[str, float]
    test_accs: list[float]
    forwards_per_pair: int
    train_s: list[float] = field(default_factory=list)
    policy: nn.Module | None = None


def _seeded(ctx: RunContext, seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(ctx.seed + 1000 * seed + stream)


def train_variant(
    variant: Variant,
    setting: tuple[float, float],
    seed: int,
    models: tuple[nn.Module, nn.Module],
    pairs: PreferencePairs,
    cfg: DTRPOConfig,
    ctx: RunContext,
    estimator: LogProbEstimator | None,
    refs: dict[tuple[str, int], DTRPOTrainer],
) -> nn.Module:
    """Train ``variant`` at ``setting = (beta, lr)`` with seed ``seed`` from ``models = (sft, frozen ref)``."""
    beta, lr = setting
    policy = copy.deepcopy(models[0]).train()
    train_cfg = TrainConfig(steps=cfg.dpo_steps, lr=lr, min_lr_ratio=1.0, log_every=max(1, cfg.dpo_steps // 5))
    batches = _seeded(ctx, seed, 3)  # the same pair batches in every arm for a given seed
    series = f"train/{variant.name}/beta{beta:g}_lr{lr:g}/seed{seed}"
    if estimator is None:  # continued SFT on the chosen responses
        gen = _seeded(ctx, seed, 4)

        def loss_fn(m: nn.Module, idx: Tensor) -> Tensor:
            return mdlm_loss(m, pairs.prompt[idx], pairs.chosen[idx], cfg.block, generator=gen)

        def batch_fn(step: int) -> Tensor:
            return torch.randint(len(pairs), (cfg.dpo_batch,), generator=batches).to(ctx.device)

        train(policy, loss_fn, batch_fn, train_cfg, ctx=ctx, series=series)
        return policy
    mask_seed = ctx.seed + 1000 * seed + 5
    trainer = DTRPOTrainer(policy, models[1], estimator, beta=beta, mask_seed=mask_seed, nll_weight=variant.nll_weight)
    key = (variant.arm, seed)
    if key in refs:
        trainer.adopt_reference(refs[key])
    else:
        trainer.prepare(pairs)
        refs[key] = trainer
    trainer.train(pairs, train_cfg, batch_size=cfg.dpo_batch, ctx=ctx, series=series, generator=batches)
    return policy


def _settings(variant: Variant, cfg: DTRPOConfig) -> list[tuple[float, float]]:
    if variant.arm == "sft":  # no beta: sweep the distinct learning rates
        return [(0.0, lr) for lr in sorted({lr for _, lr in cfg.sweep})]
    return [(float(b), float(lr)) for b, lr in cfg.sweep]


def run_variants(
    variants: Sequence[Variant],
    sft_model: nn.Module,
    pairs: PreferencePairs,
    data: tuple[AdditionTask, Tensor, Tensor],
    cfg: DTRPOConfig,
    ctx: RunContext,
    make_estimator: EstimatorFactory,
    accuracy: AccuracyFn,
) -> dict[str, VariantRuns]:
    """Sweep every variant on seed 0 (validation accuracy), then rerun its best setting on the other seeds."""
    task, val, test = data
    models = (sft_model, copy.deepcopy(sft_model).eval())
    refs: dict[tuple[str, int], DTRPOTrainer] = {}
    out: dict[str, VariantRuns] = {}
    for variant in variants:
        est = None if variant.arm == "sft" else make_estimator(variant.arm, cfg)
        fwd = 1 if est is None else 2 * est.forwards_per_response(cfg.resp_len)
        tried = []
        for setting in _settings(variant, cfg):
            start = time.perf_counter()
            policy = train_variant(variant, setting, 0, models, pairs, cfg, ctx, est, refs)
            elapsed = time.perf_counter() - start
            tried.append((accuracy(policy, task, val, cfg, ctx.device), setting, policy, elapsed))
        best = max(range(len(tried)), key=lambda i: tried[i][0])
        val_acc, setting, policy, elapsed = tried[best]
        runs = VariantRuns(
            variant,
            setting[0],
            setting[1],
            val_acc,
            {f"beta={s[0]:g},lr={s[1]:g}": a for a, s, _, _ in tried},
            [accuracy(policy, task, test, cfg, ctx.device)],
            fwd,
            [elapsed],
            policy,
        )
        for seed in range(1, cfg.n_seeds):
            start = time.perf_counter()
            seeded = train_variant(variant, setting, seed, models, pairs, cfg, ctx, est, refs)
            runs.train_s.append(time.perf_counter() - start)
            runs.test_accs.append(accuracy(seeded, task, test, cfg, ctx.device))
        out[variant.name] = runs
    return out


def summarise(runs: dict[str, VariantRuns], base_acc: float, cfg: DTRPOConfig) -> dict[str, dict[str, Any]]:
    """Per variant: mean test accuracy and its interval, and the gain over continued SFT paired by seed."""
    sft = runs["sft"].test_accs
    table: dict[str, dict[str, Any]] = {}
    for name, r in runs.items():
        mean, half = t_interval(r.test_accs)
        gain, gain_half = t_interval([a - s for a, s in zip(r.test_accs, sft, strict=True)])
        table[name] = {
            "arm": r.variant.arm,
            "nll_weight": r.variant.nll_weight,
            "beta": r.beta,
            "lr": r.lr,
            "val_accuracy": r.val_accuracy,
            "sweep_val": r.sweep_val,
            "test_accs": r.test_accs,
            "accuracy": mean,
            "ci95": half,
            "gain_vs_sft_start": mean - base_acc,
            "gain_vs_continued_sft": gain,
            "gain_ci95": gain_half if name != "sft" else 0.0,
            "policy_forwards_per_pair": r.forwards_per_pair,
            "train_s": sum(r.train_s) / len(r.train_s),
        }
    return table
