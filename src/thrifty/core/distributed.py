"""torch.distributed plumbing for runs launched by ``torchrun`` (gloo on CPU, nccl on CUDA).

Nothing here is a home-made engine: the model is wrapped in torch's own DDP (or FSDP2's
``fully_shard``); this module only reads the torchrun environment and splits global batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size of this process (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device: torch.device | str = "cpu") -> DistInfo:
    """Initialise the default process group from the torchrun environment, once.

    Uses gloo on CPU and nccl on CUDA. Returns ``DistInfo()`` when not launched by torchrun.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    if not launched_by_torchrun():
        return DistInfo()
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    info = current()
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    return info


def current() -> DistInfo:
    """The rank and world size of the initialised group (or a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    return current().is_main


def print0(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only."""
    if is_main():
        print(*args, **kwargs)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over ranks (identity when not distributed)."""
    info = current()
    if info.world_size == 1:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def shard_batch(batch: Any, info: DistInfo) -> Any:
    """This rank's contiguous slice (dim 0) of a global batch of tensors (nested tuples/lists/dicts).

    Raises:
        ValueError: if the batch size does not divide evenly by the world size (unequal shards would
            weight samples differently from single-process training).
    """
    if info.world_size == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        if batch.shape[0] % info.world_size:
            raise ValueError(
                f"batch: expected a batch size divisible by world_size={info.world_size}, got {batch.shape[0]}"
            )
        per = batch.shape[0] // info.world_size
        return batch[info.rank * per : (info.rank + 1) * per]
    if isinstance(batch, dict):
        return {k: shard_batch(v, info) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard_batch(v, info) for v in batch)
    return batch


def wrap_model(model: nn.Module, strategy: Literal["none", "ddp", "fsdp2"] = "ddp") -> nn.Module:
    """Wrap ``model`` for data-parallel training in the current group (no-op for one process)."""
    if current().world_size == 1 or strategy == "none":
        return model
    if strategy == "ddp":
        device_ids = None
        if next(model.parameters()).device.type == "cuda":
            device_ids = [torch.cuda.current_device()]
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        fully_shard(model)
        return model
    raise ValueError(f"strategy: expected 'none', 'ddp' or 'fsdp2', got {strategy!r}")
