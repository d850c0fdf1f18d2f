"""Streaming tracking: feed frames one by one, get masks back, never hold more than the memory bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from thrifty.tam.model import TinyTAM

FRAME_CONVENTION = (
    "an RGB frame, uint8 in [0, 255] or float in [0, 1]: a (S, S, 3) numpy array or a (3, S, S) torch tensor"
)


def _to_frame(frame: Any, size: int, device: torch.device) -> Tensor:
    """A frame following :data:`FRAME_CONVENTION` -> ``(1, 3, S, S)`` float in [0, 1] on ``device``.

    uint8 frames are divided by 255 whether they come as numpy or torch; float frames must already be in
    [0, 1] and finite; any other dtype, layout or range is a ValueError (TypeError for other containers).
    """
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame: expected a {size}x{size} RGB frame ({FRAME_CONVENTION}), got {frame.shape}")
        t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
    elif isinstance(frame, Tensor):
        t = frame
    else:
        raise TypeError(f"frame: expected a numpy array or torch.Tensor, got {type(frame).__name__}")
    if t.shape != (3, size, size):
        raise ValueError(f"frame: expected a {size}x{size} RGB frame ({FRAME_CONVENTION}), got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return (t.float() / 255.0).unsqueeze(0).to(device)
    if not t.is_floating_point():
        raise ValueError(f"frame: expected uint8 or floating point values, got {t.dtype}")
    t = t.float()
    if not bool(torch.isfinite(t).all()) or float(t.min()) < 0 or float(t.max()) > 1:
        raise ValueError("frame: expected float values finite and in [0, 1] (divide 0-255 floats by 255)")
    return t.unsqueeze(0).to(device)


def _to_points(points: tuple[Any, Any], size: int) -> tuple[Tensor, Tensor]:
    """``(coords (N, 2) pixel x/y in [0, S], labels (N,) in {0, 1})`` -> ``((1, N, 2), (1, N))``."""
    coords, labels = torch.as_tensor(points[0]).float(), torch.as_tensor(points[1])
    if coords.ndim != 2 or coords.shape[0] == 0 or coords.shape != (labels.shape[0], 2) or labels.ndim != 1:
        raise ValueError(
            f"points: expected non-empty (N, 2) coords and (N,) labels, got "
            f"{tuple(coords.shape)} and {tuple(labels.shape)}"
        )
    if not bool(torch.isfinite(coords).all()) or float(coords.min()) < 0 or float(coords.max()) > size:
        raise ValueError(f"points: expected pixel coordinates inside the {size}x{size} image, got {coords.tolist()}")
    if labels.is_floating_point() or not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError(f"points: expected labels 1 (foreground) or 0 (background), got {labels.tolist()}")
    return coords[None], labels.long()[None]


def _to_box(box: Any, size: int) -> Tensor:
    """``(4,)`` x0 y0 x1 y1 with x0 < x1, y0 < y1, inside the image -> ``(1, 4)``."""
    box_t = torch.as_tensor(box).float().view(-1)
    if box_t.numel() != 4:
        raise ValueError(f"box: expected 4 numbers x0 y0 x1 y1, got {box_t.numel()}")
    x0, y0, x1, y1 = box_t.tolist()
    inside = all(0 <= v <= size for v in (x0, y0, x1, y1))
    if not (bool(torch.isfinite(box_t).all()) and inside and x0 < x1 and y0 < y1):
        raise ValueError(f"box: expected x0 < x1 and y0 < y1 inside the {size}x{size} image, got {box_t.tolist()}")
    return box_t[None]


class VideoSession:
    """Track one object through a stream of frames.

    Example::

        session = VideoSession(model)
        mask, score = session.step(frame0, mask=first_mask)   # or points=..., box=...
        for frame in stream:
            mask, score = session.step(frame)

    Memory is a :class:`~thrifty.tam.memory.MemoryBank`: at most ``1 + num_maskmem - 1`` stored frames and
    ``max_obj_ptrs`` pointers, however long the stream.
    """

    def __init__(self, model: TinyTAM) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.bank = model.new_bank()
        self.frame_idx = 0
        self.size = model.cfg.image_size

    @property
    def memory_frames(self) -> int:
        """Spatial memories currently held."""
        return len(self.bank)

    @torch.no_grad()
    def step(
        self, frame: Any, mask: Any = None, points: tuple[Any, Any] | None = None, box: Any = None
    ) -> tuple[Tensor, float]:
        """Process the next frame; the first frame needs a prompt.

        Args:
            frame: RGB, uint8 in [0, 255] or float in [0, 1]; a ``(S, S, 3)`` numpy array or a ``(3, S, S)``
                tensor (:data:`FRAME_CONVENTION`; anything else is a ValueError).
            mask: ``(S, S)`` first-frame mask (not together with points or box).
            points: ``(coords (N, 2) pixel x/y in [0, S], labels (N,) 1 = foreground, 0 = background)``.
            box: ``(4,)`` x0 y0 x1 y1 with x0 < x1, y0 < y1, inside the image.

        Returns:
            ``(mask (S, S) bool, object score = sigmoid(obj_logit))``.
        """
        x = _to_frame(frame, self.size, self.device)
        if mask is not None and (points is not None or box is not None):
            raise ValueError("mask, points, box: expected either a mask or points and/or a box, not both")
        mask_t = self._mask(mask) if mask is not None else None
        pts = None
        if points is not None:
            coords, labels = _to_points(points, self.size)
            pts = (coords.to(self.device), labels.to(self.device))
        box_t = _to_box(box, self.size).to(self.device) if box is not None else None
        if self.frame_idx == 0 and mask_t is None and pts is None and box_t is None:
            raise ValueError("mask, points, box: the first frame needs a prompt (a mask, points or a box)")
        out = self.model.track_step(x, self.bank, self.frame_idx, mask_prompt=mask_t, points=pts, box=box_t)
        self.frame_idx += 1
        return out["masks"][0, 0] > 0, float(torch.sigmoid(out["obj_logit"][0, 0]))

    def _mask(self, mask: Any) -> Tensor:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask).float()
        if m.shape != (self.size, self.size):
            raise ValueError(f"mask: expected a ({self.size}, {self.size}) mask, got {tuple(m.shape)}")
        if m.sum() == 0:
            raise ValueError("mask: the prompt mask is empty; give at least one foreground pixel")
        return (m > 0.5).float()[None, None].to(self.device)
