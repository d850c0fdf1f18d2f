"""The reproduction's data: generated videos encoded once by a frozen, pre-trained frame encoder."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.core.checkpoint import cache_dir, has_checkpoint, load_checkpoint, save_checkpoint
from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.longvu.config import LongVUExperimentConfig
from thrifty.longvu.model import FrameEncoder
from thrifty.longvu.video import N_GLYPHS, VideoGenerator

CODE_VERSION = "longvu-data-3"


@dataclass
class EncodedVideos:
    """Videos as frozen-encoder tokens plus what the questions and metrics need.

    Attributes:
        tokens: ``(V, T, P, D)`` frame tokens.
        shot_ids: ``(V, T)``; needle_mask: ``(V, T)`` bool; answers: ``(V, 3)``; candidates: ``(V, 4)``.
        hog: ``(V, T, F)`` model-free features, or ``None`` when not computed.
    """

    tokens: Tensor
    shot_ids: Tensor
    needle_mask: Tensor
    answers: Tensor
    candidates: Tensor
    hog: Tensor | None = None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def make_generator(cfg: LongVUExperimentConfig, n_frames: int | None = None) -> VideoGenerator:
    """The video generator of ``cfg`` (optionally with another length)."""
    return VideoGenerator(n_frames or cfg.n_frames, cfg.frame_size, cfg.shot_mean, cfg.noise, bank_size=64)


def _key(cfg: LongVUExperimentConfig, seed: int) -> str:
    fields = {k: cfg.to_dict()[k] for k in ("frame_size", "noise", "token_dim", "encoder_steps", "encoder_batch")}
    blob = json.dumps({"cfg": fields, "seed": seed, "code": CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pretrain_encoder(cfg: LongVUExperimentConfig, ctx: RunContext, gen: VideoGenerator) -> tuple[FrameEncoder, float]:
    """Train the frame encoder once on labelled single frames (photo + glyph), cached by config hash."""
    torch.manual_seed(ctx.seed)
    encoder = FrameEncoder(gen.n_photos, cfg.frame_size, dim=cfg.token_dim).to(ctx.device)
    directory = cache_dir("longvu", f"encoder-{_key(cfg, ctx.seed)}")
    if has_checkpoint(directory):
        meta = load_checkpoint(directory, encoder)
        return encoder.eval().requires_grad_(False), float(meta["train_s"])
    g = ctx.generator(10)
    start = time.perf_counter()

    def batch_fn(step: int) -> tuple[Tensor, Tensor, Tensor]:
        frames, photos, glyphs = gen.labelled_frames(cfg.encoder_batch, g)
        return frames.to(ctx.device), photos.to(ctx.device), glyphs.to(ctx.device)

    def loss_fn(model: FrameEncoder, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        tokens = model(batch[0])
        photo_logits, glyph_logits = model.heads(tokens)
        frame_label = batch[2].min(1).values  # the frame's glyph, or 8 (none)
        return (
            F.cross_entropy(photo_logits, batch[1])
            + F.cross_entropy(glyph_logits.flatten(0, 1), batch[2].flatten())
            + F.cross_entropy(model.glyph_head(tokens.mean(1)), frame_label)
        )

    train_cfg = TrainConfig(steps=cfg.encoder_steps, lr=3e-3, warmup_steps=min(20, cfg.encoder_steps), log_every=25)
    train(encoder, loss_fn, batch_fn, train_cfg, ctx=ctx, series="train/encoder")
    train_s = time.perf_counter() - start
    save_checkpoint(directory, encoder, {"train_s": train_s, "key": _key(cfg, ctx.seed)})
    return encoder.eval().requires_grad_(False), train_s


@torch.no_grad()
def encode_videos(
    gen: VideoGenerator, encoder: FrameEncoder, n_videos: int, g: torch.Generator, device: torch.device, hog: bool
) -> EncodedVideos:
    """Generate ``n_videos`` and encode every frame (frames themselves are not kept)."""
    from thrifty.longvu.features import hog_color_features

    parts: dict[str, list[Tensor]] = {
        k: [] for k in ("tokens", "shot_ids", "needle_mask", "answers", "candidates", "hog")
    }
    for _ in range(n_videos):
        video = gen.video(g)
        parts["tokens"].append(encoder(video.frames.to(device)).cpu())
        parts["shot_ids"].append(video.shot_ids)
        mask = torch.zeros(video.frames.shape[0], dtype=torch.bool)
        mask[video.needle_frames] = True
        parts["needle_mask"].append(mask)
        parts["answers"].append(video.answers())
        parts["candidates"].append(video.candidates)
        if hog:
            parts["hog"].append(hog_color_features(video.frames))
    stacked = {k: torch.stack(v) for k, v in parts.items() if v}
    return EncodedVideos(**stacked)


@torch.no_grad()
def encoder_accuracy(
    encoder: FrameEncoder, gen: VideoGenerator, n: int, g: torch.Generator, device: torch.device
) -> dict:
    """Held-out photo and glyph accuracy of the frozen encoder on fresh labelled frames."""
    frames, photos, cells = gen.labelled_frames(n, g)
    photo_logits, glyph_logits = encoder.heads(encoder(frames.to(device)))
    return {
        "encoder_photo_acc": float((photo_logits.argmax(-1).cpu() == photos).float().mean()),
        "encoder_glyph_acc": float((frame_glyph(glyph_logits).cpu() == cells.min(1).values).float().mean()),
    }


def frame_glyph(glyph_logits: Tensor) -> Tensor:
    """Frame-level glyph class from per-token logits ``(B, P, 9)``: the class of the token least likely to be
    "none" (index 8), or 8 when every token says none. Returns ``(B,)``."""
    token = glyph_logits.log_softmax(-1)[..., N_GLYPHS].argmin(1)
    return glyph_logits[torch.arange(glyph_logits.shape[0]), token].argmax(-1)
