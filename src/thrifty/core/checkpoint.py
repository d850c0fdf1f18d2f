"""Checkpoints as ``config.json`` + ``model.safetensors``, and the user cache directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from torch import nn

from thrifty.core.io import write_json_atomic


def cache_dir(*parts: str) -> Path:
    """``$THRIFTY_CACHE`` (or ``$XDG_CACHE_HOME/thrifty``, or ``~/.cache/thrifty``) joined with ``parts``."""
    root = os.environ.get("THRIFTY_CACHE")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "thrifty")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_checkpoint(directory: str | Path, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory``, each atomically.

    Tied weights are stored once (safetensors' ``save_model`` de-duplicates shared tensors).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".model.safetensors.tmp"
    save_model(model, str(tmp))
    os.replace(tmp, directory / "model.safetensors")
    write_json_atomic(directory / "config.json", config)
    return directory


def load_checkpoint(directory: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``model`` in place; returns the config dict."""
    directory = Path(directory)
    weights, config = directory / "model.safetensors", directory / "config.json"
    if not weights.exists() or not config.exists():
        raise FileNotFoundError(f"directory: expected config.json and model.safetensors in {directory}")
    missing, unexpected = load_model(model, str(weights), strict=True)
    if missing or unexpected:  # strict=True raises already; keep the check for older safetensors
        raise RuntimeError(f"checkpoint mismatch: missing {missing}, unexpected {unexpected}")
    return json.loads(config.read_text())


def has_checkpoint(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / "model.safetensors").exists() and (directory / "config.json").exists()
