"""The photos that ship inside scikit-image (loaded from site-packages, never downloaded)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Images bundled in the scikit-image wheel (others need a download and are excluded).
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


def load_photo(name: str, size: int | tuple[int, int] | None = None, gray: bool = False) -> torch.Tensor:
    """Load a bundled scikit-image photo as float32 in [0, 1].

    Args:
        name: one of :data:`PHOTO_NAMES`.
        size: ``None`` keeps the original size; an int resizes to a square ``(size, size)``; a
            tuple is ``(H, W)``. Resizing is area-averaged (antialiased bilinear).
        gray: return luminance ``(H, W)`` instead of RGB ``(H, W, 3)``.

    Returns:
        ``(H, W, 3)`` or ``(H, W)`` float32 tensor.
    """
    if name not in PHOTO_NAMES:
        raise ValueError(f"name: expected one of {', '.join(PHOTO_NAMES)}, got {name!r}")
    import skimage.data

    array = np.asarray(getattr(skimage.data, name)())
    image = torch.from_numpy(array.astype(np.float32) / 255.0)
    if image.dim() == 2:
        image = image[..., None].expand(-1, -1, 3)
    image = image[..., :3].contiguous()
    if size is not None:
        image = _resize(image, size)
    if gray:
        weights = torch.tensor([0.299, 0.587, 0.114])
        return (image * weights).sum(-1)
    return image


def _resize(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or min(hw) <= 0:
        raise ValueError(f"size: expected a positive int or (H, W), got {size!r}")
    chw = image.permute(2, 0, 1)[None]
    out = F.interpolate(chw, size=hw, mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).clamp(0, 1).contiguous()
