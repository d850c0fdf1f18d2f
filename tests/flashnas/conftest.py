"""Tiny float64 fixtures shared by the flashnas tests."""

from __future__ import annotations

import pytest
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


@pytest.fixture
def tiny_cfg() -> FlashLMConfig:
    # Awkward on purpose: GQA group 2, uneven FFN widths, an FFN-only middle layer.
    return FlashLMConfig(vocab_size=11, d_model=16, n_heads=4, n_kv_heads=2, head_dim=4, ffn=(12, 8, 10),
                         attn=(True, False, True), max_seq_len=16)


@pytest.fixture
def tiny_model(tiny_cfg: FlashLMConfig) -> FlashLM:
    return random_model(tiny_cfg)


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(1))
