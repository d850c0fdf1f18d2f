"""Every compressor behind the shared interface: budget, provenance, determinism, ToMe reference, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.longvu.baselines import BASELINES, DyCokeKeep, ToMeMerge, VisionZip, bipartite_merge_round
from thrifty.longvu.compressor import LongVUCompressor
from thrifty.longvu.reference import tome_reference

SELECTION = ("uniform_frames", "uniform_pool", "random_drop", "dycoke")


def _video(n_frames: int = 48, side: int = 4, dim: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shots = torch.randn(n_frames // 8 + 1, side * side, dim, generator=g, dtype=torch.float64)
    video = shots.repeat_interleave(8, dim=0)[:n_frames]
    return video + 0.05 * torch.randn(video.shape, generator=g, dtype=torch.float64)


def _all(budget_frames: int = 0):
    out = {name: cls() for name, cls in BASELINES.items()}
    out["longvu"] = LongVUCompressor(temporal_threshold=0.2, stc_threshold=0.5)
    return out


@pytest.mark.parametrize("budget", [7, 48, 200, 767])
@pytest.mark.parametrize("name", [*BASELINES, "longvu"])
def test_budget_never_exceeded_and_order_temporal(name: str, budget: int) -> None:
    video = _video()
    out = _all()[name](video, budget, torch.randn(3, 8, dtype=torch.float64), None, torch.Generator().manual_seed(0))
    assert 0 < len(out) <= budget
    assert torch.all(out.frame_ids[1:] >= out.frame_ids[:-1])
    assert out.sizes.sum() <= video.shape[0] * video.shape[1] + 1e-9


@pytest.mark.parametrize("budget", [30, 100, 300])
@pytest.mark.parametrize("name", [*SELECTION, "longvu"])
def test_provenance_gather_reproduces_pure_selection(name: str, budget: int) -> None:
    video = _video(seed=1)
    out = _all()[name](video, budget, torch.randn(2, 8, dtype=torch.float64), None, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out.gather(video), out.tokens)


@pytest.mark.parametrize("name", [*BASELINES, "longvu"])
def test_deterministic_under_a_seed(name: str) -> None:
    video = _video(seed=2)
    a, b = (_all()[name](video, 60, None, None, torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.frame_ids, b.frame_ids)


def test_random_drop_depends_on_the_seed() -> None:
    video = _video(seed=2)
    drop = BASELINES["random_drop"]()
    a, b = (drop(video, 60, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    assert not torch.equal(a.frame_ids * 16 + a.pos_ids, b.frame_ids * 16 + b.pos_ids)


@pytest.mark.parametrize(("n_tokens", "budget"), [(21, 5), (64, 17), (33, 32), (10, 1)])
def test_tome_matches_slow_bipartite_reference(n_tokens: int, budget: int) -> None:
    x = torch.randn(n_tokens, 6, generator=torch.Generator().manual_seed(n_tokens), dtype=torch.float64)
    out = ToMeMerge(window=None)(x[:, None, :], budget)
    ref_x, ref_sizes, ref_rep = tome_reference(x, budget)
    torch.testing.assert_close(out.tokens, ref_x)
    torch.testing.assert_close(out.sizes, ref_sizes)
    assert out.frame_ids.tolist() == ref_rep.tolist()
    assert float(out.sizes.sum()) == n_tokens


def test_tome_round_is_size_weighted_and_windowed_shares() -> None:
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [5.0, 0.0]], dtype=torch.float64)
    sizes = torch.tensor([3.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    merged, new_sizes, rep = bipartite_merge_round(x, sizes, torch.arange(4), 1)
    # A = {0, 2}, B = {1, 3}; token 0 matches 3 (cos 1) and merges: (3 * [1, 0] + [5, 0]) / 4
    torch.testing.assert_close(merged, torch.tensor([[1.0, 0.1], [0.0, 1.0], [2.0, 0.0]], dtype=torch.float64))
    assert new_sizes.tolist() == [1.0, 1.0, 4.0] and rep.tolist() == [1, 2, 3]
    out = ToMeMerge(window=16)(_video(48), 96)
    assert len(out) == 96 and torch.bincount(out.frame_ids // 16).tolist() == [32, 32, 32]


def test_visionzip_merges_every_token_once() -> None:
    video = _video(seed=4)
    out = VisionZip()(video, 64)
    assert len(out) == 64 and float(out.sizes.sum()) == video.shape[0] * video.shape[1]
    dominant = out.sizes == 1
    torch.testing.assert_close(out.tokens[dominant], out.gather(video)[dominant])


def test_dycoke_keeps_anchor_frames_whole() -> None:
    video = _video(seed=5)
    out = DyCokeKeep(group=8)(video, 200)
    for anchor in range(0, 48, 8):
        assert (out.frame_ids == anchor).sum() == 16
    assert len(out) == 6 * 16 + (200 - 6 * 16) // 6 * 6


def test_longvu_needle_survives_and_gets_high_resolution() -> None:
    video = _video(256, seed=6)
    needle = 100
    video[needle, 5] += 6.0 * torch.ones(8, dtype=torch.float64)
    query = torch.ones(1, 8, dtype=torch.float64)
    out = LongVUCompressor(temporal_threshold=0.4)(video, 256, query)
    assert out.stats["regime"] == 1
    assert (out.frame_ids == needle).sum() == 16 and int(out.resolution[out.frame_ids == needle][0]) == 4
    no_query = LongVUCompressor(temporal_threshold=0.4, use_query=False)(video, 256, query)
    assert (no_query.frame_ids == needle).sum() == 4  # kept, but only low-res


@settings(max_examples=25, deadline=None)
@given(
    n_frames=st.integers(16, 70),
    budget_frac=st.floats(0.01, 1.0),
    threshold=st.floats(-0.2, 1.0),
    seed=st.integers(0, 10),
)
def test_longvu_budget_and_regime_rule(n_frames: int, budget_frac: float, threshold: float, seed: int) -> None:
    video = _video(n_frames, seed=seed)
    budget = max(1, int(budget_frac * n_frames * 16))
    comp = LongVUCompressor(temporal_threshold=threshold, stc_threshold=0.7)
    out = comp(video, budget, torch.randn(2, 8, dtype=torch.float64))
    n_kept = out.stats["frames_after_temporal"]
    assert len(out) <= budget
    expected = 0 if n_kept * 16 <= budget else (2 if n_kept * 4 > budget else 1)
    assert out.stats["regime"] == expected
    if expected == 1:
        assert out.stats["frames_highres"] == min(n_kept, (budget - 4 * n_kept) // 12)


def test_gradient_reaches_kept_tokens_only() -> None:
    video = _video(48, seed=7).requires_grad_(True)
    out = LongVUCompressor(temporal_threshold=0.2, stc_threshold=0.5)(video, 96)
    out.tokens.sum().backward()
    kept = torch.zeros(48, 16, dtype=torch.bool)
    kept[out.frame_ids, out.pos_ids] = True
    touched = video.grad.abs().sum(-1) > 0
    frames_touched = touched.any(1)
    assert set(frames_touched.nonzero().flatten().tolist()) == set(out.frame_ids.tolist())
    assert not touched[~frames_touched[:, None].expand(-1, 16)].any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.randn(32, 16, 8), 0), "budget: expected 1..512"),
        ((torch.randn(32, 16, 8), 513), "budget: expected 1..512"),
        ((torch.randn(32, 16, 8), 10, torch.randn(2, 5)), "query: expected an \\(L, D\\) embedding with D=8"),
        ((torch.randn(32, 15, 8), 10), "tokens: expected a square number"),
        ((torch.randn(32, 8), 10), "tokens: expected a \\(T, H\\*W, D\\) tensor"),
    ],
)
@pytest.mark.parametrize("name", [*BASELINES, "longvu"])
def test_bad_input_raises_naming_it(name: str, args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _all()[name](*args)


def test_longvu_needs_a_full_window() -> None:
    with pytest.raises(ValueError, match="tokens: expected at least one window of 16 frames, got 12"):
        LongVUCompressor()(torch.randn(12, 16, 8), 10)
