"""dTRPO as an offline preference objective: ``dpo_loss`` over estimated log-ratios, and a trainer.

dTRPO (arXiv 2603.18806) plugs its single-forward trajectory log-ratio estimate into DPO (spec B2, B3-iv).
**[recon]**: the official code is not public; the estimator, the masks and ``beta`` are parameters.

Shapes: ``N`` pairs, ``B`` batch of pairs, ``P`` prompt length, ``L`` response length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, TrainResult, train
from thrifty.dtrpo.estimators import LogProbEstimator, MaskPlan, score_plan


def dpo_loss(logratio_w: Tensor, logratio_l: Tensor, beta: float = 0.1, label_smoothing: float = 0.0) -> Tensor:
    """``-mean[(1-ls) log sigma(beta (rho_w - rho_l)) + ls log sigma(-beta (rho_w - rho_l))]``.

    Args:
        logratio_w: ``(B,)`` estimated ``log pi_theta(y_w) / pi_ref(y_w)`` of the chosen responses.
        logratio_l: ``(B,)`` the same for the rejected responses.
        beta: KL-regularisation strength (> 0).
        label_smoothing: conservative-DPO smoothing in ``[0, 0.5)``.

    Returns:
        scalar loss (``log 2`` when both log-ratios are zero).
    """
    if logratio_w.shape != logratio_l.shape or logratio_w.dim() != 1:
        raise ValueError(
            f"logratio_w, logratio_l: expected equal (B,) shapes, got {tuple(logratio_w.shape)} "
            f"and {tuple(logratio_l.shape)}"
        )
    if beta <= 0:
        raise ValueError(f"beta: expected a positive float, got {beta}")
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing: expected a value in [0, 0.5), got {label_smoothing}")
    margin = beta * (logratio_w - logratio_l)
    return -((1 - label_smoothing) * F.logsigmoid(margin) + label_smoothing * F.logsigmoid(-margin)).mean()


@dataclass
class PreferencePairs:
    """Offline preference pairs sharing a prompt per pair.

    Attributes:
        prompt: ``(N, P)`` prompt ids.
        chosen: ``(N, L)`` preferred responses.
        rejected: ``(N, L)`` dispreferred responses.
        chosen_order, rejected_order: optional ``(N, L)`` recorded unmasking steps (global ``b*K + s``).
    """

    prompt: Tensor
    chosen: Tensor
    rejected: Tensor
    chosen_order: Tensor | None = None
    rejected_order: Tensor | None = None

    def __post_init__(self) -> None:
        if self.prompt.dim() != 2 or self.prompt.shape[0] == 0:
            raise ValueError(f"prompt: expected a non-empty (N, P) tensor, got {tuple(self.prompt.shape)}")
        n = self.prompt.shape[0]
        for name in ("chosen", "rejected", "chosen_order", "rejected_order"):
            value = getattr(self, name)
            if value is None:
                continue
            if value.dim() != 2 or value.shape[0] != n or value.shape[1] == 0:
                raise ValueError(f"{name}: expected a (N={n}, L>0) tensor, got {tuple(value.shape)}")
        if self.chosen.shape != self.rejected.shape:
            raise ValueError(
                f"rejected: expected the chosen shape {tuple(self.chosen.shape)}, got {tuple(self.rejected.shape)}"
            )

    @classmethod
    def from_responses(
        cls, prompt_chosen: Tensor, chosen: Tensor, prompt_rejected: Tensor, rejected: Tensor, **orders: Tensor | None
    ) -> PreferencePairs:
        """Pairs from separately stored halves; raises if a pair's two prompts differ."""
        if prompt_chosen.shape != prompt_rejected.shape or not torch.equal(prompt_chosen, prompt_rejected):
            raise ValueError(
                "prompt_rejected: expected the same prompt as prompt_chosen in every pair "
                "(a preference pair compares two responses to one prompt)"
            )
        return cls(prompt_chosen, chosen, rejected, **orders)

    def __len__(self) -> int:
        return self.prompt.shape[0]

    def to(self, device: torch.device | str) -> PreferencePairs:
        move = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in vars(self).items()}
        return PreferencePairs(**move)


def _stack_plans(first: MaskPlan, second: MaskPlan) -> MaskPlan:
    return MaskPlan(
        torch.cat((first.prompts, second.prompts)),
        torch.cat((first.states, second.states)),
        torch.cat((first.weights, second.weights)),
        first.layout,
        first.block,
        first.exclude_id,
    )


class DTRPOTrainer:
    """Offline DPO with a pluggable log-ratio estimator (dTRPO when the estimator is ``DTRPOEstimator``).

    Chosen and rejected responses get their own masks; policy and reference share them (antithetic). With
    ``cache_reference`` every pair gets one fixed plan drawn from ``mask_seed`` and the reference scores
    are computed once before training (the same seed, so cached and live scores agree); otherwise a fresh
    plan is drawn at every step and the reference runs live under ``no_grad``. Training goes through
    :func:`thrifty.core.train.train`, so ``torchrun`` gives DDP.

    Args:
        policy: the model being trained.
        ref: the frozen reference model (e.g. a copy of the SFT model).
        estimator: any :class:`~thrifty.dtrpo.estimators.LogProbEstimator`.
        beta: DPO ``beta``.
        label_smoothing: DPO label smoothing.
        cache_reference: precompute reference scores with fixed per-pair masks.
        mask_seed: seed of the fixed plans (``cache_reference``) or of the per-step plans.
        score_chunk: pairs per reference-scoring forward when caching.
        nll_weight: weight of an added NLL term on the chosen response, ``-score_theta(y_w) / L`` with the
            same estimator and plan (RPO-style; spec B7's remedy for DPO lowering the chosen likelihood;
            whether dTRPO adds one is not recoverable). 0 is plain DPO.
    """

    def __init__(
        self,
        policy: nn.Module,
        ref: nn.Module,
        estimator: LogProbEstimator,
        *,
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        cache_reference: bool = True,
        mask_seed: int = 0,
        score_chunk: int = 256,
        nll_weight: float = 0.0,
    ) -> None:
        if beta <= 0:
            raise ValueError(f"beta: expected a positive float, got {beta}")
        if nll_weight < 0:
            raise ValueError(f"nll_weight: expected a non-negative float, got {nll_weight}")
        self.nll_weight = nll_weight
        self.policy, self.ref, self.estimator = policy, ref.eval().requires_grad_(False), estimator
        self.beta, self.label_smoothing = beta, label_smoothing
        self.cache_reference, self.mask_seed, self.score_chunk = cache_reference, mask_seed, score_chunk
        self.last_stats: dict[str, float] = {}
        self._plans: tuple[MaskPlan, MaskPlan] | None = None
        self._ref_scores: Tensor | None = None

    def _draw_plans(self, pairs: PreferencePairs, generator: torch.Generator) -> tuple[MaskPlan, MaskPlan]:
        plan_w = self.estimator.plan(pairs.prompt, pairs.chosen, generator, pairs.chosen_order)
        plan_l = self.estimator.plan(pairs.prompt, pairs.rejected, generator, pairs.rejected_order)
        return plan_w, plan_l

    @torch.no_grad()
    def prepare(self, pairs: PreferencePairs) -> None:
        """Draw the fixed per-pair plans and cache the reference scores ``(N, 2)`` (chosen, rejected)."""
        generator = torch.Generator().manual_seed(self.mask_seed)
        self._plans = self._draw_plans(pairs, generator)
        scores = []
        for lo in range(0, len(pairs), self.score_chunk):
            idx = torch.arange(lo, min(lo + self.score_chunk, len(pairs)), device=pairs.prompt.device)
            w = score_plan(self.ref, pairs.prompt[idx], pairs.chosen[idx], self._plans[0].select(idx))
            lo_ = score_plan(self.ref, pairs.prompt[idx], pairs.rejected[idx], self._plans[1].select(idx))
            scores.append(torch.stack((w, lo_), dim=1))
        self._ref_scores = torch.cat(scores)

    def adopt_reference(self, other: DTRPOTrainer) -> None:
        """Reuse ``other``'s prepared plans and reference scores (same estimator, reference and mask seed)."""
        if other._plans is None or other.estimator != self.estimator or other.mask_seed != self.mask_seed:
            raise ValueError("other: expected a prepared trainer with the same estimator and mask_seed")
        self._plans, self._ref_scores = other._plans, other._ref_scores

    def make_batch(self, pairs: PreferencePairs, index: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """The global batch of pairs ``index`` as a dict of tensors (dim 0 = pair), ready to shard."""
        sub = PreferencePairs(
            pairs.prompt[index],
            pairs.chosen[index],
            pairs.rejected[index],
            None if pairs.chosen_order is None else pairs.chosen_order[index],
            None if pairs.rejected_order is None else pairs.rejected_order[index],
        )
        if self.cache_reference:
            if self._plans is None or self._ref_scores is None:
                raise RuntimeError("call prepare(pairs) before training with cache_reference=True")
            plan_w, plan_l = self._plans[0].select(index), self._plans[1].select(index)
            ref_scores = self._ref_scores[index]
        else:
            plan_w, plan_l = self._draw_plans(sub, generator)
            ref_scores = torch.full((len(index), 2), float("nan"), device=index.device)
        batch = {"prompt": sub.prompt, "chosen": sub.chosen, "rejected": sub.rejected, "ref_scores": ref_scores}
        batch.update({f"w_{k}": v for k, v in plan_w.tensors().items()})
        batch.update({f"l_{k}": v for k, v in plan_l.tensors().items()})
        return batch

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """DPO loss of one batch: chosen and rejected scored in one stacked forward."""
        layout, block, exclude = self.estimator.layout, self.estimator.block, self.estimator.mask_id
        plan_w = MaskPlan(batch["w_prompts"], batch["w_states"], batch["w_weights"], layout, block, exclude)
        plan_l = MaskPlan(batch["l_prompts"], batch["l_states"], batch["l_weights"], layout, block, exclude)
        prompt2 = torch.cat((batch["prompt"], batch["prompt"]))
        resp2 = torch.cat((batch["chosen"], batch["rejected"]))
        plan2 = _stack_plans(plan_w, plan_l)
        ref = batch["ref_scores"]
        if torch.isnan(ref).any():
            with torch.no_grad():
                ref = score_plan(self.ref, prompt2, resp2, plan2).view(2, -1).T
        score = score_plan(model, prompt2, resp2, plan2)
        rho_w, rho_l = (score - torch.cat((ref[:, 0], ref[:, 1]))).chunk(2)
        loss = dpo_loss(rho_w, rho_l, self.beta, self.label_smoothing)
        if self.nll_weight:
            loss = loss - self.nll_weight * score[: len(rho_w)].mean() / resp2.shape[1]
        rho_w, rho_l = rho_w.detach(), rho_l.detach()
        self.last_stats = {
            "reward_chosen": float(self.beta * rho_w.mean()),
            "reward_rejected": float(self.beta * rho_l.mean()),
            "pref_acc": float((rho_w > rho_l).float().mean()),
        }
        return loss

    def train(
        self,
        pairs: PreferencePairs,
        cfg: TrainConfig,
        *,
        batch_size: int,
        ctx: RunContext | None = None,
        series: str = "train/dtrpo",
        generator: torch.Generator | None = None,
    ) -> TrainResult:
        """Train the policy for ``cfg.steps`` steps on batches of ``batch_size`` pairs drawn with ``generator``."""
        if batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        if self.cache_reference and self._plans is None:
            self.prepare(pairs)
        generator = generator or torch.Generator().manual_seed(self.mask_seed)
        batch_fn = self.batch_fn(pairs, batch_size, generator)
        return train(self.policy, self.loss, batch_fn, cfg, ctx=ctx, series=series)

    def batch_fn(
        self, pairs: PreferencePairs, batch_size: int, generator: torch.Generator
    ) -> Callable[[int], dict[str, Tensor]]:
        """``step -> batch`` drawing ``batch_size`` pair indices uniformly with ``generator``."""

        def fn(step: int) -> dict[str, Tensor]:
            index = torch.randint(len(pairs), (batch_size,), generator=generator).to(pairs.prompt.device)
            return self.make_batch(pairs, index, generator)

        return fn
