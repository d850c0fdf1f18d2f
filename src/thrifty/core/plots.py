"""Small matplotlib helpers (Agg backend) shared by the experiments."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from thrifty.core.runs import RunContext


def line_plot(
    ctx: RunContext,
    name: str,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    markers: bool = True,
) -> Path:
    """One line per entry of ``series`` (label -> (xs, ys)), saved as ``<out_dir>/<name>.png``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o" if markers else None, markersize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return ctx.save_figure(fig, name)


def bar_plot(ctx: RunContext, name: str, values: dict[str, float], *, ylabel: str, title: str = "") -> Path:
    """A bar per entry of ``values`` (label -> height), saved as ``<out_dir>/<name>.png``."""
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(values) + 2), 4))
    ax.bar(list(values), list(values.values()))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(alpha=0.3, axis="y")
    return ctx.save_figure(fig, name)
