"""Multi-query associative recall (MQAR), written from the Zoology description (spec §5.A).

One example: ``kv`` key-value pairs ``k1 v1 k2 v2 ...`` first, then every key is queried once at a
position drawn with power-law gaps; the model must emit the paired value at the query position. Other
slots hold random tokens. Labels are -100 everywhere except the query positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100


def mqar_batch(
    n: int,
    *,
    vocab: int,
    seq_len: int,
    kv: int,
    power_a: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``n`` MQAR examples.

    Args:
        n: examples. vocab: V (keys from [1, V/2), values from [V/2, V)). seq_len: L.
        kv: key-value pairs per example (needs 3 * kv <= L). power_a: gap exponent ``p(i) ~ a * i^(a-1)``.
        generator: CPU generator for every random draw.

    Returns:
        ``(inputs (n, L) int64, labels (n, L) int64 with -100 off the query positions)``.
    """
    if 3 * kv > seq_len:
        raise ValueError(f"kv: expected 3 * kv <= seq_len={seq_len}, got kv={kv}")
    if kv >= vocab // 2:
        raise ValueError(f"kv: expected fewer pairs than vocab // 2 = {vocab // 2}, got {kv}")
    half = vocab // 2
    # Distinct keys per example: the first kv of a random permutation of [1, V/2).
    keys = torch.rand(n, half - 1, generator=generator).argsort(dim=1)[:, :kv] + 1
    values = torch.randint(half, vocab, (n, kv), generator=generator)
    inputs = torch.randint(1, vocab, (n, seq_len), generator=generator)
    labels = torch.full((n, seq_len), IGNORE_INDEX, dtype=torch.long)
    inputs[:, 0 : 2 * kv : 2], inputs[:, 1 : 2 * kv : 2] = keys, values
    space = seq_len - 2 * kv
    gaps = torch.arange(1, space + 1, dtype=torch.float64)
    weights = (power_a * gaps ** (power_a - 1)).expand(n, space)
    slots = torch.multinomial(weights, kv, replacement=False, generator=generator) + 2 * kv  # (n, kv)
    order = torch.rand(n, kv, generator=generator).argsort(dim=1)  # which key each slot queries
    inputs.scatter_(1, slots, keys.gather(1, order))
    labels.scatter_(1, slots, values.gather(1, order))
    return inputs, labels


def mqar_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of query positions whose argmax equals the value: logits ``(B, L, V)``, labels ``(B, L)``."""
    mask = labels != IGNORE_INDEX
    if not bool(mask.any()):
        raise ValueError("labels: expected at least one query position (labels != -100)")
    return float((logits.argmax(-1)[mask] == labels[mask]).float().mean())
