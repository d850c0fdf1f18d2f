"""The compared density-control variants: ADC, SteepGS, the released code's emulations and factorial controls.

Every variant is a configured :class:`ADCStrategy` / :class:`SteepStrategy`; they share the schedule,
threshold and seed and differ only in the fields listed in :data:`VARIANT_FIELDS`.

* ``adc``: 3DGS Adaptive Density Control (clone small, split large into 2 sampled offspring, opacity kept).
* ``steepgs``: SteepGS as in the paper (exact S, eigenvalue filter, +/- v_min split, halved opacity).
* ``steepgs_released``: SteepGS as the released code runs by default (``inv_cov`` proxy for S, offspring
  opacity kept because its ``no_div_opacity`` flag is inverted), with correct offspring signs.
* ``steepgs_released_parity``: the same plus an EMULATION of its sign-parity bug (both offspring on one
  side whenever the number of splits in a round is even).
* ``selection_only``: SteepGS's eigenvalue filter, ADC's placement (and ADC's kept opacity).
* ``placement_only``: ADC's candidate set, SteepGS's +/- v_min placement with halved opacity.
* ``random_veto``: ADC's candidates minus a random veto of the size SteepGS's filter removes, ADC's placement.
* ``adc_symmetric`` and ``steepgs_random_dir``: the 2D example's controls (+/- offsets; random direction).
* ``no_densify``: the control arm "more initial points, no densification" (growth and pruning off).
"""

from __future__ import annotations

from typing import Any

from thrifty.steepgs.strategy import ADCStrategy, SteepStrategy

VARIANT_FIELDS: dict[str, dict[str, Any] | None] = {
    "adc": None,
    "adc_symmetric": None,
    "no_densify": None,
    "steepgs": {},
    "steepgs_released": {"estimator": "inv_cov", "opacity_rule": "keep"},
    "steepgs_released_parity": {"estimator": "inv_cov", "opacity_rule": "keep", "parity_bug": True},
    "selection_only": {"placement": "adc", "opacity_rule": "keep"},
    "placement_only": {"selection": "grad"},
    "random_veto": {"selection": "random_veto", "placement": "adc", "opacity_rule": "keep"},
    "steepgs_proxy": {"estimator": "inv_cov"},
    "steepgs_random_dir": {"direction": "random"},
}
FACTORIAL_3D = (
    "adc",
    "steepgs",
    "steepgs_released",
    "steepgs_released_parity",
    "selection_only",
    "placement_only",
    "random_veto",
)
VARIANTS_2D = ("adc", "steepgs", "steepgs_proxy", "steepgs_random_dir", "adc_symmetric")


def make_strategy(
    variant: str,
    threshold: float,
    *,
    every: int,
    stop: int,
    reset_every: int,
    s_thresh: float,
    clone_shift: float,
    seed: int,
    start: int | None = None,
) -> ADCStrategy:
    """The density-control strategy of one compared variant (all share the schedule).

    Args:
        variant: a key of :data:`VARIANT_FIELDS`. threshold: ADC's NDC gradient threshold (``grow_grad2d``).
        every, stop, start: densify every ``every`` steps in (start, stop); start defaults to ``every``.
        reset_every: opacity reset period (0 = none). s_thresh: SteepGS's eigenvalue threshold.
        clone_shift: offset of small SteepGS offspring along +/- v [recon]. seed: the strategy's generator.
    """
    if variant not in VARIANT_FIELDS:
        raise ValueError(f"variant: expected one of {tuple(VARIANT_FIELDS)}, got {variant!r}")
    common = {
        "grow_grad2d": threshold,
        "refine_start_iter": every if start is None else start,
        "refine_stop_iter": 0 if variant == "no_densify" else stop,
        "refine_every": every,
        "reset_every": reset_every,
        "seed": seed,
    }
    fields = VARIANT_FIELDS[variant]
    if fields is None:
        return ADCStrategy(symmetric=variant == "adc_symmetric", **common)
    return SteepStrategy(s_thresh=s_thresh, clone_shift=clone_shift, **fields, **common)
