"""Matched-PSNR count ratios against ADC's threshold sweep, seed confidence intervals and the null arm's band.

A compared point (n Gaussians, test PSNR p) is read against the ADC curve of the same seed and scene:

* inside ADC's PSNR range, the ADC count at p is where ADC's piecewise-linear curve (log N, PSNR), taken in
  order of N, crosses p; when a noisy curve crosses p more than once, the crossing nearest the point's own
  log n is used (an exact hit on an ADC point returns that point's count, so identical runs give exactly 1);
* above ADC's best PSNR the ratio n / N_adc is reported as an upper bound n / max N (ADC would need more
  than it ever used); below ADC's worst PSNR as a lower bound n / min N. Bounds are never averaged in with
  matched points, but they are counted and listed, never dropped silently.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy import stats as scipy_stats

MATCHED, UPPER, LOWER = "matched", "upper_bound", "lower_bound"


def adc_count_at_psnr(curve: list[tuple[float, float]], target_psnr: float, own_count: float) -> tuple[float, str]:
    """ADC's Gaussian count at ``target_psnr`` and what kind of reading it is.

    Args:
        curve: ADC's sweep as [(n_gaussians, test_psnr)], any order, at least one point.
        target_psnr: the compared point's test PSNR (dB). own_count: its Gaussian count (picks the nearest
            crossing when ADC's curve is not monotone).
    Returns:
        (count, kind): kind "matched" (interpolated), "upper_bound" (the point beats ADC's best PSNR; count
        is ADC's largest, so n / count bounds the ratio from above) or "lower_bound" (below ADC's worst).
    """
    if not curve:
        raise ValueError("curve: expected at least one ADC point")
    pts = sorted(curve)
    psnrs = [p for _, p in pts]
    if target_psnr > max(psnrs):
        return pts[-1][0], UPPER
    if target_psnr < min(psnrs):
        return pts[0][0], LOWER
    candidates = [n for n, p in pts if p == target_psnr]
    for (n0, p0), (n1, p1) in zip(pts, pts[1:], strict=False):
        if (p0 - target_psnr) * (p1 - target_psnr) < 0:
            frac = (target_psnr - p0) / (p1 - p0)
            candidates.append(math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0))))
    return min(candidates, key=lambda n: abs(math.log(n) - math.log(own_count))), MATCHED


def geometric_ci(ratios: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(geometric mean, lower, upper) of positive ratios; Student-t interval on the logs (NaN bounds if < 2)."""
    if not ratios:
        return math.nan, math.nan, math.nan
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = scipy_stats.t.ppf(0.5 + level / 2, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def match_points(rows: list[dict[str, Any]], variant: str, reference: str = "adc") -> list[dict[str, Any]]:
    """One reading per ``variant`` row against the ``reference`` curve of its (scene, seed).

    Rows are dicts with scene, seed, variant, threshold, n_gaussians, test_psnr. Returns dicts with
    scene, seed, threshold, n_gaussians, test_psnr, adc_count, kind and ratio = n_gaussians / adc_count.
    """
    readings = []
    for row in (r for r in rows if r["variant"] == variant):
        curve = [
            (r["n_gaussians"], r["test_psnr"])
            for r in rows
            if r["variant"] == reference and (r["scene"], r["seed"]) == (row["scene"], row["seed"])
        ]
        count, kind = adc_count_at_psnr(curve, row["test_psnr"], row["n_gaussians"])
        keys = ("scene", "seed", "threshold", "n_gaussians", "test_psnr")
        readings.append(
            {**{k: row[k] for k in keys}, "adc_count": count, "kind": kind, "ratio": row["n_gaussians"] / count}
        )
    return readings


def same_threshold(rows: list[dict[str, Any]], variant: str, reference: str = "adc") -> tuple[float, float]:
    """(mean PSNR loss vs the reference at the same threshold (dB), mean count ratio at the same threshold)."""
    index = {(r["scene"], r["seed"], r["threshold"]): r for r in rows if r["variant"] == reference}
    pairs = [
        (index[key], r)
        for r in rows
        if r["variant"] == variant and (key := (r["scene"], r["seed"], r["threshold"])) in index
    ]
    if not pairs:
        return math.nan, math.nan
    loss = statistics.fmean(a["test_psnr"] - r["test_psnr"] for a, r in pairs)
    return loss, statistics.fmean(r["n_gaussians"] / a["n_gaussians"] for a, r in pairs)


def compare(rows: list[dict[str, Any]], variant: str, reference: str = "adc", level: float = 0.95) -> dict[str, Any]:
    """Summary of ``variant`` against ``reference``: seed-level geometric-mean ratio with its CI, and bounds.

    The per-seed ratio is the geometric mean of that seed's matched points; the CI is over seeds.
    ``ratio_upper_bounds`` / ``ratio_lower_bounds`` list the out-of-range readings.
    """
    readings = match_points(rows, variant, reference)
    matched = [r for r in readings if r["kind"] == MATCHED]
    per_seed = []
    for key in sorted({(r["scene"], r["seed"]) for r in matched}):
        per_seed.append(geometric_ci([r["ratio"] for r in matched if (r["scene"], r["seed"]) == key])[0])
    ratio, lo, hi = geometric_ci(per_seed, level)
    loss, same_ratio = same_threshold(rows, variant, reference)
    return {
        "count_ratio_matched_psnr": ratio,
        "ci_low": lo,
        "ci_high": hi,
        "seed_ratios": per_seed,
        "matched_points": len(matched),
        "out_of_range_points": len(readings) - len(matched),
        "ratio_upper_bounds": [r["ratio"] for r in readings if r["kind"] == UPPER],
        "ratio_lower_bounds": [r["ratio"] for r in readings if r["kind"] == LOWER],
        "psnr_loss_same_threshold_db": loss,
        "count_ratio_same_threshold": same_ratio,
    }


def separation_from_band(value: float, band: tuple[float, float]) -> float:
    """How far (log units) ``value`` lies outside ``band`` = (low, high): > 0 outside, <= 0 inside, NaN if unknown."""
    low, high = band
    if any(math.isnan(x) for x in (value, low, high)):
        return math.nan
    return max(math.log(low) - math.log(value), math.log(value) - math.log(high))
