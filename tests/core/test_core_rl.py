"""GRPO pieces: advantages, the clipped token-level loss against its loop reference, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.rl import group_advantages, grpo_loss, grpo_loss_reference, informative_groups, k3_kl


def _tensors(b: int = 5, length: int = 7, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(b, length, generator=g, dtype=torch.float64) * 3).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(b, length, generator=g, dtype=torch.float64)
    ref = logp.detach() + 0.5 * torch.randn(b, length, generator=g, dtype=torch.float64)
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 1:] = False
    return logp, old, ref, adv, mask


def test_equal_rewards_give_zero_advantages_and_groups_sum_to_zero() -> None:
    rewards = torch.tensor([1.0, 1.0, 1.0, 3.0, 0.0, 2.4, 1.9, 3.0])
    adv = group_advantages(rewards, 4)
    assert (adv[:3] < 0).all() and adv[3] > 0
    assert torch.allclose(adv.view(2, 4).sum(1), torch.zeros(2), atol=1e-5)
    flat = group_advantages(torch.full((6,), 2.5), 3)
    assert torch.equal(flat, torch.zeros(6))


def test_advantages_use_unbiased_std_and_eps() -> None:
    rewards = torch.tensor([0.0, 1.0, 2.0, 3.0])
    std = rewards.std()  # unbiased
    expected = (rewards - 1.5) / (std + 1e-4)
    assert torch.allclose(group_advantages(rewards, 4), expected)
    assert torch.allclose(group_advantages(rewards, 4, scale=False), rewards - 1.5)


def test_informative_groups() -> None:
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 2.0, 2.0])
    assert informative_groups(rewards, 2).tolist() == [False, True, False]


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_matches_loop_reference_with_gradients(beta: float) -> None:
    logp, old, ref, adv, mask = _tensors()
    fast = grpo_loss(logp, old, ref, adv, mask, clip=0.2, beta=beta)
    (g_fast,) = torch.autograd.grad(fast, logp)
    slow = grpo_loss_reference(logp, old, ref, adv, mask, clip=0.2, beta=beta)
    (g_slow,) = torch.autograd.grad(slow, logp)
    assert torch.allclose(fast, slow, atol=1e-12)
    assert torch.allclose(g_fast, g_slow, atol=1e-12)


def test_on_policy_gradient_is_minus_mean_advantage_times_grad_logp() -> None:
    logp, _, _, adv, mask = _tensors(seed=3)
    loss = grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0)
    (grad,) = torch.autograd.grad(loss, logp)
    n_tokens = mask.sum(1, keepdim=True).double()
    expected = -(adv[:, None] * mask) / n_tokens / logp.shape[0]
    assert torch.allclose(grad, expected, atol=1e-12)


def test_clip_stops_gradient_outside_the_trust_region() -> None:
    logp = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    old = torch.full((1, 1), -1.0, dtype=torch.float64)  # ratio e > 1.2
    loss = grpo_loss(logp, old, None, torch.ones(1, dtype=torch.float64), torch.ones(1, 1), beta=0.0)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad.item() == 0.0 and loss.item() == pytest.approx(-1.2)


def test_bnpo_is_a_token_mean_and_k3_is_nonnegative() -> None:
    logp, old, ref, adv, mask = _tensors(seed=1)
    per_seq = grpo_loss(logp, old, ref, adv, mask, loss_type="grpo")
    per_tok = grpo_loss(logp, old, ref, adv, mask, loss_type="bnpo")
    assert not torch.allclose(per_seq, per_tok)
    kl = k3_kl(logp.detach(), ref)
    assert (kl >= 0).all() and torch.equal(k3_kl(ref, ref), torch.zeros_like(ref))


def test_bad_input_errors() -> None:
    logp, old, ref, adv, mask = _tensors()
    with pytest.raises(ValueError, match="group_size: expected at least 2"):
        group_advantages(torch.ones(4), 1)
    with pytest.raises(ValueError, match="rewards: expected finite values"):
        group_advantages(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="rewards: expected shape"):
        group_advantages(torch.ones(5), 2)
    with pytest.raises(ValueError, match="advantages: expected shape"):
        grpo_loss(logp, old, ref, adv[:2], mask)
    with pytest.raises(ValueError, match="ref_logp: expected"):
        grpo_loss(logp, old, None, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="loss_type: expected"):
        grpo_loss(logp, old, ref, adv, mask, loss_type="dapo")  # type: ignore[arg-type]
