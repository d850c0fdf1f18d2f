"""Core ExecuTorch deployment helpers on a model-agnostic module: lowering, delegation check, runner."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thrifty.core.deploy import (
    PREFILL_ALLOWED,
    ExecuTorchRunner,
    LoweredProgram,
    check_delegation,
    executorch_available,
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
