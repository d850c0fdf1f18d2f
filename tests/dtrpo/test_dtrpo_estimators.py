"""Log-ratio estimators: unbiasedness against enumerated orders, variance, shared masks, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from thrifty.dtrpo.estimators import (
    DTRPOEstimator,
    ElboEstimator,
    ExactTrajectoryEstimator,
    MeanFieldEstimator,
    logratio,
    score_plan,
)
from thrifty.dtrpo.model import DiffusionLMConfig, MaskedDiffusionLM
from thrifty.dtrpo.reference import order_averaged_logratio, trajectory_logratio
from thrifty.dtrpo.sampler import sample

VOCAB, MASK = 7, 6


def tiny_model(seed: int, std: float = 0.5) -> MaskedDiffusionLM:
    torch.manual_seed(seed)
    model = MaskedDiffusionLM(
        DiffusionLMConfig(vocab_size=VOCAB, mask_id=MASK, dim=16, n_layers=2, n_heads=2, impl="naive")
    ).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=std)
    return model.eval()


def _repeat(prompt: torch.Tensor, resp: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return prompt.expand(n, -1).contiguous(), resp.expand(n, -1).contiguous()


@pytest.mark.parametrize("block,steps", [(4, 2), (3, 3)])
def test_dtrpo_estimators_unbiased_for_order_averaged_logratio(block: int, steps: int) -> None:
    policy, ref = tiny_model(0), tiny_model(1)
    prompt, resp = torch.tensor([[1, 4]]), torch.tensor([[3, 0, 5, 2, 1, 4, 0, 3][: 2 * block]])
    exact = order_averaged_logratio(policy, ref, prompt, resp, block, steps, MASK)[0]
    n = 3000
    p_n, r_n = _repeat(prompt, resp, n)
    sds = {}
    with torch.no_grad():
        for kind in ("newly", "rao_blackwell"):
            est = DTRPOEstimator(block, MASK, steps, estimator=kind)
            plan = est.plan(p_n, r_n, torch.Generator().manual_seed(7))
            values = logratio(policy, ref, p_n, r_n, plan)
            se = values.std() / n**0.5
            assert abs(values.mean() - exact) < 4 * se, (kind, float(values.mean()), float(exact), float(se))
            sds[kind] = float(values.std())
    assert sds["rao_blackwell"] < sds["newly"]
    assert abs(float(exact)) > 0.1  # the check is not vacuous


def test_exact_estimator_replays_the_recorded_trajectory() -> None:
    policy, ref = tiny_model(0), tiny_model(1)
    prompt = torch.randint(0, MASK, (3, 2), generator=torch.Generator().manual_seed(0))
    seq, order = sample(
        policy, prompt, 6, 3, 6, temperature=1.0, generator=torch.Generator().manual_seed(3), return_order=True
    )
    resp = seq[:, 2:]
    est = ExactTrajectoryEstimator(3, MASK, 3)
    plan = est.plan(prompt, resp, order=order)
    assert plan.n_forwards == est.forwards_per_response(6) == 6
    with torch.no_grad():
        fast = logratio(policy, ref, prompt, resp, plan)
    slow = trajectory_logratio(policy, ref, prompt, resp, order, 3, 3, MASK)
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=0)
    # with the recorded order, dTRPO's single-step estimate averages to the same trajectory log-ratio
    n = 3000
    p_n, r_n = _repeat(prompt[:1], resp[:1], n)
    o_n = order[:1].expand(n, -1)
    dtrpo = DTRPOEstimator(3, MASK, 3, estimator="newly", order_source="recorded")
    with torch.no_grad():
        values = logratio(policy, ref, p_n, r_n, dtrpo.plan(p_n, r_n, torch.Generator().manual_seed(1), o_n))
    assert abs(values.mean() - slow[0]) < 4 * values.std() / n**0.5


ALL = [
    ElboEstimator(2, MASK, n_mc=3),
    MeanFieldEstimator(2, MASK),
    DTRPOEstimator(2, MASK, 2),
    DTRPOEstimator(2, MASK, 1, estimator="rao_blackwell"),
    ExactTrajectoryEstimator(2, MASK, 2),
]


@pytest.mark.parametrize("est", ALL, ids=lambda e: f"{e.name}")
def test_policy_equal_to_reference_gives_zero_logratio(est) -> None:
    policy = tiny_model(0)
    prompt, resp = torch.randint(0, MASK, (4, 3)), torch.randint(0, MASK, (4, 6))
    plan = est.plan(prompt, resp, torch.Generator().manual_seed(0))
    assert plan.n_forwards == est.forwards_per_response(6)
    with torch.no_grad():
        rho = logratio(policy, copy.deepcopy(policy), prompt, resp, plan)
        assert torch.equal(rho, torch.zeros(4, dtype=rho.dtype))
        assert (score_plan(policy, prompt, resp, plan) < 0).all()


def test_shared_masks_reduce_variance_of_the_logratio() -> None:
    policy = tiny_model(0)
    ref = copy.deepcopy(policy)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    prompt, resp = _repeat(torch.tensor([[1, 2]]), torch.tensor([[3, 0, 5, 2]]), 2000)
    est = ElboEstimator(2, MASK, n_mc=1)
    with torch.no_grad():
        plan_a = est.plan(prompt, resp, torch.Generator().manual_seed(0))
        plan_b = est.plan(prompt, resp, torch.Generator().manual_seed(1))
        shared = logratio(policy, ref, prompt, resp, plan_a)
        independent = score_plan(policy, prompt, resp, plan_a) - score_plan(ref, prompt, resp, plan_b)
    assert shared.var() < 0.5 * independent.var()


def test_estimator_bad_inputs() -> None:
    prompt, resp = torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 6, dtype=torch.long)
    with pytest.raises(ValueError, match="block"):
        DTRPOEstimator(4, MASK, 2).plan(prompt, resp)
    with pytest.raises(ValueError, match="n_resp"):
        ElboEstimator(2, MASK).plan(prompt, resp[:, :0])
    with pytest.raises(ValueError, match="batch size"):
        MeanFieldEstimator(2, MASK).plan(prompt[:1], resp)
    with pytest.raises(ValueError, match="order"):
        DTRPOEstimator(2, MASK, 2, order_source="recorded").plan(prompt, resp)
    with pytest.raises(ValueError, match="order"):
        ExactTrajectoryEstimator(2, MASK, 2).plan(prompt, resp, order=torch.full((2, 6), 5))
    with pytest.raises(ValueError, match="estimator"):
        DTRPOEstimator(2, MASK, 2, estimator="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps_per_block"):
        DTRPOEstimator(2, MASK, 3)


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits are an input tensor, to gradcheck the estimators w.r.t. the logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, ids, attn_mask=None, pos_ids=None):  # noqa: ARG002
        return self.logits.expand(ids.shape[0], -1, -1)[:, : ids.shape[1]]


def test_gradcheck_of_the_dtrpo_logratio_wrt_logits() -> None:
    prompt, resp = torch.tensor([[1, 2]]), torch.tensor([[3, 0, 5, 2]])
    ref_logits = torch.randn(1, 2 + 8, VOCAB, dtype=torch.float64)
    for kind in ("newly", "rao_blackwell"):
        plan = DTRPOEstimator(2, MASK, 2, estimator=kind).plan(prompt, resp, torch.Generator().manual_seed(0))

        def fn(logits: torch.Tensor, plan=plan) -> torch.Tensor:
            return logratio(FixedLogits(logits), FixedLogits(ref_logits), prompt, resp, plan)

        logits = torch.randn(1, 10, VOCAB, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(fn, (logits,), fast_mode=True)
