"""``thrifty bench flashnas``: ExecuTorch (XNNPACK) vs eager PyTorch for the backbone and the chosen model.

Latency does not depend on weight values, so both models use seeded random weights. The chosen
architecture is read from ``data/chosen_arch.json`` (written from a ``reproduce --preset quick`` run);
without it, a hand-made attention-skipping subnet of the quick backbone stands in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from thrifty.core.bench import BenchContext
from thrifty.flashnas.config import FlashLMConfig, FlashNASConfig
from thrifty.flashnas.latency import LatencyKey, interleaved_times, latency_callable, reduce_times
from thrifty.flashnas.model import FlashLM

CHOSEN_PATH = Path(__file__).parent / "data" / "chosen_arch.json"
CASES = ("prefill_128", "prefill_1024", "decode_1024")


def bench_archs(vocab_size: int = 84) -> dict[str, FlashLMConfig]:
    """The quick preset's backbone and the chosen architecture (or a stand-in)."""
    cfg = FlashNASConfig.from_preset("quick")
    backbone = FlashLMConfig.uniform(vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.ffn)
    if CHOSEN_PATH.exists():
        chosen = FlashLMConfig.from_dict(json.loads(CHOSEN_PATH.read_text()))
    else:
        attn = tuple(i % 3 == 0 for i in range(cfg.n_layers - 2))
        chosen = FlashLMConfig.from_dict({**backbone.to_dict(), "ffn": (cfg.ffn,) * len(attn), "attn": attn})
    return {"backbone": backbone, "chosen": chosen}


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """Rows per (model, case, backend): min and median ms; ``.pte`` size; speed-up of ExecuTorch over eager."""
    from thrifty.core.deploy import executorch_available, set_executorch_threads

    if not executorch_available():
        raise RuntimeError("thrifty bench flashnas needs executorch (pip install 'thrifty[deploy]')")
    set_executorch_threads(ctx.threads)
    reps = 30 if ctx.quick else 60
    rows = []
    for name, arch in bench_archs().items():
        torch.manual_seed(0)
        model = FlashLM(arch, "matmul").eval()
        calls, sizes = {}, {}
        for case in CASES:
            key = LatencyKey.parse(case)
            for backend in ("executorch", "eager"):
                fn, size = latency_callable(model, mode=key.mode, seq_len=key.seq_len, backend=backend)
                calls[(case, backend)] = fn
                sizes[(case, backend)] = size
        times = interleaved_times(calls, warmup=3, reps=reps)
        mins = {k: reduce_times(v, "min") for k, v in times.items()}
        for case in CASES:
            for backend in ("executorch", "eager"):
                rows.append(
                    {
                        "case": f"{name} {case}",
                        "variant": backend,
                        "min_ms": mins[(case, backend)],
                        "median_ms": reduce_times(times[(case, backend)], "median"),
                        "pte_mb": sizes[(case, backend)] or "",
                        "speedup_vs_eager": mins[(case, "eager")] / mins[(case, backend)],
                        "params": model.num_params(),
                    }
                )
    return rows
