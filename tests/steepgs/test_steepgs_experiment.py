"""The reproduction runs end to end (smoke preset), .ply round-trips, and the config checks its design."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import new_run_root, run_method
from thrifty.steepgs.config import SteepGSConfig
from thrifty.steepgs.export import PLY_FIELDS, load_ply, save_ply
from thrifty.steepgs.variants import FACTORIAL_3D


def test_smoke_run_writes_results(tmp_path: Path) -> None:
    outcome = run_method(get_method("steepgs"), preset="smoke", seed=0, run_root=new_run_root(tmp_path))
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    arms = {f"3d/{v}" for v in (*FACTORIAL_3D, "adc_null", "no_densify")}
    assert arms | {"2d/adc", "2d/steepgs"} == set(results["variants"])
    names = [c["name"] for c in results["checks"]]
    assert sum(n.startswith("informative:") for n in names) == 1
    assert any(n.startswith("plateau:") for n in names) and any(n.startswith("headroom:") for n in names)
    rows = [r for r in results["extra"]["rows"] if r["task"] == "3d"]
    assert sum(r["extended_test_psnr"] is not None for r in rows) == 2  # ADC and SteepGS on seed 0
    no_densify = next(r for r in rows if r["variant"] == "no_densify")
    adc = next(r for r in rows if r["variant"] == "adc" and r["threshold"] == no_densify["threshold"])
    assert no_densify["n_init"] == no_densify["n_gaussians"] == adc["n_gaussians"]
    assert (outcome.run_dir / "steepgs_3d.ply").stat().st_size > 0
    config = json.loads((outcome.run_dir / "config.json").read_text())
    cameras = json.loads((outcome.run_dir / results["extra"]["cameras"]).read_text())
    assert len(cameras) == config["train_views"] + config["test_views"]
    assert [c["id"] for c in cameras] == list(range(len(cameras)))
    assert all(c["width"] == c["height"] == config["image_size_3d"] for c in cameras)


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
    with pytest.raises(ConfigError, match="variant_thresholds_3d"):
        SteepGSConfig(variant_thresholds_3d=(9e-3,))
    with pytest.raises(ConfigError, match="variants_3d"):
        SteepGSConfig(variants_3d=("adc", "steepgs", "mcmc"))
    with pytest.raises(ConfigError, match="refine_stop_3d"):
        SteepGSConfig(refine_start_3d=400, refine_stop_3d=300)


def test_presets_share_the_design_at_growing_scale() -> None:
    presets = [SteepGSConfig.from_preset(p) for p in ("quick", "full", "paper")]
    for cfg in presets:
        assert len(cfg.adc_thresholds_3d) >= 5 and cfg.seeds_3d >= 3 and 10 <= cfg.densify_rounds_3d <= 15
        assert set(cfg.variants_3d) == set(FACTORIAL_3D) and not cfg.run_2d and cfg.no_densify_control
    sizes = [cfg.image_size_3d * cfg.steps_3d for cfg in presets]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
