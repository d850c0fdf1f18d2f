from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from thrifty.core.config import Config, ConfigError


@dataclass
class Inner(Config):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "quick": {}, "full": {}}
    width: int = 4


@dataclass
class Outer(Config):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"steps": 1}, "quick": {}, "full": {"steps": 99}}
    steps: int = 10
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] = (0.5, 0.25)
    inner: Inner = field(default_factory=Inner)
    name: str | None = None

    def validate(self) -> None:
        self.require(self.steps > 0, "steps", "a positive integer")


def test_presets_override_defaults() -> None:
    assert Outer.from_preset("full").steps == 99
    assert Outer.from_preset("quick").steps == 10
    assert Outer.from_preset("smoke", steps=5).steps == 5


def test_json_round_trip_keeps_tuples_and_nested(tmp_path) -> None:
    cfg = Outer(steps=3, sizes=(4, 5, 6), pair=(1.0, 2.0), inner=Inner(width=8), name="x")
    cfg.to_json(tmp_path / "c.json")
    back = Outer.from_json(tmp_path / "c.json")
    assert back == cfg
    assert isinstance(back.sizes, tuple) and isinstance(back.inner, Inner)


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*smoke, quick, full"):
        Outer.from_preset("huge")


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown field.*stepz"):
        Outer.from_dict({"stepz": 3})


def test_validation_names_field_and_expectation() -> None:
    with pytest.raises(ConfigError, match=r"Outer\.steps: expected a positive integer, got -1"):
        Outer(steps=-1)
    with pytest.raises(ConfigError, match="steps"):
        Outer(steps=1).replace(steps=0)


def test_version_mismatch_is_an_error(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"version": 7, "steps": 3}')
    with pytest.raises(ConfigError, match="version 7"):
        Outer.from_json(path)
