from __future__ import annotations

import torch

from thrifty.core.bench import format_table, peak_memory_mb, time_fn, timed_under_load
from thrifty.core.testing import assert_close_ratio, relative_rms_error, sqnr_db


def test_peak_memory_counts_live_tensors() -> None:
    def two_live_buffers() -> torch.Tensor:
        a = torch.ones(1_000_000)  # 4 MB
        b = a * 2  # 4 MB more while a is alive
        del a
        return (b + 1).sum()

    assert abs(peak_memory_mb(two_live_buffers) - 8.0) < 0.1
    assert peak_memory_mb(lambda: torch.ones(250_000).sum()) < 1.1


def test_time_fn_reports_ordered_stats() -> None:
    t = time_fn(lambda: torch.randn(64, 64) @ torch.randn(64, 64), min_run_time=0.05, warmup=1)
    assert 0 < t.min_ms <= t.median_ms and t.runs >= 1


def test_format_table_unions_columns() -> None:
    table = format_table([{"case": "a", "ms": 1.23456}, {"case": "b", "speedup": 2.0}])
    assert table.splitlines()[0] == "| case | ms | speedup |"
    assert "| a | 1.235 |  |" in table and "| b |  | 2 |" in table


def test_error_metrics() -> None:
    ref = torch.ones(100)
    assert abs(sqnr_db(ref, ref + 0.1) - 20.0) < 1e-5  # noise power 1% of signal power
    assert abs(relative_rms_error(ref, ref * 1.01) - 0.01) < 1e-6
    assert_close_ratio("same", ref, ref)
    try:
        assert_close_ratio("off", ref, ref * 1.1, ratio=1e-3)
    except AssertionError as exc:
        assert "relative RMS error 1.000e-01" in str(exc)
    else:
        raise AssertionError("assert_close_ratio accepted a 10% error")


def test_timed_under_load_returns_the_result_and_both_load_readings(monkeypatch) -> None:
    readings = iter([(1.5, 0.0, 0.0), (2.5, 0.0, 0.0)])
    monkeypatch.setattr("os.getloadavg", lambda: next(readings))
    calls = []
    result, load = timed_under_load(lambda: calls.append(1) or "done")
    assert (result, load, calls) == ("done", [1.5, 2.5], [1])
