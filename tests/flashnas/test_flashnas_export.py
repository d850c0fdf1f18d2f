"""ExecuTorch deployment: the lowered programs match eager and stay (almost) fully delegated."""

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
from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.model import FlashLM, PrefillExport, StaticKVDecoder

pytestmark = pytest.mark.skipif(not executorch_available(), reason="executorch (with XNNPACK) does not import")


@pytest.fixture(scope="module")
def et_model() -> FlashLM:
    cfg = FlashLMConfig(
        vocab_size=13, d_model=32, n_heads=4, n_kv_heads=2, head_dim=8, ffn=(48, 32), attn=(True, False), max_seq_len=16
    )
    torch.manual_seed(0)
    model = FlashLM(cfg, "matmul").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model


def test_prefill_program_matches_eager_and_is_delegated(et_model: FlashLM) -> None:
    tokens = torch.randint(0, 13, (1, 12), generator=torch.Generator().manual_seed(0))
    wrapper = PrefillExport(et_model, 12)
    program = lower_to_executorch(wrapper, (tokens,))
    check_delegation(program, PREFILL_ALLOWED)
    assert program.n_delegates >= 1 and program.size_mb > 0
    with torch.no_grad():
        expected = wrapper(tokens)
    torch.testing.assert_close(ExecuTorchRunner(program)(tokens), expected, rtol=1e-4, atol=1e-4)


def test_decode_program_matches_eager_stepwise(et_model: FlashLM) -> None:
    decoder = StaticKVDecoder(et_model, max_kv_len=8)
    tokens = torch.randint(0, 13, (1, 8), generator=torch.Generator().manual_seed(1))
    program = lower_to_executorch(decoder, (tokens[:, :1], torch.tensor([0])))
    check_delegation(program, DECODE_ALLOWED)
    runner = ExecuTorchRunner(program)
    decoder.reset()
    full = et_model(tokens).detach()
    for t in range(8):
        got = runner(tokens[:, t : t + 1], torch.tensor([t]))
        torch.testing.assert_close(got, full[:, t : t + 1], rtol=1e-4, atol=1e-4)
