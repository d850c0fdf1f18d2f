"""The video generator, model-free features and metrics, the QA model's padding and proportional attention."""

from __future__ import annotations

import pytest
import torch

from thrifty.longvu.arms import kept_token_metrics
from thrifty.longvu.data import EncodedVideos
from thrifty.longvu.features import calibrate_threshold, hog_color_features
from thrifty.longvu.model import QAModel, pack_token_sets, position_vocab
from thrifty.longvu.tokens import TokenSet
from thrifty.longvu.video import VideoGenerator, glyph_patch


@pytest.fixture(scope="module")
def generator() -> VideoGenerator:
    return VideoGenerator(n_frames=64, frame_size=16, glyph_size=4, max_photos=4)


def test_video_facts_are_consistent_and_seeded(generator: VideoGenerator) -> None:
    a = generator.video(torch.Generator().manual_seed(0))
    b = generator.video(torch.Generator().manual_seed(0))
    assert torch.equal(a.frames, b.frames) and a.answers().tolist() == b.answers().tolist()
    assert a.frames.shape == (64, 16, 16, 3) and 1 <= a.needle_frames.numel() <= 3
    assert torch.all(a.needle_frames // 16 == a.quarter)
    assert torch.all(a.needle_frames.diff() >= 3)  # isolated needles
    assert a.candidates.unique().numel() == 4
    shown = a.candidates[a.answer_photo]
    assert all(int(c) != int(shown) for i, c in enumerate(a.candidates) if i != a.answer_photo)


def test_needle_frame_carries_its_glyph(generator: VideoGenerator) -> None:
    video = generator.video(torch.Generator().manual_seed(3))
    colour, _ = glyph_patch(video.glyph, 4)
    target = colour[0, 0]
    for frame in video.needle_frames.tolist():
        dist = (video.frames[frame] - target).abs().sum(-1)
        assert (dist < 0.3).sum() >= 4  # the glyph's pixels (noise 0.02 per channel)


def test_hog_color_features_histograms_sum_to_one() -> None:
    frames = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    feats = hog_color_features(frames, cell=8, bins=4)
    hist = feats[:, -12:]
    torch.testing.assert_close(hist.view(5, 3, 4).sum(-1), torch.ones(5, 3))
    assert torch.equal(hog_color_features(frames[:2], cell=8, bins=4), feats[:2])
    with pytest.raises(ValueError, match="frames: expected \\(T, H, W, 3\\)"):
        hog_color_features(torch.rand(5, 16, 16))


def test_calibrated_threshold_hits_the_keep_ratio() -> None:
    scores = torch.arange(100.0)
    tau = calibrate_threshold(scores, 0.3)
    assert (scores < tau).float().mean() == pytest.approx(0.3, abs=0.011)
    with pytest.raises(ValueError, match="keep_ratio: expected a fraction in \\(0, 1\\), got 1.5"):
        calibrate_threshold(scores, 1.5)


def _sets() -> list[TokenSet]:
    one = TokenSet(
        torch.ones(3, 4),
        torch.tensor([2, 9, 9]),
        torch.tensor([0, 1, 3]),
        torch.tensor([4, 2, 2]),
        torch.tensor([1.0, 4.0, 4.0]),
    )
    two = TokenSet(
        torch.ones(2, 4), torch.tensor([0, 15]), torch.tensor([5, 0]), torch.tensor([4, 1]), torch.tensor([1.0, 16.0])
    )
    return [one, two, one, two, one, two]


def test_needle_recall_and_shot_coverage_exact() -> None:
    needles = torch.zeros(2, 16, dtype=torch.bool)
    needles[0, 9] = True  # video 0: a kept frame is a needle
    needles[1, 3] = True  # video 1: the needle frame was dropped
    shots = torch.arange(16).div(4, rounding_mode="floor").expand(2, -1)
    videos = EncodedVideos(
        torch.zeros(2, 16, 16, 4),
        shots,
        needles,
        torch.zeros(2, 3, dtype=torch.long),
        torch.zeros(2, 4, dtype=torch.long),
    )
    sets = [_sets()[0]] * 3 + [_sets()[1]] * 3
    metrics = kept_token_metrics(sets, videos)
    assert metrics["needle_recall"] == 0.5
    assert metrics["shot_coverage"] == pytest.approx((2 / 4 + 2 / 4) / 2)
    assert metrics["tokens_kept"] == 2.5


def test_qa_model_ignores_padding_and_proportional_bias_is_log_size() -> None:
    torch.manual_seed(0)
    model = QAModel(4, 6, 4, dim=16, n_layers=1).eval()
    sets = [TokenSet(torch.randn(5, 4), torch.arange(5), torch.arange(5), torch.full((5,), 4), torch.ones(5))]
    base = {"question": torch.tensor([0]), "candidates": torch.tensor([[0, 1, 2, 3]])}
    short = {**pack_token_sets(sets, 5, 16, 16, position_vocab(4)), **base}
    padded = {**pack_token_sets(sets, 9, 16, 16, position_vocab(4)), **base}
    padded["tokens"][:, 5:] = 100.0  # garbage in padding must not leak
    torch.testing.assert_close(model(short), model(padded))
    torch.testing.assert_close(model(short, proportional=True), model(short))  # sizes 1: log 1 = 0
    heavier = {**short, "sizes": short["sizes"] * torch.tensor([[4.0, 1, 1, 1, 1]])}
    assert not torch.allclose(model(heavier, proportional=True), model(short))
    logits = model(short)
    assert torch.isinf(logits[0, 8:]).all() if logits.shape[1] > 8 else torch.isfinite(logits).all()
    cover = model({**short, "question": torch.tensor([1])})
    assert torch.isinf(cover[0, 4:]).all() and torch.isfinite(cover[0, :4]).all()
