"""Helpers shared by the flashnas tests (a uniquely named module: importable from any test file)."""

from __future__ import annotations

import torch

from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.model import FlashLM


def random_model(cfg: FlashLMConfig, seed: int = 0, impl: str = "matmul", std: float = 0.3) -> FlashLM:
    """A float64 model with large random weights (so that every path matters numerically)."""
    torch.manual_seed(seed)
    model = FlashLM(cfg, impl).double()  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                p.copy_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model
