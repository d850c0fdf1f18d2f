"""Streaming tracking: feed frames one by one, get masks back, never hold more than the memory bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from thrifty.tam.model import TinyTAM


def _to_frame(frame: Any, size: int, device: torch.device) -> Tensor:
    """``(H, W, 3)`` uint8/float numpy or ``(3, H, W)`` tensor in [0, 1] -> ``(1, 3, S, S)`` on ``device``."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame: expected a (H, W, 3) array, got shape {frame.shape}")
        t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
        t = t.float() / 255.0 if frame.dtype == np.uint8 else t.float()
    elif isinstance(frame, Tensor):
        t = frame.float()
    else:
        raise TypeError(f"frame: expected a numpy array or torch.Tensor, got {type(frame).__name__}")
    if t.shape != (3, size, size):
        raise ValueError(
            f"frame: expected a {size}x{size} RGB frame ((3, {size}, {size}) tensor or "
            f"({size}, {size}, 3) array), got {tuple(t.shape)}"
        )
    return t.unsqueeze(0).to(device)


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
            frame: ``(3, S, S)`` tensor or ``(S, S, 3)`` array. mask: ``(S, S)`` first-frame mask.
            points: ``(coords (N, 2) pixel x/y, labels (N,))``. box: ``(4,)`` x0 y0 x1 y1.

        Returns:
            ``(mask (S, S) bool, object score = sigmoid(obj_logit))``.
        """
        x = _to_frame(frame, self.size, self.device)
        mask_t = self._mask(mask) if mask is not None else None
        pts = None
        if points is not None:
            coords, labels = torch.as_tensor(points[0]).float(), torch.as_tensor(points[1]).long()
            if coords.ndim != 2 or coords.shape[0] == 0 or coords.shape != (labels.shape[0], 2):
                raise ValueError(
                    f"points: expected non-empty (N, 2) coords and (N,) labels, got "
                    f"{tuple(coords.shape)} and {tuple(labels.shape)}"
                )
            pts = (coords[None].to(self.device), labels[None].to(self.device))
        box_t = None
        if box is not None:
            box_t = torch.as_tensor(box).float().view(-1)
            if box_t.numel() != 4:
                raise ValueError(f"box: expected 4 numbers x0 y0 x1 y1, got {box_t.numel()}")
            box_t = box_t[None].to(self.device)
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
