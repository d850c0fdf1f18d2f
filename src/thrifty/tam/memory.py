"""Memory encoder and the bounded ring-buffer memory bank (SAM 2's
``_prepare_memory_conditioned_features``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thrifty.tam.attention import MemoryLayout
from thrifty.tam.encoder import LayerNorm2d


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))  # layer scale

    def forward(self, x: Tensor) -> Tensor:
        y = self.mlp(self.norm(self.dw(x)).permute(0, 2, 3, 1)) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class MemoryEncoder(nn.Module):
    """Fuse the RAW frame feature with the predicted mask: ``(B, C, H, W), (B, 1, 4H, 4W) -> (B, Cm, H, W)``.

    The mask enters as ``sigmoid(logits) * 20 - 10``; on frames judged empty ``no_obj_embed`` is added
    (SAM 2.1).
    """

    def __init__(self, dim: int, mem_dim: int, n_fuser: int = 2) -> None:
        super().__init__()
        self.mask_down = nn.Sequential(
            nn.Conv2d(1, 4, 3, 2, 1),
            LayerNorm2d(4),
            nn.GELU(),
            nn.Conv2d(4, 16, 3, 2, 1),
            LayerNorm2d(16),
            nn.GELU(),
            nn.Conv2d(16, dim, 1),
        )
        self.pix_proj = nn.Conv2d(dim, dim, 1)
        self.fuser = nn.Sequential(*[_ConvNeXtBlock(dim) for _ in range(n_fuser)])
        self.out_proj = nn.Conv2d(dim, mem_dim, 1)
        self.no_obj_embed = nn.Parameter(torch.zeros(mem_dim))

    def forward(self, feat: Tensor, mask_logits: Tensor, obj_logit: Tensor) -> Tensor:
        mask_in = torch.sigmoid(mask_logits) * 20 - 10
        x = self.pix_proj(feat) + self.mask_down(mask_in)
        mem = self.out_proj(self.fuser(x))
        absent = (obj_logit <= 0).to(mem.dtype).view(-1, 1, 1, 1)
        return mem + absent * self.no_obj_embed.view(1, -1, 1, 1)


@dataclass
class _Entry:
    frame_idx: int
    tokens: Tensor  # (B, N, Cm)
    pos: Tensor  # (B, N, Cm), spatial position only (temporal embedding added at gather time)


@dataclass
class MemoryBatch:
    """Gathered memory: ``tokens``/``pos`` ``(B, Nk, Cm)`` and their :class:`MemoryLayout`."""

    tokens: Tensor
    pos: Tensor
    layout: MemoryLayout
    tpos_indices: list[int]


class MemoryBank:
    """Bounded memory: conditioning frames, the most recent frames and object pointers.

    Never holds more than ``max_cond_frames`` + ``num_maskmem - 1`` spatial memories and ``max_obj_ptrs``
    pointers (oldest are dropped), whatever the video length.

    Args:
        num_maskmem: SAM 2's 7 = conditioning + 6 recent slots (temporal embedding table size).
        max_obj_ptrs: pointers kept (SAM 2: 16). max_cond_frames: prompted frames kept (latest wins).
        grid: row-major grid of the RoPE'd tokens of each stored frame. n_nope_per_frame: leading unrotated
            tokens per frame (EdgeTAM global latents). grid_scale_offset: RoPE coordinates of the grid
            (see :class:`~thrifty.tam.attention.MemoryLayout`).
    """

    def __init__(
        self,
        num_maskmem: int = 7,
        max_obj_ptrs: int = 16,
        grid: tuple[int, int] = (16, 16),
        n_nope_per_frame: int = 0,
        max_cond_frames: int = 1,
        grid_scale_offset: tuple[float, float] = (1.0, 0.0),
    ) -> None:
        if num_maskmem < 1 or max_obj_ptrs < 0 or max_cond_frames < 1:
            raise ValueError(
                "num_maskmem, max_cond_frames: expected >= 1 and max_obj_ptrs >= 0, got "
                f"{num_maskmem}, {max_cond_frames}, {max_obj_ptrs}"
            )
        self.num_maskmem, self.max_obj_ptrs = num_maskmem, max_obj_ptrs
        self.grid, self.n_nope = tuple(grid), n_nope_per_frame
        self.grid_scale_offset = grid_scale_offset
        self.cond: deque[_Entry] = deque(maxlen=max_cond_frames)
        self.recent: deque[_Entry] = deque(maxlen=max(num_maskmem - 1, 0) or None)
        # as SAM 2: conditioning-frame pointers are always kept, recent ones fill the remaining slots
        n_cond_ptrs = min(max_cond_frames, max_obj_ptrs)
        self._cond_ptrs: deque[tuple[int, Tensor]] = deque(maxlen=n_cond_ptrs)
        self._recent_ptrs: deque[tuple[int, Tensor]] = deque(maxlen=max_obj_ptrs - n_cond_ptrs)
        if num_maskmem == 1:
            self.recent = deque(maxlen=0)

    @property
    def ptrs(self) -> list[tuple[int, Tensor]]:
        """Stored ``(frame_idx, pointer (B, C))``: conditioning frames first, then recent frames."""
        return [*self._cond_ptrs, *self._recent_ptrs]

    def __len__(self) -> int:
        return len(self.cond) + len(self.recent)

    def add(self, frame_idx: int, tokens: Tensor, pos: Tensor, ptr: Tensor, is_cond: bool) -> None:
        """Store one frame's memory ``(B, N, Cm)`` + position and its object pointer ``(B, C)``."""
        expected = self.n_nope + self.grid[0] * self.grid[1]
        if tokens.shape[1] != expected or tokens.shape != pos.shape:
            raise ValueError(
                f"tokens, pos: expected (B, {expected}, Cm) each, got {tuple(tokens.shape)}, {tuple(pos.shape)}"
            )
        (self.cond if is_cond else self.recent).append(_Entry(frame_idx, tokens, pos))
        (self._cond_ptrs if is_cond else self._recent_ptrs).append((frame_idx, ptr))

    def gather(self, frame_idx: int, tpos: Tensor) -> MemoryBatch:
        """Memory for frame ``frame_idx``: ``[cond spatial ; recent oldest->newest ; pointer tokens]``.

        Args:
            frame_idx: the current frame (only strictly earlier memories are used).
            tpos: ``(num_maskmem, Cm)`` temporal embeddings; conditioning frames use the LAST index, a recent
                frame ``t_pos`` frames back uses ``num_maskmem - 1 - t_pos`` (so ``t-1`` uses index 0).
        """
        entries, indices = [], []
        for e in self.cond:
            if e.frame_idx < frame_idx:
                entries.append(e)
                indices.append(self.num_maskmem - 1)
        for e in self.recent:
            t_pos = frame_idx - e.frame_idx
            if 1 <= t_pos:
                entries.append(e)
                indices.append(max(self.num_maskmem - 1 - t_pos, 0))
        if not entries:
            raise ValueError(f"frame_idx: no memory earlier than frame {frame_idx}; prompt a frame first")
        tokens = torch.cat([e.tokens for e in entries], 1)
        pos = torch.cat([e.pos + tpos[i] for e, i in zip(entries, indices, strict=True)], 1)
        ptr_tokens = self._pointer_tokens(frame_idx, tokens.shape[-1])
        n_ptr = 0 if ptr_tokens is None else ptr_tokens.shape[1]
        if ptr_tokens is not None:
            tokens = torch.cat([tokens, ptr_tokens], 1)
            pos = torch.cat([pos, torch.zeros_like(ptr_tokens)], 1)  # SAM 2.0 flag set: no pointer temporal PE
        layout = MemoryLayout(len(entries), self.grid, self.n_nope, n_ptr, *self.grid_scale_offset)
        return MemoryBatch(tokens, pos, layout, indices)

    def _pointer_tokens(self, frame_idx: int, mem_dim: int) -> Tensor | None:
        ptrs = [p for idx, p in self.ptrs if idx < frame_idx]
        if not ptrs:
            return None
        stacked = torch.stack(ptrs, 1)  # (B, P, C)
        b, n, c = stacked.shape
        if c % mem_dim:
            raise ValueError(f"obj_ptr: width {c} is not a multiple of the memory width {mem_dim}")
        return stacked.reshape(b, n * (c // mem_dim), mem_dim)  # each pointer split into C/Cm tokens
