"""``thrifty bench dtrpo``: time and memory per preference pair of each estimator at growing lengths.

The response has ``N_B`` blocks of ``Bs = 4`` tokens and ``K = 4`` steps per block. dTRPO and mean-field
need one (two-copy) forward per response at any length; exact replay needs ``N_B * K``; VRPO a fixed
``n_mc = 8``. Each timed call is one DPO update's loss and backward on a batch of pairs, with cached
reference scores, divided by the batch size.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from thrifty.core.bench import BenchContext, peak_memory_mb, time_fn
from thrifty.dtrpo.algorithm import DTRPOTrainer, PreferencePairs
from thrifty.dtrpo.config import DTRPOConfig
from thrifty.dtrpo.experiment import ESTIMATOR_ARMS, make_estimator
from thrifty.dtrpo.model import DiffusionLMConfig, MaskedDiffusionLM
from thrifty.dtrpo.tasks import MASK, VOCAB_SIZE

BLOCK, STEPS, PROMPT_LEN, PAIRS = 4, 4, 8, 8


def _random_pairs(n_blocks: int, device: torch.device) -> PreferencePairs:
    g = torch.Generator().manual_seed(0)
    n_resp = n_blocks * BLOCK
    prompt = torch.randint(0, MASK, (PAIRS, PROMPT_LEN), generator=g)
    chosen, rejected = torch.randint(0, MASK, (2, PAIRS, n_resp), generator=g)
    order = (torch.arange(n_resp) // BLOCK * STEPS + torch.arange(n_resp) % BLOCK).expand(PAIRS, -1)
    return PreferencePairs(prompt, chosen, rejected, order, order).to(device)


def _case_rows(n_blocks: int, ctx: BenchContext, model: MaskedDiffusionLM) -> list[dict[str, Any]]:
    cfg = DTRPOConfig(n_sums=1, resp_len=n_blocks * BLOCK, block=BLOCK, steps_per_block=STEPS)
    pairs = _random_pairs(n_blocks, ctx.device)
    rows = []
    for arm in ESTIMATOR_ARMS:
        policy = copy.deepcopy(model)
        trainer = DTRPOTrainer(policy, copy.deepcopy(model), make_estimator(arm, cfg), mask_seed=0)
        trainer.prepare(pairs)
        batch = trainer.make_batch(pairs, torch.arange(PAIRS, device=ctx.device), torch.Generator())

        def update(trainer: DTRPOTrainer = trainer, policy: torch.nn.Module = policy, batch: dict = batch) -> None:
            policy.zero_grad(set_to_none=True)
            trainer.loss(policy, batch).backward()

        timing = time_fn(update, threads=ctx.threads, min_run_time=0.2 if ctx.quick else 0.5)
        rows.append(
            {
                "case": f"L={n_blocks * BLOCK} (N_B={n_blocks}, K={STEPS})",
                "variant": arm,
                "forwards_per_pair": 2 * make_estimator(arm, cfg).forwards_per_response(n_blocks * BLOCK),
                "median_ms": timing.median_ms / PAIRS,
                "min_ms": timing.min_ms / PAIRS,
                "peak_mb": peak_memory_mb(update, ctx.device) / PAIRS,
            }
        )
    return rows


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """Rows per (length, estimator): forwards, ms and peak MB per preference pair (fwd + bwd)."""
    torch.manual_seed(0)
    model = MaskedDiffusionLM(DiffusionLMConfig(VOCAB_SIZE, MASK, dim=64, n_layers=3, n_heads=4)).to(ctx.device)
    rows: list[dict[str, Any]] = []
    for n_blocks in (1, 2, 4) if ctx.quick else (1, 2, 4, 8):
        rows += _case_rows(n_blocks, ctx, model)
    base = {r["case"]: r["median_ms"] for r in rows if r["variant"] == "exact"}
    for row in rows:
        row["speedup_vs_exact"] = base[row["case"]] / row["median_ms"]
    if ctx.out_dir is not None:
        _plot(rows, ctx)
    return rows


def _plot(rows: list[dict[str, Any]], ctx: BenchContext) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for arm in ESTIMATOR_ARMS:
        mine = [r for r in rows if r["variant"] == arm]
        lengths = [int(r["case"].split()[0][2:]) for r in mine]
        left.plot(lengths, [r["forwards_per_pair"] for r in mine], marker="o", label=arm)
        right.plot(lengths, [r["median_ms"] for r in mine], marker="o", label=arm)
    left.set(xlabel="response length L", ylabel="policy forwards per pair", yscale="log")
    right.set(xlabel="response length L", ylabel="ms per pair (fwd + bwd)", yscale="log")
    left.legend()
    assert ctx.out_dir is not None
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(ctx.out_dir / "dtrpo_bench.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
