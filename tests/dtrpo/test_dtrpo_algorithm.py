"""dpo_loss and the DTRPOTrainer: log 2 at the reference, gradients, caching, bad pairs."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from thrifty.core.train import TrainConfig
from thrifty.dtrpo.algorithm import DTRPOTrainer, PreferencePairs, dpo_loss
from thrifty.dtrpo.estimators import DTRPOEstimator, logratio, score_plan
from thrifty.dtrpo.model import DiffusionLMConfig, MaskedDiffusionLM

VOCAB, MASK = 7, 6


def tiny_model(seed: int) -> MaskedDiffusionLM:
    torch.manual_seed(seed)
    return MaskedDiffusionLM(
        DiffusionLMConfig(vocab_size=VOCAB, mask_id=MASK, dim=16, n_layers=1, n_heads=2, impl="naive")
    ).double()


def test_dpo_loss_is_log2_at_the_reference_with_the_dpo_gradient() -> None:
    policy = tiny_model(0)
    ref = copy.deepcopy(policy)
    prompt = torch.randint(0, MASK, (3, 2))
    chosen, rejected = torch.randint(0, MASK, (3, 4)), torch.randint(0, MASK, (3, 4))
    est = DTRPOEstimator(2, MASK, 2)
    plan_w = est.plan(prompt, chosen, torch.Generator().manual_seed(0))
    plan_l = est.plan(prompt, rejected, torch.Generator().manual_seed(1))
    rho_w, rho_l = logratio(policy, ref, prompt, chosen, plan_w), logratio(policy, ref, prompt, rejected, plan_l)
    loss = dpo_loss(rho_w, rho_l, beta=0.3)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-12)
    params = [p for p in policy.parameters()]
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    expected = torch.autograd.grad(-(0.3 / 2) * (rho_w - rho_l).mean(), params)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e)


def test_dpo_loss_gradcheck_and_k_scaling_equals_beta_scaling() -> None:
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    lo = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: dpo_loss(a, b, 0.7, 0.1), (w, lo))
    # a constant factor on the estimate (e.g. the K weight) only rescales beta
    torch.testing.assert_close(dpo_loss(3 * w, 3 * lo, beta=0.1), dpo_loss(w, lo, beta=0.3))


def test_dpo_loss_bad_inputs() -> None:
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(torch.zeros(2), torch.zeros(2), beta=0.0)
    with pytest.raises(ValueError, match="logratio_w"):
        dpo_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(torch.zeros(2), torch.zeros(2), label_smoothing=0.5)


def test_pairs_validation() -> None:
    prompt, resp = torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="same prompt"):
        PreferencePairs.from_responses(prompt, resp, prompt + 1, resp)
    with pytest.raises(ValueError, match="chosen"):
        PreferencePairs(prompt, resp[:, :0], resp[:, :0])
    with pytest.raises(ValueError, match="rejected"):
        PreferencePairs(prompt, resp, resp[:, :2])
    with pytest.raises(ValueError, match="prompt"):
        PreferencePairs(prompt[:0], resp[:0], resp[:0])


def test_trainer_cached_reference_matches_live_reference_and_trains() -> None:
    policy, ref = tiny_model(0), tiny_model(1)
    g = torch.Generator().manual_seed(0)
    pairs = PreferencePairs(
        torch.randint(0, MASK, (6, 2), generator=g),
        torch.randint(0, MASK, (6, 4), generator=g),
        torch.randint(0, MASK, (6, 4), generator=g),
    )
    est = DTRPOEstimator(2, MASK, 2, estimator="rao_blackwell")
    cached = DTRPOTrainer(policy, ref, est, beta=0.5, mask_seed=3)
    cached.prepare(pairs)
    batch = cached.make_batch(pairs, torch.arange(6), torch.Generator())
    live_batch = {**batch, "ref_scores": torch.full_like(batch["ref_scores"], float("nan"))}
    torch.testing.assert_close(cached.loss(policy, batch), cached.loss(policy, live_batch))
    before = [p.detach().clone() for p in policy.parameters()]
    res = cached.train(pairs, TrainConfig(steps=2, lr=1e-2, strategy="none"), batch_size=4)
    assert len(res.losses) == 2 and all(math.isfinite(x) for x in res.losses)
    assert any(not torch.equal(b, p) for b, p in zip(before, policy.parameters(), strict=True))
    assert all(p.grad is None for p in ref.parameters())
    # the optional NLL term adds exactly -w * score_theta(y_w) / L
    rpo = DTRPOTrainer(policy, ref, est, beta=0.5, mask_seed=3, nll_weight=0.7)
    rpo.prepare(pairs)
    plan_w = rpo._plans[0]
    nll = -score_plan(policy, pairs.prompt, pairs.chosen, plan_w).mean() / 4
    torch.testing.assert_close(rpo.loss(policy, batch), cached.loss(policy, batch) + 0.7 * nll)
    with pytest.raises(ValueError, match="nll_weight"):
        DTRPOTrainer(policy, ref, est, nll_weight=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        cached.train(pairs, TrainConfig(steps=1, strategy="none"), batch_size=0)
