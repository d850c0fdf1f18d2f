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
    variants = results["variants"]
    assert {"longhorn", "mamba", "gla", "transformer", "transformer_conv"} <= set(variants)
    assert {"heuristic: random_context_value", "heuristic: most_recent_value"} <= set(variants)
    cell = results["extra"]["headline_cell"]
    key = f"mqar_d16_N4_acc_kv{cell['kv']}"
    assert results["headline"]["metric"] == "accuracy_diff"
    assert results["headline"]["value"] == pytest.approx(variants["longhorn"][key] - variants["mamba"][key])
    assert results["checks"][0]["name"].startswith("informative:")
    diffs = [a - b for a, b in zip(variants["longhorn"]["lm_bpc_by_seed"], variants["mamba"]["lm_bpc_by_seed"])]
    paired = results["extra"]["lm_paired_longhorn_minus_mamba"]["final"]
    assert len(diffs) == 2 and paired["mean"] == pytest.approx(sum(diffs) / 2)
    assert results["checks"][1]["value"] == pytest.approx(paired["high"])
    assert {"length_extrapolation.png", "decode_ms_per_token.png", "mqar_accuracy.png"} <= set(results["plots"])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"ssm_layers": 3}, "ssm_layers"),
        ({"mqar_kv": (30,)}, "mqar_kv"),
        ({"mqar_vocab": 32}, "mqar_vocab"),
        ({"lm_eval_steps": (5,)}, "lm_eval_steps"),
        ({"init_scheme": "gpt2"}, "init_scheme"),
        ({"lm_models": ("gla",)}, "lm_models"),
        ({"mqar_models": ("gla",)}, "mqar_models"),
        ({"extrap_len": 8}, "extrap_len"),
        ({"mqar_lrs": ()}, "mqar_lrs"),
    ],
)
def test_bad_config_values_are_named(override: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        LonghornConfig.from_preset("smoke", **override)
