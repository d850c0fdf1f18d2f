"""3D Gaussians: pinhole cameras, EWA projection (Jacobian, low-pass 0.3) and depth-sorted rendering."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thrifty.steepgs.ops import check_finite, check_rows, covariance, rotation_from_quats
from thrifty.steepgs.render import rasterize


@dataclass
class Camera:
    """A pinhole camera: x_cam = R x_world + t, u = (fx x/z + cx, fy y/z + cy), z forward.

    Attributes:
        rotation: (3, 3) world-to-camera. translation: (3,). fx, fy, cx, cy: pixels. width, height.
    """

    rotation: Tensor
    translation: Tensor
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Camera:
        """The same camera with its tensors on ``device`` (and ``dtype``)."""
        kw = {"device": device, "dtype": dtype or self.rotation.dtype}
        return Camera(
            self.rotation.to(**kw),
            self.translation.to(**kw),
            self.fx,
            self.fy,
            self.cx,
            self.cy,
            self.width,
            self.height,
        )

    @property
    def center(self) -> Tensor:
        """(3,) camera centre in world coordinates."""
        return -self.rotation.T @ self.translation


def look_at(eye: Tensor, target: Tensor, fov_deg: float, width: int, height: int) -> Camera:
    """A camera at ``eye`` (3,) looking at ``target`` (3,), world up = +z, image y pointing down."""
    from thrifty.steepgs.ops import focal_from_fov

    forward = (target - eye) / (target - eye).norm()
    up = eye.new_tensor([0.0, 0.0, 1.0])
    right = torch.linalg.cross(forward, up)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rot = torch.stack([right, down, forward])
    f = focal_from_fov(fov_deg, width)
    return Camera(rot, -rot @ eye, f, f, width / 2, height / 2, width, height)


def projection_jacobian(means_cam: Tensor, cam: Camera, clip: float | None = 1.3) -> Tensor:
    """EWA Jacobian J (N, 2, 3) of u = (fx x/z + cx, fy y/z + cy) w.r.t. camera coordinates.

    ``clip`` limits x/z, y/z to +/- clip * tan(fov/2) inside J only (3DGS); None gives the exact Jacobian.
    """
    x, y, z = means_cam.unbind(-1)
    tx, ty = x / z, y / z
    if clip is not None:
        lim_x, lim_y = clip * cam.width / (2 * cam.fx), clip * cam.height / (2 * cam.fy)
        tx, ty = tx.clamp(-lim_x, lim_x), ty.clamp(-lim_y, lim_y)
    zero = torch.zeros_like(z)
    row0 = torch.stack([cam.fx / z, zero, -cam.fx * tx / z], -1)
    row1 = torch.stack([zero, cam.fy / z, -cam.fy * ty / z], -1)
    return torch.stack([row0, row1], -2)


def projection_hessians(means_cam: Tensor, cam: Camera) -> Tensor:
    """Hessians (N, 2, 3, 3) of u_k w.r.t. camera coordinates (u_0 = fx x/z, u_1 = fy y/z)."""
    x, y, z = means_cam.unbind(-1)
    hess = means_cam.new_zeros(means_cam.shape[0], 2, 3, 3)
    for k, (f, a) in enumerate(((cam.fx, x), (cam.fy, y))):
        hess[:, k, k, 2] = hess[:, k, 2, k] = -f / z**2
        hess[:, k, 2, 2] = 2 * f * a / z**3
    return hess


def project_gaussians(
    means: Tensor, quats: Tensor, log_scales: Tensor, cam: Camera, *, near: float = 0.2, eps2d: float = 0.3
) -> dict[str, Tensor]:
    """Project 3D Gaussians: returns means2d (N, 2), covs2d (N, 2, 2), depths (N,), valid (N,) bool, means_cam.

    Gaussians with z <= near are flagged invalid (their 2D quantities are finite dummies).
    """
    means_cam = means @ cam.rotation.T + cam.translation
    valid = means_cam[:, 2] > near
    safe = torch.where(valid[:, None], means_cam, means_cam.new_tensor([0.0, 0.0, 1.0]))
    jac = projection_jacobian(safe, cam)
    cov_cam = cam.rotation @ covariance(rotation_from_quats(quats), log_scales) @ cam.rotation.T
    covs2d = jac @ cov_cam @ jac.transpose(-1, -2) + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    x, y, z = safe.unbind(-1)
    means2d = torch.stack([cam.fx * x / z + cam.cx, cam.fy * y / z + cam.cy], -1)
    return {"means2d": means2d, "covs2d": covs2d, "depths": safe[:, 2], "valid": valid, "means_cam": safe}


def render_3d(
    params: dict[str, Tensor],
    cam: Camera,
    *,
    background: Tensor | None = None,
    tile_size: int | None = 16,
    clamp_alpha: bool = True,
    eps2d: float = 0.3,
) -> tuple[Tensor, dict]:
    """Render 3D Gaussians (RGB colours, SH degree 0) from one camera with front-to-back compositing.

    Args:
        params: ``means`` (N, 3), ``quats`` (N, 4), ``scales`` (N, 3) log-scales, ``opacities`` (N,)
            logits, ``colors`` (N, 3).
    Returns:
        image (H, W, 3) and info: non-leaf ``means2d``, ``covs2d``, ``opacities`` (grads retained),
        ``probe``, ``visible``, ``means_cam``, ``cam``, ``width``, ``height``, ``dim`` = 3.
    """
    means = params["means"]
    n = means.shape[0]
    for name, tail in (("quats", (4,)), ("scales", (3,)), ("opacities", ()), ("colors", (3,))):
        check_rows(name, params[name], n, tail)
    check_rows("means", means, n, (3,))
    for name in ("means", "quats", "scales", "opacities"):
        check_finite(name, params[name])
    proj = project_gaussians(means, params["quats"], params["scales"], cam, eps2d=eps2d)
    opac = torch.sigmoid(params["opacities"]) * proj["valid"]
    means2d, covs2d = proj["means2d"], proj["covs2d"]
    for t in (means2d, covs2d, opac):
        if t.requires_grad:
            t.retain_grad()
    probe = means.new_zeros(n, requires_grad=True)
    image = rasterize(
        means2d,
        covs2d,
        opac,
        params["colors"],
        cam.height,
        cam.width,
        mode="alpha",
        depths=proj["depths"],
        background=background,
        tile_size=tile_size,
        clamp_alpha=clamp_alpha,
        probe=probe,
    )
    ext = 3 * torch.diagonal(covs2d.detach(), dim1=-2, dim2=-1).sqrt()
    on_screen = (
        (means2d.detach() + ext > 0) & (means2d.detach() - ext < means.new_tensor([cam.width, cam.height]))
    ).all(-1)
    info = {
        "means2d": means2d,
        "covs2d": covs2d,
        "opacities": opac,
        "probe": probe,
        "visible": proj["valid"] & on_screen,
        "means_cam": proj["means_cam"].detach(),
        "cam": cam,
        "width": cam.width,
        "height": cam.height,
        "dim": 3,
    }
    return image, info
