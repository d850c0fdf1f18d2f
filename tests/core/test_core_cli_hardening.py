"""CLI entry points keep their contract on hostile input (issue #16): one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from thrifty.cli import main
from thrifty.core.registry import Method
from thrifty.core.runs import new_run_root, run_method


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "toy", "toy"], "METHOD: toy given more than once"),
        (["reproduce", "toy", "--seed", str(2**64)], "--seed: expected an integer from 0 to"),
        (["reproduce", "toy", "--seed", "-1"], "--seed: expected an integer from 0 to"),
        (["reproduce", "toy", "--threads", str((os.cpu_count() or 1) + 1)], "--threads: expected an integer from 1"),
        (["reproduce", "toy", "--set", "steps=true"], "ToyConfig.steps: expected an integer, got True"),
        (["reproduce", "toy", "--set", "steps=abc"], "ToyConfig.steps: expected an integer, got 'abc'"),
        (["reproduce", "toy", "--set", "other.steps=3"], "--set: 'other.steps' names 'other', which is not being run"),
        (["reproduce", "toy", "--set", "toy.nope=3"], "ToyConfig: unknown field(s) nope"),
        (["config", "nope"], "METHOD: unknown method 'nope'"),
        (["config", "toy", "--preset", "huge"], "--preset: 'huge' is not a preset of toy"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    toy_method: Method, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "runs"
    assert main([*argv, "--out", str(out)] if argv[0] == "reproduce" else argv) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_method_specific_set(toy_method: Method, tmp_path: Path) -> None:
    assert main(["reproduce", "toy", "--preset", "smoke", "--out", str(tmp_path), "--set", "toy.steps=7"]) == 0
    config = json.loads(next(tmp_path.glob("*/toy/config.json")).read_text())
    assert config["steps"] == 7


def test_version_and_config(toy_method: Method, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("thrifty 0.")
    assert main(["config", "toy"]) == 0
    out = capsys.readouterr().out
    assert "| steps | int | 10 | 3 | 10 | 50 |" in out and "| fail | bool | false |" in out


def test_bench_json_directory_is_refused_before_benchmarking(
    toy_method: Method, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "toy", "--json", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--json: expected a file path, got the directory" in _error_line(capsys)
    assert not (tmp_path / "o").exists()


def _results_dir(tmp_path: Path, toy_method: Method) -> Path:
    root = new_run_root(tmp_path)
    assert run_method(toy_method, preset="smoke", run_root=root).ok
    return root


@pytest.mark.parametrize(
    "content",
    [b"", b'{"method": "toy", "head', b"\x00\xff\xfe binary", b"[1, 2]", b'{"method": "toy"}'],
    ids=["empty", "truncated", "binary", "list", "missing-keys"],
)
def test_report_survives_corrupt_records(
    toy_method: Method, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    root = _results_dir(tmp_path, toy_method)
    bad = root / "broken"
    bad.mkdir()
    (bad / "results.json").write_bytes(content)
    assert main(["report", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("bad record") == 1 and "Traceback" not in err
    report = (root / "report.md").read_text()
    assert "| toy |" in report and "(bad record)" in report


def test_report_with_null_headline_field(toy_method: Method, tmp_path: Path) -> None:
    root = _results_dir(tmp_path, toy_method)
    path = root / "toy" / "results.json"
    data = json.loads(path.read_text())
    data["headline"]["holds"] = None
    path.write_text(json.dumps(data))
    assert main(["report", str(root)]) == 1
    assert "headline.holds: expected bool" in (root / "report.md").read_text()


def test_report_html_is_self_contained_and_readable(toy_method: Method, tmp_path: Path) -> None:
    root = _results_dir(tmp_path, toy_method)
    png = root / "toy" / "plot.png"
    png.write_bytes(b"\x89PNG fake")
    path = root / "toy" / "results.json"
    data = json.loads(path.read_text())
    data["plots"], data["notes"] = ["plot.png"], "a note"
    path.write_text(json.dumps(data))
    assert main(["report", str(root)]) == 0
    page = (root / "report.html").read_text()
    assert "data:image/png;base64," in page and "src='toy/" not in page
    assert "a note" in page and data["paper"] in page and "overflow-x:auto" in page
    assert (root / "report.html").stat().st_mode & 0o044 == 0o044  # group/world readable like the PNGs


def test_report_into_read_only_dir(
    toy_method: Method, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _results_dir(tmp_path, toy_method)
    real_access = os.access
    # CI runs as root, which ignores permission bits, so the read-only directory is simulated.
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == root else real_access(p, mode))
    assert main(["report", str(root)]) == 2
    assert "is not writable" in _error_line(capsys)
    assert not (root / "report.md").exists()


def test_interrupted_all_keeps_the_report_and_marks_the_cut_method(
    toy_method: Method, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import thrifty.cli as cli

    real = cli.run_method
    calls = []

    def cut_second(method: Method, **kw):
        calls.append(method.name)
        if len(calls) == 2:
            run_dir = Path(kw["run_root"]) / "second"
            run_dir.mkdir()
            (run_dir / "error.json").write_text(json.dumps({"method": "second", "error": "interrupted"}))
            raise KeyboardInterrupt
        return real(method, **kw)

    monkeypatch.setattr(cli, "_resolve_methods", lambda names, use_all: [toy_method, toy_method])
    monkeypatch.setattr(cli, "run_method", cut_second)
    assert main(["reproduce", "--all", "--preset", "smoke", "--out", str(tmp_path)]) == 130
    report = next(tmp_path.glob("*/report.md")).read_text()
    assert "| toy |" in report and "interrupted" in report


def test_run_method_marks_an_interrupt(toy_method: Method, tmp_path: Path) -> None:
    def interrupted(cfg, ctx):
        raise KeyboardInterrupt

    method = Method(toy_method.name, toy_method.paper, toy_method.claim, toy_method.config_cls, interrupted)
    root = new_run_root(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_method(method, preset="smoke", run_root=root)
    assert json.loads((root / "toy" / "error.json").read_text())["error"] == "interrupted"
    assert not (root / "toy" / "results.json").exists()


def test_os_error_is_one_line(toy_method: Method, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import errno

    import thrifty.cli as cli

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(cli, "run_method", full_disk)
    assert main(["reproduce", "toy", "--preset", "smoke", "--out", str(tmp_path)]) == 1
    assert "No space left on device" in _error_line(capsys)


def test_logged_run_prints_progress_off_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from thrifty.core.runs import RunContext, _logged_progress

    ctx = RunContext(tmp_path)
    assert list(ctx.progress(range(20), desc="train")) == list(range(20))
    assert capsys.readouterr().out == ""  # a loop shorter than the 5 s gap between lines prints nothing
    assert list(_logged_progress(range(20), "train", None, min_gap_s=0.0)) == list(range(20))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 10 and lines[0].startswith("[thrifty]   train: 10% (2/20)") and "100% (20/20)" in lines[-1]


def test_heartbeat_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from thrifty.core.runs import heartbeat

    with heartbeat("toy", every_s=0.05):
        time.sleep(0.3)
    out = capsys.readouterr().out
    assert out.count("[thrifty] toy: still running") >= 2


def test_third_party_notices_are_silenced(recwarn: pytest.WarningsRecorder) -> None:
    import logging
    import warnings

    from thrifty.cli import quiet_third_party

    with warnings.catch_warnings():
        quiet_third_party()
        assert logging.getLogger("torchao").level == logging.ERROR
        warnings.warn_explicit("old api", FutureWarning, "x.py", 1, module="executorch.exir.program")
        warnings.warn_explicit("user's business", FutureWarning, "x.py", 1, module="mycode")
    assert [str(w.message) for w in recwarn] == ["user's business"]
