"""A Llama-style LM (RMSNorm, SwiGLU, RoPE, GQA) whose layers may skip attention.

Attention is written as ``matmul + softmax`` with a precomputed additive causal mask so that the whole
graph lowers to XNNPACK (``F.scaled_dot_product_attention(is_causal=True)`` lowers to mask-building
ops that XNNPACK does not take, which fragments the graph). ``attn_impl="sdpa"`` is the faster eager
path used for training; both are tested equal.

Shapes: ``B`` batch, ``T`` tokens, ``C`` width, ``H``/``Hkv`` query/KV heads, ``D`` head dim, ``V`` vocab.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.nn import MatmulRMSNorm, RotaryEmbedding, SwiGLU, apply_rope
from thrifty.flashnas.config import FlashLMConfig

AttnImpl = Literal["matmul", "sdpa"]


class FlashAttention(nn.Module):
    """GQA attention with RoPE tables and an additive mask passed in by the model."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, head_dim: int) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def qkv(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B, T, C)`` -> rotated ``q (B, H, T, D)``, ``k (B, Hkv, T, D)`` and ``v (B, Hkv, T, D)``."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, impl: AttnImpl) -> Tensor:
        """``q (B, H, T, D)``, ``k, v (B, Hkv, S, D)`` -> ``(B, T, H * D)``.

        ``mask`` is additive, broadcastable to ``(B * Hkv, G * T, S)``: the ``(T, S)`` mask stacked
        ``G = H / Hkv`` times. With ``impl="matmul"`` the ``G`` query heads of a KV group are folded
        into the rows, so GQA needs no ``repeat_interleave`` (whose expand ops XNNPACK does not take).
        ``impl="sdpa"`` ignores ``mask`` and is causal (prefill only, ``T == S``).
        """
        b, _, t, d = q.shape
        if impl == "sdpa":
            group = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # Heads h = kv * G + g are contiguous, so (B, H, T, D) -> (B * Hkv, G * T, D) is a view.
            # 3-D bmm, because a 4-D matmul decomposes into expand ops that XNNPACK does not take.
            s = k.shape[2]
            qg = q.reshape(b * self.n_kv_heads, -1, d)
            scores = torch.bmm(qg, k.reshape(-1, s, d).transpose(1, 2)) * (1.0 / math.sqrt(d))
            if mask is not None:
                scores = scores + mask
            out = torch.bmm(scores.softmax(dim=-1), v.reshape(-1, s, d)).reshape(b, self.n_heads, t, d)
        return out.transpose(1, 2).reshape(b, t, self.n_heads * d)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, impl: AttnImpl) -> Tensor:
        q, k, v = self.qkv(x, cos, sin)
        return self.o_proj(self.attend(q, k, v, mask, impl))


class FlashBlock(nn.Module):
    """Pre-norm block; with ``has_attn=False`` it is ``x + FFN(RMSNorm(x))`` only (no attention modules)."""

    def __init__(self, cfg: FlashLMConfig, layer: int) -> None:
        super().__init__()
        self.has_attn = bool(cfg.attn[layer])
        if self.has_attn:
            self.attn_norm = MatmulRMSNorm(cfg.d_model, cfg.norm_eps)
            self.attn = FlashAttention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim)
        self.mlp_norm = MatmulRMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn[layer])

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, impl: AttnImpl) -> Tensor:
        """``x (B, T, C) -> (B, T, C)``."""
        if self.has_attn:
            x = x + self.attn(self.attn_norm(x), cos, sin, mask, impl)
        return x + self.mlp(self.mlp_norm(x))


class FlashLM(nn.Module):
    """Embedding, blocks (some FFN-only), final RMSNorm and a head tied to the embedding.

    Args:
        cfg: the architecture.
        attn_impl: ``"matmul"`` (export-friendly, explicit mask) or ``"sdpa"`` (fused, eager training).
    """

    def __init__(self, cfg: FlashLMConfig, attn_impl: AttnImpl = "sdpa") -> None:
        super().__init__()
        if attn_impl not in ("matmul", "sdpa"):
            raise ValueError(f"attn_impl: expected 'matmul' or 'sdpa', got {attn_impl!r}")
        self.cfg, self.attn_impl = cfg, attn_impl
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(FlashBlock(cfg, i) for i in range(cfg.n_layers))
        self.norm = MatmulRMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        rope = RotaryEmbedding(cfg.head_dim, cfg.rope_base)
        cos, sin = rope(torch.arange(cfg.max_seq_len))
        # Tables are buffers (constants after export) so no trig op has to be delegated.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(_init_weights)

    def forward(self, idx: Tensor, mask: Tensor | None = None) -> Tensor:
        """``idx (B, T)`` token ids -> logits ``(B, T, V)`` (causal, positions 0..T-1).

        ``mask``: optional precomputed ``(G * T, T)`` additive mask (see :func:`causal_mask`) for the
        ``"matmul"`` path; export wrappers pass a buffer so that no mask op remains in the graph.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx: expected (B, T) token ids, got shape {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.cfg.max_seq_len:
            raise ValueError(f"idx: expected at most max_seq_len={self.cfg.max_seq_len} tokens, got {t}")
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        if mask is None and self.attn_impl == "matmul":
            mask = causal_mask(t, self.cfg.n_heads // self.cfg.n_kv_heads, self.embed.weight.dtype, idx.device)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin, mask, self.attn_impl)
        return self.head(self.norm(x))

    def hidden_states(self, idx: Tensor) -> list[Tensor]:
        """Residual stream before every block and after the last: ``L + 1`` tensors ``(B, T, C)``."""
        t = idx.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        states = [self.embed(idx)]
        for block in self.blocks:
            states.append(block(states[-1], cos, sin, None, "sdpa"))
        return states

    def num_params(self) -> int:
        """Unique parameters (the tied head counts once)."""
        return sum(p.numel() for p in self.parameters())


def causal_mask(t: int, group: int, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """Additive causal mask ``(group * T, T)``: the ``(T, T)`` mask stacked once per query head of a group.

    0 on and below the diagonal, a large negative number above (finite, so softmax stays NaN-free).
    """
    keep = torch.ones(t, t, dtype=torch.bool, device=device).tril()
    mask = torch.zeros(t, t, dtype=dtype, device=device).masked_fill(~keep, torch.finfo(dtype).min / 2)
    return mask.repeat(group, 1)


class PrefillExport(nn.Module):
    """Prefill at a fixed length ``T`` with the causal mask stored as a buffer (an export wrapper).

    ``forward(idx (B, T)) -> logits (B, T, V)`` with the shared weights of ``model``.
    """

    def __init__(self, model: FlashLM, seq_len: int) -> None:
        super().__init__()
        if not 0 < seq_len <= model.cfg.max_seq_len:
            raise ValueError(f"seq_len: expected 1..{model.cfg.max_seq_len}, got {seq_len}")
        self.model, self.seq_len = model, seq_len
        group = model.cfg.n_heads // model.cfg.n_kv_heads
        w = model.embed.weight
        self.register_buffer("mask", causal_mask(seq_len, group, w.dtype, w.device), persistent=False)

    def forward(self, idx: Tensor) -> Tensor:
        return self.model(idx, mask=self.mask)


class StaticKVDecoder(nn.Module):
    """One-token decode step with a static KV cache, for export (``forward`` mutates the cache buffers).

    Only attention layers own cache buffers ``(B, Hkv, S_max, D)``; FFN-only layers have none.
    Each step attends over the whole static cache with a mask row, so its cost does not depend on
    the position (the standard static-cache design of ExecuTorch's Llama export).

    Args:
        model: the LM (its weights are shared, not copied).
        max_kv_len: cache length ``S_max``.
        batch: batch size ``B`` of the cache.
    """

    def __init__(self, model: FlashLM, max_kv_len: int, batch: int = 1) -> None:
        super().__init__()
        cfg = model.cfg
        if not 0 < max_kv_len <= cfg.max_seq_len:
            raise ValueError(f"max_kv_len: expected 1..{cfg.max_seq_len}, got {max_kv_len}")
        self.model, self.max_kv_len = model, max_kv_len
        self.cache_layers = [i for i, block in enumerate(model.blocks) if block.has_attn]
        dtype, device = model.embed.weight.dtype, model.embed.weight.device
        shape = (batch, cfg.n_kv_heads, max_kv_len, cfg.head_dim)
        for i in self.cache_layers:
            self.register_buffer(f"k_cache_{i}", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
            self.register_buffer(f"v_cache_{i}", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        group = cfg.n_heads // cfg.n_kv_heads
        # Row p of the causal mask, stacked once per query head of a group: (S_max, G, S_max), so that
        # index_select gives a (1, G, S_max) mask that broadcasts over (B * Hkv, G, S_max) scores.
        rows = causal_mask(max_kv_len, 1, dtype, device)
        self.register_buffer("mask_rows", rows[:, None, :].repeat(1, group, 1), persistent=False)

    def reset(self) -> None:
        for buf in self.kv_buffers():
            buf.zero_()

    def kv_buffers(self) -> list[Tensor]:
        return [getattr(self, f"{kind}_cache_{i}") for i in self.cache_layers for kind in ("k", "v")]

    def forward(self, token: Tensor, pos: Tensor) -> Tensor:
        """``token (B, 1)`` at position ``pos`` (a ``(1,)`` long tensor) -> ``(B, 1, V)`` logits."""
        m = self.model
        cos, sin = m.rope_cos.index_select(0, pos), m.rope_sin.index_select(0, pos)
        mask = self.mask_rows.index_select(0, pos)
        x = m.embed(token)
        for i, block in enumerate(m.blocks):
            if block.has_attn:
                q, k, v = block.attn.qkv(block.attn_norm(x), cos, sin)
                k_cache, v_cache = getattr(self, f"k_cache_{i}"), getattr(self, f"v_cache_{i}")
                k_cache.index_copy_(2, pos, k)
                v_cache.index_copy_(2, pos, v)
                x = x + block.attn.o_proj(block.attn.attend(q, k_cache, v_cache, mask, "matmul"))
            x = x + block.mlp(block.mlp_norm(x))
        return m.head(m.norm(x))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
