"""Contract tests generated over every registered method (timm-style)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.core.checkpoint import TRAINED_FORMAT
from thrifty.core.config import REQUIRED_PRESETS
from thrifty.core.registry import BROKEN_PACKAGES, Method, list_methods
from thrifty.core.runs import RESULTS_KEYS, new_run_root, run_method

METHODS = list_methods()
IDS = [m.name for m in METHODS]


def test_every_method_package_imports() -> None:
    assert BROKEN_PACKAGES == {}


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_metadata(method: Method) -> None:
    assert method.paper and method.claim and method.claim.strip().endswith(".")
    assert set(REQUIRED_PRESETS) <= set(method.presets)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_config_presets_round_trip(method: Method, tmp_path: Path) -> None:
    for preset in method.presets:
        cfg = method.config_cls.from_preset(preset)
        cfg.to_json(tmp_path / f"{preset}.json")
        assert method.config_cls.from_json(tmp_path / f"{preset}.json") == cfg


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_smoke_run_writes_valid_results(method: Method, tmp_path: Path) -> None:
    outcome = run_method(method, preset="smoke", seed=0, run_root=new_run_root(tmp_path))
    assert outcome.ok, outcome.error
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert set(RESULTS_KEYS) <= set(results)
    assert len(results["variants"]) >= 2, "the method AND at least one baseline must be measured"
    claims = [results["headline"], *results["checks"]]
    for claim in claims:
        expected = claim["value"] is not None and (
            claim["value"] >= claim["target"] if claim["direction"] == ">=" else claim["value"] <= claim["target"]
        )
        assert claim["holds"] == expected
    assert results["claim_holds"] == all(c["holds"] for c in claims)
    informative = [c for c in results["checks"] if c["name"].startswith("informative: ")]
    assert informative, f"{method.name}: expected an 'informative: ...' check (can the comparison separate methods?)"
    for plot in results["plots"]:
        assert (outcome.run_dir / plot).stat().st_size > 0
    _check_saved_models(method, outcome.run_dir)


def _check_saved_models(method: Method, run_dir: Path) -> None:
    """Every trained-variant directory the run wrote rebuilds through the method's loader, bit for bit."""
    saved = [p.parent for p in sorted(run_dir.rglob("config.json")) if _is_trained_dir(p)]
    if method.load_trained is None:
        assert not saved, f"{method.name} saves trained variants but registers no load_trained"
        return
    assert saved, f"{method.name}: the smoke run saved no trained variant"
    for directory in saved:
        model, info = method.load_trained(directory, "cpu")
        stored = load_file(str(directory / "model.safetensors"))
        state = model.state_dict()
        for name, tensor in stored.items():
            assert torch.equal(state[name], tensor), f"{directory.name}: {name} differs after loading"
        assert info["method"] == method.name


def _is_trained_dir(config_path: Path) -> bool:
    try:
        return json.loads(config_path.read_text()).get("format") == TRAINED_FORMAT
    except (ValueError, AttributeError):
        return False
