"""``thrifty reproduce geo``: inversion methods side by side on a tiny pixel-space conditional UNet.

1. Train (or load from the cache) a diffusers ``UNet2DConditionModel`` on 16 px crops of shipped photos, the
   photo name as caption (10% null captions), and a crop classifier for editability.
2. Invert held-out crops (an unseen resize of the photos) with text-only DDIM under their own caption.
3. At ``w = 1`` and each ``w > 1``, with the same DDIM steps and inner-step budget: DDIM, negative-prompt
   inversion, NTI, GEO (each ``(k, lambda)`` of the grid) **[reconstruction]**, Direct Inversion.
4. Score the reconstruction (PSNR, SSIM, gradient SSIM, Canny edge F1, mid-block structure distance) and a
   prompt-swap edit (caption -> the next photo's): structure distance to the source and the classifier's
   target probability (editability, in points), plus seconds per image.
5. On the same crops, the boosted image prompt edit **[reconstruction]** (a pasted patch of the target photo)
   with NTI's and the GEO headline's nulls, scored like the prompt swap (``boost_*`` rows, report-only).
6. Crops of photos the model never saw (``unseen_photos``): DDIM at ``w = 1`` and ``7.5``, NTI, GEO headline and
   Direct Inversion at ``w = 7.5``, same budget (``*_unseen`` rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from thrifty.core.plots import bar_plot
from thrifty.core.runs import Results, RunContext
from thrifty.geo.config import GeoConfig
from thrifty.geo.ddim import DiffusionModel, ddim_invert, reconstruct
from thrifty.geo.editing import guided_edit, paste_patch
from thrifty.geo.inversion import (
    GeometricAccumulationLoss,
    direct_inversion_offsets,
    negative_prompt_nulls,
    optimize_null_embeddings,
)
from thrifty.geo.metrics import edge_f1, grad_ssim, psnr, ssim, structure_distance, unet_mid_features
from thrifty.geo.model import CaptionEncoder, ConditionalDenoiser, CropClassifier
from thrifty.geo.results import geo_results, paired_summary
from thrifty.geo.saved import save_denoiser
from thrifty.geo.training import PhotoCrops, get_denoiser, sampling_scheduler, train_classifier


class Bench:
    """Everything the arms share: model, images, embeddings, pivot trajectory, scorers, and what each arm left.

    Attributes:
        nulls: per arm name, the ``S`` null embeddings its inversion returned (for edits that reuse them).
        per_image: per arm name, ``(N,)`` per-image reconstruction metrics (for paired differences).
    """

    def __init__(
        self,
        cfg: GeoConfig,
        model: DiffusionModel,
        captions: CaptionEncoder,
        classifier: CropClassifier,
        images: Tensor,
        labels: Tensor,
        caption_ids: Tensor | None = None,
    ) -> None:
        """``images`` ``(N, 3, H, W)`` in [0, 1] with ``labels`` ``(N,)``; the edit target is the next photo.

        ``caption_ids`` ``(N,)``: the captions inverted under (default ``labels``; the null id for a null prompt).
        """
        self.cfg, self.model, self.classifier, self.images, self.labels = cfg, model, classifier, images, labels
        n_cls = len(cfg.photos)
        self.targets = (labels + 1) % n_cls
        with torch.no_grad():
            self.cond = captions(labels if caption_ids is None else caption_ids)
            self.tgt = captions(self.targets)
        self.null = captions.embed("", images.device)
        self.traj = ddim_invert(model, model.encode(images), self.cond)
        self.features = unet_mid_features(model, self.null)
        self.nulls: dict[str, list[Tensor]] = {}
        self.per_image: dict[str, dict[str, Tensor]] = {}

    def edit_score(self, edit: Tensor) -> dict[str, float]:
        """Structure distance of ``edit`` ``(N, 3, H, W)`` to the sources and its target probability (points)."""
        edit = edit.clamp(0, 1)
        with torch.no_grad():
            probs = self.classifier(edit).softmax(-1)
        return {
            "edit_structure_distance": float(structure_distance(edit, self.images, self.features).mean()),
            "editability": 100 * float(probs.gather(1, self.targets[:, None]).mean()),
        }

    def score(self, name: str, rec: Tensor, edit: Tensor, seconds: float) -> dict[str, float]:
        """Reconstruction metrics of ``rec``, structure and editability of ``edit`` (both ``(N, 3, H, W)``)."""
        rec, src = rec.clamp(0, 1), self.images
        per = {
            "psnr": psnr(rec, src),
            "ssim": ssim(rec, src),
            "grad_ssim": grad_ssim(rec, src),
            "edge_f1": edge_f1(rec, src),
            "structure_distance": structure_distance(rec, src, self.features),
        }
        self.per_image[name] = per
        means = {k: float(v.mean()) for k, v in per.items()}
        return {
            **means,
            "max_abs_err": float((rec - src).abs().max()),
            **self.edit_score(edit),
            "s_per_image": seconds / src.shape[0],
        }

    def run(self, name: str, nulls_fn: Callable[[], Any], w: float, offsets: bool = False) -> dict[str, float]:
        """Time ``nulls_fn`` (the inversion), reconstruct under the source caption and edit under the target."""
        start = time.perf_counter()
        out = nulls_fn()
        nulls = out.nulls if hasattr(out, "nulls") else out
        extra = {"inner_steps_mean": sum(out.inner_steps) / len(out.inner_steps)} if hasattr(out, "nulls") else {}
        adds = direct_inversion_offsets(self.model, self.traj, self.cond, nulls, w) if offsets else None
        z_rec = reconstruct(self.model, self.traj[-1], self.cond, nulls, w, offsets=adds)
        seconds = time.perf_counter() - start
        z_edit = reconstruct(self.model, self.traj[-1], self.tgt, nulls, w, offsets=adds)
        self.nulls[name] = nulls if isinstance(nulls, list) else [nulls] * self.model.num_steps
        with torch.no_grad():
            return {**self.score(name, self.model.decode(z_rec), self.model.decode(z_edit), seconds), **extra}


def _invert_fn(bench: Bench, w: float, loss: GeometricAccumulationLoss) -> Callable[[], Any]:
    cfg = bench.cfg
    return lambda: optimize_null_embeddings(
        bench.model,
        bench.traj,
        bench.cond,
        bench.null,
        w=w,
        inner_steps=cfg.inner_steps,
        lr=cfg.nti_lr,
        loss=loss,
        image=bench.images,
    )


def run_arms(
    bench: Bench,
    cfg: GeoConfig,
    ctx: RunContext,
    guidance: tuple[float, ...] | None = None,
    geo_grid: tuple[tuple[int, float], ...] | None = None,
    suffix: str = "",
) -> dict[str, dict[str, Any]]:
    """Every arm at every guidance scale (same pivot, steps and inner-step budget).

    ``guidance`` and ``geo_grid`` default to the config's; ``suffix`` is appended to every arm name, and a
    non-empty one (the unseen-photo subset) also drops negative-prompt inversion.
    """
    model = bench.model
    ddim = f"ddim_w1{suffix}"
    variants = {ddim: {"w": 1.0, **bench.run(ddim, lambda: [bench.null] * model.num_steps, 1.0)}}
    for w in cfg.guidance if guidance is None else guidance:
        tag = f"w{w:g}{suffix}"
        arms: dict[str, tuple[Callable[[], Any], bool]] = {
            f"ddim_{tag}": (lambda: [bench.null] * model.num_steps, False),
            f"npi_{tag}": (lambda: negative_prompt_nulls(model, bench.cond), False),
            f"nti_{tag}": (_invert_fn(bench, w, GeometricAccumulationLoss()), False),
            f"direct_{tag}": (lambda: [bench.null] * model.num_steps, True),
        }
        if suffix:
            del arms[f"npi_{tag}"]
        for k, lam in cfg.geo_grid if geo_grid is None else geo_grid:
            loss = GeometricAccumulationLoss(horizon=k, lambda_geo=lam, cond_branch=cfg.cond_branch)  # type: ignore
            arms[f"geo_k{k}_l{lam:g}_{tag}"] = (_invert_fn(bench, w, loss), False)
        for name, (fn, offsets) in arms.items():
            variants[name] = {"w": w, **bench.run(name, fn, w, offsets=offsets)}
            ctx.log(f"arm/{name}", 0, **{k: v for k, v in variants[name].items() if isinstance(v, float)})
    return variants


def unseen_bench(
    cfg: GeoConfig, model: DiffusionModel, denoiser: ConditionalDenoiser, classifier: CropClassifier, ctx: RunContext
) -> Bench:
    """A :class:`Bench` on crops of ``cfg.unseen_photos`` (at ``test_scale``), captioned per ``cfg.unseen_caption``."""
    data = PhotoCrops(tuple(cfg.unseen_photos), cfg.image_size, (cfg.test_scale,))
    which = torch.arange(len(cfg.unseen_photos)).repeat_interleave(cfg.unseen_crops)
    images = data.crops_of(which, ctx.generator(23)).to(ctx.device)
    with torch.no_grad():
        nearest = classifier(images).argmax(-1)
    ids = nearest if cfg.unseen_caption == "nearest" else torch.full_like(nearest, denoiser.captions.null_index)
    return Bench(cfg, model, denoiser.captions, classifier, images, nearest, caption_ids=ids)


def run_boost_arms(
    bench: Bench, cfg: GeoConfig, donors: Tensor, sources: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """GEO's boosted image prompt edit **[reconstruction]** on the held-out crops, reusing each source arm's nulls.

    The pixel edit pastes the centre of ``donors`` ``(N, 3, H, W)`` (crops of the target photo) into each crop
    (:func:`paste_patch`); ``pasted_patch`` scores that pixel edit alone. ``sources`` maps a source arm to its
    guidance scale. ``pixel_edit_psnr`` is the edit's PSNR to the pixel edit; ``s_per_image`` excludes the
    inversion (the source arm's row has it).
    """
    edited, mask = paste_patch(bench.images, donors, cfg.boost_patch)
    variants: dict[str, dict[str, Any]] = {"pasted_patch": bench.edit_score(edited)}
    for source, w in sources.items():
        start = time.perf_counter()
        out = guided_edit(
            bench.model, bench.images, edited, bench.tgt, bench.nulls[source], w, mask=mask, eta_geo=cfg.boost_eta
        )
        seconds = (time.perf_counter() - start) / bench.images.shape[0]
        scores = {**bench.edit_score(out), "pixel_edit_psnr": float(psnr(out, edited).mean())}
        variants[f"boost_{source}"] = {"w": w, **scores, "s_per_image": seconds}
    return variants


def run_experiment(cfg: GeoConfig, ctx: RunContext) -> Results:
    """The full reproduction; see the module docstring."""
    data = PhotoCrops(tuple(cfg.photos), cfg.image_size, tuple(cfg.train_scales))
    denoiser, cached = get_denoiser(cfg, ctx, data)
    classifier = train_classifier(cfg, ctx, data)
    save_denoiser(ctx.out_dir / "models" / "denoiser", denoiser, cfg, {"seed": ctx.seed, "cached": cached})
    held = PhotoCrops(tuple(cfg.photos), cfg.image_size, (cfg.test_scale,))
    images, labels = held.sample(cfg.n_test, ctx.generator(20))
    images, labels = images.to(ctx.device), labels.to(ctx.device)
    model = DiffusionModel(denoiser.unet, sampling_scheduler(), cfg.ddim_steps)
    with torch.no_grad():
        clf_acc = float((classifier(images).argmax(-1) == labels).float().mean())
    bench = Bench(cfg, model, denoiser.captions, classifier, images, labels)
    variants = run_arms(bench, cfg, ctx)
    k, lam = cfg.geo_headline
    geo = f"geo_k{k}_l{lam:g}_w7.5"
    donors = held.crops_of(bench.targets.cpu(), ctx.generator(22)).to(ctx.device)
    variants.update(run_boost_arms(bench, cfg, donors, {"ddim_w1": 1.0, "nti_w7.5": 7.5, geo: 7.5}))
    unseen = unseen_bench(cfg, model, denoiser, classifier, ctx)
    variants.update(run_arms(unseen, cfg, ctx, guidance=(7.5,), geo_grid=(cfg.geo_headline,), suffix="_unseen"))
    bar_plot(
        ctx,
        "edge_f1_error_w7.5",
        {n: 1 - v["edge_f1"] for n, v in variants.items() if n.endswith("w7.5") and "edge_f1" in v},
        ylabel="1 - edge F1 (reconstruction)",
        title="w = 7.5",
    )
    paired = {
        "structure_distance_w7.5": paired_summary(bench.per_image, geo, "nti_w7.5", "structure_distance"),
        "edge_f1_w7.5": paired_summary(bench.per_image, geo, "nti_w7.5", "edge_f1"),
        "edge_f1_w7.5_unseen": paired_summary(unseen.per_image, f"{geo}_unseen", "nti_w7.5_unseen", "edge_f1"),
    }
    for name, stats in paired.items():
        print(f"[thrifty] paired {geo} - nti, {name}: {stats['mean']:+.5f} +- {stats['se']:.5f} SE (n={stats['n']})")
        ctx.log(f"paired/{name}", 0, **{key: float(value) for key, value in stats.items()})
    extra = {
        "denoiser_from_cache": cached,
        "classifier_acc_on_sources": clf_acc,
        "unseen_nearest_captions": [cfg.photos[i] for i in unseen.labels.tolist()],
    }
    return geo_results(variants, geo, paired, cfg, extra)


__all__ = ["Bench", "run_arms", "run_boost_arms", "run_experiment", "unseen_bench"]
