"""Configuration of the SteepGS reproduction (2D image fitting + 3D novel-view synthesis)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config
from thrifty.core.data.photos import PHOTO_NAMES

VARIANTS_2D = ("adc", "steepgs", "steepgs_proxy", "steepgs_random_dir", "adc_symmetric")
VARIANTS_3D = ("adc", "steepgs")


@dataclass
class SteepGSConfig(Config):
    """Reproduction settings; thresholds are swept to trace #Gaussians-vs-PSNR curves.

    2D: additive splats fitted to scikit-image photos, ``holdout_frac`` of pixels held out for test
    PSNR, each step trained on a random ``train_frac`` of the rest. 3D: the analytic ray-traced scene
    with ``train_views`` / ``test_views`` ring cameras, one view per step, L1 loss.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "images": ("coffee",),
            "image_size": 16,
            "seeds": 1,
            "thresholds_2d": (3e-3,),
            "steps_2d": 30,
            "refine_every_2d": 10,
            "refine_stop_2d": 25,
            "n_init_2d": 8,
            "variants_2d": ("adc", "steepgs"),
            "image_size_3d": 16,
            "train_views": 4,
            "test_views": 2,
            "steps_3d": 20,
            "refine_every_3d": 10,
            "refine_stop_3d": 15,
            "n_init_3d": 60,
            "thresholds_3d": (2e-3,),
            "reset_every_3d": 0,
        },
        "quick": {},
        "full": {
            "images": ("astronaut", "coffee", "chelsea"),
            "seeds": 3,
            "steps_2d": 800,
            "refine_every_2d": 100,
            "refine_stop_2d": 600,
            "thresholds_2d": (8e-3, 4e-3, 2e-3, 1e-3),
            "image_size_3d": 48,
            "steps_3d": 2000,
            "refine_stop_3d": 1500,
            "reset_every_3d": 700,
            "thresholds_3d": (4e-3, 2e-3, 1e-3, 5e-4),
            "n_init_3d": 500,
            "seeds_3d": 2,
        },
    }
    # 2D task
    images: tuple[str, ...] = ("astronaut", "coffee")
    image_size: int = 32
    seeds: int = 2
    variants_2d: tuple[str, ...] = VARIANTS_2D
    thresholds_2d: tuple[float, ...] = (6e-3, 3e-3, 1.5e-3)
    steps_2d: int = 400
    refine_every_2d: int = 50
    refine_stop_2d: int = 300
    n_init_2d: int = 32
    holdout_frac: float = 0.1
    train_frac: float = 0.5
    eps2d: float = 0.3
    clone_shift_px: float = 0.5
    # 3D task
    run_3d: bool = True
    image_size_3d: int = 32
    train_views: int = 24
    test_views: int = 8
    steps_3d: int = 700
    refine_every_3d: int = 100
    refine_stop_3d: int = 500
    reset_every_3d: int = 400
    n_init_3d: int = 400
    seeds_3d: int = 1
    thresholds_3d: tuple[float, ...] = (4e-3, 2e-3, 1e-3)
    # shared
    s_thresh: float = -1e-6
    tile_size: int = 8
    ratio_target: float = 0.6
    psnr_loss_target_db: float = 0.1

    def validate(self) -> None:
        self.require(len(self.images) > 0, "images", "at least one scikit-image photo name")
        self.require_names("images", PHOTO_NAMES)
        self.require(self.image_size >= 8, "image_size", "an integer >= 8")
        self.require(self.seeds > 0 and self.seeds_3d > 0, "seeds", "a positive integer")
        self.require(
            set(self.variants_2d) <= set(VARIANTS_2D) and {"adc", "steepgs"} <= set(self.variants_2d),
            "variants_2d",
            f"a subset of {VARIANTS_2D} containing 'adc' and 'steepgs'",
        )
        self.require(
            len(self.thresholds_2d) > 0 and all(t > 0 for t in self.thresholds_2d),
            "thresholds_2d",
            "positive gradient thresholds",
        )
        self.require(
            len(self.thresholds_3d) > 0 and all(t > 0 for t in self.thresholds_3d),
            "thresholds_3d",
            "positive gradient thresholds",
        )
        self.require(0 < self.refine_stop_2d <= self.steps_2d, "refine_stop_2d", "in (0, steps_2d]")
        self.require(0 < self.refine_stop_3d <= self.steps_3d, "refine_stop_3d", "in (0, steps_3d]")
        self.require(
            0 < self.holdout_frac < 1 and 0 < self.train_frac <= 1,
            "holdout_frac",
            "holdout_frac in (0, 1) and train_frac in (0, 1]",
        )
        self.require(self.train_views > 0 and self.test_views > 0, "train_views", "positive view counts")
        self.require(self.tile_size > 0, "tile_size", "a positive integer")
