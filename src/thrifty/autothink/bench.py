"""``thrifty bench autothink``: time and tokens per answer, true early exit vs post-hoc choice vs always-think.

The same answer-twice video LM (with ``--full`` the format-SFT model of the ``quick`` preset, reused from the
cache when a quick run trained it; the smoke preset's otherwise) answers the same questions three ways:
``generate_auto`` (stop at ``<think>`` when confident), the official evaluation's post-hoc choice (generate
everything, then pick) and always-think (tau = 1). Target: early exit >= 2x faster than post hoc per answer
on perception questions.
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.autothink.config import AutoThinkConfig
from thrifty.autothink.generate import generate_auto, generate_posthoc
from thrifty.autothink.training import prompts_of
from thrifty.autothink.world import VOCAB, make_split
from thrifty.core.bench import BenchContext, time_fn
from thrifty.core.runs import RunContext


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """Rows per (category, mode): median ms per answer and mean generated tokens."""
    from thrifty.autothink.experiment import sft_model

    cfg = AutoThinkConfig.from_preset("smoke" if ctx.quick else "quick")
    run_ctx = RunContext(ctx.out_dir, seed=0, device=ctx.device, threads=ctx.threads)
    model = sft_model(cfg, run_ctx, "twice", make_split(0, cfg.n_train_per_type)).eval()
    examples = make_split(3, 4 if ctx.quick else 10)
    rows = []
    for category in ("perception", "reasoning"):
        chosen = [e for e in examples if e.category == category]
        prompts = [prompts_of([e], ctx.device) for e in chosen]
        modes = {
            "early_exit": lambda p: generate_auto(
                model, p, VOCAB, tau=0.5, max_first=cfg.max_len, max_total=cfg.max_len
            ),
            "post_hoc": lambda p: generate_posthoc(model, p, VOCAB, tau=0.5, max_total=cfg.max_len),
            "always_think": lambda p: generate_posthoc(model, p, VOCAB, tau=1.0, max_total=cfg.max_len),
        }
        medians = {}
        for mode, fn in modes.items():
            tokens = sum(fn(p).n_tokens for p in prompts) / len(prompts)
            with torch.no_grad():
                timing = time_fn(
                    lambda fn=fn, prompts=prompts: [fn(p) for p in prompts],
                    threads=ctx.threads,
                    min_run_time=0.1 if ctx.quick else 1.0,
                )
            medians[mode] = timing.median_ms / len(prompts)
            rows.append(
                {
                    "case": category,
                    "variant": mode,
                    "median_ms": medians[mode],
                    "min_ms": timing.min_ms / len(prompts),
                    "tokens": tokens,
                }
            )
        for row in rows[-3:]:
            row["speedup_vs_post_hoc"] = medians["post_hoc"] / row["median_ms"]
            row["target"] = ">= 2x (early_exit, perception)"
    return rows
