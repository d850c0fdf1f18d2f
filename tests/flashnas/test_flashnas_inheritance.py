"""Weight inheritance: importance scores and subnet extraction."""

from __future__ import annotations

import pytest
import torch

from thrifty.flashnas.algorithm import ImportanceScores, extract_subnet, make_subnet, subnet_masks, top_indices
from thrifty.flashnas.config import FlashLMConfig, SubnetConfig
from thrifty.flashnas.model import FlashLM
from thrifty.flashnas.reference import reference_block_influence, reference_forward


@pytest.fixture
def scores(tiny_model: FlashLM) -> ImportanceScores:
    gen = torch.Generator().manual_seed(5)
    return ImportanceScores.collect(tiny_model, [torch.randint(0, 11, (2, 9), generator=gen) for _ in range(2)])


def test_keep_all_subnet_is_the_backbone(tiny_model: FlashLM, scores: ImportanceScores, tokens: torch.Tensor) -> None:
    sub = extract_subnet(tiny_model, SubnetConfig.keep_all(tiny_model.cfg), scores)
    assert torch.equal(sub(tokens), tiny_model(tokens))


def test_pruned_subnet_equals_masked_backbone(
    tiny_model: FlashLM, scores: ImportanceScores, tokens: torch.Tensor
) -> None:
    cfg = SubnetConfig(layers=(0, 2), d_model=10, ffn=(7, 4), n_heads=2, n_kv_heads=1, attn=(True, False))
    sub = extract_subnet(tiny_model, cfg, scores)
    expected = reference_forward(tiny_model, tokens, **subnet_masks(tiny_model, cfg, scores))
    torch.testing.assert_close(sub(tokens), expected, rtol=1e-9, atol=1e-9)


def test_width_only_slice_equals_zero_masked_channels(
    tiny_model: FlashLM, scores: ImportanceScores, tokens: torch.Tensor
) -> None:
    cfg = SubnetConfig.keep_all(tiny_model.cfg)
    cfg = SubnetConfig(cfg.layers, 12, cfg.ffn, cfg.n_heads, cfg.n_kv_heads, cfg.attn)
    mask = torch.zeros(16, dtype=torch.float64).index_fill(0, top_indices(scores.channels, 12), 1.0)
    expected = reference_forward(tiny_model, tokens, channel_mask=mask)
    torch.testing.assert_close(extract_subnet(tiny_model, cfg, scores)(tokens), expected, rtol=1e-9, atol=1e-9)


def test_sliced_shapes_are_consistent(tiny_model: FlashLM, scores: ImportanceScores) -> None:
    cfg = SubnetConfig(layers=(1, 2), d_model=8, ffn=(3, 5), n_heads=2, n_kv_heads=1, attn=(False, True))
    sub = extract_subnet(tiny_model, cfg, scores)
    assert sub.head.weight is sub.embed.weight and sub.embed.weight.shape == (11, 8)
    attn = sub.blocks[1].attn
    assert attn.q_proj.weight.shape == (2 * 4, 8) and attn.k_proj.weight.shape == (1 * 4, 8)
    assert attn.o_proj.weight.shape == (8, 2 * 4)
    assert sub.blocks[0].mlp.down.weight.shape == (8, 3) and not sub.blocks[0].has_attn
    assert all(b.mlp_norm.weight.shape == (8,) for b in sub.blocks)


def test_block_influence_from_hooks_equals_direct(tiny_model: FlashLM) -> None:
    gen = torch.Generator().manual_seed(7)
    batches = [torch.randint(0, 11, (2, 6), generator=gen) for _ in range(3)]
    got = ImportanceScores.collect(tiny_model, batches).block_influence
    torch.testing.assert_close(got, reference_block_influence(tiny_model, batches), rtol=1e-9, atol=1e-12)
    assert (got > 0).all()


def test_block_influence_is_zero_for_identity_block(tiny_model: FlashLM, tokens: torch.Tensor) -> None:
    with torch.no_grad():  # zero output projections: the block returns its input unchanged
        tiny_model.blocks[2].attn.o_proj.weight.zero_()
        tiny_model.blocks[2].mlp.down.weight.zero_()
    bi = ImportanceScores.collect(tiny_model, [tokens]).block_influence
    assert abs(float(bi[2])) < 1e-12 and float(bi[0]) > 1e-3


def test_score_shapes_and_group_sums(tiny_model: FlashLM, scores: ImportanceScores) -> None:
    assert scores.block_influence.shape == (3,) and scores.channels.shape == (16,)
    assert [s.shape[0] for s in scores.ffn] == [12, 8, 10]
    assert scores.heads.shape == (3, 4) and (scores.heads[1] == 0).all()
    torch.testing.assert_close(scores.kv_groups(2)[0], scores.heads[0].view(2, 2).sum(-1))


def test_make_subnet_keeps_top_block_influence_in_order(tiny_model: FlashLM, scores: ImportanceScores) -> None:
    sub = make_subnet(tiny_model, scores, n_layers=2, d_model=8, ffn=4, n_kv_heads=1)
    expected = sorted(torch.argsort(scores.block_influence, descending=True)[:2].tolist())
    assert list(sub.layers) == expected and sub.n_heads == 2


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"layers": (0, 1, 2, 3)}, "layers"),
        ({"d_model": 32}, "d_model"),
        ({"ffn": (13, 8, 10)}, "ffn"),
        ({"n_heads": 3}, "n_heads"),
        ({"n_kv_heads": 3, "n_heads": 6}, "n_kv_heads"),
        ({"attn": (True, True, True)}, "attn"),
        ({"layers": (2, 0, 1)}, "layers"),
    ],
)
def test_bad_subnet_configs_raise(tiny_cfg: FlashLMConfig, changes: dict, match: str) -> None:
    base = SubnetConfig.keep_all(tiny_cfg).to_dict()
    if "layers" in changes and len(changes["layers"]) == 4:
        changes = {**changes, "ffn": (8,) * 4, "attn": (True,) * 4}
    cfg = SubnetConfig.from_dict({**base, **changes})
    with pytest.raises(ValueError, match=match):
        cfg.check(tiny_cfg)


def test_make_subnet_rejects_too_deep(tiny_model: FlashLM, scores: ImportanceScores) -> None:
    with pytest.raises(ValueError, match="n_layers"):
        make_subnet(tiny_model, scores, n_layers=4, d_model=8, ffn=4, n_kv_heads=1)
