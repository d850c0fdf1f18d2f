"""Markdown (and HTML) reports built from run directories' results.json / error.json files."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.core.io import write_text_atomic


@dataclass
class MethodRecord:
    """One method's run as found on disk: its results, or the error that stopped it."""

    name: str
    run_dir: Path
    results: dict[str, Any] | None
    error: str | None
    problem: str | None = None  # the record on disk is unreadable or malformed (one line)


def find_records(run_root: Path) -> list[MethodRecord]:
    """Records of every method directory under ``run_root`` (or ``run_root`` itself if it is one)."""
    run_root = Path(run_root)
    if not run_root.is_dir():
        raise FileNotFoundError(f"run directory: {run_root} does not exist or is not a directory")
    candidates = [run_root] if _is_method_dir(run_root) else sorted(p for p in run_root.iterdir() if p.is_dir())
    records = [_read_record(d) for d in candidates if _is_method_dir(d)]
    if not records:
        raise FileNotFoundError(f"run directory: no results.json or error.json found in {run_root}")
    return records


def _is_method_dir(path: Path) -> bool:
    return (path / "results.json").exists() or (path / "error.json").exists()


def _read_record(method_dir: Path) -> MethodRecord:
    """The record in ``method_dir``; a malformed file becomes a record with a one-line ``problem``."""
    is_results = (method_dir / "results.json").exists()
    path = method_dir / ("results.json" if is_results else "error.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _bad_record(method_dir, f"{path}: unreadable ({type(exc).__name__}: {exc})")
    if not isinstance(data, dict):
        return _bad_record(method_dir, f"{path}: expected a JSON object, got {type(data).__name__}")
    name = data.get("method") if isinstance(data.get("method"), str) else method_dir.name
    if not is_results:
        return MethodRecord(name, method_dir, None, str(data.get("error", "unknown error")))
    problem = results_problem(data)
    if problem is not None:
        return _bad_record(method_dir, f"{path}: {problem}", name)
    return MethodRecord(name, method_dir, data, None)


def _bad_record(method_dir: Path, problem: str, name: str | None = None) -> MethodRecord:
    return MethodRecord(name or method_dir.name, method_dir, None, problem, problem=problem)


_CLAIM_KEYS = {"name": str, "metric": str, "direction": str, "holds": bool}


def _claim_problem(claim: Any, where: str) -> str | None:
    if not isinstance(claim, dict):
        return f"{where}: expected an object"
    for key, kind in _CLAIM_KEYS.items():
        if not isinstance(claim.get(key), kind):
            return f"{where}.{key}: expected {kind.__name__}, got {claim.get(key)!r}"
    for key in ("value", "target"):
        if claim.get(key) is not None and (isinstance(claim[key], bool) or not isinstance(claim[key], (int, float))):
            return f"{where}.{key}: expected a number or null, got {claim[key]!r}"
    return None


def results_problem(results: dict[str, Any]) -> str | None:
    """Why ``results`` (a parsed results.json) cannot be reported, or ``None`` when it is well-formed."""
    kinds = {"method": str, "paper": str, "claim": str, "preset": str, "variants": dict, "headline": dict}
    kinds |= {"claim_holds": bool, "env": dict}
    for key, kind in kinds.items():
        if not isinstance(results.get(key), kind):
            return f"{key}: expected {kind.__name__}, got {results.get(key)!r}"[:200]
    if isinstance(results.get("elapsed_s"), bool) or not isinstance(results.get("elapsed_s"), (int, float)):
        return f"elapsed_s: expected a number, got {results.get('elapsed_s')!r}"
    if not all(isinstance(v, dict) for v in results["variants"].values()):
        return "variants: expected an object of objects"
    checks = results.get("checks", [])
    if not isinstance(checks, list):
        return f"checks: expected a list, got {type(checks).__name__}"
    for where, claim in [("headline", results["headline"])] + [(f"checks[{i}]", c) for i, c in enumerate(checks)]:
        problem = _claim_problem(claim, where)
        if problem:
            return problem
    if not isinstance(results.get("plots", []), list) or not isinstance(results.get("notes") or "", str):
        return "plots/notes: expected a list of file names and a string"
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return str(value)


def summary_rows(records: list[MethodRecord]) -> list[list[str]]:
    """One row a method: method, claim, headline metric, value, target, holds, time."""
    rows = []
    for rec in records:
        if rec.results is None:
            kind = "(bad record)" if rec.problem else "(failed)"
            rows.append([rec.name, kind, f"error: {rec.error}", "", "", "FAILED", "", ""])
            continue
        h = rec.results["headline"]
        claims = [h, *rec.results.get("checks", [])]
        held = sum(bool(c["holds"]) for c in claims)
        rows.append(
            [
                rec.name,
                rec.results["claim"],
                h["name"],
                _fmt(h["value"]),
                f"{h['direction']} {_fmt(h['target'])}",
                _fmt(h["holds"]),
                f"{held}/{len(claims)}: {_fmt(rec.results['claim_holds'])}",
                f"{rec.results['elapsed_s']:.0f}",
            ]
        )
    return rows


SUMMARY_HEADER = [
    "method",
    "claim",
    "headline",
    "measured",
    "target",
    "headline holds",
    "claims holding (all?)",
    "time (s)",
]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    clean = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in clean])


def variants_table(variants: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Rows = variants, columns = the union of their metric names."""
    metrics: list[str] = []
    for values in variants.values():
        metrics += [k for k in values if k not in metrics]
    rows = [[name] + [_fmt(values.get(m)) for m in metrics] for name, values in variants.items()]
    return ["variant", *metrics], rows


def claims_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    claims = [results["headline"], *results.get("checks", [])]
    rows = [
        [c["name"], c["metric"], _fmt(c["value"]), f"{c['direction']} {_fmt(c['target'])}", _fmt(c["holds"])]
        for c in claims
    ]
    return ["claim", "metric", "measured", "target", "holds"], rows


def render_markdown(records: list[MethodRecord], base: Path) -> str:
    """The whole report; image links are relative to ``base`` (the report's directory)."""
    parts = ["# thrifty reproduction report", "", _md_table(SUMMARY_HEADER, summary_rows(records)), ""]
    for rec in records:
        parts += [f"## {rec.name}", ""]
        if rec.results is None:
            parts += [f"Failed: `{rec.error}` (see `{_rel(rec.run_dir / 'error.json', base)}`).", ""]
            continue
        res = rec.results
        parts += [
            f"*{res['paper']}*",
            "",
            res["claim"],
            "",
            _env_line(res),
            "",
        ]
        parts += [_md_table(*claims_table(res)), "", _md_table(*variants_table(res["variants"])), ""]
        if res.get("notes"):
            parts += [res["notes"], ""]
        parts += [f"![{p}]({_rel(rec.run_dir / p, base)})" for p in res.get("plots", [])] + [""]
    return "\n".join(parts)


def _env_line(res: dict[str, Any]) -> str:
    env = res["env"]
    return (
        f"Preset `{res['preset']}`, seed {res.get('seed')}, {res['elapsed_s']:.0f} s on {env.get('cpu', '?')} "
        f"({env.get('threads', '?')} threads, torch {env.get('torch', '?')}, {env.get('device', '?')})."
    )


def render_html(records: list[MethodRecord], base: Path) -> str:
    """A self-contained HTML page with the same tables and the plots."""

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"

    out = [
        "<!doctype html><meta charset='utf-8'><title>thrifty report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}.scroll{overflow-x:auto}"
        "pre{white-space:pre-wrap}</style>",
        "<h1>thrifty reproduction report</h1>",
        table(SUMMARY_HEADER, summary_rows(records)),
    ]
    for rec in records:
        out.append(f"<h2>{html.escape(rec.name)}</h2>")
        if rec.results is None:
            out.append(f"<p>Failed: <code>{html.escape(str(rec.error))}</code></p>")
            continue
        res = rec.results
        out += [
            f"<p><em>{html.escape(res['paper'])}</em></p>",
            f"<p>{html.escape(res['claim'])}</p>",
            f"<p>{html.escape(_env_line(res))}</p>",
            table(*claims_table(res)),
            "<br>",
            table(*variants_table(res["variants"])),
        ]
        if res.get("notes"):
            out.append(f"<pre>{html.escape(res['notes'])}</pre>")
        out += [_embedded_image(rec.run_dir / p) for p in res.get("plots", [])]
    return "\n".join(out) + "\n"


def _embedded_image(path: Path) -> str:
    """An <img> carrying the PNG itself (data URI), so the page is self-contained; a missing file is named."""
    try:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    except OSError:
        return f"<p>(plot {html.escape(Path(path).name)} is missing)</p>"
    return f"<img alt='{html.escape(Path(path).name)}' src='data:image/png;base64,{data}'>"


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def write_report(records: list[MethodRecord], out_dir: Path) -> Path:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; returns the Markdown path."""
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "report.md", render_markdown(records, out_dir))
    write_text_atomic(out_dir / "report.html", render_html(records, out_dir))
    return out_dir / "report.md"
