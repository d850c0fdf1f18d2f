"""Trains a small MLP with thrifty's loop; run plainly or under torchrun. Used by test_dist_parity.

Usage: python ddp_worker.py OUT.pt STRATEGY   (rank 0 saves the final parameters to OUT.pt)
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from thrifty.core.distributed import current, init_from_env
from thrifty.core.train import TrainConfig, train


def main(out_path: str, strategy: str) -> None:
    torch.set_num_threads(1)
    info = init_from_env("cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    g = torch.Generator().manual_seed(7)
    xs = torch.randn(6, 8, 4, generator=g)  # 6 global batches of 8 samples
    w_true = torch.randn(4, 1, generator=g)

    def batch_fn(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return xs[step], torch.sin(xs[step] @ w_true)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    cfg = TrainConfig(steps=6, lr=0.05, warmup_steps=2, weight_decay=0.1, grad_clip=0.5, strategy=strategy)
    result = train(model, loss_fn, batch_fn, cfg)
    params = {
        name: p.detach().full_tensor() if hasattr(p, "full_tensor") else p.detach()
        for name, p in model.named_parameters()
    }
    if current().is_main:
        torch.save({"params": params, "losses": result.losses, "world_size": info.world_size}, out_path)
    if info.world_size > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
