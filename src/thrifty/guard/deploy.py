"""ExecuTorch/XNNPACK lowering of a guard LM (through :mod:`thrifty.core.deploy`) and runtime checks."""

from __future__ import annotations

import copy
import time

import torch
from torch import Tensor, nn

from thrifty.core.deploy import ExecuTorchRunner, Int4PackedEmbedding, LoweredProgram, lower_to_executorch
from thrifty.guard.quant import dequantized_copy


def lower_guard(model: nn.Module, seq_len: int) -> LoweredProgram:
    """Lower ``model`` (ids ``(1, seq_len)`` -> logits) to a ``.pte``; the eager model is left unchanged.

    A converted int4 embedding becomes an :class:`~thrifty.core.deploy.Int4PackedEmbedding`, so the ``.pte``
    holds it at 4 bits and ExecuTorch's quantised embedding kernel runs it (an int8 embedding is exported
    with its rounded values in fp32, see :func:`thrifty.guard.quant.dequantized_copy`); every linear keeps its
    real 8da4w form, delegated to XNNPACK.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len: expected a positive length, got {seq_len}")
    export = copy.deepcopy(model).eval()
    pack_int4_embeddings(export)
    dequantized_copy(export)
    example = torch.zeros(1, seq_len, dtype=torch.long, device=next(model.parameters()).device)
    return lower_to_executorch(export, (example,))


def pack_int4_embeddings(module: nn.Module) -> int:
    """Replace, in place, every child ``nn.Embedding`` holding a torchao int4 weight by an
    :class:`~thrifty.core.deploy.Int4PackedEmbedding` with the same numbers; returns how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            weight = getattr(child, "weight", None)
            if isinstance(child, nn.Embedding) and getattr(weight, "target_dtype", None) == torch.int4:
                setattr(parent, name, Int4PackedEmbedding.from_torchao(child))
                replaced += 1
    return replaced


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
