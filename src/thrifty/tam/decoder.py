"""SAM-style prompt encoder and mask decoder (two-way transformer, IoU head, object-score head, pointer)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from thrifty.core.nn import attention
from thrifty.tam.encoder import LayerNorm2d

NO_OBJ_SCORE = -1024.0


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 3) -> nn.Sequential:
    """ReLU MLP with ``layers`` linear layers."""
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class PromptEncoder(nn.Module):
    """Points, box and mask prompts (SAM design) with a random-Fourier position encoding.

    Point labels: ``-1`` padding, ``0`` negative, ``1`` positive, ``2``/``3`` box corners.
    """

    def __init__(self, dim: int, grid: tuple[int, int], image_size: int, generator: torch.Generator | None = None):
        super().__init__()
        self.dim, self.grid, self.image_size = dim, grid, image_size
        self.register_buffer("gaussian", torch.randn(2, dim // 2, generator=generator))
        self.point_embed = nn.Parameter(0.02 * torch.randn(4, dim))
        self.not_a_point = nn.Parameter(0.02 * torch.randn(dim))
        self.no_mask = nn.Parameter(0.02 * torch.randn(dim))
        self.mask_down = nn.Sequential(
            nn.Conv2d(1, 4, 2, 2),
            LayerNorm2d(4),
            nn.GELU(),
            nn.Conv2d(4, 16, 2, 2),
            LayerNorm2d(16),
            nn.GELU(),
            nn.Conv2d(16, dim, 1),
        )

    def fourier(self, coords01: Tensor) -> Tensor:
        """``(..., 2)`` coordinates in [0, 1] (x, y) -> ``(..., dim)`` = [sin, cos] of ``2 pi (2p - 1) G``."""
        proj = 2 * math.pi * ((2 * coords01 - 1) @ self.gaussian.to(coords01.dtype))
        return torch.cat([proj.sin(), proj.cos()], dim=-1)

    def dense_pe(self) -> Tensor:
        """``(dim, H, W)`` Fourier PE at the feature-cell centres."""
        h, w = self.grid
        ys = (torch.arange(h, device=self.gaussian.device, dtype=self.gaussian.dtype) + 0.5) / h
        xs = (torch.arange(w, device=self.gaussian.device, dtype=self.gaussian.dtype) + 0.5) / w
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        return self.fourier(coords).permute(2, 0, 1)

    def forward(
        self,
        batch: int,
        points: tuple[Tensor, Tensor] | None = None,
        box: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Embed prompts.

        Args:
            batch: B. points: ``(coords (B, N, 2) pixels (x, y), labels (B, N))``.
            box: ``(B, 4)`` x0 y0 x1 y1.
            mask: ``(B, 1, 4H, 4W)`` logits-like mask prompt.

        Returns:
            ``(sparse (B, N', dim), dense (B, dim, H, W))``. Without a box one padding point is appended.
        """
        dev = self.not_a_point.device
        coords = torch.zeros(batch, 0, 2, device=dev)
        labels = torch.zeros(batch, 0, dtype=torch.long, device=dev)
        if points is not None:
            coords, labels = points[0].to(dev, torch.float32), points[1].to(dev).long()
        if box is not None:
            corners = box.to(dev, torch.float32).view(batch, 2, 2)
            coords = torch.cat([coords, corners], 1)
            labels = torch.cat([labels, torch.tensor([[2, 3]], device=dev).expand(batch, 2)], 1)
        else:
            coords = torch.cat([coords, torch.zeros(batch, 1, 2, device=dev)], 1)
            labels = torch.cat([labels, torch.full((batch, 1), -1, device=dev)], 1)
        sparse = self.fourier((coords + 0.5) / self.image_size)
        pad = (labels == -1).unsqueeze(-1)
        sparse = torch.where(pad, self.not_a_point.expand_as(sparse), sparse)
        sparse = sparse + torch.where(pad, torch.zeros_like(sparse), self.point_embed[labels.clamp(min=0)])
        if mask is not None:
            dense = self.mask_down(mask)
        else:
            dense = self.no_mask.view(1, -1, 1, 1).expand(batch, -1, *self.grid)
        return sparse, dense


class _Attn(nn.Module):
    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q, self.k, self.v, self.out = (
            nn.Linear(dim, inner),
            nn.Linear(dim, inner),
            nn.Linear(dim, inner),
            nn.Linear(inner, dim),
        )

    def _split(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = attention(self._split(self.q(q)), self._split(self.k(k)), self._split(self.v(v)))
        return self.out(out.transpose(1, 2).flatten(2))


class TwoWayBlock(nn.Module):
    """Post-norm two-way block: token self-attn, token->image, MLP, image->token."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_pe: bool) -> None:
        super().__init__()
        self.skip_first_pe = skip_first_pe
        self.self_attn, self.t2i, self.i2t = _Attn(dim, heads), _Attn(dim, heads, 2), _Attn(dim, heads, 2)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))

    def forward(self, tok: Tensor, img: Tensor, tok_pe: Tensor, img_pe: Tensor) -> tuple[Tensor, Tensor]:
        if self.skip_first_pe:  # SAM: layer 0 self-attention has no PE and no residual
            tok = self.norms[0](self.self_attn(tok, tok, tok))
        else:
            q = tok + tok_pe
            tok = self.norms[0](tok + self.self_attn(q, q, tok))
        tok = self.norms[1](tok + self.t2i(tok + tok_pe, img + img_pe, img))
        tok = self.norms[2](tok + self.mlp(tok))
        img = self.norms[3](img + self.i2t(img + img_pe, tok + tok_pe, tok))
        return tok, img


class MaskDecoder(nn.Module):
    """SAM 2 mask decoder with one mask token, an IoU head, an object-score head and the object pointer.

    Output masks are at 4x the feature resolution (the frame size for a stride-4 encoder).
    """

    def __init__(self, dim: int, heads: int = 4, mlp_dim: int = 256, depth: int = 2) -> None:
        super().__init__()
        self.tokens = nn.Parameter(0.02 * torch.randn(3, dim))  # [obj_score, iou, mask]
        self.blocks = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn, self.final_norm = _Attn(dim, heads, 2), nn.LayerNorm(dim)
        up = dim // 4
        self.upscale = nn.Sequential(
            nn.ConvTranspose2d(dim, up, 2, 2),
            LayerNorm2d(up),
            nn.GELU(),
            nn.ConvTranspose2d(up, up // 2, 2, 2),
            nn.GELU(),
        )
        self.hyper = mlp(dim, dim, up // 2)
        self.iou_head, self.obj_head, self.ptr_head = mlp(dim, dim, 1), mlp(dim, dim, 1), mlp(dim, dim, dim)
        self.no_obj_ptr = nn.Parameter(0.02 * torch.randn(dim))

    def forward(self, feat: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor) -> dict[str, Tensor]:
        """Decode.

        Args:
            feat: ``(B, C, H, W)`` (memory-conditioned) features. image_pe: ``(C, H, W)``.
            sparse: ``(B, N, C)`` prompt tokens. dense: ``(B, C, H, W)`` dense prompt.

        Returns:
            dict with ``masks`` ``(B, 1, 4H, 4W)`` logits (``-1024`` when the object score is <= 0),
            ``masks_ungated`` (the same logits before that gate), ``iou`` ``(B, 1)`` in [0, 1], ``obj_logit``
            ``(B, 1)``, ``obj_ptr`` ``(B, C)``.
        """
        b, c, h, w = feat.shape
        tok = torch.cat([self.tokens.expand(b, -1, -1), sparse], dim=1)
        tok_pe = tok
        img = (feat + dense).flatten(2).transpose(1, 2)
        img_pe = image_pe.flatten(1).transpose(0, 1).unsqueeze(0)
        for block in self.blocks:
            tok, img = block(tok, img, tok_pe, img_pe)
        tok = self.final_norm(tok + self.final_attn(tok + tok_pe, img + img_pe, img))
        obj_tok, iou_tok, mask_tok = tok[:, 0], tok[:, 1], tok[:, 2]
        up = self.upscale(img.transpose(1, 2).reshape(b, c, h, w))
        masks = torch.einsum("bc,bchw->bhw", self.hyper(mask_tok), up).unsqueeze(1)
        obj_logit = self.obj_head(obj_tok)
        present = (obj_logit > 0).to(masks.dtype)
        gated = torch.where(present.view(b, 1, 1, 1) > 0, masks, torch.full_like(masks, NO_OBJ_SCORE))
        ptr = present * self.ptr_head(mask_tok) + (1 - present) * self.no_obj_ptr  # SAM 2 fixed_no_obj_ptr
        return {
            "masks": gated,
            "masks_ungated": masks,
            "iou": torch.sigmoid(self.iou_head(iou_tok)),
            "obj_logit": obj_logit,
            "obj_ptr": ptr,
        }
