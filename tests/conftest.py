"""Shared fixtures: a toy method registered only for the duration of a test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch

from thrifty.core import registry
from thrifty.core.config import Config
from thrifty.core.registry import Method
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


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread() -> Iterator[None]:
    """Tests use tiny shapes: one thread is fastest, and avoids oversubscribing a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_method(monkeypatch: pytest.MonkeyPatch) -> Method:
    method = Method(name="toy", paper="Toy (arXiv 0000.00000)", claim="Fitting beats predicting zero.",
                    config_cls=ToyConfig, reproduce=toy_reproduce,
                    bench=lambda ctx: [{"case": "noop", "variant": "toy", "median_ms": 0.0}])
    registry.discover()
    monkeypatch.setitem(registry._METHODS, "toy", method)
    return method
