"""Invariants of the semi-autoregressive masked-diffusion sampler."""

from __future__ import annotations

import pytest
import torch

from thrifty.dtrpo.model import DiffusionLMConfig, MaskedDiffusionLM
from thrifty.dtrpo.sampler import gumbel_argmax, num_transfer_tokens, sample

VOCAB, MASK = 7, 6


class Recorder(MaskedDiffusionLM):
    """Records every canvas the sampler feeds, to check per-step invariants."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(DiffusionLMConfig(vocab_size=VOCAB, mask_id=MASK, dim=16, n_layers=1, n_heads=2))
        self.seen: list[torch.Tensor] = []

    def forward(self, ids, attn_mask=None, pos_ids=None):  # type: ignore[override]
        self.seen.append(ids.clone())
        return super().forward(ids, attn_mask, pos_ids) * 20  # sharpen, so that sampling is not uniform


def test_num_transfer_tokens_even_split() -> None:
    counts = num_transfer_tokens(torch.tensor([7, 4, 0]), 3)
    assert counts.tolist() == [[3, 2, 2], [2, 1, 1], [0, 0, 0]]


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
@pytest.mark.parametrize("gen_len,block,steps", [(8, 4, 4), (6, 3, 6), (5, 5, 2)])
def test_sampler_invariants(remasking: str, gen_len: int, block: int, steps: int) -> None:
    model = Recorder()
    prompt = torch.randint(0, MASK, (3, 4), generator=torch.Generator().manual_seed(0))
    out, order = sample(
        model,
        prompt,
        gen_len,
        block,
        steps,
        temperature=1.0,
        remasking=remasking,
        generator=torch.Generator().manual_seed(1),
        return_order=True,
    )
    assert torch.equal(out[:, :4], prompt)
    assert not (out == MASK).any()
    per_block = steps // (gen_len // block)
    expected = num_transfer_tokens(torch.tensor([block]), per_block)[0]
    states = model.seen + [out]
    assert len(model.seen) == steps
    for before, after in zip(states[:-1], states[1:], strict=True):
        revealed = before != MASK
        assert torch.equal(after[revealed], before[revealed])  # never remasked or changed
        assert torch.equal(after[:, :4], prompt)
    for step in range(steps):
        newly = (states[step + 1] != MASK) & (states[step] == MASK)
        assert (newly.sum(1) == expected[step % per_block]).all()
        assert torch.equal(newly[:, 4:], order == step)
        blk = step // per_block  # only the current block changes
        outside = torch.ones(gen_len, dtype=torch.bool)
        outside[blk * block : (blk + 1) * block] = False
        assert not newly[:, 4:][:, outside].any()


def test_temperature_zero_is_deterministic_and_greedy_ignores_generator() -> None:
    model = Recorder()
    prompt = torch.randint(0, MASK, (4, 3))
    a = sample(model, prompt, 4, 2, 4, generator=torch.Generator().manual_seed(0))
    b = sample(model, prompt, 4, 2, 4, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a, b)
    c = sample(model, prompt, 4, 2, 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    d = sample(model, prompt, 4, 2, 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(c, d)


def test_gumbel_argmax_samples_the_softmax() -> None:
    logits = torch.log(torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)).expand(20000, 3)
    draws = gumbel_argmax(logits, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).double() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64), atol=0.015, rtol=0)
    assert torch.equal(gumbel_argmax(logits, 0.0, None), torch.ones(20000, dtype=torch.long))


def test_sampler_bad_arguments() -> None:
    model, prompt = Recorder(), torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="block"):
        sample(model, prompt, 6, 4, 4)
    with pytest.raises(ValueError, match="steps"):
        sample(model, prompt, 8, 4, 3)
    with pytest.raises(ValueError, match="remasking"):
        sample(model, prompt, 4, 2, 2, remasking="top_p")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_resp"):
        sample(model, prompt, 0, 1, 1)
