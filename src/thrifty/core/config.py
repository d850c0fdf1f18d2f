"""Dataclass configs with named presets, validation and a JSON round-trip.

Every method config subclasses :class:`Config`. Field defaults are the base values; ``PRESETS`` maps
a preset name (``smoke`` for tests, ``quick``, ``full``) to overrides of those defaults.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = check_type(hints.get(f.name), getattr(self, f.name), f"{type(self).__name__}.{f.name}")
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Check field values; call :meth:`require` for each rule. Default: nothing to check."""

    def require(self, condition: bool, field: str, expected: str) -> None:
        """Raise :class:`ConfigError` naming ``field`` and ``expected`` unless ``condition`` holds."""
        if not condition:
            value = getattr(self, field, "<missing>")
            raise ConfigError(f"{type(self).__name__}.{field}: expected {expected}, got {value!r}")

    def require_positive(self, *fields: str) -> None:
        """Require each of ``fields`` to be a positive integer (their int type is already checked)."""
        for name in fields:
            self.require(getattr(self, name) > 0, name, "a positive integer")

    def require_names(self, field: str, allowed: typing.Iterable[str]) -> None:
        """For fields that name things: the str (or every str of the tuple) ``field`` is one of ``allowed``.

        Call it from :meth:`validate`, so a misspelt photo or dataset name fails before any work starts.
        """
        choices = tuple(allowed)
        value = getattr(self, field)
        names = value if isinstance(value, tuple) else (value,)
        self.require(all(n in choices for n in names), field, f"names among {', '.join(choices)}")

    def require_file(self, field: str, *, optional: bool = True) -> None:
        """For fields that name files: ``field`` is the path of an existing file ("" passes if ``optional``)."""
        value = getattr(self, field)
        ok = (optional and value == "") or (bool(value) and Path(value).is_file())
        self.require(ok, field, "the path of an existing file" + (' (or "" for none)' if optional else ""))

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        return tuple(cls.PRESETS)

    @classmethod
    def from_preset(cls: type[C], name: str, **overrides: Any) -> C:
        """Build the config of preset ``name`` with ``overrides`` applied on top."""
        if name not in cls.PRESETS:
            raise ConfigError(f"{cls.__name__}: unknown preset {name!r}; expected one of {', '.join(cls.PRESETS)}")
        return cls.from_dict(merge_overrides(cls, dict(cls.PRESETS[name]), overrides))

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (validated again); a dict for a nested config merges into it."""
        return self.from_dict(merge_overrides(type(self), self.to_dict(), changes))

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


def merge_overrides(cls: type[Config], base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top; a dict given for a nested-config field merges into that config.

    Without the merge, ``--set model={"n_global": 8}`` would silently reset every other field of the nested
    config to its class default instead of the preset's value.
    """
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    merged = dict(base)
    for key, value in overrides.items():
        hint = hints.get(key)
        if isinstance(value, dict) and isinstance(hint, type) and issubclass(hint, Config) and key in defaults:
            current = merged.get(key, _field_default(defaults[key]))
            current_dict = current.to_dict() if isinstance(current, Config) else dict(current or {})
            value = merge_overrides(hint, current_dict, value)
        merged[key] = value
    return merged


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return {}


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, getattr(types, "UnionType", None)):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {int: "integers", float: "finite numbers", bool: "booleans", str: "strings"}
            return f"a list of {plural.get(args[0]) or _describe(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
    if hint in names:
        return names[hint]
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def check_type(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type hint ``hint`` (and normalised: lists to tuples, ints to floats).

    Raises :class:`ConfigError` naming ``where`` and the expected type. ``bool`` is not accepted as a number,
    floats must be finite, and hints this checker does not know (``Any``, ``dict``, plain classes other than
    configs) pass through unchanged.
    """
    ok, out = _check(hint, value)
    if not ok:
        raise ConfigError(f"{where}: expected {_describe(hint)}, got {value!r}")
    return out


def _check(hint: Any, value: Any) -> tuple[bool, Any]:
    if hint is None or hint is Any:
        return True, value
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint)), value
    if origin in (typing.Union, getattr(types, "UnionType", None)):
        for arg in typing.get_args(hint):
            ok, out = _check(arg, value)
            if ok:
                return True, out
        return False, value
    if origin is tuple:
        return _check_tuple(typing.get_args(hint), value)
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return math.isfinite(value), float(value)
    if hint is str:
        return isinstance(value, str), value
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, dict):
            return True, hint.from_dict(value)
        return isinstance(value, hint), value
    return True, value


def _check_tuple(args: tuple[Any, ...], value: Any) -> tuple[bool, Any]:
    if not isinstance(value, (list, tuple)):
        return False, value
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    elif args and len(args) != len(value):
        return False, value
    out = []
    for arg, item in zip(args, value):
        ok, converted = _check(arg, item)
        if not ok:
            return False, value
        out.append(converted)
    return True, tuple(out)


def describe_fields(cls: type[Config], presets: list[str]) -> list[dict[str, Any]]:
    """One row per field of ``cls``: name, type, default and its value under each of ``presets``.

    Nested configs are flattened as ``model.field`` rows. This is what ``thrifty config METHOD`` prints.
    """
    hints = typing.get_type_hints(cls)
    resolved = {p: cls.from_preset(p).to_dict() for p in presets}
    default = {f.name: _to_jsonable(_field_default(f)) for f in dataclasses.fields(cls)}
    rows = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if isinstance(hint, type) and issubclass(hint, Config):
            rows += _nested_rows(f.name, hint, default[f.name], {p: resolved[p][f.name] for p in presets})
            continue
        row = {"field": f.name, "type": _type_name(hint), "default": json.dumps(default[f.name])}
        rows.append(row | {p: json.dumps(resolved[p][f.name]) for p in presets})
    return rows


def _nested_rows(prefix: str, cls: type[Config], default: dict, per_preset: dict[str, dict]) -> list[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        row = {"field": f"{prefix}.{f.name}", "type": _type_name(hints.get(f.name))}
        row["default"] = json.dumps(default.get(f.name))
        rows.append(row | {p: json.dumps(v.get(f.name)) for p, v in per_preset.items()})
    return rows


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")
