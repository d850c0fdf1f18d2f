"""Tiny float64 fixtures shared by the flashnas tests."""

from __future__ import annotations

import pytest
import torch
from flashnas_fixtures import random_model

from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.model import FlashLM


@pytest.fixture
def tiny_cfg() -> FlashLMConfig:
    # Awkward on purpose: GQA group 2, uneven FFN widths, an FFN-only middle layer.
    return FlashLMConfig(
        vocab_size=11,
        d_model=16,
        n_heads=4,
        n_kv_heads=2,
        head_dim=4,
        ffn=(12, 8, 10),
        attn=(True, False, True),
        max_seq_len=16,
    )


@pytest.fixture
def tiny_model(tiny_cfg: FlashLMConfig) -> FlashLM:
    return random_model(tiny_cfg)


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(1))
