"""Scan equivalence (every mode vs the paper-form oracle), gradients, state passing, bounds, bad input."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.testing import assert_close_ratio
from thrifty.longhorn.ops import SCAN_MODES, compute_eps, decay_and_input, longhorn_scan, longhorn_step
from thrifty.longhorn.reference import naive_longhorn_scan

SHAPES = [
    pytest.param(2, 13, 5, 3, 4, id="B2-L13-E5-N3-C4"),
    pytest.param(1, 1, 3, 2, 8, id="B1-L1-E3-N2-C8"),
    pytest.param(3, 16, 4, 5, 16, id="B3-L16-E4-N5-C16"),
    pytest.param(1, 33, 6, 4, 7, id="B1-L33-E6-N4-C7"),
]


def make_inputs(batch: int, length: int, channels: int, n_state: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {
        "x": r(batch, length, channels),
        "k": r(batch, length, n_state),
        "q": r(batch, length, n_state),
        "beta_logit": r(batch, length, channels),
        "z": r(batch, length, channels),
        "D": r(channels),
        "initial_state": r(batch, channels, n_state),
    }


SCAN_VARIANTS = [(m, "auto") for m in SCAN_MODES] + [("recurrent", "batched"), ("recurrent", "stepwise")]


def _scan_all_inputs(t: dict, mode: str, backward: str = "auto", chunk_size: int = 32) -> tuple:
    """``longhorn_scan`` on every input of ``make_inputs`` with the final state returned."""
    return longhorn_scan(
        t["x"],
        t["k"],
        t["q"],
        t["beta_logit"],
        D=t["D"],
        z=t["z"],
        initial_state=t["initial_state"],
        mode=mode,
        chunk_size=chunk_size,
        return_final_state=True,
        backward=backward,
    )


@pytest.mark.parametrize("mode", SCAN_MODES)
@pytest.mark.parametrize(("batch", "length", "channels", "n_state", "chunk"), SHAPES)
def test_every_mode_equals_the_paper_form_oracle(
    mode: str, batch: int, length: int, channels: int, n_state: int, chunk: int
) -> None:
    t = make_inputs(batch, length, channels, n_state)
    ref_y, ref_s = naive_longhorn_scan(t["x"], t["k"], t["q"], t["beta_logit"], t["D"], t["z"], t["initial_state"])
    y, s = _scan_all_inputs(t, mode, chunk_size=chunk)
    torch.testing.assert_close(y, ref_y, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s, ref_s, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("mode", "backward"), SCAN_VARIANTS)
def test_gradcheck_including_initial_and_final_state(mode: str, backward: str) -> None:
    t = {n: v.requires_grad_() for n, v in make_inputs(2, 7, 3, 2, seed=1).items()}
    names = ("x", "k", "q", "beta_logit", "z", "D", "initial_state")

    def fn(*args):  # noqa: ANN002, ANN202
        return _scan_all_inputs(dict(zip(names, args, strict=True)), mode, backward, chunk_size=3)

    assert torch.autograd.gradcheck(fn, tuple(t[n] for n in names))


@pytest.mark.parametrize("backward", ["batched", "stepwise"])
def test_fast_gradients_equal_reference_gradients_fp32(backward: str) -> None:
    t = make_inputs(2, 40, 8, 4, seed=2)
    grads = {}
    for mode in ("reference", "recurrent"):
        leaves = {n: v.float().requires_grad_() for n, v in t.items()}
        y, s = _scan_all_inputs(leaves, mode, backward)
        ((y * torch.linspace(-1, 1, 8)).sum() + s.pow(2).sum()).backward()
        grads[mode] = {n: v.grad for n, v in leaves.items()}
    for name in t:
        assert_close_ratio(f"d{name}", grads["reference"][name], grads["recurrent"][name], ratio=5e-3)


@pytest.mark.parametrize("mode", SCAN_MODES)
def test_split_sequence_state_passing_equals_one_pass(mode: str) -> None:
    t = make_inputs(2, 11, 4, 3, seed=3)
    kw = {"D": t["D"], "mode": mode, "chunk_size": 4, "return_final_state": True}
    full_y, full_s = longhorn_scan(t["x"], t["k"], t["q"], t["beta_logit"], **kw)
    parts = [slice(0, 5), slice(5, 11)]
    state, ys = None, []
    for part in parts:
        y, state = longhorn_scan(
            t["x"][:, part],
            t["k"][:, part],
            t["q"][:, part],
            t["beta_logit"][:, part],
            initial_state=state,
            **kw,
        )
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), full_y)
    torch.testing.assert_close(state, full_s)


def test_step_by_step_equals_scan() -> None:
    t = make_inputs(2, 9, 4, 3, seed=4)
    y_full, s_full = longhorn_scan(
        t["x"],
        t["k"],
        t["q"],
        t["beta_logit"],
        D=t["D"],
        z=t["z"],
        initial_state=t["initial_state"],
        return_final_state=True,
    )
    state = t["initial_state"]
    for i in range(9):
        y_t, state = longhorn_step(
            state, t["x"][:, i], t["k"][:, i], t["q"][:, i], t["beta_logit"][:, i], D=t["D"], z_t=t["z"][:, i]
        )
        torch.testing.assert_close(y_t, y_full[:, i])
    torch.testing.assert_close(state, s_full)


def test_eps_formula_and_decay_bounds() -> None:
    t = make_inputs(3, 50, 6, 4, seed=5)
    u, k = t["beta_logit"] * 4, t["k"] * 3
    beta = torch.sigmoid(u)
    norm2 = k.pow(2).sum(-1, keepdim=True)
    eps = compute_eps(u, k)
    torch.testing.assert_close(eps, beta / (1 + beta * norm2))
    decay, _ = decay_and_input(eps, t["x"], k)
    lower = (1.0 / (1.0 + beta * norm2)).unsqueeze(-1)
    assert bool((decay > 0).all()) and bool((decay <= 1).all())
    assert bool((decay >= lower - 1e-12).all())


def test_causality() -> None:
    t = make_inputs(1, 12, 3, 2, seed=6)
    y, _ = longhorn_scan(t["x"], t["k"], t["q"], t["beta_logit"], z=t["z"])
    for name in ("x", "k", "q", "beta_logit", "z"):
        changed = dict(t)
        changed[name] = t[name].clone()
        changed[name][:, 7] += 1.0
        y2, _ = longhorn_scan(changed["x"], changed["k"], changed["q"], changed["beta_logit"], z=changed["z"])
        torch.testing.assert_close(y2[:, :7], y[:, :7], rtol=0, atol=0)
        assert not torch.allclose(y2[:, 7], y[:, 7]), name


def test_fp32_inputs_keep_fp32_state_and_low_precision_returns_input_dtype() -> None:
    t = make_inputs(1, 5, 3, 2)
    y, s = longhorn_scan(*(t[n].bfloat16() for n in ("x", "k", "q", "beta_logit")), return_final_state=True)
    assert y.dtype == torch.bfloat16 and s.dtype == torch.float32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": torch.zeros(2, 5)}, "x: expected shape"),
        ({"k": torch.zeros(1, 4, 2)}, "k: expected shape"),
        ({"q": torch.zeros(1, 5, 3)}, "q: expected shape"),
        ({"beta_logit": torch.zeros(1, 5, 4)}, "beta_logit: expected shape"),
        ({"D": torch.zeros(4)}, "D: expected shape"),
        ({"initial_state": torch.zeros(1, 3, 3)}, "initial_state: expected shape"),
        ({"mode": "assoc"}, "mode: expected one of"),
        ({"chunk_size": 0}, "chunk_size: expected a positive int"),
        ({"backward": "fused"}, "backward: expected one of"),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_argument(change: dict, message: str) -> None:
    args = {
        "x": torch.zeros(1, 5, 3),
        "k": torch.zeros(1, 5, 2),
        "q": torch.zeros(1, 5, 2),
        "beta_logit": torch.zeros(1, 5, 3),
    }
    args.update(change)
    with pytest.raises(ValueError, match=message):
        longhorn_scan(args.pop("x"), args.pop("k"), args.pop("q"), args.pop("beta_logit"), **args)


def test_integer_input_raises_type_error() -> None:
    with pytest.raises(TypeError, match="x: expected a floating-point tensor"):
        longhorn_scan(
            torch.zeros(1, 5, 3, dtype=torch.long),
            torch.zeros(1, 5, 2),
            torch.zeros(1, 5, 2),
            torch.zeros(1, 5, 3),
        )
