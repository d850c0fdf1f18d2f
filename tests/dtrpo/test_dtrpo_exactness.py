"""The exact-trajectory arm is exact: enumeration against the sampler's true trajectory probability."""

from __future__ import annotations

import itertools

import pytest
import torch

from thrifty.dtrpo.estimators import ExactTrajectoryEstimator, logratio
from thrifty.dtrpo.model import DiffusionLMConfig, MaskedDiffusionLM
from thrifty.dtrpo.reference import sampler_trajectory_logprob
from thrifty.dtrpo.sampler import sample

VOCAB, MASK = 4, 3  # three real tokens; the sampler never draws MASK
BLOCK, STEPS, N_RESP = 2, 2, 4  # two blocks, one token per step
PROMPT = torch.tensor([[1, 0]])


def sharp_model(seed: int) -> MaskedDiffusionLM:
    torch.manual_seed(seed)
    model = MaskedDiffusionLM(
        DiffusionLMConfig(vocab_size=VOCAB, mask_id=MASK, dim=16, n_layers=2, n_heads=2, impl="naive")
    ).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def all_trajectories() -> tuple[torch.Tensor, torch.Tensor]:
    """Every (response, order) pair: ``3^4`` responses times ``2`` orders per block; ``(324, 4)`` each."""
    resps, orders = [], []
    for tokens in itertools.product(range(MASK), repeat=N_RESP):
        for first, second in itertools.product((0, 1), repeat=2):  # which position of each block goes first
            orders.append([1 - first, first, 3 - second, 2 + second])
            resps.append(list(tokens))
    return torch.tensor(resps), torch.tensor(orders)


def _index(resp: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    digits = (resp * torch.tensor([27, 9, 3, 1])).sum(1)
    return digits * 4 + order[:, 0] * 2 + (order[:, 2] - 2)


@pytest.mark.parametrize("remasking", ["random", "low_confidence"])
def test_trajectory_probability_is_the_samplers(remasking: str) -> None:
    model = sharp_model(0)
    resps, orders = all_trajectories()
    prompts = PROMPT.expand(len(resps), -1)
    logp = sampler_trajectory_logprob(model, prompts, resps, orders, BLOCK, STEPS, MASK, remasking)
    cells = _index(resps, orders)
    assert torch.equal(cells.sort().values, torch.arange(len(resps)))  # a bijection onto the cells
    torch.testing.assert_close(logp.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-10, rtol=0)
    n = 8000
    seq, order = sample(
        model,
        PROMPT.expand(n, -1),
        N_RESP,
        BLOCK,
        N_RESP // BLOCK * STEPS,
        temperature=1.0,
        remasking=remasking,  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(0),
        return_order=True,
    )
    freq = torch.bincount(_index(seq[:, 2:], order), minlength=len(resps)).double() / n
    prob = torch.zeros(len(resps), dtype=torch.float64).scatter(0, cells, logp.exp())
    tol = 5 * (prob * (1 - prob) / n).sqrt() + 2e-4
    assert bool(((freq - prob).abs() <= tol).all()), float((freq - prob).abs().max())


def test_exact_estimator_is_the_full_logratio_under_random_remasking_only() -> None:
    policy, ref = sharp_model(0), sharp_model(1)
    resps, orders = all_trajectories()
    prompts = PROMPT.expand(len(resps), -1)
    est = ExactTrajectoryEstimator(BLOCK, MASK, STEPS)
    with torch.no_grad():
        replay = logratio(policy, ref, prompts, resps, est.plan(prompts, resps, order=orders)).double()
    full = {
        mode: sampler_trajectory_logprob(policy, prompts, resps, orders, BLOCK, STEPS, MASK, mode)
        - sampler_trajectory_logprob(ref, prompts, resps, orders, BLOCK, STEPS, MASK, mode)
        for mode in ("random", "low_confidence")
    }
    torch.testing.assert_close(replay, full["random"], atol=1e-10, rtol=0)  # q = 1/C(m, c) cancels
    assert float((replay - full["low_confidence"]).abs().median()) > 0.05  # q does not cancel here


def test_trajectory_logprob_bad_arguments() -> None:
    model = sharp_model(0)
    resp, order = torch.zeros(1, 4, dtype=torch.long), torch.tensor([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="remasking"):
        sampler_trajectory_logprob(model, PROMPT, resp, order, BLOCK, STEPS, MASK, "top_k")
    with pytest.raises(ValueError, match="one token per step"):
        sampler_trajectory_logprob(model, PROMPT, resp, torch.tensor([[0, 0, 1, 1]]), 2, 1, MASK, "low_confidence")
