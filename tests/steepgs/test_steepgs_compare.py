"""Matched-PSNR readings, seed intervals, the null arm and sweep extension."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.core.runs import RunContext
from thrifty.steepgs import experiment
from thrifty.steepgs.compare import adc_count_at_psnr, compare, geometric_ci, separation_from_band
from thrifty.steepgs.config import SteepGSConfig


def row(variant: str, seed: int, threshold: float, n: float, psnr: float) -> dict:
    return {"scene": "s", "seed": seed, "variant": variant, "threshold": threshold, "n_gaussians": n, "test_psnr": psnr}


def test_adc_count_interpolates_in_log_space_and_hits_points_exactly() -> None:
    curve = [(100, 20.0), (400, 24.0)]
    count, kind = adc_count_at_psnr(curve, 22.0, 150)
    assert kind == "matched" and count == pytest.approx(200.0)
    assert adc_count_at_psnr([(137, 21.3), (411, 23.9)], 23.9, 411) == (411, "matched")


def test_adc_count_picks_the_crossing_nearest_the_point_on_a_noisy_curve() -> None:
    curve = [(800, 25.0), (100, 20.0), (400, 22.0), (200, 24.0)]  # crosses 23 dB three times
    assert adc_count_at_psnr(curve, 23.0, 150)[0] == pytest.approx(100 * 2**0.75)
    assert adc_count_at_psnr(curve, 23.0, 300)[0] == pytest.approx(200 * 2**0.5)
    assert adc_count_at_psnr(curve, 23.0, 500)[0] == pytest.approx(400 * 2 ** (1 / 3))


def test_out_of_range_points_are_bounds_not_dropped() -> None:
    curve = [(100, 20.0), (400, 24.0), (200, 21.0)]
    assert adc_count_at_psnr(curve, 25.0, 300) == (400, "upper_bound")
    assert adc_count_at_psnr(curve, 19.0, 300) == (100, "lower_bound")
    rows = [row("adc", 0, t, n, p) for t, (n, p) in enumerate(curve)]
    rows += [row("steep", 0, 0, 200, 25.0), row("steep", 0, 1, 50, 22.0)]
    out = compare(rows, "steep")
    assert out["matched_points"] == 1 and out["out_of_range_points"] == 1
    assert out["ratio_upper_bounds"] == [0.5] and out["ratio_lower_bounds"] == []
    assert out["count_ratio_matched_psnr"] == pytest.approx(50 / (200 * 2 ** (1 / 3)))


def test_compare_averages_seeds_geometrically_with_a_t_interval() -> None:
    rows = []
    for seed, ratio in enumerate((0.5, 2.0, 1.0)):
        rows += [row("adc", seed, 1, 100, 20.0), row("adc", seed, 2, 400, 24.0), row("m", seed, 1, 200 * ratio, 22.0)]
    out = compare(rows, "m")
    assert out["seed_ratios"] == pytest.approx([0.5, 2.0, 1.0])
    assert out["count_ratio_matched_psnr"] == pytest.approx(1.0)
    half = 4.302652729911275 * math.log(2) / math.sqrt(3)  # t(0.975, 2) * sd(log r) / sqrt(n)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((math.exp(-half), math.exp(half)))
    assert out["psnr_loss_same_threshold_db"] == pytest.approx(-2.0)
    assert math.isnan(geometric_ci([0.7])[1]) and geometric_ci([0.7])[0] == pytest.approx(0.7)


def test_null_arm_ratio_on_identical_rows_is_exactly_one() -> None:
    adc = [row("adc", s, t, n, p) for s in (0, 1) for t, n, p in ((1, 120, 21.0), (2, 300, 23.5), (3, 700, 23.1))]
    null = [{**r, "variant": "adc_null"} for r in adc]  # a non-monotone curve included
    out = compare(adc + null, "adc_null")
    assert out["count_ratio_matched_psnr"] == 1.0 and out["seed_ratios"] == [1.0, 1.0]
    assert out["matched_points"] == 6 and out["ci_low"] == out["ci_high"] == 1.0


def test_separation_from_band() -> None:
    assert separation_from_band(0.5, (0.8, 1.25)) == pytest.approx(math.log(0.8 / 0.5))
    assert separation_from_band(1.0, (0.8, 1.25)) < 0
    assert math.isnan(separation_from_band(0.5, (math.nan, math.nan)))


@pytest.fixture(scope="module")
def tiny() -> tuple[SteepGSConfig, RunContext, experiment.Views3D]:
    cfg = SteepGSConfig.from_preset("smoke", steps_3d=12, image_size_3d=8, refine_every_3d=4, refine_stop_3d=10)
    ctx = RunContext.__new__(RunContext)
    ctx.seed, ctx.device = 0, torch.device("cpu")
    ctx.log = lambda *args, **kwargs: None
    return cfg, ctx, experiment.make_views(cfg, ctx.device)


def test_identical_adc_runs_through_the_null_comparison_give_one(tiny) -> None:
    cfg, ctx, views = tiny
    runs = [experiment.fit_arm(cfg, ctx, views, seed=0, variant="adc", threshold=t)[0] for t in (1e-3, 4e-3)]
    again = experiment.fit_arm(cfg, ctx, views, seed=0, variant="adc", threshold=1e-3)[0]
    null = experiment.fit_arm(cfg, ctx, views, seed=0, variant="adc_null", threshold=1e-3)[0]
    assert compare(runs + [{**again, "variant": "adc_null"}], "adc_null")["count_ratio_matched_psnr"] == 1.0
    assert null["test_psnr"] != runs[0]["test_psnr"]  # the real null arm is a second seed, not a copy


def test_sweep_extends_towards_the_out_of_range_point(tiny, monkeypatch) -> None:
    cfg, ctx, views = tiny
    calls = []

    def fake_fit(cfg, ctx, views, *, seed, variant, threshold, **kwargs):
        calls.append(threshold)
        return row("adc", seed, threshold, 900, 30.0), None

    monkeypatch.setattr(experiment, "fit_arm", fake_fit)
    rows = [row("adc", 0, 2e-3, 100, 20.0), row("adc", 0, 1e-3, 200, 22.0), row("steepgs", 0, 2e-3, 90, 25.0)]
    new = experiment.extend_sweep(cfg.replace(sweep_extend=3, sweep_factor=2.0), ctx, views, 0, rows)
    assert calls == [5e-4] and len(new) == 1  # one step past ADC's best brought 25 dB into range
    rows[-1]["test_psnr"] = 18.0
    experiment.extend_sweep(cfg.replace(sweep_extend=1, sweep_factor=2.0), ctx, views, 0, rows)
    assert calls[-1] == 4e-3
