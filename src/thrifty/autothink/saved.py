"""Loading the models an autothink reproduction trained (``<run>/models/<variant>/``: each GRPO variant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from thrifty.autothink.model import VideoLM, VideoLMConfig
from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained

METHOD = "autothink"
BUILDERS = {"video_lm": lambda c: VideoLM(VideoLMConfig(**c))}


def save_video_lm(directory: str | Path, model: VideoLM, meta: dict[str, Any]) -> Path:
    """Save a :class:`VideoLM` with its shape and ``meta`` (variant, arm)."""
    return save_trained(directory, model, method=METHOD, kind="video_lm", model_config=model.cfg.to_dict(), meta=meta)


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[VideoLM, dict[str, Any]]:
    """Rebuild a model saved by an autothink run; returns ``(model in eval mode, config.json dict)``.

    Example: ``model, info = load_trained("runs/<stamp>/autothink/models/twice")``, then decode with
    ``thrifty.autothink.generate_auto(model, ...)``; ``info["meta"]["variant"]`` names the training arm.
    """
    return _load_trained(directory, METHOD, BUILDERS, device)


__all__ = ["load_trained", "save_video_lm"]
