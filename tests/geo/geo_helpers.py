"""Tiny random diffusers models shared by the geo tests."""

from __future__ import annotations

import torch

from thrifty.core.optional import require
from thrifty.geo import DiffusionModel, tiny_unet

SCHED = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def scheduler(**overrides):
    return require("diffusers").DDIMScheduler(**{**SCHED, **overrides})


def tiny_model(steps: int = 5, size: int = 8, seed: int = 0) -> DiffusionModel:
    torch.manual_seed(seed)
    unet = tiny_unet(size, widths=(8, 16), emb_dim=16, head_dim=4).eval()
    with torch.no_grad():  # a random UNet's eps is O(10); shrink it to a trained model's O(1) scale
        unet.conv_out.weight.mul_(0.1)
        unet.conv_out.bias.mul_(0.1)
    return DiffusionModel(unet, scheduler(), steps)


def embeddings(batch: int = 1, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 16, generator=g), torch.randn(1, 3, 16, generator=g)


def image(batch: int = 2, size: int = 8, seed: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
