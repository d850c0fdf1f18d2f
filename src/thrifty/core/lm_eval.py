"""Language-model losses and evaluation shared by the LM methods."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.data.text import random_token_batch


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats: ``logits (B, T, V)``, ``targets (B, T)``."""
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"targets: expected shape {tuple(logits.shape[:2])}, got {tuple(targets.shape)}")
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def lm_loss_fn(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """``loss_fn`` for :func:`thrifty.core.train.train` on ``(inputs, targets)`` batches of a causal LM."""
    inputs, targets = batch
    return next_token_loss(model(inputs), targets)


@torch.no_grad()
def evaluate_bits_per_token(
    model: nn.Module,
    ids: Tensor,
    *,
    seq_len: int,
    batch: int,
    n_batches: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
) -> float:
    """Mean next-token loss in bits over ``n_batches`` fixed random windows of ``ids`` (seeded).

    ``forward(model, inputs) -> logits`` defaults to ``model(inputs)``.
    """
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(n_batches):
        x, y = random_token_batch(ids, batch, seq_len, g)
        x, y = x.to(device), y.to(device)
        logits = forward(model, x) if forward is not None else model(x)
        total += float(next_token_loss(logits, y))
    model.train(was_training)
    return total / n_batches / math.log(2)
