"""Loading the denoiser a geo reproduction trained (``<run>/models/denoiser/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained
from thrifty.geo.config import GeoConfig
from thrifty.geo.model import ConditionalDenoiser
from thrifty.geo.training import build_denoiser

METHOD = "geo"
BUILDERS = {"conditional_denoiser": lambda c: build_denoiser(GeoConfig.from_dict(c))}


def save_denoiser(directory: str | Path, model: ConditionalDenoiser, cfg: GeoConfig, meta: dict[str, Any]) -> Path:
    """Save the caption-conditioned UNet with the :class:`GeoConfig` that shapes it, plus ``meta``."""
    return save_trained(
        directory, model, method=METHOD, kind="conditional_denoiser", model_config=cfg.to_dict(), meta=meta
    )


def load_trained(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[ConditionalDenoiser, dict[str, Any]]:
    """Rebuild the denoiser saved by a geo run; returns ``(model in eval mode, config.json dict)``.

    Example: ``denoiser, info = load_trained("runs/<stamp>/geo/models/denoiser")``; ``denoiser.unet`` is a
    diffusers ``UNet2DConditionModel`` and ``denoiser(z, t, caption_ids)`` predicts the noise.
    """
    return _load_trained(directory, METHOD, BUILDERS, device)


__all__ = ["load_trained", "save_denoiser"]
