"""NTI against the prompt-to-prompt-style reference; GEO's loss reducing to NTI's; Direct Inversion; descriptor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from geo_helpers import SCHED, embeddings, image, scheduler, tiny_model

from thrifty.geo import (
    GeometricAccumulationLoss,
    GeometryDescriptor,
    ddim_invert,
    denoise_step,
    direct_inversion_offsets,
    optimize_null_embeddings,
    reconstruct,
)
from thrifty.geo.reference import reference_descriptor, reference_null_text_inversion


def _setup(steps: int = 5, batch: int = 1):
    model = tiny_model(steps)
    cond, null = embeddings(batch)
    img = image(batch)
    return model, cond, null, img, ddim_invert(model, model.encode(img), cond)


def test_nti_equals_prompt_to_prompt_reference() -> None:
    model, cond, null, _, traj = _setup()
    ours = optimize_null_embeddings(model, traj, cond, null, w=7.5, inner_steps=4)
    theirs = reference_null_text_inversion(model.unet, SCHED, 5, traj, cond, null, 7.5, num_inner_steps=4)
    for a, b in zip(ours.nulls, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert ours.inner_steps == [4] * 5  # the random model never reaches the early-stop threshold


def test_early_stop_threshold_grows_with_the_step_index() -> None:
    model, cond, null, _, traj = _setup()
    out = optimize_null_embeddings(
        model, traj, cond, null, w=7.5, inner_steps=6, early_stop=-1.0, early_stop_growth=1e9
    )
    assert out.inner_steps == [1, 1, 1, 1, 6]  # i = 0 (step 5) has threshold -1; every later step stops at once


def test_horizon1_lambda0_equals_nti_loss_from_the_scheduler() -> None:
    model, cond, null, _, traj = _setup(batch=1)
    sched = scheduler()
    sched.set_timesteps(5)
    step = 4
    t = model.timesteps[step - 1]
    eps_u, eps_c = model.eps(traj[step], step, null), model.eps(traj[step], step, cond)
    nti = F.mse_loss(sched.step(eps_u + 7.5 * (eps_c - eps_u), t, traj[step], eta=0.0).prev_sample, traj[step - 1])
    loss = GeometricAccumulationLoss(horizon=1, lambda_geo=0.0)
    with torch.no_grad():
        eps_cond = model.eps(traj[step], step, cond)
    ours = loss(model, traj[step], step, traj, cond, null, 7.5, eps_cond=eps_cond)
    torch.testing.assert_close(ours, nti, rtol=1e-5, atol=0)
    geo = GeometricAccumulationLoss(horizon=2, lambda_geo=0.0)(model, traj[step], step, traj, cond, null, 7.5)
    z3 = denoise_step(model, traj[step], step, cond, null, 7.5)
    two = nti + F.mse_loss(denoise_step(model, z3, step - 1, cond, null, 7.5), traj[step - 2])
    torch.testing.assert_close(geo, two, rtol=1e-5, atol=0)


def test_geometry_term_reaches_the_null_and_changes_the_result() -> None:
    model, cond, null, img, traj = _setup()
    null = null.clone().requires_grad_(True)
    loss = GeometricAccumulationLoss(horizon=1, lambda_geo=1.0, descriptor=GeometryDescriptor(lowpass_weight=0.0))
    base = GeometricAccumulationLoss()(model, traj[3], 3, traj, cond, null, 3.0)
    value = loss(model, traj[3], 3, traj, cond, null, 3.0, image=img)
    (grad,) = torch.autograd.grad(value - base, null)
    assert float((value - base).detach()) > 0 and torch.count_nonzero(grad) > 0


def test_null_gets_zero_gradient_at_w1() -> None:
    model, cond, null, img, traj = _setup()
    null = null.clone().requires_grad_(True)
    GeometricAccumulationLoss(horizon=2, lambda_geo=1.0)(model, traj[3], 3, traj, cond, null, 1.0, image=img).backward()
    assert torch.count_nonzero(null.grad) == 0


@pytest.mark.parametrize("w", [1.0, 3.0, 7.5])
def test_direct_inversion_reconstructs_to_float_tolerance(w: float) -> None:
    model, cond, null, _, traj = _setup(batch=2)
    offsets = direct_inversion_offsets(model, traj, cond, null, w)
    torch.testing.assert_close(reconstruct(model, traj[-1], cond, null, w, offsets=offsets), traj[0], rtol=0, atol=1e-4)


def test_nti_reconstructs_better_than_ddim_at_high_guidance() -> None:
    model, cond, null, _, traj = _setup()
    ddim = reconstruct(model, traj[-1], cond, null, 7.5)
    nti = optimize_null_embeddings(model, traj, cond, null, w=7.5, inner_steps=10)
    rec = reconstruct(model, traj[-1], cond, nti.nulls, 7.5)
    assert F.mse_loss(rec, traj[0]) < 0.9 * F.mse_loss(ddim, traj[0])


def test_geo_inversion_is_deterministic() -> None:
    model, cond, null, img, traj = _setup()
    loss = GeometricAccumulationLoss(horizon=2, lambda_geo=0.1)
    runs = [optimize_null_embeddings(model, traj, cond, null, w=3.0, inner_steps=2, loss=loss, image=img) for _ in "ab"]
    assert all(torch.equal(a, b) for a, b in zip(runs[0].nulls, runs[1].nulls, strict=True))


def test_pivot_cond_branch_equals_exact_at_horizon1_and_differs_beyond() -> None:
    model, cond, null, _, traj = _setup()
    with torch.no_grad():
        losses = {
            (k, branch): GeometricAccumulationLoss(horizon=k, cond_branch=branch)(
                model, traj[4], 4, traj, cond, null, 3.0
            )
            for k in (1, 3)
            for branch in ("exact", "pivot")
        }
    torch.testing.assert_close(losses[1, "exact"], losses[1, "pivot"], rtol=1e-5, atol=0)  # z is the pivot
    assert not torch.equal(losses[3, "exact"], losses[3, "pivot"]) and float(losses[3, "pivot"]) > 0


def test_descriptor_equals_loop_reference_and_passes_gradcheck() -> None:
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    desc = GeometryDescriptor(sigma=1.3)
    torch.testing.assert_close(desc.features(x), reference_descriptor(x, 1.3))
    ref = torch.rand_like(x)
    region = torch.rand(2, 1, 5, 7, dtype=torch.float64)
    xs = x[:, :, :4, :4].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: desc(v, ref[:, :, :4, :4] + 0.3, region[:, :, :4, :4]), (xs,))
    assert torch.autograd.gradcheck(lambda v: desc.features(v), (xs,))


def test_bad_loss_and_inversion_arguments_raise() -> None:
    model, cond, null, _, traj = _setup(steps=3)
    with pytest.raises(ValueError, match="horizon: 4 is larger than the 3 DDIM steps"):
        optimize_null_embeddings(model, traj, cond, null, loss=GeometricAccumulationLoss(horizon=4))
    with pytest.raises(ValueError, match="horizon: 3 is larger than the 2 remaining steps"):
        GeometricAccumulationLoss(horizon=3, truncate=False)(model, traj[2], 2, traj, cond, null, 3.0)
    with pytest.raises(ValueError, match="image: required by the geometry term"):
        optimize_null_embeddings(model, traj, cond, null, loss=GeometricAccumulationLoss(lambda_geo=0.1))
    with pytest.raises(ValueError, match="traj: expected 4 latents"):
        optimize_null_embeddings(model, traj[:-1], cond, null)
    with pytest.raises(ValueError, match="weights: expected 2 weights"):
        GeometricAccumulationLoss(horizon=2, weights=(1.0,))
    with pytest.raises(ValueError, match="w: expected a guidance scale >= 1, got 0.0"):
        optimize_null_embeddings(model, traj, cond, null, w=0.0)
