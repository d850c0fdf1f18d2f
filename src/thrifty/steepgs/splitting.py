"""The SteepGS splitting matrix S(theta) = E_x[dL/dsigma * Hess_p sigma(x; theta)] per Gaussian.

The efficient form is the gradient identity (spec section 2.2)::

    S_i = 2 dL/dSigma_i - o_i (dL/do_i) Sigma_i^{-1}

which needs only the ordinary gradients of the 2D covariance and the opacity (both retained by the
renderers). For 3D Gaussians with the conic held fixed w.r.t. the position (as every CUDA path does)::

    S_3D = A^T S_2D A + sum_k (dL/du_k) Hess_p u_k,     A = du/dp (2x3)

``estimator="inv_cov"`` reproduces the official repository's proxy S = (sum_x dL/dG) * Sigma^{-1}
(Sigma = the Gaussian's own covariance, 3D for 3D Gaussians); it is kept only to mimic that code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from thrifty.steepgs.ops import conics_from_covs, covariance, rotation_2d, rotation_from_quats

ESTIMATORS = ("identity", "inv_cov")


def splitting_matrix_2d(cov_grad: Tensor, covs: Tensor, opacities: Tensor, opacity_grad: Tensor) -> Tensor:
    """The identity S = 2 dL/dSigma - o (dL/do) Sigma^{-1} for 2D splats.

    Args:
        cov_grad: (N, 2, 2) dL/dSigma (symmetric). covs: (N, 2, 2). opacities, opacity_grad: (N,).
    Returns:
        (N, 2, 2) splitting matrices w.r.t. the 2D means.
    """
    return 2 * cov_grad - (opacities * opacity_grad)[:, None, None] * conics_from_covs(covs)


def _grad(info: dict, key: str) -> Tensor:
    grad = info[key].grad
    if grad is None:
        raise ValueError(f"info[{key!r}]: expected a retained gradient; call loss.backward() first")
    return grad


def splitting_matrix(info: dict, estimator: str = "identity", params: dict[str, Tensor] | None = None) -> Tensor:
    """Per-Gaussian splitting matrices (N, d, d) from one rendered view's ``info`` after backward.

    Args:
        info: from :func:`render_2d` (d = 2) or :func:`render_3d` (d = 3).
        estimator: "identity" (exact, the paper's S) or "inv_cov" (the official repo's proxy [recon]).
        params: the Gaussian parameters; needed by "inv_cov" (it uses the Gaussians' own covariance).
    Returns:
        (N, d, d) tensor, detached.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "inv_cov":
        if params is None:
            raise ValueError("params: expected the Gaussian parameters for estimator='inv_cov'")
        return _inv_cov_proxy(info, params)
    covs = info["covs2d"].detach()
    s2d = splitting_matrix_2d(_grad(info, "covs2d"), covs, info["opacities"].detach(), _grad(info, "opacities"))
    if info["dim"] == 2:
        return s2d
    from thrifty.steepgs.render3d import projection_hessians, projection_jacobian

    cam, means_cam = info["cam"], info["means_cam"]
    world_to_cam = cam.rotation.to(covs.dtype)
    jac = projection_jacobian(means_cam, cam, clip=None) @ world_to_cam  # (N, 2, 3) = du/dp
    hess = world_to_cam.T @ projection_hessians(means_cam, cam) @ world_to_cam  # (N, 2, 3, 3)
    mean_grad = _grad(info, "means2d")
    s3d = jac.transpose(-1, -2) @ s2d @ jac + torch.einsum("nk,nkij->nij", mean_grad, hess)
    return s3d * info["visible"][:, None, None]


def _inv_cov_proxy(info: dict, params: dict[str, Tensor]) -> Tensor:
    """S = (sum_x dL/dG) Sigma^{-1}, Sigma^{-1} = R diag(1/(s + 1e-8))^2 R^T, as in the official code."""
    total = _grad(info, "probe")
    scales = torch.exp(params["scales"].detach())
    if info["dim"] == 2:
        rot = rotation_2d(params["angles"].detach())
    else:
        rot = rotation_from_quats(params["quats"].detach())
    inv_cov = covariance(rot, -torch.log(scales + 1e-8))
    return total[:, None, None] * inv_cov * info["visible"][:, None, None]


def smallest_eigenpairs(mats: Tensor) -> tuple[Tensor, Tensor]:
    """(lambda_min (N,), v_min (N, d)) of symmetric (N, d, d) matrices (symmetrised first)."""
    vals, vecs = torch.linalg.eigh(0.5 * (mats + mats.transpose(-1, -2)))
    return vals[:, 0], vecs[:, :, 0]
