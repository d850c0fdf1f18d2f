"""Shared fixtures: one intra-op thread, and a toy method registered only for the duration of a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from thrifty.core import registry
from thrifty.core.registry import Method
from toy_method import ToyConfig, toy_reproduce


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread() -> Iterator[None]:
    """Tests use tiny shapes: one thread is fastest, and avoids oversubscribing a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_method(monkeypatch: pytest.MonkeyPatch) -> Method:
    method = Method(
        name="toy",
        paper="Toy (arXiv 0000.00000)",
        claim="Fitting beats predicting zero.",
        config_cls=ToyConfig,
        reproduce=toy_reproduce,
        bench=lambda ctx: [{"case": "noop", "variant": "toy", "median_ms": 0.0}],
    )
    registry.discover()
    monkeypatch.setitem(registry._METHODS, "toy", method)
    return method
