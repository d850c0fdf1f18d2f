"""Core ExecuTorch deployment helpers on a model-agnostic module: lowering, delegation check, runner."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thrifty.core.deploy import (
    INT4_EMBEDDING_OP,
    PREFILL_ALLOWED,
    ExecuTorchRunner,
    Int4PackedEmbedding,
    LoweredProgram,
    check_delegation,
    executorch_available,
    int4_embedding_reference,
    lower_to_executorch,
)

needs_executorch = pytest.mark.skipif(not executorch_available(), reason="executorch (with XNNPACK) does not import")


def test_check_delegation_names_fallback_ops() -> None:
    program = LoweredProgram(b"", 1, ["aten.embedding.default", "aten.where.self"])
    with pytest.raises(RuntimeError, match="aten.where.self"):
        check_delegation(program, PREFILL_ALLOWED)


def test_check_delegation_accepts_allowed_ops_only() -> None:
    check_delegation(LoweredProgram(b"", 1, ["aten.embedding.default"]), PREFILL_ALLOWED)


@needs_executorch
def test_mlp_lowers_fully_delegated_and_matches_eager() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    program = lower_to_executorch(mlp, (x,))
    check_delegation(program, frozenset())  # nothing may fall back to portable kernels
    assert program.n_delegates >= 1 and program.size_mb > 0
    with torch.no_grad():
        torch.testing.assert_close(ExecuTorchRunner(program)(x), mlp(x), rtol=1e-4, atol=1e-5)


@needs_executorch
def test_lowering_cache_reuses_an_identical_graph_and_misses_on_changed_weights(tmp_path, monkeypatch) -> None:
    import executorch.exir as exir

    calls = []
    real = exir.to_edge_transform_and_lower
    monkeypatch.setattr(exir, "to_edge_transform_and_lower", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    first = lower_to_executorch(mlp, (x,), cache=tmp_path)
    again = lower_to_executorch(mlp, (x,), cache=tmp_path)
    assert len(calls) == 1 and again.buffer == first.buffer and again.n_delegates == first.n_delegates
    with torch.no_grad():
        mlp[0].weight[0, 0] += 1.0  # one changed weight is a different program
        changed = lower_to_executorch(mlp, (x,), cache=tmp_path)
        assert len(calls) == 2
        torch.testing.assert_close(ExecuTorchRunner(changed)(x), mlp(x), rtol=1e-4, atol=1e-5)
    lower_to_executorch(mlp, (torch.randn(5, 8),), cache=tmp_path)  # another input shape: another program
    assert len(calls) == 3 and len(list(tmp_path.glob("*.pte"))) == 3


def _int4_table(n: int, dim: int, group: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(-8, 8, (n, dim), generator=g, dtype=torch.int8)
    return values, torch.rand(n, dim // group, generator=g) + 0.05


@needs_executorch
def test_int4_packed_embedding_equals_the_plain_lookup_eager_and_in_the_runtime() -> None:
    values, scales = _int4_table(7, 12, 4, seed=1)  # odd vocabulary, 3 groups per row, both extremes present
    values[0, :2] = torch.tensor([-8, 7], dtype=torch.int8)
    embedding = Int4PackedEmbedding(values, scales)
    ids = torch.tensor([[0, 6, 3, 3, 1]])
    expected = int4_embedding_reference(values, scales, ids)
    assert torch.equal(embedding(ids), expected)
    assert embedding.packed.dtype == torch.uint8 and embedding.packed.shape == (7, 6)
    program = lower_to_executorch(embedding, (ids,))
    assert program.non_delegated == [INT4_EMBEDDING_OP]
    check_delegation(program, PREFILL_ALLOWED)
    assert torch.equal(ExecuTorchRunner(program)(ids), expected)


@needs_executorch
def test_int4_packed_embedding_from_torchao_keeps_torchaos_numbers() -> None:
    quant = pytest.importorskip("torchao.quantization", reason="torchao (the quant extra) is not installed")
    gran = pytest.importorskip("torchao.quantization.granularity", reason="torchao (the quant extra) is not installed")
    torch.manual_seed(2)
    table = nn.Embedding(10, 16)
    config = quant.IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=gran.PerGroup(8))
    quant.quantize_(table, config, filter_fn=lambda module, _fqn: isinstance(module, nn.Embedding))
    assert table.weight.target_dtype == torch.int4
    ids = torch.arange(10).view(2, 5)
    packed = Int4PackedEmbedding.from_torchao(table)
    assert torch.equal(packed(ids), table.weight.dequantize()[ids])
    with pytest.raises(ValueError, match="expected a torchao int4 symmetric weight"):
        Int4PackedEmbedding.from_torchao(nn.Embedding(4, 8))


@needs_executorch
def test_int4_packed_embedding_rejects_out_of_range_values_and_misshaped_scales() -> None:
    values, scales = _int4_table(4, 8, 4, seed=3)
    with pytest.raises(ValueError, match=r"values: expected a \(V, even D\) tensor in \[-8, 7\]"):
        Int4PackedEmbedding(values * 2, scales)
    with pytest.raises(ValueError, match="scales: expected"):
        Int4PackedEmbedding(values, scales[:, :1].repeat(1, 3))
