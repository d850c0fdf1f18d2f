"""The method registry: one :class:`Method` record per paper, discovered from thrifty's subpackages."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.core.config import REQUIRED_PRESETS, Config

if TYPE_CHECKING:
    from thrifty.core.bench import BenchContext
    from thrifty.core.runs import Results, RunContext

log = logging.getLogger(__name__)
_METHODS: dict[str, Method] = {}
# Packages that failed to import during discovery: name -> error. One broken package must not
# take the CLI down for every other method; the contract tests fail on any entry here.
BROKEN_PACKAGES: dict[str, str] = {}
_DISCOVERED = False


class UnknownMethodError(KeyError):
    """A method name that no package registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Method:
    """Everything the CLI and the contract tests need to know about one method.

    Args:
        name: short package name, e.g. ``"longhorn"``.
        paper: paper title with its arXiv id.
        claim: one sentence: the paper's headline claim as measured here.
        config_cls: the method's :class:`Config` subclass (with smoke/quick/full presets).
        reproduce: ``(config, ctx) -> Results``; measures the method and its baselines.
        bench: optional ``(ctx) -> list[dict]`` of speed/memory rows against the peer.
        load_trained: ``(directory, device) -> (model, info)`` rebuilding a model the reproduction saved with
            :func:`thrifty.core.checkpoint.save_trained` (None when the method saves another format).
    """

    name: str
    paper: str
    claim: str
    config_cls: type[Config]
    reproduce: Callable[[Any, RunContext], Results]
    bench: Callable[[BenchContext], list[dict[str, Any]]] | None = None
    load_trained: Callable[..., tuple[Any, dict[str, Any]]] | None = None

    @property
    def presets(self) -> tuple[str, ...]:
        return self.config_cls.preset_names()


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (idempotent for the same record)."""
    missing = [p for p in REQUIRED_PRESETS if p not in method.config_cls.PRESETS]
    if missing:
        raise ValueError(f"method {method.name!r}: config_cls.PRESETS lacks {', '.join(missing)}")
    existing = _METHODS.get(method.name)
    if existing is not None and existing != method:
        raise ValueError(f"method {method.name!r} is already registered by another record")
    _METHODS[method.name] = method
    return method


def discover() -> None:
    """Import every ``thrifty.<pkg>`` subpackage (except core) so that each registers itself."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import thrifty

    for info in pkgutil.iter_modules(thrifty.__path__):
        if info.ispkg and info.name != "core" and not info.name.startswith("_"):
            try:
                importlib.import_module(f"thrifty.{info.name}")
            except Exception as exc:  # noqa: BLE001 - recorded and reported, see BROKEN_PACKAGES
                BROKEN_PACKAGES[info.name] = f"{type(exc).__name__}: {exc}"
                log.warning("thrifty.%s failed to import: %s", info.name, exc)
    _DISCOVERED = True


def list_methods() -> list[Method]:
    """All registered methods, sorted by name."""
    discover()
    return [_METHODS[name] for name in sorted(_METHODS)]


def get_method(name: str) -> Method:
    """The registered method ``name``; raises :class:`UnknownMethodError` listing the valid names."""
    discover()
    if name not in _METHODS:
        valid = ", ".join(sorted(_METHODS)) or "(none registered)"
        raise UnknownMethodError(f"unknown method {name!r}; expected one of: {valid}")
    return _METHODS[name]
