"""The splitting matrix: closed form == autograd Hessian == gradient identity; the splitting theorem."""

from __future__ import annotations

import pytest
import torch
from test_steepgs_render import random_gaussians_3d, random_splats, small_camera

from thrifty.steepgs.ops import conics_from_covs
from thrifty.steepgs.reference import autograd_splitting_matrix, closed_form_splitting_matrix, rasterize_dense
from thrifty.steepgs.render import rasterize, render_2d
from thrifty.steepgs.render3d import project_gaussians, render_3d
from thrifty.steepgs.splitting import smallest_eigenpairs, splitting_matrix, splitting_matrix_2d

F64 = torch.float64
H, W = 12, 14


def _fit_loss(img: torch.Tensor, seed: int = 5) -> torch.Tensor:
    target = torch.rand(img.shape, generator=torch.Generator().manual_seed(seed), dtype=img.dtype)
    return ((img - target) ** 2).mean()


@pytest.mark.parametrize("mode", ["additive", "alpha"])
def test_closed_form_identity_and_autograd_hessian_agree(mode: str) -> None:
    means, covs, opac, colors, depths = random_splats(6, H, W, seed=3)
    means, covs, opac = (t.requires_grad_() for t in (means, covs, opac))
    img, aux = rasterize_dense(
        means,
        covs,
        opac,
        colors,
        H,
        W,
        mode=mode,
        depths=depths,
        clamp_alpha=False,
        keep_response=True,
        sigma_cutoff=1e9,
    )
    _fit_loss(img).backward()
    closed = closed_form_splitting_matrix(means, covs, aux)
    hessian = autograd_splitting_matrix(means, covs, aux)
    identity = splitting_matrix_2d(covs.grad, covs.detach(), opac.detach(), opac.grad)
    assert closed.abs().max() > 1e-4
    torch.testing.assert_close(closed, hessian, rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(identity, closed, rtol=1e-9, atol=1e-14)


def test_identity_from_tiled_render_2d_info() -> None:
    means, _, _, colors, _ = random_splats(8, H, W, seed=4)
    params = {
        "means": means,
        "scales": torch.full((8, 2), 0.7, dtype=F64),
        "angles": torch.linspace(0, 3, 8, dtype=F64),
        "opacities": torch.zeros(8, dtype=F64),
    }
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    img, info = render_2d(
        params["means"],
        params["scales"],
        params["angles"],
        params["opacities"],
        colors,
        H,
        W,
        mode="alpha",
        depths=torch.arange(8.0, dtype=F64),
        tile_size=8,
        clamp_alpha=False,
    )
    _fit_loss(img).backward()
    from_info = splitting_matrix(info)
    # Same model through the dense reference with explicit per-pixel responses.
    m, c, o = (info[k].detach().clone().requires_grad_() for k in ("means2d", "covs2d", "opacities"))
    img2, aux = rasterize_dense(
        m, c, o, colors, H, W, mode="alpha", depths=torch.arange(8.0, dtype=F64), clamp_alpha=False, keep_response=True
    )
    _fit_loss(img2).backward()
    torch.testing.assert_close(from_info, closed_form_splitting_matrix(m, c, aux), rtol=1e-8, atol=1e-14)


def test_splitting_matrix_3d_matches_hessian_with_fixed_conic() -> None:
    params = {k: v.requires_grad_() for k, v in random_gaussians_3d(5, seed=1).items()}
    cam = small_camera(16)
    img, info = render_3d(params, cam, tile_size=None, clamp_alpha=False)
    _fit_loss(img).backward()
    s3d = splitting_matrix(info)
    # Reference: Hessian w.r.t. p of sum_x stopgrad(dL/dG) G(x; pi(p)) with the 2D conic frozen.
    proj = project_gaussians(params["means"].detach(), params["quats"].detach(), params["scales"].detach(), cam)
    m2, c2, o2 = (t.detach().clone().requires_grad_() for t in (proj["means2d"], proj["covs2d"], info["opacities"]))
    img2, aux = rasterize_dense(
        m2,
        c2,
        o2,
        params["colors"].detach(),
        16,
        16,
        mode="alpha",
        depths=proj["depths"],
        clamp_alpha=False,
        keep_response=True,
    )
    _fit_loss(img2).backward()
    g = (aux["response"].grad * aux["inside"]).detach()
    order, pix, conics = aux["order"], aux["pixels"], conics_from_covs(c2.detach())[aux["order"]]

    def phi(flat: torch.Tensor) -> torch.Tensor:
        u = project_gaussians(flat.reshape(5, 3), params["quats"].detach(), params["scales"].detach(), cam)["means2d"]
        d = pix[:, None, :] - u[order][None]
        return (g * torch.exp(-0.5 * torch.einsum("pni,nij,pnj->pn", d, conics, d))).sum()

    hess = torch.autograd.functional.hessian(phi, params["means"].detach().reshape(-1)).reshape(5, 3, 5, 3)
    idx = torch.arange(5)
    expected = hess[idx, :, idx, :] * info["visible"][:, None, None]
    assert expected.abs().max() > 1e-5
    torch.testing.assert_close(s3d, expected, rtol=1e-7, atol=1e-12)


def test_splitting_theorem_additive() -> None:
    """Replace Gaussian i by (o/2, u +/- eps v): dL / (0.5 eps^2 v^T S v) -> 1 as eps -> 0."""
    means, covs, opac, colors, _ = random_splats(5, H, W, seed=6)
    means, covs, opac = (t.requires_grad_() for t in (means, covs, opac))

    def loss_of(m, c, o, col):
        return _fit_loss(
            rasterize(m, c, o, col, H, W, mode="additive", tile_size=None, clamp_alpha=False, sigma_cutoff=1e9)
        )

    base = loss_of(means, covs, opac, colors)
    base.backward()
    mats = splitting_matrix_2d(covs.grad, covs.detach(), opac.detach(), opac.grad)
    lam, vec = smallest_eigenpairs(mats)
    i = int(torch.argmin(lam))
    assert lam[i] < 0
    ratios = []
    for eps in (0.1, 0.01):
        offs = torch.stack([vec[i], -vec[i]]) * eps
        m = torch.cat([means.detach()[:i], means.detach()[i : i + 1] + offs, means.detach()[i + 1 :]])
        c = torch.cat([covs.detach()[:i], covs.detach()[i : i + 1].expand(2, 2, 2), covs.detach()[i + 1 :]])
        o = torch.cat([opac.detach()[:i], opac.detach()[i : i + 1].expand(2) / 2, opac.detach()[i + 1 :]])
        col = torch.cat([colors[:i], colors[i : i + 1].expand(2, 3), colors[i + 1 :]])
        delta = loss_of(m, c, o, col) - base.detach()
        ratios.append(float(delta / (0.5 * eps**2 * lam[i])))
    assert abs(ratios[-1] - 1) < 1e-3
    assert abs(ratios[-1] - 1) < abs(ratios[0] - 1) or abs(ratios[0] - 1) < 1e-3


def test_inv_cov_proxy_has_sign_of_summed_dl_dg() -> None:
    means, _, _, colors, _ = random_splats(6, H, W, seed=7)
    params = {
        "means": means,
        "scales": torch.log(torch.rand(6, 2, dtype=F64) + 0.8),
        "angles": torch.rand(6, dtype=F64),
        "opacities": torch.zeros(6, dtype=F64),
    }
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    img, info = render_2d(params["means"], params["scales"], params["angles"], params["opacities"], colors, H, W)
    _fit_loss(img).backward()
    proxy = splitting_matrix(info, "inv_cov", params)
    eig = torch.linalg.eigvalsh(proxy)
    total = info["probe"].grad
    assert (torch.sign(eig[:, 0]) == torch.sign(total)).all() and (torch.sign(eig[:, 1]) == torch.sign(total)).all()
    with pytest.raises(ValueError, match="params"):
        splitting_matrix(info, "inv_cov")
    with pytest.raises(ValueError, match="estimator"):
        splitting_matrix(info, "hessian")


def test_splitting_matrix_needs_backward() -> None:
    means, _, _, colors, _ = random_splats(3, 6, 6)
    _, info = render_2d(
        means.requires_grad_(),
        torch.zeros(3, 2, dtype=F64, requires_grad=True),
        torch.zeros(3, dtype=F64),
        torch.zeros(3, dtype=F64, requires_grad=True),
        colors,
        6,
        6,
    )
    with pytest.raises(ValueError, match="backward"):
        splitting_matrix(info)
