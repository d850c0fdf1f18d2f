"""Latency: physical features of an architecture, the measurement harness, and the latency model.

Protocol (spec A4): threads pinned to 1, warm-ups, the minimum (or 10th percentile) of >= 30 runs,
configurations measured interleaved (round-robin, so slow drift hits all alike), and a fixed
reference model re-measured with every chunk to detect drift.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.model import FlashLM, PrefillExport, StaticKVDecoder

Mode = Literal["prefill", "decode"]
Stat = Literal["min", "p10", "median"]
FEATURE_NAMES = ("ffn_gmac", "proj_gmac", "attn_core_gmac", "head_gmac", "layers", "kv_layers")


def arch_features(cfg: FlashLMConfig, mode: Mode, seq_len: int) -> np.ndarray:
    """Physical features of one forward call, in the order of :data:`FEATURE_NAMES`.

    Prefill processes ``seq_len`` tokens; decode processes one token against a ``seq_len`` KV cache.
    MACs: FFN ``3 d f`` per token, projections ``2 d (H + Hkv) D`` per token in attention layers,
    attention core ``2 S H D`` per token (``S`` = keys attended; the matmul path computes all ``T``
    keys of the causal square), head ``V d``.
    """
    if mode not in ("prefill", "decode"):
        raise ValueError(f"mode: expected 'prefill' or 'decode', got {mode!r}")
    tokens = seq_len if mode == "prefill" else 1
    n_attn = sum(cfg.attn)
    ffn = tokens * sum(3 * cfg.d_model * f for f in cfg.ffn)
    proj = tokens * n_attn * 2 * cfg.d_model * (cfg.n_heads + cfg.n_kv_heads) * cfg.head_dim
    core = tokens * n_attn * 2 * seq_len * cfg.n_heads * cfg.head_dim
    head = tokens * cfg.vocab_size * cfg.d_model
    return np.array([ffn / 1e9, proj / 1e9, core / 1e9, head / 1e9, cfg.n_layers, n_attn], dtype=np.float64)


def total_gmacs(cfg: FlashLMConfig, mode: Mode, seq_len: int) -> float:
    """The FLOPs proxy: all MACs of one call, in GMAC."""
    return float(arch_features(cfg, mode, seq_len)[:4].sum())


def param_count(cfg: FlashLMConfig) -> int:
    """The parameters proxy (tied head counted once)."""
    attn = 2 * cfg.d_model * (cfg.n_heads + cfg.n_kv_heads) * cfg.head_dim + cfg.d_model
    per_layer = [3 * cfg.d_model * f + cfg.d_model + (attn if a else 0) for f, a in zip(cfg.ffn, cfg.attn, strict=True)]
    return sum(per_layer) + cfg.vocab_size * cfg.d_model + cfg.d_model


def reduce_times(times_ms: Sequence[float], stat: Stat) -> float:
    """``min``, 10th percentile (``p10``) or ``median`` of the per-run times."""
    if stat == "min":
        return float(min(times_ms))
    if stat == "p10":
        return float(np.percentile(times_ms, 10))
    if stat == "median":
        return float(np.median(times_ms))
    raise ValueError(f"stat: expected 'min', 'p10' or 'median', got {stat!r}")


def interleaved_times(
    calls: dict[str, Callable[[], object]], *, warmup: int = 3, reps: int = 30
) -> dict[str, list[float]]:
    """Run every call ``reps`` times round-robin (after ``warmup`` calls each); ``name -> [ms, ...]``.

    Round-robin order means slow drift of the machine hits every configuration alike.
    """
    if reps < 1 or warmup < 0:
        raise ValueError(f"reps, warmup: expected reps >= 1 and warmup >= 0, got {reps}, {warmup}")
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def interleaved_timings(
    calls: dict[str, Callable[[], object]], *, warmup: int = 3, reps: int = 30, stat: Stat = "min"
) -> dict[str, float]:
    """:func:`interleaved_times` reduced by ``stat``: ``name -> ms``."""
    return {name: reduce_times(t, stat) for name, t in interleaved_times(calls, warmup=warmup, reps=reps).items()}


def latency_callable(
    model: FlashLM,
    *,
    mode: Mode,
    seq_len: int,
    backend: str = "executorch",
    check: bool = True,
    cache: str | Path | None = None,
) -> tuple[Callable[[], object], float]:
    """A zero-argument call that runs one prefill or one decode step, and its ``.pte`` size in MB.

    Decode runs at the last cache position (a full ``seq_len`` cache). ``backend`` is ``"executorch"``
    (XNNPACK, delegation checked when ``check``) or ``"eager"`` (PyTorch, ``no_grad``, matmul path).
    ``cache``: a directory where lowered programs are kept by graph and weights (see ``lower_to_executorch``).
    """
    from thrifty.core.deploy import (
        DECODE_ALLOWED,
        PREFILL_ALLOWED,
        ExecuTorchRunner,
        check_delegation,
        lower_to_executorch,
    )

    if model.attn_impl != "matmul":  # the fused SDPA path does not lower to XNNPACK: use a matmul twin
        model = copy.deepcopy(model)
        model.attn_impl = "matmul"
    device = model.embed.weight.device
    if mode == "prefill":
        module: torch.nn.Module = PrefillExport(model, seq_len)
        inputs: tuple[Tensor, ...] = (torch.zeros(1, seq_len, dtype=torch.long, device=device),)
    elif mode == "decode":
        module = StaticKVDecoder(model, seq_len)
        inputs = (
            torch.zeros(1, 1, dtype=torch.long, device=device),
            torch.tensor([seq_len - 1], dtype=torch.long, device=device),
        )
    else:
        raise ValueError(f"mode: expected 'prefill' or 'decode', got {mode!r}")
    module = module.eval()
    if backend == "eager":

        def run_eager() -> object:
            with torch.no_grad():
                return module(*inputs)

        return run_eager, 0.0
    if backend != "executorch":
        raise ValueError(f"backend: expected 'executorch' or 'eager', got {backend!r}")
    program = lower_to_executorch(module.cpu(), tuple(t.cpu() for t in inputs), cache=cache)
    if check:
        check_delegation(program, PREFILL_ALLOWED if mode == "prefill" else DECODE_ALLOWED)
    runner = ExecuTorchRunner(program)
    cpu_inputs = tuple(t.cpu() for t in inputs)
    return (lambda: runner(*cpu_inputs)), program.size_mb


def measure_latency(
    model: FlashLM,
    *,
    mode: Mode = "prefill",
    seq_len: int,
    backend: str = "executorch",
    warmup: int = 3,
    reps: int = 30,
    threads: int = 1,
    stat: Stat = "min",
) -> float:
    """Latency in ms of one prefill of ``seq_len`` tokens, or of one decode step at KV length ``seq_len``."""
    _pin_threads(threads, backend)
    fn, _ = latency_callable(model, mode=mode, seq_len=seq_len, backend=backend)
    return interleaved_timings({"m": fn}, warmup=warmup, reps=reps, stat=stat)["m"]


def _pin_threads(threads: int, backend: str) -> None:
    torch.set_num_threads(threads)
    if backend == "executorch":
        from thrifty.core.deploy import set_executorch_threads

        set_executorch_threads(threads)


@dataclass(frozen=True)
class LatencyKey:
    """One measured quantity: ``mode`` at ``seq_len`` (prefill length or decode KV length)."""

    mode: Mode
    seq_len: int

    @property
    def name(self) -> str:
        return f"{self.mode}_{self.seq_len}"

    @classmethod
    def parse(cls, name: str) -> LatencyKey:
        mode, _, length = name.rpartition("_")
        if mode not in ("prefill", "decode") or not length.isdigit():
            raise ValueError(f"name: expected 'prefill_<T>' or 'decode_<S>', got {name!r}")
        return cls(mode, int(length))  # type: ignore[arg-type]


def dense_gmacs_per_token(cfg: FlashLMConfig) -> float:
    """The FLOPs proxy of the usual ``6 N D`` accounting: matmul MACs per token, attention core excluded."""
    return float(arch_features(cfg, "prefill", 1)[[0, 1, 3]].sum())
