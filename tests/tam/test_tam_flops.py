"""The analytic memory-attention FLOPs equal torch's counter on the explicit-matmul (naive) path."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from thrifty.tam.attention import MemoryAttention, MemoryLayout
from thrifty.tam.flops import memory_attention_flops, variant_memory_flops


@pytest.mark.parametrize(
    ("cross", "layout", "attended"),
    [
        ("full", MemoryLayout(3, (4, 4), 0, 4), 3 * 16 + 4),
        ("pooled", MemoryLayout(3, (4, 4), 0, 4), 3 * 4 + 4),
        ("full", MemoryLayout(3, (2, 2), 2, 4), 3 * 6 + 4),  # EdgeTAM: 2 global + 2x2 patch latents per frame
    ],
    ids=["sam2-full", "efficienttam-pooled", "edgetam-latents"],
)
def test_analytic_flops_match_counter_on_naive_path(cross: str, layout: MemoryLayout, attended: int) -> None:
    torch.manual_seed(0)
    model = MemoryAttention(16, 8, layers=2, ffn=32, heads=2, cross=cross, impl="naive")
    q, pos = torch.randn(1, 16, 16), torch.randn(1, 16, 16)
    mem = torch.randn(1, layout.n_tokens, 8)
    with FlopCounterMode(display=False) as counter:
        model(q, pos, (4, 4), mem, torch.zeros_like(mem), layout)
    expected = memory_attention_flops(16, layout.n_tokens, attended, 16, 8, 2, 32)
    assert counter.get_total_flops() == expected["total"]


def test_pooling_cuts_the_cross_attention_core_by_s_squared() -> None:
    full = memory_attention_flops(256, 7 * 256, 7 * 256, 64, 32, 2, 256)
    pooled = memory_attention_flops(256, 7 * 256, 7 * 64, 64, 32, 2, 256)
    assert pooled["cross_core"] * 4 == full["cross_core"] and pooled["cross_proj"] == full["cross_proj"]


def test_variant_flops_pick_the_attended_token_counts() -> None:
    args = ((8, 8), 7, 32, 64, 32, 2, 256)
    full, pooled = variant_memory_flops("full", *args), variant_memory_flops("pooled", *args)
    perceiver = variant_memory_flops("perceiver", *args, n_latents=8)
    assert full == memory_attention_flops(64, 7 * 64 + 32, 7 * 64 + 32, 64, 32, 2, 256)
    assert pooled["cross_core"] == memory_attention_flops(64, 480, 7 * 16 + 32, 64, 32, 2, 256)["cross_core"]
    assert perceiver["cross_proj"] < full["cross_proj"] and variant_memory_flops("none", *args)["total"] == 0
