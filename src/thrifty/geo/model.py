"""The reproduction's tiny models: a pixel-space diffusers UNet, a caption encoder and a crop classifier."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from thrifty.core.optional import require


def tiny_unet(
    image_size: int, widths: tuple[int, ...] = (32, 64), emb_dim: int = 64, head_dim: int = 8, in_channels: int = 3
) -> nn.Module:
    """A diffusers ``UNet2DConditionModel`` from config (random init): plain first block, cross-attention below.

    Args:
        image_size: sample size; widths: channels per resolution; emb_dim: cross-attention width.
    """
    diffusers = require("diffusers")
    n = len(widths)
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1)
    up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    return diffusers.UNet2DConditionModel(
        sample_size=image_size,
        in_channels=in_channels,
        out_channels=in_channels,
        block_out_channels=widths,
        layers_per_block=1,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=emb_dim,
        attention_head_dim=head_dim,
        norm_num_groups=8,
    )


class CaptionEncoder(nn.Module):
    """Word-level caption -> ``(B, tokens, dim)`` embedding; the last index is the null caption "".

    The reproduction's stand-in for a text encoder: one learned sequence per photo name.

    Args:
        names: the caption vocabulary (photo names); tokens, dim: embedding sequence shape.
    """

    def __init__(self, names: tuple[str, ...], tokens: int = 4, dim: int = 64) -> None:
        super().__init__()
        self.names, self.tokens, self.dim = tuple(names), tokens, dim
        self.table = nn.Embedding(len(names) + 1, tokens * dim)

    @property
    def null_index(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The caption id of ``name`` ("" is the null caption)."""
        if name == "":
            return self.null_index
        if name not in self.names:
            raise ValueError(f"name: expected one of {self.names} or '', got {name!r}")
        return self.names.index(name)

    def forward(self, ids: Tensor) -> Tensor:
        """``(B,)`` caption ids -> ``(B, tokens, dim)``."""
        return self.table(ids).view(-1, self.tokens, self.dim)

    def embed(self, name: str, device: torch.device | None = None) -> Tensor:
        """``(1, tokens, dim)`` embedding of one caption, without gradient."""
        with torch.no_grad():
            return self(torch.tensor([self.index(name)], device=device))


class CropClassifier(nn.Module):
    """A small CNN scoring which photo a crop comes from: ``(B, 3, H, W)`` in [0, 1] -> ``(B, classes)`` logits."""

    def __init__(self, n_classes: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, n_classes),
        )

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image * 2 - 1)


class ConditionalDenoiser(nn.Module):
    """UNet + caption encoder in one module (one checkpoint); training adds noise to ``2 * image - 1``."""

    def __init__(self, unet: nn.Module, captions: CaptionEncoder) -> None:
        super().__init__()
        self.unet, self.captions = unet, captions

    def forward(self, z: Tensor, t: Tensor, ids: Tensor) -> Tensor:
        return self.unet(z, t, encoder_hidden_states=self.captions(ids)).sample


__all__ = ["CaptionEncoder", "ConditionalDenoiser", "CropClassifier", "tiny_unet"]
