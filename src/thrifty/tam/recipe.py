"""The training recipe: pretrain the SAM 2-style tracker A (cached), then start every variant from it.

EfficientTAM and EdgeTAM both start from trained SAM 2 weights (EdgeTAM also distils from SAM 2). Here
:func:`pretrained_a` trains A once (cached by :mod:`thrifty.core.checkpoint`, keyed by the recipe and
:data:`CODE_VERSION`); :func:`train_variant` builds a variant, copies every module it shares with A (image
encoder, prompt encoder, mask decoder, memory encoder, memory attention, temporal embeddings) and trains it for
the same number of steps; modules A does not have (the perceiver) start fresh. ``init="scratch"`` is the
from-scratch ablation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from thrifty.core.checkpoint import cache_dir, cache_key, has_checkpoint, load_checkpoint, save_checkpoint
from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, TrainResult, train
from thrifty.tam.algorithm import unroll_clip
from thrifty.tam.config import TamConfig, TamModelConfig
from thrifty.tam.data import video_batch
from thrifty.tam.model import TinyTAM

CODE_VERSION = "tam-recipe-2"  # bump when training code changes: cached A weights are keyed by it
TRAIN_SEED = 30_000_000  # training clips never share seeds with the evaluation (1e7) or calibration (2e7) sets
VARIANT_NAMES = ("A", "B", "C", "C'", "C+KD", "D")


def variant_model(name: str, base: TamModelConfig) -> TamModelConfig:
    """The tracker config of one variant (``"C'"`` turns the patch latents into as many global ones)."""
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
    raise ValueError(f"name: expected one of {', '.join(VARIANT_NAMES)}, got {name!r}")


def copy_shared_weights(student: nn.Module, source: nn.Module) -> list[str]:
    """Copy into ``student`` every parameter and buffer of ``source`` with the same name and shape.

    Returns:
        The names of ``student``'s tensors left as initialised (its new modules).
    """
    src = source.state_dict()
    state = student.state_dict()
    fresh = [k for k, v in state.items() if k not in src or src[k].shape != v.shape]
    with torch.no_grad():
        for k, v in state.items():
            if k not in fresh:
                v.copy_(src[k])
    return fresh


class ScaledAdamW(torch.optim.AdamW):
    """AdamW whose param groups may carry an ``lr_scale``: each step uses ``lr * lr_scale`` for that group.

    The training loop sets every group's ``lr`` from the schedule; the scale is applied on top, so the
    perceiver's residual branches can follow the same schedule at a fraction of the peak LR.
    """

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        base = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] * g.get("lr_scale", 1.0)
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, base, strict=True):
                g["lr"] = lr


def make_optimizer(model: TinyTAM, lr: float, weight_decay: float, branch_lr_scale: float) -> ScaledAdamW:
    """AdamW (decay on matrices only); the perceiver's latent-only residual branches get ``branch_lr_scale``."""
    branch = {id(p) for p in model.perceiver.branch_parameters()} if model.perceiver is not None else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((p.dim() >= 2, id(p) in branch), []).append(p)
    return ScaledAdamW(
        [
            {"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr_scale": branch_lr_scale if br else 1.0}
            for (decay, br), ps in groups.items()
        ],
        lr=lr,
        betas=(0.9, 0.95),
    )


@dataclass
class Stage:
    """One training stage: its ``steps``, and the ``seed`` and ``stream`` (0 pretrain, 1 from A, 2 scratch)
    that pick its clips; every variant trained at one seed and stream sees the same clips."""

    steps: int
    seed: int
    stream: int
    lr: float


def clip_seeds(seed: int, stream: int, step: int, batch: int) -> list[int]:
    """Video seeds of one training batch: disjoint across run seeds, streams and steps."""
    base = TRAIN_SEED + (seed * 64 + stream) * 1_000_000
    return [base + step * batch + i for i in range(batch)]


def fit(model: TinyTAM, cfg: TamConfig, ctx: RunContext, stage: Stage, series: str, teacher: TinyTAM | None = None):
    """Train ``model`` in place for ``stage.steps`` steps of ``cfg.clip_len``-frame clips (task loss + KD)."""
    size = model.cfg.image_size

    def batch_fn(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        vb = video_batch(clip_seeds(stage.seed, stage.stream, step, cfg.batch), cfg.clip_len, size, cfg.p_occlude)
        return vb.frames.to(ctx.device), vb.masks.to(ctx.device)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        kd = (cfg.kd_weight_enc, cfg.kd_weight_mem)
        return unroll_clip(m, *batch, teacher=teacher, kd_weights=kd, gated_mask_loss=cfg.gated_mask_loss)["loss"]

    tcfg = TrainConfig(
        steps=stage.steps,
        lr=stage.lr,
        warmup_steps=max(1, stage.steps // 10),
        min_lr_ratio=0.05,
        weight_decay=0.01,
        grad_clip=cfg.grad_clip,
        log_every=max(1, stage.steps // 20),
    )
    opt = make_optimizer(model, stage.lr, tcfg.weight_decay, cfg.perceiver_branch_lr_scale)
    return train(model, loss_fn, batch_fn, tcfg, ctx=ctx, series=series, optimizer=opt, progress_desc=series)


def _pretrain_key(cfg: TamConfig, seed: int) -> str:
    recipe = {
        "model": variant_model("A", cfg.model).to_dict(),
        "steps": cfg.pretrain_steps,
        "seed": seed,
        **{k: getattr(cfg, k) for k in ("batch", "clip_len", "lr", "grad_clip", "p_occlude", "gated_mask_loss")},
    }
    return cache_key(recipe, CODE_VERSION)


def pretrained_a(cfg: TamConfig, ctx: RunContext) -> tuple[TinyTAM, dict[str, Any]]:
    """A trained for ``cfg.pretrain_steps`` steps from scratch at the run seed, cached across runs."""
    torch.manual_seed(ctx.seed)
    model = TinyTAM(variant_model("A", cfg.model)).to(ctx.device)
    directory = cache_dir("tam", f"A-pretrain-{_pretrain_key(cfg, ctx.seed)}")
    if has_checkpoint(directory):
        info = load_checkpoint(directory, model)
        return model.eval(), {**info, "cached": True}
    result = fit(model, cfg, ctx, Stage(cfg.pretrain_steps, ctx.seed, stream=0, lr=cfg.lr), "pretrain/A")
    info = {"pretrain_steps": cfg.pretrain_steps, "final_loss": result.final_loss, "train_s": result.elapsed_s}
    save_checkpoint(directory, model, {**info, "model": model.cfg.to_dict(), "code_version": CODE_VERSION})
    return model.eval(), {**info, "cached": False}


def train_variant(
    name: str,
    cfg: TamConfig,
    ctx: RunContext,
    *,
    start: TinyTAM | None,
    teacher: TinyTAM | None = None,
    seed: int | None = None,
    model_cfg: TamModelConfig | None = None,
    label: str | None = None,
) -> tuple[TinyTAM, TrainResult, list[str]]:
    """Build one variant, copy the modules it shares with ``start`` (None: from scratch) and train it.

    From A it trains ``cfg.steps`` at ``cfg.finetune_lr``; from scratch ``cfg.pretrain_steps + cfg.steps`` at
    ``cfg.lr`` (the same total budget and A's own schedule).

    Args:
        seed: the seed of this run of the variant (fresh modules and clip stream); defaults to ``ctx.seed``.
        model_cfg: overrides the variant's tracker config (the latent-grid sweep).
        label: the metrics series name (defaults to ``name``).

    Returns:
        ``(model in eval mode, training result, names of the tensors that started fresh)``.
    """
    seed = ctx.seed if seed is None else seed
    torch.manual_seed(seed)
    model = TinyTAM(model_cfg or variant_model(name, cfg.model)).to(ctx.device)
    fresh = copy_shared_weights(model, start) if start is not None else list(model.state_dict())
    if start is not None:
        stage = Stage(cfg.steps, seed, stream=1, lr=cfg.finetune_lr)
    else:
        stage = Stage(cfg.pretrain_steps + cfg.steps, seed, stream=2, lr=cfg.lr)
    result = fit(model, cfg, ctx, stage, f"train/{label or name}", teacher)
    return model.eval(), result, fresh
