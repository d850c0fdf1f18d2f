"""core.prune: block influence (padding masked), neuron importance, layer selection and slicing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.core.prune import (
    collect_importance,
    only_blocks,
    prune_depth_width,
    select_layers,
    top_indices,
)


def _lm(seed: int = 0, n_layers: int = 4) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = TransformerLMConfig(vocab_size=13, dim=12, n_layers=n_layers, n_heads=3, mlp_hidden=10, tie_embeddings=False)
    return TransformerLM(cfg).double()


def _reference(model: TransformerLM, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Block influence and mean |a| by an explicit loop over blocks and real tokens."""
    x, bis, ffn = model.embed(ids), [], []
    for block in model.blocks:
        h = x + block.attn(block.attn_norm(x))
        normed = block.mlp_norm(h)
        act = F.silu(block.mlp.gate(normed)) * block.mlp.up(normed)
        y = h + block.mlp.down(act)
        real = [(b, t) for b in range(ids.shape[0]) for t in range(ids.shape[1]) if mask[b, t]]
        bis.append(1 - sum(F.cosine_similarity(x[b, t], y[b, t], dim=0) for b, t in real) / len(real))
        ffn.append(sum(act[b, t].abs() for b, t in real) / len(real))
        x = y
    return torch.stack(bis), ffn


def test_importance_matches_loop_reference_with_padding_masked() -> None:
    model = _lm()
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 13, (3, 7), generator=gen)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 4:], mask[2, 2:] = False, False
    imp = collect_importance(model, [(ids, mask)])
    bi_ref, ffn_ref = _reference(model, ids, mask)
    torch.testing.assert_close(imp.block_influence, bi_ref.detach())
    for got, want in zip(imp.ffn, ffn_ref, strict=True):
        torch.testing.assert_close(got, want.detach())
    unmasked = collect_importance(model, [ids])
    assert not torch.allclose(unmasked.block_influence, imp.block_influence)  # padding would change BI


def test_padding_tokens_do_not_change_masked_scores() -> None:
    model = _lm()
    ids = torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    other = ids.clone()
    other[~mask] = (other[~mask] + 5) % 13  # different padding ids, right-padded: real tokens unaffected
    a, b = collect_importance(model, [(ids, mask)]), collect_importance(model, [(other, mask)])
    torch.testing.assert_close(a.block_influence, b.block_influence)


def test_l2_aggregation_is_root_mean_square() -> None:
    model = _lm()
    ids = torch.randint(0, 13, (2, 5), generator=torch.Generator().manual_seed(3))
    l2 = collect_importance(model, [ids], agg="l2")
    captured = []
    handle = model.blocks[1].mlp.down.register_forward_hook(lambda m, i, o: captured.append(i[0]))
    model(ids)
    handle.remove()
    torch.testing.assert_close(l2.ffn[1], captured[0].detach().square().mean((0, 1)).sqrt())
    with pytest.raises(ValueError, match="agg: expected 'mean_abs' or 'l2'"):
        collect_importance(model, [ids], agg="max")  # type: ignore[arg-type]


def test_identity_block_has_zero_block_influence() -> None:
    model = _lm()
    with torch.no_grad():
        model.blocks[2].attn.o_proj.weight.zero_()
        model.blocks[2].mlp.down.weight.zero_()
    bi = collect_importance(model, [torch.randint(0, 13, (2, 5))]).block_influence
    assert abs(float(bi[2])) < 1e-12
    assert bool((bi[[0, 1, 3]] > 1e-6).all())
    assert select_layers(model, [torch.randint(0, 13, (2, 5))], 3) == (0, 1, 3)


def test_keep_all_pruning_is_identity_and_slice_equals_masked_neurons() -> None:
    model = _lm()
    ids = torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(4))
    imp = collect_importance(model, [ids])
    same = prune_depth_width(model, range(4), 10, imp.ffn)
    assert torch.equal(same(ids), model(ids))
    pruned = prune_depth_width(model, (0, 3), 6, imp.ffn)
    for layer in (0, 3):  # zeroing the dropped neurons' down columns is the same function
        dropped = torch.ones(10, dtype=torch.bool)
        dropped[top_indices(imp.ffn[layer], 6)] = False
        with torch.no_grad():
            model.blocks[layer].mlp.down.weight[:, dropped] = 0.0
    with only_blocks(model, (0, 3)):
        torch.testing.assert_close(pruned(ids), model(ids))


def test_iterative_selection_rescores_after_each_removal() -> None:
    model = _lm(n_layers=4)
    batches = [torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(5))]
    kept = select_layers(model, batches, 2)
    expected = [0, 1, 2, 3]
    while len(expected) > 2:
        with only_blocks(model, expected):
            bi = collect_importance(model, batches).block_influence
        expected.pop(int(bi.argmin()))
    assert kept == tuple(expected)
    assert len(model.blocks) == 4  # restored


def test_bad_arguments_raise_naming_them() -> None:
    model = _lm()
    imp = collect_importance(model, [torch.randint(0, 13, (1, 4))])
    with pytest.raises(ValueError, match="keep_layers: expected increasing"):
        prune_depth_width(model, (2, 1), 4, imp.ffn)
    with pytest.raises(ValueError, match="ffn_dim: expected 1..10"):
        prune_depth_width(model, (0,), 11, imp.ffn)
    with pytest.raises(ValueError, match="keep: expected 1..4"):
        select_layers(model, [torch.randint(0, 13, (1, 4))], 0)
    with pytest.raises(ValueError, match="at least one calibration batch"):
        collect_importance(model, [])
    with pytest.raises(ValueError, match="mask: expected shape"):
        collect_importance(model, [(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4))])
    with pytest.raises(ValueError, match="k: expected 1..3"):
        top_indices(torch.zeros(3), 4)
