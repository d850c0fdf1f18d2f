"""The smoke reproduction writes every stage; the teacher cache is reused; config validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import RESULTS_KEYS, run_method
from thrifty.guard.classifier import GuardClassifier
from thrifty.guard.config import GuardConfig

STAGES = {
    "teacher_fp32",
    "pruned_no_ft",
    "ft_ce",
    "ft_kd",
    "kd_ptq_8da4w",
    "kd_qat_8da4w",
    "kd_q4_0_gguf",
    "scratch_control",
}


def test_smoke_run_writes_every_stage_and_a_loadable_classifier(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    outcome = run_method(get_method("guard"), preset="smoke", seed=0, run_root=tmp_path)
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert all(key in results for key in RESULTS_KEYS)
    assert set(results["variants"]) == STAGES  # smoke runs without ExecuTorch
    v = results["variants"]
    assert v["kd_q4_0_gguf"]["bits_per_weight"] == 4.5
    assert v["pruned_no_ft"]["params"] < v["teacher_fp32"]["params"]
    assert all(0.0 <= v[s]["F1"] <= 1.0 and 0.0 <= v[s]["FPR"] <= 1.0 for s in STAGES)
    assert results["checks"][0]["name"] == "informative: teacher F1 in [0.85, 0.97]"
    assert results["extra"]["group_size"] == 32
    clf = GuardClassifier.load(outcome.run_dir / "classifier_kd")
    assert 0.0 <= clf.score([("User", "how do i stab the neighbor")]) <= 1.0
    again = run_method(get_method("guard"), preset="smoke", seed=0, run_root=tmp_path / "second")
    assert again.ok and "loaded from cache" in json.loads((again.run_dir / "results.json").read_text())["notes"]


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="group_size"):
        GuardConfig.from_preset("smoke", group_size=24)
    with pytest.raises(ConfigError, match="keep_layers"):
        GuardConfig.from_preset("smoke", keep_layers=9)
    with pytest.raises(ConfigError, match="neuron_agg"):
        GuardConfig.from_preset("smoke", neuron_agg="max")
