"""The factorial of variants: each variant's selection and placement is what its name says; parity emulation."""

from __future__ import annotations

import pytest
import torch

from thrifty.steepgs import gaussian_ops
from thrifty.steepgs.variants import FACTORIAL_3D, VARIANT_FIELDS, make_strategy

F64 = torch.float64
N = 6
GRAD_SET = {0, 1, 2, 3}  # mean NDC gradient >= threshold
STEEP_SET = {0, 1}  # ... and lambda_min(S) < 0
V_MIN = {0: 0, 1: 1, 2: 2, 4: 0}  # axis of the negative eigenvalue of the Gaussians that may get one


def scene(negative: tuple[int, ...] = (0, 1, 4)) -> tuple[dict, dict, dict]:
    """Six large 3D Gaussians; gradient above threshold for 0-3; a negative eigenvalue for ``negative``."""
    g = torch.Generator().manual_seed(3)
    raw = {
        "means": torch.randn(N, 3, generator=g, dtype=F64),
        "quats": torch.tensor([1.0, 0, 0, 0], dtype=F64).repeat(N, 1),
        "scales": torch.zeros(N, 3, dtype=F64),  # scale 1 > 0.01 x scene scale: every Gaussian is split
        "opacities": torch.randn(N, generator=g, dtype=F64),
        "colors": torch.rand(N, 3, generator=g, dtype=F64),
    }
    params = {k: torch.nn.Parameter(v) for k, v in raw.items()}
    optimizers = {k: torch.optim.Adam([p], lr=0.01) for k, p in params.items()}
    diag = torch.ones(N, 3, dtype=F64) + torch.arange(3, dtype=F64)
    for i in negative:
        diag[i, V_MIN[i]] = -1.0
    state = {
        "scene_scale": 1.0,
        "grad2d": torch.tensor([3e-4] * 4 + [1e-4] * 2, dtype=F64) * 2,
        "count": torch.full((N,), 2.0, dtype=F64),
        "split_mats": torch.diag_embed(diag) * 2,
    }
    return params, optimizers, state


def grow(variant: str, seed: int = 0, negative: tuple[int, ...] = (0, 1, 4)) -> dict:
    """Grow once with ``variant``; returns the selected parents, the parents and the offspring pairs."""
    params, optimizers, state = scene(negative)
    before = {k: v.detach().clone() for k, v in params.items()}
    strategy = make_strategy(variant, 2e-4, every=1, stop=10, reset_every=0, s_thresh=-1e-6, clone_shift=0.0, seed=seed)
    strategy.grow(params, optimizers, state)
    after = {k: v.detach() for k, v in params.items()}
    k = after["means"].shape[0] - N
    survivors = after["means"][: N - k]
    kept = {i for i in range(N) if any(torch.equal(before["means"][i], s) for s in survivors)}
    selected = sorted(set(range(N)) - kept)
    first, second = slice(N - k, N), slice(N, N + k)
    return {
        "selected": selected,
        "parents": {name: value[selected] for name, value in before.items()},
        "kids": ({n: v[first] for n, v in after.items()}, {n: v[second] for n, v in after.items()}),
    }


def assert_steep_placement(out: dict) -> None:
    """Offspring pairs sit at p +/- l v_min (midpoint = parent, displacement along v_min only)."""
    one, two = out["kids"]
    torch.testing.assert_close((one["means"] + two["means"]) / 2, out["parents"]["means"])
    for row, parent in enumerate(out["selected"]):
        shift = one["means"][row] - out["parents"]["means"][row]
        off_axis = torch.ones(3, dtype=torch.bool)
        off_axis[V_MIN[parent]] = False
        assert shift[V_MIN[parent]].abs() > 1e-6 and shift[off_axis].abs().max() < 1e-12


def assert_adc_placement(out: dict) -> None:
    """ADC split: two independent samples, so the pair's midpoint is not the parent."""
    one, two = out["kids"]
    mid = (one["means"] + two["means"]) / 2
    assert ((mid - out["parents"]["means"]).norm(dim=-1) > 1e-6).all()


def opacity_ratio(out: dict) -> torch.Tensor:
    return torch.sigmoid(out["kids"][0]["opacities"]) / torch.sigmoid(out["parents"]["opacities"])


def test_adc_selects_gradient_set_and_samples_offspring() -> None:
    out = grow("adc")
    assert set(out["selected"]) == GRAD_SET
    assert_adc_placement(out)
    torch.testing.assert_close(opacity_ratio(out), torch.ones(4, dtype=F64))


@pytest.mark.parametrize("variant", ["steepgs", "steepgs_released"])
def test_steepgs_variants_filter_and_split_along_v_min(variant: str) -> None:
    out = grow(variant)
    assert set(out["selected"]) == STEEP_SET
    assert_steep_placement(out)
    expected = 0.5 if variant == "steepgs" else 1.0  # paper halves; the released default keeps opacity
    torch.testing.assert_close(opacity_ratio(out), torch.full((2,), expected, dtype=F64))


def test_released_variants_use_the_inv_cov_proxy_and_paper_uses_exact_s() -> None:
    assert (
        make_strategy("steepgs", 1e-3, every=1, stop=2, reset_every=0, s_thresh=0.0, clone_shift=0.0, seed=0).estimator
        == "identity"
    )
    for variant in ("steepgs_released", "steepgs_released_parity"):
        strategy = make_strategy(variant, 1e-3, every=1, stop=2, reset_every=0, s_thresh=0.0, clone_shift=0.0, seed=0)
        assert strategy.estimator == "inv_cov" and strategy.opacity_rule == "keep"
    assert (
        make_strategy(
            "steepgs_released", 1e-3, every=1, stop=2, reset_every=0, s_thresh=0, clone_shift=0, seed=0
        ).parity_bug
        is False
    )


def test_parity_emulation_puts_both_offspring_on_one_side_for_even_counts() -> None:
    even = grow("steepgs_released_parity")  # 2 splits
    assert len(even["selected"]) == 2
    one, two = even["kids"]
    torch.testing.assert_close(one["means"], two["means"])  # same side: the pair coincides
    assert ((one["means"] - even["parents"]["means"]).norm(dim=-1) > 1e-6).all()
    odd = grow("steepgs_released_parity", negative=(0, 1, 2))  # 3 splits
    assert len(odd["selected"]) == 3
    assert_steep_placement(odd)  # opposite sides, as without the bug


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_parity_bug_offsets_layout(k: int) -> None:
    dirs = torch.nn.functional.normalize(
        torch.randn(k, 3, dtype=F64, generator=torch.Generator().manual_seed(k)), dim=-1
    )
    lengths = torch.rand(k, dtype=F64) + 0.1
    buggy = gaussian_ops.parity_bug_offsets(dirs, lengths)
    sign = torch.tensor([1.0 if r % 2 == 0 else -1.0 for r in range(2 * k)], dtype=F64)
    torch.testing.assert_close(buggy, (dirs * lengths[:, None]).repeat(2, 1) * sign[:, None])
    pair_sum = buggy[:k] + buggy[k:]  # zero iff the two offspring of each parent are on opposite sides
    if k % 2 == 0:
        torch.testing.assert_close(buggy[:k], buggy[k:])
        assert (pair_sum.norm(dim=-1) > 0.1).all()
    else:
        torch.testing.assert_close(pair_sum, torch.zeros(k, 3, dtype=F64))


def test_selection_only_filters_like_steepgs_but_places_like_adc() -> None:
    out = grow("selection_only")
    assert set(out["selected"]) == STEEP_SET
    assert_adc_placement(out)
    torch.testing.assert_close(opacity_ratio(out), torch.ones(2, dtype=F64))


def test_placement_only_selects_like_adc_but_places_like_steepgs() -> None:
    out = grow("placement_only")
    assert set(out["selected"]) == GRAD_SET
    one, two = out["kids"]
    torch.testing.assert_close((one["means"] + two["means"]) / 2, out["parents"]["means"])
    torch.testing.assert_close(opacity_ratio(out), torch.full((4,), 0.5, dtype=F64))


def test_random_veto_removes_as_many_random_candidates_as_the_filter() -> None:
    picks = set()
    for seed in range(8):
        out = grow("random_veto", seed=seed)
        assert len(out["selected"]) == len(STEEP_SET) and set(out["selected"]) <= GRAD_SET
        assert_adc_placement(out)
        picks.add(tuple(out["selected"]))
    assert len(picks) > 1  # random, not the eigenvalue filter in disguise


def test_no_densify_never_grows() -> None:
    params, optimizers, state = scene()
    strategy = make_strategy("no_densify", 0.0, every=1, stop=10, reset_every=0, s_thresh=0.0, clone_shift=0.0, seed=0)
    strategy.step_post_backward(params, optimizers, state, step=5, info={})
    assert params["means"].shape[0] == N


def test_every_factorial_variant_is_known_and_unknown_names_fail() -> None:
    assert set(FACTORIAL_3D) <= set(VARIANT_FIELDS)
    with pytest.raises(ValueError, match="variant: expected one of"):
        make_strategy("adc2", 1e-3, every=1, stop=2, reset_every=0, s_thresh=0.0, clone_shift=0.0, seed=0)
