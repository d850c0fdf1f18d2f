"""LongVU's steps against the per-window / per-token references and the invariants of the spec."""

from __future__ import annotations

import pytest
import torch

from thrifty.longvu.features import calibrate_threshold, window_scores
from thrifty.longvu.ops import (
    choose_highres,
    enforce_budget,
    frame_relevance,
    highres_count,
    spatial_token_reduce,
    temporal_reduce,
)
from thrifty.longvu.reference import (
    frame_relevance_reference,
    spatial_token_reduce_reference,
    temporal_reduce_reference,
)
from thrifty.longvu.tokens import TokenSet


def _slow_video(n_frames: int, dim: int = 24, seed: int = 0, drift: float = 0.15) -> torch.Tensor:
    """Correlated frames: a random walk, so windows have a spread of similarities."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(n_frames, 4, dim, generator=g, dtype=torch.float64) * drift
    return torch.randn(1, 4, dim, generator=g, dtype=torch.float64) + steps.cumsum(0)


def test_identical_frames_keep_exactly_each_window_middle() -> None:
    frame = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    video = frame.expand(40, -1, -1)
    assert temporal_reduce(video, window=16).tolist() == [8, 24, 36]  # windows of 16, 16 and 8 frames


def test_duplicates_dropped_and_needle_survives() -> None:
    g = torch.Generator().manual_seed(2)
    base, other = torch.randn(2, 64, generator=g)
    video = base.expand(32, -1).clone()
    video[16:] = other  # second window: another exact duplicate shot
    video[3] = torch.randn(64, generator=g) * 3  # a needle unlike its neighbours
    assert temporal_reduce(video, window=16, threshold=0.83).tolist() == [3, 8, 24]


@pytest.mark.parametrize(("n_frames", "window", "keep"), [(37, 5, 0.5), (16, 16, 0.3), (50, 7, 0.7), (23, 23, 0.4)])
def test_temporal_reduce_matches_per_window_reference(n_frames: int, window: int, keep: float) -> None:
    video = _slow_video(n_frames)
    threshold = calibrate_threshold(window_scores(video, window), keep) + 1e-9
    fast = temporal_reduce(video, window=window, threshold=threshold, max_frames=None)
    ref = temporal_reduce_reference(video, window=window, threshold=threshold)
    assert fast.tolist() == ref.tolist()
    assert 0 < fast.numel() < n_frames  # the case is not trivial


def test_temporal_reduce_scale_invariant_and_capped() -> None:
    video = _slow_video(64, seed=3)
    kept = temporal_reduce(video, window=8, threshold=0.6, max_frames=None)
    assert temporal_reduce(video * 7.5, window=8, threshold=0.6, max_frames=None).tolist() == kept.tolist()
    capped = temporal_reduce(video, window=8, threshold=0.6, max_frames=5)
    assert capped.tolist() == kept[[int(i * kept.numel() / 5) for i in range(5)]].tolist()


def test_centring_matters_for_uncentred_features() -> None:
    g = torch.Generator().manual_seed(4)
    video = 10 + torch.randn(32, 16, generator=g)  # raw cosines all near 1
    assert temporal_reduce(video, window=16, center=False).tolist() == [8, 24]
    assert temporal_reduce(video, window=16, center=True).numel() == 32  # centred random frames all differ


def test_fewer_frames_than_a_window_is_an_error() -> None:
    with pytest.raises(ValueError, match="feats: expected at least one window of 16 frames, got 9"):
        temporal_reduce(torch.randn(9, 4), window=16)


def test_frame_relevance_matches_double_mean() -> None:
    g = torch.Generator().manual_seed(5)
    frames, text = torch.randn(7, 5, 6, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g).double()
    torch.testing.assert_close(frame_relevance(frames, text), frame_relevance_reference(frames, text))
    with pytest.raises(ValueError, match="text_emb: expected"):
        frame_relevance(frames, torch.randn(3, 5))


def test_choose_highres_top_k_by_budget_formula() -> None:
    relevance = torch.tensor([0.1, 0.9, -1.0, 0.5, 0.7, 0.2])
    assert highres_count(6, 4, 16, 6 * 4 + 2 * 12 + 11) == 2
    assert choose_highres(relevance, 6, 4, 16, 6 * 4 + 2 * 12 + 11).tolist() == [1, 4]
    assert choose_highres(relevance, 6, 4, 16, 6 * 4 + 3 * 12).tolist() == [1, 3, 4]
    assert choose_highres(None, 6, 4, 16, 6 * 4 + 3 * 12).tolist() == [1, 3, 5]  # evenly spaced
    assert choose_highres(relevance, 6, 4, 16, 10).numel() == 0


@pytest.mark.parametrize(("n_frames", "window", "threshold"), [(11, 4, 0.3), (8, 8, 0.0), (13, 3, 0.6)])
def test_stc_matches_per_token_reference(n_frames: int, window: int, threshold: float) -> None:
    frames = _slow_video(n_frames, seed=6, drift=0.6)
    out = spatial_token_reduce(frames, window=window, threshold=threshold)
    ref = spatial_token_reduce_reference(frames, window=window, threshold=threshold)
    assert list(zip(out.frame_ids.tolist(), out.pos_ids.tolist(), strict=True)) == ref
    torch.testing.assert_close(out.tokens, frames[out.frame_ids, out.pos_ids])


def test_stc_identical_chunk_keeps_first_frame_and_is_monotone() -> None:
    frame = torch.randn(4, 8, generator=torch.Generator().manual_seed(7))
    out = spatial_token_reduce(frame.expand(16, -1, -1), window=8, threshold=0.8)
    assert out.frame_ids.tolist() == [0] * 4 + [8] * 4
    frames = _slow_video(24, seed=8, drift=0.6)
    sizes = [len(spatial_token_reduce(frames, window=8, threshold=t)) for t in (-1.0, 0.0, 0.5, 0.9, 1.01)]
    assert sizes == sorted(sizes) and sizes[0] == 3 * 4 and sizes[-1] == 24 * 4
    orth = torch.eye(8, dtype=torch.float64)[:, None, :].expand(8, 4, 8).contiguous()
    assert len(spatial_token_reduce(orth, window=8, threshold=0.8)) == 32


def _selection(frames: list[int], per: int = 4) -> TokenSet:
    ids = torch.tensor(frames).repeat_interleave(per)
    return TokenSet(
        ids.double()[:, None],
        ids,
        torch.arange(per).repeat(len(frames)),
        torch.full_like(ids, 2),
        torch.ones(ids.numel()),
    )


def test_enforce_budget_cuts_chunk_tails_then_truncates() -> None:
    tokens = _selection(list(range(16)))  # 2 chunks of 8 frames x 4 tokens = 64 tokens
    out = enforce_budget(tokens, 50, window=8)  # cut ceil(14 / 2) = 7 from the end of each chunk
    assert len(out) == 50
    chunk = [[f] * 4 for f in range(6)]
    expected = [f for block in chunk for f in block] + [6]  # 25 of each chunk's 32 tokens stay
    assert out.frame_ids.tolist() == expected + [f + 8 for f in expected]
    assert enforce_budget(tokens, 64).frame_ids.tolist() == tokens.frame_ids.tolist()
    # ceil(61 / 2) = 31 cut per chunk leaves one token each: the official rounding can undershoot
    assert enforce_budget(tokens, 3, window=8).frame_ids.tolist() == [0, 8]
    with pytest.raises(ValueError, match="budget: expected a positive integer, got 0"):
        enforce_budget(tokens, 0)
