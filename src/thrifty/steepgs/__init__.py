"""SteepGS: steepest-descent density control for Gaussian splatting (CVPR 2025, arXiv 2505.05587).

A pure-PyTorch differentiable Gaussian renderer (2D splats and 3D Gaussians, dense reference and
16x16-tiled path), the splitting matrix via the gradient identity S = 2 dL/dSigma - o (dL/do) Sigma^-1,
gsplat-shaped density-control strategies (3DGS ADC and SteepGS) with Adam-consistent parameter surgery,
.ply export, and the side-by-side reproduction (`thrifty reproduce steepgs`).
"""

from thrifty.core.registry import Method, register_method
from thrifty.steepgs.algorithm import (
    FitResult,
    check_image_inputs,
    fit_image_2d,
    fit_scene_3d,
    init_gaussians_2d,
    init_gaussians_3d,
    make_optimizers,
    psnr,
)
from thrifty.steepgs.bench import run_bench
from thrifty.steepgs.config import SteepGSConfig
from thrifty.steepgs.experiment import run_experiment
from thrifty.steepgs.export import load_ply, save_cameras, save_ply
from thrifty.steepgs.gaussian_ops import duplicate, remove, replace, reset_opacity, symmetric_offsets
from thrifty.steepgs.reference import autograd_splitting_matrix, closed_form_splitting_matrix, rasterize_dense
from thrifty.steepgs.render import rasterize, render_2d
from thrifty.steepgs.render3d import Camera, look_at, project_gaussians, render_3d
from thrifty.steepgs.splitting import smallest_eigenpairs, splitting_matrix, splitting_matrix_2d
from thrifty.steepgs.strategy import ADCStrategy, SteepStrategy, Strategy

__all__ = [
    "ADCStrategy",
    "Camera",
    "FitResult",
    "SteepGSConfig",
    "SteepStrategy",
    "Strategy",
    "autograd_splitting_matrix",
    "check_image_inputs",
    "closed_form_splitting_matrix",
    "duplicate",
    "fit_image_2d",
    "fit_scene_3d",
    "init_gaussians_2d",
    "init_gaussians_3d",
    "load_ply",
    "make_optimizers",
    "look_at",
    "project_gaussians",
    "psnr",
    "rasterize",
    "rasterize_dense",
    "remove",
    "render_2d",
    "render_3d",
    "replace",
    "reset_opacity",
    "run_bench",
    "run_experiment",
    "save_cameras",
    "save_ply",
    "smallest_eigenpairs",
    "splitting_matrix",
    "splitting_matrix_2d",
    "symmetric_offsets",
]

register_method(
    Method(
        name="steepgs",
        paper="Steepest Descent Density Control for Compact 3D Gaussian Splatting (CVPR 2025, arXiv 2505.05587)",
        claim=(
            "SteepGS reaches 3DGS quality with about half the Gaussians; we measure #G(SteepGS)/#G(ADC) at "
            "matched held-out PSNR on 2D photo fits and 3D novel views (target <= 0.6, PSNR loss <= 0.1 dB)."
        ),
        config_cls=SteepGSConfig,
        reproduce=run_experiment,
        bench=run_bench,
    )
)
