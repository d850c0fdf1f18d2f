"""A minimal training loop: AdamW, cosine schedule with warm-up, clipping, eval hook, metrics.

The same loop runs single-process or under ``torchrun`` (DDP): ``batch_fn(step)`` returns the global
batch and each rank trains on its slice, so results match single-process training on that batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from thrifty.core.config import Config
from thrifty.core.distributed import all_reduce_mean, current, shard_batch, wrap_model
from thrifty.core.runs import RunContext


@dataclass
class TrainConfig(Config):
    """Optimiser and schedule of :func:`train`."""

    PRESETS = {"smoke": {"steps": 2}, "quick": {}, "full": {}}
    steps: int = 100
    lr: float = 3e-3
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 0
    strategy: str = "ddp"

    def validate(self) -> None:
        self.require(self.steps > 0, "steps", "a positive integer")
        self.require(self.lr > 0, "lr", "a positive learning rate")
        self.require(0 <= self.warmup_steps <= self.steps, "warmup_steps", f"0..steps={self.steps}")
        self.require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "a ratio in [0, 1]")
        self.require(self.grad_clip >= 0, "grad_clip", "a non-negative norm (0 disables clipping)")
        self.require(self.strategy in ("none", "ddp", "fsdp2"), "strategy", "'none', 'ddp' or 'fsdp2'")


def cosine_lr(step: int, total: int, warmup: int, base_lr: float, min_ratio: float) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup`` steps, then cosine decay to ``min_ratio * base_lr``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass
class TrainResult:
    """Per-step losses (rank-averaged), eval rows and timing of one :func:`train` call."""

    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else float("nan")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (norms, biases and gains are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Tensor],
    batch_fn: Callable[[int], Any],
    cfg: TrainConfig,
    *,
    ctx: RunContext | None = None,
    series: str = "train",
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    progress_desc: str | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``cfg.steps`` steps.

    Args:
        model: the module to train (already on its device).
        loss_fn: ``(model, batch) -> scalar`` mean loss over the batch.
        batch_fn: ``step -> global batch`` (tensors with the batch on dim 0, possibly nested).
        cfg: optimiser and schedule.
        ctx: where ``loss``/``lr`` (every ``log_every`` steps) and eval rows go as metrics.jsonl lines.
        eval_fn: called every ``eval_every`` steps and at the end on the unwrapped model.
        optimizer: defaults to :func:`make_optimizer`.
    """
    info = current()
    wrapped = wrap_model(model, cfg.strategy)
    optimizer = optimizer or make_optimizer(model, cfg)
    result = TrainResult()
    steps = range(cfg.steps)
    if ctx is not None and info.is_main:
        steps = ctx.progress(steps, desc=progress_desc or series, total=cfg.steps)
    start = time.perf_counter()
    for step in steps:
        lr = cosine_lr(step, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        wrapped.train()
        loss = loss_fn(wrapped, shard_batch(batch_fn(step), info))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        result.losses.append(float(all_reduce_mean(loss.detach())))
        _log_step(ctx, info.is_main, series, step, cfg, result.losses[-1], lr)
        is_eval_step = cfg.eval_every and (step + 1) % cfg.eval_every == 0
        if eval_fn is not None and (is_eval_step or step == cfg.steps - 1):
            result.evals.append(_run_eval(model, eval_fn, ctx, series, step, info.is_main))
    result.elapsed_s = time.perf_counter() - start
    return result


def _log_step(
    ctx: RunContext | None, is_main: bool, series: str, step: int, cfg: TrainConfig, loss: float, lr: float
) -> None:
    if ctx is not None and is_main and (step % max(cfg.log_every, 1) == 0 or step == cfg.steps - 1):
        ctx.log(series, step, loss=loss, lr=lr)


def _run_eval(
    model: nn.Module,
    eval_fn: Callable[[nn.Module], dict[str, float]],
    ctx: RunContext | None,
    series: str,
    step: int,
    is_main: bool,
) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in eval_fn(model).items()}
    if ctx is not None and is_main:
        ctx.log(f"{series}/eval", step, **metrics)
    return {"step": step, **metrics}
