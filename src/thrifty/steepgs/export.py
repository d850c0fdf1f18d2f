"""Export trained 3D Gaussians to the standard 3DGS .ply layout (opens in common splat viewers).

The file has the full SH degree-3 layout that the official 3DGS loader and common viewers expect: the 45
``f_rest_*`` coefficients (view-dependent colour) are written as zeros, since thrifty's Gaussians carry a
view-independent colour (SH degree 0). :func:`save_cameras` writes the cameras as 3DGS' ``cameras.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
PLY_FIELDS = (
    "x",
    "y",
    "z",
    "nx",
    "ny",
    "nz",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
)
N_REST = 45  # SH degrees 1-3: 15 coefficients per colour channel
# The on-disk vertex layout (3DGS order): the fields above with f_rest_0..44 between f_dc_* and opacity.
PLY_LAYOUT = PLY_FIELDS[:9] + tuple(f"f_rest_{i}" for i in range(N_REST)) + PLY_FIELDS[9:]


def ply_rows(params: dict[str, Tensor]) -> np.ndarray:
    """(N, 17) float32 rows in :data:`PLY_FIELDS` order.

    Colours become SH degree-0 coefficients (rgb - 0.5) / C0; opacities stay logits and scales stay
    log-scales, exactly as the 3DGS reference code stores them; quaternions are (w, x, y, z).
    """
    for key in ("means", "colors", "opacities", "scales", "quats"):
        if key not in params:
            raise ValueError(f"params: expected key {key!r} (3D Gaussians), got {sorted(params)}")
    means = params["means"].detach().float().cpu()
    n = means.shape[0]
    quats = params["quats"].detach().float().cpu()
    cols = [
        means,
        torch.zeros(n, 3),
        (params["colors"].detach().float().cpu() - 0.5) / SH_C0,
        params["opacities"].detach().float().cpu()[:, None],
        params["scales"].detach().float().cpu(),
        quats / quats.norm(dim=-1, keepdim=True),
    ]
    return torch.cat(cols, -1).numpy().astype("<f4")


def save_ply(path: str | Path, params: dict[str, Tensor]) -> Path:
    """Write binary little-endian .ply with the 3DGS vertex properties (:data:`PLY_LAYOUT`); returns the path."""
    base = ply_rows(params)
    rows = np.concatenate([base[:, :9], np.zeros((base.shape[0], N_REST), "<f4"), base[:, 9:]], axis=1)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {rows.shape[0]}"]
    header += [f"property float {name}" for name in PLY_LAYOUT] + ["end_header"]
    path = Path(path)
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(rows.tobytes())
    return path


def load_ply(path: str | Path) -> dict[str, Tensor]:
    """Read a file written by :func:`save_ply` (or the older 17-field layout) into parameter tensors (float32)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    names = [line.split()[-1] for line in header if line.startswith("property")]
    if tuple(names) not in (PLY_LAYOUT, PLY_FIELDS):
        raise ValueError(f"path: expected the 3DGS vertex layout {PLY_LAYOUT}, got {names}")
    rows = torch.from_numpy(np.frombuffer(data[end:], dtype="<f4").reshape(-1, len(names)).copy())
    if len(names) == len(PLY_LAYOUT):
        rows = torch.cat([rows[:, :9], rows[:, 9 + N_REST :]], dim=1)  # drop the zero f_rest_* block
    return {
        "means": rows[:, 0:3],
        "colors": rows[:, 6:9] * SH_C0 + 0.5,
        "opacities": rows[:, 9],
        "scales": rows[:, 10:13],
        "quats": rows[:, 13:17],
    }


def save_cameras(path: str | Path, cameras: list[Any]) -> Path:
    """Write ``cameras`` (:class:`~thrifty.steepgs.render3d.Camera`) as 3DGS' ``cameras.json``; returns the path.

    Each entry has ``id``, ``img_name``, ``width``, ``height``, ``position`` (camera centre in world
    coordinates, ``-R^T t``), ``rotation`` (camera-to-world, ``R^T``, row-major 3x3), ``fx`` and ``fy``.
    """
    entries = []
    for index, cam in enumerate(cameras):
        rot = cam.rotation.detach().double().cpu()
        centre = -(rot.T @ cam.translation.detach().double().cpu())
        entries.append(
            {
                "id": index,
                "img_name": f"view_{index:03d}",
                "width": int(cam.width),
                "height": int(cam.height),
                "position": centre.tolist(),
                "rotation": rot.T.tolist(),
                "fx": float(cam.fx),
                "fy": float(cam.fy),
            }
        )
    path = Path(path)
    path.write_text(json.dumps(entries, indent=2) + "\n")
    return path
