"""Benchmark helpers: ``torch.utils.benchmark`` timings with pinned threads, and table printing."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.utils import benchmark

from thrifty.core.envinfo import env_info
from thrifty.core.io import write_json_atomic

T = TypeVar("T")


@dataclass(frozen=True)
class BenchContext:
    """What a method's ``bench`` receives: device, pinned thread count, and a quick/full switch."""

    device: torch.device
    threads: int = 1
    quick: bool = True
    out_dir: Path | None = None


@dataclass(frozen=True)
class Timing:
    """Median / min / inter-quartile range of one timed callable, in milliseconds."""

    median_ms: float
    min_ms: float
    iqr_ms: float
    runs: int


def time_fn(fn: Callable[[], Any], *, threads: int = 1, min_run_time: float = 0.3, warmup: int = 2) -> Timing:
    """Time ``fn()`` after ``warmup`` calls with ``torch.utils.benchmark`` (threads pinned to ``threads``).

    CUDA work is synchronised by the Timer itself.
    """
    for _ in range(warmup):
        fn()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    times = sorted(measurement.times)
    return Timing(
        median_ms=measurement.median * 1e3,
        min_ms=times[0] * 1e3,
        iqr_ms=measurement.iqr * 1e3,
        runs=len(times) * measurement.number_per_run,
    )


def timed_under_load(fn: Callable[[], T]) -> tuple[T, list[float]]:
    """Run ``fn`` and return ``(its result, [1-min load average before, after])``.

    Timings that decide a claim are only as good as the machine was idle; results record the load beside them.
    """
    before = os.getloadavg()[0]
    result = fn()
    return result, [before, os.getloadavg()[0]]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table over the union of the rows' keys (first-seen order)."""
    if not rows:
        return "(no rows)"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_bench_json(
    path: str | Path, rows_by_method: dict[str, list[dict[str, Any]]], device: torch.device | str = "cpu"
) -> None:
    """Rows with the machine stamp, written atomically."""
    write_json_atomic(Path(path), {"env": env_info(device), "methods": rows_by_method})


def load_bench_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def peak_memory_mb(fn: Callable[[], Any], device: torch.device | str = "cpu") -> float:
    """Peak memory allocated by tensors during one call of ``fn``, in MB (1e6 bytes).

    On CUDA this is ``torch.cuda.max_memory_allocated``; on CPU the profiler's per-op allocation
    events are replayed in time order and the running total's maximum is taken (tensors alive
    before the call are not counted).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 1e6
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    running = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak / 1e6


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for the block: the profiler's C++ side (kineto) prints
    ``USDT ... profiler_start/stop`` lines there on every use, and no setting turns them off."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
