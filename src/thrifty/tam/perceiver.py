"""EdgeTAM's 2D Spatial Perceiver: compress a memory map into global + windowed patch latents.

Behaviour follows EdgeTAM's ``PerceiverResampler`` (spec section 4):

* global latents (``randn`` init) cross-attend to all tokens; positions are projected into neither k nor v
  but ADDED to both after projection; their output position is zero;
* patch latent ``i`` (a ``ph x pw`` grid) cross-attends only to the tokens of window ``i``, without
  positions; its output position is the sine PE of the latent grid. Its "self-attention" runs over a single
  token, so patch latents never exchange information (locality is exact);
* both branches share the layer weights and the final LayerNorm.

Two [recon] training aids, off by default (EdgeTAM's released module): ``branch_gain`` puts a per-channel
layer-scale gain on the feed-forward and latent self-attention residual branches, and ``init="pool"`` starts the
cross-attention as an average pool (uniform attention, identity value and output maps), so a fresh perceiver
stores windowed averages of the memory map instead of input-independent latents.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from thrifty.core.nn import attention
from thrifty.tam.rope import cached_sine_pe_2d


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, dim * mult, bias=False),
        nn.GELU(),
        nn.Linear(dim * mult, dim, bias=False),
    )


class _LatentAttention(nn.Module):
    """Bias-free attention of latents to ``context`` (separate LayerNorms on both); pos added to k and v."""

    def __init__(self, dim: int, heads: int, norm_context: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.norm_latents = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim) if norm_context else None
        self.q, self.kv, self.out = (
            nn.Linear(dim, dim, bias=False),
            nn.Linear(dim, 2 * dim, bias=False),
            nn.Linear(dim, dim, bias=False),
        )

    def _split(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, latents: Tensor, context: Tensor | None = None, pos: Tensor | None = None) -> Tensor:
        lat = self.norm_latents(latents)
        if context is None:
            ctx = lat
        else:
            ctx = self.norm_context(context) if self.norm_context is not None else context
        k, v = self.kv(ctx).chunk(2, dim=-1)
        if pos is not None:  # EdgeTAM: pos joins k AND v after projection
            k, v = k + pos, v + pos
        out = attention(self._split(self.q(lat)), self._split(k), self._split(v))
        return self.out(out.transpose(1, 2).flatten(2))

    def init_as_pool(self) -> None:
        """Uniform attention (zero query map) with identity value and output maps: the output is the mean
        of the normalised context (plus the mean position when positions are given)."""
        dim = self.q.weight.shape[0]
        with torch.no_grad():
            self.q.weight.zero_()
            self.kv.weight[dim:].copy_(torch.eye(dim))
            self.out.weight.copy_(torch.eye(dim))


BRANCHES = ("ff1", "self_attn", "ff2")  # the residual branches that act on the latents alone


class _PerceiverLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int, branch_gain: float | None) -> None:
        super().__init__()
        self.cross = _LatentAttention(dim, heads)
        self.ff1 = _feed_forward(dim, ff_mult)
        self.self_attn = _LatentAttention(dim, heads, norm_context=False)
        self.ff2 = _feed_forward(dim, ff_mult)
        self.gains = None
        if branch_gain is not None:  # layer scale: one per-channel gain per latent-only branch
            self.gains = nn.ParameterDict({b: nn.Parameter(torch.full((dim,), float(branch_gain))) for b in BRANCHES})

    def _branch(self, name: str, out: Tensor) -> Tensor:
        return out if self.gains is None else out * self.gains[name]

    def forward(self, latents: Tensor, context: Tensor, pos: Tensor | None) -> Tensor:
        latents = latents + self.cross(latents, context, pos)
        latents = latents + self._branch("ff1", self.ff1(latents))
        latents = latents + self._branch("self_attn", self.self_attn(latents))
        return latents + self._branch("ff2", self.ff2(latents))


class SpatialPerceiver(nn.Module):
    """Compress ``(B, C, H, W)`` memories to ``n_global + ph*pw`` tokens.

    Args:
        dim: memory width C. n_global: global latents. patch_grid: ``(ph, pw)`` patch-latent grid; ``(0, 0)``
            gives the global-only ablation (C'). depth, heads, ff_mult: as EdgeTAM (2, 1, 4).
        latent_std: init scale of the latents (EdgeTAM: ``randn``, std 1). [recon] A small value lets the
            compressed memory depend on its input from the first step; see :class:`TamModelConfig`.
        norm_init: initial gain of the final LayerNorm (PyTorch default 1). [recon] see
            :class:`~thrifty.tam.config.TamModelConfig`.
        branch_gain: [recon] initial layer-scale gain of the feed-forward and latent self-attention residual
            branches; ``None`` (EdgeTAM) has no gains, ``0.0`` starts those branches closed.
        init: ``"random"`` (EdgeTAM) or ``"pool"`` [recon]: every cross-attention starts as an average pool.
    """

    def __init__(
        self,
        dim: int,
        n_global: int,
        patch_grid: tuple[int, int] = (0, 0),
        depth: int = 2,
        heads: int = 1,
        ff_mult: int = 4,
        latent_std: float = 1.0,
        norm_init: float = 1.0,
        branch_gain: float | None = None,
        init: str = "random",
    ) -> None:
        super().__init__()
        if n_global < 0 or min(patch_grid) < 0 or n_global + patch_grid[0] * patch_grid[1] == 0:
            raise ValueError(f"n_global, patch_grid: expected at least one latent, got {n_global}, {patch_grid}")
        if init not in ("random", "pool"):
            raise ValueError(f"init: expected 'random' or 'pool', got {init!r}")
        self.dim, self.n_global, self.patch_grid = dim, n_global, tuple(patch_grid)
        self.global_latents = nn.Parameter(latent_std * torch.randn(n_global, dim))
        self.patch_latents = nn.Parameter(latent_std * torch.randn(patch_grid[0] * patch_grid[1], dim))
        self.layers = nn.ModuleList(_PerceiverLayer(dim, heads, ff_mult, branch_gain) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        nn.init.constant_(self.norm.weight, norm_init)
        if init == "pool":
            for layer in self.layers:
                layer.cross.init_as_pool()

    def branch_parameters(self) -> list[nn.Parameter]:
        """Parameters of the latent-only residual branches (feed-forwards, self-attention, their gains)."""
        params: list[nn.Parameter] = []
        for layer in self.layers:
            for name in BRANCHES:
                params += list(getattr(layer, name).parameters())
            if layer.gains is not None:
                params += list(layer.gains.parameters())
        return params

    @property
    def n_patch(self) -> int:
        return self.patch_grid[0] * self.patch_grid[1]

    def _run(self, latents: Tensor, context: Tensor, pos: Tensor | None) -> Tensor:
        for layer in self.layers:
            latents = layer(latents, context, pos)
        return self.norm(latents)

    def forward(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Compress.

        Args:
            x: ``(B, C, H, W)`` memory features. pos: ``(B, C, H, W)`` their sine PE.

        Returns:
            ``(tokens, positions)``, each ``(B, n_global + ph*pw, C)``: ``[global ; patch]``.
        """
        b, c, h, w = x.shape
        if c != self.dim:
            raise ValueError(f"x: expected {self.dim} channels, got {c}")
        tokens, positions = [], []
        if self.n_global:
            g = self._run(
                self.global_latents.expand(b, -1, -1),
                x.flatten(2).transpose(1, 2),
                pos.flatten(2).transpose(1, 2),
            )
            tokens.append(g)
            positions.append(torch.zeros_like(g))
        if self.n_patch:
            tokens.append(self._patch_branch(x))
            grid_pe = cached_sine_pe_2d(c, *self.patch_grid, x.device, x.dtype)
            positions.append(grid_pe.flatten(1).transpose(0, 1).expand(b, -1, -1))
        return torch.cat(tokens, dim=1), torch.cat(positions, dim=1)

    def _patch_branch(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        ph, pw = self.patch_grid
        if h % ph or w % pw:
            raise ValueError(f"x: map {h}x{w} is not divisible by the patch grid {self.patch_grid}")
        wh, ww = h // ph, w // pw
        # (B, C, ph, wh, pw, ww) -> (B * ph * pw, wh * ww, C): window i holds its own tokens, row-major
        windows = x.view(b, c, ph, wh, pw, ww).permute(0, 2, 4, 3, 5, 1).reshape(b * ph * pw, wh * ww, c)
        latents = self.patch_latents.repeat(b, 1).unsqueeze(1)  # (B * P, 1, C)
        return self._run(latents, windows, None).view(b, ph * pw, c)
