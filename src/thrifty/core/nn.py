"""Transformer building blocks shared by the LM-based methods.

Shapes: ``B`` batch, ``T`` query length, ``S`` key length, ``H`` query heads, ``Hkv`` key/value heads,
``D`` head dim, ``C`` model width.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AttnImpl = Literal["sdpa", "naive"]


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain: ``x / rms(x) * weight`` (computed in float32)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x32 = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(dtype) * self.weight


class MatmulRMSNorm(RMSNorm):
    """:class:`RMSNorm` whose mean of squares is a matmul with a ones vector (same parameters and output up to
    float rounding).

    The reason is deployment: XNNPACK does not take ``aten.mean.dim`` over the last axis of a 3-D tensor, which
    would leave two non-delegated ops per block in an ExecuTorch program.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps)
        self.register_buffer("ones", torch.ones(1, dim), persistent=False)
        self.inv_dim = 1.0 / dim  # a Python float: exact in any dtype the model is cast to

    @classmethod
    def from_rmsnorm(cls, norm: RMSNorm) -> MatmulRMSNorm:
        """A copy of ``norm`` (its gain shared) computed the matmul way."""
        out = cls(norm.weight.shape[0], norm.eps).to(norm.weight.device)
        out.weight = norm.weight
        return out

    def forward(self, x: Tensor) -> Tensor:
        mean_sq = F.linear(x * x, self.ones.to(x.dtype)) * self.inv_dim
        return x * torch.rsqrt(mean_sq + self.eps) * self.weight


class RotaryEmbedding(nn.Module):
    """Rotary position tables: ``positions (T,) -> (cos, sin)``, each ``(T, head_dim // 2)``."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim: expected an even number for RoPE, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        angles = positions.to(self.inv_freq.device, torch.float32)[:, None] * self.inv_freq[None, :]
        return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x (B, H, T, D)`` by the tables ``(T, D // 2)``; half-split (Llama/NeoX) convention."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def _expand_kv(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Repeat key/value heads so that ``Hkv`` matches ``H`` (grouped-query attention)."""
    n_heads, n_kv = q.shape[1], k.shape[1]
    if n_heads % n_kv:
        raise ValueError(f"k: expected a number of heads dividing {n_heads}, got {n_kv}")
    if n_heads != n_kv:
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        v = v.repeat_interleave(n_heads // n_kv, dim=1)
    return k, v


def _combined_mask(
    t: int, s: int, causal: bool, mask: Tensor | None, device: torch.device, dtype: torch.dtype
) -> Tensor | None:
    """One additive float mask (or None) from a causal flag and a bool/float mask."""
    out: Tensor | None = None
    if causal:
        # The last t queries sit at key positions s-t .. s-1 (decoding with a cache).
        keep = torch.ones(t, s, dtype=torch.bool, device=device).tril(diagonal=s - t)
        out = torch.zeros(t, s, dtype=dtype, device=device).masked_fill(~keep, float("-inf"))
    if mask is not None:
        extra = (
            mask
            if mask.dtype != torch.bool
            else torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, float("-inf"))
        )
        out = extra.to(dtype) if out is None else out + extra.to(dtype)
    return out


def attention(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, mask: Tensor | None = None, impl: AttnImpl = "sdpa"
) -> Tensor:
    """Scaled dot-product attention with GQA.

    Args:
        q: ``(B, H, T, D)``; k, v: ``(B, Hkv, S, D)`` with ``Hkv`` dividing ``H``.
        causal: query ``i`` of the last ``T`` attends keys ``<= S - T + i``.
        mask: bool (True = may attend) or additive float, broadcastable to ``(B, H, T, S)``.
        impl: ``"sdpa"`` (fused) or ``"naive"`` (explicit softmax reference).

    Returns:
        ``(B, H, T, D)``.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v: expected 4-D (B, H, T, D) tensors, got {q.dim()}, {k.dim()}, {v.dim()}")
    if impl == "naive":
        return naive_attention(q, k, v, causal=causal, mask=mask)
    if impl != "sdpa":
        raise ValueError(f"impl: expected 'sdpa' or 'naive', got {impl!r}")
    k, v = _expand_kv(q, k, v)
    t, s = q.shape[2], k.shape[2]
    if mask is None and (not causal or t == s):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    bias = _combined_mask(t, s, causal, mask, q.device, q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def naive_attention(q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, mask: Tensor | None = None) -> Tensor:
    """Reference attention: explicit ``softmax(q k^T / sqrt(D) + mask) v``; same shapes as :func:`attention`."""
    k, v = _expand_kv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    bias = _combined_mask(q.shape[2], k.shape[2], causal, mask, q.device, q.dtype)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1) @ v


class SwiGLU(nn.Module):
    """Gated MLP ``down(silu(gate(x)) * up(x))`` with hidden width ``hidden``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def default_mlp_hidden(dim: int) -> int:
    """Llama's 8/3 * dim, rounded up to a multiple of 8."""
    return 8 * math.ceil(8 * dim / 3 / 8)


class KVCache:
    """Per-layer key/value cache that grows by concatenation along the time axis."""

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add ``k, v (B, Hkv, T, D)``; returns all cached keys and values ``(B, Hkv, S, D)``."""
        self.k = k if self.k is None else torch.cat((self.k, k), dim=2)
        self.v = v if self.v is None else torch.cat((self.v, v), dim=2)
        return self.k, self.v


class Attention(nn.Module):
    """Multi-head attention with RoPE, GQA and an optional KV cache."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        causal: bool = True,
        rope_base: float = 10000.0,
        impl: AttnImpl = "sdpa",
    ) -> None:
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if dim % n_heads:
            raise ValueError(f"n_heads: expected a divisor of dim={dim}, got {n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads: expected a divisor of n_heads={n_heads}, got {n_kv_heads}")
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        self.causal, self.impl = causal, impl
        self.q_proj = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, dim, bias=False)
        self.rope = RotaryEmbedding(self.head_dim, rope_base)

    def forward(
        self,
        x: Tensor,
        *,
        start_pos: int = 0,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """``x (B, T, C)`` -> ``(B, T, C)``.

        Token ``i`` sits at RoPE position ``start_pos + i``, or at ``positions[i]`` when the int64
        tensor ``positions (T,)`` is given (e.g. two copies of a sequence sharing position ids).
        """
        b, t, _ = x.shape
        if positions is None:
            positions = torch.arange(start_pos, start_pos + t, device=x.device)
        elif positions.shape != (t,):
            raise ValueError(f"positions: expected shape ({t},), got {tuple(positions.shape)}")
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rope(positions)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.append(k, v)
        out = attention(q, k, v, causal=self.causal, mask=mask, impl=self.impl)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        mlp_hidden: int | None = None,
        *,
        causal: bool = True,
        norm_eps: float = 1e-6,
        rope_base: float = 10000.0,
        impl: AttnImpl = "sdpa",
    ) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim, norm_eps)
        self.attn = Attention(dim, n_heads, n_kv_heads, causal=causal, rope_base=rope_base, impl=impl)
        self.mlp_norm = RMSNorm(dim, norm_eps)
        self.mlp = SwiGLU(dim, mlp_hidden or default_mlp_hidden(dim))

    def forward(
        self,
        x: Tensor,
        *,
        start_pos: int = 0,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        x = x + self.attn(self.attn_norm(x), start_pos=start_pos, positions=positions, cache=cache, mask=mask)
        return x + self.mlp(self.mlp_norm(x))
