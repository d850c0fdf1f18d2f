"""A toy method for the core tests: fits y = 2x, against a predict-zero baseline.

Kept out of conftest.py so that its module name is unique: configs resolve their type hints through
their defining module, and pytest may hold several modules named ``conftest``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from thrifty.core.config import Config
from thrifty.core.runs import Claim, Results, RunContext


@dataclass
class ToyConfig(Config):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"steps": 3}, "quick": {}, "full": {"steps": 50}}
    steps: int = 10
    fail: bool = False

    def validate(self) -> None:
        self.require(self.steps > 0, "steps", "a positive integer")


def toy_reproduce(cfg: ToyConfig, ctx: RunContext) -> Results:
    """Fits y = 2x by least squares against a zero baseline; fails on demand."""
    if cfg.fail:
        raise RuntimeError("toy failure on purpose")
    g = ctx.generator()
    x = torch.randn(64, generator=g)
    y = 2 * x
    w = torch.zeros(())
    for step in range(cfg.steps):
        w = w + 0.5 * ((y - w * x) * x).mean()
        ctx.log("train/toy", step, loss=float(((y - w * x) ** 2).mean()))
    mse = float(((y - w * x) ** 2).mean())
    base = float((y**2).mean())
    return Results(
        variants={"toy": {"mse": mse}, "zero": {"mse": base}},
        headline=Claim("toy beats zero", "mse_ratio", mse / base, 0.5, "<="),
    )
