"""Density-control strategies in gsplat's Strategy shape: 3DGS ADC and SteepGS.

Parameters are a dict of ``nn.Parameter`` (``means`` (N, d), ``scales`` log (N, d), ``opacities``
logits (N,), ``colors`` (N, C) and ``angles`` (N,) for d = 2 or ``quats`` (N, 4) for d = 3), each with
its own single-group Adam optimizer. Usage per training step::

    image, info = render_3d(params, cam)
    strategy.step_pre_backward(params, optimizers, state, step, info)
    loss.backward()
    strategy.step_post_backward(params, optimizers, state, step, info)
    for opt in optimizers.values(): opt.step(); opt.zero_grad()
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thrifty.steepgs import gaussian_ops
from thrifty.steepgs.ops import rotation_2d, rotation_from_quats
from thrifty.steepgs.splitting import ESTIMATORS, smallest_eigenpairs, splitting_matrix

OPACITY_RULES = ("half", "keep", "revised")
DIRECTIONS = ("eigen", "random")
SELECTIONS = ("steep", "grad", "random_veto")
PLACEMENTS = ("steep", "adc")


def _rotations(params: dict) -> Tensor:
    if "quats" in params:
        return rotation_from_quats(params["quats"].detach())
    return rotation_2d(params["angles"].detach())


def _offspring_opacity(logits: Tensor, rule: str) -> Tensor:
    """Opacity logits of offspring: "half" o/2 (paper), "keep" o (3DGS/official default), "revised" 1-sqrt(1-o)."""
    o = torch.sigmoid(logits)
    if rule == "keep":
        return logits
    new = o / 2 if rule == "half" else 1 - torch.sqrt(1 - o)
    return torch.logit(new.clamp(1e-6, 1 - 1e-6))


@dataclass
class Strategy:
    """Base class: hooks called around ``loss.backward()``; state is a plain dict."""

    def check_sanity(self, params: dict, optimizers: dict) -> None:
        """Require one single-group optimizer per parameter name and the expected parameter names."""
        if set(params) != set(optimizers):
            raise ValueError(f"optimizers: expected keys {sorted(params)}, got {sorted(optimizers)}")
        for name, opt in optimizers.items():
            if len(opt.param_groups) != 1:
                raise ValueError(f"optimizers[{name!r}]: expected exactly one param_group")
        missing = {"means", "scales", "opacities"} - set(params)
        if missing or not ({"quats", "angles"} & set(params)):
            raise ValueError(f"params: expected means, scales, opacities and quats|angles, got {sorted(params)}")

    def initialize_state(self, scene_scale: float = 1.0) -> dict:
        """Statistics are allocated lazily on the first step (so they land on the params' device)."""
        if scene_scale <= 0:
            raise ValueError(f"scene_scale: expected > 0, got {scene_scale}")
        return {"scene_scale": scene_scale, "grad2d": None, "count": None}

    def step_pre_backward(self, params: dict, optimizers: dict, state: dict, step: int, info: dict) -> None:
        """Nothing to do: the renderers already retain the gradients the strategies read."""

    def step_post_backward(self, params: dict, optimizers: dict, state: dict, step: int, info: dict) -> None:
        """Accumulate statistics and grow/prune Gaussians; implemented by subclasses."""
        raise NotImplementedError


@dataclass
class ADCStrategy(Strategy):
    """3DGS Adaptive Density Control (Kerbl et al. 2023; gsplat ``DefaultStrategy`` defaults).

    Args:
        grow_grad2d: threshold on the mean NDC-space gradient norm of the 2D mean.
        grow_scale3d: clone if max scale <= grow_scale3d * scene_scale, else split.
        prune_opa: prune below this opacity. prune_scale3d: prune larger than this * scene_scale (after
            the first reset). refine_start_iter, refine_stop_iter, refine_every: densification schedule.
        reset_every: opacity reset period (0 = never); reset value 2 * prune_opa.
        split_div: offspring scale divisor. opacity_rule: offspring opacity for splits ("keep" = 3DGS).
        symmetric: place the two split offspring at p +/- R diag(s) z (a control) instead of 2 samples.
        max_gaussians: optional budget: growth keeps the highest-scoring candidates that fit.
        seed: seed of the strategy's own generator (split sampling).
    """

    grow_grad2d: float = 2e-4
    grow_scale3d: float = 0.01
    prune_opa: float = 0.005
    prune_scale3d: float = 0.1
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    refine_every: int = 100
    reset_every: int = 3000
    split_div: float = 1.6
    opacity_rule: str = "keep"
    symmetric: bool = False
    max_gaussians: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.opacity_rule not in OPACITY_RULES:
            raise ValueError(f"opacity_rule: expected one of {OPACITY_RULES}, got {self.opacity_rule!r}")
        if self.refine_every <= 0:
            raise ValueError(f"refine_every: expected a positive integer, got {self.refine_every}")
        if self.max_gaussians is not None and self.max_gaussians <= 0:
            raise ValueError(f"max_gaussians: expected a positive integer or None, got {self.max_gaussians}")
        self._generator: torch.Generator | None = None

    def _rand(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return torch.randn(shape, generator=self._generator, dtype=like.dtype).to(like.device)

    def update_state(self, params: dict, state: dict, info: dict) -> None:
        """Add this view's NDC gradient norms (and subclass statistics) for visible Gaussians."""
        n = params["means"].shape[0]
        if state["grad2d"] is None or state["grad2d"].shape[0] != n:
            state["grad2d"] = params["means"].new_zeros(n)
            state["count"] = params["means"].new_zeros(n)
        grad = info["means2d"].grad
        if grad is None:
            raise ValueError("info['means2d']: expected a retained gradient; call loss.backward() first")
        ndc = grad.detach() * grad.new_tensor([info["width"] / 2, info["height"] / 2])
        visible = info["visible"]
        state["grad2d"][visible] += ndc.norm(dim=-1)[visible]
        state["count"][visible] += 1

    def step_post_backward(self, params: dict, optimizers: dict, state: dict, step: int, info: dict) -> None:
        """Accumulate; every ``refine_every`` steps inside the window grow, prune and reset statistics."""
        if not isinstance(state, dict) or not {"scene_scale", "grad2d", "count"} <= set(state):
            raise ValueError("state: expected the dict returned by initialize_state(scene_scale); call it first")
        if step >= self.refine_stop_iter:
            return
        self.update_state(params, state, info)
        if step > self.refine_start_iter and step % self.refine_every == 0:
            self.grow(params, optimizers, state)
            self.prune(params, optimizers, state, step)
            for value in state.values():
                if torch.is_tensor(value):
                    value.zero_()
        if self.reset_every > 0 and step > 0 and step % self.reset_every == 0:
            gaussian_ops.reset_opacity(params, optimizers, 2 * self.prune_opa)

    def _apply_budget(self, params: dict, mask: Tensor, score: Tensor, extra_per_pick: int = 1) -> Tensor:
        """Keep only the best-scoring candidates that fit under ``max_gaussians``."""
        if self.max_gaussians is None:
            return mask
        room = max(0, (self.max_gaussians - params["means"].shape[0]) // extra_per_pick)
        if int(mask.sum()) <= room:
            return mask
        picked = torch.zeros_like(mask)
        if room > 0:
            cand = torch.nonzero(mask).squeeze(1)
            picked[cand[torch.topk(score[cand], room).indices]] = True
        return picked

    def grow(self, params: dict, optimizers: dict, state: dict) -> None:
        """Clone small high-gradient Gaussians, split large ones (two sampled offspring, scale / 1.6)."""
        grads = state["grad2d"] / state["count"].clamp_min(1)
        self.place_adc(params, optimizers, state, self._apply_budget(params, grads >= self.grow_grad2d, grads))

    def place_adc(self, params: dict, optimizers: dict, state: dict, high: Tensor) -> None:
        """ADC's placement of the selected Gaussians ``high`` (N,) bool: clone the small, split the large."""
        small = torch.exp(params["scales"].detach()).max(-1).values <= self.grow_scale3d * state["scene_scale"]
        clone, split = high & small, high & ~small
        if clone.any():
            gaussian_ops.duplicate(params, optimizers, state, clone)
        split = torch.cat([split, split.new_zeros(int(clone.sum()))])  # clones are never split this round
        if split.any():
            gaussian_ops.replace(params, optimizers, state, split, self._split_offspring(params, split))

    def _split_offspring(self, params: dict, mask: Tensor) -> dict[str, Tensor]:
        scales = torch.exp(params["scales"].detach()[mask])
        k, d = scales.shape
        z = self._rand((2, k, d), scales)
        if self.symmetric:
            z[1] = -z[0]
        offsets = torch.einsum("kij,mkj->mki", _rotations(params)[mask], scales * z).reshape(2 * k, d)
        return self._offspring(params, mask, offsets, self.split_div)

    def _offspring(self, params: dict, mask: Tensor, offsets: Tensor, scale_div: float) -> dict[str, Tensor]:
        """Two offspring per parent (rows [0, K) and [K, 2K)) at parent + offsets."""
        out = {name: p.detach()[mask].repeat(2, *([1] * (p.dim() - 1))) for name, p in params.items()}
        out["means"] = out["means"] + offsets
        out["scales"] = out["scales"] - torch.log(torch.tensor(scale_div, dtype=offsets.dtype))
        out["opacities"] = _offspring_opacity(out["opacities"], self.opacity_rule)
        return out

    def prune(self, params: dict, optimizers: dict, state: dict, step: int) -> None:
        """Remove near-transparent Gaussians, and (after the first reset) too-large ones.

        The screen-size rule of 3DGS is dead code there (its radii are zeroed first) and is omitted.
        """
        dead = torch.sigmoid(params["opacities"].detach()) < self.prune_opa
        if self.reset_every > 0 and step > self.reset_every:
            big = torch.exp(params["scales"].detach()).max(-1).values > self.prune_scale3d * state["scene_scale"]
            dead = dead | big
        if dead.any():
            gaussian_ops.remove(params, optimizers, state, dead)


@dataclass
class SteepStrategy(ADCStrategy):
    """SteepGS steepest-descent density control (Wang et al., CVPR 2025, arXiv 2505.05587).

    Candidates are ADC's (mean NDC grad >= grow_grad2d, if ``require_grad_cond``) filtered by
    lambda_min(mean S) < s_thresh. Large ones split into 2 offspring at p +/- |z| v_min (z ~ N(0,
    diag(s^2))), scale / split_div; small ones become 2 offspring at p +/- clone_shift * v_min with
    unchanged scale. Offspring opacity follows ``opacity_rule`` ("half" is the paper's rule).

    ``selection`` and ``placement`` split the method into its two parts for the factorial controls:
    "steep" selection is the eigenvalue filter, "grad" is ADC's candidate set unfiltered, and
    "random_veto" removes as many random ADC candidates as the eigenvalue filter would remove;
    "steep" placement is the +/- v_min split above, "adc" is ADC's clone / sampled split.

    Args:
        s_thresh: eigenvalue threshold (official default -1e-6).
        estimator: "identity" (exact S) or "inv_cov" (the official repo's proxy) [recon].
        direction: "eigen" (v_min) or "random" (a control: same selection, random unit direction).
        clone_shift: offset of small offspring along +/- v, in world units (pixels in 2D) [recon].
        selection: "steep", "grad" or "random_veto" (see above).
        placement: "steep" or "adc" (see above).
        parity_bug: emulate the released code's offspring signs (an explicit, labelled emulation, off by
            default): split offsets tiled with ``repeat(2, 1)`` and signed + on even rows, - on odd rows, so
            both offspring of a parent land on the same side whenever the number of splits is even.
    """

    s_thresh: float = -1e-6
    estimator: str = "identity"
    direction: str = "eigen"
    require_grad_cond: bool = True
    clone_shift: float = 0.0
    opacity_rule: str = "half"
    selection: str = "steep"
    placement: str = "steep"
    parity_bug: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value, allowed in (
            ("estimator", self.estimator, ESTIMATORS),
            ("direction", self.direction, DIRECTIONS),
            ("selection", self.selection, SELECTIONS),
            ("placement", self.placement, PLACEMENTS),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")

    def update_state(self, params: dict, state: dict, info: dict) -> None:
        """ADC statistics plus the running sum of S over visible views."""
        super().update_state(params, state, info)
        n, d = params["means"].shape
        if state.get("split_mats") is None or state["split_mats"].shape[0] != n:
            state["split_mats"] = params["means"].new_zeros(n, d, d)
        mats = splitting_matrix(info, self.estimator, params).to(state["split_mats"].dtype)
        state["split_mats"][info["visible"]] += mats[info["visible"]]

    def select(self, grads: Tensor, lam: Tensor) -> Tensor:
        """The grown set (N,) bool from mean NDC gradients (N,) and lambda_min (N,) per ``selection``."""
        candidates = grads >= self.grow_grad2d if self.require_grad_cond else torch.ones_like(lam, dtype=torch.bool)
        steep = candidates & (lam < self.s_thresh)
        if self.selection == "steep":
            return steep
        if self.selection == "grad":
            return candidates
        idx = torch.nonzero(candidates).squeeze(1)
        n_veto = int(candidates.sum()) - int(steep.sum())
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        vetoed = idx[torch.randperm(len(idx), generator=self._generator)[:n_veto].to(idx.device)]
        kept = candidates.clone()
        kept[vetoed] = False
        return kept

    def grow(self, params: dict, optimizers: dict, state: dict) -> None:
        """Grow the selected Gaussians with the configured placement (see class docstring)."""
        count = state["count"].clamp_min(1)
        lam, vec = smallest_eigenpairs(state["split_mats"] / count[:, None, None])
        grads = state["grad2d"] / count
        selected = self.select(grads, lam)
        if self.placement == "adc":
            self.place_adc(params, optimizers, state, self._apply_budget(params, selected, grads))
            return
        selected = self._apply_budget(params, selected, -lam)
        if selected.any():
            self.place_steep(params, optimizers, state, selected, vec[selected])

    def place_steep(self, params: dict, optimizers: dict, state: dict, selected: Tensor, vec: Tensor) -> None:
        """Replace each selected Gaussian by 2 offspring along +/- ``vec`` (K, d) (large ones also shrink)."""
        if self.direction == "random":
            vec = self._rand(tuple(vec.shape), vec)
            vec = vec / vec.norm(dim=-1, keepdim=True)
        scales = torch.exp(params["scales"].detach()[selected])
        large = scales.max(-1).values > self.grow_scale3d * state["scene_scale"]
        lengths = torch.where(
            large,
            (scales * self._rand(tuple(scales.shape), scales)).norm(dim=-1),
            torch.full_like(large, self.clone_shift, dtype=scales.dtype),
        )
        offsets = gaussian_ops.symmetric_offsets(vec, lengths)
        if self.parity_bug and large.any():
            rows = torch.nonzero(large).squeeze(1)
            buggy = gaussian_ops.parity_bug_offsets(vec[large], lengths[large])
            offsets[rows] = buggy[: len(rows)]
            offsets[rows + len(vec)] = buggy[len(rows) :]
        offspring = self._offspring(params, selected, offsets, 1.0)
        shrink = torch.log(torch.tensor(self.split_div, dtype=offsets.dtype)) * large.repeat(2)
        offspring["scales"] = offspring["scales"] - shrink[:, None]
        gaussian_ops.replace(params, optimizers, state, selected, offspring)
