from __future__ import annotations

import pytest
import torch

from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.core.nn import RMSNorm, RotaryEmbedding, apply_rope, attention, naive_attention
from thrifty.core.testing import assert_close_ratio


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (6, 1)], ids=lambda h: f"H{h[0]}-Hkv{h[1]}")
@pytest.mark.parametrize("t_s", [(7, 7), (3, 11)], ids=lambda ts: f"T{ts[0]}-S{ts[1]}")
def test_sdpa_equals_naive(causal: bool, heads: tuple[int, int], t_s: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(0)
    (h, hkv), (t, s) = heads, t_s
    q = torch.randn(2, h, t, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, hkv, s, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, hkv, s, 8, generator=g, dtype=torch.float64)
    mask = torch.rand(1, 1, t, s, generator=g) > 0.3
    mask[..., -1] = True  # every query keeps at least its own/latest key
    for m in (None, mask):
        out = attention(q, k, v, causal=causal, mask=m, impl="sdpa")
        ref = naive_attention(q, k, v, causal=causal, mask=m)
        assert_close_ratio("attention", ref, out, ratio=1e-10, atol=1e-12)


def test_naive_attention_is_causal() -> None:
    q, k, v = (torch.randn(1, 2, 5, 4, dtype=torch.float64) for _ in range(3))
    out = naive_attention(q, k, v, causal=True)
    v2 = v.clone()
    v2[:, :, 3:] += 10.0  # change the future
    out2 = naive_attention(q, k, v2, causal=True)
    assert torch.equal(out[:, :, :3], out2[:, :, :3])
    assert not torch.allclose(out[:, :, 3:], out2[:, :, 3:])


def test_gqa_rejects_non_dividing_heads() -> None:
    q, k = torch.randn(1, 4, 3, 8), torch.randn(1, 3, 3, 8)
    with pytest.raises(ValueError, match="k: expected a number of heads dividing 4"):
        attention(q, k, k)


def test_rope_scores_depend_only_on_relative_position() -> None:
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 1, 8, dtype=torch.float64), torch.randn(1, 1, 1, 8, dtype=torch.float64)

    def score(pq: int, pk: int) -> torch.Tensor:
        cq, sq = rope(torch.tensor([pq]))
        ck, sk = rope(torch.tensor([pk]))
        return (apply_rope(q, cq.double(), sq.double()) * apply_rope(k, ck.double(), sk.double())).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(score(3, 1), score(3, 2))


def test_rmsnorm_matches_formula() -> None:
    norm = RMSNorm(6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 6)
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * norm.weight
    torch.testing.assert_close(norm(x), expected)


def test_kv_cache_decode_equals_full_forward() -> None:
    torch.manual_seed(0)
    lm = TransformerLM(TransformerLMConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, n_kv_heads=2)).double()
    idx = torch.randint(0, 50, (2, 9))
    full = lm(idx)
    caches = lm.new_caches()
    parts = [lm(idx[:, :4], caches=caches)]  # prefill 4, then decode one token at a time
    parts += [lm(idx[:, t : t + 1], start_pos=t, caches=caches) for t in range(4, 9)]
    assert_close_ratio("cached logits", full, torch.cat(parts, dim=1), ratio=1e-10, atol=1e-10)


def test_tied_head_and_param_count() -> None:
    cfg = TransformerLMConfig(vocab_size=40, dim=16, n_layers=1, n_heads=2, mlp_hidden=24)
    lm = TransformerLM(cfg)
    assert lm.head.weight is lm.embed.weight
    # embed + per block (2 norms, q/k/v/o, 3 mlp matrices) + final norm
    expected = 40 * 16 + (2 * 16 + 4 * 16 * 16 + 3 * 16 * 24) + 16
    assert lm.num_params() == expected


def test_bidirectional_model_sees_the_future() -> None:
    lm = TransformerLM(TransformerLMConfig(vocab_size=20, dim=16, n_layers=1, n_heads=2, causal=False))
    idx = torch.randint(0, 20, (1, 6))
    idx2 = idx.clone()
    idx2[0, -1] = (idx[0, -1] + 1) % 20
    assert not torch.allclose(lm(idx)[0, 0], lm(idx2)[0, 0])
    with pytest.raises(ValueError, match="causal"):
        lm.generate(idx, 2)


def test_generate_greedy_is_deterministic_and_extends() -> None:
    torch.manual_seed(1)
    lm = TransformerLM(TransformerLMConfig(vocab_size=30, dim=16, n_layers=1, n_heads=2))
    idx = torch.randint(0, 30, (2, 3))
    a, b = lm.generate(idx, 5), lm.generate(idx, 5)
    assert a.shape == (2, 8) and torch.equal(a, b) and torch.equal(a[:, :3], idx)
    # greedy choice equals the argmax of a full forward pass at every step
    logits = lm(a[:, :-1])
    assert torch.equal(logits[:, 2:].argmax(-1), a[:, 3:])


def test_explicit_positions_equal_start_offset_and_shared_ids() -> None:
    torch.manual_seed(0)
    lm = TransformerLM(TransformerLMConfig(vocab_size=30, dim=16, n_layers=1, n_heads=2, causal=False)).double()
    idx = torch.randint(0, 30, (2, 5))
    torch.testing.assert_close(lm(idx, start_pos=3), lm(idx, positions=torch.arange(3, 8)))
    # a sequence concatenated with itself under shared position ids: both copies see the same context
    twice = lm(torch.cat((idx, idx), dim=1), positions=torch.arange(5).repeat(2))
    torch.testing.assert_close(twice[:, :5], twice[:, 5:])
    with pytest.raises(ValueError, match=r"positions: expected shape \(5,\)"):
        lm(idx, positions=torch.arange(4))
