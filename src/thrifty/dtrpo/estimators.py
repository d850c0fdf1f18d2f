"""Pluggable sequence log-probability estimators for masked-diffusion LMs.

Every estimator here is linear in per-token log-probabilities: it draws a :class:`MaskPlan` (which
partially masked states to feed and how to weight ``log p(y_i | state)``), and :func:`score_plan` turns a
plan into a ``(B,)`` estimate for any model. Sharing one plan between the policy and the reference is the
antithetic (VRPO) trick, and :func:`logratio` does exactly that.

Estimators (spec A4, B3):

* :class:`ElboEstimator`: LLaDA / VRPO ELBO, ``n_mc`` forwards, one mask ratio per forward and block.
* :class:`MeanFieldEstimator`: d1's one-step mean-field, every response token masked, 1 forward.
* :class:`DTRPOEstimator`: dTRPO's single-forward estimators, ``"newly"`` (newly unmasked tokens,
  weight K) and ``"rao_blackwell"`` (all masked tokens, weight K c_s / m). **[recon]**: dTRPO's code is
  not public; this is the spec's checked reconstruction (B3).
* :class:`ExactTrajectoryEstimator`: replays a trajectory step by step, ``N_B * K`` forwards. It is the
  exact trajectory log-ratio only for trajectories sampled with **random remasking** at temperature 1,
  where the position-selection probability ``q`` is the same for every model and cancels; under
  low-confidence remasking it is the token part only (``q`` depends on the model and does not cancel).

Token log-probabilities are normalised over the vocabulary the sampler draws from, i.e. **excluding
``[MASK]``** (the sampler never produces it); ``MaskPlan.exclude_id`` names the excluded id.

Shapes: ``B`` batch, ``n`` forwards per response, ``P`` prompt length, ``L`` response length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn

from thrifty.dtrpo.model import _check_layout, block_causal_mask, two_copy_forward, uniform
from thrifty.dtrpo.sampler import num_transfer_tokens

Layout = Literal["two_copy", "canvas"]


@dataclass
class MaskPlan:
    """The random choices of one estimate, to be shared by the policy and the reference.

    Attributes:
        prompts: ``(B, n, P)`` prompt as fed to each forward (d1 masks some prompt tokens).
        states: ``(B, n, L)`` response state of each forward (masked positions hold the mask id).
        weights: ``(B, n, L)`` weight of ``log p(y_i | state)`` in the estimate.
        layout: ``"two_copy"`` (``[c ; x~ ; y]`` with the BD3-LM mask) or ``"canvas"`` (``[c ; x]`` with
            the sampler's block-causal mask).
        block: block size ``Bs``.
        exclude_id: token id left out of the softmax normalisation (the ``[MASK]`` id, which the sampler
            never draws); None normalises over the full vocabulary.
    """

    prompts: Tensor
    states: Tensor
    weights: Tensor
    layout: Layout
    block: int
    exclude_id: int | None = None

    @property
    def n_forwards(self) -> int:
        """Sequence forwards per response (batched into one call by :func:`score_plan`)."""
        return self.states.shape[1]

    def tensors(self) -> dict[str, Tensor]:
        """The per-example tensors (dim 0 = batch), e.g. to batch or shard plans."""
        return {"prompts": self.prompts, "states": self.states, "weights": self.weights}

    def select(self, index: Tensor) -> MaskPlan:
        """The plan of the examples ``index`` (``(b,)`` long)."""
        return MaskPlan(
            self.prompts[index], self.states[index], self.weights[index], self.layout, self.block, self.exclude_id
        )


class LogProbEstimator(Protocol):
    """What every estimator provides: a name, a plan sampler and its forward cost."""

    name: str
    block: int
    mask_id: int
    layout: ClassVar[Layout]

    def plan(
        self, prompt: Tensor, resp: Tensor, generator: torch.Generator | None = None, order: Tensor | None = None
    ) -> MaskPlan: ...

    def forwards_per_response(self, n_resp: int) -> int: ...


def _check_pair(prompt: Tensor, resp: Tensor, block: int) -> None:
    if prompt.dim() != 2 or resp.dim() != 2:
        raise ValueError(
            f"prompt, resp: expected (B, P) and (B, L) tensors, got {tuple(prompt.shape)} and {tuple(resp.shape)}"
        )
    if prompt.shape[0] != resp.shape[0]:
        raise ValueError(f"resp: expected the prompt's batch size {prompt.shape[0]}, got {resp.shape[0]}")
    _check_layout(prompt.shape[1], resp.shape[1], block)


def sampler_log_softmax(logits: Tensor, exclude_id: int | None) -> Tensor:
    """``log_softmax`` over the last dim with ``exclude_id`` left out (its entry is ``-inf``); ``(..., V)``."""
    if exclude_id is not None:
        hide = torch.arange(logits.shape[-1], device=logits.device) == exclude_id
        logits = logits.masked_fill(hide, float("-inf"))
    return logits.log_softmax(-1)


def score_plan(model: nn.Module, prompt: Tensor, resp: Tensor, plan: MaskPlan) -> Tensor:
    """``sum_{n, i} w[n, i] * log p_model(y_i | prompts[n], states[n])`` per response; ``(B,)``.

    ``p_model`` is normalised without ``plan.exclude_id`` (the sampler's vocabulary).

    Args:
        model: a masked-diffusion LM (or a DDP wrapper of one).
        prompt: ``(B, P)`` clean prompt (only its shape is checked: the plan carries what is fed).
        resp: ``(B, L)`` response whose log-probability is estimated.
        plan: from an estimator's ``plan``.
    """
    _check_pair(prompt, resp, plan.block)
    b, n, n_r = plan.states.shape
    if b != resp.shape[0] or n_r != resp.shape[1]:
        raise ValueError(
            f"plan: expected states of shape ({resp.shape[0]}, n, {resp.shape[1]}), got {tuple(plan.states.shape)}"
        )
    prompts = plan.prompts.reshape(b * n, -1)
    states = plan.states.reshape(b * n, n_r)
    clean = resp.repeat_interleave(n, dim=0)
    if plan.layout == "two_copy":
        logits = two_copy_forward(model, prompts, states, clean, plan.block)
    else:
        canvas = torch.cat((prompts, states), dim=1)
        mask = block_causal_mask(prompts.shape[1], n_r, plan.block, canvas.device)
        logits = model(canvas, attn_mask=mask)[:, prompts.shape[1] :]
    token_logp = sampler_log_softmax(logits, plan.exclude_id).gather(-1, clean[..., None]).squeeze(-1)  # (B*n, L)
    return (token_logp * plan.weights.reshape(b * n, n_r).to(token_logp.dtype)).reshape(b, -1).sum(1)


def logratio(
    policy: nn.Module, ref: nn.Module, prompt: Tensor, resp: Tensor, plan: MaskPlan, ref_score: Tensor | None = None
) -> Tensor:
    """``rho = score(policy) - score(ref)`` with the same plan (antithetic masks); ``(B,)``.

    Args:
        ref_score: cached ``score_plan(ref, ...)`` computed with this very plan (skips the ref forward).
    """
    if ref_score is None:
        with torch.no_grad():
            ref_score = score_plan(ref, prompt, resp, plan)
    return score_plan(policy, prompt, resp, plan) - ref_score


def _random_ranks(
    shape: tuple[int, int], block: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """A uniformly random unmasking rank ``0 .. Bs-1`` of each position inside its block; ``(B, L)``."""
    b, n_r = shape
    noise = uniform((b, n_r // block, block), generator, device)
    return noise.argsort(-1).argsort(-1).reshape(b, n_r)


def _local_steps(ranks: Tensor, block: int, steps: int) -> Tensor:
    """Step ``0 .. K-1`` at which a position of unmasking rank ``r`` is revealed under the even schedule."""
    counts = num_transfer_tokens(torch.tensor([block], device=ranks.device), steps)[0]
    ends = counts.cumsum(0)  # rank < ends[s] -> revealed at step <= s
    return torch.bucketize(ranks, ends, right=True)


def _order_to_local_steps(order: Tensor, block: int, steps: int) -> Tensor:
    """Recorded global step ``b*K + s`` -> local step ``s``, checking it belongs to the token's block."""
    blk = torch.arange(order.shape[1], device=order.device) // block
    local = order - blk[None, :] * steps
    if bool(((local < 0) | (local >= steps)).any()):
        raise ValueError(
            f"order: expected each token's recorded step in [b*K, (b+1)*K) of its block b "
            f"with K={steps}, got values outside"
        )
    return local


@dataclass
class ElboEstimator:
    """LLaDA / VRPO ELBO: ``n_mc`` forwards, one mask ratio per forward and block (``n_time = n``).

    Per forward and block, ``t ~ U(0,1)``, ``p = (1-eps) t + eps``, each token masked with probability
    ``p`` and weighted ``1 / (p * n_mc)``. Shared between policy and ref, this is VRPO's antithetic DPO.
    """

    block: int
    mask_id: int
    n_mc: int = 8
    eps: float = 1e-3
    name: str = "elbo"
    layout: ClassVar[Layout] = "two_copy"

    def forwards_per_response(self, n_resp: int) -> int:
        return self.n_mc

    def plan(
        self, prompt: Tensor, resp: Tensor, generator: torch.Generator | None = None, order: Tensor | None = None
    ) -> MaskPlan:
        _check_pair(prompt, resp, self.block)
        b, n_r = resp.shape
        t = uniform((b, self.n_mc, n_r // self.block), generator, resp.device)
        p_mask = ((1 - self.eps) * t + self.eps).repeat_interleave(self.block, dim=2)
        masked = uniform((b, self.n_mc, n_r), generator, resp.device) < p_mask
        states = resp[:, None].expand(b, self.n_mc, n_r).masked_fill(masked, self.mask_id)
        weights = masked / (p_mask * self.n_mc)
        prompts = prompt[:, None].expand(b, self.n_mc, -1)
        return MaskPlan(prompts, states, weights.float(), "two_copy", self.block, self.mask_id)


@dataclass
class MeanFieldEstimator:
    """d1's one-step mean-field: mask every response token (and prompt tokens w.p. ``p_mask_prompt``).

    On a block-diffusion model every block is fully masked and conditioned on the clean blocks before it
    (one two-copy forward). A biased estimate of ``log p(y)``.
    """

    block: int
    mask_id: int
    p_mask_prompt: float = 0.15
    name: str = "mean_field"
    layout: ClassVar[Layout] = "two_copy"

    def forwards_per_response(self, n_resp: int) -> int:
        return 1

    def plan(
        self, prompt: Tensor, resp: Tensor, generator: torch.Generator | None = None, order: Tensor | None = None
    ) -> MaskPlan:
        _check_pair(prompt, resp, self.block)
        mask_id = self.mask_id
        hide = uniform(tuple(prompt.shape), generator, prompt.device) < self.p_mask_prompt
        prompts = prompt.masked_fill(hide, mask_id)[:, None]
        states = torch.full_like(resp, mask_id)[:, None]
        ones = torch.ones(states.shape, device=resp.device)
        return MaskPlan(prompts, states, ones, "two_copy", self.block, mask_id)


@dataclass
class DTRPOEstimator:
    """dTRPO's single-forward estimator of the trajectory log-ratio **[recon]** (spec B3 ii-iii).

    Per block, draw one step ``s ~ U{0..K-1}`` and rebuild its state by re-masking the final block: the
    ``m`` tokens revealed at steps ``>= s`` are masked, the ``c_s`` revealed at step ``s`` are "newly
    unmasked". Which tokens comes from a uniformly random order (``order_source="random"``, unbiased for
    the order-averaged trajectory) or from the recorded sampler order (``"recorded"``).

    * ``estimator="newly"``: weight ``K`` on the newly unmasked tokens (the paper's caption).
    * ``estimator="rao_blackwell"``: weight ``K c_s / m`` on all masked tokens of the block (same
      expectation under random orders, lower variance; LLaDA's per-block ``1/t``).
    All blocks are scored in one two-copy forward.
    """

    block: int
    mask_id: int
    steps_per_block: int
    estimator: Literal["newly", "rao_blackwell"] = "newly"
    order_source: Literal["random", "recorded"] = "random"
    name: str = "dtrpo"
    layout: ClassVar[Layout] = "two_copy"

    def __post_init__(self) -> None:
        if self.estimator not in ("newly", "rao_blackwell"):
            raise ValueError(f"estimator: expected 'newly' or 'rao_blackwell', got {self.estimator!r}")
        if self.order_source not in ("random", "recorded"):
            raise ValueError(f"order_source: expected 'random' or 'recorded', got {self.order_source!r}")
        if not 0 < self.steps_per_block <= self.block:
            raise ValueError(f"steps_per_block: expected 1..block={self.block}, got {self.steps_per_block}")

    def forwards_per_response(self, n_resp: int) -> int:
        return 1

    def plan(
        self, prompt: Tensor, resp: Tensor, generator: torch.Generator | None = None, order: Tensor | None = None
    ) -> MaskPlan:
        _check_pair(prompt, resp, self.block)
        b, n_r = resp.shape
        k_steps, n_blocks = self.steps_per_block, n_r // self.block
        local = _resolve_local_steps(self.order_source, order, resp, self.block, k_steps, generator)
        step = (uniform((b, n_blocks), generator, resp.device) * k_steps).long().clamp_max(k_steps - 1)
        step = step.repeat_interleave(self.block, dim=1)  # (B, L): the chosen step of each token's block
        masked = local >= step
        newly = local == step
        if self.estimator == "newly":
            weights = newly * float(k_steps)
        else:
            m = masked.view(b, n_blocks, self.block).sum(-1).repeat_interleave(self.block, dim=1)
            c_s = newly.view(b, n_blocks, self.block).sum(-1).repeat_interleave(self.block, dim=1)
            weights = masked * (k_steps * c_s / m.clamp_min(1))
        states = resp.masked_fill(masked, self.mask_id)
        return MaskPlan(
            prompt[:, None], states[:, None], weights[:, None].float(), "two_copy", self.block, self.mask_id
        )


@dataclass
class ExactTrajectoryEstimator:
    """Replay of one unmasking trajectory: ``N_B * K`` canvas forwards, weight 1 on each step's new tokens.

    **Exact only for random remasking.** With the ``order`` recorded by :func:`~thrifty.dtrpo.sampler.sample`
    under ``remasking="random"`` at temperature 1, the sampler's trajectory probability is
    ``prod_s q(S_s) prod_{i in S_s} p(y_i | x^{s-1})`` with ``q(S_s) = 1 / C(m_s, c_s)`` the same for every
    model, so ``q`` cancels and this estimate *is* ``log pi_theta(tau) / pi_ref(tau)`` (tested by enumeration
    against the sampler). Under ``"low_confidence"`` remasking ``q`` depends on the model and does not
    cancel: the estimate is then the token part of the log-ratio only (see
    :func:`thrifty.dtrpo.reference.sampler_trajectory_logprob` for the full closed form). Without an
    ``order`` a uniformly random one is drawn.
    """

    block: int
    mask_id: int
    steps_per_block: int
    name: str = "exact"
    layout: ClassVar[Layout] = "canvas"

    def forwards_per_response(self, n_resp: int) -> int:
        return n_resp // self.block * self.steps_per_block

    def plan(
        self, prompt: Tensor, resp: Tensor, generator: torch.Generator | None = None, order: Tensor | None = None
    ) -> MaskPlan:
        _check_pair(prompt, resp, self.block)
        b, n_r = resp.shape
        k_steps = self.steps_per_block
        source = "recorded" if order is not None else "random"
        local = _resolve_local_steps(source, order, resp, self.block, k_steps, generator)
        blk = torch.arange(n_r, device=resp.device) // self.block
        states, weights = [], []
        for cur in range(n_r // self.block):
            for step in range(k_steps):
                masked = (blk[None] > cur) | ((blk[None] == cur) & (local >= step))
                states.append(resp.masked_fill(masked, self.mask_id))
                weights.append(((blk[None] == cur) & (local == step)).float())
        n = len(states)
        return MaskPlan(
            prompt[:, None].expand(b, n, -1),
            torch.stack(states, 1),
            torch.stack(weights, 1),
            "canvas",
            self.block,
            self.mask_id,
        )


def _resolve_local_steps(
    source: str, order: Tensor | None, resp: Tensor, block: int, steps: int, generator: torch.Generator | None
) -> Tensor:
    if source == "recorded":
        if order is None:
            raise ValueError("order: expected the recorded (B, L) unmasking steps for order_source='recorded'")
        if order.shape != resp.shape:
            raise ValueError(f"order: expected shape {tuple(resp.shape)}, got {tuple(order.shape)}")
        return _order_to_local_steps(order, block, steps)
    return _local_steps(_random_ranks(tuple(resp.shape), block, generator, resp.device), block, steps)
