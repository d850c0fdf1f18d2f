"""Memory attention: full and pooled (EfficientTAM) vs explicit-loop references, exactness identities."""

import pytest
import torch

from thrifty.core.nn import attention
from thrifty.tam.attention import MemoryAttention, MemoryLayout, RoPEAttention, pool_memory
from thrifty.tam.reference import rope_attention_reference


def _inputs(layout: MemoryLayout, nq: int = 16, dim: int = 16, kv: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, nq, dim, generator=g, dtype=torch.float64)
    k = torch.randn(2, layout.n_tokens, kv, generator=g, dtype=torch.float64)
    v = torch.randn(2, layout.n_tokens, kv, generator=g, dtype=torch.float64)
    return q, k, v


@pytest.mark.parametrize("cross", ["full", "pooled"])
@pytest.mark.parametrize("heads", [1, 2])
def test_rope_attention_matches_loop_reference(cross: str, heads: int) -> None:
    torch.manual_seed(0)
    layout = MemoryLayout(n_frames=3, grid=(4, 4), n_ptr_tokens=4)
    module = RoPEAttention(16, 8, heads, cross=cross).double()
    q, k, v = _inputs(layout)
    out = module(q, k, v, (4, 4), layout)
    ref = rope_attention_reference(module, q, k, v, (4, 4), layout, pooled=cross == "pooled")
    torch.testing.assert_close(out, ref)


def test_pooled_is_exact_on_window_constant_keys_and_values() -> None:
    g = torch.Generator().manual_seed(2)
    layout = MemoryLayout(n_frames=2, grid=(4, 6), n_ptr_tokens=3)
    coarse = torch.randn(2, 1, 2 * 2 * 3, 8, 2, generator=g, dtype=torch.float64)  # (B, H, F*2*3, D, k/v)
    grid = coarse.view(2, 1, 2, 2, 3, 8, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
    spatial = grid.reshape(2, 1, 2 * 24, 8, 2)
    ptr = torch.randn(2, 1, 3, 8, 2, generator=g, dtype=torch.float64)
    k, v = torch.cat([spatial, ptr], 2).unbind(-1)
    q = torch.randn(2, 1, 5, 8, generator=g, dtype=torch.float64)
    kp, vp, bias = pool_memory(k, v, layout, 2)
    torch.testing.assert_close(attention(q, kp, vp, mask=bias), attention(q, k, v))
    kp, vp, bias0 = pool_memory(k, v, layout, 2, log_bias=False)
    assert (attention(q, kp, vp, mask=bias0) - attention(q, k, v)).abs().max() > 1e-3  # the bias matters
    assert torch.equal(kp[:, :, -3:], k[:, :, -3:]) and torch.equal(bias[0, -3:], torch.zeros(3, dtype=bias.dtype))


def test_pool_one_equals_full_attention_and_single_frame_is_not_pooled() -> None:
    torch.manual_seed(0)
    full = MemoryAttention(16, 8, layers=2, ffn=32, cross="full").double()
    pooled = MemoryAttention(16, 8, layers=2, ffn=32, cross="pooled", pool=1).double()
    pooled.load_state_dict(full.state_dict())
    layout = MemoryLayout(n_frames=3, grid=(4, 4), n_ptr_tokens=2)
    q, k, v = _inputs(layout)
    pos = torch.zeros_like(q)
    torch.testing.assert_close(pooled(q, pos, (4, 4), k, v, layout), full(q, pos, (4, 4), k, v, layout))
    two = MemoryAttention(16, 8, layers=1, ffn=32, cross="pooled", pool=2).double()
    one = MemoryAttention(16, 8, layers=1, ffn=32, cross="full").double()
    one.load_state_dict(two.state_dict())
    single = MemoryLayout(n_frames=1, grid=(4, 4), n_ptr_tokens=2)
    q, k, v = _inputs(single)
    torch.testing.assert_close(two(q, pos, (4, 4), k, v, single), one(q, pos, (4, 4), k, v, single))


def test_pooled_attention_gradcheck() -> None:
    torch.manual_seed(0)
    layout = MemoryLayout(n_frames=2, grid=(2, 2), n_ptr_tokens=1)
    module = RoPEAttention(8, 4, 1, cross="pooled").double()
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 4, 8, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, layout.n_tokens, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: module(a, b, b, (2, 2), layout), (q, k))


def test_bad_layouts_raise_clear_errors() -> None:
    module = RoPEAttention(16, 8, cross="pooled")
    layout = MemoryLayout(n_frames=2, grid=(3, 3))
    q, k, v = (t.float() for t in _inputs(layout, nq=9))
    with pytest.raises(ValueError, match="divisible by pool"):
        module(q, k, v, (3, 3), layout)
    with pytest.raises(ValueError, match="k: expected"):
        module(q, k[:, :-1], v[:, :-1], (3, 3), layout)
    with pytest.raises(ValueError, match="cross"):
        RoPEAttention(16, cross="sparse")  # type: ignore[arg-type]
