"""The reproduction contract: a smoke run writes a valid results.json; bad config values are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import new_run_root, run_method
from thrifty.longhorn.config import LonghornConfig


def test_smoke_run_writes_results_with_all_peers(tmp_path: Path) -> None:
    outcome = run_method(get_method("longhorn"), preset="smoke", seed=0, run_root=new_run_root(tmp_path))
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert {"longhorn", "mamba", "gla", "transformer"} <= set(results["variants"])
    assert results["headline"]["metric"] == "accuracy_diff"
    lh, mamba = results["variants"]["longhorn"], results["variants"]["mamba"]
    assert results["headline"]["value"] == pytest.approx(lh["mqar_acc_kv4"] - mamba["mqar_acc_kv4"])
    assert results["checks"][0]["value"] == pytest.approx(lh["lm_val_bpc"] - mamba["lm_val_bpc"])
    assert {"length_extrapolation.png", "decode_ms_per_token.png", "mqar_accuracy.png"} <= set(results["plots"])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"ssm_layers": 3}, "ssm_layers"),
        ({"mqar_kv": (30,)}, "mqar_kv"),
        ({"mqar_models": ("gla",)}, "mqar_models"),
        ({"extrap_len": 8}, "extrap_len"),
        ({"mqar_lrs": ()}, "mqar_lrs"),
    ],
)
def test_bad_config_values_are_named(override: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        LonghornConfig.from_preset("smoke", **override)
