"""Block-diffusion mask, two-copy forward and the LLaDA loss of the tiny masked-diffusion LM."""

from __future__ import annotations

import pytest
import torch

from thrifty.dtrpo.model import (
    DiffusionLMConfig,
    MaskedDiffusionLM,
    block_causal_mask,
    block_diffusion_mask,
    mdlm_loss,
    two_copy_forward,
    two_copy_position_ids,
)
from thrifty.dtrpo.reference import block_diffusion_mask_bruteforce, per_block_logits

VOCAB, MASK = 7, 6


def tiny_model(impl: str = "naive", seed: int = 0) -> MaskedDiffusionLM:
    torch.manual_seed(seed)
    model = MaskedDiffusionLM(
        DiffusionLMConfig(vocab_size=VOCAB, mask_id=MASK, dim=16, n_layers=2, n_heads=2, impl=impl)
    ).double()
    for p in model.parameters():  # larger weights than the 0.02 init, so that every token matters
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


@pytest.mark.parametrize("n_prompt,n_resp,block", [(3, 6, 2), (0, 4, 4), (2, 9, 3), (5, 4, 1)])
def test_block_diffusion_mask_matches_bruteforce(n_prompt: int, n_resp: int, block: int) -> None:
    assert torch.equal(
        block_diffusion_mask(n_prompt, n_resp, block), block_diffusion_mask_bruteforce(n_prompt, n_resp, block)
    )


def test_clean_copy_never_sees_noisy_tokens_and_positions_are_shared() -> None:
    mask = block_diffusion_mask(2, 4, 2)
    assert not mask[6:, 2:6].any()  # clean queries, noisy keys
    assert not mask[:2, 2:].any()  # the prompt sees only itself
    assert two_copy_position_ids(2, 4).tolist() == [0, 1, 2, 3, 4, 5, 2, 3, 4, 5]
    assert block_causal_mask(1, 4, 2).int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
    ]


@pytest.mark.parametrize("impl", ["naive", "sdpa"])
@pytest.mark.parametrize("n_prompt,n_resp,block", [(3, 6, 2), (2, 6, 3), (4, 4, 4)])
def test_one_two_copy_forward_equals_per_block_forwards(impl: str, n_prompt: int, n_resp: int, block: int) -> None:
    model = tiny_model(impl)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, MASK, (3, n_prompt), generator=g)
    clean = torch.randint(0, MASK, (3, n_resp), generator=g)
    noisy = clean.masked_fill(torch.rand(3, n_resp, generator=g) < 0.5, MASK)
    fast = two_copy_forward(model, prompt, noisy, clean, block)
    slow = per_block_logits(model, prompt, noisy, clean, block)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    # and the clean copy matters: corrupting an earlier clean block changes later blocks' logits
    if n_resp // block > 1:
        other = two_copy_forward(model, prompt, noisy, (clean + 1) % MASK, block)
        assert not torch.allclose(other[:, block:], fast[:, block:])
        torch.testing.assert_close(other[:, :block], fast[:, :block], atol=1e-9, rtol=0)


def test_mdlm_loss_single_block_matches_llada_formula() -> None:
    model = tiny_model()
    prompt, resp = torch.randint(0, MASK, (4, 3)), torch.randint(0, MASK, (4, 6))
    loss = mdlm_loss(model, prompt, resp, block=6, eps=1e-3, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # replay the same draws by hand
    t = torch.rand((4, 1), generator=g, dtype=torch.float64)
    p_mask = (1 - 1e-3) * t + 1e-3
    masked = torch.rand((4, 6), generator=g, dtype=torch.float64) < p_mask
    canvas = torch.cat((prompt, resp.masked_fill(masked, MASK)), 1)
    logits = model(canvas, attn_mask=block_causal_mask(3, 6, 6))[:, 3:]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), resp, reduction="none")
    expected = (ce * masked / p_mask).sum(1).div(6).mean()
    torch.testing.assert_close(loss, expected)
    flat = mdlm_loss(model, prompt, resp, 6, generator=torch.Generator().manual_seed(5), weighting="masked_mean")
    torch.testing.assert_close(flat, (ce * masked).sum() / masked.sum())
    with pytest.raises(ValueError, match="weighting"):
        mdlm_loss(model, prompt, resp, 6, weighting="uniform")


def test_bad_layouts_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="block"):
        block_diffusion_mask(2, 6, 4)
    with pytest.raises(ValueError, match="n_resp"):
        block_diffusion_mask(2, 0, 2)
    with pytest.raises(ValueError, match="ids"):
        tiny_model()(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="mask_id"):
        DiffusionLMConfig(vocab_size=4, mask_id=4)
