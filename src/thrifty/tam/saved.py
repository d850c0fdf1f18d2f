"""Loading the trackers a tam reproduction trained (``<run>/tam/models/<variant>/``: A, B, C, C+KD, ablations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained
from thrifty.tam.config import TamModelConfig
from thrifty.tam.model import TinyTAM

METHOD = "tam"
BUILDERS = {"tiny_tam": lambda c: TinyTAM(TamModelConfig.from_dict(c))}


def save_tracker(directory: str | Path, model: TinyTAM, meta: dict[str, Any]) -> Path:
    """Save a :class:`TinyTAM` with its :class:`TamModelConfig` (memory kind, latent grid) and ``meta``."""
    return save_trained(directory, model, method=METHOD, kind="tiny_tam", model_config=model.cfg.to_dict(), meta=meta)


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[TinyTAM, dict[str, Any]]:
    """Rebuild a tracker saved by a tam run; returns ``(model in eval mode, config.json dict)``.

    Example: ``model, info = load_trained("runs/<stamp>/tam/models/B_EfficientTAM_pooled")``, then track with
    ``thrifty.tam.VideoSession(model)``; ``info["model_config"]["memory"]`` names its memory path.
    """
    return _load_trained(directory, METHOD, BUILDERS, device)


__all__ = ["load_trained", "save_tracker"]
