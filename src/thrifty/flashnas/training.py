"""Backbone pre-training (cached), continued pre-training with logit distillation, and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.core.checkpoint import cache_dir, cache_key, has_checkpoint, load_checkpoint, save_checkpoint
from thrifty.core.data import CharTokenizer, random_token_batch, shakespeare_plays, split_plays
from thrifty.core.lm_eval import evaluate_bits_per_token, lm_loss_fn
from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.flashnas.config import FlashLMConfig, FlashNASConfig
from thrifty.flashnas.model import FlashLM

CODE_VERSION = "flashnas-backbone-1"  # bump when backbone training changes, so the cache never serves stale weights


@dataclass
class TextData:
    """Character-level Shakespeare, held out by play."""

    tokenizer: CharTokenizer
    train_ids: Tensor
    val_ids: Tensor

    @classmethod
    def load(cls, seed: int = 0) -> TextData:
        train_text, val_text = split_plays(shakespeare_plays(), n_val=2, seed=seed)
        tok = CharTokenizer.fit(train_text)
        return cls(tok, tok.encode(train_text), tok.encode(val_text))


def backbone_arch(cfg: FlashNASConfig, vocab_size: int) -> FlashLMConfig:
    """The backbone architecture of an experiment config (positions cover every measured length)."""
    longest = max(cfg.seq_len, cfg.decode_kv_len, *cfg.latency_seq_lens, *cfg.skip_seq_lens)
    return FlashLMConfig.uniform(
        vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.ffn, max_seq_len=longest
    )


def batch_fn(ids: Tensor, batch: int, seq_len: int, seed: int, device: torch.device):  # noqa: ANN201
    """``step -> (inputs, targets)``, the same windows for the same seed and step."""

    def fn(step: int) -> tuple[Tensor, Tensor]:
        x, y = random_token_batch(ids, batch, seq_len, torch.Generator().manual_seed(seed * 100003 + step))
        return x.to(device), y.to(device)

    return fn


def get_backbone(cfg: FlashNASConfig, ctx: RunContext, data: TextData) -> tuple[FlashLM, bool]:
    """Train the backbone, or load it from the cache; returns ``(model, loaded_from_cache)``."""
    arch = backbone_arch(cfg, data.tokenizer.vocab_size)
    recipe = {
        "arch": arch.to_dict(),
        "steps": cfg.train_steps,
        "lr": cfg.lr,
        "seq_len": cfg.seq_len,
        "batch": cfg.batch,
        "seed": ctx.seed,
        "chars": data.tokenizer.chars,
    }
    directory = cache_dir("flashnas", f"backbone-{cache_key(recipe, CODE_VERSION)}")
    torch.manual_seed(ctx.seed)
    model = FlashLM(arch, "sdpa").to(ctx.device)
    if has_checkpoint(directory):
        load_checkpoint(directory, model)
        return model, True
    tcfg = TrainConfig(
        steps=cfg.train_steps,
        lr=cfg.lr,
        warmup_steps=min(50, cfg.train_steps // 10),
        weight_decay=0.1,
        strategy="none",
        log_every=20,
    )
    train(
        model,
        lm_loss_fn,
        batch_fn(data.train_ids, cfg.batch, cfg.seq_len, ctx.seed, ctx.device),
        tcfg,
        ctx=ctx,
        series="train/backbone",
        progress_desc="backbone",
    )
    save_checkpoint(directory, model, recipe)
    return model, False


def distill_loss_fn(teacher: FlashLM, temperature: float = 1.0):  # noqa: ANN201
    """``loss_fn(student, (inputs, targets))``: KL(teacher || student) on the logits at ``temperature``."""

    def fn(student: torch.nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        inputs, _ = batch
        with torch.no_grad():
            t_logp = F.log_softmax(teacher(inputs).float() / temperature, dim=-1)
        s_logp = F.log_softmax(student(inputs).float() / temperature, dim=-1)
        kl = F.kl_div(s_logp.flatten(0, 1), t_logp.flatten(0, 1), log_target=True, reduction="batchmean")
        return kl * temperature**2

    return fn


def continue_pretraining(
    student: FlashLM,
    teacher: FlashLM,
    cfg: FlashNASConfig,
    ctx: RunContext,
    data: TextData,
    steps: int,
    *,
    series: str,
    seed_offset: int = 1,
    eval_every: int = 0,
) -> list[float]:
    """``steps`` of logit distillation from ``teacher`` (CPT); the same batches for every student.

    Returns the validation bits/char after every ``eval_every`` steps and at the end (only the final value
    when ``eval_every`` is 0): an intermediate value shows whether a ranking is stable in the budget.
    """
    tcfg = TrainConfig(
        steps=steps,
        lr=cfg.lr,
        warmup_steps=min(10, steps // 5),
        strategy="none",
        log_every=max(steps // 5, 1),
        eval_every=eval_every,
    )
    teacher.eval()
    result = train(
        student,
        distill_loss_fn(teacher, cfg.kd_temperature),
        batch_fn(data.train_ids, cfg.batch, cfg.seq_len, ctx.seed + seed_offset, ctx.device),
        tcfg,
        ctx=ctx,
        series=series,
        progress_desc=series,
        eval_fn=lambda m: {"val_bpc": val_bpc(m, cfg, ctx, data)},
    )
    return [e["val_bpc"] for e in result.evals]


def val_bpc(model: FlashLM, cfg: FlashNASConfig, ctx: RunContext, data: TextData) -> float:
    """Validation bits per character on fixed windows of the held-out plays."""
    return evaluate_bits_per_token(
        model,
        data.val_ids,
        seq_len=cfg.seq_len,
        batch=cfg.batch,
        n_batches=cfg.eval_batches,
        seed=ctx.seed + 7,
        device=ctx.device,
    )


def calibration_batches(cfg: FlashNASConfig, ctx: RunContext, data: TextData) -> list[Tensor]:
    fn = batch_fn(data.train_ids, cfg.batch, cfg.seq_len, ctx.seed + 3, ctx.device)
    return [fn(i)[0] for i in range(cfg.calib_batches)]
