"""Longhorn token mixer, its decode cache, and a small pre-norm language model (spec §2.5-2.9)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.nn import RMSNorm
from thrifty.longhorn.initialization import check_init_scheme, init_ssm_lm
from thrifty.longhorn.ops import (
    SCAN_MODES,
    causal_depthwise_conv,
    longhorn_exact_scan,
    longhorn_scan,
    longhorn_step,
    state_dtype,
)


@dataclass
class LonghornCache:
    """Decode state of one mixer.

    Attributes:
        conv_state: ``(B, E, d_conv)`` the last d_conv raw (pre-conv, pre-activation) channel inputs.
        ssm_state: ``(B, E, N)`` the recurrent state, fp32 (fp64 for fp64 models).
    """

    conv_state: Tensor
    ssm_state: Tensor


class LonghornMixer(nn.Module):
    """The Longhorn layer: in_proj -> causal depthwise conv -> SiLU -> (dt, k, q) -> scan -> gate -> out_proj.

    Args:
        d_model: model width d.
        d_state: N, the key dimension of the state.
        d_conv: depthwise conv kernel size.
        expand: E = expand * d_model channels.
        dt_rank: rank R of the beta-logit projection; ``"auto"`` = ceil(d_model / 16).
        conv_bias: bias of the conv. bias: bias of in_proj/out_proj.
        scan_mode: ``"recurrent"``, ``"blocked"``, ``"reference"`` (diagonal scan) or ``"exact"``
            (the non-diagonal implicit update, for the approximation-gap ablation).
        chunk_size: block length of the blocked scan.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        conv_bias: bool = True,
        bias: bool = False,
        scan_mode: str = "recurrent",
        chunk_size: int = 32,
    ) -> None:
        super().__init__()
        for name, value in (
            ("d_model", d_model),
            ("d_state", d_state),
            ("d_conv", d_conv),
            ("expand", expand),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if scan_mode not in (*SCAN_MODES, "exact"):
            raise ValueError(f"scan_mode: expected one of {(*SCAN_MODES, 'exact')}, got {scan_mode!r}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.scan_mode, self.chunk_size = scan_mode, chunk_size
        e = self.d_inner
        self.in_proj = nn.Linear(d_model, 2 * e, bias=bias)
        self.conv1d = nn.Conv1d(e, e, d_conv, groups=e, bias=conv_bias)  # padding comes from the cache
        self.x_proj = nn.Linear(e, self.dt_rank + 2 * d_state, bias=False)
        self.dt_head = nn.Linear(self.dt_rank, e, bias=True)
        self.D = nn.Parameter(torch.ones(e))
        self.out_proj = nn.Linear(e, d_model, bias=bias)

    def allocate_cache(
        self, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> LonghornCache:
        """A zero cache for ``batch`` sequences (zero conv history == the causal zero padding)."""
        device = device if device is not None else self.D.device
        conv = torch.zeros(batch, self.d_inner, self.d_conv, dtype=dtype, device=device)
        ssm = torch.zeros(batch, self.d_inner, self.d_state, dtype=state_dtype(dtype), device=device)
        return LonghornCache(conv, ssm)

    def _ssm_inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dt_low, k, q = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        return self.dt_head(dt_low), k, q

    def forward(self, h: Tensor, cache: LonghornCache | None = None, mask: Tensor | None = None) -> Tensor:
        """``h (B, L, d) -> (B, L, d)``; with ``cache``, continues from it and updates it in place.

        ``mask (B, L)`` (1 = token, 0 = padding) makes every padded position an identity step: its raw conv
        input, value and key are zeroed, so the state and the conv history pass through unchanged. For left
        padding this equals running the unpadded sequence; outputs at padded positions are meaningless.
        """
        if h.dim() != 3 or h.shape[-1] != self.d_model:
            raise ValueError(f"h: expected shape (B, L, {self.d_model}), got {tuple(h.shape)}")
        keep = None if mask is None else mask.to(h.dtype).unsqueeze(-1)  # (B, L, 1)
        x_raw, z = self.in_proj(h).chunk(2, dim=-1)
        if keep is not None:
            x_raw = x_raw * keep
        x_raw = x_raw.transpose(1, 2)  # (B, E, L)
        history = (
            cache.conv_state[..., 1:]
            if cache is not None
            else x_raw.new_zeros(x_raw.shape[0], self.d_inner, self.d_conv - 1)
        )
        padded = torch.cat((history, x_raw), dim=-1)
        x = F.silu(causal_depthwise_conv(padded, self.conv1d.weight.squeeze(1), self.conv1d.bias)).transpose(1, 2)
        beta_logit, k, q = self._ssm_inputs(x)  # x (B, L, E)
        if keep is not None:
            x, k = x * keep, k * keep
        init = cache.ssm_state if cache is not None else None
        if self.scan_mode == "exact":
            y, final = longhorn_exact_scan(
                x, k, q, beta_logit, D=self.D, z=z, initial_state=init, return_final_state=cache is not None
            )
        else:
            y, final = longhorn_scan(
                x,
                k,
                q,
                beta_logit,
                D=self.D,
                z=z,
                initial_state=init,
                mode=self.scan_mode,
                chunk_size=self.chunk_size,  # type: ignore[arg-type]
                return_final_state=cache is not None,
            )
        if cache is not None:
            cache.conv_state = torch.cat((cache.conv_state, x_raw), dim=-1)[..., -self.d_conv :].detach()
            cache.ssm_state = final.detach()
        return self.out_proj(y)

    def step(self, h_t: Tensor, cache: LonghornCache) -> Tensor:
        """One decode token in O(E*N): ``h_t (B, d) -> (B, d)``; updates ``cache`` in place."""
        if self.scan_mode == "exact":
            return self.forward(h_t.unsqueeze(1), cache).squeeze(1)
        x_raw, z = self.in_proj(h_t).chunk(2, dim=-1)
        cache.conv_state = torch.cat((cache.conv_state[..., 1:], x_raw.unsqueeze(-1)), dim=-1)
        weight = self.conv1d.weight.squeeze(1)  # (E, d_conv)
        x = (cache.conv_state * weight).sum(-1)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)
        beta_logit, k, q = self._ssm_inputs(x)
        y, cache.ssm_state = longhorn_step(cache.ssm_state, x, k, q, beta_logit, D=self.D, z_t=z)
        return self.out_proj(y)


class LonghornBlock(nn.Module):
    """Pre-norm residual block ``h + mixer(RMSNorm(h))`` (no MLP, as in the paper)."""

    def __init__(self, d_model: int, **mixer_kwargs: object) -> None:
        super().__init__()
        self.norm = RMSNorm(d_model)
        self.mixer = LonghornMixer(d_model, **mixer_kwargs)  # type: ignore[arg-type]

    def forward(self, h: Tensor, cache: LonghornCache | None = None, mask: Tensor | None = None) -> Tensor:
        return h + self.mixer(self.norm(h), cache, mask)

    def step(self, h_t: Tensor, cache: LonghornCache) -> Tensor:
        return h_t + self.mixer.step(self.norm(h_t), cache)


def mixer_param_count(d_model: int, d_state: int = 16, expand: int = 2, d_conv: int = 4) -> int:
    """Parameters of one block (mixer + its RMSNorm): ``3Ed + E(2R + 2N + d_conv + 3) + d`` (spec §2.6)."""
    e, r = expand * d_model, math.ceil(d_model / 16)
    return 3 * e * d_model + e * (2 * r + 2 * d_state + d_conv + 3) + d_model


class LonghornLM(nn.Module):
    """Embedding -> n_layers Longhorn blocks -> RMSNorm -> tied head (vocabulary padded to a multiple of 8).

    Args:
        vocab_size: tokens; logits are returned for exactly these (padding rows are sliced off); ids outside
            ``[0, vocab_size)`` raise ``ValueError``.
        d_model, n_layers: width and number of Longhorn blocks.
        init_scheme: ``"mamba_ssm"`` (the official code's, spec §2.7: zero biases so beta starts at 0.5,
            N(0, 0.02) embedding, out_proj / sqrt(n_layers)) or ``"transformers"`` (``MambaForCausalLM``'s
            defaults); see :mod:`thrifty.longhorn.initialization`.
        **mixer_kwargs: forwarded to :class:`LonghornMixer` (d_state, expand, scan_mode, ...).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 4,
        init_scheme: str = "mamba_ssm",
        **mixer_kwargs: object,
    ) -> None:
        super().__init__()
        check_init_scheme(init_scheme)
        if vocab_size <= 0 or n_layers <= 0:
            raise ValueError(f"vocab_size/n_layers: expected positive ints, got {vocab_size}, {n_layers}")
        self.vocab_size = vocab_size
        padded = -(-vocab_size // 8) * 8
        self.embed = nn.Embedding(padded, d_model)
        self.blocks = nn.ModuleList(LonghornBlock(d_model, **mixer_kwargs) for _ in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, padded, bias=False)
        self.head.weight = self.embed.weight
        init_ssm_lm(
            self,
            embedding=self.embed,
            out_projs=[b.mixer.out_proj for b in self.blocks],
            n_layers=n_layers,
            init_scheme=init_scheme,
        )

    def allocate_caches(self, batch: int) -> list[LonghornCache]:
        dtype = self.embed.weight.dtype
        return [b.mixer.allocate_cache(batch, dtype) for b in self.blocks]

    def check_ids(self, idx: Tensor, name: str = "idx") -> None:
        """Raise ``ValueError`` unless ``idx`` holds integer token ids in ``[0, vocab_size)``."""
        if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
            raise ValueError(f"{name}: expected integer token ids, got dtype {idx.dtype}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.vocab_size):
            raise ValueError(
                f"{name}: expected token ids in [0, {self.vocab_size}), got [{int(idx.min())}, {int(idx.max())}]"
            )

    def forward(self, idx: Tensor, caches: list[LonghornCache] | None = None, mask: Tensor | None = None) -> Tensor:
        """``idx (B, T)`` -> logits ``(B, T, vocab_size)``; with ``caches``, a prefill that fills them.

        ``mask (B, T)`` (1 = token, 0 = left padding) is passed to every mixer (see :meth:`LonghornMixer.forward`).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx: expected (B, T) token ids, got shape {tuple(idx.shape)}")
        self.check_ids(idx)
        if mask is not None and mask.shape != idx.shape:
            raise ValueError(f"mask: expected shape {tuple(idx.shape)}, got {tuple(mask.shape)}")
        h = self.embed(idx)
        for i, block in enumerate(self.blocks):
            h = block(h, None if caches is None else caches[i], mask)
        return self.head(self.norm(h))[..., : self.vocab_size]

    def step(self, token: Tensor, caches: list[LonghornCache]) -> Tensor:
        """One decode step: ``token (B,)`` -> logits ``(B, vocab_size)``."""
        self.check_ids(token, "token")
        h = self.embed(token)
        for block, cache in zip(self.blocks, caches, strict=True):
            h = block.step(h, cache)
        return self.head(self.norm(h))[..., : self.vocab_size]

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Greedy (temperature 0) or sampled continuation via the O(E*N) step: ``(B, T) -> (B, T + n)``.

        Raises ``ValueError`` for an empty prompt (T = 0), a negative ``max_new_tokens`` or ids out of range.
        """
        if idx.dim() != 2 or idx.shape[1] == 0:
            raise ValueError(f"idx: expected a non-empty (B, T) prompt with T >= 1, got shape {tuple(idx.shape)}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: expected an int >= 0, got {max_new_tokens!r}")
        if temperature < 0:
            raise ValueError(f"temperature: expected >= 0 (0 = greedy), got {temperature}")
        caches = self.allocate_caches(idx.shape[0])
        logits = self(idx, caches)[:, -1]
        out = [idx]
        for _ in range(max_new_tokens):
            if temperature > 0:
                probs = torch.softmax(logits.float() / temperature, dim=-1)
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device).squeeze(1)
            else:
                nxt = logits.argmax(-1)
            out.append(nxt.unsqueeze(1))
            logits = self.step(nxt, caches)
        return torch.cat(out, dim=1)

    def num_params(self) -> int:
        """Unique parameters (the tied head counts once)."""
        return sum(p.numel() for p in self.parameters())
