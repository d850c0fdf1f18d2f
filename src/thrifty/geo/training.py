"""Photo-crop data, the cached denoiser training (caption dropout for CFG) and the editability classifier."""

from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.checkpoint import cache_dir, has_checkpoint, load_checkpoint, save_checkpoint
from thrifty.core.data import load_photo
from thrifty.core.optional import require
from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.geo.config import GeoConfig
from thrifty.geo.model import CaptionEncoder, ConditionalDenoiser, CropClassifier, tiny_unet

CODE_VERSION = "geo-denoiser-v1"  # bump when training code changes, so the cache never serves stale weights


class PhotoCrops:
    """Random crops (with horizontal flips) of photos resized to a few sides; label = photo index.

    Args:
        names: photo names; size: crop side; scales: resize sides the crops come from.
    """

    def __init__(self, names: tuple[str, ...], size: int, scales: tuple[int, ...]) -> None:
        self.size = size
        self.photos = [[load_photo(n, size=s).permute(2, 0, 1) for s in scales] for n in names]

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(n, 3, size, size)`` crops in [0, 1] and ``(n,)`` labels."""
        labels = torch.randint(len(self.photos), (n,), generator=generator)
        return self.crops_of(labels, generator), labels

    def crops_of(self, labels: Tensor, generator: torch.Generator) -> Tensor:
        """``(len(labels), 3, size, size)`` crops in [0, 1]; crop ``i`` is from photo ``labels[i]`` (random place)."""
        crops = []
        for label in labels.tolist():
            scaled = self.photos[label]
            img = scaled[int(torch.randint(len(scaled), (1,), generator=generator))]
            i, j = (int(torch.randint(d - self.size + 1, (1,), generator=generator)) for d in img.shape[1:])
            crop = img[:, i : i + self.size, j : j + self.size]
            crops.append(crop.flip(-1) if bool(torch.rand((), generator=generator) < 0.5) else crop)
        return torch.stack(crops)


def training_scheduler():  # noqa: ANN201
    """The DDPM training scheduler (1000 linear steps) and the matching DDIM sampler config."""
    diffusers = require("diffusers")
    return diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")


def sampling_scheduler():  # noqa: ANN201
    diffusers = require("diffusers")
    return diffusers.DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )


def _recipe(cfg: GeoConfig, seed: int) -> dict:
    keys = (
        "photos",
        "image_size",
        "train_scales",
        "widths",
        "emb_tokens",
        "emb_dim",
        "train_steps",
        "batch",
        "lr",
        "caption_dropout",
    )
    return {"code_version": CODE_VERSION, "seed": seed, **{k: getattr(cfg, k) for k in keys}}


def build_denoiser(cfg: GeoConfig) -> ConditionalDenoiser:
    unet = tiny_unet(cfg.image_size, tuple(cfg.widths), cfg.emb_dim, head_dim=8)
    return ConditionalDenoiser(unet, CaptionEncoder(tuple(cfg.photos), cfg.emb_tokens, cfg.emb_dim))


def get_denoiser(cfg: GeoConfig, ctx: RunContext, data: PhotoCrops) -> tuple[ConditionalDenoiser, bool]:
    """Train the denoiser (epsilon MSE, 10% null captions), or load it from the cache keyed by recipe + code."""
    recipe = _recipe(cfg, ctx.seed)
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    directory = cache_dir("geo", f"denoiser-{key}")
    torch.manual_seed(ctx.seed)
    model = build_denoiser(cfg).to(ctx.device)
    if has_checkpoint(directory):
        load_checkpoint(directory, model)
        return model.eval(), True
    ddpm, gen = training_scheduler(), ctx.generator(10)
    null = model.captions.null_index

    def batch_fn(step: int) -> tuple[Tensor, ...]:
        x, labels = data.sample(cfg.batch, gen)
        labels = torch.where(torch.rand(cfg.batch, generator=gen) < cfg.caption_dropout, null, labels)
        noise = torch.randn(x.shape, generator=gen)
        t = torch.randint(0, ddpm.config.num_train_timesteps, (cfg.batch,), generator=gen)
        return tuple(v.to(ctx.device) for v in (ddpm.add_noise(x * 2 - 1, noise, t), t, labels, noise))

    def loss_fn(m: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        noisy, t, labels, noise = batch
        return F.mse_loss(m(noisy, t, labels), noise)

    tcfg = TrainConfig(
        steps=cfg.train_steps,
        lr=cfg.lr,
        warmup_steps=min(50, cfg.train_steps // 10),
        min_lr_ratio=0.2,
        weight_decay=0.0,
        strategy="none",
        log_every=20,
    )
    train(model, loss_fn, batch_fn, tcfg, ctx=ctx, series="train/denoiser", progress_desc="denoiser")
    save_checkpoint(directory, model, recipe)
    return model.eval(), False


def train_classifier(cfg: GeoConfig, ctx: RunContext, data: PhotoCrops) -> CropClassifier:
    """The editability classifier: which photo a crop comes from (cross-entropy, same crop distribution)."""
    torch.manual_seed(ctx.seed + 1)
    model = CropClassifier(len(cfg.photos)).to(ctx.device)
    gen = ctx.generator(11)

    def batch_fn(step: int) -> tuple[Tensor, Tensor]:
        x, labels = data.sample(64, gen)
        return x.to(ctx.device), labels.to(ctx.device)

    def loss_fn(m: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        return F.cross_entropy(m(batch[0]), batch[1])

    tcfg = TrainConfig(steps=cfg.classifier_steps, lr=3e-3, strategy="none", log_every=50)
    train(model, loss_fn, batch_fn, tcfg, ctx=ctx, series="train/classifier", progress_desc="classifier")
    return model.eval()


__all__ = ["CODE_VERSION", "PhotoCrops", "build_denoiser", "get_denoiser", "sampling_scheduler", "train_classifier"]
