"""Video world invariants, the prefix-LM video model (cache = full forward), training pieces, smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from thrifty.autothink.config import AutoThinkConfig
from thrifty.autothink.evaluation import Decoded, category_metrics, choose_tau
from thrifty.autothink.model import VideoLM, VideoLMConfig, VideoPrompt, prefix_lm_mask
from thrifty.autothink.training import RewardWeights, response_reward, sample, target_tokens
from thrifty.autothink.world import (
    QUESTION_TYPES,
    VOCAB,
    Obj,
    encode,
    make_example,
    make_split,
    render,
    trajectory,
)
from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import new_run_root, run_method


def test_trajectory_bounces_off_walls_and_render_draws_only_visible_frames() -> None:
    obj = Obj("red", "square", (0, 12), (0, 3), 0, 5)
    positions, vels = trajectory(obj, 8, 16)
    assert all(0 <= x <= 13 for _, x in positions)
    assert positions[:3] == [(0, 12), (0, 11), (0, 8)] and vels[0] == (0, 3) and vels[1] == (0, -3)
    frames = render([obj], 8, 16)
    assert frames[:6].sum() > 0 and frames[6:].sum() == 0
    assert frames[0, 0:3, 12:15, 0].min() == 1.0  # red square fully drawn


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_examples_are_seeded_and_traces_end_with_the_answer(qtype: str) -> None:
    a = make_example(np.random.default_rng(3), qtype)
    b = make_example(np.random.default_rng(3), qtype)
    assert np.array_equal(a.frames, b.frames) and a.answer == b.answer and a.trace == b.trace
    assert a.trace[-1] == a.answer and a.answer in VOCAB and len(a.question) <= 3
    if qtype == "sum":
        assert int(a.trace[1]) + int(a.trace[3]) == int(a.answer)
    if qtype == "count":
        assert len(a.trace) == 2 * int(a.answer) + 2


def test_split_errors() -> None:
    with pytest.raises(ValueError, match="n_per_type: expected a positive integer"):
        make_split(0, 0)
    with pytest.raises(ValueError, match="qtype: expected one of"):
        make_example(np.random.default_rng(0), "weather")


def _tiny_model() -> tuple[VideoLM, VideoPrompt]:
    torch.manual_seed(0)
    model = VideoLM(VideoLMConfig(len(VOCAB), n_frames=8, frame_size=16, patch=8, dim=24, n_layers=2, n_heads=2))
    ex = make_split(0, 1)[:3]
    frames = torch.from_numpy(np.stack([e.frames for e in ex]))
    question = torch.tensor([encode(e.question) + [0] * (3 - len(e.question)) for e in ex])
    return model.eval(), VideoPrompt(frames, question)


def test_prefix_mask_is_bidirectional_over_the_prefix_and_causal_after() -> None:
    mask = prefix_lm_mask(3, 6)
    assert mask[:3, :3].all() and not mask[:3, 3:].any()
    assert torch.equal(mask[3:, 3:], torch.ones(3, 3, dtype=torch.bool).tril())


def test_response_tokens_never_change_prefix_or_earlier_logits() -> None:
    model, prompt = _tiny_model()
    resp = torch.randint(0, len(VOCAB), (3, 5), generator=torch.Generator().manual_seed(0))
    full = model(prompt, resp)
    changed = resp.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % len(VOCAB)
    assert torch.allclose(model(prompt, changed)[:, :4], full[:, :4], atol=1e-5)


def test_cached_sampling_equals_teacher_forced_logits() -> None:
    model, prompt = _tiny_model()
    ids, mask, logps = sample(model, prompt, 7, 1.0, torch.Generator().manual_seed(0))
    full = torch.log_softmax(model(prompt, ids)[:, :-1].float(), -1).gather(-1, ids[..., None])[..., 0]
    assert torch.allclose(logps[mask], full[mask], atol=1e-5)


def test_response_rewards_by_arm() -> None:
    ex = make_split(0, 1)[3]  # a reasoning question
    rng = np.random.default_rng(0)
    weights = RewardWeights()
    assert response_reward(encode(target_tokens(ex, "direct", rng)), ex, "direct", weights) == 2.0
    assert response_reward(encode(target_tokens(ex, "cot", rng)), ex, "cot", weights) == 2.0
    twice = ["<box>", "FALLBACK", "</box>", "<think>", *ex.trace, "</think>", "<box>", ex.answer, "</box>", "EOS"]
    assert response_reward(encode(twice), ex, "twice", weights) == pytest.approx(2.4)
    assert response_reward(encode(twice), ex, "twice", RewardWeights(alpha=0.0)) == pytest.approx(2.1)


def test_tau_selection_and_metrics() -> None:
    decoded = [Decoded("perception", True, True, 0.99, 8, 4), Decoded("reasoning", False, True, 0.6, 10, 4)]
    m = category_metrics(decoded, 0.9)
    assert m["perception"]["think_rate"] == 0.0 and m["reasoning"]["think_rate"] == 1.0
    assert m["all"]["tokens"] == 7.0 and m["all"]["acc_auto"] == 1.0
    assert choose_tau(decoded, (0.5, 0.9, 1.0)) == 0.9  # 0.5 exits on the wrong a1; 1.0 costs more tokens


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="group_size"):
        AutoThinkConfig(group_size=1)
    with pytest.raises(ConfigError, match="max_len"):
        AutoThinkConfig(max_len=8)


def test_smoke_reproduction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    outcome = run_method(get_method("autothink"), preset="smoke", seed=0, run_root=new_run_root(tmp_path))
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert set(results["variants"]) == {"direct", "cot", "twice"}
    assert any(c["name"].startswith("informative:") for c in results["checks"])
    assert (outcome.run_dir / "models" / "twice" / "model.safetensors").exists()
