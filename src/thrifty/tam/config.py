"""Configs: the compact tracker (:class:`TamModelConfig`) and the reproduction (:class:`TamConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from thrifty.core.config import Config

MEMORY_KINDS = ("full", "pooled", "perceiver", "none")


@dataclass
class TamModelConfig(Config):
    """A compact SAM 2-style tracker (spec section 7).

    Args:
        image_size: square frame side; the stride-4 encoder gives a ``image_size/4`` map.
        dim: feature / decoder width C. mem_dim: memory width Cm (pointers split into ``dim/mem_dim`` tokens).
        encoder: ``"conv"`` (4 convolutions) or ``"vit"`` (plain ViT + ViTDet neck, EfficientTAM style).
        memory: ``"full"`` (SAM 2), ``"pooled"`` (EfficientTAM), ``"perceiver"`` (EdgeTAM), ``"none"``.
        mem_layers, mem_ffn, mem_heads: memory attention (SAM 2: 4 / 2048 / 1 head of 256; EdgeTAM 2 layers).
            [recon] 4 heads of 16 here: with one 64-wide head the memory path did not learn in our budget.
        pool: EfficientTAM pooling window s.
        n_global, patch_grid: EdgeTAM latents; ``patch_grid=(0, 0)`` is the global-only ablation.
            [recon] latents scaled to 1/8 of the map tokens (EdgeTAM: 512 of 4096).
        patch_rope: RoPE coordinates of the patch latents in cross-attention: ``"official"`` (EdgeTAM's
            integer 0..P-1 grid) or ``"window"`` [recon] (window centres in query-grid coordinates).
        latent_std: perceiver latent init scale (EdgeTAM: 1.0).
        perceiver_norm_init: [recon] initial gain of the perceiver's final LayerNorm (EdgeTAM: 1). At 1 the
            compressed memories start 4x larger than the memory encoder's output and swamp the position
            encodings: neither C nor a full-memory model with LayerNorm'd memories learned a static copy probe
            in 120 steps, while 0.25 (the encoder's output scale) learned it like A.
        dec_heads, dec_mlp: mask decoder (MLP 256 keeps CPU training in minutes).
        num_maskmem, max_obj_ptrs: memory-bank bound (SAM 2: 7 and 16).
    """

    image_size: int = 64
    dim: int = 64
    mem_dim: int = 32
    encoder: str = "conv"
    memory: str = "full"
    mem_layers: int = 2
    mem_ffn: int = 256
    mem_heads: int = 4
    pool: int = 2
    n_global: int = 16
    patch_grid: tuple[int, int] = (4, 4)
    patch_rope: str = "official"
    latent_std: float = 1.0
    perceiver_norm_init: float = 0.25
    dec_heads: int = 4
    dec_mlp: int = 256
    num_maskmem: int = 7
    max_obj_ptrs: int = 16

    def validate(self) -> None:
        self.require(self.image_size > 0 and self.image_size % 16 == 0, "image_size", "a multiple of 16")
        self.require(self.encoder in ("conv", "vit"), "encoder", "'conv' or 'vit'")
        self.require(self.memory in MEMORY_KINDS, "memory", f"one of {MEMORY_KINDS}")
        self.require(self.dim % self.mem_dim == 0, "mem_dim", "a divisor of dim")
        self.require(self.mem_dim % 4 == 0 and self.dim % 4 == 0, "dim", "multiples of 4 (axial RoPE)")
        self.require(self.num_maskmem >= 1, "num_maskmem", "at least 1")
        self.require(self.pool >= 1, "pool", "a positive window")
        self.require(self.patch_rope in ("official", "window"), "patch_rope", "'official' or 'window'")
        self.require(self.n_global >= 0 and min(self.patch_grid) >= 0, "n_global", "non-negative latent counts")


@dataclass
class TamConfig(Config):
    """The reproduction: variants A, B, C, C', C+KD and D trained with the same budget on SynthVOS.

    Args:
        model: the base tracker; each variant overrides ``memory`` (and the latents for C').
        steps: optimisation steps per variant. batch: clips per step. clip_len: frames per training clip.
        lr: AdamW peak LR (cosine). eval_videos / eval_len: the fixed evaluation set.
        calib_videos: held-out validation videos (never the evaluation set) on which each variant's mask
            threshold is calibrated for the ``JF_calibrated`` diagnostic; 0 skips it. Claims use SAM 2's
            threshold 0.
        kd_weight_enc, kd_weight_mem: EdgeTAM distillation MSE weights [recon] (unpublished; 1 each).
        p_occlude: probability of a full-occlusion episode in a video.
        variants: which variants to run (A must precede C+KD, its teacher).
        timing_reps: minimum timing seconds per latency measurement.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "steps": 1,
            "batch": 2,
            "eval_videos": 2,
            "eval_len": 3,
            "calib_videos": 2,
            "timing_s": 0.005,
            "model": TamModelConfig(
                image_size=32,
                dim=32,
                mem_dim=16,
                mem_ffn=64,
                dec_mlp=64,
                n_global=2,
                patch_grid=(2, 2),
                num_maskmem=3,
                max_obj_ptrs=4,
            ),
        },
        "quick": {},
        "full": {
            "steps": 500,
            "eval_videos": 64,
            "clip_len": 6,
            "batch": 4,
            "model": TamModelConfig(image_size=64, n_global=16, patch_grid=(4, 4)),
        },
    }
    model: TamModelConfig = field(default_factory=lambda: TamModelConfig(image_size=32, n_global=4, patch_grid=(2, 2)))
    steps: int = 400
    batch: int = 8
    clip_len: int = 3
    lr: float = 2e-3
    eval_videos: int = 32
    eval_len: int = 16
    calib_videos: int = 16
    p_occlude: float = 0.3
    kd_weight_enc: float = 1.0
    kd_weight_mem: float = 1.0
    variants: tuple[str, ...] = ("A", "B", "C", "C'", "C+KD", "D")
    timing_s: float = 0.2

    def validate(self) -> None:
        self.require(self.steps > 0, "steps", "a positive integer")
        self.require(self.batch > 0, "batch", "a positive integer")
        self.require(self.clip_len >= 2 and self.eval_len >= 3, "clip_len", ">= 2 (and eval_len >= 3)")
        self.require(self.eval_videos > 0, "eval_videos", "a positive integer")
        self.require(self.calib_videos >= 0, "calib_videos", "a non-negative integer")
        self.require(0.0 <= self.p_occlude <= 1.0, "p_occlude", "a probability")
        known = ("A", "B", "C", "C'", "C+KD", "D")
        self.require(all(v in known for v in self.variants), "variants", f"names from {known}")
        if "C+KD" in self.variants:
            self.require("A" in self.variants, "variants", "'A' (the distillation teacher) when 'C+KD' is run")
