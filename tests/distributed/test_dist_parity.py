"""Two gloo processes under torchrun train exactly like one process on the same global batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thrifty.core.testing import run_script

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.dist
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_process_training_matches_single_process(tmp_path: Path, strategy: str) -> None:
    single, multi = tmp_path / "single.pt", tmp_path / "multi.pt"
    run_script(WORKER, [str(single), "none"], cwd=tmp_path)
    run_script(WORKER, [str(multi), strategy], cwd=tmp_path, nproc=2)
    a, b = torch.load(single), torch.load(multi)
    assert a["world_size"] == 1 and b["world_size"] == 2
    for name, p in a["params"].items():
        torch.testing.assert_close(b["params"][name], p, rtol=0, atol=1e-6, msg=f"parameter {name} differs")
    torch.testing.assert_close(torch.tensor(b["losses"]), torch.tensor(a["losses"]), rtol=1e-6, atol=1e-6)
    # the parameters did move, so the comparison is not between two untouched initialisations
    torch.manual_seed(0)
    init = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    assert not torch.allclose(init[0].weight, a["params"]["0.weight"])
