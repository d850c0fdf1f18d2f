"""Configuration of the VideoAuto-R1 reproduction (``thrifty reproduce autothink``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config


@dataclass
class AutoThinkConfig(Config):
    """Moving-shapes video QA; direct, CoT and answer-twice arms trained with format SFT then GRPO.

    Args:
        n_train_per_type, n_val_per_type, n_test_per_type: each split holds this many examples times the 5
            question types; tau is chosen on the validation split, never on the test split.
        reasoning_share: fraction of reasoning questions in the validation and test splits (the evaluation
            mix; the training pool is balanced over the question types). 0.25 is perception-heavy like the
            paper's benchmark suite (5 of its 7 benchmarks are perception or grounding).
        dim, n_layers, n_heads: the video LM's decoder.
        sft_steps, sft_batch, sft_lr: format SFT of every arm (same budget).
        grpo_steps, prompts_per_step, group_size, steps_per_generation, grpo_lr, beta, clip: GRPO (same
            budget and seed for every arm); ``steps_per_generation`` optimiser steps per generation round.
        max_len: most generated tokens per response.
        ablations: also train the ``w1 = w2`` and ``alpha = 0`` answer-twice ablations.
        n_timing: questions per category for the wall-clock per answer.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "n_train_per_type": 4,
            "n_val_per_type": 2,
            "n_test_per_type": 2,
            "dim": 32,
            "n_layers": 1,
            "n_heads": 2,
            "sft_steps": 3,
            "sft_batch": 8,
            "grpo_steps": 2,
            "prompts_per_step": 2,
            "group_size": 2,
            "ablations": False,
            "n_timing": 1,
        },
        "quick": {},
        # full: a wider model, 2x quick's format SFT and 15x quick's GRPO budget (150 rounds x 16 prompts x 8
        # samples, enough to move the ablations), sized to fit 30 min of one core (quick: 213 s CPU)
        "full": {
            "n_train_per_type": 3000,
            "n_val_per_type": 200,
            "n_test_per_type": 300,
            "dim": 96,
            "n_layers": 2,
            "sft_steps": 2000,
            "grpo_steps": 150,
            "prompts_per_step": 16,
            "n_timing": 20,
        },
    }
    n_train_per_type: int = 1000
    n_val_per_type: int = 100
    n_test_per_type: int = 150
    reasoning_share: float = 0.25
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    sft_steps: int = 1000
    sft_batch: int = 48
    sft_lr: float = 3e-3
    grpo_steps: int = 20
    prompts_per_step: int = 8
    group_size: int = 8
    steps_per_generation: int = 2
    grpo_lr: float = 1e-4
    beta: float = 0.01
    clip: float = 0.2
    max_len: int = 28
    ablations: bool = True
    n_timing: int = 10

    def validate(self) -> None:
        self.require_positive(
            "n_train_per_type",
            "n_val_per_type",
            "n_test_per_type",
            "dim",
            "n_layers",
            "n_heads",
            "sft_steps",
            "sft_batch",
            "grpo_steps",
            "prompts_per_step",
            "steps_per_generation",
            "n_timing",
        )
        self.require(self.dim % self.n_heads == 0, "n_heads", f"a divisor of dim={self.dim}")
        self.require(self.group_size >= 2, "group_size", "at least 2 completions per prompt")
        self.require(self.max_len >= 26, "max_len", "at least 26 tokens (the longest answer-twice target)")
        self.require(0 < self.reasoning_share < 1, "reasoning_share", "a fraction in (0, 1)")
        self.require(self.sft_lr > 0 and self.grpo_lr > 0, "sft_lr", "positive learning rates")
        self.require(0 < self.clip < 1, "clip", "a ratio clip in (0, 1)")
        self.require(self.beta >= 0, "beta", "a non-negative KL weight")
