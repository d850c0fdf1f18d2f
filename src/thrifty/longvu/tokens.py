"""The kept-token container with provenance, and the grid pooling every compressor shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def grid_side(n_tokens: int) -> int:
    """Side of the square token grid of one frame; ``ValueError`` when ``n_tokens`` is not a square."""
    side = math.isqrt(n_tokens)
    if side * side != n_tokens or side == 0:
        raise ValueError(f"tokens: expected a square number of tokens per frame (H*W), got {n_tokens}")
    return side


def pool_grid(tokens: Tensor, side: int) -> Tensor:
    """Area-average a frame's square grid down to ``side x side`` tokens.

    Args:
        tokens: ``(T, P, D)`` with ``P = s * s`` and ``s`` divisible by ``side``.
        side: output grid side.

    Returns:
        ``(T, side * side, D)``, row-major positions.
    """
    n_frames, n_tok, dim = tokens.shape
    full = grid_side(n_tok)
    if side == full:
        return tokens
    if side <= 0 or full % side:
        raise ValueError(f"side: expected a positive divisor of the grid side {full}, got {side}")
    grid = tokens.transpose(1, 2).reshape(n_frames, dim, full, full)
    pooled = F.avg_pool2d(grid, full // side)
    return pooled.reshape(n_frames, dim, side * side).transpose(1, 2)


@dataclass
class TokenSet:
    """Kept tokens of one video and where each came from.

    Attributes:
        tokens: ``(M, D)`` kept (or merged) tokens in temporal order.
        frame_ids: ``(M,)`` source frame of each token (for a merged token: the frame of the token it was
            merged into).
        pos_ids: ``(M,)`` row-major position in the frame's grid at the token's resolution.
        resolution: ``(M,)`` side of the grid the token lives on (``s`` = full, ``s/2`` = low-res, 1 = pooled).
        sizes: ``(M,)`` float, how many raw tokens the token stands for (1 for a full-res kept token).
        stats: free-form numbers about the compression (regime, frames kept, ...).
    """

    tokens: Tensor
    frame_ids: Tensor
    pos_ids: Tensor
    resolution: Tensor
    sizes: Tensor
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @classmethod
    def from_frames(cls, tokens: Tensor, frames: Tensor, side: int, raw_side: int) -> TokenSet:
        """Every token of ``frames`` of an already pooled ``(T', side*side, D)`` tensor ``tokens``."""
        per = side * side
        dev = tokens.device
        frame_ids = frames.repeat_interleave(per)
        return cls(
            tokens=tokens.reshape(-1, tokens.shape[-1]),
            frame_ids=frame_ids,
            pos_ids=torch.arange(per, device=dev).repeat(frames.numel()),
            resolution=torch.full_like(frame_ids, side),
            sizes=torch.full((frame_ids.numel(),), float((raw_side // side) ** 2), device=dev),
        )

    def select(self, index: Tensor) -> TokenSet:
        """The sub-set at ``index`` (1-D long), stats kept."""
        return TokenSet(
            self.tokens[index],
            self.frame_ids[index],
            self.pos_ids[index],
            self.resolution[index],
            self.sizes[index],
            dict(self.stats),
        )

    def sorted(self) -> TokenSet:
        """Temporal order: by frame, then coarse-to-fine resolution, then position (stable)."""
        key = (self.frame_ids * 1024 + self.resolution) * 1_000_000 + self.pos_ids
        return self.select(torch.sort(key, stable=True).indices)

    @staticmethod
    def cat(parts: list[TokenSet]) -> TokenSet:
        """Concatenate token sets (stats of the first)."""
        return TokenSet(
            *(torch.cat([getattr(p, name) for p in parts]) for name in _FIELDS),
            stats=dict(parts[0].stats),
        )

    def gather(self, video: Tensor) -> Tensor:
        """Re-read every token from ``video`` ``(T, P, D)`` by its provenance (pool to its resolution, index).

        For a pure-selection compressor this reproduces :attr:`tokens` exactly.
        """
        out = torch.empty_like(self.tokens)
        for side in self.resolution.unique().tolist():
            rows = (self.resolution == side).nonzero().flatten()
            pooled = pool_grid(video, int(side))
            out[rows] = pooled[self.frame_ids[rows], self.pos_ids[rows]]
        return out

    def to(self, device: torch.device | str) -> TokenSet:
        return TokenSet(*(getattr(self, name).to(device) for name in _FIELDS), stats=dict(self.stats))


_FIELDS = ("tokens", "frame_ids", "pos_ids", "resolution", "sizes")


def check_video(tokens: Tensor, budget: int, query: Tensor | None = None) -> int:
    """Validate a ``(T, H*W, D)`` video and its budget before any work; returns the grid side.

    Raises:
        ValueError: naming ``tokens``, ``budget`` or ``query`` and what was expected.
    """
    if tokens.dim() != 3:
        raise ValueError(f"tokens: expected a (T, H*W, D) tensor, got shape {tuple(tokens.shape)}")
    side = grid_side(tokens.shape[1])
    total = tokens.shape[0] * tokens.shape[1]
    if not 0 < budget <= total:
        raise ValueError(f"budget: expected 1..{total} (the input's T*H*W tokens), got {budget}")
    if query is not None and (query.dim() != 2 or query.shape[-1] != tokens.shape[-1]):
        raise ValueError(
            f"query: expected an (L, D) embedding with D={tokens.shape[-1]} (the token dim), got {tuple(query.shape)}"
        )
    return side
