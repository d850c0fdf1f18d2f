"""Assertion helpers for reference-equivalence tests and seeded fixtures."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch


def relative_rms_error(ref: torch.Tensor, out: torch.Tensor) -> float:
    """``rms(out - ref) / rms(ref)`` in float64."""
    ref64, out64 = ref.detach().double(), out.detach().double()
    err = (out64 - ref64).pow(2).mean().sqrt()
    base = ref64.pow(2).mean().sqrt()
    return float(err / base) if base > 0 else float(err)


def assert_close_ratio(
    name: str, ref: torch.Tensor, out: torch.Tensor, ratio: float = 5e-3, atol: float = 1e-6
) -> None:
    """Assert ``out`` matches ``ref``: equal shapes, and max abs diff <= atol or relative RMS error <= ratio.

    The message gives the max and mean absolute difference and the ratio, so a failure tells how far off.
    """
    if ref.shape != out.shape:
        raise AssertionError(f"{name}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    if not torch.isfinite(out).all():
        raise AssertionError(f"{name}: non-finite values in output")
    diff = (out.detach().double() - ref.detach().double()).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    if max_diff <= atol:
        return
    err = relative_rms_error(ref, out)
    if err > ratio:
        raise AssertionError(
            f"{name}: relative RMS error {err:.3e} > {ratio:.1e} (max diff {max_diff:.3e}, "
            f"mean diff {float(diff.mean()):.3e})"
        )


def sqnr_db(ref: torch.Tensor, out: torch.Tensor) -> float:
    """Signal-to-quantisation-noise ratio ``10 log10(||ref||^2 / ||ref - out||^2)`` in dB."""
    ref64, out64 = ref.detach().double(), out.detach().double()
    noise = (ref64 - out64).pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(ref64.pow(2).sum() / noise))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_script(script: str | Path, args: list[str], *, cwd: str | Path, nproc: int = 1, timeout: float = 180.0) -> None:
    """Run ``script`` with ``args`` in a fresh interpreter, under ``torchrun`` when ``nproc > 1``.

    Each process gets one intra-op thread. Raises AssertionError with the tail of stderr on failure.
    """
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*launcher, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"{Path(script).name} (nproc={nproc}) failed:\n{proc.stderr[-3000:]}")
