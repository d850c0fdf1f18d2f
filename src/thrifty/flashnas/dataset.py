"""The measured latency dataset: hardware in the loop.

The shipped JSON (``data/latency_dataset.json``) was measured on the development box; tests and CI
only refit it. Re-measure on your own machine (that is the point of the method)::

    python -m thrifty.flashnas.dataset --n 24 --out my_latency.json

Latency does not depend on the weight values, so configurations use random weights.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.core.envinfo import env_info
from thrifty.core.io import write_json_atomic
from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.latency import LatencyKey, Stat, interleaved_timings, latency_callable
from thrifty.flashnas.model import FlashLM

DATASET_PATH = Path(__file__).parent / "data" / "latency_dataset.json"
DEFAULT_KEYS = ("prefill_1024", "decode_1024")
SKIP_KEYS = ("prefill_128", "prefill_512", "prefill_1024", "decode_1024")


@dataclass(frozen=True)
class LatencySpace:
    """Where latency configurations are sampled [inf]: ranges bounding every backbone we search.

    Args:
        vocab_size: vocabulary of the char-level LM.
        widths: residual widths ``d'`` to sample.
        max_layers: layers ``L'`` are drawn from ``1..max_layers``.
        ffn_range: ``(low, high, step)`` of per-layer FFN widths.
        head_dim: per-head width.
        group: query heads per KV group.
        kv_heads: KV-group counts to sample.
        attn_prob: probability that a layer after the first keeps attention (layer 0 always does).
    """

    vocab_size: int = 84
    widths: tuple[int, ...] = (64, 96, 128, 160, 192, 224, 256)
    max_layers: int = 8
    ffn_range: tuple[int, int, int] = (128, 1024, 64)
    head_dim: int = 32
    group: int = 2
    kv_heads: tuple[int, ...] = (1, 2)
    attn_prob: float = 0.5

    def sample(self, generator: torch.Generator, max_seq_len: int = 1024) -> FlashLMConfig:
        """One random architecture."""

        def pick(options: Sequence[int]) -> int:
            return int(options[int(torch.randint(len(options), (1,), generator=generator))])

        n_layers = pick(range(1, self.max_layers + 1))
        low, high, step = self.ffn_range
        ffn = tuple(pick(range(low, high + 1, step)) for _ in range(n_layers))
        attn = (True,) + tuple(bool(torch.rand(1, generator=generator) < self.attn_prob) for _ in range(n_layers - 1))
        kv = pick(self.kv_heads)
        return FlashLMConfig(
            self.vocab_size, pick(self.widths), kv * self.group, kv, self.head_dim, ffn, attn, max_seq_len=max_seq_len
        )


def reference_arch(vocab_size: int = 84) -> FlashLMConfig:
    """The fixed model re-measured in every chunk to detect drift."""
    return FlashLMConfig.uniform(vocab_size, 128, 4, 4, 2, 384, head_dim=32)


def skip_series_archs(vocab_size: int = 84) -> dict[str, FlashLMConfig]:
    """Attention-skipping series of spec A4: L=4, d=192, ffn=512, with 4, 2 and 1 attention layers."""
    base = FlashLMConfig.uniform(vocab_size, 192, 4, 6, 3, 512, head_dim=32)
    on, off = True, False
    masks = {"attn_4of4": (on, on, on, on), "attn_2of4": (on, off, on, off), "attn_1of4": (on, off, off, off)}
    return {name: FlashLMConfig.from_dict({**base.to_dict(), "attn": mask}) for name, mask in masks.items()}


def measure_archs(
    archs: dict[str, FlashLMConfig],
    keys: Sequence[str],
    *,
    reference: FlashLMConfig,
    chunk: int = 4,
    warmup: int = 3,
    reps: int = 30,
    stat: Stat = "min",
    log: Callable[[str], None] = print,
) -> tuple[dict[str, dict[str, float]], list[dict[str, float]]]:
    """Measure ``archs`` on ExecuTorch in chunks, each interleaved with the reference model.

    Returns ``(name -> key -> ms, [reference key -> ms per chunk])``.
    """
    torch.manual_seed(0)
    ref_model = FlashLM(reference, "matmul").eval()
    ref_calls = {f"__ref__/{k}": _call(ref_model, k) for k in keys}
    names, results, drift = list(archs), {}, []
    for start in range(0, len(names), chunk):
        calls = dict(ref_calls)
        for name in names[start : start + chunk]:
            model = FlashLM(archs[name], "matmul").eval()
            calls.update({f"{name}/{k}": _call(model, k) for k in keys})
        timings = interleaved_timings(calls, warmup=warmup, reps=reps, stat=stat)
        for label, ms in timings.items():
            name, key = label.rsplit("/", 1)
            if name != "__ref__":
                results.setdefault(name, {})[key] = ms
        drift.append({k: timings[f"__ref__/{k}"] for k in keys})
        log(f"measured {min(start + chunk, len(names))}/{len(names)}; reference {drift[-1]}")
    return results, drift


def _call(model: FlashLM, key: str) -> Callable[[], object]:
    parsed = LatencyKey.parse(key)
    fn, _ = latency_callable(model, mode=parsed.mode, seq_len=parsed.seq_len, backend="executorch")
    return fn


def collect_dataset(
    n: int,
    *,
    seed: int = 0,
    space: LatencySpace | None = None,
    keys: Sequence[str] = DEFAULT_KEYS,
    reps: int = 30,
    warmup: int = 3,
    with_skip_series: bool = True,
    chunk: int = 4,
) -> dict[str, Any]:
    """Sample ``n`` architectures and measure them (and the attention-skipping series); a JSON-ready dict."""
    from thrifty.core.deploy import set_executorch_threads

    set_executorch_threads(1)
    space = space or LatencySpace()
    gen = torch.Generator().manual_seed(seed)
    archs = {f"cfg{i:03d}": space.sample(gen) for i in range(n)}
    reference = reference_arch(space.vocab_size)
    measured, drift = measure_archs(archs, keys, reference=reference, reps=reps, warmup=warmup, chunk=chunk)
    data: dict[str, Any] = {
        "protocol": {
            "backend": "executorch-xnnpack",
            "threads": 1,
            "stat": "min",
            "reps": reps,
            "warmup": warmup,
            "interleaved": True,
            "seed": seed,
            "chunk": chunk,
            "space": space.__dict__,
        },
        "env": env_info("cpu"),
        "reference": {"arch": reference.to_dict(), "per_chunk_ms": drift},
        "records": [{"name": k, "arch": archs[k].to_dict(), "ms": measured[k]} for k in archs],
    }
    if with_skip_series:
        skip = skip_series_archs(space.vocab_size)
        skip_ms, skip_drift = measure_archs(
            skip, SKIP_KEYS, reference=reference, chunk=len(skip), reps=reps, warmup=warmup
        )
        data["skip_series"] = [{"name": k, "arch": skip[k].to_dict(), "ms": skip_ms[k]} for k in skip]
        data["reference"]["skip_chunk_ms"] = skip_drift
    return data


@dataclass
class LatencyDataset:
    """Architectures and their measured latencies (``key -> (N,) ms``), plus the drift record."""

    archs: list[FlashLMConfig]
    ms: dict[str, np.ndarray]
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path = DATASET_PATH, *, drift_correct: bool = True) -> LatencyDataset:
        """Read a dataset JSON.

        With ``drift_correct``, every chunk's latencies are scaled by ``ref_median / ref_chunk`` (per key),
        the reference model's latency in that chunk relative to its median over chunks, so that a chunk
        measured while the machine was busier is brought back to the common level.
        """
        raw = json.loads(Path(path).read_text())
        records = raw["records"]
        if not records:
            raise ValueError(f"path: expected a dataset with records, got none in {path}")
        archs = [FlashLMConfig.from_dict(r["arch"]) for r in records]
        keys = sorted(set.intersection(*(set(r["ms"]) for r in records)))
        ms = {k: np.array([r["ms"][k] for r in records], dtype=np.float64) for k in keys}
        chunks = raw.get("reference", {}).get("per_chunk_ms", [])
        if drift_correct and chunks:
            size = raw.get("protocol", {}).get("chunk", -(-len(records) // len(chunks)))
            for k in (k for k in keys if all(k in c for c in chunks)):
                ref = np.array([c[k] for c in chunks])
                scale = np.median(ref) / ref
                ms[k] = ms[k] * scale[np.minimum(np.arange(len(records)) // size, len(chunks) - 1)]
        return cls(archs, ms, raw)

    def drift(self) -> dict[str, float]:
        """``max / min`` of the reference model's latency across chunks, per key (1.0 = no drift)."""
        chunks = self.raw.get("reference", {}).get("per_chunk_ms", [])
        if not chunks:
            return {}
        return {k: max(c[k] for c in chunks) / min(c[k] for c in chunks) for k in chunks[0]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Re-measure the flashnas latency dataset on this machine.")
    parser.add_argument("--n", type=int, default=24, help="number of sampled architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DATASET_PATH)
    parser.add_argument("--no-skip-series", action="store_true")
    args = parser.parse_args(argv)
    data = collect_dataset(
        args.n, seed=args.seed, reps=args.reps, warmup=args.warmup, with_skip_series=not args.no_skip_series
    )
    write_json_atomic(args.out, data)
    print(f"wrote {len(data['records'])} records to {args.out}")


if __name__ == "__main__":
    main()
