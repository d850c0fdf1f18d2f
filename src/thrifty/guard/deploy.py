"""ExecuTorch/XNNPACK lowering of a guard LM (through :mod:`thrifty.core.deploy`) and runtime checks."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from thrifty.core.deploy import ExecuTorchRunner, Int4PackedEmbedding, LoweredProgram, lower_to_executorch
from thrifty.core.lm import TransformerLM
from thrifty.core.lm_export import ExportablePrefill, StaticKVDecodeStep
from thrifty.guard.quant import dequantized_copy


def lower_guard(model: TransformerLM, seq_len: int) -> LoweredProgram:
    """Lower ``model`` (ids ``(1, seq_len)`` -> logits) to a ``.pte``; the eager model is left unchanged.

    The graph is :class:`~thrifty.core.lm_export.ExportablePrefill` (RoPE and mask as tables, matmul RMSNorm),
    so XNNPACK takes every op but the embedding lookup and the TTFT measures the model, not portable fallbacks.

    A converted int4 embedding becomes an :class:`~thrifty.core.deploy.Int4PackedEmbedding`, so the ``.pte``
    holds it at 4 bits and ExecuTorch's quantised embedding kernel runs it (an int8 embedding is exported
    with its rounded values in fp32, see :func:`thrifty.guard.quant.dequantized_copy`); every linear keeps its
    real 8da4w form, delegated to XNNPACK.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len: expected a positive length, got {seq_len}")
    export = _export_copy(model)
    example = torch.zeros(1, seq_len, dtype=torch.long, device=next(model.parameters()).device)
    return lower_to_executorch(ExportablePrefill(export, seq_len), (example,))


def lower_guard_decode(model: TransformerLM, max_kv_len: int) -> LoweredProgram:
    """Lower the one-token static-KV decode step of ``model`` (``(token (1, 1), pos (1,)) -> logits``)."""
    if max_kv_len <= 0:
        raise ValueError(f"max_kv_len: expected a positive length, got {max_kv_len}")
    step = StaticKVDecodeStep(_export_copy(model), max_kv_len)
    device = step.rope_cos.device
    example = (torch.zeros(1, 1, dtype=torch.long, device=device), torch.zeros(1, dtype=torch.long, device=device))
    return lower_to_executorch(step, example)


def _export_copy(model: nn.Module) -> nn.Module:
    """A deep copy for export: int4 embeddings packed, int8 ones dequantised (the eager model is untouched)."""
    export = copy.deepcopy(model).eval()
    pack_int4_embeddings(export)
    dequantized_copy(export)
    return export


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


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of ``call()`` over ``max(1, repeats)`` runs."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def time_first_token(runner: ExecuTorchRunner, ids: Tensor, repeats: int = 5) -> float:
    """Median seconds of one prefill ``ids (1, T)`` in the runtime (the time to the first answer token)."""
    prompt = ids.cpu()
    return _median_seconds(lambda: runner(prompt), repeats)


def time_decode_token(runner: ExecuTorchRunner, position: int, repeats: int = 20) -> float:
    """Median seconds of one decode step at ``position`` in the runtime (the static cache costs the same at
    every position, so ``1 / this`` is the decode tokens/s)."""
    token, pos = torch.zeros(1, 1, dtype=torch.long), torch.tensor([position])
    runner(token, pos)  # warm-up
    return _median_seconds(lambda: runner(token, pos), repeats)
