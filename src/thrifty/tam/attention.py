"""Memory attention: RoPE self/cross-attention with a pluggable cross-attention (full or pooled).

``full`` is SAM 2's ``RoPEAttention``; ``pooled`` is EfficientTAM's ``EfficientRoPEAttention1``: the
projected,
RoPE-rotated spatial keys and values of every memory frame are ``s x s`` average-pooled and the pooled
columns get a ``ln(s^2)`` logit bias, so each pooled token stands for the ``s^2`` tokens it replaces.
Object-pointer tokens (last) are never rotated, pooled or biased. EdgeTAM's compressed memories use ``full``
cross-attention over a :class:`MemoryLayout` whose frames start with ``n_nope_per_frame`` unrotated latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.nn import attention
from thrifty.tam.rope import apply_axial_rope, cached_rope_table

CrossMode = Literal["full", "pooled"]
AttnImpl = Literal["sdpa", "naive"]


@dataclass(frozen=True)
class MemoryLayout:
    """How the memory tokens of one cross-attention call are laid out.

    Tokens are ``[frame_0 ; ... ; frame_{F-1} ; pointer tokens]``; each frame is ``n_nope_per_frame``
    unrotated tokens followed by ``grid[0] * grid[1]`` tokens on a row-major grid whose RoPE coordinates are
    ``grid_scale * index + grid_offset`` (EdgeTAM officially uses 1, 0 for its patch latents even though the
    queries live on a 4x finer grid; [recon] ``scale = window``, ``offset = (window - 1) / 2`` puts each
    patch latent at its window centre in query coordinates).
    """

    n_frames: int
    grid: tuple[int, int]
    n_nope_per_frame: int = 0
    n_ptr_tokens: int = 0
    grid_scale: float = 1.0
    grid_offset: float = 0.0

    @property
    def tokens_per_frame(self) -> int:
        return self.n_nope_per_frame + self.grid[0] * self.grid[1]

    @property
    def n_tokens(self) -> int:
        return self.n_frames * self.tokens_per_frame + self.n_ptr_tokens


class RoPEAttention(nn.Module):
    """Multi-head attention with axial RoPE on queries and (spatial) keys.

    Args:
        dim: query/output width C. kv_dim: key/value input width (SAM 2: 64 memory channels).
        heads: attention heads (SAM 2 memory attention uses 1).
        cross: ``"full"`` or ``"pooled"`` (EfficientTAM); only used when called with a memory layout.
        pool: pooling window ``s`` of the pooled mode (EfficientTAM hard-codes 2).
        log_bias: add ``ln(s^2)`` to pooled logits (False reproduces the biased-away ablation).
        min_frames_to_pool: fewer memory frames than this use full attention (official: 2).
        theta: RoPE base. impl: ``"sdpa"`` (fused) or ``"naive"`` (explicit matmuls, FLOP-countable).
    """

    def __init__(
        self,
        dim: int,
        kv_dim: int | None = None,
        heads: int = 1,
        cross: CrossMode = "full",
        pool: int = 2,
        log_bias: bool = True,
        min_frames_to_pool: int = 2,
        theta: float = 1e4,
        impl: AttnImpl = "sdpa",
    ) -> None:
        super().__init__()
        if dim % heads != 0 or (dim // heads) % 4 != 0:
            raise ValueError(f"dim: expected dim/heads to be a multiple of 4, got dim={dim}, heads={heads}")
        if cross not in ("full", "pooled"):
            raise ValueError(f"cross: expected 'full' or 'pooled', got {cross!r}")
        if pool < 1:
            raise ValueError(f"pool: expected a positive window, got {pool}")
        kv_dim = kv_dim or dim
        self.heads, self.cross, self.pool, self.log_bias = heads, cross, pool, log_bias
        self.min_frames_to_pool, self.theta, self.impl = min_frames_to_pool, theta, impl
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(kv_dim, dim)
        self.v_proj, self.out_proj = nn.Linear(kv_dim, dim), nn.Linear(dim, dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _table(
        self, grid: tuple[int, int], n_nope: int, ref: Tensor, scale: float = 1.0, offset: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        return cached_rope_table(
            ref.shape[-1], tuple(grid), n_nope, self.theta, float(scale), float(offset), ref.device, torch.float32
        )

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, q_grid: tuple[int, int], layout: MemoryLayout | None = None
    ) -> Tensor:
        """Attend.

        Args:
            q: ``(B, Nq, C)`` on the row-major ``q_grid``. k, v: ``(B, Nk, Ckv)``.
            q_grid: ``(H, W)`` with ``H * W == Nq``.
            layout: memory layout of k/v; ``None`` means self-attention on ``q_grid``.

        Returns:
            ``(B, Nq, C)``.
        """
        if q.shape[1] != q_grid[0] * q_grid[1]:
            raise ValueError(f"q: expected {q_grid[0]}*{q_grid[1]} tokens for q_grid, got {q.shape[1]}")
        layout = layout or MemoryLayout(n_frames=1, grid=q_grid)
        if k.shape[1] != layout.n_tokens:
            raise ValueError(f"k: expected {layout.n_tokens} tokens for {layout}, got {k.shape[1]}")
        qh, kh, vh = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        qh = apply_axial_rope(qh, *self._table(q_grid, 0, qh))
        kh = apply_axial_rope(
            kh,
            *self._table(layout.grid, layout.n_nope_per_frame, kh, layout.grid_scale, layout.grid_offset),
            repeat=layout.n_frames,
            n_tail_skip=layout.n_ptr_tokens,
        )
        bias = None
        if self.cross == "pooled" and self.pool > 1 and layout.n_frames >= self.min_frames_to_pool:
            kh, vh, bias = pool_memory(kh, vh, layout, self.pool, self.log_bias)
        out = attention(qh, kh, vh, mask=bias, impl=self.impl)
        return self.out_proj(out.transpose(1, 2).flatten(2))


def pool_memory(
    k: Tensor, v: Tensor, layout: MemoryLayout, pool: int, log_bias: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """EfficientTAM pooling of rotated per-frame spatial keys/values, pointer tokens kept as they are.

    Args:
        k, v: ``(B, H, Nk, D)`` after projection and RoPE, laid out as ``layout`` (no unrotated head tokens).
        pool: window ``s``; both grid sides must be divisible by it.
        log_bias: whether the pooled columns get ``ln(s^2)``.

    Returns:
        ``(k_pooled, v_pooled, bias_row)`` with ``bias_row`` ``(1, Nk')``: ``ln s^2`` on pooled columns, 0 on
        pointer columns (added to the logits, which is what makes window-constant memories exact).
    """
    gh, gw = layout.grid
    if layout.n_nope_per_frame or gh % pool or gw % pool:
        raise ValueError(f"layout: pooled attention needs a plain grid divisible by pool={pool}, got {layout}")
    n_sp = layout.n_frames * gh * gw

    def _pool(x: Tensor) -> Tensor:
        b, h, _, d = x.shape
        grid = x[:, :, :n_sp].reshape(b * h * layout.n_frames, gh, gw, d).permute(0, 3, 1, 2)
        pooled = F.avg_pool2d(grid, kernel_size=pool, stride=pool)
        pooled = pooled.permute(0, 2, 3, 1).reshape(b, h, -1, d)
        return torch.cat([pooled, x[:, :, n_sp:]], dim=2)

    k_p, v_p = _pool(k), _pool(v)
    n_pooled = k_p.shape[2] - layout.n_ptr_tokens
    bias = torch.zeros(1, k_p.shape[2], dtype=k.dtype, device=k.device)
    if log_bias:
        bias[:, :n_pooled] = math.log(pool * pool)
    return k_p, v_p, bias


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memory, ReLU FFN (SAM 2)."""

    def __init__(
        self,
        dim: int,
        kv_dim: int,
        ffn: int,
        heads: int = 1,
        cross: CrossMode = "full",
        pool: int = 2,
        dropout: float = 0.0,
        impl: AttnImpl = "sdpa",
    ) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(dim, dim, heads, impl=impl)
        self.cross_attn = RoPEAttention(dim, kv_dim, heads, cross=cross, pool=pool, impl=impl)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, q_grid: tuple[int, int], memory: Tensor, memory_pos: Tensor, layout: MemoryLayout
    ) -> Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, h, q_grid))
        x = x + self.drop(self.cross_attn(self.norm2(x), memory + memory_pos, memory, q_grid, layout))
        return x + self.drop(self.ffn(self.norm3(x)))


class MemoryAttention(nn.Module):
    """SAM 2 memory attention: ``x0 = curr + 0.1 * curr_pos``, ``layers`` pre-norm layers, final LayerNorm.

    Args:
        dim: feature width C. kv_dim: memory width Cm. layers: depth. ffn: FFN width. heads: heads.
        cross: cross-attention kind (``"full"`` SAM 2, ``"pooled"`` EfficientTAM). pool: pooling window.
        impl: ``"sdpa"`` or ``"naive"``.
    """

    def __init__(
        self,
        dim: int,
        kv_dim: int,
        layers: int = 2,
        ffn: int = 256,
        heads: int = 1,
        cross: CrossMode = "full",
        pool: int = 2,
        dropout: float = 0.0,
        impl: AttnImpl = "sdpa",
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(dim, kv_dim, ffn, heads, cross, pool, dropout, impl) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def set_impl(self, impl: AttnImpl) -> None:
        """Switch every attention to ``"sdpa"`` or ``"naive"`` (the FLOP-countable path)."""
        for module in self.modules():
            if isinstance(module, RoPEAttention):
                module.impl = impl

    def forward(
        self,
        curr: Tensor,
        curr_pos: Tensor,
        q_grid: tuple[int, int],
        memory: Tensor,
        memory_pos: Tensor,
        layout: MemoryLayout,
    ) -> Tensor:
        """Condition the current frame on memory.

        Args:
            curr, curr_pos: ``(B, H*W, C)``. memory, memory_pos: ``(B, Nk, Cm)`` laid out as ``layout``.

        Returns:
            ``(B, H*W, C)`` memory-conditioned features.
        """
        x = curr + 0.1 * curr_pos
        for layer in self.layers:
            x = layer(x, q_grid, memory, memory_pos, layout)
        return self.norm(x)
