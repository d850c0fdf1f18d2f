"""torchao 8da4w against the plain-torch references, QAT convert, GGUF Q4_0 and the ExecuTorch program."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from thrifty.core.deploy import ExecuTorchRunner, executorch_available
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.guard.deploy import lower_guard, runtime_logits
from thrifty.guard.model import prune_output_layer
from thrifty.guard.quant import (
    apply_q4_0,
    check_group_size,
    convert_8da4w,
    fake_quant_activation_reference,
    fake_quant_weight_reference,
    int4_bits_per_weight,
    q4_0_roundtrip,
    quantize_8da4w,
)

pytest.importorskip("torchao", reason="torchao (the quant extra) is not installed")


def _linear(in_features: int = 96, out_features: int = 40) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(in_features, out_features, bias=False))


@pytest.mark.parametrize("group_size", [32, None])
def test_weight_fake_quant_equals_reference_and_error_at_most_half_scale(group_size: int | None) -> None:
    model = _linear()
    weight = model[0].weight.detach().clone()
    quantize_8da4w(model, group_size=group_size, embedding_bits=None, qat=True)
    fake = model[0].weight_fake_quantizer(weight).detach()
    ref, scales = fake_quant_weight_reference(weight, group_size)
    assert torch.equal(fake, ref)
    group = 96 if group_size is None else group_size
    per_weight_scale = scales.repeat_interleave(group, dim=1)
    assert bool(((weight - ref).abs() <= per_weight_scale / 2 * (1 + 1e-6)).all())
    assert scales.shape == (40, 96 // group)


def test_activation_fake_quant_equals_reference_at_awkward_shape() -> None:
    model = _linear()
    quantize_8da4w(model, group_size=32, embedding_bits=None, qat=True)
    x = torch.randn(3, 7, 96, generator=torch.Generator().manual_seed(1)) * 2.5 + 0.7
    x[0, 0] = x[0, 0].abs()  # an all-positive token: the range is stretched to contain 0
    assert torch.equal(model[0].activation_fake_quantizer(x), fake_quant_activation_reference(x))


def test_qat_gradients_flow_and_convert_is_close_to_fake_quant() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Embedding(20, 64), nn.Linear(64, 64, bias=False), nn.ReLU(), nn.Linear(64, 8))
    quantize_8da4w(model, group_size=32, embedding_bits=4, qat=True)
    ids = torch.randint(0, 20, (4, 9))
    fake = model(ids)
    fake.square().mean().backward()
    assert model[1].weight.grad is not None and float(model[1].weight.grad.abs().sum()) > 0  # straight-through
    convert_8da4w(model, group_size=32, embedding_bits=4)
    assert "IntxUnpackedToInt8Tensor" in type(model[1].weight).__name__
    rel = (model(ids) - fake.detach()).norm() / fake.detach().norm()
    assert float(rel) < 2e-2


def test_ptq_equals_fake_quant_forward() -> None:
    model = _linear()
    x = torch.randn(2, 5, 96, generator=torch.Generator().manual_seed(3))
    ref_w, _ = fake_quant_weight_reference(model[0].weight.detach(), 32)
    expected = fake_quant_activation_reference(x) @ ref_w.T
    quantize_8da4w(model, group_size=32, embedding_bits=None)
    torch.testing.assert_close(model(x), expected, rtol=1e-3, atol=1e-4)


def test_indivisible_group_size_raises_before_work() -> None:
    model = _linear()
    with pytest.raises(ValueError, match="group_size: expected a divisor of 0's width 96, got 64"):
        quantize_8da4w(model, group_size=64)
    assert type(model[0]) is nn.Linear  # untouched
    with pytest.raises(ValueError, match="group_size: expected a positive integer"):
        check_group_size(model, 0)
    with pytest.raises(ValueError, match="embedding_bits: expected 4, 8 or None"):
        quantize_8da4w(model, group_size=32, embedding_bits=3)


def test_q4_0_through_gguf_has_4_5_bits_and_bounded_error() -> None:
    pytest.importorskip("gguf", reason="gguf (the quant extra) is not installed")
    weight = torch.randn(6, 64, generator=torch.Generator().manual_seed(4))
    restored, n_bytes = q4_0_roundtrip(weight)
    assert n_bytes * 8 / weight.numel() == 4.5
    blocks = weight.view(6, 2, 32)
    d = blocks.gather(-1, blocks.abs().argmax(-1, keepdim=True)).abs() / 8  # |d| of each block
    assert bool(((restored - weight).view(6, 2, 32).abs() <= d * 1.01).all())
    stats = apply_q4_0(_linear(64, 32))
    assert stats["bits_per_weight"] == 4.5 and stats["n_weights"] == 64 * 32
    with pytest.raises(ValueError, match="in a multiple of 32"):
        q4_0_roundtrip(torch.randn(3, 40))


@pytest.mark.slow
@pytest.mark.skipif(not executorch_available(), reason="executorch not installed")
def test_executorch_int4_program_agrees_with_eager_and_bits_match_pte_bytes() -> None:
    torch.manual_seed(5)
    cfg = TransformerLMConfig(vocab_size=40, dim=64, n_layers=1, n_heads=4, mlp_hidden=128, tie_embeddings=False)
    fp32 = prune_output_layer(TransformerLM(cfg), list(range(12)), expand_to_vocab=False).eval()
    with torch.no_grad():
        fp32.head.linear.weight.mul_(30.0)  # separated logits, as in a trained classifier (no near-ties)
    student = quantize_8da4w(copy.deepcopy(fp32), group_size=32, embedding_bits=4)
    program_fp32, program_int4 = lower_guard(fp32, 16), lower_guard(student, 16)
    ids = torch.randint(0, 40, (100, 16), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        eager = student(ids)
    runtime = runtime_logits(ExecuTorchRunner(program_int4), ids)
    last, rt_last = eager[:, -1], runtime[:, -1]
    assert float((rt_last - last).norm() / last.norm()) < 0.02  # the runtime computes the same int4 function
    top2 = last.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.05 * float(last.std())  # an untrained model has near-ties
    assert float(clear.float().mean()) > 0.8
    assert float((rt_last.argmax(-1) == last.argmax(-1))[clear].float().mean()) >= 0.99
    linear_weights = sum(m.weight.numel() for m in fp32.modules() if isinstance(m, nn.Linear))
    # XNNPACK stores int4 weights with 16-bit scales: bytes saved = weights * (32 - 4 - 16/g) / 8; the int4
    # embedding (ExecuTorch's quantised op) keeps fp32 scales: saved = weights * (32 - 4 - 32/g) / 8.
    predicted = linear_weights * (32 - int4_bits_per_weight(32, 64, scale_bits=16)) / 8
    predicted += fp32.embed.weight.numel() * (32 - int4_bits_per_weight(32, 64, scale_bits=32)) / 8
    saved = len(program_fp32.buffer) - len(program_int4.buffer)
    assert abs(saved - predicted) / predicted < 0.03
