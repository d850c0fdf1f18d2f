"""Configuration of the LongVU reproduction (``thrifty reproduce longvu``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config

METHODS = ("longvu", "uniform_frames", "uniform_pool", "random_drop", "dycoke", "tome", "visionzip")
ABLATIONS = ("longvu_no_temporal", "longvu_no_query", "longvu_no_stc")


@dataclass
class LongVUExperimentConfig(Config):
    """Long videos, a frozen frame encoder, and one QA model per compressor at the same budget and steps.

    Args:
        n_frames, frame_size, shot_mean, noise: the video generator (T frames of S x S pixels).
        n_train, n_test: videos (each asks all three questions).
        budget_ratio: the main budget as a fraction of the raw ``T * 16`` tokens (1/16 in the issue).
        sweep_ratios, sweep_methods: further budgets (empty: no sweep) and the arms run at each of them.
        temporal_keep, stc_keep: target keep ratios the temporal and STC thresholds are calibrated to, once, on
            training videos (the official 0.83 / 0.8 belong to DINOv2 / Qwen spaces).
        lo_side: LongVU's low-res grid side (1: a frame pooled to one token; see docs for why not 2x2).
        temporal_features: ``"encoder"`` (the frozen encoder's tokens) or ``"hog"`` (HOG + colour histograms).
        token_dim, encoder_steps, encoder_batch: frame encoder width and its one-off pre-training.
        qa_dim, qa_layers, qa_steps, qa_batch, qa_lr: the attention-pooling QA reader and its budget (same for every
            method).
        upper_frames: frames of the shorter videos the all-tokens upper bound reads.
        methods, ablations: which arms to run.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "n_frames": 64,
            "n_train": 8,
            "n_test": 4,
            "encoder_steps": 3,
            "qa_steps": 2,
            "qa_batch": 4,
            "sweep_ratios": (1 / 8,),
            "upper_frames": 16,
        },
        "quick": {
            "n_train": 400,
            "n_test": 200,
            "qa_steps": 500,
            "sweep_ratios": (1 / 32,),
            "sweep_methods": ("longvu", "uniform_frames", "longvu_no_stc"),
        },
        "full": {"n_frames": 384, "n_train": 1200, "n_test": 500, "qa_steps": 800},
    }
    n_frames: int = 256
    frame_size: int = 32
    shot_mean: float = 30.0
    noise: float = 0.02
    n_train: int = 400
    n_test: int = 120
    budget_ratio: float = 1 / 16
    sweep_ratios: tuple[float, ...] = (1 / 8, 1 / 32)
    sweep_methods: tuple[str, ...] = ("longvu", "uniform_frames", "uniform_pool", "longvu_no_stc")
    temporal_keep: float = 0.5
    stc_keep: float = 0.5
    lo_side: int = 1
    temporal_features: str = "encoder"
    token_dim: int = 32
    encoder_steps: int = 800
    encoder_batch: int = 64
    qa_dim: int = 32
    qa_layers: int = 1
    qa_steps: int = 600
    qa_batch: int = 32
    qa_lr: float = 3e-3
    upper_frames: int = 32
    methods: tuple[str, ...] = METHODS
    ablations: tuple[str, ...] = ABLATIONS

    def validate(self) -> None:
        self.require(self.n_frames >= 16 and self.n_frames % 16 == 0, "n_frames", "a multiple of 16 (>= 16)")
        self.require(self.frame_size % 8 == 0 and self.frame_size >= 16, "frame_size", "a multiple of 8 (>= 16)")
        self.require_positive(
            "n_train", "n_test", "encoder_steps", "encoder_batch", "qa_steps", "qa_batch", "token_dim"
        )
        for name in ("budget_ratio", "temporal_keep", "stc_keep"):
            self.require(0 < getattr(self, name) < 1, name, "a fraction in (0, 1)")
        self.require(all(0 < r < 1 for r in self.sweep_ratios), "sweep_ratios", "fractions in (0, 1)")
        self.require(self.temporal_features in ("encoder", "hog"), "temporal_features", "'encoder' or 'hog'")
        self.require(self.qa_dim % 4 == 0, "qa_dim", "a multiple of 4 (4 heads)")
        side = self.frame_size // 8
        self.require(0 < self.lo_side < side and side % self.lo_side == 0, "lo_side", f"a divisor of {side} below it")
        self.require(16 <= self.upper_frames <= self.n_frames, "upper_frames", f"16..n_frames={self.n_frames}")
        self.require(
            "longvu" in self.methods and set(self.methods) <= set(METHODS), "methods", f"{METHODS}, with longvu"
        )
        self.require(set(self.ablations) <= set(ABLATIONS), "ablations", f"a subset of {ABLATIONS}")
        arms = set(METHODS) | set(ABLATIONS)
        self.require(set(self.sweep_methods) <= arms, "sweep_methods", "names of methods or ablations")
