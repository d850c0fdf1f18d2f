"""The exact implicit update solves the per-step objective and equals the diagonal form on one-hot keys."""

from __future__ import annotations

import torch

from thrifty.longhorn.ops import longhorn_exact_scan, longhorn_scan
from thrifty.longhorn.reference import exact_objective


def _one_hot_keys(batch: int, length: int, n_state: int, g: torch.Generator, scale: torch.Tensor) -> torch.Tensor:
    slots = torch.randint(0, n_state, (batch, length), generator=g)
    return torch.nn.functional.one_hot(slots, n_state).double() * scale


def test_one_hot_keys_make_diagonal_equal_exact() -> None:
    g = torch.Generator().manual_seed(0)
    x, u = (torch.randn(2, 10, 4, generator=g, dtype=torch.float64) for _ in range(2))
    q = torch.randn(2, 10, 3, generator=g, dtype=torch.float64)
    k = _one_hot_keys(2, 10, 3, g, scale=torch.rand(2, 10, 1, generator=g, dtype=torch.float64) * 3)
    s0 = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    y_d, s_d = longhorn_scan(x, k, q, u, initial_state=s0, return_final_state=True)
    y_e, s_e = longhorn_exact_scan(x, k, q, u, initial_state=s0, return_final_state=True)
    torch.testing.assert_close(y_e, y_d)
    torch.testing.assert_close(s_e, s_d)


def test_dense_keys_make_diagonal_differ_from_exact() -> None:
    g = torch.Generator().manual_seed(1)
    x, u = (torch.randn(1, 6, 4, generator=g, dtype=torch.float64) for _ in range(2))
    k, q = (torch.randn(1, 6, 3, generator=g, dtype=torch.float64) for _ in range(2))
    y_d, _ = longhorn_scan(x, k, q, u)
    y_e, _ = longhorn_exact_scan(x, k, q, u)
    assert (y_d - y_e).abs().max() > 1e-3


def test_exact_update_zeroes_the_objective_gradient_and_shrinks_the_residual() -> None:
    g = torch.Generator().manual_seed(2)
    prev = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    x = torch.randn(2, 1, 5, generator=g, dtype=torch.float64)
    k = torch.randn(2, 1, 3, generator=g, dtype=torch.float64)
    u = torch.randn(2, 1, 5, generator=g, dtype=torch.float64)
    _, new = longhorn_exact_scan(x, k, torch.zeros_like(k), u, initial_state=prev, return_final_state=True)
    state = new.clone().requires_grad_()
    beta = torch.sigmoid(u[:, 0])
    exact_objective(state, prev, k[:, 0], x[:, 0], beta).backward()
    assert state.grad.abs().max() < 1e-12
    # A perturbed state has a nonzero gradient, so the assertion above can fail.
    other = (new + 0.1).requires_grad_()
    exact_objective(other, prev, k[:, 0], x[:, 0], beta).backward()
    assert other.grad.abs().max() > 1e-2
    before = torch.einsum("ben,bn->be", prev, k[:, 0]) - x[:, 0]
    after = torch.einsum("ben,bn->be", new, k[:, 0]) - x[:, 0]
    shrink = 1.0 / (1.0 + beta * k[:, 0].pow(2).sum(-1, keepdim=True))
    torch.testing.assert_close(after, before * shrink)


def test_memory_semantics_large_one_hot_key_overwrites_its_slot() -> None:
    # beta = sigmoid(u) <= 1, so the overwrite limit comes from the key norm: k = c e_j with c large gives
    # decay 1 - eps c^2 -> 0 and slot value x / c; reading with q = c e_j returns the last x written to j.
    c = 1e3
    x = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [5.0, 6.0]]], dtype=torch.float64)  # (1, 3, E=2)
    k = c * torch.nn.functional.one_hot(torch.tensor([[0, 1, 0]]), 2).double()
    q = c * torch.nn.functional.one_hot(torch.tensor([[0, 0, 0]]), 2).double()
    u = torch.full((1, 3, 2), 30.0, dtype=torch.float64)
    y, _ = longhorn_scan(x, k, q, u)
    torch.testing.assert_close(y[:, 0], x[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y[:, 1], x[:, 0], rtol=1e-5, atol=1e-5)  # writing slot 1 left slot 0 intact
    torch.testing.assert_close(y[:, 2], x[:, 2], rtol=1e-5, atol=1e-5)  # slot 0 overwritten
