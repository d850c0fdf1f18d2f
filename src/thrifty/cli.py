"""The ``thrifty`` command line: ``list``, ``config``, ``reproduce``, ``bench`` and ``report``.

Built from the method registry; bad input is a one-line error naming the argument, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import torch

import thrifty
from thrifty.core.bench import BenchContext, format_table, write_bench_json
from thrifty.core.config import ConfigError, describe_fields
from thrifty.core.registry import Method, UnknownMethodError, get_method, list_methods
from thrifty.core.report import find_records, write_report
from thrifty.core.runs import new_run_root, run_method

EXIT_USAGE = 2
EXIT_FAILED = 1
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and many samplers take 32-bit seeds


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="thrifty", description="Efficient-AI papers, reproduced on a laptop CPU.")
    parser.add_argument("--version", action="version", version=f"thrifty {thrifty.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the registered methods")
    cfg = sub.add_parser("config", help="every config field of a method: type, default and per-preset value")
    cfg.add_argument("method", metavar="METHOD")
    cfg.add_argument("--preset", default=None, help="show only this preset's values")

    rep = sub.add_parser("reproduce", help="run methods' reproductions and write a report")
    rep.add_argument("methods", nargs="*", metavar="METHOD")
    rep.add_argument("--all", action="store_true", help="every registered method")
    rep.add_argument(
        "--preset",
        default="quick",
        help="quick (about 5 min a method), full (<= 30 min), paper (<= 2 h, where a method has one) or smoke",
    )
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--out", default="runs", help="directory under which <timestamp>/ is created")
    rep.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    rep.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    rep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field (JSON value), e.g. --set dpo_steps=50, or one method's field with "
        "--set METHOD.FIELD=VALUE; repeatable (`thrifty config METHOD` lists the fields)",
    )

    ben = sub.add_parser("bench", help="speed/memory rows of methods against their peers")
    ben.add_argument("methods", nargs="*", metavar="METHOD")
    ben.add_argument("--all", action="store_true")
    ben.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON to FILE")
    ben.add_argument("--out", default="runs", help="rows and plots go to <out>/bench/<timestamp>/")
    ben.add_argument("--device", default="cpu")
    ben.add_argument("--threads", type=int, default=1, help="threads pinned while timing (default 1)")
    ben.add_argument("--full", action="store_true", help="larger sizes (slower)")

    rpt = sub.add_parser("report", help="rebuild report.md from existing run directories")
    rpt.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    return parser


def _resolve_methods(names: list[str], use_all: bool) -> list[Method]:
    if use_all and names:
        raise UsageError("METHOD: give method names or --all, not both")
    if use_all:
        return list_methods()
    if not names:
        valid = ", ".join(m.name for m in list_methods())
        raise UsageError(f"METHOD: expected one or more of: {valid} (or --all)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"METHOD: {', '.join(repeated)} given more than once")
    try:
        return [get_method(n) for n in names]
    except UnknownMethodError as exc:
        raise UsageError(f"METHOD: {exc}") from None


def _resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device: expected cpu or cuda[:N], got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device: expected cpu or cuda[:N], got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device: cuda requested but CUDA is not available on this machine; use --device cpu")
    return device


def _check_writable_dir(path: Path, flag: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag}: cannot create directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: directory {path} is not writable")


def _parse_overrides(items: list[str], methods: list[Method]) -> dict[str, dict[str, Any]]:
    """``--set`` items as overrides per method: ``FIELD=V`` applies to every method, ``METHOD.FIELD=V`` to one."""
    names = [m.name for m in methods]
    common: dict[str, Any] = {}
    specific: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set: expected FIELD=VALUE or METHOD.FIELD=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word is a string; the config's type check rejects it where a number is due
        prefix, dot, field = key.partition(".")
        if dot:
            if prefix not in specific:
                raise UsageError(f"--set: {key!r} names {prefix!r}, which is not being run; expected one of {names}")
            specific[prefix][field] = value
        else:
            common[key] = value
    return {n: {**common, **specific[n]} for n in names}


def _apply_threads(threads: int | None) -> None:
    if threads is not None:
        cores = os.cpu_count() or 1
        if not 1 <= threads <= cores:
            raise UsageError(f"--threads: expected an integer from 1 to {cores} (this machine's cores), got {threads}")
        torch.set_num_threads(threads)


def _check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed: expected an integer from 0 to {MAX_SEED}, got {seed}")


def cmd_list(_: argparse.Namespace) -> int:
    rows = [
        {"method": m.name, "paper": m.paper, "claim": m.claim, "presets": ", ".join(m.presets)} for m in list_methods()
    ]
    print(format_table(rows))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    methods = _resolve_methods(args.methods, args.all)
    for method in methods:
        if args.preset not in method.presets:
            raise UsageError(
                f"--preset: {args.preset!r} is not a preset of {method.name}; "
                f"expected one of: {', '.join(method.presets)}"
            )
    device = _resolve_device(args.device)
    _check_seed(args.seed)
    _apply_threads(args.threads)
    overrides = _parse_overrides(args.set, methods)
    try:  # validate overrides before any work starts
        for method in methods:
            method.config_cls.from_preset(args.preset, **overrides[method.name])
    except ConfigError as exc:
        raise UsageError(f"--set: {exc}") from None
    out_root = Path(args.out)
    _check_writable_dir(out_root, "--out")
    run_root = new_run_root(out_root)
    outcomes = []
    try:
        for method in methods:
            print(f"[thrifty] {method.name}: reproducing ({args.preset}) ...", flush=True)
            outcome = run_method(
                method,
                preset=args.preset,
                seed=args.seed,
                device=device,
                run_root=run_root,
                threads=args.threads,
                overrides=overrides[method.name],
            )
            outcomes.append(outcome)
            print(f"[thrifty] {method.name}: {_status(outcome)}", flush=True)
    finally:  # an interrupt still leaves the report of what finished (and the cut method's error.json)
        if any(p.is_dir() for p in run_root.iterdir()):
            report = write_report(find_records(run_root), run_root)
            print(f"[thrifty] report: {report}", flush=True)
    return EXIT_FAILED if any(not o.ok for o in outcomes) else 0


def _status(outcome: Any) -> str:
    if not outcome.ok:
        return "FAILED: " + str(outcome.error)
    return f"claim holds: {'yes' if outcome.results and outcome.results['claim_holds'] else 'no'}"


def cmd_bench(args: argparse.Namespace) -> int:
    methods = _resolve_methods(args.methods, args.all)
    device = _resolve_device(args.device)
    _apply_threads(args.threads)
    if args.json:
        if Path(args.json).is_dir():
            raise UsageError(f"--json: expected a file path, got the directory {args.json}")
        _check_writable_dir(Path(args.json).resolve().parent, "--json")
    _check_writable_dir(Path(args.out), "--out")
    bench_root = new_run_root(Path(args.out) / "bench")
    rows_by_method: dict[str, list[dict[str, Any]]] = {}
    for method in methods:
        if method.bench is None:
            print(f"[thrifty] {method.name}: no benchmark registered", flush=True)
            continue
        out_dir = bench_root / method.name
        out_dir.mkdir()
        ctx = BenchContext(device=device, threads=args.threads, quick=not args.full, out_dir=out_dir)
        rows = method.bench(ctx)
        rows_by_method[method.name] = rows
        print(f"\n## {method.name}\n{format_table(rows)}", flush=True)
    write_bench_json(bench_root / "bench.json", rows_by_method, device)
    if args.json:
        write_bench_json(args.json, rows_by_method, device)
    print(f"[thrifty] bench rows: {bench_root / 'bench.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    found = []
    for run_dir in args.run_dirs:  # every directory checked before anything is written
        try:
            found.append((Path(run_dir), find_records(Path(run_dir))))
        except FileNotFoundError as exc:
            raise UsageError(f"RUN_DIR: {exc}") from None
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise UsageError(f"RUN_DIR: {run_dir} is not writable (report.md is written into it)")
    bad = 0
    for run_dir, records in found:
        for rec in records:
            if rec.problem:
                bad += 1
                print(f"thrifty: bad record: {rec.problem}", file=sys.stderr)
        print(write_report(records, run_dir))
    return EXIT_FAILED if bad else 0


def cmd_config(args: argparse.Namespace) -> int:
    try:
        method = get_method(args.method)
    except UnknownMethodError as exc:
        raise UsageError(f"METHOD: {exc}") from None
    presets = list(method.presets)
    if args.preset is not None:
        if args.preset not in presets:
            raise UsageError(f"--preset: {args.preset!r} is not a preset of {method.name}; expected one of: {presets}")
        presets = [args.preset]
    print(format_table(describe_fields(method.config_cls, presets)))
    return 0


COMMANDS = {
    "list": cmd_list,
    "config": cmd_config,
    "reproduce": cmd_reproduce,
    "bench": cmd_bench,
    "report": cmd_report,
}


# Third-party notices that are not the user's business: logger levels and warning filters.
QUIET_LOGGERS = {
    "torchao": logging.ERROR,  # "Failed to load ..._C_*.so", "Detected no triton"
    "transformers.integrations.hub_kernels": logging.ERROR,  # "`mamba_inner_fn` is falling back to ..."
    "torch.utils._pytree": logging.ERROR,  # torchao's Enum register_constant deprecation
}
QUIET_WARNINGS: tuple[dict[str, Any], ...] = (
    {"category": FutureWarning, "module": r"executorch(\.|$)"},
    {"category": FutureWarning, "message": r".*(MemoryPlanningPass|[Ee]xecu[Tt]orch|exir).*"},
    {"message": r".*[Ff]ailed to load.*", "module": r"torchao(\.|$)"},
    {"message": r".*fast path is not available.*"},
    # torch.export's pytree deprecation during ExecuTorch lowering, attributed to copyreg (not our code)
    {"category": FutureWarning, "message": r".*LeafSpec.*"},
    # ExecuTorch's note on KV-cache buffers; thrifty's decode programs never read the uninitialised rows
    {"category": UserWarning, "message": r"Mutation on a buffer in the model is detected.*"},
)


def quiet_third_party() -> None:
    """Silence torchao's "Failed to load" lines, ExecuTorch's FutureWarnings and the Mamba fallback notice."""
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for spec in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", **spec)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_third_party()
    try:
        args = _build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"thrifty: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("thrifty: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk or a directory that turned read-only mid-run: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"thrifty: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
