"""The registered method: config presets and a smoke run that writes a valid results.json."""

from __future__ import annotations

import json
import math

import pytest

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import RESULTS_KEYS, run_method
from thrifty.flashnas.config import FlashNASConfig
from thrifty.flashnas.dataset import DATASET_PATH


def test_presets_and_validation() -> None:
    for name in ("smoke", "quick", "full"):
        cfg = FlashNASConfig.from_preset(name)
        assert FlashNASConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="n_kv_heads"):
        FlashNASConfig.from_preset("quick", n_kv_heads=3)
    with pytest.raises(ConfigError, match="latency_residual"):
        FlashNASConfig.from_preset("quick", latency_residual="mlp")


@pytest.mark.skipif(not DATASET_PATH.exists(), reason=f"no stored latency dataset at {DATASET_PATH}")
def test_smoke_run_writes_results(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    outcome = run_method(get_method("flashnas"), preset="smoke", run_root=tmp_path / "runs")
    assert outcome.ok, outcome.error
    payload = json.loads((outcome.run_dir / "results.json").read_text())
    assert set(RESULTS_KEYS) <= set(payload)
    variants, extra = payload["variants"], payload["extra"]
    finalists = [name for name in variants if name.startswith("cand")]
    assert {"backbone", "deep_thin"} <= set(variants) and len(finalists) == 2  # smoke: final_candidates=2
    assert extra["chosen"] in variants and extra["compared_with_baselines"] in finalists
    for row in variants.values():
        assert math.isfinite(row["val_bpc"]) and row["prefill_32_ms"] > 0 and row["decode_32_ms"] > 0
        assert row["prefill_32_min_ms"] <= row["prefill_32_ms"] and row["prefill_32_rel_iqr"] >= 0
    chosen = variants[extra["chosen"]]
    assert chosen["rel_loss"] <= 0.02  # the pick respects the claim's bound (the backbone itself if none does)
    assert set(extra["search"]) == {"random", "flops", "latency"}
    assert all(v["evaluations"] == 2 and len(v["hypervolume"]) == 2 for v in extra["search"].values())
    assert list(extra["speedups_at_bounds"]) == ["+1%", "+2%", "+5%"]
    assert (outcome.run_dir / "pareto.png").exists() and (outcome.run_dir / "measured_front.png").exists()


def test_latency_dataset_is_checked_up_front(tmp_path) -> None:
    with pytest.raises(ConfigError, match="latency_dataset: expected the path of an existing file"):
        FlashNASConfig.from_preset("quick", latency_dataset=str(tmp_path / "missing.json"))
    assert FlashNASConfig.from_preset("quick", latency_dataset=str(DATASET_PATH)).latency_dataset == str(DATASET_PATH)
