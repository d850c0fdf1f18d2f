"""VideoSession has one documented input convention; everything else is a one-line error (issue #16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.tam.config import TamModelConfig
from thrifty.tam.model import TinyTAM
from thrifty.tam.session import VideoSession, _to_box, _to_frame

S = 32
TINY = TamModelConfig(image_size=S, dim=32, mem_dim=16, mem_ffn=64, dec_mlp=64, n_global=2, patch_grid=(2, 2))
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model() -> TinyTAM:
    torch.manual_seed(0)
    return TinyTAM(TINY)


def test_uint8_frames_scale_the_same_from_numpy_and_torch() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    from_numpy = _to_frame(pixels, S, CPU)
    from_torch = _to_frame(torch.from_numpy(pixels).permute(2, 0, 1), S, CPU)
    from_float = _to_frame(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255, S, CPU)
    assert torch.equal(from_numpy, from_torch) and torch.allclose(from_numpy, from_float)
    assert float(from_torch.max()) <= 1.0


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (torch.rand(3, S, S) * 255, r"frame: expected float values finite and in \[0, 1\]"),
        (torch.full((3, S, S), float("nan")), r"frame: expected float values finite and in \[0, 1\]"),
        (np.full((S, S, 3), -0.5, dtype=np.float32), r"frame: expected float values finite and in \[0, 1\]"),
        (torch.zeros(3, S, S, dtype=torch.int64), "frame: expected uint8 or floating point values, got torch.int64"),
        (torch.rand(S, S, 3), f"frame: expected a {S}x{S} RGB frame"),
        ([[0.0]], "frame: expected a numpy array or torch.Tensor, got list"),
    ],
)
def test_frames_outside_the_convention_are_errors(model: TinyTAM, frame: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        VideoSession(model).step(frame, box=[2, 2, 20, 20])


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ({"points": ([[40.0, 3.0]], [1])}, "points: expected pixel coordinates inside the 32x32 image"),
        ({"points": ([[-1.0, 3.0]], [1])}, "points: expected pixel coordinates inside the 32x32 image"),
        ({"points": ([[float("nan"), 3.0]], [1])}, "points: expected pixel coordinates inside"),
        ({"points": ([[4.0, 3.0]], [5])}, r"points: expected labels 1 \(foreground\) or 0 \(background\)"),
        ({"box": [20, 4, 10, 30]}, "box: expected x0 < x1 and y0 < y1 inside the 32x32 image"),
        ({"box": [4, 4, 10, 99]}, "box: expected x0 < x1 and y0 < y1 inside the 32x32 image"),
        ({"mask": np.ones((S, S)), "points": ([[4.0, 3.0]], [1])}, "expected either a mask or points and/or a box"),
        ({"mask": np.ones((S, S)), "box": [2, 2, 9, 9]}, "expected either a mask or points and/or a box"),
    ],
)
def test_bad_prompts_are_errors(model: TinyTAM, prompt: dict, message: str) -> None:
    session = VideoSession(model)
    with pytest.raises(ValueError, match=message):
        session.step(torch.rand(3, S, S), **prompt)
    assert session.frame_idx == 0 and session.memory_frames == 0  # nothing was tracked


@settings(max_examples=25, deadline=None)
@given(x0=st.floats(-5, 40), y0=st.floats(-5, 40), x1=st.floats(-5, 40), y1=st.floats(-5, 40))
def test_any_box_is_tracked_or_refused_by_the_documented_rule(x0: float, y0: float, x1: float, y1: float) -> None:
    box = torch.tensor([x0, y0, x1, y1]).tolist()  # the session works in float32
    valid = all(0 <= v <= S for v in box) and box[0] < box[2] and box[1] < box[3]
    if valid:
        assert _to_box([x0, y0, x1, y1], S).tolist() == [box]
    else:
        with pytest.raises(ValueError, match="box: expected x0 < x1 and y0 < y1"):
            _to_box([x0, y0, x1, y1], S)
