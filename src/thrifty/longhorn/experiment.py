"""``thrifty reproduce longhorn``: MQAR, Shakespeare char LM, length extrapolation and decode speed, with
every peer measured in the same run at equal parameters, equal data order and equal steps."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from thrifty.core.data import CharTokenizer, random_token_batch, shakespeare_plays, split_plays
from thrifty.core.lm_eval import evaluate_bits_per_token, lm_loss_fn
from thrifty.core.plots import line_plot
from thrifty.core.runs import Claim, Results, RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.longhorn.algorithm import (
    bucket_edges,
    bucket_means,
    build_zoo,
    decode_ms_per_token,
    masked_lm_loss,
    position_losses,
)
from thrifty.longhorn.baselines import count_params
from thrifty.longhorn.config import LonghornConfig
from thrifty.longhorn.mqar import mqar_accuracy, mqar_batch

LM_MODELS = ("longhorn", "mamba", "gla", "transformer")
EXTRAP_MODELS = ("longhorn", "mamba", "transformer")
DECODE_MODELS = ("longhorn", "mamba", "transformer")


def _train_config(steps: int, lr: float) -> TrainConfig:
    """The spec's recipe: AdamW (0.9, 0.95), wd 0.1, cosine with 10% warm-up, clip 1."""
    return TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 10),
        weight_decay=0.1,
        betas=(0.9, 0.95),
        grad_clip=1.0,
        log_every=10,
        strategy="none",
    )


def _mqar_data(cfg: LonghornConfig, ctx: RunContext) -> tuple[tuple[Tensor, Tensor], dict[int, tuple]]:
    """A training set mixing every kv setting (Zoology-style) and one test set per kv."""
    g = ctx.generator(offset=101)
    parts = [
        mqar_batch(
            cfg.mqar_train // len(cfg.mqar_kv),
            vocab=cfg.mqar_vocab,
            seq_len=cfg.mqar_len,
            kv=kv,
            power_a=cfg.mqar_power_a,
            generator=g,
        )
        for kv in cfg.mqar_kv
    ]
    train_set = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    tests = {
        kv: mqar_batch(
            cfg.mqar_test,
            vocab=cfg.mqar_vocab,
            seq_len=cfg.mqar_len,
            kv=kv,
            power_a=cfg.mqar_power_a,
            generator=g,
        )
        for kv in cfg.mqar_kv
    }
    return train_set, tests


@torch.no_grad()
def _mqar_eval(model: nn.Module, tests: dict[int, tuple[Tensor, Tensor]], device: torch.device) -> dict[int, float]:
    model.eval()
    accs = {}
    for kv, (inputs, labels) in tests.items():
        logits = torch.cat([model(chunk.to(device)).cpu() for chunk in inputs.split(128)])
        accs[kv] = mqar_accuracy(logits, labels)
    return accs


def run_mqar(cfg: LonghornConfig, ctx: RunContext) -> dict[str, dict[str, Any]]:
    """Train every MQAR model on the same batches for each lr; keep each model's best mean accuracy."""
    (train_x, train_y), tests = _mqar_data(cfg, ctx)
    order = torch.randint(0, train_x.shape[0], (cfg.mqar_steps, cfg.mqar_batch), generator=ctx.generator(102))

    def batch_fn(step: int) -> tuple[Tensor, Tensor]:
        return train_x[order[step]].to(ctx.device), train_y[order[step]].to(ctx.device)

    out: dict[str, dict[str, Any]] = {}
    for name in cfg.mqar_models:
        best: dict[str, Any] | None = None
        for lr in cfg.mqar_lrs:
            model = build_zoo(
                (name,),
                cfg.mqar_vocab,
                cfg.d_model,
                cfg.ssm_layers,
                cfg.d_state,
                seed=ctx.seed,
                device=ctx.device,
            )[name]
            trained = torch.compile(model) if name in cfg.mqar_compile else model
            res = train(
                trained,  # type: ignore[arg-type]
                masked_lm_loss,
                batch_fn,
                _train_config(cfg.mqar_steps, lr),
                ctx=ctx,
                series=f"mqar/{name}/lr{lr:g}",
                progress_desc=f"mqar {name}",
            )
            accs = _mqar_eval(model, tests, ctx.device)
            row = {
                "params": count_params(model),
                "lr": lr,
                "compiled": name in cfg.mqar_compile,
                "train_s": round(res.elapsed_s, 2),
                "final_loss": res.final_loss,
                **{f"acc_kv{kv}": acc for kv, acc in accs.items()},
            }
            row["acc_mean"] = sum(accs.values()) / len(accs)
            if best is None or row["acc_mean"] > best["acc_mean"]:
                best = row
        out[name] = best  # type: ignore[assignment]
    return out


def run_char_lm(cfg: LonghornConfig, ctx: RunContext) -> tuple[dict[str, nn.Module], dict[str, dict], Tensor]:
    """Train each LM peer on identical batches of the training plays; bits/char on held-out plays."""
    train_text, val_text = split_plays(shakespeare_plays(), n_val=cfg.lm_val_plays, seed=ctx.seed)
    tok = CharTokenizer.fit(train_text + val_text)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    g = ctx.generator(offset=201)
    batches = [random_token_batch(train_ids, cfg.lm_batch, cfg.lm_len, g) for _ in range(cfg.lm_steps)]
    zoo = build_zoo(
        LM_MODELS,
        tok.vocab_size,
        cfg.lm_d_model,
        cfg.ssm_layers,
        cfg.d_state,
        seed=ctx.seed,
        device=ctx.device,
    )
    metrics: dict[str, dict] = {}
    for name, model in zoo.items():
        res = train(
            model,
            lm_loss_fn,
            lambda s: tuple(t.to(ctx.device) for t in batches[s]),
            _train_config(cfg.lm_steps, cfg.lm_lr),
            ctx=ctx,
            series=f"lm/{name}",
            progress_desc=f"lm {name}",
        )
        bpc = evaluate_bits_per_token(
            model,
            val_ids,
            seq_len=cfg.lm_len,
            batch=8,
            n_batches=cfg.lm_eval_batches,
            seed=ctx.seed,
            device=ctx.device,
        )
        metrics[name] = {
            "params": count_params(model),
            "val_bpc": bpc,
            "train_s": round(res.elapsed_s, 2),
            "train_tokens": cfg.lm_steps * cfg.lm_batch * cfg.lm_len,
        }
    return zoo, metrics, val_ids


def run_extrapolation(
    cfg: LonghornConfig, ctx: RunContext, zoo: dict[str, nn.Module], val_ids: Tensor
) -> dict[str, list[float]]:
    """Loss per position bucket on windows of ``extrap_len`` for models trained at ``lm_len``."""
    edges = bucket_edges(cfg.lm_len, cfg.extrap_len)
    buckets = {}
    for name in EXTRAP_MODELS:
        per_pos = position_losses(
            zoo[name],
            val_ids,
            length=cfg.extrap_len,
            batch=cfg.extrap_batch,
            seed=ctx.seed,
            device=ctx.device,
        )
        buckets[name] = bucket_means(per_pos, edges)
    centers = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    line_plot(
        ctx,
        "length_extrapolation",
        {n: (centers, b) for n, b in buckets.items()},
        xlabel=f"position (trained at {cfg.lm_len})",
        ylabel="loss (nats)",
        logx=True,
    )
    return {"edges": edges, **buckets}  # type: ignore[dict-item]


def run_decode(cfg: LonghornConfig, ctx: RunContext, zoo: dict[str, nn.Module], vocab: int) -> dict[str, list]:
    """ms/token at every prompt length, batch 1 (Transformer with a KV cache)."""
    out: dict[str, list] = {"contexts": list(cfg.decode_contexts)}
    for name in DECODE_MODELS:
        out[name] = [
            decode_ms_per_token(zoo[name], vocab, c, cfg.decode_steps, seed=ctx.seed, device=ctx.device)
            for c in cfg.decode_contexts
        ]
    line_plot(
        ctx,
        "decode_ms_per_token",
        {n: (out["contexts"], out[n]) for n in DECODE_MODELS},
        xlabel="context length",
        ylabel="ms / token",
        logx=True,
        logy=True,
    )
    return out


def _merge_variants(cfg: LonghornConfig, mqar: dict, lm: dict, extrap: dict, decode: dict) -> dict[str, dict]:
    """One row per model with every measured number (``mqar_*``, ``lm_*``, extrapolation, decode)."""
    variants: dict[str, dict[str, Any]] = {}
    for name in (*cfg.mqar_models, *LM_MODELS):
        row = variants.setdefault(name, {})
        row.update({f"mqar_{k}": v for k, v in mqar.get(name, {}).items()})
        row.update({f"lm_{k}": v for k, v in lm.get(name, {}).items()})
        if name in extrap:
            row["extrap_loss_by_bucket"] = extrap[name]
        if name in decode:
            row["decode_ms"] = dict(zip(decode["contexts"], decode[name], strict=True))
    return variants


def _claims(cfg: LonghornConfig, mqar: dict, lm: dict, decode: dict) -> tuple[Claim, list[Claim]]:
    """The issue's headline and checks, from measured values only."""
    kv_max = max(cfg.mqar_kv)
    acc_lh, acc_mamba = mqar["longhorn"][f"acc_kv{kv_max}"], mqar["mamba"][f"acc_kv{kv_max}"]
    headline = Claim(f"MQAR@{kv_max} accuracy: Longhorn - Mamba", "accuracy_diff", acc_lh - acc_mamba, 0.0, ">=")
    lh_decode = decode["longhorn"]
    bpc_diff = lm["longhorn"]["val_bpc"] - lm["mamba"]["val_bpc"]
    checks = [
        Claim("char-LM val bits/char: Longhorn - Mamba (equal tokens)", "bpc_diff", bpc_diff, 0.0, "<="),
        Claim(
            f"Longhorn decode ms/token at {cfg.decode_contexts[-1]} / at {cfg.decode_contexts[0]}",
            "time_ratio",
            lh_decode[-1] / lh_decode[0],
            1.3,
            "<=",
        ),
        # Without this, a tie at chance (0 - 0 >= 0) would pass the headline. A model that has not learnt the
        # lookup sits on the "emit any value in context" plateau at 1/kv; twice that means the lookup is used.
        Claim(
            f"MQAR informative: max(Longhorn, Mamba) accuracy at {kv_max} pairs (2x the 1/kv plateau)",
            "accuracy",
            max(acc_lh, acc_mamba),
            2.0 / kv_max,
            ">=",
        ),
    ]
    return headline, checks


def run_experiment(cfg: LonghornConfig, ctx: RunContext) -> Results:
    """The whole reproduction; verdicts are computed from the measured numbers only."""
    start = time.perf_counter()
    mqar = run_mqar(cfg, ctx)
    zoo, lm, val_ids = run_char_lm(cfg, ctx)
    extrap = run_extrapolation(cfg, ctx, zoo, val_ids)
    decode = run_decode(cfg, ctx, zoo, vocab=zoo["longhorn"].vocab_size)  # type: ignore[arg-type]
    line_plot(
        ctx,
        "mqar_accuracy",
        {n: (list(cfg.mqar_kv), [r[f"acc_kv{kv}"] for kv in cfg.mqar_kv]) for n, r in mqar.items()},
        xlabel="key-value pairs",
        ylabel="query accuracy",
    )
    headline, checks = _claims(cfg, mqar, lm, decode)
    notes = (
        f"MQAR uses vocab {cfg.mqar_vocab} (Zoology recommends > 1k), which understates architecture gaps; "
        f"budget {cfg.mqar_steps} steps x {cfg.mqar_batch}, lrs {cfg.mqar_lrs}. Char LM: "
        f"{cfg.lm_steps} steps x {cfg.lm_batch} x {cfg.lm_len} tokens per model, 1 seed. Wall-clock favours "
        "the attention models on CPU (SSM scans are Python loops); compare at equal tokens."
    )
    return Results(
        variants=_merge_variants(cfg, mqar, lm, extrap, decode),
        headline=headline,
        checks=checks,
        extra={"extrapolation": extrap, "decode": decode, "wall_s": time.perf_counter() - start},
        notes=notes,
    )
