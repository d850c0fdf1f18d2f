"""Run directories and the results contract every ``reproduce`` follows.

Layout of one ``thrifty reproduce`` invocation::

    <out_root>/<timestamp>/            never reused: a second run gets a new directory
        report.md, report.html         built by :mod:`thrifty.core.report`
        <method>/config.json           the resolved config
        <method>/metrics.jsonl         per-step curves (one JSON object per line)
        <method>/*.png                 plots
        <method>/results.json          written last and atomically; absent if the run failed
        <method>/error.json            the error of a failed run
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import torch

from thrifty.core.envinfo import env_info
from thrifty.core.io import write_json_atomic

if TYPE_CHECKING:
    from thrifty.core.registry import Method

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Claim:
    """One measured target: ``value`` compared with ``target`` in ``direction``.

    ``holds`` is computed from the measured value, never set by hand.
    """

    name: str
    metric: str
    value: float
    target: float
    direction: Literal[">=", "<="]

    def __post_init__(self) -> None:
        if self.direction not in (">=", "<="):
            raise ValueError(f"Claim.direction: expected '>=' or '<=', got {self.direction!r}")

    @property
    def holds(self) -> bool:
        value = float(self.value)
        if value != value:  # NaN never satisfies a claim
            return False
        return value >= self.target if self.direction == ">=" else value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "value": float(self.value), "holds": self.holds}


@dataclass
class Results:
    """What a method's ``reproduce`` returns: every variant's metrics and the claims checked."""

    variants: dict[str, dict[str, Any]]
    headline: Claim
    checks: list[Claim] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def claim_holds(self) -> bool:
        return self.headline.holds and all(c.holds for c in self.checks)


class RunContext:
    """Where and how one method's reproduction runs: directory, seed, device, logging helpers."""

    def __init__(
        self,
        out_dir: Path,
        *,
        seed: int = 0,
        preset: str = "quick",
        device: torch.device | str = "cpu",
        threads: int | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.preset = preset
        self.device = torch.device(device)
        self.threads = threads or torch.get_num_threads()
        self.metrics_path = self.out_dir / "metrics.jsonl"

    def log(self, series: str, step: int, **metrics: float) -> None:
        """Append one line ``{"series", "step", **metrics}`` to metrics.jsonl."""
        row = {"series": series, "step": int(step), **{k: _scalar(v) for k, v in metrics.items()}}
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    def progress(self, iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterator[T]:
        """A tqdm progress bar (on stderr) that stays silent when stdout is not a terminal."""
        if sys.stdout.isatty():
            from tqdm.auto import tqdm

            return iter(tqdm(iterable, desc=desc, total=total, leave=False))
        return _logged_progress(iterable, desc, total)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``seed + offset`` (one per independent random stream)."""
        return torch.Generator().manual_seed(self.seed + offset)

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``<out_dir>/<name>.png`` and close it."""
        import matplotlib.pyplot as plt

        path = self.out_dir / f"{name}.png"
        tmp = self.out_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        tmp.replace(path)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.out_dir / name
        write_json_atomic(path, obj)
        return path


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, torch.Tensor) else value


def new_run_root(out_root: str | Path) -> Path:
    """Create ``<out_root>/<timestamp>`` (with a suffix if taken); never reuses a directory."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = out_root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run directory under {out_root}")


@dataclass
class RunOutcome:
    """The result of :func:`run_method`: the directory and either results or an error."""

    method: str
    run_dir: Path
    results: dict[str, Any] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _logged_progress(
    iterable: Iterable[T], desc: str, total: int | None, every_s: float = 30.0, min_gap_s: float = 5.0
) -> Iterator[T]:
    """Off a terminal (``make reproduce | tee log``): a line per 10% of ``total`` or per ``every_s`` seconds.

    Lines are at least ``min_gap_s`` apart, so many short loops (a search's candidates) do not flood the log.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    start = last = time.perf_counter()
    next_frac = 0.1
    for i, item in enumerate(iterable, 1):
        yield item
        now = time.perf_counter()
        frac = i / total if total else 0.0
        if (frac >= next_frac and now - last >= min_gap_s) or now - last >= every_s:
            shown = f"{100 * frac:.0f}% ({i}/{total})" if total else f"{i} done"
            print(f"[thrifty]   {desc}: {shown}, {now - start:.0f} s", flush=True)
            last = now
            while total and next_frac <= frac:
                next_frac += 0.1


@contextlib.contextmanager
def heartbeat(label: str, every_s: float = 30.0) -> Iterator[None]:
    """Print ``label: still running`` every ``every_s`` seconds while the block runs, when stdout is not a TTY.

    Methods whose loops do not go through :meth:`RunContext.progress` still show a logged run is alive.
    """
    if sys.stdout.isatty():
        yield
        return
    stop = threading.Event()
    start = time.perf_counter()

    def beat() -> None:
        while not stop.wait(every_s):
            print(f"[thrifty] {label}: still running, {time.perf_counter() - start:.0f} s", flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_method(
    method: Method,
    *,
    preset: str = "quick",
    seed: int = 0,
    device: str | torch.device = "cpu",
    run_root: str | Path,
    threads: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunOutcome:
    """Run ``method``'s reproduction into ``run_root/<method>``; errors are recorded, not raised.

    A config error (bad preset or override) is raised, since nothing ran yet.
    """
    config = method.config_cls.from_preset(preset, **(overrides or {}))
    run_dir = Path(run_root) / method.name
    run_dir.mkdir(parents=True, exist_ok=False)
    config.to_json(run_dir / "config.json")
    ctx = RunContext(run_dir, seed=seed, preset=preset, device=device, threads=threads)
    torch.manual_seed(seed)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(ctx.threads)
    start = time.perf_counter()
    try:
        with heartbeat(method.name):
            results = method.reproduce(config, ctx)
        payload = results_payload(
            method, results, preset=preset, seed=seed, ctx=ctx, elapsed_s=time.perf_counter() - start
        )
    except KeyboardInterrupt:  # leave a marker, so a cut run is never mistaken for one still going
        write_json_atomic(
            run_dir / "error.json",
            {"method": method.name, "error": "interrupted", "elapsed_s": time.perf_counter() - start},
        )
        raise
    except Exception as exc:  # one failing method must not stop --all
        log.exception("method %s failed", method.name)
        error = f"{type(exc).__name__}: {exc}"
        write_json_atomic(
            run_dir / "error.json",
            {
                "method": method.name,
                "error": error,
                "traceback": traceback.format_exc(),
                "elapsed_s": time.perf_counter() - start,
            },
        )
        return RunOutcome(method.name, run_dir, None, error)
    finally:
        torch.set_num_threads(threads_before)
    write_json_atomic(run_dir / "results.json", payload)
    return RunOutcome(method.name, run_dir, payload, None)


def results_payload(
    method: Method, results: Results, *, preset: str, seed: int, ctx: RunContext, elapsed_s: float
) -> dict[str, Any]:
    """The JSON contract of results.json."""
    if not isinstance(results, Results):
        raise TypeError(f"{method.name}.reproduce must return Results, got {type(results).__name__}")
    return {
        "method": method.name,
        "paper": method.paper,
        "claim": method.claim,
        "preset": preset,
        "seed": seed,
        "variants": results.variants,
        "headline": results.headline.to_dict(),
        "checks": [c.to_dict() for c in results.checks],
        "claim_holds": results.claim_holds,
        "elapsed_s": round(elapsed_s, 3),
        "env": env_info(ctx.device),
        "plots": sorted(p.name for p in ctx.out_dir.glob("*.png")),
        "extra": results.extra,
        "notes": results.notes,
    }


RESULTS_KEYS = ("method", "paper", "claim", "preset", "seed", "variants", "headline", "claim_holds", "elapsed_s", "env")
