"""Configuration of the Longhorn reproduction (issue #18): Zoology MQAR, char LM with an lr sweep and seeds,
length extrapolation, decode speed. ``quick`` and ``full`` are smaller cuts of the ``paper`` design."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config
from thrifty.longhorn.initialization import INIT_SCHEMES

MQAR_MODELS: tuple[str, ...] = ("longhorn", "longhorn_exact", "mamba", "gla", "transformer_conv")
LM_MODELS: tuple[str, ...] = ("longhorn", "mamba", "gla", "transformer")


@dataclass
class LonghornConfig(Config):
    """Sizes and budgets of ``thrifty reproduce longhorn``; every model gets the same data and steps.

    Args:
        init_scheme: the initialisation family of Longhorn and Mamba (``"mamba_ssm"``, the authors' scheme,
            or ``"transformers"``, ``MambaForCausalLM``'s defaults); ``lm_second_family`` re-runs the LM
            SSMs under the other family at their best lr (labelled rows).
        ssm_layers, d_state: char-LM SSM depth (no MLP; GLA/Transformer get half the blocks with a
            parameter-matched MLP) and state size N (16, the official code's).
        mqar_vocab, mqar_len, mqar_kv: Zoology MQAR (V > L, values without replacement, even query offsets).
        mqar_train, mqar_test, mqar_val: training examples (mixing every kv), test and early-stop examples
            per kv. mqar_steps, mqar_batch, mqar_lrs: budget and lr sweep (best lr kept per cell, as Zoology).
        mqar_layers, mqar_d_models, mqar_states: 2-layer models on a grid of widths and SSM state sizes N.
        mqar_eval_every, mqar_early_stop: early stop once the mean validation accuracy reaches this.
        mqar_models: which models run MQAR (``transformer_conv`` is attention with a short conv).
        lm_len, lm_batch, lm_steps, lm_lrs, lm_seeds: char LM on Shakespeare held out by play; every lr is
            swept on the first seed (selected on separate validation windows), then every seed runs at each
            model's best lr; ``lm_eval_steps`` are the steps where validation bits/char is logged.
        lm_d_model, lm_val_plays, lm_eval_batches, lm_models: width, held-out plays, windows, peers.
        extrap_len, extrap_batch, decode_contexts, decode_steps: extrapolation and decode benchmarks.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "mqar_vocab": 80,
            "mqar_len": 32,
            "mqar_kv": (2, 4),
            "mqar_train": 64,
            "mqar_test": 16,
            "mqar_val": 8,
            "mqar_steps": 2,
            "mqar_batch": 8,
            "mqar_lrs": (3e-3,),
            "mqar_d_models": (16,),
            "mqar_states": (4,),
            "mqar_eval_every": 1,
            "mqar_models": ("longhorn", "mamba", "transformer_conv"),
            "ssm_layers": 2,
            "d_state": 4,
            "lm_d_model": 16,
            "lm_len": 32,
            "lm_batch": 4,
            "lm_steps": 2,
            "lm_lrs": (3e-3,),
            "lm_seeds": 2,
            "lm_eval_steps": (1, 2),
            "lm_eval_batches": 1,
            "lm_second_family": False,
            "extrap_len": 64,
            "extrap_batch": 1,
            "decode_contexts": (8, 32),
            "decode_steps": 2,
        },
        "quick": {},
        "full": {
            "mqar_steps": 400,
            "mqar_lrs": (1e-2,),
            "mqar_train": 30000,
            "lm_steps": 1000,
            "lm_seeds": 3,
            "lm_eval_steps": (250, 500, 1000),
            "lm_eval_batches": 16,
        },
        # The design cut to about 2 h on 2 cores (docs/methods/longhorn.md gives the estimate from
        # measured step times): MQAR drops d=128 and N=32 (N=16 already has N >= kv at every kv) and stops at
        # 800 steps; the LM lr sweep runs on the first seed; the second init family runs one seed; no GLA LM.
        "paper": {
            "mqar_train": 100000,
            "mqar_test": 1000,
            "mqar_steps": 800,
            "mqar_states": (8, 16),
            "lm_steps": 2000,
            "lm_lrs": (1e-3, 3e-3, 1e-2),
            "lm_seeds": 3,
            "lm_eval_steps": (250, 500, 1000, 2000),
            "lm_eval_batches": 20,
            "lm_models": ("longhorn", "mamba", "transformer"),
            "lm_second_family": True,
            "extrap_len": 2048,
            "extrap_batch": 4,
        },
    }
    init_scheme: str = "mamba_ssm"
    ssm_layers: int = 4
    d_state: int = 16
    mqar_vocab: int = 1024
    mqar_len: int = 64
    mqar_kv: tuple[int, ...] = (4, 8, 16)
    mqar_train: int = 12000
    mqar_test: int = 500
    mqar_val: int = 128
    mqar_steps: int = 150
    mqar_batch: int = 64
    mqar_lrs: tuple[float, ...] = (1e-2,)
    mqar_power_a: float = 0.01
    mqar_layers: int = 2
    mqar_d_models: tuple[int, ...] = (64,)
    mqar_states: tuple[int, ...] = (16,)
    mqar_eval_every: int = 50
    mqar_early_stop: float = 0.99
    mqar_models: tuple[str, ...] = ("longhorn", "mamba", "transformer_conv")
    lm_d_model: int = 64
    lm_len: int = 128
    lm_batch: int = 8
    lm_steps: int = 200
    lm_lrs: tuple[float, ...] = (3e-3,)
    lm_seeds: int = 2
    lm_eval_steps: tuple[int, ...] = (100, 200)
    lm_eval_batches: int = 8
    lm_models: tuple[str, ...] = LM_MODELS
    lm_second_family: bool = False
    lm_val_plays: int = 4
    extrap_len: int = 1024
    extrap_batch: int = 2
    decode_contexts: tuple[int, ...] = (128, 512, 2048, 8192)
    decode_steps: int = 16

    def validate(self) -> None:
        self._validate_mqar()
        self.require_positive("ssm_layers", "d_state", "lm_d_model", "lm_len", "lm_batch", "lm_steps", "lm_seeds")
        self.require_positive("lm_eval_batches", "extrap_len", "extrap_batch", "decode_steps", "lm_val_plays")
        self.require(self.init_scheme in INIT_SCHEMES, "init_scheme", f"one of {INIT_SCHEMES}")
        self.require(self.ssm_layers % 2 == 0, "ssm_layers", "an even integer >= 2")
        self.require(_positive(self.lm_lrs), "lm_lrs", "positive learning rates")
        self.require(
            len(self.lm_eval_steps) > 0 and all(0 < s <= self.lm_steps for s in self.lm_eval_steps),
            "lm_eval_steps",
            f"steps in 1..lm_steps={self.lm_steps}",
        )
        self.require(
            set(self.lm_models) <= set(LM_MODELS) and {"longhorn", "mamba", "transformer"} <= set(self.lm_models),
            "lm_models",
            f"a subset of {LM_MODELS} containing 'longhorn', 'mamba' and 'transformer'",
        )
        self.require(self.extrap_len >= self.lm_len, "extrap_len", f"a length >= lm_len={self.lm_len}")
        self.require(
            len(self.decode_contexts) >= 2 and all(c > 0 for c in self.decode_contexts),
            "decode_contexts",
            "at least two positive prompt lengths",
        )

    def _validate_mqar(self) -> None:
        self.require_positive("mqar_train", "mqar_test", "mqar_val", "mqar_steps", "mqar_batch", "mqar_layers")
        self.require(self.mqar_eval_every > 0, "mqar_eval_every", "a positive integer")
        self.require(self.mqar_len > 0 and self.mqar_len % 2 == 0, "mqar_len", "a positive even length")
        self.require(self.mqar_vocab > self.mqar_len, "mqar_vocab", f"a vocabulary > mqar_len={self.mqar_len}")
        self.require(
            len(self.mqar_kv) > 0 and all(0 < 4 * kv <= self.mqar_len for kv in self.mqar_kv),
            "mqar_kv",
            f"pair counts with 4 * kv <= mqar_len={self.mqar_len}",
        )
        self.require(_positive(self.mqar_lrs), "mqar_lrs", "positive learning rates")
        self.require(_positive(self.mqar_d_models), "mqar_d_models", "positive widths")
        self.require(_positive(self.mqar_states), "mqar_states", "positive state sizes")
        self.require(
            set(self.mqar_models) <= set(MQAR_MODELS) and {"longhorn", "mamba"} <= set(self.mqar_models),
            "mqar_models",
            f"a subset of {MQAR_MODELS} containing 'longhorn' and 'mamba'",
        )
        self.require(0 < self.mqar_power_a <= 1, "mqar_power_a", "an exponent in (0, 1]")
        self.require(0 < self.mqar_early_stop <= 1, "mqar_early_stop", "an accuracy in (0, 1]")


def _positive(values: tuple) -> bool:
    return len(values) > 0 and all(v > 0 for v in values)
