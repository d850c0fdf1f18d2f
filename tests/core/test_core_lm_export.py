"""Exportable LM forms (core.lm_export): equal to the eager model, lowered without fallbacks, bad input rejected."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.deploy import (
    DECODE_ALLOWED,
    PREFILL_ALLOWED,
    ExecuTorchRunner,
    check_delegation,
    executorch_available,
    lower_to_executorch,
)
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.core.lm_export import ExportablePrefill, StaticKVDecodeStep


def _lm(n_kv_heads: int | None = 1) -> TransformerLM:
    torch.manual_seed(0)
    cfg = TransformerLMConfig(vocab_size=23, dim=32, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, mlp_hidden=48)
    return TransformerLM(cfg).eval()


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_decode_steps_reproduce_the_full_forward_at_every_position(n_kv_heads: int) -> None:
    lm = _lm(n_kv_heads)
    ids = torch.randint(0, 23, (2, 9), generator=torch.Generator().manual_seed(1))
    step = StaticKVDecodeStep(lm, max_kv_len=12, batch=2)
    with torch.no_grad():
        full = lm(ids)
    torch.testing.assert_close(step.prefill(ids), full, rtol=1e-5, atol=1e-5)
    # a second sequence after reset does not see the first one's cache
    torch.testing.assert_close(step.prefill(ids.flip(0)), full.flip(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_kv_heads", [1, 4])
def test_exportable_prefill_equals_the_eager_forward(n_kv_heads: int) -> None:
    lm = _lm(n_kv_heads)
    ids = torch.randint(0, 23, (3, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ExportablePrefill(lm, 7)(ids), lm(ids), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"ids: expected \(B, 7\) token ids"):
        ExportablePrefill(lm, 7)(ids[:, :5])
    with pytest.raises(ValueError, match="seq_len: expected a positive length"):
        ExportablePrefill(lm, 0)


def test_decode_step_rejects_bad_input() -> None:
    lm = _lm()
    with pytest.raises(ValueError, match="max_kv_len, batch: expected positive integers"):
        StaticKVDecodeStep(lm, max_kv_len=0)
    with pytest.raises(ValueError, match="at most max_kv_len=4 tokens"):
        StaticKVDecodeStep(lm, max_kv_len=4).prefill(torch.zeros(1, 5, dtype=torch.long))
    bidirectional = TransformerLM(TransformerLMConfig(vocab_size=8, dim=16, n_layers=1, n_heads=2, causal=False))
    with pytest.raises(ValueError, match="expected a causal TransformerLM"):
        StaticKVDecodeStep(bidirectional, max_kv_len=4)


@pytest.mark.slow
@pytest.mark.skipif(not executorch_available(), reason="executorch not installed")
def test_decode_step_lowers_with_only_the_allowed_fallbacks_and_matches_eager() -> None:
    lm = _lm(2)
    ids = torch.randint(0, 23, (1, 6), generator=torch.Generator().manual_seed(2))
    step = StaticKVDecodeStep(lm, max_kv_len=8)
    program = lower_to_executorch(step, (ids[:, :1], torch.tensor([0])))
    check_delegation(program, DECODE_ALLOWED)
    runner = ExecuTorchRunner(program)
    runtime = torch.cat([runner(ids[:, t : t + 1], torch.tensor([t])) for t in range(6)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(runtime, lm(ids), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not executorch_available(), reason="executorch not installed")
def test_exportable_prefill_lowers_with_only_the_embedding_outside_xnnpack() -> None:
    lm = _lm(2)
    ids = torch.randint(0, 23, (1, 6), generator=torch.Generator().manual_seed(4))
    program = lower_to_executorch(ExportablePrefill(lm, 6), (ids,))
    assert program.non_delegated == ["aten.embedding.default"]
    check_delegation(program, PREFILL_ALLOWED)
    with torch.no_grad():
        torch.testing.assert_close(ExecuTorchRunner(program)(ids), lm(ids), rtol=1e-4, atol=1e-4)
