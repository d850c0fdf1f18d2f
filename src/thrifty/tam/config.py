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
        perceiver_init: ``"random"`` (EdgeTAM) or ``"pool"`` [recon]: the perceiver's cross-attentions start as
            average pools, so a fresh perceiver stores window averages of the memory map.
        perceiver_branch_gain: [recon] layer-scale init of the perceiver's feed-forward and latent
            self-attention residual branches; ``None`` (EdgeTAM) has no gains, 0 starts them closed.
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
    perceiver_init: str = "random"
    perceiver_branch_gain: float | None = None
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
        self.require(self.perceiver_init in ("random", "pool"), "perceiver_init", "'random' or 'pool'")
        self.require(self.n_global >= 0 and min(self.patch_grid) >= 0, "n_global", "non-negative latent counts")


@dataclass
class TamConfig(Config):
    """The reproduction: variants A, B, C, C', C+KD and D trained with the same budget on SynthVOS.

    Args:
        model: the base tracker; each variant overrides ``memory`` (and the latents for C').
        init: ``"from_A"`` (the papers' recipe: A is pretrained for ``pretrain_steps`` (cached), every variant
            copies the modules it shares with A and trains ``steps``; new modules such as the perceiver start
            fresh) or ``"scratch"`` (the ablation: every variant trains ``pretrain_steps + steps`` from scratch).
        pretrain_steps: A's pretraining steps. steps: training steps of every variant started from A.
        batch: clips per step. clip_len: frames per training clip (>= 6: the bank's recent slots get trained).
        lr: AdamW peak LR of A's pretraining and of from-scratch training (linear warm-up over a tenth of the
            steps, cosine to 5%). finetune_lr: peak LR of every variant started from A. grad_clip: global norm.
        gated_mask_loss: score the mask loss on SAM 2's object-gated logits (True, SAM 2) or on the logits
            before the gate (False) [recon]; see :func:`~thrifty.tam.algorithm.unroll_clip`.
        perceiver_branch_lr_scale: [recon] LR multiplier of the perceiver's feed-forward and latent
            self-attention residual branches (EdgeTAM: 1).
        scratch_ablation: variants also trained from scratch with the same total budget, reported as
            ``"<name> scratch"`` rows (only with ``init="from_A"``).
        perceiver_init_ablation: also train C with EdgeTAM's released perceiver (random init, no branch gains,
            one LR), reported as the ``"C EdgeTAM init"`` row.
        n_seeds: seeds ``seed .. seed + n_seeds - 1`` of the fine-tuning stage for A, B and C (the headline
            differences get a t-interval); A's pretraining is shared.
        latent_sweep: perceiver latent grids ``"G+PxP"`` (G global latents, a PxP patch grid) trained like C
            and scored, with C's own grid, against their storage; empty skips the sweep.
        eval_videos / eval_len: the fixed evaluation set.
        calib_videos: held-out validation videos (never the evaluation set) on which each variant's mask
            threshold is calibrated for the ``JF_calibrated`` diagnostic and the calibrated D floor.
        kd_weight_enc, kd_weight_mem: EdgeTAM distillation MSE weights [recon] (unpublished; 1 each).
        p_occlude: probability of a full-occlusion episode in a video.
        variants: which variants to run (A must precede C+KD, its teacher).
        timing_s: minimum timing seconds per latency measurement.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "pretrain_steps": 1,
            "steps": 1,
            "batch": 2,
            "eval_videos": 2,
            "eval_len": 3,
            "calib_videos": 2,
            "n_seeds": 2,
            "latent_sweep": ("1+1x1",),
            "scratch_ablation": ("C",),
            "perceiver_init_ablation": True,
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
                perceiver_init="pool",
                perceiver_branch_gain=0.0,
            ),
        },
        "quick": {},
        "full": {
            "pretrain_steps": 400,
            "steps": 100,
            "batch": 4,
            "eval_videos": 64,
            "latent_sweep": ("4+2x2", "32+8x8"),
            # C from scratch at 64 px (500 steps, about 7 min) is measured once in the docs (4.9 J&F); the
            # EdgeTAM-init ablation stays
            "perceiver_init_ablation": True,
            "model": TamModelConfig(
                image_size=64,
                n_global=16,
                patch_grid=(4, 4),
                patch_rope="window",
                perceiver_init="pool",
                perceiver_branch_gain=0.0,
            ),
        },
    }
    model: TamModelConfig = field(
        default_factory=lambda: TamModelConfig(
            image_size=32,
            n_global=4,
            patch_grid=(2, 2),
            patch_rope="window",
            perceiver_init="pool",
            perceiver_branch_gain=0.0,
        )
    )
    init: str = "from_A"
    pretrain_steps: int = 200
    steps: int = 75
    batch: int = 8
    clip_len: int = 6
    lr: float = 2e-3
    finetune_lr: float = 2e-3
    grad_clip: float = 1.0
    gated_mask_loss: bool = False
    perceiver_branch_lr_scale: float = 0.1
    scratch_ablation: tuple[str, ...] = ()  # smoke runs ("C",); quick and full skip it (their time budgets)
    perceiver_init_ablation: bool = False
    n_seeds: int = 3
    latent_sweep: tuple[str, ...] = ()
    eval_videos: int = 32
    eval_len: int = 16
    calib_videos: int = 16
    p_occlude: float = 0.3
    kd_weight_enc: float = 1.0
    kd_weight_mem: float = 1.0
    variants: tuple[str, ...] = ("A", "B", "C", "C'", "C+KD", "D")
    timing_s: float = 0.2

    def validate(self) -> None:
        self.require_positive("pretrain_steps", "steps", "batch", "eval_videos", "n_seeds")
        self.require_names("init", ("from_A", "scratch"))
        self.require(self.clip_len >= 2 and self.eval_len >= 3, "clip_len", ">= 2 (and eval_len >= 3)")
        self.require(self.calib_videos >= 0, "calib_videos", "a non-negative integer")
        self.require(0.0 <= self.p_occlude <= 1.0, "p_occlude", "a probability")
        self.require(self.lr > 0 and self.finetune_lr > 0, "lr", "positive learning rates (lr, finetune_lr)")
        self.require(self.grad_clip >= 0, "grad_clip", "a non-negative norm (0 disables clipping)")
        self.require(self.perceiver_branch_lr_scale > 0, "perceiver_branch_lr_scale", "a positive multiplier")
        known = ("A", "B", "C", "C'", "C+KD", "D")
        self.require_names("variants", known)
        self.require_names("scratch_ablation", known)
        if "C+KD" in self.variants or "C+KD" in self.scratch_ablation:
            self.require("A" in self.variants, "variants", "'A' (the distillation teacher) when 'C+KD' is run")
        self.require(
            all(_valid_grid(g) for g in self.latent_sweep), "latent_sweep", "latent grids written 'G+PxP', e.g. '4+2x2'"
        )


def parse_latent_grid(spec: str) -> tuple[int, tuple[int, int]]:
    """``"G+PxQ"`` -> ``(G, (P, Q))``: G global latents and a PxQ patch-latent grid."""
    glob, _, grid = spec.partition("+")
    rows, _, cols = grid.partition("x")
    return int(glob), (int(rows), int(cols))


def _valid_grid(spec: str) -> bool:
    try:
        g, (p, q) = parse_latent_grid(spec)
    except ValueError:
        return False
    return g >= 0 and p >= 0 and q >= 0 and g + p * q > 0
