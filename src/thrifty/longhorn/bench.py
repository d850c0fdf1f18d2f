"""``thrifty bench longhorn``: one Longhorn layer vs transformers' Mamba layer and the fast Mamba layer, the
fast scan vs the sequential reference, and decode ms/token against context length."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.bench import BenchContext, peak_memory_mb, time_fn
from thrifty.longhorn.algorithm import build_model, decode_ms_per_token
from thrifty.longhorn.mamba import MambaMixer as FastMambaMixer
from thrifty.longhorn.model import LonghornMixer
from thrifty.longhorn.ops import longhorn_scan


def _layer_rows(ctx: BenchContext, batch: int, length: int, d_model: int, d_state: int) -> list[dict[str, Any]]:
    """fwd+bwd of one mixer at equal (B, L, d, N, expand=2): Longhorn vs HF ``MambaMixer`` (CPU path)."""
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    torch.manual_seed(0)
    longhorn = LonghornMixer(d_model, d_state=d_state).to(ctx.device)
    mamba_cfg = MambaConfig(hidden_size=d_model, state_size=d_state, expand=2, num_hidden_layers=1, use_mambapy=False)
    mamba = MambaMixer(mamba_cfg, layer_idx=0).to(ctx.device)
    fast_mamba = FastMambaMixer(d_model, d_state).to(ctx.device)
    fast_mamba.load_state_dict(mamba.state_dict())  # same names, same weights: the equivalence-tested peer
    h = torch.randn(batch, length, d_model, device=ctx.device)
    case = f"layer fwd+bwd B{batch} L{length} d{d_model} N{d_state}"
    rows = []
    layers = (("mamba (transformers)", mamba), ("mamba (thrifty fast)", fast_mamba), ("longhorn", longhorn))
    for name, layer in layers:

        def run(layer: torch.nn.Module = layer) -> None:
            layer(h).sum().backward()

        t = time_fn(run, threads=ctx.threads)
        params = sum(p.numel() for p in layer.parameters())
        rows.append(
            {
                "case": case,
                "variant": name,
                "median_ms": t.median_ms,
                "min_ms": t.min_ms,
                "peak_mb": peak_memory_mb(run, ctx.device),
                "params": params,
            }
        )
    for row in rows[1:]:
        row["speedup"] = rows[0]["median_ms"] / row["median_ms"]
    rows[1]["target"] = ">= 2x"
    return rows


SCAN_VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("reference", "reference", "auto"),
    ("recurrent (default, auto backward)", "recurrent", "auto"),
    ("recurrent, batched backward", "recurrent", "batched"),
    ("recurrent, stepwise backward", "recurrent", "stepwise"),
    ("blocked (C=32)", "blocked", "auto"),
)


def _scan_rows(
    ctx: BenchContext, batch: int, length: int, channels: int, d_state: int, target: str | None = None
) -> list[dict[str, Any]]:
    """fwd+bwd of the scan alone in every mode and backward at one shape; speedups against the reference."""
    g = torch.Generator().manual_seed(0)
    shapes = {
        "x": (batch, length, channels),
        "k": (batch, length, d_state),
        "q": (batch, length, d_state),
        "u": (batch, length, channels),
    }
    inputs = {n: torch.randn(*s, generator=g).to(ctx.device).requires_grad_() for n, s in shapes.items()}
    case = f"scan fwd+bwd B{batch} L{length} E{channels} N{d_state}"
    rows = []
    for label, mode, backward in SCAN_VARIANTS:

        def run(mode: str = mode, backward: str = backward) -> None:
            x, k, q, u = inputs["x"], inputs["k"], inputs["q"], inputs["u"]
            y, _ = longhorn_scan(x, k, q, u, mode=mode, backward=backward)  # type: ignore[arg-type]
            y.sum().backward()

        t = time_fn(run, threads=ctx.threads, min_run_time=0.2, warmup=1)
        rows.append(
            {
                "case": case,
                "variant": label,
                "median_ms": t.median_ms,
                "min_ms": t.min_ms,
                "peak_mb": peak_memory_mb(run, ctx.device),
            }
        )
    for row in rows[1:]:
        row["speedup"] = rows[0]["median_ms"] / row["median_ms"]
    if target is not None:
        rows[1]["target"] = target
    return rows


def _decode_rows(ctx: BenchContext, contexts: tuple[int, ...]) -> list[dict[str, Any]]:
    """Batch-1 ms/token after a prompt of each length (d=64, 4 SSM layers / 2 attention blocks)."""
    rows = []
    for name in ("longhorn", "transformer"):
        torch.manual_seed(0)
        model = build_model(name, 256, 64, 4, 16).to(ctx.device)
        times = [decode_ms_per_token(model, 256, c, 16, seed=0, device=ctx.device) for c in contexts]
        for c, ms in zip(contexts, times, strict=True):
            rows.append({"case": f"decode ctx={c}", "variant": name, "median_ms": ms})
        rows[-1]["ratio_vs_ctx128"] = times[-1] / times[0]
        rows[-1]["target"] = "<= 1.3x (longhorn)" if name == "longhorn" else "grows"
    return rows


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """Rows for the CLI table; ``ctx.quick`` shrinks the layer benchmark (the scan case stays at L=1024)."""
    torch.set_num_threads(ctx.threads)
    layer_shape = (4, 256, 64, 16) if ctx.quick else (8, 1024, 128, 16)
    rows = _layer_rows(ctx, *layer_shape)
    rows += _scan_rows(ctx, 2, 1024, 64, 16, target=">= 3x")
    rows += _scan_rows(ctx, 64, 64, 128, 8)  # the MQAR training shape: large B*E*N, short L
    rows += _decode_rows(ctx, (128, 1024, 8192))
    return rows
