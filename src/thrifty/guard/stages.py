"""The stages of the recipe on the synthetic set: teacher, prune, CE / KD fine-tune, PTQ, QAT, Q4_0, control."""

from __future__ import annotations

import copy
import hashlib
import json
import zlib
from dataclasses import dataclass

import torch
from torch import nn

from thrifty.core.checkpoint import cache_dir, has_checkpoint, load_checkpoint, save_checkpoint
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.core.prune import collect_importance, prune_depth_width, select_layers
from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.guard.config import GuardConfig
from thrifty.guard.data import make_dataset, vocabulary
from thrifty.guard.model import prune_output_layer
from thrifty.guard.quant import convert_8da4w, quantize_8da4w
from thrifty.guard.tokens import GuardTokenizer
from thrifty.guard.training import GuardBatch, encode_examples, guard_loss

CODE_VERSION = "guard-1"


@dataclass
class GuardData:
    """Encoded splits (right-padded to one width) and the tokenizer."""

    tok: GuardTokenizer
    train: GuardBatch
    ft_pool: GuardBatch
    val: GuardBatch
    test: GuardBatch
    width: int


def build_data(cfg: GuardConfig, seed: int) -> GuardData:
    """Disjoint seeded splits; the fine-tuning pool is the first ``ft_pool`` training examples."""
    kwargs = {"label_noise": cfg.label_noise, "two_clause_p": cfg.two_clause_p}
    tok = GuardTokenizer(vocabulary())
    splits = [make_dataset(n, seed * 10 + i, **kwargs) for i, n in enumerate((cfg.n_train, cfg.n_val, cfg.n_test))]
    width = max(len(encode_examples(s, tok).ids[0]) for s in splits)
    train_b, val_b, test_b = (encode_examples(s, tok, width) for s in splits)
    pool = train_b.take(torch.arange(min(cfg.ft_pool, cfg.n_train)))
    return GuardData(tok, train_b, pool, val_b, test_b, width)


def lm_config(
    cfg: GuardConfig, vocab_size: int, n_layers: int | None = None, ffn: int | None = None
) -> TransformerLMConfig:
    return TransformerLMConfig(
        vocab_size=vocab_size,
        dim=cfg.dim,
        n_layers=n_layers or cfg.n_layers,
        n_heads=cfg.n_heads,
        mlp_hidden=ffn or cfg.mlp_hidden,
        tie_embeddings=False,  # the card's separate input and output matrices
    )


def fit(
    model: nn.Module,
    data: GuardBatch,
    steps: int,
    lr: float,
    batch: int,
    ctx: RunContext,
    series: str,
    *,
    teacher: nn.Module | None = None,
    cfg: GuardConfig | None = None,
    restrict_ids: list[int] | None = None,
) -> float:
    """Train ``model`` in place on random minibatches of ``data`` (CE, or KD when ``teacher``); returns seconds."""
    gen = ctx.generator(offset=zlib.crc32(series.encode()) % 1000)
    order = [torch.randint(len(data), (min(batch, len(data)),), generator=gen) for _ in range(steps)]

    def batch_fn(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        part = data.take(order[step])
        return part.ids.to(ctx.device), part.labels.to(ctx.device)

    def loss_fn(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        alpha, tau = (cfg.kd_alpha, cfg.kd_tau) if cfg is not None else (0.5, 1.0)
        return guard_loss(m, b[0], b[1], teacher=teacher, alpha=alpha, tau=tau, restrict_ids=restrict_ids)

    tcfg = TrainConfig(steps=steps, lr=lr, warmup_steps=min(20, steps // 10), strategy="none", log_every=20)
    return train(model, loss_fn, batch_fn, tcfg, ctx=ctx, series=series, progress_desc=series).elapsed_s


def get_teacher(cfg: GuardConfig, ctx: RunContext, data: GuardData) -> tuple[TransformerLM, bool]:
    """Train the fp32 teacher, or load it from the cache (keyed by its recipe and ``CODE_VERSION``)."""
    recipe = {
        "lm": lm_config(cfg, data.tok.vocab_size).to_dict(),
        "data": [cfg.n_train, cfg.label_noise, cfg.two_clause_p, data.tok.vocab],
        "train": [cfg.teacher_steps, cfg.teacher_lr, cfg.batch],
        "seed": ctx.seed,
        "code": CODE_VERSION,
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    directory = cache_dir("guard", f"teacher-{key}")
    torch.manual_seed(ctx.seed)
    teacher = TransformerLM(lm_config(cfg, data.tok.vocab_size)).to(ctx.device)
    if has_checkpoint(directory):
        load_checkpoint(directory, teacher)
        return teacher.eval(), True
    fit(teacher, data.train, cfg.teacher_steps, cfg.teacher_lr, cfg.batch, ctx, "train/teacher")
    save_checkpoint(directory, teacher, recipe)
    return teacher.eval(), False


def prune_student(cfg: GuardConfig, teacher: TransformerLM, data: GuardData, ctx: RunContext) -> TransformerLM:
    """Block influence + neuron importance on calibration batches (padding masked), slice, prune the head."""
    gen = ctx.generator(offset=77)
    calib = []
    for _ in range(cfg.calib_batches):
        part = data.train.take(torch.randint(len(data.train), (cfg.batch,), generator=gen))
        mask = torch.arange(data.width)[None, :] < (part.lengths[:, None] + 8)  # prompt + answer, no pad
        calib.append((part.ids.to(ctx.device), (mask & (part.ids != data.tok.pad_id)).to(ctx.device)))
    layers = select_layers(teacher, calib, cfg.keep_layers)
    importance = collect_importance(teacher, calib, agg=cfg.neuron_agg)  # type: ignore[arg-type]
    student = prune_depth_width(teacher, layers, cfg.ffn_dim, importance.ffn)
    answer = data.tok.answer_ids()
    return prune_output_layer(student, answer, required_ids=answer, expand_to_vocab=True)


def qat_student(
    cfg: GuardConfig, kd_student: TransformerLM, teacher: TransformerLM, data: GuardData, ctx: RunContext
) -> nn.Module:
    """8da4w QAT (KD fine-tune with fake quantisation), then convert to int4 weights."""
    model = quantize_8da4w(copy.deepcopy(kd_student), cfg.group_size, embedding_bits=4, qat=True)
    fit(
        model,
        data.ft_pool,
        cfg.qat_steps,
        cfg.ft_lr * 0.5,
        cfg.batch,
        ctx,
        "train/qat",
        teacher=teacher,
        cfg=cfg,
        restrict_ids=data.tok.answer_ids(),
    )
    return convert_8da4w(model, cfg.group_size, embedding_bits=4).eval()


def scratch_control(cfg: GuardConfig, student: TransformerLM, data: GuardData, ctx: RunContext) -> TransformerLM:
    """A model of the student's shape trained from scratch on the fine-tuning pool with the fine-tune budget."""
    torch.manual_seed(ctx.seed + 1)
    control = TransformerLM(student.cfg.replace()).to(ctx.device)
    answer = data.tok.answer_ids()
    prune_output_layer(control, answer, required_ids=answer)
    fit(control, data.ft_pool, cfg.ft_steps, cfg.teacher_lr, cfg.batch, ctx, "train/control")
    return control.eval()
