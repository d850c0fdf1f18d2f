"""Figures of the flashnas reproduction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from thrifty.core.runs import RunContext
from thrifty.flashnas.config import SubnetConfig


def pareto_plot(
    ctx: RunContext,
    pool: Sequence[SubnetConfig],
    bpc: dict[int, float],
    evals: dict[str, list[int]],
    pred: np.ndarray,
    variants: dict[str, dict[str, Any]],
    key: str,
) -> None:
    """Val bits/char vs prefill latency: searched candidates (predicted) and the picks (measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = {"random": "o", "flops": "s", "latency": "^"}
    for name, chosen in evals.items():
        ax.scatter(
            pred[chosen],
            [bpc[i] for i in chosen],
            marker=markers.get(name, "o"),
            alpha=0.6,
            label=f"{name} search (predicted latency)",
        )
    col = f"{key}_ms"
    for name, row in variants.items():
        if col in row:
            ax.scatter([row[col]], [row["val_bpc"]], marker="*", s=180, edgecolor="k", label=f"{name} (measured)")
    ax.set_xlabel(f"{key} latency (ms)")
    ax.set_ylabel("validation bits / char")
    ax.set_title("flashnas: quality vs latency")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "pareto")


def latency_fit_plot(ctx: RunContext, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Leave-one-out predicted vs measured latency, one panel per measured key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8), squeeze=False)
    for ax, (key, (measured, loo)) in zip(axes[0], sorted(pairs.items()), strict=True):
        ax.scatter(measured, loo, s=14)
        lim = [0, float(max(measured.max(), loo.max())) * 1.05]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel(f"measured {key} (ms)")
        ax.set_ylabel("leave-one-out prediction (ms)")
    fig.suptitle("flashnas latency model (ExecuTorch/XNNPACK, 1 thread)")
    ctx.save_figure(fig, "latency_model")


def front_plot(ctx: RunContext, variants: dict[str, dict[str, Any]], key: str, chosen: str) -> None:
    """The measured front: relative val loss against measured prefill latency (median, IQR as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, row in variants.items():
        if f"{key}_ms" not in row:
            continue
        ms, spread = row[f"{key}_ms"], row[f"{key}_ms"] * row[f"{key}_rel_iqr"] / 2
        marker = "*" if name == chosen else ("s" if name in ("backbone", "deep_thin") else "o")
        ax.errorbar(
            [ms], [100 * row["rel_loss"]], xerr=[spread], fmt=marker, ms=12 if name == chosen else 7, label=name
        )
    ax.axhline(2.0, color="k", ls="--", lw=0.8)
    ax.set_xlabel(f"measured {key} latency, median (ms)")
    ax.set_ylabel("validation loss over the backbone (%)")
    ax.set_title("flashnas: measured front (dashed: the claim's +2% bound)")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "measured_front")
