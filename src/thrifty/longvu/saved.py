"""Loading the QA models a longvu reproduction trained (``<run>/models/<arm>/``: one per compression arm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained
from thrifty.longvu.model import QAModel

METHOD = "longvu"
BUILDERS = {"qa_model": lambda c: QAModel(**c)}


def save_qa_model(directory: str | Path, model: QAModel, meta: dict[str, Any]) -> Path:
    """Save a :class:`QAModel` with its constructor arguments and ``meta`` (arm, budget)."""
    return save_trained(directory, model, method=METHOD, kind="qa_model", model_config=model.init_config, meta=meta)


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[QAModel, dict[str, Any]]:
    """Rebuild a QA model saved by a longvu run; returns ``(model in eval mode, config.json dict)``.

    Example: ``model, info = load_trained("runs/<stamp>/longvu/models/longvu")``; ``info["meta"]`` holds the
    arm and its token budget, so the same compressor can feed it new videos.
    """
    return _load_trained(directory, METHOD, BUILDERS, device)


__all__ = ["load_trained", "save_qa_model"]
