"""Renderer correctness: gradcheck, dense == tiled, invariances, projection Jacobian, input errors."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.steepgs.ops import covariance, rotation_from_quats
from thrifty.steepgs.render import rasterize, render_2d
from thrifty.steepgs.render3d import Camera, look_at, project_gaussians, projection_jacobian, render_3d

F64 = torch.float64


def random_splats(n: int, height: int, width: int, seed: int = 0, dtype: torch.dtype = F64):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g, dtype=dtype) * torch.tensor([width, height], dtype=dtype)
    lower = torch.randn(n, 2, 2, generator=g, dtype=dtype)
    covs = lower @ lower.transpose(-1, -2) + 1.5 * torch.eye(2, dtype=dtype)
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.8 + 0.05
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    depths = torch.rand(n, generator=g, dtype=dtype)
    return means, covs, opac, colors, depths


def random_gaussians_3d(n: int, seed: int = 0, dtype: torch.dtype = F64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 1.5,
        "quats": torch.randn(n, 4, generator=g, dtype=dtype),
        "scales": torch.log(torch.rand(n, 3, generator=g, dtype=dtype) * 0.2 + 0.05),
        "opacities": torch.randn(n, generator=g, dtype=dtype),
        "colors": torch.rand(n, 3, generator=g, dtype=dtype),
    }


def small_camera(size: int = 12) -> Camera:
    return look_at(torch.tensor([3.0, 1.0, 1.5], dtype=F64), torch.zeros(3, dtype=F64), 50.0, size, size)


@pytest.mark.parametrize("mode", ["additive", "alpha"])
def test_rasterizer_gradcheck_float64(mode: str) -> None:
    means, covs, opac, colors, depths = random_splats(4, 8, 8)
    inputs = [t.clone().requires_grad_() for t in (means, covs, opac, colors)]

    def fn(m, c, o, col):
        sym = 0.5 * (c + c.transpose(-1, -2))
        return rasterize(
            m, sym, o, col, 8, 8, mode=mode, depths=depths, tile_size=4, clamp_alpha=False, sigma_cutoff=1e6
        )

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["additive", "alpha"])
@pytest.mark.parametrize("tile", [16, 5])
def test_tiled_equals_dense_values_and_grads(mode: str, tile: int) -> None:
    means, covs, opac, colors, depths = random_splats(40, 21, 37, seed=1)
    leaves = [t.clone().requires_grad_() for t in (means, covs, opac, colors)]
    out = {}
    for name, tile_size in (("dense", None), ("tiled", tile)):
        img = rasterize(*leaves, 21, 37, mode=mode, depths=depths, tile_size=tile_size)
        weights = torch.linspace(-1, 1, img.numel(), dtype=F64).reshape(img.shape)
        grads = torch.autograd.grad((img * weights).sum(), leaves)
        out[name] = (img, grads)
    assert out["dense"][0].abs().sum() > 1.0
    torch.testing.assert_close(out["tiled"][0], out["dense"][0], rtol=1e-10, atol=1e-12)
    for g_tiled, g_dense in zip(out["tiled"][1], out["dense"][1], strict=True):
        torch.testing.assert_close(g_tiled, g_dense, rtol=1e-9, atol=1e-12)


def test_render_3d_tiled_equals_dense() -> None:
    params = random_gaussians_3d(30)
    cam = small_camera(20)
    dense, _ = render_3d(params, cam, tile_size=None)
    tiled, _ = render_3d(params, cam, tile_size=8)
    assert dense.abs().sum() > 0.5
    torch.testing.assert_close(tiled, dense, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["additive", "alpha"])
def test_permutation_invariance(mode: str) -> None:
    means, covs, opac, colors, depths = random_splats(25, 16, 16, seed=2)
    perm = torch.randperm(25, generator=torch.Generator().manual_seed(0))
    a = rasterize(means, covs, opac, colors, 16, 16, mode=mode, depths=depths)
    b = rasterize(means[perm], covs[perm], opac[perm], colors[perm], 16, 16, mode=mode, depths=depths[perm])
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_zero_opacity_gives_background() -> None:
    means, covs, opac, colors, depths = random_splats(10, 9, 9)
    bg = torch.tensor([0.2, 0.5, 0.7], dtype=F64)
    for mode in ("additive", "alpha"):
        img = rasterize(means, covs, torch.zeros_like(opac), colors, 9, 9, mode=mode, depths=depths, background=bg)
        torch.testing.assert_close(img, bg.expand(9, 9, 3))


def test_single_gaussian_peak_value_alpha_mode() -> None:
    # A Gaussian centred on pixel (2, 3) composited over a black background gives o * c exactly there.
    means = torch.tensor([[3.5, 2.5]], dtype=F64)
    covs = torch.eye(2, dtype=F64)[None]
    img = rasterize(means, covs, torch.tensor([0.6], dtype=F64), torch.tensor([[1.0, 0.5, 0.0]], dtype=F64), 6, 6)
    torch.testing.assert_close(img[2, 3], torch.tensor([0.6, 0.3, 0.0], dtype=F64))
    torch.testing.assert_close(img[2, 4, 0], torch.tensor(0.6 * math.exp(-0.5), dtype=F64))


def test_projection_jacobian_matches_autograd() -> None:
    cam = small_camera()
    points = torch.tensor([[0.3, -0.2, 2.5], [-0.4, 0.1, 3.0]], dtype=F64)
    jac = projection_jacobian(points, cam, clip=None)

    def project(q: torch.Tensor) -> torch.Tensor:
        return torch.stack([cam.fx * q[0] / q[2], cam.fy * q[1] / q[2]])

    for i, p in enumerate(points):
        auto = torch.autograd.functional.jacobian(project, p)
        torch.testing.assert_close(jac[i], auto)


def test_projected_covariance_matches_monte_carlo() -> None:
    cam = small_camera(64)
    params = random_gaussians_3d(1, seed=3)
    params["scales"] = torch.log(torch.tensor([[0.01, 0.02, 0.015]], dtype=F64))
    proj = project_gaussians(params["means"], params["quats"], params["scales"], cam, eps2d=0.0)
    cov3 = covariance(rotation_from_quats(params["quats"]), params["scales"])[0]
    samples = torch.distributions.MultivariateNormal(params["means"][0], cov3).sample((20000,))
    cam_pts = samples @ cam.rotation.T + cam.translation
    uv = torch.stack([cam.fx * cam_pts[:, 0] / cam_pts[:, 2], cam.fy * cam_pts[:, 1] / cam_pts[:, 2]], -1)
    torch.testing.assert_close(torch.cov(uv.T), proj["covs2d"][0], rtol=0.06, atol=1e-3)


def test_render_2d_info_gradients_are_retained() -> None:
    means, _, _, colors, _ = random_splats(5, 8, 8)
    leaves = {"means": means.requires_grad_(), "scales": torch.zeros(5, 2, dtype=F64, requires_grad=True)}
    logits = torch.zeros(5, dtype=F64, requires_grad=True)
    img, info = render_2d(leaves["means"], leaves["scales"], torch.zeros(5, dtype=F64), logits, colors, 8, 8)
    img.sum().backward()
    for key in ("means2d", "covs2d", "opacities", "probe"):
        assert info[key].grad is not None and info[key].grad.abs().sum() > 0, key


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"opac": torch.full((3,), float("nan"))}, "opacities"),
        ({"covs": -torch.eye(2, dtype=F64).expand(3, 2, 2).clone() * torch.tensor([1.0, -1.0])}, "covs2d"),
        ({"colors": torch.ones(2, 3, dtype=F64)}, "colors"),
        ({"mode": "max"}, "mode"),
    ],
)
def test_invalid_splat_inputs_raise(kwargs: dict, match: str) -> None:
    means, covs, opac, colors, _ = random_splats(3, 8, 8)
    args = {"means": means, "covs": covs, "opac": opac, "colors": colors, "mode": "alpha"} | kwargs
    with pytest.raises(ValueError, match=match):
        rasterize(args["means"], args["covs"], args["opac"], args["colors"], 8, 8, mode=args["mode"])


def test_invalid_3d_inputs_raise() -> None:
    params = random_gaussians_3d(4)
    with pytest.raises(ValueError, match="quats"):
        render_3d(params | {"quats": torch.ones(3, 4, dtype=F64)}, small_camera())
    with pytest.raises(ValueError, match="scales"):
        render_3d(params | {"scales": torch.full((4, 3), float("inf"), dtype=F64)}, small_camera())
    with pytest.raises(ValueError, match="tile_size"):
        rasterize(*random_splats(2, 4, 4)[:4], 4, 4, tile_size=0)
