"""Dataclass configs with named presets, validation and a JSON round-trip.

Every method config subclasses :class:`Config`. Field defaults are the base values; ``PRESETS`` maps
a preset name (``smoke`` for tests, ``quick``, ``full``) to overrides of those defaults.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from thrifty.core.io import write_json_atomic

C = TypeVar("C", bound="Config")

REQUIRED_PRESETS = ("smoke", "quick", "full")


class ConfigError(ValueError):
    """A config value or preset is invalid; the message names the field and what was expected."""


@dataclasses.dataclass
class Config:
    """Base class of method configs: presets, validation and JSON round-trip.

    Subclasses are ``@dataclass`` classes that set ``PRESETS`` and may override :meth:`validate`.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check field values; call :meth:`require` for each rule. Default: nothing to check."""

    def require(self, condition: bool, field: str, expected: str) -> None:
        """Raise :class:`ConfigError` naming ``field`` and ``expected`` unless ``condition`` holds."""
        if not condition:
            value = getattr(self, field, "<missing>")
            raise ConfigError(f"{type(self).__name__}.{field}: expected {expected}, got {value!r}")

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        return tuple(cls.PRESETS)

    @classmethod
    def from_preset(cls: type[C], name: str, **overrides: Any) -> C:
        """Build the config of preset ``name`` with ``overrides`` applied on top."""
        if name not in cls.PRESETS:
            raise ConfigError(f"{cls.__name__}: unknown preset {name!r}; expected one of {', '.join(cls.PRESETS)}")
        values = {**cls.PRESETS[name], **overrides}
        return cls.from_dict(values)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields (tuples become lists, nested configs dicts)."""
        return {f.name: _to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(fields)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {name: _from_jsonable(hints.get(name), value) for name, value in values.items()}
        return cls(**kwargs)

    def to_json(self, path: str | Path) -> None:
        write_json_atomic(Path(path), {"config": type(self).__name__, "version": self.VERSION, **self.to_dict()})

    @classmethod
    def from_json(cls: type[C], path: str | Path) -> C:
        data = json.loads(Path(path).read_text())
        data.pop("config", None)
        version = data.pop("version", cls.VERSION)
        if version != cls.VERSION:
            raise ConfigError(f"{cls.__name__}: file {path} has version {version}, expected {cls.VERSION}")
        return cls.from_dict(data)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


def _from_jsonable(hint: Any, value: Any) -> Any:
    """Turn JSON values back into the field's declared type (tuples, nested configs)."""
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(types, "UnionType", None)):
        for arg in typing.get_args(hint):
            if arg is not type(None) and value is not None:
                return _from_jsonable(arg, value)
        return value
    if isinstance(hint, type) and issubclass(hint, Config) and isinstance(value, dict):
        return hint.from_dict(value)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        inner = args[0] if args and (len(args) == 2 and args[1] is Ellipsis) else None
        return tuple(_from_jsonable(inner, v) for v in value)
    return value
