"""The reproduction runs end to end (smoke preset), .ply round-trips, and the matched-PSNR helper."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import new_run_root, run_method
from thrifty.steepgs.config import SteepGSConfig
from thrifty.steepgs.experiment import adc_count_at_psnr, compare
from thrifty.steepgs.export import PLY_FIELDS, load_ply, save_ply


def test_smoke_run_writes_results(tmp_path: Path) -> None:
    outcome = run_method(get_method("steepgs"), preset="smoke", seed=0, run_root=new_run_root(tmp_path))
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert {"2d/adc", "2d/steepgs", "3d/adc", "3d/steepgs"} <= set(results["variants"])
    assert len(results["checks"]) == 3
    assert (outcome.run_dir / "steepgs_3d.ply").stat().st_size > 0
    config = json.loads((outcome.run_dir / "config.json").read_text())
    cameras = json.loads((outcome.run_dir / results["extra"]["cameras"]).read_text())
    assert len(cameras) == config["train_views"] + config["test_views"]
    assert [c["id"] for c in cameras] == list(range(len(cameras)))
    assert all(c["width"] == c["height"] == config["image_size_3d"] for c in cameras)


def test_adc_count_at_psnr_interpolates_in_log_space() -> None:
    curve = [(100, 20.0), (400, 24.0), (1600, 22.0)]  # non-monotone tail: the envelope ignores 1600
    assert adc_count_at_psnr(curve, 22.0) == pytest.approx(200.0)
    assert math.isnan(adc_count_at_psnr(curve, 25.0)) and math.isnan(adc_count_at_psnr(curve, 19.0))


def test_compare_ratio_and_psnr_loss() -> None:
    rows = [
        {"scene": "a", "seed": 0, "variant": v, "threshold": t, "n_gaussians": n, "test_psnr": p}
        for v, t, n, p in [
            ("adc", 1, 100, 20.0),
            ("adc", 2, 400, 24.0),
            ("steep", 1, 50, 20.0),
            ("steep", 2, 200, 24.5),
        ]
    ]
    out = compare(rows, "steep")
    assert out["count_ratio_matched_psnr"] == pytest.approx(0.5)
    assert out["matched_points"] == 1 and out["out_of_range_points"] == 1
    assert out["psnr_loss_same_threshold_db"] == pytest.approx(-0.25)


def test_ply_round_trip(tmp_path: Path) -> None:
    params = {
        "means": torch.randn(7, 3),
        "colors": torch.rand(7, 3),
        "opacities": torch.randn(7),
        "scales": torch.randn(7, 3),
        "quats": torch.nn.functional.normalize(torch.randn(7, 4), dim=-1),
    }
    path = save_ply(tmp_path / "g.ply", params)
    assert b"element vertex 7\n" in path.read_bytes()[:200]
    back = load_ply(path)
    for key, value in back.items():
        torch.testing.assert_close(value, params[key], rtol=1e-5, atol=1e-6)
    assert len(PLY_FIELDS) == 17
    with pytest.raises(ValueError, match="quats"):
        save_ply(tmp_path / "bad.ply", {k: v for k, v in params.items() if k != "quats"})


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match="thresholds_2d"):
        SteepGSConfig(thresholds_2d=(-1.0,))
    with pytest.raises(ConfigError, match="variants_2d"):
        SteepGSConfig(variants_2d=("steepgs",))
