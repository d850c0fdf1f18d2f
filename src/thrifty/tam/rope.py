"""Axial 2D rotary position embedding (SAM 2 convention) and the sine position encodings.

Conventions (read from SAM 2's ``position_encoding.py``):

* frequencies ``1 / theta^(4i/d)`` for ``i < d/4``;
* the first ``d/4`` channel pairs rotate by the column ``x = t mod W``, the next ``d/4`` by the row
  ``y = t div W``;
* a "complex pair" is two ADJACENT channels ``(2i, 2i+1)``, not the two halves of the head.

The efficient path here is real-valued (cos/sin); :mod:`thrifty.tam.reference` holds the complex form.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor


def axial_rope_cos_sin(
    head_dim: int,
    h: int,
    w: int,
    theta: float = 1e4,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    scale: float = 1.0,
    offset: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Angles of the axial RoPE on an ``h x w`` grid, flattened row-major.

    Args:
        head_dim: channels per head; must be a multiple of 4.
        h: grid rows. w: grid columns.
        theta: RoPE base.
        scale, offset: coordinates are ``scale * index + offset`` (1, 0 = SAM 2's integer grid).

    Returns:
        ``(cos, sin)``, each ``(h*w, head_dim // 2)``.
    """
    if head_dim % 4 != 0:
        raise ValueError(f"head_dim: expected a multiple of 4 for axial 2D RoPE, got {head_dim}")
    if h < 0 or w < 0:
        raise ValueError(f"h, w: expected non-negative grid sizes, got {h}x{w}")
    freqs = 1.0 / (
        theta ** (torch.arange(0, head_dim, 4, device=device, dtype=torch.float64)[: head_dim // 4] / head_dim)
    )
    t = torch.arange(h * w, device=device, dtype=torch.float64)
    t_x, t_y = t % w, torch.div(t, w, rounding_mode="floor")
    t_x, t_y = scale * t_x + offset, scale * t_y + offset
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def frame_rope_table(cos: Tensor, sin: Tensor, n_nope_head: int = 0) -> tuple[Tensor, Tensor]:
    """Prepend ``n_nope_head`` identity rotations (cos 1, sin 0) to a per-frame table.

    EdgeTAM's ``RoPEAttentionv2`` leaves the global latents at the head of every memory frame unrotated.

    Args:
        cos, sin: ``(N, D/2)`` angles of the rotated tokens of one frame.
        n_nope_head: leading tokens of the frame that get no RoPE.

    Returns:
        ``(cos, sin)`` of shape ``(n_nope_head + N, D/2)``.
    """
    if n_nope_head == 0:
        return cos, sin
    ones = torch.ones(n_nope_head, cos.shape[1], dtype=cos.dtype, device=cos.device)
    return torch.cat([ones, cos]), torch.cat([torch.zeros_like(ones), sin])


def apply_axial_rope(x: Tensor, cos: Tensor, sin: Tensor, repeat: int = 1, n_tail_skip: int = 0) -> Tensor:
    """Rotate adjacent channel pairs of ``x`` by the per-token angles.

    Args:
        x: ``(..., N, D)`` with ``N = repeat * len(cos) + n_tail_skip``.
        cos, sin: ``(N_frame, D/2)`` angles of one frame.
        repeat: number of memory frames sharing the table (SAM 2's ``rope_k_repeat``).
        n_tail_skip: trailing tokens left untouched (object-pointer tokens come last).

    Returns:
        Tensor with the shape of ``x``.
    """
    n_rot = x.shape[-2] - n_tail_skip
    if n_rot != repeat * cos.shape[0] or x.shape[-1] != 2 * cos.shape[1]:
        raise ValueError(
            f"x: expected (..., {repeat}*{cos.shape[0]}+{n_tail_skip}, {2 * cos.shape[1]}) tokens, got {tuple(x.shape)}"
        )
    rot, tail = x[..., :n_rot, :], x[..., n_rot:, :]
    if repeat > 1:
        cos, sin = cos.repeat(repeat, 1), sin.repeat(repeat, 1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    even, odd = rot[..., 0::2], rot[..., 1::2]
    out = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
    return torch.cat([out, tail], dim=-2) if n_tail_skip else out


def sine_pe_2d(
    channels: int,
    h: int,
    w: int,
    *,
    temperature: float = 1e4,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """SAM 2's normalised sine position encoding ``(channels, h, w)``: y-encoding first, then x.

    Coordinates are ``(i + 1) / (H + 1e-6) * 2 pi``; sin and cos are interleaved per frequency.
    """
    if channels % 4 != 0:
        raise ValueError(f"channels: expected a multiple of 4, got {channels}")
    npf = channels // 2
    y = (torch.arange(h, device=device, dtype=torch.float64) + 1) / (h + 1e-6) * 2 * math.pi
    x = (torch.arange(w, device=device, dtype=torch.float64) + 1) / (w + 1e-6) * 2 * math.pi
    dim_t = temperature ** (2 * torch.div(torch.arange(npf, device=device), 2, rounding_mode="floor") / npf)
    pos_x = x[None, :, None] / dim_t  # (1, W, npf)
    pos_y = y[:, None, None] / dim_t  # (H, 1, npf)
    pos_x = torch.stack([pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()], dim=-1).flatten(-2).expand(h, w, npf)
    pos_y = torch.stack([pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()], dim=-1).flatten(-2).expand(h, w, npf)
    return torch.cat([pos_y, pos_x], dim=-1).permute(2, 0, 1).to(dtype)


@functools.lru_cache(maxsize=256)
def cached_rope_table(
    head_dim: int,
    grid: tuple[int, int],
    n_nope_head: int,
    theta: float,
    scale: float,
    offset: float,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """:func:`axial_rope_cos_sin` + :func:`frame_rope_table`, memoised per shape and device.

    Otherwise every attention call rebuilds the tables in float64. The returned tensors are shared between
    callers: treat them as read-only. They are built outside inference mode, so a table first made under
    ``torch.inference_mode()`` can still be saved for backward by later training.
    """
    with torch.inference_mode(False):
        cos, sin = axial_rope_cos_sin(
            head_dim, grid[0], grid[1], theta, device=device, dtype=dtype, scale=scale, offset=offset
        )
        return frame_rope_table(cos, sin, n_nope_head)


@functools.lru_cache(maxsize=64)
def cached_sine_pe_2d(channels: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """:func:`sine_pe_2d` memoised per shape and device (built outside inference mode); the returned tensor is
    shared: treat it as read-only."""
    with torch.inference_mode(False):
        return sine_pe_2d(channels, h, w, device=device, dtype=dtype)
