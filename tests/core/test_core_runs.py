from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.core.io import write_json_atomic
from thrifty.core.registry import Method
from thrifty.core.report import find_records, write_report
from thrifty.core.runs import RESULTS_KEYS, Claim, new_run_root, run_method


def test_claim_holds_is_computed_from_value() -> None:
    assert Claim("c", "m", 0.4, 0.5, "<=").holds
    assert not Claim("c", "m", 0.6, 0.5, "<=").holds
    assert Claim("c", "m", 0.5, 0.5, ">=").holds
    assert not Claim("c", "m", float("nan"), 0.5, ">=").holds
    with pytest.raises(ValueError, match="direction"):
        Claim("c", "m", 1.0, 0.5, ">")


def test_run_method_writes_the_contract(tmp_path: Path, toy_method: Method) -> None:
    root = new_run_root(tmp_path)
    outcome = run_method(toy_method, preset="smoke", seed=3, run_root=root)
    assert outcome.ok
    results = json.loads((root / "toy" / "results.json").read_text())
    assert set(RESULTS_KEYS) <= set(results)
    assert results["preset"] == "smoke" and results["seed"] == 3
    assert set(results["variants"]) == {"toy", "zero"}
    headline = results["headline"]
    assert results["claim_holds"] == (headline["value"] <= headline["target"])
    assert json.loads((root / "toy" / "config.json").read_text())["steps"] == 3
    lines = (root / "toy" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["series"] == "train/toy"


def test_same_seed_same_numbers(tmp_path: Path, toy_method: Method) -> None:
    a = run_method(toy_method, preset="smoke", seed=5, run_root=new_run_root(tmp_path))
    b = run_method(toy_method, preset="smoke", seed=5, run_root=new_run_root(tmp_path))
    c = run_method(toy_method, preset="smoke", seed=6, run_root=new_run_root(tmp_path))
    assert a.results["variants"] == b.results["variants"] != c.results["variants"]


def test_failure_is_recorded_not_raised(tmp_path: Path, toy_method: Method) -> None:
    root = new_run_root(tmp_path)
    outcome = run_method(toy_method, preset="smoke", run_root=root, overrides={"fail": True})
    assert not outcome.ok and "toy failure on purpose" in outcome.error
    assert not (root / "toy" / "results.json").exists()
    error = json.loads((root / "toy" / "error.json").read_text())
    assert "RuntimeError" in error["error"] and "Traceback" in error["traceback"]


def test_run_roots_are_never_reused(tmp_path: Path) -> None:
    roots = {new_run_root(tmp_path) for _ in range(3)}
    assert len(roots) == 3 and all(r.is_dir() for r in roots)


def test_method_dir_is_never_overwritten(tmp_path: Path, toy_method: Method) -> None:
    root = new_run_root(tmp_path)
    run_method(toy_method, preset="smoke", run_root=root)
    with pytest.raises(FileExistsError):
        run_method(toy_method, preset="smoke", run_root=root)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_report_lists_successes_and_failures(tmp_path: Path, toy_method: Method) -> None:
    root = new_run_root(tmp_path)
    run_method(toy_method, preset="smoke", run_root=root)
    failed = Method(
        name="broken", paper="p", claim="c", config_cls=toy_method.config_cls, reproduce=toy_method.reproduce
    )
    run_method(failed, preset="smoke", run_root=root, overrides={"fail": True})
    report = write_report(find_records(root), root).read_text()
    assert "| broken | (failed) | error: RuntimeError: toy failure on purpose" in report
    toy_row = next(line for line in report.splitlines() if line.startswith("| toy |"))
    holds = json.loads((root / "toy" / "results.json").read_text())["claim_holds"]
    assert toy_row.endswith(f"| 1/1: {'yes' if holds else 'no'} | {toy_row.rsplit('|', 2)[1].strip()} |")
    assert "| toy | Fitting beats predicting zero." in report
    assert "| zero |" in report  # the baseline's row in the variants table
    assert (root / "report.html").read_text().count("<table>") >= 3
