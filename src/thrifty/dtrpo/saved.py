"""Loading the models a dtrpo reproduction saved (``<run>/models/<variant>/``: the SFT start and each arm's
policy at its selected setting, seed 0)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained
from thrifty.dtrpo.model import DiffusionLMConfig, MaskedDiffusionLM

METHOD = "dtrpo"
BUILDERS = {"masked_diffusion_lm": lambda c: MaskedDiffusionLM(DiffusionLMConfig(**c))}


def save_policy(directory: str | Path, model: MaskedDiffusionLM, meta: dict[str, Any]) -> Path:
    """Save a :class:`MaskedDiffusionLM` with its shape and ``meta`` (variant, beta, lr, accuracies)."""
    return save_trained(
        directory, model, method=METHOD, kind="masked_diffusion_lm", model_config=asdict(model.cfg), meta=meta
    )


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[MaskedDiffusionLM, dict[str, Any]]:
    """Rebuild a policy saved by a dtrpo run; returns ``(model in eval mode, config.json dict)``.

    Example: ``policy, info = load_trained("runs/<stamp>/dtrpo/models/dtrpo_rec")``; sample from it with
    ``thrifty.dtrpo.sample`` and read ``info["meta"]`` for its beta, learning rate and test accuracy.
    """
    return _load_trained(directory, METHOD, BUILDERS, device)


__all__ = ["load_trained", "save_policy"]
