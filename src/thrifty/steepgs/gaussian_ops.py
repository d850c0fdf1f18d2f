"""Parameter surgery that keeps Adam's moments aligned with the Gaussians (gsplat's ops pattern).

Every op rewrites each parameter tensor and, in the same pass, its optimizer's ``exp_avg`` and
``exp_avg_sq`` rows: survivors keep their moments, new Gaussians start at zero. Per-Gaussian statistics
in the strategy ``state`` dict (any tensor whose first dim equals N) are rewritten the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _rewrite(
    params: dict[str, torch.nn.Parameter],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict,
    row_fn: Callable[[str, Tensor, bool], Tensor],
) -> None:
    """Apply ``row_fn(name, tensor, is_moment)`` to each parameter, its Adam moments and the state rows."""
    n_old = next(iter(params.values())).shape[0]
    for name in list(params):
        old = params[name]
        new = torch.nn.Parameter(row_fn(name, old.detach(), False), requires_grad=old.requires_grad)
        optimizer = optimizers[name]
        moments = optimizer.state.pop(old, None)
        if moments is not None:
            for key, value in moments.items():
                if torch.is_tensor(value) and value.shape == old.shape:
                    moments[key] = row_fn(name, value, True)
            optimizer.state[new] = moments
        optimizer.param_groups[0]["params"] = [new]
        params[name] = new
    for key, value in list(state.items()):
        if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == n_old:
            state[key] = row_fn(key, value, True)


@torch.no_grad()
def remove(params: dict, optimizers: dict, state: dict, mask: Tensor) -> None:
    """Delete the Gaussians where ``mask`` (N,) is True."""
    keep = ~mask
    _rewrite(params, optimizers, state, lambda name, t, is_moment: t[keep])


@torch.no_grad()
def replace(params: dict, optimizers: dict, state: dict, parents: Tensor, offspring: dict[str, Tensor]) -> None:
    """Delete ``parents`` (N,) bool and append ``offspring`` rows (one tensor per parameter name).

    Survivors keep their order and Adam moments; offspring get zero moments and zero statistics.
    """
    if set(offspring) != set(params):
        raise ValueError(f"offspring: expected keys {sorted(params)}, got {sorted(offspring)}")
    keep = ~parents

    def row_fn(name: str, t: Tensor, is_moment: bool) -> Tensor:
        n_new = next(iter(offspring.values())).shape[0]
        extra = t.new_zeros((n_new, *t.shape[1:])) if is_moment else offspring[name].to(t.dtype)
        return torch.cat([t[keep], extra])

    _rewrite(params, optimizers, state, row_fn)


@torch.no_grad()
def duplicate(params: dict, optimizers: dict, state: dict, mask: Tensor) -> None:
    """Append an exact copy of each Gaussian where ``mask`` is True (ADC clone)."""
    copies = {name: p.detach()[mask] for name, p in params.items()}
    replace(params, optimizers, state, torch.zeros_like(mask), copies)


@torch.no_grad()
def reset_opacity(params: dict, optimizers: dict, value: float) -> None:
    """Clamp opacities to at most ``value`` (in [0, 1]) and zero their Adam moments (3DGS reset)."""
    cap = torch.logit(torch.tensor(value, dtype=params["opacities"].dtype))
    empty: dict = {}

    def row_fn(name: str, t: Tensor, is_moment: bool) -> Tensor:
        if name != "opacities":
            return t
        return torch.zeros_like(t) if is_moment else t.clamp(max=float(cap))

    _rewrite(params, optimizers, empty, row_fn)


def symmetric_offsets(directions: Tensor, lengths: Tensor) -> Tensor:
    """Offsets (2K, d) for two offspring per parent: rows [0, K) are +l v, rows [K, 2K) are -l v.

    The official code tiles offsets with ``repeat(2, 1)`` but alternates signs by row parity, so for an
    even K both offspring of a parent move the same way; this explicit block layout has no such bug
    (:func:`parity_bug_offsets` emulates the bug on purpose).
    """
    step = directions * lengths[:, None]
    return torch.cat([step, -step])


def parity_bug_offsets(directions: Tensor, lengths: Tensor) -> Tensor:
    """EMULATION of the released SteepGS code's sign bug (not a correct split): offsets (2K, d).

    The steps l v (K, d) are tiled as rows [0, K) and [K, 2K) (``repeat(2, 1)``) and row r gets sign
    + if r is even, - if r is odd. Offspring i and K + i therefore share a sign (both on one side of the
    parent) whenever K is even, and get opposite signs when K is odd.
    """
    step = (directions * lengths[:, None]).repeat(2, 1)
    rows = torch.arange(step.shape[0], device=step.device)
    sign = torch.where(rows % 2 == 0, 1.0, -1.0).to(step.dtype)
    return step * sign[:, None]
