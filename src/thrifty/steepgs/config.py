"""Configuration of the SteepGS reproduction: 3D novel-view synthesis (headline) and an optional 2D example.

The 3D design is the same at every preset, only its scale changes: per seed an ADC threshold sweep
(>= 5 thresholds, extended when a compared point falls outside ADC's PSNR range), the factorial of variants
at ``variant_thresholds_3d``, a null arm (ADC with a second seed through the same comparison), a
"more initial points, no densification" control, and a plateau check on seed 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config
from thrifty.core.data.photos import PHOTO_NAMES
from thrifty.steepgs.variants import FACTORIAL_3D, VARIANTS_2D

ADC_SWEEP = (8e-3, 5.6e-3, 4e-3, 2.8e-3, 2e-3, 1.4e-3, 1e-3, 7e-4)


@dataclass
class SteepGSConfig(Config):
    """Reproduction settings (see the module docstring for the design).

    3D: the analytic ray-traced scene with ``train_views`` / ``test_views`` ring cameras, one view per step,
    L1 loss, densification every ``refine_every_3d`` steps in (refine_start_3d, refine_stop_3d) from a
    sparse ``n_init_3d``-point start. 2D (``run_2d``, off except in smoke): additive splats fitted to
    scikit-image photos with ``holdout_frac`` of pixels held out; an example and unit check of S, no claim.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "run_2d": True,
            "images": ("coffee",),
            "image_size": 16,
            "thresholds_2d": (3e-3,),
            "steps_2d": 30,
            "refine_every_2d": 10,
            "refine_stop_2d": 25,
            "n_init_2d": 8,
            "variants_2d": ("adc", "steepgs"),
            "image_size_3d": 12,
            "train_views": 4,
            "test_views": 2,
            "steps_3d": 24,
            "refine_every_3d": 6,
            "refine_start_3d": 3,
            "refine_stop_3d": 20,
            "n_init_3d": 30,
            "seeds_3d": 1,
            "adc_thresholds_3d": (4e-3, 1e-3),
            "variant_thresholds_3d": (1e-3,),
            "sweep_extend": 1,
        },
        "quick": {},
        "full": {
            "image_size_3d": 24,
            "steps_3d": 900,
            "refine_every_3d": 60,
            "refine_start_3d": 30,
            "refine_stop_3d": 700,
            "n_init_3d": 80,
            "adc_thresholds_3d": ADC_SWEEP[1:7],
            "variant_thresholds_3d": (2.8e-3, 2e-3),
        },
        # paper: 2,000 steps failed the plateau check (1.5x the steps moved SteepGS by 0.99 dB, ADC by 0.39), so
        # the densification schedule is kept and the fixed-count training after it is 2,600 steps, not 600.
        "paper": {
            "image_size_3d": 32,
            "steps_3d": 4000,
            "refine_every_3d": 100,
            "refine_start_3d": 100,
            "refine_stop_3d": 1400,
            "reset_every_3d": 1000,
            "n_init_3d": 100,
            "adc_thresholds_3d": ADC_SWEEP[1:7],
            "variant_thresholds_3d": (2.8e-3, 2e-3),
            "sweep_extend": 3,
        },
    }
    # 3D task (the headline)
    image_size_3d: int = 16
    train_views: int = 24
    test_views: int = 8
    steps_3d: int = 480
    refine_every_3d: int = 30
    refine_start_3d: int = 20
    refine_stop_3d: int = 345
    reset_every_3d: int = 0
    n_init_3d: int = 60
    seeds_3d: int = 3
    variants_3d: tuple[str, ...] = FACTORIAL_3D
    adc_thresholds_3d: tuple[float, ...] = ADC_SWEEP[:5]  # quick: 8e-3 ... 2e-3
    variant_thresholds_3d: tuple[float, ...] = (2.8e-3,)
    sweep_extend: int = 2
    sweep_factor: float = 1.4142
    null_seed_offset: int = 1000
    no_densify_control: bool = True
    plateau_extra_frac: float = 0.5
    ci_level: float = 0.95
    # 2D example (no claims)
    run_2d: bool = False
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
    # shared
    s_thresh: float = -1e-6
    tile_size: int = 8
    ratio_target: float = 0.6
    psnr_loss_target_db: float = 0.1
    plateau_tol_db: float = 0.1
    growth_target: float = 5.0

    def validate(self) -> None:
        self._validate_3d()
        self.require(len(self.images) > 0, "images", "at least one scikit-image photo name")
        self.require_names("images", PHOTO_NAMES)
        self.require(self.image_size >= 8, "image_size", "an integer >= 8")
        self.require(self.seeds > 0, "seeds", "a positive integer")
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
        self.require(0 < self.refine_stop_2d <= self.steps_2d, "refine_stop_2d", "in (0, steps_2d]")
        self.require(
            0 < self.holdout_frac < 1 and 0 < self.train_frac <= 1,
            "holdout_frac",
            "holdout_frac in (0, 1) and train_frac in (0, 1]",
        )
        self.require(self.tile_size > 0, "tile_size", "a positive integer")

    def _validate_3d(self) -> None:
        self.require(self.image_size_3d >= 8, "image_size_3d", "an integer >= 8")
        self.require(self.seeds_3d > 0, "seeds_3d", "a positive integer")
        self.require(self.n_init_3d >= 4, "n_init_3d", "an integer >= 4 (3 nearest neighbours set the scales)")
        self.require(
            set(self.variants_3d) <= set(FACTORIAL_3D) and {"adc", "steepgs"} <= set(self.variants_3d),
            "variants_3d",
            f"a subset of {FACTORIAL_3D} containing 'adc' and 'steepgs'",
        )
        self.require(
            len(self.adc_thresholds_3d) >= 2 and all(t > 0 for t in self.adc_thresholds_3d),
            "adc_thresholds_3d",
            "at least 2 positive gradient thresholds (the design uses >= 5)",
        )
        self.require(
            len(self.variant_thresholds_3d) > 0 and set(self.variant_thresholds_3d) <= set(self.adc_thresholds_3d),
            "variant_thresholds_3d",
            "a non-empty subset of adc_thresholds_3d",
        )
        self.require(0 < self.refine_every_3d, "refine_every_3d", "a positive integer")
        self.require(
            0 <= self.refine_start_3d < self.refine_stop_3d <= self.steps_3d,
            "refine_stop_3d",
            "0 <= refine_start_3d < refine_stop_3d <= steps_3d",
        )
        self.require(self.train_views > 0 and self.test_views > 0, "train_views", "positive view counts")
        self.require(self.sweep_extend >= 0, "sweep_extend", "an integer >= 0")
        self.require(self.sweep_factor > 1, "sweep_factor", "a factor > 1")
        self.require(self.null_seed_offset != 0, "null_seed_offset", "a non-zero seed offset")
        self.require(self.plateau_extra_frac >= 0, "plateau_extra_frac", "a fraction >= 0")
        self.require(0 < self.ci_level < 1, "ci_level", "a level in (0, 1)")

    @property
    def densify_rounds_3d(self) -> int:
        """Number of densification rounds of the 3D schedule (steps s in (start, stop) with s % every == 0)."""
        return sum(1 for s in range(self.refine_start_3d + 1, self.refine_stop_3d) if s % self.refine_every_3d == 0)
