"""steepgs library entry points reject wrong input with one line (issue #16)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import thrifty.steepgs as steepgs
from thrifty.core.config import ConfigError
from thrifty.steepgs import ADCStrategy, SteepStrategy, fit_image_2d, make_optimizers
from thrifty.steepgs.config import SteepGSConfig
from thrifty.steepgs.experiment2d import LRS_2D
from thrifty.steepgs.render import render_2d

H = W = 8


def _holdout() -> torch.Tensor:
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[0, :3] = True
    return mask


def _fit(image: torch.Tensor, holdout: torch.Tensor, **kwargs: object) -> steepgs.FitResult:
    args = {"steps": 2, "n_init": 4, "lrs": LRS_2D, "generator": torch.Generator().manual_seed(0), "tile_size": None}
    return fit_image_2d(image, holdout, ADCStrategy(), **{**args, **kwargs})


IMAGE = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("image", "holdout", "message"),
    [
        (IMAGE.permute(2, 0, 1), _holdout(), r"image: expected channels last \(H, W, C\), got \(3, 8, 8\)"),
        ((IMAGE * 255).to(torch.uint8), _holdout(), "image: expected floating point values in .0, 1., got torch.uint8"),
        (IMAGE * 255, _holdout(), r"image: expected finite values in \[0, 1\]"),
        (IMAGE.masked_fill(IMAGE > 0.9, float("nan")), _holdout(), r"image: expected finite values in \[0, 1\]"),
        (IMAGE[0], _holdout(), r"image: expected an \(H, W, C\) tensor, got \(8, 3\)"),
        (IMAGE, _holdout()[:4], r"holdout: expected a bool tensor of shape \(8, 8\), got torch.bool \(4, 8\)"),
        (IMAGE, _holdout().float(), r"holdout: expected a bool tensor of shape \(8, 8\), got torch.float32"),
        (
            IMAGE,
            torch.ones(H, W, dtype=torch.bool),
            r"holdout: expected at least one held-out \(True\) and one training",
        ),
        (IMAGE, torch.zeros(H, W, dtype=torch.bool), r"holdout: expected at least one held-out"),
    ],
)
def test_fit_image_2d_rejects_bad_inputs(image: torch.Tensor, holdout: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _fit(image, holdout)


def test_fit_image_2d_rejects_bad_budgets() -> None:
    with pytest.raises(ValueError, match="steps, n_init: expected positive integers, got 0, 4"):
        _fit(IMAGE, _holdout(), steps=0)
    with pytest.raises(ValueError, match=r"train_frac: expected a fraction in \(0, 1\], got 0.0"):
        _fit(IMAGE, _holdout(), train_frac=0.0)


def test_fit_image_2d_accepts_the_documented_convention() -> None:
    result = _fit(IMAGE, _holdout())
    assert len(result.counts) == 2 and result.test_psnr == result.test_psnr  # finite scores


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), c=st.sampled_from([1, 2, 3, 5]))
def test_any_non_channels_last_shape_is_an_error_or_fits(h: int, w: int, c: int) -> None:
    image = torch.rand(h, w, c, generator=torch.Generator().manual_seed(h * 7 + w))
    holdout = torch.zeros(h, w, dtype=torch.bool)
    holdout.view(-1)[0] = True
    if h in (1, 3, 4) and c not in (1, 3, 4):
        with pytest.raises(ValueError, match="image: expected channels last"):
            _fit(image, holdout, n_init=2, steps=1)
    elif h * w < 2:
        with pytest.raises(ValueError, match="holdout: expected at least one held-out"):
            _fit(image, holdout, n_init=2, steps=1)
    else:
        assert _fit(image, holdout, n_init=2, steps=1).n_gaussians >= 1


@pytest.mark.parametrize("strategy", [ADCStrategy(), SteepStrategy()])
def test_step_post_backward_before_initialize_state(strategy: steepgs.Strategy) -> None:
    params = {
        "means": torch.nn.Parameter(torch.rand(3, 2) * 8),
        "scales": torch.nn.Parameter(torch.zeros(3, 2)),
        "angles": torch.nn.Parameter(torch.zeros(3)),
        "opacities": torch.nn.Parameter(torch.zeros(3)),
        "colors": torch.nn.Parameter(torch.rand(3, 3)),
    }
    optimizers = make_optimizers(params, LRS_2D)
    img, info = render_2d(*params.values(), H, W)
    img.sum().backward()
    with pytest.raises(ValueError, match=r"state: expected the dict returned by initialize_state\(scene_scale\)"):
        strategy.step_post_backward(params, optimizers, {}, 0, info)


def test_make_optimizers_is_exported_and_checks_its_rates() -> None:
    assert "make_optimizers" in steepgs.__all__
    params = {"means": torch.nn.Parameter(torch.zeros(2, 2)), "colors": torch.nn.Parameter(torch.zeros(2, 3))}
    optimizers = make_optimizers(params, {"means": 0.5, "colors": 0.25})
    assert {k: o.param_groups[0]["lr"] for k, o in optimizers.items()} == {"means": 0.5, "colors": 0.25}
    with pytest.raises(ValueError, match=r"lrs: expected a learning rate for \['colors'\]"):
        make_optimizers(params, {"means": 0.5})


def test_config_checks_photo_names_and_types_up_front() -> None:
    with pytest.raises(ConfigError, match=r"SteepGSConfig\.images: expected names among .*astronaut.*'nope'"):
        SteepGSConfig.from_preset("smoke", images=["astronaut", "nope"])
    with pytest.raises(ConfigError, match=r"SteepGSConfig\.images: expected a list of strings, got 'astronaut'"):
        SteepGSConfig.from_preset("smoke", images="astronaut")


def _gaussians_3d(n: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    quats = torch.randn(n, 4, generator=g)
    return {
        "means": torch.randn(n, 3, generator=g),
        "colors": torch.rand(n, 3, generator=g),
        "opacities": torch.randn(n, generator=g),
        "scales": torch.randn(n, 3, generator=g),
        "quats": quats / quats.norm(dim=-1, keepdim=True),
    }


def test_ply_has_the_sh_degree_3_layout_with_zero_f_rest(tmp_path) -> None:
    import numpy as np

    from thrifty.steepgs.export import N_REST, PLY_LAYOUT, load_ply, save_ply

    params = _gaussians_3d()
    path = save_ply(tmp_path / "g.ply", params)
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    names = [line.split()[-1] for line in data[:end].decode().splitlines() if line.startswith("property")]
    assert names == list(PLY_LAYOUT) and len(names) == 62
    assert names[9:11] == ["f_rest_0", "f_rest_1"] and names[9 + N_REST] == "opacity"
    rows = np.frombuffer(data[end:], dtype="<f4").reshape(5, 62)
    assert not rows[:, 9 : 9 + N_REST].any()
    back = load_ply(path)
    assert all(torch.allclose(back[k], params[k], atol=1e-6) for k in params)


def test_cameras_json_matches_3dgs(tmp_path) -> None:
    import json

    from thrifty.steepgs.export import save_cameras
    from thrifty.steepgs.render3d import look_at

    eye = torch.tensor([3.0, -1.0, 2.0])
    cam = look_at(eye, torch.zeros(3), 60.0, 16, 12)
    (entry,) = json.loads(save_cameras(tmp_path / "cameras.json", [cam]).read_text())
    assert entry["id"] == 0 and (entry["width"], entry["height"]) == (16, 12)
    assert torch.allclose(torch.tensor(entry["position"]), eye, atol=1e-5)  # the camera centre
    c2w = torch.tensor(entry["rotation"])
    assert torch.allclose(c2w @ cam.rotation.double().float(), torch.eye(3), atol=1e-5)
    assert entry["fx"] == cam.fx and entry["fy"] == cam.fy
