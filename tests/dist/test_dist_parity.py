"""Two gloo processes under torchrun train exactly like one process on the same global batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.dist
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_process_training_matches_single_process(tmp_path: Path, strategy: str) -> None:
    single, multi = tmp_path / "single.pt", tmp_path / "multi.pt"
    _run([sys.executable, str(WORKER), str(single), "none"], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(WORKER), str(multi), strategy], tmp_path)
    a, b = torch.load(single), torch.load(multi)
    assert a["world_size"] == 1 and b["world_size"] == 2
    for name, p in a["params"].items():
        torch.testing.assert_close(b["params"][name], p, rtol=0, atol=1e-6, msg=f"parameter {name} differs")
    torch.testing.assert_close(torch.tensor(b["losses"]), torch.tensor(a["losses"]), rtol=1e-6, atol=1e-6)
    # the parameters did move, so the comparison is not between two untouched initialisations
    torch.manual_seed(0)
    init = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    assert not torch.allclose(init[0].weight, a["params"]["0.weight"])
