"""The MQAR part of ``thrifty reproduce longhorn``: a grid of widths, state sizes and learning rates, the
plateau heuristics on the same test sets, and the headline cell (issue #18)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, cosine_lr, make_optimizer
from thrifty.longhorn.algorithm import build_model, masked_lm_loss
from thrifty.longhorn.baselines import count_params
from thrifty.longhorn.config import LonghornConfig
from thrifty.longhorn.mqar import mqar_accuracy, mqar_batch, plateau_heuristics
from thrifty.longhorn.saved import save_zoo_model

SSM_MODELS = ("longhorn", "longhorn_exact", "mamba")


def mqar_data(cfg: LonghornConfig, ctx: RunContext) -> tuple[tuple[Tensor, Tensor], dict[int, tuple], tuple]:
    """A training set mixing every kv setting, one test set per kv, and a mixed early-stop validation set."""
    g = ctx.generator(offset=101)

    def make(n: int, kv: int) -> tuple[Tensor, Tensor]:
        return mqar_batch(n, vocab=cfg.mqar_vocab, seq_len=cfg.mqar_len, kv=kv, power_a=cfg.mqar_power_a, generator=g)

    parts = [make(cfg.mqar_train // len(cfg.mqar_kv), kv) for kv in cfg.mqar_kv]
    train_set = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    tests = {kv: make(cfg.mqar_test, kv) for kv in cfg.mqar_kv}
    vals = [make(cfg.mqar_val, kv) for kv in cfg.mqar_kv]
    return train_set, tests, (torch.cat([v[0] for v in vals]), torch.cat([v[1] for v in vals]))


@torch.no_grad()
def mqar_eval(model: nn.Module, inputs: Tensor, labels: Tensor, device: torch.device) -> float:
    """Query accuracy of ``model`` on ``(inputs, labels) (n, L)``, in chunks of 128."""
    was_training = model.training
    model.eval()
    logits = torch.cat([model(chunk.to(device)).cpu() for chunk in inputs.split(128)])
    model.train(was_training)
    return mqar_accuracy(logits, labels)


def train_mqar_model(
    model: nn.Module, cfg: LonghornConfig, lr: float, order: Tensor, data: tuple, ctx: RunContext, series: str
) -> dict[str, Any]:
    """AdamW (0.9, 0.95), wd 0.1, cosine with 10% warm-up, clip 1; early stop at ``mqar_early_stop``."""
    (train_x, train_y), val = data
    tcfg = TrainConfig(
        steps=cfg.mqar_steps, lr=lr, warmup_steps=max(1, cfg.mqar_steps // 10), weight_decay=0.1, strategy="none"
    )
    optimizer = make_optimizer(model, tcfg)
    start, steps_run, val_acc = time.perf_counter(), 0, 0.0
    for step in range(cfg.mqar_steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, tcfg.steps, tcfg.warmup_steps, lr, tcfg.min_lr_ratio)
        batch = (train_x[order[step]].to(ctx.device), train_y[order[step]].to(ctx.device))
        loss = masked_lm_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        optimizer.step()
        steps_run = step + 1
        if steps_run % cfg.mqar_eval_every == 0 or steps_run == cfg.mqar_steps:
            val_acc = mqar_eval(model, *val, ctx.device)
            ctx.log(series, step, loss=float(loss.detach()), val_acc=val_acc)
            if val_acc >= cfg.mqar_early_stop:
                break
    elapsed = time.perf_counter() - start
    return {"steps": steps_run, "train_s": round(elapsed, 2), "s_per_step": elapsed / steps_run, "val_acc": val_acc}


def _cells(cfg: LonghornConfig) -> list[tuple[str, int, int]]:
    """``(model, d, N)`` cells; models without a state size (GLA, attention) run once per width."""
    cells = []
    for d in cfg.mqar_d_models:
        for name in cfg.mqar_models:
            states = cfg.mqar_states if name in SSM_MODELS else (cfg.mqar_states[-1],)
            cells += [(name, d, n) for n in states]
    return cells


def run_mqar(cfg: LonghornConfig, ctx: RunContext) -> dict[str, Any]:
    """Train every grid cell on the same batches for each lr; keep each cell's best validation accuracy."""
    (train_x, train_y), tests, val = mqar_data(cfg, ctx)
    order = torch.randint(0, train_x.shape[0], (cfg.mqar_steps, cfg.mqar_batch), generator=ctx.generator(102))
    rows = []
    for name, d, n_state in ctx.progress(_cells(cfg), desc="mqar grid"):
        best: dict[str, Any] | None = None
        best_model: nn.Module | None = None
        args = {
            "name": name,
            "vocab": cfg.mqar_vocab,
            "d_model": d,
            "ssm_layers": cfg.mqar_layers,
            "d_state": n_state,
            "init_scheme": cfg.init_scheme,
        }
        for lr in cfg.mqar_lrs:
            torch.manual_seed(ctx.seed)
            model = build_model(**args).to(ctx.device)
            series = f"mqar/{name}/d{d}/N{n_state}/lr{lr:g}"
            fit = train_mqar_model(model, cfg, lr, order, ((train_x, train_y), val), ctx, series)
            row = {"model": name, "d_model": d, "d_state": n_state, "lr": lr, "params": count_params(model), **fit}
            row.update({f"acc_kv{kv}": mqar_eval(model, x, y, ctx.device) for kv, (x, y) in tests.items()})
            if best is None or row["val_acc"] > best["val_acc"]:
                best, best_model = row, model
        assert best is not None and best_model is not None  # mqar_lrs is non-empty (validated)
        meta = {"task": "mqar", "seed": ctx.seed, **best}
        save_zoo_model(ctx.out_dir / "models" / f"mqar-{name}-d{d}-N{n_state}", best_model, args, meta)
        rows.append(best)
    g = ctx.generator(offset=103)
    heuristics = {
        kv: plateau_heuristics(x, y, vocab=cfg.mqar_vocab, kv=kv, generator=g) for kv, (x, y) in tests.items()
    }
    return {"rows": rows, "heuristics": heuristics}


def headline_cell(cfg: LonghornConfig, mqar: dict[str, Any]) -> dict[str, Any]:
    """The largest kv where Longhorn or Mamba clears the best heuristic, at the state size N where the better
    of the two is highest (best over widths); falls back to the largest kv and N when neither clears it."""

    def acc(name: str, n_state: int, kv: int) -> float:
        cands = [r[f"acc_kv{kv}"] for r in mqar["rows"] if r["model"] == name and r["d_state"] == n_state]
        return max(cands) if cands else float("nan")

    for kv in sorted(cfg.mqar_kv, reverse=True):
        bar = max(mqar["heuristics"][kv].values())
        scored = [(max(acc("longhorn", n, kv), acc("mamba", n, kv)), n) for n in cfg.mqar_states]
        top, n_state = max(scored)
        if top > bar:
            return _cell(kv, n_state, acc, bar, cleared=True)
    kv, n_state = max(cfg.mqar_kv), max(cfg.mqar_states)
    return _cell(kv, n_state, acc, max(mqar["heuristics"][kv].values()), cleared=False)


def _cell(kv: int, n_state: int, acc: Any, bar: float, cleared: bool) -> dict[str, Any]:
    lh, mamba = acc("longhorn", n_state, kv), acc("mamba", n_state, kv)
    return {"kv": kv, "d_state": n_state, "longhorn": lh, "mamba": mamba, "heuristic": bar, "cleared": cleared}


def best_ssm_margin(cfg: LonghornConfig, mqar: dict[str, Any]) -> float:
    """max over Longhorn/Mamba cells and kv of accuracy minus the best plateau heuristic at that kv."""
    margins = [
        r[f"acc_kv{kv}"] - max(mqar["heuristics"][kv].values())
        for r in mqar["rows"]
        if r["model"] in ("longhorn", "mamba")
        for kv in cfg.mqar_kv
    ]
    return max(margins)
