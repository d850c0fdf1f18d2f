"""DAVIS J&F on hand-built cases and against a pixel-loop reference."""

import numpy as np
import pytest

from thrifty.tam.metrics import boundary_radius, db_eval_boundary, db_eval_iou, db_statistics, evaluate_vos
from thrifty.tam.reference import boundary_f_reference


def _square(size: int, y: int, x: int, side: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[y : y + side, x : x + side] = True
    return m


def test_hand_built_cases() -> None:
    empty = np.zeros((64, 64), bool)
    sq = _square(64, 10, 10, 20)
    assert db_eval_iou(empty, empty) == 1.0 and db_eval_boundary(empty, empty) == 1.0
    assert db_eval_iou(sq, empty) == 0.0 and db_eval_boundary(sq, empty) == 0.0
    assert db_eval_boundary(empty, sq) == 0.0
    assert db_eval_iou(sq, _square(64, 10, 20, 20)) == pytest.approx(200 / 600)
    assert db_eval_boundary(sq, _square(64, 11, 10, 20)) == 1.0  # a 1-pixel shift is within r = 1 at 64^2
    assert db_eval_boundary(sq, _square(64, 14, 10, 20)) < 1.0


def test_radius_follows_the_frame_diagonal() -> None:
    assert boundary_radius((480, 854)) == 8 and boundary_radius((64, 64)) == 1 and boundary_radius((128, 128)) == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boundary_matches_pixel_loop_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = rng.random((14, 14)) > 0.6
    pred = gt ^ (rng.random((14, 14)) > 0.85)
    radius = boundary_radius((14, 14), 0.15)
    assert db_eval_boundary(gt, pred, bound_th=0.15) == pytest.approx(boundary_f_reference(gt, pred, radius))


def test_protocol_skips_first_and_last_and_averages_objects() -> None:
    gt = np.stack([_square(16, 2, 2, 6)] * 4)
    good = gt.copy()
    good[0], good[3] = False, False  # wrong on the excluded first/last frames only
    bad = np.zeros_like(gt)
    res = evaluate_vos([gt, gt], [good, bad])
    assert res["J"] == pytest.approx(50.0) and res["F"] == pytest.approx(50.0) and res["JF"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="gts, preds"):
        evaluate_vos([gt], [gt[:, :8]])


def test_statistics_mean_recall_decay() -> None:
    mean, recall, decay = db_statistics(np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    # DAVIS bins for 8 frames are [0:3], [2:5], [4:6], [5:8] (overlapping, from the rounded linspace)
    assert mean == pytest.approx(0.25) and recall == pytest.approx(0.25) and decay == pytest.approx(2 / 3)
