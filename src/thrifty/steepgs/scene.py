"""An analytic test scene ray-traced independently of the splatting renderer (3D ground truth).

Three textured spheres on a checkered ground square under a fixed directional light (Lambertian,
ambient 0.35), sky colour elsewhere. Images are rendered by exact ray intersection with 2x2
supersampling, so the Gaussian model never sees its own rendering equation in the targets.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from thrifty.steepgs.render3d import Camera, look_at

SKY = (0.62, 0.75, 0.92)
LIGHT = (0.4, 0.3, 0.866)
GROUND_HALF = 2.0
# (centre x, y, z, radius, texture id)
SPHERES = ((0.45, 0.1, 0.5, 0.5, 0), (-0.75, 0.55, 0.35, 0.35, 1), (-0.1, -0.85, 0.3, 0.3, 2))


def albedo(points: Tensor, normals: Tensor, surface: Tensor) -> Tensor:
    """Procedural albedo (M, 3) at surface points; surface -1 = ground, k >= 0 = sphere k."""
    x, y, z = points.unbind(-1)
    checker = ((torch.floor(x * 2.5) + torch.floor(y * 2.5)) % 2)[:, None]
    colors = torch.where(checker > 0, points.new_tensor([0.85, 0.8, 0.7]), points.new_tensor([0.3, 0.35, 0.45]))
    stripes = (0.5 + 0.5 * torch.sin(12 * z))[:, None]
    sph = [
        points.new_tensor([0.9, 0.25, 0.2]) * (0.4 + 0.6 * stripes) + 0.1,
        torch.where(
            ((torch.floor(4 * torch.atan2(normals[:, 1], normals[:, 0])) + torch.floor(4 * normals[:, 2])) % 2)[:, None]
            > 0,
            points.new_tensor([0.2, 0.7, 0.3]),
            points.new_tensor([0.9, 0.9, 0.3]),
        ),
        points.new_tensor([0.25, 0.35, 0.9]).expand_as(points) * (0.6 + 0.4 * torch.cos(9 * x)[:, None]),
    ]
    for k, col in enumerate(sph):
        colors = torch.where((surface == k)[:, None], col, colors)
    return colors


def shade(points: Tensor, normals: Tensor, surface: Tensor) -> Tensor:
    """Lambertian radiance (M, 3) = albedo * (0.35 + 0.65 max(0, n . l))."""
    light = points.new_tensor(LIGHT)
    light = light / light.norm()
    return albedo(points, normals, surface) * (0.35 + 0.65 * (normals @ light).clamp_min(0))[:, None]


def trace(origins: Tensor, dirs: Tensor) -> Tensor:
    """Radiance (M, 3) along rays (origins, unit dirs (M, 3)): nearest hit among ground and spheres."""
    m = dirs.shape[0]
    best = torch.full((m,), math.inf, dtype=dirs.dtype, device=dirs.device)
    surface = torch.full((m,), -2, dtype=torch.long, device=dirs.device)
    t_ground = -origins[:, 2] / dirs[:, 2]
    hit = t_ground > 1e-6
    p = origins + t_ground[:, None] * dirs
    hit &= (p[:, 0].abs() <= GROUND_HALF) & (p[:, 1].abs() <= GROUND_HALF)
    best = torch.where(hit, t_ground, best)
    surface = torch.where(hit, -1, surface)
    for k, (cx, cy, cz, r, _) in enumerate(SPHERES):
        oc = origins - origins.new_tensor([cx, cy, cz])
        b = (oc * dirs).sum(-1)
        disc = b * b - ((oc * oc).sum(-1) - r * r)
        t = -b - disc.clamp_min(0).sqrt()
        hit = (disc > 0) & (t > 1e-6) & (t < best)
        best = torch.where(hit, t, best)
        surface = torch.where(hit, k, surface)
    points = origins + best.clamp(max=1e3)[:, None] * dirs
    normals = points.new_tensor([0.0, 0.0, 1.0]).expand_as(points).clone()
    for k, (cx, cy, cz, r, _) in enumerate(SPHERES):
        sel = surface == k
        normals[sel] = (points[sel] - points.new_tensor([cx, cy, cz])) / r
    color = shade(points, normals, surface)
    return torch.where((surface == -2)[:, None], dirs.new_tensor(SKY), color)


def render_truth(cam: Camera, supersample: int = 2) -> Tensor:
    """Ground-truth image (H, W, 3) for ``cam`` by exact ray tracing with supersample^2 rays per pixel."""
    s = supersample
    dt, dev = cam.rotation.dtype, cam.rotation.device
    sub = (torch.arange(s, dtype=dt, device=dev) + 0.5) / s
    ys = (torch.arange(cam.height, dtype=dt, device=dev)[:, None] + sub[None]).reshape(-1)
    xs = (torch.arange(cam.width, dtype=dt, device=dev)[:, None] + sub[None]).reshape(-1)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    d_cam = torch.stack([(gx - cam.cx) / cam.fx, (gy - cam.cy) / cam.fy, torch.ones_like(gx)], -1).reshape(-1, 3)
    dirs = d_cam @ cam.rotation
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    img = trace(cam.center.expand_as(dirs), dirs).reshape(cam.height, s, cam.width, s, 3)
    return img.mean(dim=(1, 3))


def ring_cameras(
    n: int,
    size: int,
    *,
    radius: float = 4.0,
    elevation_deg: float = 25.0,
    fov_deg: float = 45.0,
    phase: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> list[Camera]:
    """``n`` cameras evenly spaced on a ring around the scene, looking at (0, 0, 0.3)."""
    el = math.radians(elevation_deg)
    cams = []
    for i in range(n):
        az = 2 * math.pi * (i + phase) / n
        eye = torch.tensor(
            [radius * math.cos(el) * math.cos(az), radius * math.cos(el) * math.sin(az), radius * math.sin(el)],
            dtype=dtype,
        )
        cams.append(look_at(eye, torch.tensor([0.0, 0.0, 0.3], dtype=dtype), fov_deg, size, size))
    return cams


def surface_samples(n: int, generator: torch.Generator, noise: float = 0.02) -> tuple[Tensor, Tensor]:
    """SfM-like init: ``n`` points (n, 3) on the ground and spheres (area-weighted) plus noise, and their colours."""
    areas = [(2 * GROUND_HALF) ** 2] + [4 * math.pi * r * r for (_, _, _, r, _) in SPHERES]
    counts = torch.multinomial(torch.tensor(areas), n, replacement=True, generator=generator).bincount(minlength=4)
    pts, nrm, surf = [], [], []
    ground = (torch.rand(int(counts[0]), 2, generator=generator) * 2 - 1) * GROUND_HALF
    pts.append(torch.cat([ground, torch.zeros(len(ground), 1)], -1))
    nrm.append(torch.tensor([0.0, 0.0, 1.0]).expand(len(ground), 3))
    surf.append(torch.full((len(ground),), -1))
    for k, (cx, cy, cz, r, _) in enumerate(SPHERES):
        d = torch.randn(int(counts[k + 1]), 3, generator=generator)
        d = d / d.norm(dim=-1, keepdim=True)
        pts.append(torch.tensor([cx, cy, cz]) + r * d)
        nrm.append(d)
        surf.append(torch.full((len(d),), k))
    points, normals, surface = torch.cat(pts), torch.cat(nrm), torch.cat(surf)
    colors = shade(points, normals, surface)
    # Points hidden inside another sphere or under the ground would never be seen; keep them anyway (as SfM noise).
    return points + noise * torch.randn(points.shape, generator=generator), colors
