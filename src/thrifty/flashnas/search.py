"""Search for the latency / quality Pareto front at a fixed number of quality evaluations.

Strategies (all draw from the same seeded candidate pool of pruned subnets):

- ``"random"``: evaluate ``budget`` random candidates;
- ``"ehvi"`` with a cost proxy: multi-objective BO (a BoTorch GP on quality, expected hypervolume
  improvement over the discrete pool) on (quality up, cost down). The cost is free for every
  candidate: the latency model's prediction (the paper's hardware-in-the-loop search), or a proxy
  such as FLOPs or parameters. Only the quality is modelled: the cost is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from thrifty.flashnas.algorithm import ImportanceScores, make_subnet
from thrifty.flashnas.config import FlashLMConfig, SubnetConfig
from thrifty.flashnas.model import FlashLM


def pareto_front(y: Tensor, maximize: Sequence[bool]) -> Tensor:
    """``(N,)`` bool mask of the non-dominated rows of ``y (N, M)``; ``maximize[m]`` orients objective m."""
    if y.dim() != 2 or y.shape[1] != len(maximize):
        raise ValueError(f"y: expected (N, {len(maximize)}), got {tuple(y.shape)}")
    sign = torch.tensor([1.0 if m else -1.0 for m in maximize], dtype=torch.float64, device=y.device)
    z = y.double() * sign
    ge = (z[None, :, :] >= z[:, None, :]).all(-1)  # ge[i, j]: j at least as good as i everywhere
    gt = (z[None, :, :] > z[:, None, :]).any(-1)
    return ~(ge & gt).any(dim=1)


def hypervolume_2d(loss: np.ndarray, cost: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by the points (both minimised) inside the reference box ``ref = (loss, cost)``."""
    pts = sorted((c, q) for q, c in zip(loss, cost, strict=True) if q < ref[0] and c < ref[1])
    area, best = 0.0, ref[0]
    for i, (c, q) in enumerate(pts):
        best = min(best, q)
        next_c = pts[i + 1][0] if i + 1 < len(pts) else ref[1]
        area += (next_c - c) * (ref[0] - best)
    return area


@dataclass(frozen=True)
class SearchSpace:
    """Search ranges [inf] (the paper's are unpublished); coarse steps as in the spec.

    Args:
        depths: numbers of kept layers.
        widths: residual widths.
        ffns: FFN widths (one value for all kept layers of a candidate).
        kv_heads: numbers of kept KV groups.
        attn_prob: probability that a layer after the first keeps attention (layer 0 always does).
    """

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    ffns: tuple[int, ...]
    kv_heads: tuple[int, ...]
    attn_prob: float = 0.5

    @classmethod
    def from_backbone(cls, cfg: FlashLMConfig, width_step: int, ffn_step: int, min_layers: int = 2) -> SearchSpace:
        max_ffn = min(cfg.ffn)
        return cls(
            tuple(range(min(min_layers, cfg.n_layers), cfg.n_layers + 1)),
            tuple(range(width_step, cfg.d_model + 1, width_step)) or (cfg.d_model,),
            tuple(range(ffn_step, max_ffn + 1, ffn_step)) or (max_ffn,),
            tuple(range(1, cfg.n_kv_heads + 1)),
        )

    def sample(self, model: FlashLM, scores: ImportanceScores, gen: torch.Generator) -> SubnetConfig:
        def pick(options: Sequence[int]) -> int:
            return int(options[int(torch.randint(len(options), (1,), generator=gen))])

        n = pick(self.depths)
        attn = (True,) + tuple(bool(torch.rand(1, generator=gen) < self.attn_prob) for _ in range(n - 1))
        return make_subnet(
            model,
            scores,
            n_layers=n,
            d_model=pick(self.widths),
            ffn=pick(self.ffns),
            n_kv_heads=pick(self.kv_heads),
            attn=attn,
        )

    def pool(self, model: FlashLM, scores: ImportanceScores, n: int, gen: torch.Generator) -> list[SubnetConfig]:
        """``n`` distinct seeded candidates (fewer if the space is smaller)."""
        seen: dict[SubnetConfig, None] = {}
        for _ in range(20 * n):
            seen.setdefault(self.sample(model, scores, gen))
            if len(seen) == n:
                break
        return list(seen)


def encode(cfgs: Sequence[SubnetConfig], backbone: FlashLMConfig) -> np.ndarray:
    """``(N, 5)`` features in [0, 1]: depth, width, mean FFN, KV groups, attention layers (relative)."""
    rows = [
        [
            len(c.layers) / backbone.n_layers,
            c.d_model / backbone.d_model,
            float(np.mean(c.ffn)) / max(backbone.ffn),
            c.n_kv_heads / backbone.n_kv_heads,
            sum(c.attn) / backbone.n_layers,
        ]
        for c in cfgs
    ]
    return np.array(rows, dtype=np.float64)


def run_search(
    pool: Sequence[SubnetConfig],
    backbone: FlashLMConfig,
    evaluate: Callable[[int], float],
    budget: int,
    *,
    method: str = "ehvi",
    cost: np.ndarray | None = None,
    n_init: int = 3,
    seed: int = 0,
    ref_loss: float | None = None,
) -> list[int]:
    """Indices of the ``budget`` pool entries evaluated (in order); ``evaluate(i)`` returns the loss.

    ``cost (N,)`` is required for ``"ehvi"``: the free objective the BO trades against quality.
    The first ``n_init`` evaluations are the seeded random draws that ``"random"`` makes with the same ``seed``
    (give each strategy its own seed, or they share those draws). ``ref_loss`` makes the acquisition
    constraint-aware: only losses below it add hypervolume, so the budget is not spent on fast candidates of
    unusable quality (default: just above the worst loss seen).
    """
    if not 0 < budget <= len(pool):
        raise ValueError(f"budget: expected 1..{len(pool)} evaluations, got {budget}")
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed)).tolist()
    if method == "random":
        chosen = order[:budget]
        for i in chosen:
            evaluate(i)
        return chosen
    if method != "ehvi":
        raise ValueError(f"method: expected 'random' or 'ehvi', got {method!r}")
    if cost is None or len(cost) != len(pool):
        got = None if cost is None else len(cost)
        raise ValueError(f"cost: expected one value per candidate ({len(pool)}), got {got}")
    x = torch.tensor(encode(pool, backbone))
    cost_n = torch.tensor(np.asarray(cost, dtype=np.float64) / float(np.max(cost)))
    chosen = order[: min(n_init, budget)]
    losses = [evaluate(i) for i in chosen]
    while len(chosen) < budget:
        nxt = _bo_step(x, cost_n, chosen, losses, seed=seed + len(chosen), ref_loss=ref_loss)
        chosen.append(nxt)
        losses.append(evaluate(nxt))
    return chosen


def _bo_step(
    x: Tensor,
    cost: Tensor,
    chosen: list[int],
    losses: list[float],
    seed: int,
    n_samples: int = 64,
    ref_loss: float | None = None,
) -> int:
    """One Bayesian-optimisation pick over the unevaluated candidates by expected hypervolume improvement.

    Quality: a BoTorch ``SingleTaskGP`` on the evaluated candidates. Cost: exact (free for every
    candidate), so only the loss is uncertain and the 2-D EHVI is a Monte-Carlo average over
    ``n_samples`` seeded posterior draws of the loss. [inf] The paper's qLogNEHVI needs a posterior
    for every objective; with one exact objective this is the same acquisition without the log-smoothing.
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    y = torch.tensor(losses, dtype=torch.float64)[:, None]
    gp = SingleTaskGP(x[chosen], y, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp), optimizer_kwargs={"options": {"maxiter": 60}})
    taken = set(chosen)
    remaining = [i for i in range(len(x)) if i not in taken]
    with torch.no_grad():
        post = gp.posterior(x[remaining])
        mean, std = post.mean.squeeze(-1), post.variance.clamp_min(1e-12).sqrt().squeeze(-1)
    eps = torch.randn(n_samples, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    samples = (mean[:, None] + std[:, None] * eps[None, :]).numpy()  # (R, S) sampled losses
    worst = float(y.max()) + 0.1 * float(y.max() - y.min() + 1e-3)
    ref = (worst if ref_loss is None else ref_loss, 1.05)
    front_cost, front_loss = cost[chosen].numpy(), y.squeeze(-1).numpy()
    gains = hv_improvement(samples, cost[remaining].numpy(), front_loss, front_cost, ref).mean(axis=1)
    return remaining[int(np.argmax(gains))]


def hv_improvement(
    loss: np.ndarray, cost: np.ndarray, front_loss: np.ndarray, front_cost: np.ndarray, ref: tuple[float, float]
) -> np.ndarray:
    """Hypervolume gained by adding ``(loss[r, s], cost[r])`` to a set of points (both minimised).

    Args:
        loss: ``(R, S)`` candidate losses (``S`` samples each); cost: ``(R,)`` candidate costs.
        front_loss, front_cost: ``(N,)`` the current points; ref: the reference point ``(loss, cost)``.

    Returns:
        ``(R, S)`` improvements (0 when dominated or outside the reference box).
    """
    # The dominated height is a step function of cost: constant between consecutive front costs.
    edges = np.unique(front_cost[front_cost < ref[1]])
    lefts = np.concatenate([[-np.inf], edges])
    rights = np.concatenate([edges, [ref[1]]])
    heights = np.array([ref[0]] + [min(ref[0], float(front_loss[front_cost <= e].min())) for e in edges])
    overlap = np.clip(rights[None, :] - np.maximum(lefts[None, :], cost[:, None]), 0.0, None)  # (R, K)
    gain = np.clip(heights[None, :, None] - loss[:, None, :], 0.0, None)  # (R, K, S)
    return (overlap[:, :, None] * gain).sum(axis=1)
