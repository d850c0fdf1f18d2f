"""Pure helpers of the reproduction: the deep-thin baseline, finalists, the pick at a loss bound, timing noise."""

from __future__ import annotations

import numpy as np
import pytest
from flashnas_fixtures import random_model

from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.experiment import deep_thin_config
from thrifty.flashnas.experiment_claims import speedups_at_bounds
from thrifty.flashnas.latency import param_count
from thrifty.flashnas.search import SearchSpace
from thrifty.flashnas.selection import (
    TimingStats,
    fastest_within,
    nondominated_order,
    paired_difference,
    pick_finalists,
    speedup_resolution,
)


def test_deep_thin_keeps_every_layer_and_matches_params() -> None:
    cfg = FlashLMConfig.uniform(11, 64, 4, 4, 2, 128, head_dim=16)
    space = SearchSpace.from_backbone(cfg, width_step=16, ffn_step=32)
    target = param_count(cfg) // 3
    thin = deep_thin_config(random_model(cfg), space, target)
    assert thin.layers == (0, 1, 2, 3) and all(thin.attn) and thin.d_model < 64
    best_gap = abs(param_count(thin.arch(cfg)) - target)
    assert best_gap <= min(
        abs(param_count(FlashLMConfig.uniform(11, w, 4, 2 * kv, kv, f, head_dim=16)) - target)
        for w in space.widths
        if w < 64
        for f in space.ffns
        for kv in space.kv_heads
    )


def test_fastest_within_bound() -> None:
    rel = {"backbone": 0.0, "a": 0.015, "b": 0.03, "c": 0.019}
    ms = {"backbone": 10.0, "a": 6.0, "b": 3.0, "c": 7.0}
    assert fastest_within(rel, ms, 0.02) == "a"
    assert fastest_within(rel, ms, 0.05) == "b"
    assert fastest_within(rel, ms, 0.0) == "backbone"
    assert fastest_within({"a": 0.1}, {"a": 1.0}, 0.02) is None


def test_nondominated_order_and_finalists() -> None:
    loss = {0: 1.0, 1: 2.0, 2: 3.0, 3: 2.5, 4: 1.5, 5: 4.0}
    cost = np.array([9.0, 5.0, 1.0, 6.0, 7.0, 8.0])
    fronts = nondominated_order([loss[i] for i in range(6)], list(cost))
    assert sorted(fronts[0]) == [0, 1, 2, 4]  # 3 is dominated by 1, 5 by 4
    assert sum(len(f) for f in fronts) == 6
    assert pick_finalists(range(6), loss, cost, 4) == [2, 1, 4, 0]  # the whole front, fastest first
    two = pick_finalists([0, 1, 2, 4, 4], loss, cost, 2)
    assert two == [2, 0]  # evenly spaced over the front: both extremes
    assert len(pick_finalists(range(6), loss, cost, 5)) == 5  # the next front fills the rest
    with pytest.raises(ValueError, match="k: expected a positive"):
        pick_finalists(range(6), loss, cost, 0)


def test_timing_noise_decides_resolvability() -> None:
    stats = TimingStats.of([10.0, 11.0, 12.0, 13.0, 100.0])
    assert (stats.min_ms, stats.median_ms, stats.runs) == (10.0, 12.0, 5)
    assert stats.rel_spread == pytest.approx((13.0 - 11.0) / 12.0)
    assert speedup_resolution(20.0, 0.01, 10.0, 0.01) > 30  # a clear 2x with 1% noise
    assert speedup_resolution(10.5, 0.2, 10.0, 0.2) < 1  # 5% effect inside 20% noise: no verdict
    assert speedup_resolution(10.0, 0.0, 10.0, 0.0) == 0.0


def test_paired_difference() -> None:
    mean, se = paired_difference([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])
    assert mean == pytest.approx(3.0) and se == pytest.approx(1.0 / np.sqrt(3))
    assert np.isnan(paired_difference([1.0], [0.0])[1])


def test_speedups_at_bounds_read_the_fastest_within_each_bound() -> None:
    row = lambda rel, pre, dec: {"rel_loss": rel, "p_ms": pre, "d_ms": dec}  # noqa: E731
    variants = {
        "backbone": row(0.0, 10.0, 4.0),
        "cand1": row(0.01, 8.0, 3.0),
        "cand2": row(0.04, 5.0, 2.0),
        "deep_thin": row(0.0, 1.0, 1.0),  # not a search finalist: never read as a pick
    }
    out = speedups_at_bounds(variants, (0.0, 0.02, 0.05), "p_ms", "d_ms")
    assert out["+0%"]["model"] == "backbone" and out["+0%"]["prefill_speedup"] == 1.0
    assert out["+2%"] == {"model": "cand1", "rel_loss": 0.01, "prefill_speedup": 1.25, "decode_speedup": 4 / 3}
    assert out["+5%"]["model"] == "cand2" and out["+5%"]["prefill_speedup"] == 2.0
