"""Evaluation: threshold binarisation of tracked logits and the held-out threshold calibration."""

import pytest
import torch

from thrifty.tam.algorithm import calibrate_threshold, evaluate, predict_video, video_logits
from thrifty.tam.config import TamModelConfig
from thrifty.tam.data import video_batch
from thrifty.tam.model import TinyTAM

TINY = TamModelConfig(
    image_size=32, dim=32, mem_dim=16, mem_ffn=64, dec_mlp=64, n_global=2, patch_grid=(2, 2), num_maskmem=3
)


@pytest.fixture(scope="module")
def model_and_videos() -> tuple[TinyTAM, object]:
    torch.manual_seed(0)
    return TinyTAM(TINY).eval(), video_batch([3, 4, 5], 5, 32, 0.0)


def test_predictions_are_the_thresholded_logits(model_and_videos) -> None:
    model, vb = model_and_videos
    logits, scores = video_logits(model, vb.frames, vb.masks[:, 0])
    assert logits.shape == vb.masks.shape and scores.shape == vb.masks.shape[:2]
    assert torch.equal(logits[:, 0] > 0, vb.masks[:, 0] > 0)  # frame 0 is the prompt itself
    for threshold in (-1.0, 0.0, 0.5):
        masks, same_scores = predict_video(model, vb.frames, vb.masks[:, 0], threshold=threshold)
        assert torch.equal(masks, logits > threshold) and torch.equal(same_scores, scores)


def test_calibration_returns_the_best_grid_threshold(model_and_videos) -> None:
    model, vb = model_and_videos
    grid = (-2.0, -0.5, 0.0, 0.5)
    threshold, jf = calibrate_threshold(model, vb, grid)
    by_threshold = {t: evaluate(model, vb, threshold=t)["JF"] for t in grid}
    assert threshold in grid and jf == pytest.approx(by_threshold[threshold])
    assert jf == pytest.approx(max(by_threshold.values()))


def test_calibration_rejects_an_empty_grid(model_and_videos) -> None:
    model, vb = model_and_videos
    with pytest.raises(ValueError, match="thresholds"):
        calibrate_threshold(model, vb, ())
