"""A fast CPU Mamba-1 peer: the selective scan in the style of Longhorn's recurrent scan, and an LM whose
parameter names are those of transformers' ``MambaForCausalLM``, so weights load both ways.

Selective scan (Gu & Dao 2023, the maths of transformers' ``mamba_selective_scan``)::

    a_t = exp(delta_t (x) A)          (B, E, N), A = -exp(A_log) < 0
    S_t = a_t * S_{t-1} + (delta_t * x_t) (x) B_t
    y_t = (S_t C_t + D * x_t) * SiLU(z_t)

transformers' CPU path loops over ``(B, E, L, N)`` slices with autograd recording every step; here the
forward loop writes into one preallocated state buffer and the backward is one reverse loop (a custom
autograd Function), as :class:`thrifty.longhorn.ops.DiagonalScanFn` does for Longhorn.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from thrifty.core.nn import RMSNorm
from thrifty.longhorn.initialization import check_init_scheme, init_ssm_lm
from thrifty.longhorn.ops import causal_depthwise_conv, state_dtype

SELECTIVE_MODES: tuple[str, ...] = ("recurrent", "reference")
MAMBA_NORM_EPS = 1e-5  # MambaConfig.layer_norm_epsilon


class LinearScanFn(torch.autograd.Function):
    """``S_t = a_t * S_{t-1} + b_t``, ``y_t = S_t c_t``: forward loop into a buffer, reverse-loop backward.

    Inputs ``a, b (B, L, E, N)``, ``c (B, L, N)``, ``s0 (B, E, N)``; outputs ``y (B, L, E)`` and the final
    state ``(B, E, N)``. The backward computes ``G_t = dL/dS_t = dy_t (x) c_t + a_{t+1} * G_{t+1}``, then
    ``da_t = G_t * S_{t-1}``, ``db_t = G_t``, ``dc_t = sum_e dy_t S_t``, ``ds0 = a_0 * G_0``.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, c: Tensor, s0: Tensor):
        states = torch.empty_like(b)
        state = s0
        for t, (a_t, b_t) in enumerate(zip(a.unbind(1), b.unbind(1), strict=True)):
            state = torch.addcmul(b_t, a_t, state)
            states[:, t] = state
        ctx.save_for_backward(a, c, s0, states)
        return torch.einsum("blen,bln->ble", states, c), state.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor, d_final: Tensor | None) -> tuple[Tensor, ...]:
        a, c, s0, states = ctx.saved_tensors
        dyc = dy.unsqueeze(-1) * c.unsqueeze(-2)
        grads = torch.empty_like(states)
        g = d_final.to(states.dtype) if d_final is not None else torch.zeros_like(s0)
        a_steps, dyc_steps = a.unbind(1), dyc.unbind(1)
        last = states.shape[1] - 1
        for t in range(last, -1, -1):
            g = dyc_steps[t] + g if t == last else torch.addcmul(dyc_steps[t], a_steps[t + 1], g)
            grads[:, t] = g
        prev = torch.cat((s0.unsqueeze(1), states[:, :-1]), dim=1)
        return grads * prev, grads, torch.einsum("ble,blen->bln", dy, states), a[:, 0] * grads[:, 0]


def selective_scan(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    *,
    D: Tensor | None = None,
    z: Tensor | None = None,
    initial_state: Tensor | None = None,
    mode: str = "recurrent",
    return_final_state: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Mamba-1's selective scan (see the module docstring); state in fp32 (fp64 stays fp64).

    Args:
        x: ``(B, L, E)`` post-conv channels. delta: ``(B, L, E)`` positive step sizes (after softplus).
        A: ``(E, N)`` negative state matrix. B, C: ``(B, L, N)`` input and output projections.
        D: ``(E,)`` skip, or None. z: ``(B, L, E)`` gate pre-activation, or None.
        initial_state: ``(B, E, N)`` or None (zeros). mode: ``"recurrent"`` (custom Function) or
            ``"reference"`` (plain autograd loop, the oracle). return_final_state: also return ``S_L``.

    Returns:
        ``(y (B, L, E) in x's dtype, final state (B, E, N) or None)``.
    """
    if mode not in SELECTIVE_MODES:
        raise ValueError(f"mode: expected one of {SELECTIVE_MODES}, got {mode!r}")
    if x.dim() != 3 or delta.shape != x.shape:
        raise ValueError(f"x/delta: expected equal shapes (B, L, E), got {tuple(x.shape)} and {tuple(delta.shape)}")
    batch, length, channels = x.shape
    if A.shape[0] != channels or B.shape != (batch, length, A.shape[1]) or C.shape != B.shape:
        raise ValueError(f"A/B/C: expected (E, N) and (B, L, N) with E={channels}, got A {tuple(A.shape)}")
    sdt = state_dtype(x.dtype)
    xs, ds, Bs, Cs = x.to(sdt), delta.to(sdt), B.to(sdt), C.to(sdt)
    a = torch.exp(ds.unsqueeze(-1) * A.to(sdt))  # (B, L, E, N)
    b = (ds * xs).unsqueeze(-1) * Bs.unsqueeze(-2)
    s0 = initial_state.to(sdt) if initial_state is not None else xs.new_zeros(batch, channels, A.shape[1])
    if mode == "recurrent":
        y, final = LinearScanFn.apply(a, b, Cs, s0)
    else:
        y, final = reference_linear_scan(a, b, Cs, s0)
    if D is not None:
        y = y + D.to(sdt) * xs
    if z is not None:
        y = y * F.silu(z.to(sdt))
    return y.to(x.dtype), (final if return_final_state else None)


def reference_linear_scan(a: Tensor, b: Tensor, c: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
    """The readable oracle of :class:`LinearScanFn`: a plain per-step autograd loop (same shapes)."""
    state, outputs = s0, []
    for t in range(a.shape[1]):
        state = a[:, t] * state + b[:, t]
        outputs.append((state * c[:, t].unsqueeze(-2)).sum(-1))
    return torch.stack(outputs, 1), state


class MambaMixer(nn.Module):
    """Mamba-1 mixer with transformers' parameter names: in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj.

    ``forward(h (B, L, d)) -> (B, L, d)``. ``expand=2``, ``d_conv=4``, ``dt_rank = ceil(d / 16)`` as in
    ``MambaConfig``; ``reset_ssm_parameters`` is mamba_ssm's dt/A/D initialisation (both families use it).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, mode: str = "recurrent"):
        super().__init__()
        if mode not in SELECTIVE_MODES:
            raise ValueError(f"mode: expected one of {SELECTIVE_MODES}, got {mode!r}")
        e, self.dt_rank, self.d_state, self.mode = expand * d_model, math.ceil(d_model / 16), d_state, mode
        self.d_conv = d_conv
        self.in_proj = nn.Linear(d_model, 2 * e, bias=False)
        self.conv1d = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(e, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, e, bias=True)
        self.A_log = nn.Parameter(torch.empty(e, d_state))
        self.D = nn.Parameter(torch.empty(e))
        self.out_proj = nn.Linear(e, d_model, bias=False)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(
        self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4, dt_scale: float = 1.0
    ) -> None:
        """S4D-real ``A_log = log(1..N)``, ``D = 1``, dt_proj weight U(+-dt_scale/sqrt R), bias = softplus^-1
        of dt ~ LogUniform[dt_min, dt_max] clamped at dt_floor (mamba_ssm and transformers agree)."""
        e = self.D.shape[0]
        self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).expand(e, -1))
        self.D.fill_(1.0)
        std = self.dt_rank**-0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(e) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, h: Tensor) -> Tensor:
        x, z = self.in_proj(h).chunk(2, dim=-1)
        padded = F.pad(x.transpose(1, 2), (self.d_conv - 1, 0))
        x = F.silu(causal_depthwise_conv(padded, self.conv1d.weight.squeeze(1), self.conv1d.bias)).transpose(1, 2)
        dt_low, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt_low))
        A = -torch.exp(self.A_log.float())
        y, _ = selective_scan(x, delta, A, B, C, D=self.D, z=z, mode=self.mode)
        return self.out_proj(y)


class MambaBlock(nn.Module):
    """Pre-norm residual block ``h + mixer(RMSNorm(h))`` (transformers' ``MambaBlock``; no MLP)."""

    def __init__(self, d_model: int, **mixer_kwargs: Any) -> None:
        super().__init__()
        self.norm = RMSNorm(d_model, eps=MAMBA_NORM_EPS)
        self.mixer = MambaMixer(d_model, **mixer_kwargs)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.mixer(self.norm(h))


class MambaBackbone(nn.Module):
    """``embeddings -> layers -> norm_f`` (the names of transformers' ``MambaModel``)."""

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, **mixer_kwargs: Any) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(MambaBlock(d_model, **mixer_kwargs) for _ in range(n_layers))
        self.norm_f = RMSNorm(d_model, eps=MAMBA_NORM_EPS)


class MambaLM(nn.Module):
    """Mamba-1 LM, fast on CPU, state-dict compatible with transformers' ``MambaForCausalLM`` (tied head).

    Args:
        vocab_size, d_model, n_layers, d_state: as ``MambaConfig``'s vocab_size, hidden_size,
            num_hidden_layers, state_size (expand 2, conv 4, no vocabulary padding).
        init_scheme: ``"mamba_ssm"`` or ``"transformers"`` (:mod:`thrifty.longhorn.initialization`).
        mode: ``"recurrent"`` (fast) or ``"reference"`` (plain autograd scan).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 4,
        d_state: int = 16,
        init_scheme: str = "mamba_ssm",
        mode: str = "recurrent",
    ) -> None:
        super().__init__()
        check_init_scheme(init_scheme)
        if min(vocab_size, d_model, n_layers, d_state) <= 0:
            raise ValueError(
                f"vocab_size/d_model/n_layers/d_state: expected positive ints, got {vocab_size}, "
                f"{d_model}, {n_layers}, {d_state}"
            )
        self.vocab_size, self.d_model, self.n_layers, self.d_state = vocab_size, d_model, n_layers, d_state
        self.backbone = MambaBackbone(vocab_size, d_model, n_layers, d_state=d_state, mode=mode)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.backbone.embeddings.weight
        mixers = [layer.mixer for layer in self.backbone.layers]
        init_ssm_lm(
            self,
            embedding=self.backbone.embeddings,
            out_projs=[m.out_proj for m in mixers],
            n_layers=n_layers,
            init_scheme=init_scheme,
            keep_bias=[m.dt_proj.bias for m in mixers],
        )
        for mixer in mixers:
            mixer.reset_ssm_parameters()

    def forward(self, idx: Tensor) -> Tensor:
        """``idx (B, T)`` -> logits ``(B, T, vocab_size)``."""
        if idx.dim() != 2:
            raise ValueError(f"idx: expected (B, T) token ids, got shape {tuple(idx.shape)}")
        h = self.backbone.embeddings(idx)
        for layer in self.backbone.layers:
            h = layer(h)
        return self.lm_head(self.backbone.norm_f(h))

    def transformers_config(self) -> Any:
        """The ``MambaConfig`` describing this architecture (CPU path, tied head)."""
        from transformers import MambaConfig

        return MambaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.d_model,
            state_size=self.d_state,
            num_hidden_layers=self.n_layers,
            expand=2,
            conv_kernel=4,
            use_mambapy=False,
            tie_word_embeddings=True,
            use_cache=False,
        )

    def to_transformers(self) -> Any:
        """A transformers ``MambaForCausalLM`` holding these weights (for its cache/decode and the oracle)."""
        from transformers import MambaForCausalLM

        model = MambaForCausalLM(self.transformers_config())
        model.load_state_dict(self.state_dict())
        return model.to(device=self.lm_head.weight.device, dtype=self.lm_head.weight.dtype)

    @classmethod
    def from_transformers(cls, model: Any, mode: str = "recurrent") -> MambaLM:
        """Copy a ``MambaForCausalLM``'s weights (expand 2, conv 4, no biases in the projections)."""
        cfg = model.config
        lm = cls(cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.state_size, mode=mode)
        lm.load_state_dict(model.state_dict())
        return lm.to(device=model.lm_head.weight.device, dtype=model.lm_head.weight.dtype)
