"""Config fields are checked against their type hints, and nested overrides merge (issue #16)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thrifty.core.config import Config, ConfigError, describe_fields


@dataclass
class Inner(Config):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "quick": {}, "full": {}}
    size: int = 32
    grid: tuple[int, int] = (2, 2)
    glob: int = 4


@dataclass
class Typed(Config):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"steps": 1, "inner": {"size": 16, "grid": [1, 1]}},
        "quick": {},
        "full": {"steps": 99},
    }
    steps: int = 10
    lr: float = 1e-3
    flag: bool = False
    name: str = "a"
    names: tuple[str, ...] = ("x", "y")
    mode: Literal["fast", "slow"] = "fast"
    maybe: int | None = None
    inner: Inner = field(default_factory=Inner)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("steps", "abc", "an integer"),
        ("steps", "3", "an integer"),
        ("steps", None, "an integer"),
        ("steps", True, "an integer"),  # bool is not an int here: `true` must not run as 1 step
        ("steps", 2.5, "an integer"),
        ("lr", math.nan, "a finite number"),
        ("lr", math.inf, "a finite number"),
        ("lr", "0.1", "a finite number"),
        ("flag", 1, "true or false"),
        ("names", "x", "a list of strings"),  # a string where a tuple is expected
        ("names", ["x", 3], "a list of strings"),
        ("mode", "medium", "one of 'fast', 'slow'"),
        ("maybe", "3", "an integer or null"),
        ("inner", {"grid": [1, 2, 3]}, "a list of 2 values"),
    ],
)
def test_wrong_types_name_the_field(key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        Typed.from_preset("quick", **{key: value})
    assert expected in str(err.value)
    assert key in str(err.value) or "grid" in str(err.value)


def test_right_types_are_normalised() -> None:
    cfg = Typed.from_preset("quick", lr=1, names=["p"], maybe=None, mode="slow")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.names == ("p",)
    assert Typed(steps=3).steps == 3
    with pytest.raises(ConfigError, match="Typed.steps"):
        Typed(steps="3")  # direct construction is checked too


def test_nested_override_merges_into_the_preset_value() -> None:
    cfg = Typed.from_preset("smoke", inner={"glob": 8})
    assert cfg.inner == Inner(size=16, grid=(1, 1), glob=8)  # size and grid stay the smoke preset's
    assert Typed.from_preset("quick", inner={"glob": 8}).inner == Inner(glob=8)
    assert cfg.replace(inner={"size": 8}).inner == Inner(size=8, grid=(1, 1), glob=8)


def test_describe_fields_lists_every_field_per_preset() -> None:
    rows = describe_fields(Typed, ["smoke", "full"])
    by_field = {r["field"]: r for r in rows}
    assert by_field["steps"] == {"field": "steps", "type": "int", "default": "10", "smoke": "1", "full": "99"}
    assert by_field["inner.size"]["smoke"] == "16" and by_field["inner.size"]["default"] == "32"
    assert len(rows) == 7 + 3


@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.booleans(), st.none()))
def test_int_field_accepts_exactly_ints(value: Any) -> None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int:
        assert Typed(steps=value).steps == value
    else:
        with pytest.raises(ConfigError):
            Typed(steps=value)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_field_accepts_exactly_finite_numbers(value: float) -> None:
    if math.isfinite(value):
        assert Typed(lr=value).lr == value
    else:
        with pytest.raises(ConfigError):
            Typed(lr=value)


def test_require_positive_names_the_first_bad_field() -> None:
    @dataclass
    class Sizes(Config):
        PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "quick": {}, "full": {}}
        a: int = 1
        b: int = 2

        def validate(self) -> None:
            self.require_positive("a", "b")

    assert Sizes(a=3, b=4).b == 4
    with pytest.raises(ConfigError, match=r"Sizes\.b: expected a positive integer, got 0"):
        Sizes(b=0)
