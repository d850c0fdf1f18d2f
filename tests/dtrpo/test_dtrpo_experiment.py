"""Contract smoke test, the task's noisy teacher and graded pairs, intervals and config validation."""

from __future__ import annotations

import json
import math

import pytest
import torch

from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import RESULTS_KEYS, RunContext, run_method
from thrifty.dtrpo.config import DTRPOConfig
from thrifty.dtrpo.experiment import collect_pairs, make_task
from thrifty.dtrpo.experiment_arms import t_interval
from thrifty.dtrpo.model import DiffusionLMConfig, MaskedDiffusionLM
from thrifty.dtrpo.tasks import EOS, MASK, VOCAB_SIZE, AdditionTask


def test_smoke_run_writes_results(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    outcome = run_method(get_method("dtrpo"), preset="smoke", seed=0, run_root=tmp_path)
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert all(key in results for key in RESULTS_KEYS)
    arms = ("dtrpo_rec", "dtrpo_rb", "vrpo", "mean_field", "exact")
    names = {"sft_start", "sft", *arms, *(f"{a}+rpo" for a in arms)}
    assert set(results["variants"]) == names
    v = results["variants"]
    assert v["exact"]["policy_forwards_per_pair"] == 2 * (6 // 2) * 2
    assert v["dtrpo_rec"]["policy_forwards_per_pair"] == 2
    assert all(len(v[n]["test_accs"]) == 2 for n in names - {"sft_start"})
    assert v["exact"]["nll_weight"] == 0.0 and v["exact+rpo"]["nll_weight"] == 1.0
    assert v["sft"]["gain_vs_continued_sft"] == 0.0
    assert all(math.isfinite(v[n]["ms_per_update"]) for n in names - {"sft_start"})
    assert v["exact"]["logratio_var"] == 0.0  # the recorded order is replayed exactly
    assert len(v["sft_start"]["sft_val_curve"]) == 2  # smoke: 4 SFT steps, validated every 2
    assert 0.0 < v["sft_start"]["drop_every_carry_accuracy"] < 1.0
    assert results["plots"] == ["dtrpo_arms.png"]
    assert any(c["name"].startswith("informative:") for c in results["checks"])
    assert results["claim_holds"] == (results["headline"]["holds"] and all(c["holds"] for c in results["checks"]))


def test_noisy_teacher_drops_carries_and_reversed_answers() -> None:
    task = AdditionTask(n_digits=2, resp_len=4, reverse=True)
    problems = torch.tensor([[75, 48], [12, 34], [99, 1]])
    assert task.answers(problems).tolist() == [[3, 2, 1, EOS], [6, 4, 0, EOS], [0, 0, 1, EOS]]
    g = torch.Generator().manual_seed(0)
    assert torch.equal(task.noisy_answers(problems, 0.0, g), task.answers(problems))
    # every carry dropped: each digit is the column sum mod 10 and the top digit is 0
    no_carry = [[(5 + 8) % 10, (7 + 4) % 10, 0, EOS], [6, 4, 0, EOS], [0, 9, 0, EOS]]
    assert task.noisy_answers(problems, 1.0, g).tolist() == no_carry
    forward = AdditionTask(n_digits=2, resp_len=4)
    assert forward.noisy_answers(problems, 1.0, g).tolist() == [[0, 1, 3, EOS], [0, 4, 6, EOS], [0, 9, 0, EOS]]
    assert task.digit_reward(problems, torch.tensor(no_carry)).tolist() == [2, 4, 2]
    with pytest.raises(ValueError, match="carry_drop"):
        task.noisy_answers(problems, 1.5, g)
    with pytest.raises(ValueError, match="reverse"):
        AdditionTask(n_digits=2, resp_len=4, zero_pad=False, reverse=True)


def test_several_sums_per_prompt() -> None:
    task = AdditionTask(n_digits=2, resp_len=7, reverse=True, n_sums=2)
    problems = torch.tensor([[12, 34, 56, 78], [99, 1, 75, 48]])
    assert task.prompt_len == 12 and task.answer_len == 6
    assert task.decode(task.prompts(problems)[0]) == "12+34=56+78="
    # 12+34 = 046 and 56+78 = 134, each written least-significant digit first, then EOS
    assert task.answers(problems).tolist() == [[6, 4, 0, 4, 3, 1, EOS], [0, 0, 1, 3, 2, 1, EOS]]
    g = torch.Generator().manual_seed(0)
    assert torch.equal(task.noisy_answers(problems, 0.0, g), task.answers(problems))
    assert task.noisy_answers(problems, 1.0, g).tolist() == [[6, 4, 0, 4, 2, 0, EOS], [0, 9, 0, 3, 1, 0, EOS]]
    keys = task.key(problems)
    assert keys.tolist() == [12345678, 99017548]
    drawn = task.problems(50, torch.Generator().manual_seed(1), exclude=keys)
    assert drawn.shape == (50, 4) and not torch.isin(task.key(drawn), keys).any()
    with pytest.raises(ValueError, match="resp_len"):
        AdditionTask(n_digits=2, resp_len=5, reverse=True, n_sums=2)
    with pytest.raises(ValueError, match="n_sums"):
        AdditionTask(n_digits=2, resp_len=6, n_sums=0)


def test_digits_prompt_format_keeps_the_answers() -> None:
    equation = AdditionTask(n_digits=1, resp_len=6, reverse=True, n_sums=3)
    digits = AdditionTask(n_digits=1, resp_len=6, reverse=True, n_sums=3, prompt_format="digits")
    problems = torch.tensor([[7, 5, 1, 2, 9, 9]])
    assert digits.prompt_len == 6 and equation.prompt_len == 12
    assert digits.decode(digits.prompts(problems)[0]) == "751299"
    assert equation.decode(equation.prompts(problems)[0]) == "7+5=1+2=9+9="
    assert torch.equal(digits.answers(problems), equation.answers(problems))
    with pytest.raises(ValueError, match="prompt_format"):
        AdditionTask(prompt_format="words")


def _operands(task: AdditionTask, prompts: torch.Tensor) -> torch.Tensor:
    """``(n, 2 * n_sums)`` operands read back from ``"a1+b1=a2+b2="`` (or ``"a1b1a2b2"``) prompt ids."""
    d, symbols = task.n_digits, int(task.prompt_format == "equation")
    numbers = prompts.view(prompts.shape[0], -1, d + symbols)[..., :d]  # each operand's digits (drop the + / =)
    return (numbers * 10 ** torch.arange(d - 1, -1, -1)).sum(-1)


@pytest.mark.parametrize("pairing", ["graded", "imperfect"])
def test_collect_pairs_ranks_samples_and_keeps_the_orders(tmp_path, pairing: str) -> None:
    cfg = DTRPOConfig.from_preset("smoke", pairing=pairing)
    task = make_task(cfg)
    torch.manual_seed(0)
    model = MaskedDiffusionLM(DiffusionLMConfig(VOCAB_SIZE, MASK, dim=16, n_layers=1, n_heads=2))
    problems = task.problems(12, torch.Generator().manual_seed(0))
    pairs, info = collect_pairs(model, task, problems, cfg, RunContext(tmp_path))
    assert 0 < len(pairs) <= 12 * (cfg.samples_per_prompt // 2) and info["n_pairs"] == len(pairs)
    truth = task.answers(_operands(task, pairs.prompt))
    assert torch.equal(task.prompts(_operands(task, pairs.prompt)), pairs.prompt)
    right_w, right_l = (pairs.chosen == truth).sum(1), (pairs.rejected == truth).sum(1)
    assert (right_w > right_l).all() and info["digit_gap"] > 0
    if pairing == "imperfect":
        assert (right_w < cfg.resp_len).all() and info["chosen_correct"] == 0.0
    per_block = cfg.steps_per_block
    for order in (pairs.chosen_order, pairs.rejected_order):  # each block's steps are a permutation
        blocks = (
            order.view(len(pairs), -1, cfg.block) - torch.arange(cfg.resp_len // cfg.block)[None, :, None] * per_block
        )
        assert torch.equal(blocks.sort(-1).values, torch.arange(cfg.block).expand_as(blocks))


def test_t_interval() -> None:
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(half, 4.303 / math.sqrt(3))
    assert t_interval([0.5])[1] == math.inf


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="block"):
        DTRPOConfig(resp_len=8, block=3)
    with pytest.raises(ConfigError, match="arms"):
        DTRPOConfig(arms=("dpo",))
    with pytest.raises(ConfigError, match="arms"):
        DTRPOConfig(arms=("dtrpo_rec", "sft"))
    with pytest.raises(ConfigError, match="sweep"):
        DTRPOConfig(sweep=((0.0, 1e-4),))
    with pytest.raises(ConfigError, match="n_seeds"):
        DTRPOConfig(n_seeds=1)
    with pytest.raises(ConfigError, match="prompt_format"):
        DTRPOConfig(prompt_format="words")
    with pytest.raises(ConfigError, match="carry_drop"):
        DTRPOConfig(carry_drop=1.2)
    with pytest.raises(ConfigError, match="resp_len"):
        DTRPOConfig(n_sums=4, resp_len=6)
    with pytest.raises(ConfigError, match="pairing"):
        DTRPOConfig(pairing="best")
    with pytest.raises(ConfigError, match="sft_min_lr_ratio"):
        DTRPOConfig(sft_min_lr_ratio=1.5)


def test_bench_case_counts_forwards_and_times_every_estimator() -> None:
    from thrifty.core.bench import BenchContext
    from thrifty.dtrpo.bench import STEPS, _case_rows

    torch.manual_seed(0)
    model = MaskedDiffusionLM(DiffusionLMConfig(VOCAB_SIZE, MASK, dim=16, n_layers=1, n_heads=2))
    rows = _case_rows(2, BenchContext(torch.device("cpu")), model)
    forwards = {r["variant"]: r["forwards_per_pair"] for r in rows}
    assert forwards == {"dtrpo_rec": 2, "dtrpo_rb": 2, "vrpo": 8, "mean_field": 2, "exact": 2 * 2 * STEPS}
    assert all(r["median_ms"] > 0 and r["peak_mb"] >= 0 for r in rows)
