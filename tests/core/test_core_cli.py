from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from thrifty.cli import main
from thrifty.core.registry import Method


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_list_shows_registered_methods(toy_method: Method, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "| toy | Toy (arXiv 0000.00000) | Fitting beats predicting zero. | smoke, quick, full |" in out


def test_unknown_method(toy_method: Method, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "nope"]) == 2
    assert "METHOD: unknown method 'nope'; expected one of:" in _error_line(capsys)


def test_unknown_preset(toy_method: Method, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "toy", "--preset", "huge"]) == 2
    assert "--preset: 'huge' is not a preset of toy; expected one of: smoke, quick, full" in _error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
def test_cuda_without_cuda(toy_method: Method, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "toy", "--device", "cuda"]) == 2
    assert "--device: cuda requested but CUDA is not available" in _error_line(capsys)


def test_unwritable_out(toy_method: Method, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["reproduce", "toy", "--out", str(blocker / "sub")]) == 2
    assert "--out: cannot create directory" in _error_line(capsys)


def test_bad_override(toy_method: Method, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "toy", "--set", "steps=-2"]) == 2
    assert "--set: ToyConfig.steps: expected a positive integer, got -2" in _error_line(capsys)
    assert main(["reproduce", "toy", "--set", "steps"]) == 2
    assert "--set: expected FIELD=VALUE" in _error_line(capsys)


def test_unknown_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--colour"]) == 2
    assert "unrecognized arguments: --colour" in _error_line(capsys)


def test_reproduce_writes_run_and_report(toy_method: Method, tmp_path: Path) -> None:
    assert main(["reproduce", "toy", "--preset", "smoke", "--out", str(tmp_path), "--seed", "2"]) == 0
    (run_root,) = list(tmp_path.iterdir())
    results = json.loads((run_root / "toy" / "results.json").read_text())
    assert results["seed"] == 2 and results["method"] == "toy"
    assert "| toy |" in (run_root / "report.md").read_text()
    (run_root / "report.md").unlink()
    assert main(["report", str(run_root)]) == 0
    assert (run_root / "report.md").exists()


def test_failure_sets_exit_code_and_keeps_going(toy_method: Method, tmp_path: Path) -> None:
    assert main(["reproduce", "toy", "--preset", "smoke", "--out", str(tmp_path), "--set", "fail=true"]) == 1
    (run_root,) = list(tmp_path.iterdir())
    assert "FAILED" in (run_root / "report.md").read_text()


def test_bench_json(toy_method: Method, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "toy", "--json", str(out), "--out", str(tmp_path / "runs")]) == 0
    data = json.loads(out.read_text())
    assert data["methods"]["toy"][0]["case"] == "noop" and "torch" in data["env"]
    (bench_root,) = list((tmp_path / "runs" / "bench").iterdir())
    assert json.loads((bench_root / "bench.json").read_text()) == data
    assert (bench_root / "toy").is_dir()


def test_report_of_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "none")]) == 2
    assert "RUN_DIR:" in _error_line(capsys)


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "thrifty", "reproduce", "--preset"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("thrifty: error:")
