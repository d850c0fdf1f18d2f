"""Strategy bookkeeping: offsets, Adam-state surgery, ADC masks, SteepGS selection, budget."""

from __future__ import annotations

import pytest
import torch

from thrifty.steepgs import gaussian_ops
from thrifty.steepgs.render import render_2d
from thrifty.steepgs.strategy import ADCStrategy, SteepStrategy

F64 = torch.float64


def make_params(n: int = 6, seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    raw = {
        "means": torch.rand(n, 2, generator=g, dtype=F64) * 12,
        "scales": torch.randn(n, 2, generator=g, dtype=F64),
        "angles": torch.rand(n, generator=g, dtype=F64),
        "opacities": torch.randn(n, generator=g, dtype=F64),
        "colors": torch.rand(n, 3, generator=g, dtype=F64),
    }
    params = {k: torch.nn.Parameter(v) for k, v in raw.items()}
    optimizers = {k: torch.optim.Adam([p], lr=0.01) for k, p in params.items()}
    for p in params.values():  # one step so Adam has non-zero moments
        p.grad = torch.randn(p.shape, generator=g, dtype=F64)
    for opt in optimizers.values():
        opt.step()
    return params, optimizers


def moments(params: dict, optimizers: dict, name: str) -> torch.Tensor:
    return optimizers[name].state[params[name]]["exp_avg"]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_offspring_offsets_sum_to_zero_per_parent(k: int) -> None:
    dirs = torch.nn.functional.normalize(torch.randn(k, 3, dtype=F64), dim=-1)
    offsets = gaussian_ops.symmetric_offsets(dirs, torch.rand(k, dtype=F64) + 0.1)
    # Offspring j of parent i are rows i and i + k (the layout ``repeat(2, ...)`` of the parent rows).
    torch.testing.assert_close(offsets[:k] + offsets[k:], torch.zeros(k, 3, dtype=F64))
    # The official tiling (repeat(2, 1), sign + on even rows, - on odd rows) fails this for even k.
    repo_sign = torch.tensor([1.0 if r % 2 == 0 else -1.0 for r in range(2 * k)], dtype=F64)
    repo = dirs.repeat(2, 1) * repo_sign[:, None]
    assert torch.allclose(repo[:k] + repo[k:], torch.zeros(k, 3, dtype=F64)) == (k % 2 == 1)


def test_remove_keeps_adam_rows_aligned() -> None:
    params, optimizers = make_params()
    before = {k: (p.detach().clone(), moments(params, optimizers, k).clone()) for k, p in params.items()}
    state = {"grad2d": torch.arange(6.0, dtype=F64), "count": torch.ones(6, dtype=F64)}
    mask = torch.tensor([True, False, False, True, False, True])
    gaussian_ops.remove(params, optimizers, state, mask)
    for k, (p0, m0) in before.items():
        torch.testing.assert_close(params[k].detach(), p0[~mask])
        torch.testing.assert_close(moments(params, optimizers, k), m0[~mask])
        assert optimizers[k].param_groups[0]["params"][0] is params[k]
    torch.testing.assert_close(state["grad2d"], torch.tensor([1.0, 2.0, 4.0], dtype=F64))


def test_duplicate_and_replace_give_new_rows_zero_moments() -> None:
    params, optimizers = make_params()
    m0 = moments(params, optimizers, "means").clone()
    state = {"grad2d": torch.ones(6, dtype=F64)}
    clone = torch.tensor([False, True, False, False, True, False])
    gaussian_ops.duplicate(params, optimizers, state, clone)
    assert params["means"].shape == (8, 2) and state["grad2d"].shape == (8,)
    torch.testing.assert_close(params["means"].detach()[6:], params["means"].detach()[clone.nonzero().squeeze(1)])
    torch.testing.assert_close(moments(params, optimizers, "means")[:6], m0)
    assert (moments(params, optimizers, "means")[6:] == 0).all() and (state["grad2d"][6:] == 0).all()
    parents = torch.zeros(8, dtype=torch.bool)
    parents[0] = True
    offspring = {k: p.detach()[:1].repeat(2, *([1] * (p.dim() - 1))) for k, p in params.items()}
    gaussian_ops.replace(params, optimizers, state, parents, offspring)
    assert params["angles"].shape == (9,)
    torch.testing.assert_close(moments(params, optimizers, "means")[:5], m0[1:])
    # Adam still steps with the rewritten parameters.
    for p in params.values():
        p.grad = torch.ones_like(p)
    for opt in optimizers.values():
        opt.step()
    with pytest.raises(ValueError, match="offspring"):
        gaussian_ops.replace(params, optimizers, state, torch.zeros(9, dtype=torch.bool), {"means": torch.zeros(1, 2)})


def test_reset_opacity_caps_and_zeroes_moments() -> None:
    params, optimizers = make_params()
    gaussian_ops.reset_opacity(params, optimizers, 0.01)
    assert torch.sigmoid(params["opacities"]).max() <= 0.01 + 1e-9
    assert (moments(params, optimizers, "opacities") == 0).all()
    assert (moments(params, optimizers, "means") != 0).any()


def synthetic_state(params: dict, grads: list[float], scene_scale: float = 1.0) -> dict:
    return {
        "scene_scale": scene_scale,
        "grad2d": torch.tensor(grads, dtype=F64) * 2,
        "count": torch.full((len(grads),), 2.0, dtype=F64),
    }


def test_adc_masks_follow_3dgs_rules() -> None:
    params, optimizers = make_params()
    with torch.no_grad():
        params["scales"].copy_(
            torch.log(torch.tensor([0.005, 0.005, 0.02, 0.02, 0.005, 0.02], dtype=F64))[:, None].expand(6, 2)
        )
    state = synthetic_state(params, [3e-4, 1e-4, 3e-4, 1e-4, 2e-4, 2e-4])
    means0 = params["means"].detach().clone()
    ADCStrategy(split_div=1.6).grow(params, optimizers, state)
    # Clone 0 and 4 (small, grad >= 2e-4); split 2 and 5 (large) into 2 offspring each, parents removed.
    assert params["means"].shape[0] == 6 + 2 + 2
    torch.testing.assert_close(params["means"].detach()[:4], means0[[0, 1, 3, 4]])
    torch.testing.assert_close(params["means"].detach()[4:6], means0[[0, 4]])
    torch.testing.assert_close(torch.exp(params["scales"].detach()[6:]), torch.full((4, 2), 0.02 / 1.6, dtype=F64))


def test_adc_prune_and_budget() -> None:
    params, optimizers = make_params()
    with torch.no_grad():
        params["opacities"].copy_(torch.logit(torch.tensor([0.001, 0.5, 0.5, 0.004, 0.5, 0.5], dtype=F64)))
        params["scales"].fill_(float(torch.log(torch.tensor(0.001))))
    state = synthetic_state(params, [1e-3, 5e-4, 3e-4, 0.0, 0.0, 0.0])
    means0 = params["means"].detach().clone()
    ADCStrategy(max_gaussians=8).grow(params, optimizers, state)
    # 3 candidates but room for 2: the two highest gradients (0 and 1) are cloned.
    torch.testing.assert_close(params["means"].detach()[6:], means0[[0, 1]])
    ADCStrategy().prune(params, optimizers, state, step=100)
    # Gaussian 0, its clone and Gaussian 3 are below opacity 0.005.
    assert torch.sigmoid(params["opacities"]).min() >= 0.005 and params["means"].shape[0] == 5


def test_steep_selects_negative_eigenvalues_and_splits_symmetrically() -> None:
    params, optimizers = make_params(4)
    with torch.no_grad():
        params["scales"].fill_(0.0)  # scale 1 > 0.01: all "large"
    state = synthetic_state(params, [3e-4, 3e-4, 1e-4, 3e-4])
    state["split_mats"] = (
        torch.stack(
            [torch.diag(torch.tensor(v, dtype=F64)) for v in ([-1.0, 2.0], [1.0, 2.0], [-1.0, 1.0], [0.5, -3.0])]
        )
        * 2
    )
    parents = params["means"].detach().clone()
    opac0 = torch.sigmoid(params["opacities"].detach())
    SteepStrategy(grow_grad2d=2e-4).grow(params, optimizers, state)
    # Gaussian 0 (v = x axis) and 3 (v = y axis) split; 1 (S >= 0) and 2 (low gradient) stay.
    assert params["means"].shape[0] == 6
    kids = params["means"].detach()[2:]
    torch.testing.assert_close((kids[[0, 1]] + kids[[2, 3]]) / 2, parents[[0, 3]])
    assert torch.allclose(kids[0, 1], parents[0, 1]) and torch.allclose(kids[1, 0], parents[3, 0])
    torch.testing.assert_close(torch.sigmoid(params["opacities"].detach()[2:]), opac0[[0, 3, 0, 3]] / 2)
    torch.testing.assert_close(torch.exp(params["scales"].detach()[2:]), torch.full((4, 2), 1 / 1.6, dtype=F64))


def test_strategy_end_to_end_2d_steps() -> None:
    params, optimizers = make_params(10)
    target = torch.rand(12, 12, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    for strategy in (
        ADCStrategy(refine_start_iter=1, refine_every=2, grow_grad2d=1e-6, reset_every=0, grow_scale3d=1.0),
        SteepStrategy(refine_start_iter=1, refine_every=2, grow_grad2d=0.0, reset_every=0),
    ):
        p, opt = {k: torch.nn.Parameter(v.detach().clone()) for k, v in params.items()}, None
        opt = {k: torch.optim.Adam([v], lr=0.01) for k, v in p.items()}
        strategy.check_sanity(p, opt)
        state = strategy.initialize_state(scene_scale=1.0)
        for step in range(5):
            img, info = render_2d(p["means"], p["scales"], p["angles"], p["opacities"], p["colors"], 12, 12)
            strategy.step_pre_backward(p, opt, state, step, info)
            ((img - target) ** 2).mean().backward()
            strategy.step_post_backward(p, opt, state, step, info)
            for o in opt.values():
                o.step()
                o.zero_grad()
        assert p["means"].shape[0] > 10
        assert all(opt[k].state[v]["exp_avg"].shape == v.shape for k, v in p.items())
        assert state["grad2d"].shape[0] == p["means"].shape[0]


def test_strategy_validation_errors() -> None:
    with pytest.raises(ValueError, match="opacity_rule"):
        ADCStrategy(opacity_rule="double")
    with pytest.raises(ValueError, match="estimator"):
        SteepStrategy(estimator="partial")
    with pytest.raises(ValueError, match="max_gaussians"):
        ADCStrategy(max_gaussians=0)
    params, optimizers = make_params()
    with pytest.raises(ValueError, match="optimizers"):
        ADCStrategy().check_sanity(params, {k: v for k, v in optimizers.items() if k != "colors"})
