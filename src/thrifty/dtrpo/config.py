"""Configuration of the dTRPO reproduction (``thrifty reproduce dtrpo``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config

ARMS = ("dtrpo_newly", "dtrpo_rb", "vrpo", "mean_field", "exact", "sft")


@dataclass
class DTRPOConfig(Config):
    """Tiny block-diffusion LM on addition, then offline preference training arms side by side.

    Args:
        n_digits: digits per operand of the addition task (3 in the spec; 2 learns within a CPU budget).
        resp_len: response length ``L`` (sum digits + EOS padding).
        block: block size ``Bs``; ``resp_len / block`` blocks.
        steps_per_block: sampler steps ``K`` per block (``Bs / K`` tokens per step).
        dim, n_layers, n_heads: model shape.
        sft_max_steps: SFT budget; training stops earlier once held-out accuracy reaches ``sft_target_acc``
            (the spec asks for an imperfect SFT model, around 50-70%).
        sft_eval_every: SFT steps between accuracy checks on ``n_val`` problems.
        sft_batch, sft_lr: SFT batch size and constant learning rate.
        n_pair_prompts, samples_per_prompt, sample_temperature: offline pair collection (low-confidence
            remasking, recorded orders).
        dpo_steps, dpo_batch, dpo_lr, beta: the shared budget of every preference arm (and of continued SFT).
        nll_weight: weight of the NLL term on chosen responses added to every preference arm (RPO-style;
            0 is plain DPO, which at this scale lowers the chosen likelihood and collapses accuracy).
        elbo_mc: VRPO's Monte-Carlo forwards per ELBO.
        p_mask_prompt: d1 mean-field prompt masking probability.
        dtrpo_order: ``"random"`` or ``"recorded"`` re-masking for dTRPO's estimators **[recon]**.
        gold_fallback: pair the gold answer (synthetic left-to-right order) with an incorrect sample when a
            prompt has no correct sample; only the smoke preset uses it (an untrained model is never right).
        n_test: held-out problems for the accuracy headline (greedy decoding).
        var_pairs, var_seeds: pairs and mask seeds of the estimator-variance measurement.
        timing_s: minimum run time of each arm's per-update timing (``torch.utils.benchmark``).
        arms: which arms to run (subset of ``ARMS``).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "dim": 32,
            "n_layers": 1,
            "sft_max_steps": 4,
            "sft_eval_every": 2,
            "sft_batch": 16,
            "n_val": 16,
            "n_pair_prompts": 16,
            "samples_per_prompt": 4,
            "dpo_steps": 2,
            "dpo_batch": 4,
            "elbo_mc": 2,
            "n_test": 16,
            "gold_fallback": True,
            "var_pairs": 4,
            "var_seeds": 3,
            "timing_s": 0.01,
        },
        "quick": {},
        "full": {
            "sft_max_steps": 6000,
            "n_pair_prompts": 3000,
            "dpo_steps": 600,
            "n_test": 3000,
            "var_pairs": 256,
            "var_seeds": 32,
        },
    }
    n_digits: int = 2
    resp_len: int = 8
    block: int = 4
    steps_per_block: int = 4
    dim: int = 64
    n_layers: int = 3
    n_heads: int = 4
    sft_max_steps: int = 2500
    sft_eval_every: int = 250
    sft_target_acc: float = 0.5
    sft_batch: int = 64
    sft_lr: float = 3e-3
    n_val: int = 200
    n_pair_prompts: int = 800
    samples_per_prompt: int = 8
    sample_temperature: float = 1.0
    dpo_steps: int = 150
    dpo_batch: int = 16
    dpo_lr: float = 1e-4
    beta: float = 0.1
    nll_weight: float = 1.0
    elbo_mc: int = 8
    p_mask_prompt: float = 0.15
    dtrpo_order: str = "random"
    gold_fallback: bool = False
    n_test: int = 1000
    var_pairs: int = 64
    var_seeds: int = 16
    timing_s: float = 0.3
    arms: tuple[str, ...] = ARMS

    def validate(self) -> None:
        self.require(self.n_digits > 0, "n_digits", "a positive integer")
        self.require(self.resp_len > self.n_digits, "resp_len", f"more than n_digits={self.n_digits}")
        self.require(
            self.block > 0 and self.resp_len % self.block == 0,
            "block",
            f"a positive divisor of resp_len={self.resp_len}",
        )
        self.require(0 < self.steps_per_block <= self.block, "steps_per_block", f"1..block={self.block}")
        self.require(self.dim % self.n_heads == 0, "n_heads", f"a divisor of dim={self.dim}")
        for name in (
            "sft_max_steps",
            "sft_eval_every",
            "sft_batch",
            "n_val",
            "n_pair_prompts",
            "dpo_steps",
            "dpo_batch",
            "elbo_mc",
            "n_test",
            "var_pairs",
            "var_seeds",
        ):
            self.require(getattr(self, name) > 0, name, "a positive integer")
        self.require(self.samples_per_prompt >= 2, "samples_per_prompt", "at least 2 (to form pairs)")
        self.require(self.beta > 0, "beta", "a positive float")
        self.require(self.timing_s > 0, "timing_s", "a positive number of seconds")
        self.require(self.nll_weight >= 0, "nll_weight", "a non-negative float")
        self.require(0 <= self.p_mask_prompt < 1, "p_mask_prompt", "a probability in [0, 1)")
        self.require(self.dtrpo_order in ("random", "recorded"), "dtrpo_order", "'random' or 'recorded'")
        self.require(len(self.arms) > 0 and set(self.arms) <= set(ARMS), "arms", f"a subset of {ARMS}")
