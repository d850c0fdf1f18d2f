"""Contract smoke test: the registered method runs its smoke preset and writes a valid results.json."""

from __future__ import annotations

import json
import math

import pytest
import torch

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import RESULTS_KEYS, run_method
from thrifty.dtrpo.config import DTRPOConfig
from thrifty.dtrpo.tasks import EOS, AdditionTask


def test_smoke_run_writes_results(tmp_path) -> None:
    outcome = run_method(get_method("dtrpo"), preset="smoke", seed=0, run_root=tmp_path)
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert all(key in results for key in RESULTS_KEYS)
    arms = {"sft_start", "dtrpo_newly", "dtrpo_rb", "vrpo", "mean_field", "exact", "sft"}
    assert set(results["variants"]) == arms
    v = results["variants"]
    assert v["exact"]["policy_forwards_per_pair"] == 2 * (8 // 4) * 4
    assert v["dtrpo_newly"]["policy_forwards_per_pair"] == 2
    assert all(0 <= v[a]["accuracy"] <= 1 for a in arms)
    assert all(math.isfinite(v[a]["ms_per_update"]) for a in arms - {"sft_start"})
    assert v["exact"]["logratio_var"] == 0.0  # the recorded order is replayed exactly
    assert results["plots"] == ["dtrpo_arms.png"]
    assert results["claim_holds"] == (results["headline"]["holds"] and all(c["holds"] for c in results["checks"]))


def test_config_and_task_validation() -> None:
    with pytest.raises(ConfigError, match="block"):
        DTRPOConfig(resp_len=8, block=3)
    with pytest.raises(ConfigError, match="arms"):
        DTRPOConfig(arms=("dpo",))
    task = AdditionTask(n_digits=2, resp_len=5)
    problems = torch.tensor([[7, 5], [99, 99]])
    assert task.prompts(problems).tolist() == [[0, 7, 10, 0, 5, 11], [9, 9, 10, 9, 9, 11]]
    assert task.answers(problems).tolist() == [[0, 1, 2, EOS, EOS], [1, 9, 8, EOS, EOS]]
    wrong = task.answers(problems).clone()
    wrong[1, 2] = 7
    assert task.verify(problems, wrong).tolist() == [True, False]
    with pytest.raises(ValueError, match="resp_len"):
        AdditionTask(n_digits=3, resp_len=3)
