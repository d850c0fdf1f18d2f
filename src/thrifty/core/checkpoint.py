"""Checkpoints as ``config.json`` + ``model.safetensors``, trained-variant directories, and the cache.

Two layers:
- :func:`save_checkpoint` / :func:`load_checkpoint`: weights plus any JSON dict, loaded into a model the
  caller built.
- :func:`save_trained` / :func:`load_trained`: a *self-describing* variant directory. Its ``config.json``
  names the method, the model kind and the model's constructor config, so ``load_trained`` rebuilds the
  model from the directory alone (each method passes its kind -> builder table; see e.g.
  ``thrifty.longhorn.load_trained``). Every reproduction saves what it trained this way under its run
  directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
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


TRAINED_FORMAT = "thrifty-trained-1"


def cache_key(recipe: Mapping[str, Any], code_version: str, length: int = 16) -> str:
    """Hex digest of ``recipe`` (JSON, sorted keys) and ``code_version``: a cache directory name suffix.

    The code version is part of the key, so bumping it when training code changes never serves stale weights.
    """
    blob = json.dumps({"recipe": dict(recipe), "code_version": code_version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def save_trained(
    directory: str | Path,
    model: nn.Module,
    *,
    method: str,
    kind: str,
    model_config: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Save a trained variant that :func:`load_trained` can rebuild without any other information.

    Args:
        directory: created if missing; receives ``config.json`` and ``model.safetensors``.
        model: the trained module.
        method: the thrifty method that trained it (checked on load).
        kind: which builder of that method reconstructs the module (e.g. ``"longhorn"``, ``"mamba"``).
        model_config: the JSON-serialisable constructor config of the module.
        meta: anything else worth keeping (variant name, seed, learning rate, final metric).
    """
    payload = {
        "format": TRAINED_FORMAT,
        "method": method,
        "kind": kind,
        "model_config": dict(model_config),
        "meta": dict(meta or {}),
    }
    return save_checkpoint(directory, model, payload)


def read_trained_config(directory: str | Path, method: str) -> dict[str, Any]:
    """The ``config.json`` of a :func:`save_trained` directory, checked to be ``method``'s; ValueError if not."""
    path = Path(directory) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"directory: expected config.json and model.safetensors in {directory}")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"directory: {path} is not valid JSON ({exc})") from exc
    if not isinstance(info, dict) or info.get("format") != TRAINED_FORMAT:
        raise ValueError(f"directory: {directory} is not a thrifty trained-variant directory ({TRAINED_FORMAT!r})")
    if info.get("method") != method:
        raise ValueError(f"directory: {directory} holds a {info.get('method')!r} model, expected {method!r}")
    return info


def load_trained(
    directory: str | Path,
    method: str,
    builders: Mapping[str, Callable[[dict[str, Any]], nn.Module]],
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild and load a variant saved by :func:`save_trained`; returns ``(model in eval mode, config dict)``.

    Args:
        directory: the variant directory.
        method: the expected method (a directory of another method is a ValueError).
        builders: kind -> function building an untrained module from ``model_config``.
        device: where the loaded model lives.
    """
    info = read_trained_config(directory, method)
    kind = info.get("kind")
    if kind not in builders:
        raise ValueError(f"directory: unknown {method} model kind {kind!r}; expected one of {sorted(builders)}")
    model = builders[kind](info["model_config"])
    load_checkpoint(directory, model)
    return model.to(device).eval(), info
