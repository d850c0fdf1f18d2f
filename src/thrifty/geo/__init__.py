"""GEO: inversion-based image editing with a geometric accumulation loss (arXiv 2409.11734), on diffusers.

Reusable parts for any diffusers epsilon UNet + DDIM scheduler (+ VAE): :func:`ddim_step`,
:func:`ddim_invert`, :func:`cfg_eps` and :func:`reconstruct` in one pinned timestep convention;
null-text inversion (:func:`optimize_null_embeddings`, the reference code's schedule), negative-prompt
inversion and Direct Inversion; GEO's :class:`GeometricAccumulationLoss` and
:func:`boosted_image_prompt_edit`, both **[reconstruction]** (GEO publishes no code or equations; with
its knobs off the loss is exactly NTI's); and structure/edge metrics.
"""

from thrifty.core.registry import Method, register_method
from thrifty.geo.bench import run_bench
from thrifty.geo.config import GeoConfig
from thrifty.geo.ddim import DiffusionModel, cfg_eps, ddim_invert, ddim_step, denoise_step, predict_x0, reconstruct
from thrifty.geo.editing import EditResult, boosted_image_prompt_edit, geometry_guidance, guided_edit, paste_patch
from thrifty.geo.experiment import run_experiment
from thrifty.geo.geometry import GeometryDescriptor, lowpass, sobel
from thrifty.geo.inversion import (
    GeometricAccumulationLoss,
    NullInversion,
    direct_inversion_offsets,
    negative_prompt_nulls,
    optimize_null_embeddings,
)
from thrifty.geo.metrics import (
    edge_f1,
    grad_ssim,
    paired_difference,
    psnr,
    ssim,
    structure_distance,
    unet_mid_features,
)
from thrifty.geo.model import CaptionEncoder, ConditionalDenoiser, CropClassifier, tiny_unet
from thrifty.geo.saved import load_trained

METHOD = register_method(
    Method(
        name="geo",
        paper="GEO / Inverse-Meet-Insert: geometric accumulation inversion for image editing (arXiv 2409.11734)",
        claim=(
            "At w = 7.5 and an equal inner-step budget, null-text inversion with GEO's geometric accumulation "
            "loss (reconstructed) has a lower Canny edge-F1 error than plain NTI, at equal editability."
        ),
        config_cls=GeoConfig,
        reproduce=run_experiment,
        load_trained=load_trained,
        bench=run_bench,
    )
)

__all__ = [
    "load_trained",
    "CaptionEncoder",
    "ConditionalDenoiser",
    "CropClassifier",
    "DiffusionModel",
    "EditResult",
    "GeoConfig",
    "GeometricAccumulationLoss",
    "GeometryDescriptor",
    "NullInversion",
    "boosted_image_prompt_edit",
    "cfg_eps",
    "ddim_invert",
    "ddim_step",
    "denoise_step",
    "direct_inversion_offsets",
    "edge_f1",
    "geometry_guidance",
    "guided_edit",
    "grad_ssim",
    "lowpass",
    "negative_prompt_nulls",
    "optimize_null_embeddings",
    "paired_difference",
    "paste_patch",
    "predict_x0",
    "psnr",
    "reconstruct",
    "run_bench",
    "run_experiment",
    "sobel",
    "ssim",
    "structure_distance",
    "tiny_unet",
    "unet_mid_features",
]
