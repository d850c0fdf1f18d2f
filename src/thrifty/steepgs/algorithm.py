"""Training loops that pair a renderer with a density-control strategy (2D image fit, 3D scene fit)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from thrifty.steepgs.render import render_2d
from thrifty.steepgs.render3d import Camera, render_3d
from thrifty.steepgs.scene import surface_samples
from thrifty.steepgs.strategy import Strategy


@dataclass
class FitResult:
    """Outcome of one fit: final Gaussian count, PSNRs (dB), the count after each step, and (if the fit was
    extended at fixed count, see :func:`fit_scene_3d`) the test PSNR after the extension."""

    n_gaussians: int
    train_psnr: float
    test_psnr: float
    counts: list[int]
    params: dict[str, Tensor]
    extended_test_psnr: float | None = None


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """PSNR in dB for images in [0, 1] (pred clamped); ``mask`` (H, W) selects the pixels scored."""
    err = (pred.detach().clamp(0, 1) - target) ** 2
    if mask is not None:
        err = err[mask]
    return float(-10 * torch.log10(err.mean().clamp_min(1e-12)))


def make_optimizers(params: dict[str, torch.nn.Parameter], lrs: dict[str, float]) -> dict[str, torch.optim.Adam]:
    """One single-group Adam per parameter (eps 1e-15 as in 3DGS)."""
    missing = set(params) - set(lrs)
    if missing:
        raise ValueError(f"lrs: expected a learning rate for {sorted(missing)}")
    return {k: torch.optim.Adam([p], lr=lrs[k], eps=1e-15) for k, p in params.items()}


def check_image_inputs(image: Tensor, holdout: Tensor) -> None:
    """Raise a one-line ValueError unless ``image`` is (H, W, C) float in [0, 1] and ``holdout`` a usable mask.

    Args:
        image: (H, W, C) floating point, finite, values in [0, 1] (channels last, as :func:`load_photo` gives).
        holdout: (H, W) bool on ``image``'s device, with at least one held-out and one training pixel.
    """
    if not isinstance(image, Tensor) or image.dim() != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image: expected an (H, W, C) tensor, got {shape}")
    if image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image: expected channels last (H, W, C), got {tuple(image.shape)}; use image.permute(1, 2, 0)"
        )
    if not image.is_floating_point():
        raise ValueError(f"image: expected floating point values in [0, 1], got {image.dtype}; divide uint8 by 255")
    if not bool(torch.isfinite(image).all()) or float(image.min()) < 0 or float(image.max()) > 1:
        raise ValueError("image: expected finite values in [0, 1]")
    if not isinstance(holdout, Tensor) or holdout.dtype != torch.bool or holdout.shape != image.shape[:2]:
        got = f"{holdout.dtype} {tuple(holdout.shape)}" if isinstance(holdout, Tensor) else type(holdout).__name__
        raise ValueError(f"holdout: expected a bool tensor of shape {tuple(image.shape[:2])}, got {got}")
    if holdout.device != image.device:
        raise ValueError(f"holdout: expected device {image.device}, got {holdout.device}")
    if bool(holdout.all()) or not bool(holdout.any()):
        raise ValueError("holdout: expected at least one held-out (True) and one training (False) pixel")


def init_gaussians_2d(image: Tensor, n: int, generator: torch.Generator) -> dict[str, torch.nn.Parameter]:
    """``n`` isotropic 2D Gaussians at random pixels, colours sampled from the image, opacity 0.5.

    Args:
        image: (H, W, C) target on the training device.
    """
    h, w, _ = image.shape
    dev, dt = image.device, image.dtype
    means = torch.rand(n, 2, generator=generator, dtype=dt).to(dev) * torch.tensor([w, h], device=dev, dtype=dt)
    spacing = math.sqrt(h * w / n)
    rows = means[:, 1].long().clamp(0, h - 1)
    cols = means[:, 0].long().clamp(0, w - 1)
    raw = {
        "means": means,
        "scales": torch.full((n, 2), math.log(spacing / 2), device=dev, dtype=dt),
        "angles": torch.zeros(n, device=dev, dtype=dt),
        "opacities": torch.zeros(n, device=dev, dtype=dt),
        "colors": image[rows, cols] * 0.5,
    }
    return {k: torch.nn.Parameter(v) for k, v in raw.items()}


def init_gaussians_3d(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """SfM-like init on the analytic scene: surface samples + noise with their shaded colours,
    scale = RMS distance to the 3 nearest neighbours, opacity 0.1, identity rotation (3DGS recipe)."""
    points, colors = surface_samples(n, generator)
    dist = torch.cdist(points, points)
    dist.fill_diagonal_(math.inf)
    knn = dist.topk(3, largest=False).values
    init = {
        "means": points,
        "quats": torch.tensor([1.0, 0, 0, 0]).repeat(n, 1),
        "scales": torch.log((knn**2).mean(-1).sqrt())[:, None].repeat(1, 3),
        "opacities": torch.logit(torch.full((n,), 0.1)),
        "colors": colors,
    }
    return {k: v.to(device) for k, v in init.items()}


def fit_image_2d(
    image: Tensor,
    holdout: Tensor,
    strategy: Strategy,
    *,
    steps: int,
    n_init: int,
    lrs: dict[str, float],
    generator: torch.Generator,
    train_frac: float = 0.5,
    scene_scale: float = 100.0,
    tile_size: int | None = 16,
    mode: str = "additive",
    eps2d: float = 0.3,
) -> FitResult:
    """Fit additive 2D Gaussians to ``image`` on the pixels not in ``holdout``; score the held-out ones.

    Each step trains on a fresh random ``train_frac`` of the training pixels, emulating multi-view
    gradient noise (without it, ADC's mean gradient norm equals the norm of the mean).

    Args:
        image: (H, W, C) float in [0, 1], channels last. holdout: (H, W) bool, never trained on.
        strategy: density control. scene_scale: 100 puts ADC's clone/split boundary (0.01 x) at 1 px.
        lrs: one Adam learning rate per parameter: ``means`` (pixels), ``scales`` (log pixels), ``angles``
            (radians), ``opacities`` (logits), ``colors``. The reproduction uses means 0.05, opacities 0.05,
            scales/angles/colors 0.01 (``thrifty.steepgs.experiment.LRS_2D``).

    Raises:
        ValueError: on a wrong-shaped, non-float, non-finite or out-of-range image, a holdout that is not an
            (H, W) bool mask with both held-out and training pixels, or non-positive ``steps``/``n_init``.
    """
    check_image_inputs(image, holdout)
    if steps <= 0 or n_init <= 0:
        raise ValueError(f"steps, n_init: expected positive integers, got {steps}, {n_init}")
    if not 0 < train_frac <= 1:
        raise ValueError(f"train_frac: expected a fraction in (0, 1], got {train_frac}")
    h, w, _ = image.shape
    params = init_gaussians_2d(image, n_init, generator)
    optimizers = make_optimizers(params, lrs)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale)
    counts = []
    for step in range(steps):
        img, info = render_2d(
            params["means"],
            params["scales"],
            params["angles"],
            params["opacities"],
            params["colors"],
            h,
            w,
            mode=mode,
            tile_size=tile_size,
            eps2d=eps2d,
        )
        keep = torch.rand(h, w, generator=generator).to(image.device) < train_frac
        mask = (keep & ~holdout)[..., None].to(image.dtype)
        loss = (((img - image) ** 2) * mask).sum() / (mask.sum() * image.shape[-1]).clamp_min(1)
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss.backward()
        strategy.step_post_backward(params, optimizers, state, step, info)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        counts.append(params["means"].shape[0])
    with torch.no_grad():
        img, _ = render_2d(
            params["means"],
            params["scales"],
            params["angles"],
            params["opacities"],
            params["colors"],
            h,
            w,
            mode=mode,
            tile_size=tile_size,
            eps2d=eps2d,
        )
    return FitResult(
        counts[-1],
        psnr(img, image, ~holdout),
        psnr(img, image, holdout),
        counts,
        {k: v.detach() for k, v in params.items()},
    )


def fit_scene_3d(
    train: list[tuple[Camera, Tensor]],
    test: list[tuple[Camera, Tensor]],
    init: dict[str, Tensor],
    strategy: Strategy,
    *,
    steps: int,
    lrs: dict[str, float],
    generator: torch.Generator,
    scene_scale: float,
    background: Tensor,
    tile_size: int | None = 16,
    extra_steps: int = 0,
) -> FitResult:
    """Fit 3D Gaussians to posed images (one random training view per step, L1 loss).

    The position learning rate decays exponentially by 100x over ``steps`` (3DGS schedule shape). With
    ``extra_steps`` > 0 the fit is scored after ``steps`` and then trained ``extra_steps`` more at the final
    learning rates, density control off (fixed count); the test PSNR then is ``extended_test_psnr``.

    Args:
        train, test: (camera, image (H, W, 3)) pairs. init: initial parameter tensors (see render_3d).
    """
    if steps <= 0 or extra_steps < 0:
        raise ValueError(f"steps, extra_steps: expected > 0 and >= 0, got {steps}, {extra_steps}")
    params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    optimizers = make_optimizers(params, lrs)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale)
    counts = []

    def train_step(step: int, densify: bool) -> None:
        cam, target = train[int(torch.randint(len(train), (1,), generator=generator))]
        img, info = render_3d(params, cam, background=background, tile_size=tile_size)
        loss = (img - target).abs().mean()
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss.backward()
        if densify:
            strategy.step_post_backward(params, optimizers, state, step, info)
        optimizers["means"].param_groups[0]["lr"] = lrs["means"] * 0.01 ** (min(step, steps - 1) / max(1, steps - 1))
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)

    def mean_psnr(views: list[tuple[Camera, Tensor]]) -> float:
        with torch.no_grad():
            return sum(
                psnr(render_3d(params, c, background=background, tile_size=tile_size)[0], t) for c, t in views
            ) / len(views)

    for step in range(steps):
        train_step(step, densify=True)
        counts.append(params["means"].shape[0])
    snapshot = {k: v.detach().clone() for k, v in params.items()}
    result = FitResult(counts[-1], mean_psnr(train), mean_psnr(test), counts, snapshot)
    for step in range(steps, steps + extra_steps):
        train_step(step, densify=False)
    if extra_steps:
        result.extended_test_psnr = mean_psnr(test)
    return result
