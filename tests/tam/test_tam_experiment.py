"""Contract: the smoke reproduction writes a valid results.json with every variant; configs round-trip."""

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import new_run_root, run_method
from thrifty.tam.config import TamConfig, parse_latent_grid
from thrifty.tam.experiment import _interval


def test_smoke_run_writes_results_with_all_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    outcome = run_method(get_method("tam"), preset="smoke", seed=0, run_root=new_run_root(tmp_path), threads=1)
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    v = results["variants"]
    assert set(v) == {"A", "B", "C", "C'", "C+KD", "D", "C scratch", "C EdgeTAM init", "copy first frame"}
    assert v["C"]["bytes_per_frame"] < v["A"]["bytes_per_frame"] and v["A"]["memattn_gflops"] > 0
    assert v["A"]["memattn_ratio_A_min"] == v["A"]["memattn_ratio_A_max"] == 1.0  # per-round ratio spread
    assert v["C"]["memattn_ratio_A_min"] <= v["C"]["memattn_ratio_A_max"] and v["C"]["memattn_min_ms"] > 0
    assert v["C scratch"]["steps"] == 2 and v["C"]["steps"] == 1  # scratch gets pretrain + fine-tune steps
    assert v["B"]["fresh_tensors"] == 0 and v["C"]["fresh_tensors"] > 0  # only the perceiver starts fresh
    assert len(results["checks"]) == 9
    assert [c["name"] for c in results["checks"]].count("informative: A J&F - D J&F on all videos") == 1
    for name in ("A", "B", "C", "C'", "C+KD", "D"):  # floors beside every variant
        assert v[name]["threshold"] in (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0), name
        assert v[name]["JF_minus_copy"] == pytest.approx(v[name]["JF"] - v["copy first frame"]["JF"])
        d_cal = v[name]["JF_calibrated"] - v["D"]["JF_calibrated"]
        assert v[name]["JF_calibrated_minus_D_calibrated"] == pytest.approx(d_cal)
    seeds = results["extra"]["seeds"]
    assert seeds["seeds"] == [0, 1] and seeds["JF_B"][0] == v["B"]["JF"]
    assert results["headline"]["value"] == pytest.approx(
        (seeds["JF_B"][0] - seeds["JF_A"][0] + seeds["JF_B"][1] - seeds["JF_A"][1]) / 2
    )
    sweep = results["extra"]["latent_sweep"]
    assert [r["grid"] for r in sweep] == ["1+1x1", "2+2x2"] and sweep[1]["JF"] == v["C"]["JF"]
    assert sweep[0]["storage_ratio"] == pytest.approx(2 / 64) and sweep[1]["storage_ratio"] == pytest.approx(6 / 64)
    assert (outcome.run_dir / "models" / "C_scratch" / "model.safetensors").exists()
    c_minus_a = v["C"]["JF_calibrated"] - v["A"]["JF_calibrated"]
    assert results["extra"]["calibrated_jf_diff_C-A"] == pytest.approx(c_minus_a)
    assert results["claim_holds"] == (results["headline"]["holds"] and all(x["holds"] for x in results["checks"]))


def test_interval_is_the_student_t_interval() -> None:
    out = _interval([1.0, 2.0, 4.0])
    half = stats.t.ppf(0.975, 2) * math.sqrt(7 / 3) / math.sqrt(3)
    assert out["mean"] == pytest.approx(7 / 3) and out["high"] - out["mean"] == pytest.approx(half)
    assert math.isnan(_interval([1.0])["low"])


def test_config_round_trip_and_validation(tmp_path: Path) -> None:
    cfg = TamConfig.from_preset("full")
    cfg.to_json(tmp_path / "c.json")
    assert TamConfig.from_json(tmp_path / "c.json") == cfg
    assert parse_latent_grid("16+4x4") == (16, (4, 4))
    with pytest.raises(ConfigError, match="variants"):
        TamConfig(variants=("C+KD",))
    with pytest.raises(ConfigError, match="steps"):
        TamConfig(steps=0)
    with pytest.raises(ConfigError, match="init"):
        TamConfig(init="warm")
    with pytest.raises(ConfigError, match="latent_sweep"):
        TamConfig(latent_sweep=("4x4",))
    with pytest.raises(ConfigError, match="perceiver_init"):
        TamConfig.from_preset("quick", model={"perceiver_init": "avg"})
