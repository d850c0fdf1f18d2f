"""Multi-fidelity selection at the claim's quality bound, and robust timing statistics.

The search screens candidates at a low fidelity (``cpt_steps`` of continued pretraining); the candidates on
the screened (loss, predicted latency) front are re-trained at the final budget (``final_steps``), measured
on the runtime, and the pick is read there: the fastest measured candidate whose relative validation loss is
within the bound (MobileLLM-Flash's "speed at <= x% loss"). [inf] The paper's exact selection protocol is
unpublished; this is the constraint as the claim states it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from thrifty.flashnas.search import pareto_front


def nondominated_order(loss: Sequence[float], cost: Sequence[float]) -> list[list[int]]:
    """Positions grouped into successive Pareto fronts (both objectives minimised), best front first."""
    remaining = list(range(len(loss)))
    fronts = []
    while remaining:
        y = torch.tensor([[loss[i], cost[i]] for i in remaining], dtype=torch.float64)
        mask = pareto_front(y, maximize=(False, False)).tolist()
        fronts.append([i for i, keep in zip(remaining, mask) if keep])
        remaining = [i for i, keep in zip(remaining, mask) if not keep]
    return fronts


def pick_finalists(indices: Sequence[int], loss: dict[int, float], cost: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` screened candidates to re-train: the front first, spread evenly over cost, then later fronts.

    Args:
        indices: screened pool indices (duplicates ignored).
        loss: pool index -> screened loss; cost: ``(N,)`` predicted latency per pool index.
        k: how many finalists.

    Returns:
        Pool indices ordered by cost (fastest first).
    """
    if k < 1:
        raise ValueError(f"k: expected a positive number of finalists, got {k}")
    unique = sorted(set(indices))
    picked: list[int] = []
    for front in nondominated_order([loss[i] for i in unique], [float(cost[i]) for i in unique]):
        members = sorted((unique[p] for p in front), key=lambda i: cost[i])
        room = k - len(picked)
        if len(members) > room:  # evenly spaced over the front, extremes included
            members = [members[int(round(j))] for j in np.linspace(0, len(members) - 1, room)]
        picked += members
        if len(picked) >= k:
            break
    return sorted(picked, key=lambda i: cost[i])


def fastest_within(rel_loss: dict[str, float], latency_ms: dict[str, float], bound: float) -> str | None:
    """Name of the lowest-latency model whose relative loss is ``<= bound`` (``None`` if there is none)."""
    ok = [name for name, rel in rel_loss.items() if rel <= bound]
    return min(ok, key=lambda name: latency_ms[name]) if ok else None


@dataclass(frozen=True)
class TimingStats:
    """Summary of repeated, interleaved timings of one call (milliseconds)."""

    min_ms: float
    median_ms: float
    p25_ms: float
    p75_ms: float
    runs: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> TimingStats:
        if len(times_ms) == 0:
            raise ValueError("times_ms: expected at least one timing")
        t = np.asarray(times_ms, dtype=np.float64)
        return cls(
            float(t.min()), float(np.median(t)), float(np.percentile(t, 25)), float(np.percentile(t, 75)), len(t)
        )

    @property
    def rel_spread(self) -> float:
        """Interquartile range over the median: the run-to-run noise of this measurement."""
        return (self.p75_ms - self.p25_ms) / self.median_ms


def speedup_resolution(base_ms: float, base_rel_iqr: float, other_ms: float, other_rel_iqr: float) -> float:
    """How many times larger a measured speed-up is than the timing noise (>= 1: the verdict is resolvable).

    Effect = |log(base_ms / other_ms)| (medians); noise = log(1 + relative IQR) of both measurements added.
    A speed-up smaller than the spread of the timings that produced it cannot decide a claim.
    """
    effect = abs(float(np.log(base_ms / other_ms)))
    noise = float(np.log1p(base_rel_iqr) + np.log1p(other_rel_iqr))
    return effect / max(noise, 1e-12)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of ``a - b`` over paired repeats and its standard error (``nan`` with fewer than 2 pairs)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return float(d.mean()) if len(d) else float("nan"), float("nan")
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
