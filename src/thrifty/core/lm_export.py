"""Exportable forms of :class:`thrifty.core.lm.TransformerLM`: a static prefill and a static-KV decode step.

ExecuTorch runs a fixed graph, and an op that XNNPACK does not take falls back to a portable kernel, so a
latency measured on a fragmented graph measures the fallbacks. The eager LM builds its RoPE tables and
causal mask on the fly (arange, casts, comparisons) and its RMSNorm uses ``mean`` over the last axis; none
of that lowers to XNNPACK. These wrappers share the model's weights and keep everything position-dependent
in tables: RoPE cos/sin and additive mask rows indexed with ``index_select``, the matmul form of RMSNorm
(:class:`thrifty.core.nn.MatmulRMSNorm`), and GQA as 3-D batched matmuls. They compute the same function as
the eager model (tested equal).

- :class:`ExportablePrefill`: ``ids (B, T) -> logits (B, T, V)`` at a fixed ``T``.
- :class:`StaticKVDecodeStep`: ``(token (B, 1), pos (1,)) -> logits (B, 1, V)`` with per-layer buffers
  ``(B, Hkv, S_max, D)`` written in place by ``index_copy_``; each step attends over the whole buffer with a
  mask row, so it costs the same at every position (ExecuTorch's Llama static-cache design).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.lm import TransformerLM
from thrifty.core.nn import Attention, MatmulRMSNorm, apply_rope


def _causal_rows(n: int, device: torch.device) -> Tensor:
    """``(n, n)`` additive mask: row ``p`` is 0 on keys ``0..p`` and ``-inf`` after."""
    allowed = torch.ones(n, n, dtype=torch.bool, device=device).tril()
    return torch.zeros(n, n, device=device).masked_fill(~allowed, float("-inf"))


class _ExportableLM(nn.Module):
    """Shared pieces: the model (weights shared), matmul-form norms and RoPE tables up to ``length``."""

    def __init__(self, model: TransformerLM, length: int) -> None:
        super().__init__()
        if not model.cfg.causal:
            raise ValueError("model: expected a causal TransformerLM (cfg.causal=True)")
        self.model = model
        device = next(model.parameters()).device
        cos, sin = model.blocks[0].attn.rope(torch.arange(length, device=device))
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.attn_norms = nn.ModuleList(MatmulRMSNorm.from_rmsnorm(b.attn_norm) for b in model.blocks)
        self.mlp_norms = nn.ModuleList(MatmulRMSNorm.from_rmsnorm(b.mlp_norm) for b in model.blocks)
        self.final_norm = MatmulRMSNorm.from_rmsnorm(model.norm)

    @staticmethod
    def _qkv(attn: Attention, x: Tensor, rope: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B, T, C)`` -> rotated ``q (B, H, T, D)``, ``k (B, Hkv, T, D)`` and ``v (B, Hkv, T, D)``."""
        b, t, _ = x.shape
        q = attn.q_proj(x).view(b, t, attn.n_heads, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, t, attn.n_kv_heads, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, t, attn.n_kv_heads, attn.head_dim).transpose(1, 2)
        return apply_rope(q, *rope), apply_rope(k, *rope), v

    @staticmethod
    def _grouped_attention(attn: Attention, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """GQA as 3-D batched matmuls (a 4-D matmul exports with an ``expand`` that XNNPACK does not take).

        ``q (B, H, T, D)``, ``k, v (B, Hkv, S, D)``, ``mask`` additive, broadcastable to ``(B*Hkv, G*T, S)``
        -> ``(B, T, H*D)``. Query heads ``h`` of group ``h // G`` share key head ``h // G``.
        """
        b, _, t, d = q.shape
        rows, group = b * attn.n_kv_heads, attn.n_heads // attn.n_kv_heads
        queries = q.reshape(rows, group * t, d)
        scores = torch.bmm(queries, k.reshape(rows, -1, d).transpose(1, 2)) / math.sqrt(d) + mask
        out = torch.bmm(F.softmax(scores, dim=-1), v.reshape(rows, -1, d))  # (B*Hkv, G*T, D)
        return out.reshape(b, attn.n_heads, t, d).transpose(1, 2).reshape(b, t, attn.n_heads * d)


class ExportablePrefill(_ExportableLM):
    """``ids (B, seq_len) -> logits (B, seq_len, V)``, the eager model's function in an XNNPACK-friendly form."""

    def __init__(self, model: TransformerLM, seq_len: int) -> None:
        if seq_len <= 0:
            raise ValueError(f"seq_len: expected a positive length, got {seq_len}")
        super().__init__(model, seq_len)
        self.seq_len = seq_len
        group = model.blocks[0].attn.n_heads // model.blocks[0].attn.n_kv_heads
        rows = _causal_rows(seq_len, self.rope_cos.device)
        self.register_buffer("mask", rows.repeat(group, 1), persistent=False)  # (G*T, T): one block per head

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2 or ids.shape[1] != self.seq_len:
            raise ValueError(f"ids: expected (B, {self.seq_len}) token ids, got shape {tuple(ids.shape)}")
        m, rope = self.model, (self.rope_cos, self.rope_sin)
        x = m.embed(ids)
        for i, block in enumerate(m.blocks):
            q, k, v = self._qkv(block.attn, self.attn_norms[i](x), rope)
            x = x + block.attn.o_proj(self._grouped_attention(block.attn, q, k, v, self.mask))
            x = x + block.mlp(self.mlp_norms[i](x))
        return m.head(self.final_norm(x))


class StaticKVDecodeStep(_ExportableLM):
    """``forward(token (B, 1), pos (1,)) -> logits (B, 1, V)``; the KV buffers are mutated in place.

    Args:
        model: a causal :class:`TransformerLM` (weights shared).
        max_kv_len: cache length ``S_max``: positions ``0 .. S_max - 1`` can be decoded.
        batch: batch size ``B`` of the cache.
    """

    def __init__(self, model: TransformerLM, max_kv_len: int, batch: int = 1) -> None:
        if max_kv_len <= 0 or batch <= 0:
            raise ValueError(f"max_kv_len, batch: expected positive integers, got {max_kv_len}, {batch}")
        super().__init__(model, max_kv_len)
        self.max_kv_len = max_kv_len
        attn = model.blocks[0].attn
        shape = (batch, attn.n_kv_heads, max_kv_len, attn.head_dim)
        for i in range(len(model.blocks)):
            self.register_buffer(f"k_cache_{i}", torch.zeros(shape, device=self.rope_cos.device), persistent=False)
            self.register_buffer(f"v_cache_{i}", torch.zeros(shape, device=self.rope_cos.device), persistent=False)
        # (S_max, 1, S_max): index_select(pos) gives (1, 1, S_max), broadcasting over (B*Hkv, G, S_max).
        self.register_buffer("mask_rows", _causal_rows(max_kv_len, self.rope_cos.device)[:, None, :], persistent=False)

    def reset(self) -> None:
        """Zero every cache buffer (a new sequence)."""
        for name, buf in self.named_buffers():
            if "_cache_" in name:
                buf.zero_()

    def forward(self, token: Tensor, pos: Tensor) -> Tensor:
        """``token (B, 1)`` ids at position ``pos`` (a ``(1,)`` int64 tensor) -> ``(B, 1, V)`` logits."""
        m = self.model
        mask = self.mask_rows.index_select(0, pos)
        rope = (self.rope_cos.index_select(0, pos), self.rope_sin.index_select(0, pos))
        x = m.embed(token)
        for i, block in enumerate(m.blocks):
            q, k, v = self._qkv(block.attn, self.attn_norms[i](x), rope)
            k_cache, v_cache = getattr(self, f"k_cache_{i}"), getattr(self, f"v_cache_{i}")
            k_cache.index_copy_(2, pos, k)
            v_cache.index_copy_(2, pos, v)
            x = x + block.attn.o_proj(self._grouped_attention(block.attn, q, k_cache, v_cache, mask))
            x = x + block.mlp(self.mlp_norms[i](x))
        return m.head(self.final_norm(x))

    @torch.no_grad()
    def prefill(self, ids: Tensor) -> Tensor:
        """Feed ``ids (B, T)`` one token at a time from position 0 (a reset cache); returns ``(B, T, V)``."""
        if ids.shape[1] > self.max_kv_len:
            raise ValueError(f"ids: expected at most max_kv_len={self.max_kv_len} tokens, got {ids.shape[1]}")
        self.reset()
        steps = [self(ids[:, t : t + 1], torch.tensor([t], device=ids.device)) for t in range(ids.shape[1])]
        return torch.cat(steps, dim=1)


__all__ = ["ExportablePrefill", "StaticKVDecodeStep"]
