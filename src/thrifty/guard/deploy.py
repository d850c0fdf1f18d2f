"""ExecuTorch/XNNPACK lowering of a guard LM (through :mod:`thrifty.core.deploy`) and runtime checks."""

from __future__ import annotations

import copy
import time

import torch
from torch import Tensor, nn

from thrifty.core.deploy import ExecuTorchRunner, LoweredProgram, lower_to_executorch
from thrifty.guard.quant import dequantized_copy


def lower_guard(model: nn.Module, seq_len: int) -> LoweredProgram:
    """Lower ``model`` (ids ``(1, seq_len)`` -> logits) to a ``.pte``; the eager model is left unchanged.

    A converted int4 embedding is exported with its int4-rounded values in fp32 (see
    :func:`thrifty.guard.quant.dequantized_copy`); every linear keeps its real 8da4w form.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len: expected a positive length, got {seq_len}")
    export = copy.deepcopy(model).eval()
    dequantized_copy(export)
    example = torch.zeros(1, seq_len, dtype=torch.long, device=next(model.parameters()).device)
    return lower_to_executorch(export, (example,))


@torch.no_grad()
def runtime_logits(runner: ExecuTorchRunner, ids: Tensor) -> Tensor:
    """Run ``ids (B, T)`` one row at a time through the runtime (the program's batch is 1) -> ``(B, T, V)``."""
    return torch.cat([runner(ids[i : i + 1].cpu()) for i in range(ids.shape[0])]).to(ids.device)


def time_first_token(runner: ExecuTorchRunner, ids: Tensor, repeats: int = 5) -> float:
    """Median seconds of one prefill ``ids (1, T)`` in the runtime (the time to the first answer token)."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        runner(ids.cpu())
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
