"""Slow, obviously-correct references for the tests.

- :func:`reference_forward`: the LM written out op by op (float64-friendly), with optional masks
  that zero dropped residual channels, KV groups and FFN neurons and drop layers or attention. A
  subnet built by :func:`thrifty.flashnas.algorithm.extract_subnet` must equal the backbone run
  through this function with the matching masks.
- :func:`reference_decode_logits`: next-token logits by full recomputation at every position.
- :func:`reference_block_influence`: ShortGPT block influence from hidden states, without hooks.
- :func:`reference_pareto_front`: the O(n^2) dominance check.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.core.nn import RotaryEmbedding, apply_rope, naive_attention
from thrifty.flashnas.model import FlashLM


def _rms(x: Tensor, weight: Tensor, eps: float, channel_mask: Tensor | None) -> Tensor:
    """RMSNorm over the kept channels only (dropped channels are zero and do not count)."""
    n_kept = x.shape[-1] if channel_mask is None else channel_mask.sum()
    out = x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) / n_kept + eps) * weight
    return out if channel_mask is None else out * channel_mask


def reference_forward(
    model: FlashLM,
    idx: Tensor,
    *,
    layers: Sequence[int] | None = None,
    attn: Sequence[bool] | None = None,
    channel_mask: Tensor | None = None,
    kv_group_masks: dict[int, Tensor] | None = None,
    ffn_masks: dict[int, Tensor] | None = None,
) -> Tensor:
    """Logits ``(B, T, V)`` of ``model`` on ``idx (B, T)``, optionally pruned by masking.

    Args:
        layers: backbone layers to run (default all), in order.
        attn: attention flag per entry of ``layers`` (default: the model's).
        channel_mask: ``(C,)`` 0/1 residual-channel mask.
        kv_group_masks: layer -> ``(Hkv,)`` 0/1 mask; a dropped group zeroes its query heads' outputs.
        ffn_masks: layer -> ``(F_l,)`` 0/1 mask of SwiGLU neurons.
    """
    cfg = model.cfg
    layers = list(range(cfg.n_layers)) if layers is None else list(layers)
    attn = [model.blocks[i].has_attn for i in layers] if attn is None else list(attn)
    t = idx.shape[1]
    x = model.embed.weight[idx]
    if channel_mask is not None:
        x = x * channel_mask
    cos, sin = RotaryEmbedding(cfg.head_dim, cfg.rope_base).to(x.device)(torch.arange(t, device=x.device))
    for layer, use_attn in zip(layers, attn, strict=True):
        block = model.blocks[layer]
        if use_attn:
            h = _rms(x, block.attn_norm.weight, cfg.norm_eps, channel_mask)
            a = block.attn
            b = h.shape[0]
            q = (h @ a.q_proj.weight.T).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
            k = (h @ a.k_proj.weight.T).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
            v = (h @ a.v_proj.weight.T).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
            out = naive_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, causal=True)
            if kv_group_masks is not None and layer in kv_group_masks:
                head_mask = kv_group_masks[layer].repeat_interleave(cfg.n_heads // cfg.n_kv_heads)
                out = out * head_mask.view(1, -1, 1, 1)
            delta = out.transpose(1, 2).reshape(b, t, -1) @ a.o_proj.weight.T
            x = x + (delta if channel_mask is None else delta * channel_mask)
        h = _rms(x, block.mlp_norm.weight, cfg.norm_eps, channel_mask)
        mlp = block.mlp
        hidden = F.silu(h @ mlp.gate.weight.T) * (h @ mlp.up.weight.T)
        if ffn_masks is not None and layer in ffn_masks:
            hidden = hidden * ffn_masks[layer]
        delta = hidden @ mlp.down.weight.T
        x = x + (delta if channel_mask is None else delta * channel_mask)
    return _rms(x, model.norm.weight, cfg.norm_eps, channel_mask) @ model.embed.weight.T


def reference_decode_logits(model: FlashLM, idx: Tensor) -> Tensor:
    """``(B, T, V)``: the logits at position ``t`` from a full forward over ``idx[:, : t + 1]``."""
    return torch.cat([reference_forward(model, idx[:, : t + 1])[:, -1:] for t in range(idx.shape[1])], dim=1)


def reference_block_influence(model: FlashLM, batches: Sequence[Tensor]) -> Tensor:
    """``(L,)``: ``BI_l = 1 - mean_{b,t} cos(h_l, h_{l+1})`` from the residual stream (ShortGPT)."""
    sums = torch.zeros(model.cfg.n_layers, dtype=torch.float64)
    count = 0
    with torch.no_grad():
        for idx in batches:
            states = model.hidden_states(idx)
            for layer in range(model.cfg.n_layers):
                cos = F.cosine_similarity(states[layer], states[layer + 1], dim=-1)
                sums[layer] += cos.double().sum()
            count += idx.numel()
    return 1.0 - sums / count


def reference_pareto_front(y: Tensor, maximize: Sequence[bool]) -> Tensor:
    """``(N,)`` bool: point ``i`` is kept unless another point is at least as good everywhere and better once."""
    sign = torch.tensor([1.0 if m else -1.0 for m in maximize], dtype=torch.float64)
    z = y.double() * sign
    keep = torch.ones(len(z), dtype=torch.bool)
    for i in range(len(z)):
        for j in range(len(z)):
            if i != j and bool((z[j] >= z[i]).all()) and bool((z[j] > z[i]).any()):
                keep[i] = False
                break
    return keep
