"""Loading the models a flashnas reproduction saved (``<run>/models/<name>/``: the backbone, each finalist
and the deep-thin baseline, after their final continued pre-training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained
from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.model import FlashLM

METHOD = "flashnas"
BUILDERS = {"flash_lm": lambda c: FlashLM(FlashLMConfig.from_dict(c["arch"]), c["attn_impl"])}


def save_flash_lm(directory: str | Path, model: FlashLM, meta: dict[str, Any] | None = None) -> Path:
    """Save a :class:`FlashLM` with its architecture and attention kernel, plus ``meta``."""
    config = {"arch": model.cfg.to_dict(), "attn_impl": model.attn_impl}
    return save_trained(directory, model, method=METHOD, kind="flash_lm", model_config=config, meta=meta)


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[FlashLM, dict[str, Any]]:
    """Rebuild a model saved by a flashnas run; returns ``(model in eval mode, config.json dict)``.

    Example: ``model, info = load_trained("runs/<stamp>/flashnas/models/backbone")``; ``model(ids)`` gives
    logits ``(batch, seq, vocab)``, and ``info["model_config"]["arch"]`` the layer/width/FFN choices.
    """
    return _load_trained(directory, METHOD, BUILDERS, device)


__all__ = ["load_trained", "save_flash_lm"]
