"""Longhorn scans: the diagonal recurrence (fast and blocked), the exact implicit update, one decode step.

Notation (spec §2): ``x (B, L, E)`` values, ``k, q (B, L, N)`` keys/queries shared by all E channels,
``beta_logit (B, L, E)`` the logit ``u`` of the per-channel step ``beta = sigmoid(u)``, state ``S (B, E, N)``.

Diagonal approximation (what the paper's code runs)::

    eps = 1 / (1 + exp(-u) + ||k||^2)                      (B, L, E)
    S_t = (1 - eps_t (x) k_t^2) * S_{t-1} + (eps_t * x_t) (x) k_t
    y_t = (S_t q_t + D * x_t) * SiLU(z_t)

The state and ``eps`` are kept in fp32 (fp64 stays fp64), as in the official kernel.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

ScanMode = Literal["recurrent", "blocked", "reference"]
SCAN_MODES: tuple[str, ...] = ("recurrent", "blocked", "reference")
BACKWARD_CHOICES: tuple[str, ...] = ("auto", "batched", "stepwise")


def compute_eps(beta_logit: Tensor, k: Tensor) -> Tensor:
    """Normalised step ``eps = sigmoid(u) / (1 + sigmoid(u) ||k||^2) = 1 / (1 + e^-u + ||k||^2)``.

    Args:
        beta_logit: ``(..., E)`` the logit ``u``.
        k: ``(..., N)`` keys; the squared norm sums over all N.

    Returns:
        ``(..., E)`` in ``(0, 1)``.
    """
    # The right-hand form never divides by a small sigmoid and never overflows (exp(-u) -> inf gives 0).
    return 1.0 / (1.0 + torch.exp(-beta_logit) + k.pow(2).sum(-1, keepdim=True))


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp64 stays fp64; everything else runs the state in fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_scan_inputs(
    x: Tensor,
    k: Tensor,
    q: Tensor,
    beta_logit: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    initial_state: Tensor | None = None,
) -> None:
    """Raise a clear ``TypeError``/``ValueError`` for wrong dtypes or shapes (see module docstring)."""
    named = {"x": x, "k": k, "q": q, "beta_logit": beta_logit, "D": D, "z": z, "initial_state": initial_state}
    for name, value in named.items():
        if value is None:
            continue
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    if x.dim() != 3:
        raise ValueError(f"x: expected shape (B, L, E), got {tuple(x.shape)}")
    batch, length, channels = x.shape
    if k.dim() != 3 or k.shape[:2] != (batch, length):
        raise ValueError(f"k: expected shape ({batch}, {length}, N), got {tuple(k.shape)}")
    n_state = k.shape[2]
    expected = {
        "q": (q, (batch, length, n_state)),
        "beta_logit": (beta_logit, (batch, length, channels)),
        "z": (z, (batch, length, channels)),
        "D": (D, (channels,)),
        "initial_state": (initial_state, (batch, channels, n_state)),
    }
    for name, (value, shape) in expected.items():
        if value is not None and tuple(value.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {tuple(value.shape)}")


def causal_depthwise_conv(padded: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Causal depthwise conv of ``padded (B, E, L + K - 1)`` with ``weight (E, K)`` -> ``(B, E, L)``.

    Written as K shifted multiply-adds: on CPU this avoids building a oneDNN primitive for every new sequence
    length, which dominated short runs. Shared by the Longhorn and Mamba mixers.
    """
    kernel = weight.shape[-1]
    length = padded.shape[-1] - kernel + 1
    out = padded[..., :length] * weight[:, :1]
    for i in range(1, kernel):
        out = torch.addcmul(out, padded[..., i : i + length], weight[:, i : i + 1])
    return out if bias is None else out + bias.unsqueeze(-1)


def decay_and_input(eps: Tensor, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step decay ``a = 1 - eps (x) k^2`` and input ``b = (eps * x) (x) k``, both ``(..., E, N)``."""
    a = 1.0 - eps.unsqueeze(-1) * k.pow(2).unsqueeze(-2)
    b = (eps * x).unsqueeze(-1) * k.unsqueeze(-2)
    return a, b


# Per-step state size (B * E * N) from which the stepwise backward is used. Measured fwd+bwd at 1 thread
# (`thrifty bench longhorn`): B64 L64 E128 N8 (65k) stepwise 65.5 ms vs batched 69.1 ms on a quiet machine, and
# 54 vs 92 ms with a memory-heavy process on the other core (the batched path streams (B, L, E, N) temporaries);
# B2 L1024 E64 N16 (2k) batched 37 ms vs stepwise 144 ms (per-op overhead dominates small steps).
STEPWISE_BACKWARD_MIN_STATE = 16384


def _backward_batched(
    eps: Tensor, x: Tensor, k: Tensor, q: Tensor, s0: Tensor, states: Tensor, dy: Tensor, g_last: Tensor
) -> tuple[Tensor, ...]:
    """Reverse loop for ``G_t = dL/dS_t`` only, then every gradient as one batched ``(B, L, E, N)`` op."""
    a = 1.0 - eps.unsqueeze(-1) * k.pow(2).unsqueeze(-2)
    dyq = dy.unsqueeze(-1) * q.unsqueeze(-2)  # direct dL/dS_t from the readout
    grads = torch.empty_like(states)  # G_t = total dL/dS_t
    g_next = g_last
    a_steps, dyq_steps = a.unbind(1), dyq.unbind(1)
    for t in range(states.shape[1] - 1, -1, -1):
        if t == states.shape[1] - 1:
            g_next = dyq_steps[t] + g_next
        else:
            g_next = torch.addcmul(dyq_steps[t], a_steps[t + 1], g_next)
        grads[:, t] = g_next
    prev = torch.cat((s0.unsqueeze(1), states[:, :-1]), dim=1)
    da = grads * prev
    gk = torch.einsum("blen,bln->ble", grads, k)
    d_eps = -torch.einsum("blen,bln->ble", da, k.pow(2)) + x * gk
    dx = eps * gk
    dk = -2.0 * k * torch.einsum("ble,blen->bln", eps, da) + torch.einsum("ble,blen->bln", eps * x, grads)
    dq = torch.einsum("ble,blen->bln", dy, states)
    return d_eps, dx, dk, dq, a[:, 0] * grads[:, 0]


def _backward_stepwise(
    eps: Tensor, x: Tensor, k: Tensor, q: Tensor, s0: Tensor, states: Tensor, dy: Tensor, g_last: Tensor
) -> tuple[Tensor, ...]:
    """Same maths as :func:`_backward_batched`, reduced step by step so only ``(B, E, N)`` temporaries exist."""
    k2 = k.pow(2)
    d_eps, dx, dk = torch.empty_like(eps), torch.empty_like(x), torch.empty_like(k)
    g, a_next = g_last, None
    for t in range(x.shape[1] - 1, -1, -1):
        dyq = dy[:, t].unsqueeze(-1) * q[:, t].unsqueeze(-2)
        g = dyq + g if a_next is None else torch.addcmul(dyq, a_next, g)  # G_t (B, E, N)
        da = g * (states[:, t - 1] if t > 0 else s0)  # dL/da_t
        gk = torch.einsum("ben,bn->be", g, k[:, t])
        d_eps[:, t] = x[:, t] * gk - torch.einsum("ben,bn->be", da, k2[:, t])
        dx[:, t] = eps[:, t] * gk
        dk[:, t] = torch.einsum("be,ben->bn", eps[:, t] * x[:, t], g) - 2.0 * k[:, t] * torch.einsum(
            "be,ben->bn", eps[:, t], da
        )
        a_next = 1.0 - eps[:, t].unsqueeze(-1) * k2[:, t].unsqueeze(-2)
    dq = torch.einsum("ble,blen->bln", dy, states)
    return d_eps, dx, dk, dq, a_next * g


class DiagonalScanFn(torch.autograd.Function):
    """Sequential forward loop into a preallocated state buffer; reverse-loop backward.

    Inputs ``eps, x (B, L, E)``, ``k, q (B, L, N)``, ``s0 (B, E, N)``, ``backward`` (``"auto"``, ``"batched"``
    or ``"stepwise"``); outputs ``y (B, L, E) = S_t q_t`` and the final state ``(B, E, N)``. ``"auto"`` picks
    the stepwise backward when ``B * E * N >= STEPWISE_BACKWARD_MIN_STATE``. The gradient through eps's
    dependence on ``u`` and ``||k||^2`` is left to autograd outside (spec §4.2).
    """

    @staticmethod
    def forward(ctx, eps: Tensor, x: Tensor, k: Tensor, q: Tensor, s0: Tensor, backward: str = "auto"):
        a, b = decay_and_input(eps, x, k)
        states = torch.empty_like(a)  # (B, L, E, N): every S_t, needed by the backward
        state = s0
        for t, (a_t, b_t) in enumerate(zip(a.unbind(1), b.unbind(1), strict=True)):
            state = torch.addcmul(b_t, a_t, state)
            states[:, t] = state
        y = torch.einsum("blen,bln->ble", states, q)
        ctx.save_for_backward(eps, x, k, q, s0, states)
        ctx.stepwise = backward == "stepwise" or (backward == "auto" and s0.numel() >= STEPWISE_BACKWARD_MIN_STATE)
        return y, state.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor, d_final: Tensor) -> tuple[Tensor | None, ...]:
        eps, x, k, q, s0, states = ctx.saved_tensors
        g_last = d_final.to(states.dtype) if d_final is not None else torch.zeros_like(s0)
        step = _backward_stepwise if ctx.stepwise else _backward_batched
        return (*step(eps, x, k, q, s0, states, dy, g_last), None)


def scan_blocked(eps: Tensor, x: Tensor, k: Tensor, q: Tensor, s0: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
    """Two-level blocked scan (spec §4.1.2): C parallel local steps, then L/C carry steps.

    Products of decays lie in (0, 1], so nothing overflows and nothing is divided. Plain autograd.
    """
    batch, length, channels = x.shape
    n_chunks = -(-length // chunk_size)
    pad = n_chunks * chunk_size - length
    a, b = decay_and_input(eps, x, k)
    if pad:  # identity steps (a = 1, b = 0) keep the final state unchanged
        a = torch.cat((a, a.new_ones(batch, pad, channels, a.shape[-1])), dim=1)
        b = torch.cat((b, b.new_zeros(batch, pad, channels, b.shape[-1])), dim=1)
    a = a.view(batch, n_chunks, chunk_size, channels, -1)
    b = b.view(batch, n_chunks, chunk_size, channels, -1)
    local, prods = [], []
    h_loc, prod = torch.zeros_like(b[:, :, 0]), torch.ones_like(a[:, :, 0])
    for a_c, b_c in zip(a.unbind(2), b.unbind(2), strict=True):
        h_loc = torch.addcmul(b_c, a_c, h_loc)
        prod = prod * a_c
        local.append(h_loc)
        prods.append(prod)
    h_local, p_local = torch.stack(local, 2), torch.stack(prods, 2)  # (B, nC, C, E, N)
    carries, carry = [], s0
    for c in range(n_chunks):
        carries.append(carry)
        carry = torch.addcmul(h_local[:, c, -1], p_local[:, c, -1], carry)
    carry_in = torch.stack(carries, 1).unsqueeze(2)  # state entering each chunk
    states = torch.addcmul(h_local, p_local, carry_in).flatten(1, 2)[:, :length]
    return torch.einsum("blen,bln->ble", states, q), carry


def scan_reference_loop(eps: Tensor, x: Tensor, k: Tensor, q: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
    """Plain autograd per-step loop of the diagonal recurrence (the readable oracle)."""
    state, outputs = s0, []
    for eps_t, x_t, k_t, q_t in zip(eps.unbind(1), x.unbind(1), k.unbind(1), q.unbind(1), strict=True):
        decay = 1.0 - eps_t.unsqueeze(-1) * k_t.pow(2).unsqueeze(-2)
        state = decay * state + (eps_t * x_t).unsqueeze(-1) * k_t.unsqueeze(-2)
        outputs.append(torch.einsum("ben,bn->be", state, q_t))
    return torch.stack(outputs, 1), state


def _finish_output(y: Tensor, x: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """``y + D * x``, then gated by ``SiLU(z)``."""
    if D is not None:
        y = y + D.to(y.dtype) * x.to(y.dtype)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def longhorn_scan(
    x: Tensor,
    k: Tensor,
    q: Tensor,
    beta_logit: Tensor,
    *,
    D: Tensor | None = None,
    z: Tensor | None = None,
    initial_state: Tensor | None = None,
    mode: ScanMode = "recurrent",
    chunk_size: int = 32,
    return_final_state: bool = False,
    backward: str = "auto",
) -> tuple[Tensor, Tensor | None]:
    """The Longhorn diagonal-approximation scan (spec §2.3-2.4).

    Args:
        x: ``(B, L, E)`` values (post-conv, post-SiLU channels).
        k: ``(B, L, N)`` keys, shared by all channels, not normalised.
        q: ``(B, L, N)`` queries.
        beta_logit: ``(B, L, E)`` logit ``u`` of ``beta = sigmoid(u)``.
        D: ``(E,)`` skip weights, or None.
        z: ``(B, L, E)`` gate pre-activation (output multiplied by ``SiLU(z)``), or None.
        initial_state: ``(B, E, N)`` state before step 0 (zeros if None); gradients flow into it.
        mode: ``"recurrent"`` (default: custom autograd Function, loop forward, batched backward),
            ``"blocked"`` (two-level scan, ``chunk_size`` steps per block) or ``"reference"`` (plain loop).
        chunk_size: block length of ``"blocked"``.
        return_final_state: also return ``S_L`` ``(B, E, N)`` (differentiable in every mode).
        backward: ``"recurrent"`` mode's backward: ``"batched"`` (``(B, L, E, N)`` ops, best for small
            ``B * E * N``), ``"stepwise"`` (only ``(B, E, N)`` temporaries, best for large ones) or ``"auto"``.

    Returns:
        ``(y (B, L, E) in x's dtype, final state (B, E, N) in the state dtype or None)``.
    """
    check_scan_inputs(x, k, q, beta_logit, D, z, initial_state)
    if mode not in SCAN_MODES:
        raise ValueError(f"mode: expected one of {SCAN_MODES}, got {mode!r}")
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}")
    if backward not in BACKWARD_CHOICES:
        raise ValueError(f"backward: expected one of {BACKWARD_CHOICES}, got {backward!r}")
    sdt = state_dtype(x.dtype)
    xs, ks, qs = x.to(sdt), k.to(sdt), q.to(sdt)
    eps = compute_eps(beta_logit.to(sdt), ks)
    batch, _, channels = x.shape
    s0 = initial_state.to(sdt) if initial_state is not None else x.new_zeros(batch, channels, k.shape[-1], dtype=sdt)
    if mode == "recurrent":
        y, final = DiagonalScanFn.apply(eps, xs, ks, qs, s0, backward)
    elif mode == "blocked":
        y, final = scan_blocked(eps, xs, ks, qs, s0, chunk_size)
    else:
        y, final = scan_reference_loop(eps, xs, ks, qs, s0)
    y = _finish_output(y, xs, D, z).to(x.dtype)
    return y, (final if return_final_state else None)


def longhorn_step(
    state: Tensor,
    x_t: Tensor,
    k_t: Tensor,
    q_t: Tensor,
    beta_logit_t: Tensor,
    *,
    D: Tensor | None = None,
    z_t: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One O(E*N) decode step of the diagonal recurrence.

    Args:
        state: ``(B, E, N)`` state (fp32/fp64); not modified in place.
        x_t, beta_logit_t: ``(B, E)``; k_t, q_t: ``(B, N)``; z_t: ``(B, E)`` or None; D: ``(E,)`` or None.

    Returns:
        ``(y_t (B, E) in x_t's dtype, new state (B, E, N))``.
    """
    if state.dim() != 3:
        raise ValueError(f"state: expected shape (B, E, N), got {tuple(state.shape)}")
    check_scan_inputs(
        x_t.unsqueeze(1),
        k_t.unsqueeze(1),
        q_t.unsqueeze(1),
        beta_logit_t.unsqueeze(1),
        D,
        None if z_t is None else z_t.unsqueeze(1),
        state,
    )
    sdt = state.dtype
    xs, ks = x_t.to(sdt), k_t.to(sdt)
    eps = compute_eps(beta_logit_t.to(sdt), ks)
    decay, write = decay_and_input(eps, xs, ks)
    new_state = torch.addcmul(write, decay, state)
    y = torch.einsum("ben,bn->be", new_state, q_t.to(sdt))
    return _finish_output(y, xs, D, z_t).to(x_t.dtype), new_state


def longhorn_exact_scan(
    x: Tensor,
    k: Tensor,
    q: Tensor,
    beta_logit: Tensor,
    *,
    D: Tensor | None = None,
    z: Tensor | None = None,
    initial_state: Tensor | None = None,
    return_final_state: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """The exact implicit (proximal) update, i.e. the per-channel NLMS / delta rule (spec §2.2).

    ``S_t = S_{t-1} - (eps_t * (S_{t-1} k_t - x_t)) k_t^T`` with the same ``eps`` as the diagonal scan; it
    minimises ``||S - S_{t-1}||_F^2 + ||S k_t - x_t||^2_{diag(beta_t)}`` exactly. Same arguments and returns
    as :func:`longhorn_scan`. A plain autograd loop: O(L) steps of O(B*E*N) work.
    """
    check_scan_inputs(x, k, q, beta_logit, D, z, initial_state)
    sdt = state_dtype(x.dtype)
    xs, ks, qs = x.to(sdt), k.to(sdt), q.to(sdt)
    eps = compute_eps(beta_logit.to(sdt), ks)
    batch, _, channels = x.shape
    state = initial_state.to(sdt) if initial_state is not None else x.new_zeros(batch, channels, k.shape[-1], dtype=sdt)
    outputs = []
    for eps_t, x_t, k_t, q_t in zip(eps.unbind(1), xs.unbind(1), ks.unbind(1), qs.unbind(1), strict=True):
        residual = torch.einsum("ben,bn->be", state, k_t) - x_t
        state = state - (eps_t * residual).unsqueeze(-1) * k_t.unsqueeze(-2)
        outputs.append(torch.einsum("ben,bn->be", state, q_t))
    y = _finish_output(torch.stack(outputs, 1), xs, D, z).to(x.dtype)
    return y, (state if return_final_state else None)
