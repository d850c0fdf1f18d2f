"""Configuration of the dTRPO reproduction (``thrifty reproduce dtrpo``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config
from thrifty.dtrpo.model import MDLM_WEIGHTINGS
from thrifty.dtrpo.tasks import PROMPT_FORMATS

ARMS = ("dtrpo_rec", "dtrpo_rb", "vrpo", "mean_field", "exact", "sft")


@dataclass
class DTRPOConfig(Config):
    """Plateaued SFT start, near-miss graded preference pairs, then every arm x {pure, RPO} x seeds.

    Args:
        n_digits: digits per operand of the addition task.
        n_sums: additions per prompt (``"a1b1a2b2a3b3"``); the response writes every sum in turn, so
            three 1-digit sums fill 6 tokens = 3 informative blocks of 2 (one sum per block: units, then the
            carry). Two 2-digit sums need about 3x the SFT steps before the model starts to learn (measured).
        prompt_format: ``"digits"`` (``"a1b1a2b2a3b3"``: each output block sits at the same offset from its
            operands) or ``"equation"`` (``"a1+b1=a2+b2=a3+b3="``). With ``"equation"`` the 2,000-step ELBO SFT
            reached the plateau on seed 0 and stayed at 0.007 on seed 1; with ``"digits"`` and the masked-mean
            loss, seeds 1, 2, 4 and 5 reach it by step 500-750 and stay flat to 1,500 (measured, docs/methods/dtrpo.md).
        resp_len: response length ``L`` (the reversed, zero-padded sums, then EOS padding).
        block: block size ``Bs``; ``resp_len / block`` blocks.
        steps_per_block: sampler steps ``K`` per block (``Bs / K`` tokens per step).
        dim, n_layers, n_heads: model shape.
        carry_drop: probability that each carry is dropped in the SFT targets (a careless teacher): SFT
            converges to a model limited by it (greedy decoding drops every carry when ``carry_drop > 0.5``),
            and its errors are near misses (one carry, one digit). The chosen answers (best of 8 samples) keep
            more carries than the teacher did; at 0.9 continued SFT on them stays on the plateau (0.153 +-
            0.013 over 3 seeds), at 0.85 one seed of 3 and at 0.8 two of 3 learned the carry from them
            (measured), which would leave nothing for the preferences to add.
        sft_steps: SFT budget on the noisy targets (lr ``sft_lr`` with cosine decay to ``sft_min_lr_ratio`` of
            it, batch ``sft_batch``); the validation accuracy every ``sft_eval_every`` steps is logged to show
            the plateau. (With the earlier equation prompts and ELBO loss at a constant lr the plateau took 4,000
            steps and oscillated by +-0.02; cosine decay made it 2,000; measured.)
        sft_weighting: ``mdlm_loss`` weighting, ``"masked_mean"`` (CE averaged over masked tokens) or ``"elbo"``
            (LLaDA's ``1 / p``-weighted bound). With ``"elbo"`` seed 4 stayed at 0.003 after 1,500 steps;
            with ``"masked_mean"`` it reached the plateau by step 750 (measured).
        n_val: validation problems (SFT plateau curve and the per-arm sweep selection).
        n_pair_prompts, samples_per_prompt: offline pairs. Samples use **random remasking** at temperature
            1, so that the exact-trajectory arm is exact (the schedule term cancels); within each prompt
            samples are ranked by how many digits are right, and best is paired with worst, second with
            second-worst, skipping ties (chosen answers may themselves be imperfect).
        pairing: ``"graded"`` keeps every such pair; ``"imperfect"`` keeps only pairs whose chosen answer is
            itself wrong, so the chosen responses alone cannot teach the task and what the preferences add
            is the contrast between near misses (a reward ranking imperfect samples).
        dpo_steps, dpo_batch: the shared budget of every arm (and of continued SFT).
        sweep: ``(beta, lr)`` grid swept per preference arm and variant on seed 0, selected on validation
            accuracy; continued SFT sweeps the distinct learning rates.
        rpo_weight: ``nll_weight`` of the "+RPO" variant of each preference arm (the "pure" one uses 0).
        n_seeds: training seeds (batch order and masks) per selected configuration; intervals are 95% t.
        elbo_mc: VRPO's Monte-Carlo forwards per ELBO.
        p_mask_prompt: d1 mean-field prompt masking probability.
        n_test: held-out problems for the accuracy headline (greedy low-confidence decoding).
        var_pairs, var_seeds: pairs and mask seeds of the estimator-variance measurement.
        timing_s, timing_rounds: per-update timing (``torch.utils.benchmark``) run time and round-robin rounds
            (the spread of the time ratio is over rounds).
        arms: which arms to run (subset of ``ARMS``); ``dtrpo_rec`` re-masks in the recorded order (compared
            with exact), ``dtrpo_rb`` is Rao-Blackwellised with random orders (compared with VRPO).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "dim": 32,
            "n_layers": 1,
            "sft_steps": 4,
            "sft_eval_every": 2,
            "sft_batch": 16,
            "n_val": 16,
            "n_pair_prompts": 16,
            "samples_per_prompt": 4,
            "dpo_steps": 2,
            "dpo_batch": 4,
            "sweep": ((0.5, 1e-4),),
            "n_seeds": 2,
            "elbo_mc": 2,
            "n_test": 16,
            "var_pairs": 4,
            "var_seeds": 3,
            "timing_s": 0.01,
            "timing_rounds": 2,
        },
        # quick: the headline's arms only (continued SFT, dTRPO recorded order, exact), at the (beta, lr) the
        # preference arms selected in the full sweeps (the sweep then picks pure or +RPO per arm), 60 steps per
        # arm; the SFT start is full's (one cache entry). 205 s of one idle core with an empty cache (measured).
        "quick": {"arms": ("dtrpo_rec", "exact", "sft"), "sweep": ((0.5, 3e-4),), "dpo_steps": 60},
        # full: every arm, a 2-point (beta, lr) sweep, 2.5x the pairs and 150 steps per arm, 5 seeds; 842 s of
        # one core with the SFT start cached (measured).
        "full": {
            "n_pair_prompts": 1000,
            "dpo_steps": 150,
            "timing_rounds": 7,
            "n_seeds": 5,
            "n_test": 1000,
            "var_pairs": 128,
            "var_seeds": 32,
        },
    }
    n_digits: int = 1
    n_sums: int = 3
    prompt_format: str = "digits"
    resp_len: int = 6
    block: int = 2
    steps_per_block: int = 2
    dim: int = 64
    n_layers: int = 3
    n_heads: int = 4
    carry_drop: float = 0.9
    sft_steps: int = 1500
    sft_eval_every: int = 250
    sft_batch: int = 64
    sft_lr: float = 3e-3
    sft_min_lr_ratio: float = 0.1
    sft_weighting: str = "masked_mean"
    n_val: int = 300
    n_pair_prompts: int = 400
    samples_per_prompt: int = 8
    pairing: str = "imperfect"
    dpo_steps: int = 80
    dpo_batch: int = 16
    sweep: tuple[tuple[float, float], ...] = ((0.5, 3e-4), (1.0, 1e-3))
    rpo_weight: float = 1.0
    n_seeds: int = 3
    elbo_mc: int = 4
    p_mask_prompt: float = 0.15
    n_test: int = 1000
    var_pairs: int = 64
    var_seeds: int = 16
    timing_s: float = 0.1
    timing_rounds: int = 5
    arms: tuple[str, ...] = ARMS

    def validate(self) -> None:
        self.require(self.n_digits > 0, "n_digits", "a positive integer")
        self.require(self.n_sums > 0, "n_sums", "a positive integer")
        width = self.n_sums * (self.n_digits + 1)
        self.require(self.resp_len >= width, "resp_len", f"at least n_sums * (n_digits + 1) = {width}")
        self.require(
            self.block > 0 and self.resp_len % self.block == 0,
            "block",
            f"a positive divisor of resp_len={self.resp_len}",
        )
        self.require(0 < self.steps_per_block <= self.block, "steps_per_block", f"1..block={self.block}")
        self.require(self.dim % self.n_heads == 0, "n_heads", f"a divisor of dim={self.dim}")
        self.require_positive(
            "sft_steps",
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
            "timing_rounds",
        )
        self.require(self.n_seeds >= 2, "n_seeds", "at least 2 (for an interval)")
        self.require(0 <= self.sft_min_lr_ratio <= 1, "sft_min_lr_ratio", "a ratio in [0, 1]")
        self.require(0 <= self.carry_drop <= 1, "carry_drop", "a probability in [0, 1]")
        self.require(self.sft_weighting in MDLM_WEIGHTINGS, "sft_weighting", f"one of {MDLM_WEIGHTINGS}")
        self.require(self.prompt_format in PROMPT_FORMATS, "prompt_format", f"one of {PROMPT_FORMATS}")
        self.require(self.pairing in ("graded", "imperfect"), "pairing", "'graded' or 'imperfect'")
        self.require(self.samples_per_prompt >= 2, "samples_per_prompt", "at least 2 (to form pairs)")
        self.require(
            len(self.sweep) > 0 and all(len(c) == 2 and c[0] > 0 and c[1] > 0 for c in self.sweep),
            "sweep",
            "a non-empty tuple of (beta > 0, lr > 0) pairs",
        )
        self.require(self.timing_s > 0, "timing_s", "a positive number of seconds")
        self.require(self.rpo_weight > 0, "rpo_weight", "a positive float")
        self.require(0 <= self.p_mask_prompt < 1, "p_mask_prompt", "a probability in [0, 1)")
        self.require(len(self.arms) > 0 and set(self.arms) <= set(ARMS), "arms", f"a subset of {ARMS}")
        self.require("exact" in self.arms and "sft" in self.arms, "arms", "a set containing 'exact' and 'sft'")
