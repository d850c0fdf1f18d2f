"""Export trained 3D Gaussians to the standard 3DGS .ply layout (opens in common splat viewers)."""

from __future__ import annotations

from pathlib import Path

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
    """Write binary little-endian .ply with the 3DGS vertex properties; returns the path."""
    rows = ply_rows(params)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {rows.shape[0]}"]
    header += [f"property float {name}" for name in PLY_FIELDS] + ["end_header"]
    path = Path(path)
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(rows.tobytes())
    return path


def load_ply(path: str | Path) -> dict[str, Tensor]:
    """Read a file written by :func:`save_ply` back into parameter tensors (float32)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    names = [line.split()[-1] for line in header if line.startswith("property")]
    if tuple(names) != PLY_FIELDS:
        raise ValueError(f"path: expected the 3DGS vertex layout {PLY_FIELDS}, got {names}")
    rows = torch.from_numpy(np.frombuffer(data[end:], dtype="<f4").reshape(-1, len(names)).copy())
    return {
        "means": rows[:, 0:3],
        "colors": rows[:, 6:9] * SH_C0 + 0.5,
        "opacities": rows[:, 9],
        "scales": rows[:, 10:13],
        "quats": rows[:, 13:17],
    }
