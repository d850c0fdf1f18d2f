"""Self-describing trained-variant directories and cache keys (thrifty.core.checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from thrifty.core.checkpoint import cache_key, load_trained, save_checkpoint, save_trained

BUILDERS = {"mlp": lambda c: nn.Sequential(nn.Linear(c["d_in"], c["hidden"]), nn.Tanh(), nn.Linear(c["hidden"], 1))}


def _trained(tmp_path: Path) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    model = BUILDERS["mlp"]({"d_in": 3, "hidden": 5})
    directory = save_trained(
        tmp_path / "v", model, method="demo", kind="mlp", model_config={"d_in": 3, "hidden": 5}, meta={"lr": 0.1}
    )
    return model, directory


def test_load_trained_rebuilds_the_model_from_the_directory_alone(tmp_path: Path) -> None:
    model, directory = _trained(tmp_path)
    loaded, info = load_trained(directory, "demo", BUILDERS)
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), model(x)) and not loaded.training
    assert info["meta"] == {"lr": 0.1} and info["kind"] == "mlp"


def test_load_trained_rejects_another_methods_directory(tmp_path: Path) -> None:
    _, directory = _trained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'demo' model, expected 'other'"):
        load_trained(directory, "other", BUILDERS)


def test_load_trained_rejects_an_unknown_kind_and_a_plain_checkpoint(tmp_path: Path) -> None:
    _, directory = _trained(tmp_path)
    with pytest.raises(ValueError, match="unknown demo model kind 'mlp'"):
        load_trained(directory, "demo", {"conv": BUILDERS["mlp"]})
    save_checkpoint(tmp_path / "plain", nn.Linear(2, 2), {"steps": 3})
    with pytest.raises(ValueError, match="not a thrifty trained-variant directory"):
        load_trained(tmp_path / "plain", "demo", BUILDERS)
    (tmp_path / "plain" / "config.json").write_text("{truncated")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_trained(tmp_path / "plain", "demo", BUILDERS)
    with pytest.raises(FileNotFoundError, match="expected config.json"):
        load_trained(tmp_path / "missing", "demo", BUILDERS)


def test_load_trained_refuses_weights_of_another_shape(tmp_path: Path) -> None:
    _, directory = _trained(tmp_path)
    info = json.loads((directory / "config.json").read_text())
    info["model_config"]["hidden"] = 6
    (directory / "config.json").write_text(json.dumps(info))
    with pytest.raises(RuntimeError):
        load_trained(directory, "demo", BUILDERS)


def test_cache_key_changes_with_the_recipe_and_the_code_version() -> None:
    recipe = {"steps": 10, "lr": 1e-3}
    assert cache_key(recipe, "v1") == cache_key(dict(reversed(recipe.items())), "v1")
    assert cache_key(recipe, "v1") != cache_key(recipe, "v2")
    assert cache_key(recipe, "v1") != cache_key({**recipe, "steps": 11}, "v1")
