"""DDIM step, inversion and reconstruction against diffusers' schedulers; analytic round trips; bad input."""

from __future__ import annotations

import pytest
import torch
from geo_helpers import SCHED, embeddings, image, scheduler, tiny_model

from thrifty.core.optional import require
from thrifty.geo import DiffusionModel, cfg_eps, ddim_invert, ddim_step, reconstruct
from thrifty.geo.reference import reference_ddim_invert, reference_reconstruct


@pytest.mark.parametrize("offset,alpha_one,steps", [(1, False, 7), (0, True, 13), (1, True, 50)])
def test_ddim_step_equals_diffusers_step(offset: int, alpha_one: bool, steps: int) -> None:
    sched = scheduler(steps_offset=offset, set_alpha_to_one=alpha_one)
    model = DiffusionModel(torch.nn.Identity(), sched, steps)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    for t in sched.timesteps:
        z, eps = torch.randn(2, 3, 5, 6, generator=g), torch.randn(2, 3, 5, 6, generator=g)
        s = int((model.timesteps == t).nonzero()) + 1
        ours = ddim_step(eps, model.levels[s], model.levels[s - 1], z)
        theirs = sched.step(eps, t, z, eta=0.0).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_ddim_invert_equals_ddim_inverse_scheduler() -> None:
    model = tiny_model(steps=6)
    cond, _ = embeddings(2)
    z0 = image() * 2 - 1
    ours = ddim_invert(model, z0, cond)
    theirs = reference_ddim_invert(model.unet, SCHED, 6, z0, cond)
    assert len(ours) == len(theirs) == 7
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_reconstruct_equals_ddim_scheduler_with_per_step_nulls() -> None:
    model = tiny_model(steps=5)
    cond, null = embeddings(2)
    nulls = [null + 0.1 * i for i in range(5)]
    zT = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    ours = reconstruct(model, zT, cond, nulls, 3.0)
    torch.testing.assert_close(
        ours, reference_reconstruct(model.unet, SCHED, 5, zT, cond, nulls, 3.0), rtol=1e-4, atol=1e-4
    )


class ConstantEps(torch.nn.Module):
    def __init__(self, eps: torch.Tensor) -> None:
        super().__init__()
        self.value = eps

    def forward(self, z, t, encoder_hidden_states):  # noqa: ANN001, ANN201
        return self.value.expand_as(z)


def test_round_trip_exact_for_eps_constant_in_z() -> None:
    eps = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    model = DiffusionModel(ConstantEps(eps), scheduler(), 9)
    z0 = image(2, 4) * 2 - 1
    traj = ddim_invert(model, z0, torch.zeros(1, 1, 1))
    back = reconstruct(model, traj[-1], torch.zeros(1, 1, 1), None, 1.0)
    torch.testing.assert_close(back, z0, rtol=0, atol=1e-5)


class GaussianScore(torch.nn.Module):
    """Exact eps for data ~ N(0, var I): eps(z, t) = sqrt(1 - a) z / (a var + 1 - a)."""

    def __init__(self, alphas_cumprod: torch.Tensor, var: float) -> None:
        super().__init__()
        self.alphas, self.var = alphas_cumprod.double(), var

    def forward(self, z, t, encoder_hidden_states):  # noqa: ANN001, ANN201
        a = self.alphas[t]
        return (1 - a).sqrt() * z / (a * self.var + 1 - a)


def test_round_trip_error_shrinks_with_steps_for_gaussian_score() -> None:
    sched = scheduler()
    z0 = 0.5 * torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = []
    for steps in (5, 20, 80):
        model = DiffusionModel(GaussianScore(sched.alphas_cumprod, 0.25), sched, steps)
        model.levels = model.levels.double()
        traj = ddim_invert(model, z0, torch.zeros(1, 1, 1))
        errors.append(float((reconstruct(model, traj[-1], torch.zeros(1, 1, 1), None, 1.0) - z0).abs().max()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.2 * errors[0], errors


def test_cfg_eps_batched_equals_two_calls_and_w1_gives_zero_null_gradient() -> None:
    model = tiny_model()
    cond, null = embeddings(2)
    z = image() * 2 - 1
    expected = model.eps(z, 3, null) + 2.5 * (model.eps(z, 3, cond) - model.eps(z, 3, null))
    torch.testing.assert_close(cfg_eps(model, z, 3, cond, null, 2.5), expected, rtol=1e-5, atol=1e-6)
    null = null.clone().requires_grad_(True)
    cfg_eps(model, z, 3, cond, null, 1.0).square().sum().backward()
    assert null.grad is not None and torch.count_nonzero(null.grad) == 0
    null.grad = None
    cfg_eps(model, z, 3, cond, null, 1.5).square().sum().backward()
    assert torch.count_nonzero(null.grad) > 0


def test_bad_input_raises_clear_errors() -> None:
    model = tiny_model()
    cond, null = embeddings()
    with pytest.raises(ValueError, match=r"image: expected values in \[0, 1\]"):
        model.encode(image() * 2)
    with pytest.raises(ValueError, match=r"image: expected a float tensor of shape \(B, 3, H, W\), got \(3, 8, 8\)"):
        model.encode(image()[0])
    with pytest.raises(ValueError, match="w: expected a guidance scale >= 1, got 0.5"):
        ddim_invert(model, image() * 2 - 1, cond, null, 0.5)
    with pytest.raises(ValueError, match="scheduler: expected prediction_type 'epsilon'.*'v_prediction'"):
        DiffusionModel(model.unet, scheduler(prediction_type="v_prediction"), 5)
    with pytest.raises(ValueError, match="uncond: required when w != 1"):
        cfg_eps(model, image() * 2 - 1, 1, cond, None, 3.0)
    inverse = require("diffusers").DDIMInverseScheduler(**SCHED)
    assert torch.equal(DiffusionModel(model.unet, inverse, 5).levels, model.levels)
