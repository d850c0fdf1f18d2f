"""Saving and loading the models a longhorn reproduction trained (``<run>/models/<variant>/``).

Each directory is written by :func:`thrifty.core.checkpoint.save_trained` with ``build_model``'s arguments as
the model config, so :func:`load_trained` rebuilds any model of the zoo from the directory alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from thrifty.core.checkpoint import load_trained as _load_trained
from thrifty.core.checkpoint import save_trained
from thrifty.longhorn.algorithm import build_model

METHOD = "longhorn"


def save_zoo_model(
    directory: str | Path,
    model: nn.Module,
    build_args: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` built by ``build_model(**build_args)`` (keys name, vocab, d_model, ssm_layers, d_state,
    init_scheme) with ``meta`` (lr, seed, metrics)."""
    return save_trained(directory, model, method=METHOD, kind="zoo", model_config=build_args, meta=meta)


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by a longhorn run; returns ``(model in eval mode, config.json dict)``.

    Example: ``model, info = load_trained("runs/<stamp>/longhorn/models/lm-longhorn")``; ``model(ids)`` gives
    logits ``(batch, seq, vocab)`` and ``info["meta"]`` the learning rate, seed and bits/char of that run.
    """
    return _load_trained(directory, METHOD, {"zoo": lambda c: build_model(**c)}, device)


__all__ = ["load_trained", "save_zoo_model"]
