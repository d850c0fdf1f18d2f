"""The LM with attention skipping: fast paths equal the reference; decode cache; FFN-only layers."""

from __future__ import annotations

import pytest
import torch
from flashnas_fixtures import random_model

from thrifty.core.testing import assert_close_ratio
from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.model import FlashLM, PrefillExport, StaticKVDecoder, causal_mask
from thrifty.flashnas.reference import reference_decode_logits, reference_forward


@pytest.mark.parametrize("impl", ["matmul", "sdpa"])
def test_forward_matches_reference(tiny_model: FlashLM, tokens: torch.Tensor, impl: str) -> None:
    tiny_model.attn_impl = impl
    ref = reference_forward(tiny_model, tokens)
    torch.testing.assert_close(tiny_model(tokens), ref, rtol=1e-10, atol=1e-10)


def test_prefill_export_wrapper_matches_model(tiny_model: FlashLM, tokens: torch.Tensor) -> None:
    wrapper = PrefillExport(tiny_model, tokens.shape[1])
    torch.testing.assert_close(wrapper(tokens), reference_forward(tiny_model, tokens), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="seq_len"):
        PrefillExport(tiny_model, 17)


def test_gradients_match_reference(tiny_model: FlashLM, tokens: torch.Tensor) -> None:
    (tiny_model(tokens) ** 2).mean().backward()
    fast = {n: p.grad.clone() for n, p in tiny_model.named_parameters()}
    tiny_model.zero_grad()
    (reference_forward(tiny_model, tokens) ** 2).mean().backward()
    for name, p in tiny_model.named_parameters():
        assert_close_ratio(name, p.grad, fast[name], ratio=1e-9, atol=1e-12)


def test_static_kv_decode_equals_full_recompute(tiny_model: FlashLM, tokens: torch.Tensor) -> None:
    decoder = StaticKVDecoder(tiny_model, max_kv_len=tokens.shape[1], batch=tokens.shape[0])
    with torch.no_grad():
        steps = [decoder(tokens[:, t : t + 1], torch.tensor([t])) for t in range(tokens.shape[1])]
        expected = reference_decode_logits(tiny_model, tokens)
    torch.testing.assert_close(torch.cat(steps, dim=1), expected, rtol=1e-10, atol=1e-10)


def test_ffn_only_layer_has_no_attention_and_no_kv_cache(tiny_model: FlashLM) -> None:
    skipped = tiny_model.blocks[1]
    assert not skipped.has_attn
    assert not hasattr(skipped, "attn") and not hasattr(skipped, "attn_norm")
    decoder = StaticKVDecoder(tiny_model, max_kv_len=8)
    assert decoder.cache_layers == [0, 2]
    assert not hasattr(decoder, "k_cache_1") and not hasattr(decoder, "v_cache_1")
    assert len(decoder.kv_buffers()) == 4


def test_ffn_only_block_equals_hand_built(tiny_model: FlashLM) -> None:
    block = tiny_model.blocks[1]
    x = torch.randn(2, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    cos, sin = tiny_model.rope_cos[:5], tiny_model.rope_sin[:5]
    hand = x + block.mlp(block.mlp_norm(x))
    torch.testing.assert_close(block(x, cos, sin, None, "matmul"), hand, rtol=0, atol=0)


def test_rmsnorm_matches_core(tiny_model: FlashLM) -> None:
    from thrifty.core.nn import RMSNorm

    core = RMSNorm(16).double()
    core.weight.data.copy_(tiny_model.norm.weight)
    x = torch.randn(3, 16, dtype=torch.float64)
    torch.testing.assert_close(tiny_model.norm(x), core(x), rtol=1e-12, atol=1e-12)


def test_causal_mask_is_stacked_per_group() -> None:
    mask = causal_mask(3, 2, torch.float32, "cpu")
    assert mask.shape == (6, 3)
    torch.testing.assert_close(mask[:3], mask[3:])
    assert (mask[:3].tril() == 0).all() and (mask[0, 1:] < -1e30).all()


def test_tied_head_and_bad_inputs(tiny_model: FlashLM) -> None:
    assert tiny_model.head.weight is tiny_model.embed.weight
    with pytest.raises(ValueError, match="idx"):
        tiny_model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len"):
        tiny_model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="attn_impl"):
        FlashLM(tiny_model.cfg, "flash")  # type: ignore[arg-type]


def test_bad_architecture_raises() -> None:
    with pytest.raises(ValueError, match="n_kv_heads"):
        FlashLMConfig(11, 16, 4, 3, 4, (8,), (True,))
    with pytest.raises(ValueError, match="head_dim"):
        FlashLMConfig(11, 16, 4, 2, 3, (8,), (True,))
    with pytest.raises(ValueError, match="ffn, attn"):
        FlashLMConfig(11, 16, 4, 2, 4, (8, 8), (True,))


def test_uniform_backbone_counts_params() -> None:
    cfg = FlashLMConfig.uniform(11, 16, 2, 4, 2, 8)
    model = random_model(cfg)
    from thrifty.flashnas.latency import param_count

    assert param_count(cfg) == model.num_params()
