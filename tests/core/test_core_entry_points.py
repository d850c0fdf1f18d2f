"""Logged runs show they are alive, and third-party noise stays out of the user's log (issue #16).

The 10% lines, the heartbeat and the logger levels are tested in test_core_cli_hardening.py; these are the
time-based lines and the warnings raised from inside thrifty's own modules.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from thrifty.cli import quiet_third_party
from thrifty.core import runs
from thrifty.core.runs import RunContext


def test_progress_off_a_terminal_prints_every_30_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = iter(range(0, 10_000, 31))  # each tick 31 s later: every step is due on time, none on progress
    monkeypatch.setattr(runs.time, "perf_counter", lambda: float(next(clock)))
    items = list(RunContext(tmp_path).progress(iter(range(3)), desc="gen"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert items == [0, 1, 2]
    assert [line.split(",")[0] for line in lines] == [f"[thrifty]   gen: {i} done" for i in (1, 2, 3)]


def test_executorch_future_warnings_raised_from_our_modules_are_silenced() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party()
        # ExecuTorch's @deprecated warnings are attributed to the caller (thrifty.core.deploy), not executorch
        message = "MemoryPlanningPass.call() is deprecated, please use MemoryPlanningPass.run() instead"
        warnings.warn_explicit(message, FutureWarning, "deploy.py", 1, module="thrifty.core.deploy")
        warnings.warn_explicit("yours", FutureWarning, "x.py", 1, module="thrifty.dtrpo")
    assert [str(w.message) for w in caught] == ["yours"]
