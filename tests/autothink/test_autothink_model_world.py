"""Video world invariants, the prefix-LM video model (cache = full forward), training pieces, smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from thrifty.autothink.config import AutoThinkConfig
from thrifty.autothink.evaluation import Decoded, category_metrics, choose_tau, perfect_gating_tokens
from thrifty.autothink.model import VideoLM, VideoLMConfig, VideoPrompt, prefix_lm_mask
from thrifty.autothink.training import RewardWeights, response_reward, sample, target_tokens
from thrifty.autothink.world import (
    COLOURS,
    FRAME_TAGS,
    QUESTION_LEN,
    QUESTION_TYPES,
    REASONING,
    VOCAB,
    Obj,
    _random_objects,
    encode,
    make_example,
    make_split,
    overlapping,
    question_types,
    render,
    trajectory,
)
from thrifty.core.config import ConfigError
from thrifty.core.registry import get_method
from thrifty.core.runs import new_run_root, run_method


def test_trajectory_bounces_off_walls_and_render_draws_only_visible_frames() -> None:
    obj = Obj("red", "plus", (0, 12), (0, 3), 0, 5)
    positions, vels = trajectory(obj, 8, 16)
    assert all(0 <= x <= 13 for _, x in positions)
    assert positions[:3] == [(0, 12), (0, 11), (0, 8)] and vels[0] == (0, 3) and vels[1] == (0, -3)
    frames = render([obj], 8, 16)
    assert frames[:6].sum() > 0 and frames[6:].sum() == 0
    assert frames[0, 0:3, 12:15, 0].tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # red plus
    assert frames[0, ..., 1:].sum() == 0  # pure red


def _readings(trace: list[str]) -> tuple[list[int], list[int]]:
    return [int(t) for t in trace[0::2]], [int(t) for t in trace[1::2]]


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_examples_are_seeded_and_traces_compute_the_answer(qtype: str) -> None:
    for seed in range(4):
        a = make_example(np.random.default_rng(seed), qtype)
        b = make_example(np.random.default_rng(seed), qtype)
        assert np.array_equal(a.frames, b.frames) and a.answer == b.answer and a.trace == b.trace
        assert a.trace[-1] == a.answer and a.answer in VOCAB and len(a.question) <= QUESTION_LEN
        # every object is 5 pixels of one pure colour and none overlap: a frame's count is its mass / 5
        colour = a.question[1] if len(a.question) > 1 else None
        channel = COLOURS.index(colour) if colour in COLOURS else None
        lit = a.frames.sum(-1) if channel is None else a.frames[..., channel]
        per_frame = [int(round(m / 5)) for m in lit.sum((1, 2))]
        if qtype in ("tally", "tally_all"):
            counts, totals = _readings(a.trace)
            assert counts == per_frame and len(totals) == 8
            assert all(t == (prev + c) % 10 for prev, c, t in zip([0, *totals], counts, totals))
            assert int(a.answer) == sum(per_frame) % 10
        elif qtype in ("count", "exists"):
            assert a.trace[0:16:2] == list(FRAME_TAGS) and [int(t) for t in a.trace[1:16:2]] == per_frame
            assert a.answer == (str(per_frame[0]) if qtype == "count" else "yes" if sum(per_frame) else "no")
        else:
            assert set(a.trace[1:16:2]) <= {a.answer, "none"} and a.answer in a.trace[1:16:2]


def test_generated_objects_never_overlap_and_the_mix_follows_reasoning_share() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        objs = _random_objects(rng, 8, 16)
        assert 1 <= len(objs) <= 4 and not overlapping(objs, 8, 16)
    assert overlapping([Obj("red", "plus", (4, 4), (0, 1), 0, 7), Obj("blue", "tee", (5, 6), (0, 1), 0, 7)], 8, 16)
    assert not overlapping([Obj("red", "plus", (4, 4), (0, 1), 0, 3), Obj("blue", "tee", (5, 6), (0, 1), 4, 7)], 8, 16)
    kinds = question_types(20, 0.25)
    assert sum(k in REASONING for k in kinds) == 5 and set(kinds) == set(QUESTION_TYPES)
    assert question_types(5, None) == list(QUESTION_TYPES)
    split = make_split(1, 4, reasoning_share=0.25)
    assert [e.category for e in split].count("reasoning") == 5
    with pytest.raises(ValueError, match="reasoning_share"):
        question_types(4, 1.5)


def test_split_errors() -> None:
    with pytest.raises(ValueError, match="n_per_type: expected a positive integer"):
        make_split(0, 0)
    with pytest.raises(ValueError, match="qtype: expected one of"):
        make_example(np.random.default_rng(0), "weather")


def _tiny_model() -> tuple[VideoLM, VideoPrompt]:
    torch.manual_seed(0)
    cfg = VideoLMConfig(len(VOCAB), question_len=QUESTION_LEN, dim=24, n_layers=2, n_heads=2)
    model = VideoLM(cfg)
    ex = make_split(0, 1)[:3]
    frames = torch.from_numpy(np.stack([e.frames for e in ex]))
    question = torch.tensor([encode(e.question) + [0] * (QUESTION_LEN - len(e.question)) for e in ex])
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
    assert perfect_gating_tokens(decoded) == 7.0  # exit on perception (4), think on reasoning (10)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="group_size"):
        AutoThinkConfig(group_size=1)
    with pytest.raises(ConfigError, match="max_len"):
        AutoThinkConfig(max_len=20)
    with pytest.raises(ConfigError, match="reasoning_share"):
        AutoThinkConfig(reasoning_share=1.0)


def test_smoke_reproduction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    outcome = run_method(get_method("autothink"), preset="smoke", seed=0, run_root=new_run_root(tmp_path))
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert set(results["variants"]) == {"direct", "cot", "twice"}
    assert any(c["name"].startswith("informative:") for c in results["checks"])
    assert (outcome.run_dir / "models" / "twice" / "model.safetensors").exists()
