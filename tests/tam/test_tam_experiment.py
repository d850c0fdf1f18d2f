"""Contract: the smoke reproduction writes a valid results.json with every variant; configs round-trip."""

import json
from pathlib import Path

import pytest

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import new_run_root, run_method
from thrifty.tam.config import TamConfig


def test_smoke_run_writes_results_with_all_variants(tmp_path: Path) -> None:
    outcome = run_method(get_method("tam"), preset="smoke", seed=0, run_root=new_run_root(tmp_path), threads=1)
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert set(results["variants"]) == {"A", "B", "C", "C'", "C+KD", "D"}
    a, c = results["variants"]["A"], results["variants"]["C"]
    assert c["bytes_per_frame"] < a["bytes_per_frame"] and a["memattn_gflops"] > 0
    assert len(results["checks"]) == 8
    for name, v in results["variants"].items():  # the threshold-calibration diagnostic is reported per variant
        assert v["threshold"] in (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0), name
    c_minus_a = results["variants"]["C"]["JF_calibrated"] - results["variants"]["A"]["JF_calibrated"]
    assert results["extra"]["calibrated_jf_diff_C-A"] == pytest.approx(c_minus_a)
    assert results["claim_holds"] == (results["headline"]["holds"] and all(x["holds"] for x in results["checks"]))


def test_config_round_trip_and_validation(tmp_path: Path) -> None:
    cfg = TamConfig.from_preset("full")
    cfg.to_json(tmp_path / "c.json")
    assert TamConfig.from_json(tmp_path / "c.json") == cfg
    with pytest.raises(ConfigError, match="variants"):
        TamConfig(variants=("C+KD",))
    with pytest.raises(ConfigError, match="steps"):
        TamConfig(steps=0)
