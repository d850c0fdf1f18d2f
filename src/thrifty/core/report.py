"""Markdown (and HTML) reports built from run directories' results.json / error.json files."""

from __future__ import annotations

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
    if (method_dir / "results.json").exists():
        results = json.loads((method_dir / "results.json").read_text())
        return MethodRecord(results.get("method", method_dir.name), method_dir, results, None)
    error = json.loads((method_dir / "error.json").read_text())
    return MethodRecord(error.get("method", method_dir.name), method_dir, None, error.get("error", "unknown"))


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
            rows.append([rec.name, "(failed)", f"error: {rec.error}", "", "", "FAILED", "", ""])
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
            f"Preset `{res['preset']}`, seed {res['seed']}, {res['elapsed_s']:.0f} s on "
            f"{res['env'].get('cpu', '?')} ({res['env'].get('threads', '?')} threads, "
            f"torch {res['env'].get('torch', '?')}, {res['env'].get('device', '?')}).",
            "",
        ]
        parts += [_md_table(*claims_table(res)), "", _md_table(*variants_table(res["variants"])), ""]
        if res.get("notes"):
            parts += [res["notes"], ""]
        parts += [f"![{p}]({_rel(rec.run_dir / p, base)})" for p in res.get("plots", [])] + [""]
    return "\n".join(parts)


def render_html(records: list[MethodRecord], base: Path) -> str:
    """A self-contained HTML page with the same tables and the plots."""

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    out = [
        "<!doctype html><meta charset='utf-8'><title>thrifty report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}</style>",
        "<h1>thrifty reproduction report</h1>",
        table(SUMMARY_HEADER, summary_rows(records)),
    ]
    for rec in records:
        out.append(f"<h2>{html.escape(rec.name)}</h2>")
        if rec.results is None:
            out.append(f"<p>Failed: <code>{html.escape(str(rec.error))}</code></p>")
            continue
        out += [
            f"<p>{html.escape(rec.results['claim'])}</p>",
            table(*claims_table(rec.results)),
            "<br>",
            table(*variants_table(rec.results["variants"])),
        ]
        out += [f"<img src='{html.escape(_rel(rec.run_dir / p, base))}'>" for p in rec.results.get("plots", [])]
    return "\n".join(out) + "\n"


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
