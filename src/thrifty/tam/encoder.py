"""Image encoders producing one stride-4 feature map (stand-ins for Hiera / EfficientTAM's ViT)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from thrifty.core.nn import attention


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, H, W)``."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvEncoder(nn.Module):
    """Four 3x3 convolutions (two with stride 2): ``(B, 3, H, W) -> (B, dim, H/4, W/4)``."""

    def __init__(self, dim: int = 64, in_ch: int = 3) -> None:
        super().__init__()
        half = dim // 2
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, half, 3, 2, 1),
            LayerNorm2d(half),
            nn.GELU(),
            nn.Conv2d(half, half, 3, 1, 1),
            LayerNorm2d(half),
            nn.GELU(),
            nn.Conv2d(half, dim, 3, 2, 1),
            LayerNorm2d(dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, 1, 1),
        )
        self.stride = 4

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """A plain ViT (EfficientTAM style, global attention only) with the ViTDet neck.

    Patch size 4 (the compact analogue of EfficientTAM's 16 at 1024 px), learned absolute positions for a
    fixed ``image_size``, then ``conv1x1 -> LN2d -> conv3x3 -> LN2d`` to ``dim`` channels.
    """

    def __init__(
        self,
        dim: int = 64,
        image_size: int = 64,
        width: int = 96,
        depth: int = 4,
        heads: int = 3,
        patch: int = 4,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size: expected a multiple of patch={patch}, got {image_size}")
        self.grid = image_size // patch
        self.patch_embed = nn.Conv2d(3, width, patch, patch)
        self.pos = nn.Parameter(0.02 * torch.randn(1, self.grid * self.grid, width))
        self.blocks = nn.ModuleList(_ViTBlock(width, heads, 4 * width) for _ in range(depth))
        self.neck = nn.Sequential(
            nn.Conv2d(width, dim, 1, bias=False),
            LayerNorm2d(dim),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            LayerNorm2d(dim),
        )
        self.stride = patch

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        b, c, h, w = x.shape
        if (h, w) != (self.grid, self.grid):
            raise ValueError(f"x: expected {self.grid * self.stride}^2 frames for this ViT, got {tuple(x.shape[2:])}")
        tokens = x.flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            tokens = block(tokens)
        return self.neck(tokens.transpose(1, 2).reshape(b, c, h, w))
