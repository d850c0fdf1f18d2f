"""Loading the fp32 models a guard reproduction trained (``<run>/models/<stage>/``: the teacher, the pruned and
distilled student, the scratch control). The deployable classifier with its tokenizer and threshold is saved
separately by :meth:`thrifty.guard.GuardClassifier.save`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.guard.model import PrunedLMHead, prune_output_layer

METHOD = "guard"


def _build(config: dict[str, Any]) -> TransformerLM:
    model = TransformerLM(TransformerLMConfig.from_dict(config["lm"]))
    if config["keep_ids"] is not None:
        prune_output_layer(model, config["keep_ids"], expand_to_vocab=config["expand_to_vocab"])
    return model


def save_guard_lm(directory: str | Path, model: TransformerLM, meta: dict[str, Any]) -> Path:
    """Save a guard LM (its output layer pruned or not) with its shape and ``meta`` (stage, seed)."""
    head = model.head
    pruned = isinstance(head, PrunedLMHead)
    config = {
        "lm": model.cfg.to_dict(),
        "keep_ids": head.keep_ids.tolist() if pruned else None,
        "expand_to_vocab": head.expand_to_vocab if pruned else True,
    }
    return save_trained(directory, model, method=METHOD, kind="transformer_lm", model_config=config, meta=meta)


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[TransformerLM, dict[str, Any]]:
    """Rebuild an LM saved by a guard run; returns ``(model in eval mode, config.json dict)``.

    Example: ``student, info = load_trained("runs/<stamp>/guard/models/ft_kd")``; wrap it with the run's
    tokenizer as ``GuardClassifier`` (or load ``classifier_kd`` with ``GuardClassifier.load``) to moderate.
    """
    return _load_trained(directory, METHOD, {"transformer_lm": _build}, device)


__all__ = ["load_trained", "save_guard_lm"]
