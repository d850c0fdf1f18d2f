"""Analytic FLOPs of memory attention (multiply-add = 2 FLOPs; matmuls only, as torch's counter counts).

torch's ``FlopCounterMode`` counts 0 FLOPs for CPU SDPA, so the tests compare this count with the counter run
on the ``naive`` (explicit-matmul) path instead.
"""

from __future__ import annotations


def memory_attention_flops(
    n_q: int, n_mem_tokens: int, n_attended: int, dim: int, kv_dim: int, layers: int, ffn: int, batch: int = 1
) -> dict[str, int]:
    """FLOPs of one :class:`~thrifty.tam.attention.MemoryAttention` call.

    Args:
        n_q: query tokens (H*W). n_mem_tokens: memory tokens projected to k/v (all stored tokens + pointers).
        n_attended: key columns the queries attend after pooling (pooled: ``F*HW/s^2 + ptr``).
        dim: model width C (= internal attention width). kv_dim: memory width Cm.
            layers, ffn: depth, FFN width.

    Returns:
        ``{"self_attn", "cross_proj", "cross_core", "ffn", "total"}``; ``cross_core`` is QK^T + AV of the
        cross-attention, the term EfficientTAM's pooling and EdgeTAM's compression shrink.
    """
    self_attn = 2 * n_q * dim * dim * 4 + 2 * 2 * n_q * n_q * dim
    cross_proj = 2 * n_q * dim * dim * 2 + 2 * 2 * n_mem_tokens * kv_dim * dim
    cross_core = 2 * 2 * n_q * n_attended * dim
    ffn_flops = 2 * 2 * n_q * dim * ffn
    out = {"self_attn": self_attn, "cross_proj": cross_proj, "cross_core": cross_core, "ffn": ffn_flops}
    out = {k: v * layers * batch for k, v in out.items()}
    out["total"] = sum(out.values())
    return out


def variant_memory_flops(
    memory: str,
    grid: tuple[int, int],
    n_frames: int,
    n_ptr_tokens: int,
    dim: int,
    kv_dim: int,
    layers: int,
    ffn: int,
    pool: int = 2,
    n_latents: int = 0,
) -> dict[str, int]:
    """:func:`memory_attention_flops` for a memory kind with ``n_frames`` stored frames (0 for ``none``)."""
    n_q = grid[0] * grid[1]
    if memory == "none":
        return {"self_attn": 0, "cross_proj": 0, "cross_core": 0, "ffn": 0, "total": 0}
    per_frame = n_latents if memory == "perceiver" else n_q
    attended = n_q // (pool * pool) if memory == "pooled" and n_frames >= 2 else per_frame
    return memory_attention_flops(
        n_q, n_frames * per_frame + n_ptr_tokens, n_frames * attended + n_ptr_tokens, dim, kv_dim, layers, ffn
    )
