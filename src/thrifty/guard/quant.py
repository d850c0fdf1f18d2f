"""INT4 quantisation of the guard student: torchao 8da4w (PTQ and QAT), plain-torch references, GGUF Q4_0.

8da4w [card]: every linear weight int4 symmetric ``[-8, 7]`` per group of ``group_size`` input features
(scales ``[out, in/g]``), every linear input int8 asymmetric, dynamic, per token; the input embedding int4
weight-only. The card uses ``g = 256``; a tiny model (``d = 128``) needs ``g <= 128`` (``None`` = per
output channel). The peer baseline is llama.cpp's Q4_0 (weights only, 4.5 bits per weight) through the
``gguf`` package's own quantiser.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from thrifty.core.optional import require


def _is_embedding(module: nn.Module, _fqn: str = "") -> bool:
    return isinstance(module, nn.Embedding)


def check_group_size(model: nn.Module, group_size: int | None) -> None:
    """Raise ValueError naming ``group_size`` unless it divides every linear in-width and the embedding dim."""
    if group_size is None:
        return
    if group_size <= 0:
        raise ValueError(f"group_size: expected a positive integer or None (per channel), got {group_size}")
    for name, module in model.named_modules():
        width = module.in_features if isinstance(module, nn.Linear) else getattr(module, "embedding_dim", None)
        if width is not None and width % group_size:
            raise ValueError(f"group_size: expected a divisor of {name}'s width {width}, got {group_size}")


def _configs(group_size: int | None, embedding_bits: int | None) -> tuple[Any, Any | None]:
    """``(linear 8da4w config, embedding weight-only config or None)``."""
    quant = require("torchao.quantization")
    gran = require("torchao.quantization.granularity")
    granularity = gran.PerAxis(0) if group_size is None else gran.PerGroup(group_size)
    linear = quant.Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=granularity)
    if embedding_bits is None:
        return linear, None
    if embedding_bits not in (4, 8):
        raise ValueError(f"embedding_bits: expected 4, 8 or None, got {embedding_bits}")
    dtype = torch.int4 if embedding_bits == 4 else torch.int8
    return linear, quant.IntxWeightOnlyConfig(weight_dtype=dtype, granularity=granularity)


def quantize_8da4w(
    model: nn.Module, group_size: int | None = 256, embedding_bits: int | None = 4, qat: bool = False
) -> nn.Module:
    """Quantise ``model`` in place with torchao: PTQ (``qat=False``) or QAT ``prepare`` (``qat=True``).

    QAT replaces linears by ``FakeQuantizedLinear`` (and the embedding by ``FakeQuantizedEmbedding``): train
    it, then call :func:`convert_8da4w` with the same arguments.

    Raises:
        ValueError: if ``group_size`` does not divide a linear's in-width or the embedding dim.
    """
    check_group_size(model, group_size)
    linear, embedding = _configs(group_size, embedding_bits)
    quant = require("torchao.quantization")
    if qat:
        qat_mod = require("torchao.quantization.qat")
        quant.quantize_(model, qat_mod.QATConfig(linear, step="prepare"))
        if embedding is not None:
            quant.quantize_(model, qat_mod.QATConfig(embedding, step="prepare"), filter_fn=_is_embedding)
        return model
    quant.quantize_(model, linear)
    if embedding is not None:
        quant.quantize_(model, embedding, filter_fn=_is_embedding)
    return model


def convert_8da4w(model: nn.Module, group_size: int | None = 256, embedding_bits: int | None = 4) -> nn.Module:
    """QAT ``convert``: fake-quantised modules -> real int4 weights (``IntxUnpackedToInt8Tensor``), in place."""
    linear, embedding = _configs(group_size, embedding_bits)
    quant = require("torchao.quantization")
    qat_mod = require("torchao.quantization.qat")
    quant.quantize_(model, qat_mod.QATConfig(linear, step="convert"))
    if embedding is not None:
        quant.quantize_(model, qat_mod.QATConfig(embedding, step="convert"), filter_fn=_is_embedding)
    return model


def fake_quant_weight_reference(weight: Tensor, group_size: int | None, bits: int = 4) -> tuple[Tensor, Tensor]:
    """Symmetric group-wise quant -> dequant of ``weight (out, in)``; returns ``(dequantised, scales (out, in/g))``.

    ``scale = max(|min|, max) / ((qmax - qmin) / 2)`` (``/ 7.5`` for int4), zero point 0, ``q = clamp(round(w *
    (1 / scale)), qmin, qmax)`` [code: torchao]; the reciprocal matters at exact ties (``-7.5`` rounds to ``-7``).
    """
    out_features, in_features = weight.shape
    group = in_features if group_size is None else group_size
    if in_features % group:
        raise ValueError(f"group_size: expected a divisor of {in_features}, got {group_size}")
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    w = weight.float().reshape(out_features, in_features // group, group)
    amax = torch.maximum(w.amin(-1).neg().clamp(min=0), w.amax(-1).clamp(min=0))
    scale = (amax / ((qmax - qmin) / 2)).clamp(min=torch.finfo(torch.float32).eps)
    q = torch.clamp(torch.round(w * (1.0 / scale[..., None])), qmin, qmax)
    return (q * scale[..., None]).reshape(out_features, in_features).to(weight.dtype), scale


def fake_quant_activation_reference(x: Tensor, bits: int = 8) -> Tensor:
    """Asymmetric dynamic per-token quant -> dequant of ``x (..., C)``.

    ``scale = (max+ - min-) / (qmax - qmin)`` with the range stretched to contain 0 and clamped at eps;
    ``zp = qmin - round(min- / scale)``; ``q = clamp(round(x * (1 / scale)) + zp, qmin, qmax)`` [code: torchao].
    """
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    xf = x.float()
    lo = xf.amin(-1, keepdim=True).clamp(max=0)
    hi = xf.amax(-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / (qmax - qmin)).clamp(min=torch.finfo(torch.float32).eps)
    zero_point = qmin - torch.round(lo / scale)
    q = torch.clamp(torch.round(xf * (1.0 / scale)) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).to(x.dtype)


def q4_0_roundtrip(weight: Tensor) -> tuple[Tensor, int]:
    """GGUF Q4_0 quant -> dequant of ``weight (out, in)`` with ``gguf.quants``; returns ``(dequantised, bytes)``.

    Raises:
        ValueError: if ``in`` is not a multiple of Q4_0's block of 32.
    """
    gguf = require("gguf")
    if weight.dim() != 2 or weight.shape[1] % 32:
        raise ValueError(f"weight: expected (out, in) with in a multiple of 32, got {tuple(weight.shape)}")
    qtype = gguf.GGMLQuantizationType.Q4_0
    packed = gguf.quants.quantize(weight.detach().float().cpu().numpy(), qtype)
    restored = gguf.quants.dequantize(packed, qtype).astype(np.float32)
    return torch.from_numpy(restored).to(weight.device, weight.dtype), int(packed.nbytes)


@torch.no_grad()
def apply_q4_0(model: nn.Module) -> dict[str, float]:
    """Replace every ``nn.Linear`` and ``nn.Embedding`` weight by its Q4_0 round trip, in place.

    Returns ``{"q4_0_bytes", "n_weights", "bits_per_weight"}`` of the quantised tensors.
    """
    n_bytes, n_weights = 0, 0
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            restored, size = q4_0_roundtrip(module.weight)
            module.weight.copy_(restored)
            n_bytes, n_weights = n_bytes + size, n_weights + module.weight.numel()
    if n_weights == 0:
        raise ValueError("model: expected at least one nn.Linear or nn.Embedding to quantise")
    return {"q4_0_bytes": float(n_bytes), "n_weights": float(n_weights), "bits_per_weight": 8.0 * n_bytes / n_weights}


def int4_bits_per_weight(group_size: int | None, in_features: int, scale_bits: int = 32) -> float:
    """Bits per weight of group-wise int4: ``4 + scale_bits / g`` (per channel: ``g = in_features``)."""
    return 4.0 + scale_bits / (in_features if group_size is None else group_size)


def dequantized_copy(module: nn.Module) -> None:
    """Replace converted torchao weights of ``nn.Embedding`` modules by plain dequantised fp32 tensors.

    ``thrifty.core.deploy`` lowers without ExecuTorch's quantised kernels, so the int4 embedding is
    exported with its int4-rounded values held in fp32 (same numbers, fp32 bytes).
    """
    for child in module.modules():
        if isinstance(child, nn.Embedding) and hasattr(child.weight, "dequantize"):
            child.weight = nn.Parameter(child.weight.dequantize().float(), requires_grad=False)
