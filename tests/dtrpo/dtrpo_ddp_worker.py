"""Trains a tiny policy with DTRPOTrainer through core's loop; run plainly or under torchrun.

Usage: python dtrpo_ddp_worker.py OUT.pt STRATEGY   (rank 0 saves the final parameters to OUT.pt)
"""

from __future__ import annotations

import copy
import sys

import torch

from thrifty.core.distributed import current, init_from_env
from thrifty.core.train import TrainConfig
from thrifty.dtrpo import DiffusionLMConfig, DTRPOEstimator, DTRPOTrainer, MaskedDiffusionLM, PreferencePairs


def main(out_path: str, strategy: str) -> None:
    torch.set_num_threads(1)
    info = init_from_env("cpu")
    torch.manual_seed(0)
    policy = MaskedDiffusionLM(DiffusionLMConfig(vocab_size=7, mask_id=6, dim=16, n_layers=1, n_heads=2))
    ref = copy.deepcopy(policy)
    init = {k: v.detach().clone() for k, v in policy.named_parameters()}
    g = torch.Generator().manual_seed(1)
    pairs = PreferencePairs(
        torch.randint(0, 6, (12, 3), generator=g),
        torch.randint(0, 6, (12, 4), generator=g),
        torch.randint(0, 6, (12, 4), generator=g),
    )
    trainer = DTRPOTrainer(policy, ref, DTRPOEstimator(2, 6, 2, estimator="rao_blackwell"), beta=0.5, nll_weight=0.5)
    cfg = TrainConfig(steps=4, lr=0.05, strategy=strategy)
    result = trainer.train(pairs, cfg, batch_size=8, generator=torch.Generator().manual_seed(2))
    if current().is_main:
        params = {k: v.detach() for k, v in policy.named_parameters()}
        torch.save({"params": params, "losses": result.losses, "world_size": info.world_size, "init": init}, out_path)
    if info.world_size > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
