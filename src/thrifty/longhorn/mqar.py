"""Multi-query associative recall (MQAR), written from Zoology's ``multiquery_ar`` (spec §5.A, issue #18).

One example of length L: ``kv`` key-value pairs ``k1 v1 k2 v2 ...`` first (keys drawn without replacement
from ``[1, V/2)``, values without replacement from ``[V/2, V)``), then every key is queried once at an
*even* offset of the query region, the offsets drawn with power-law gaps ``p(i) ~ a i^(a-1)`` without
replacement. The model must emit the paired value at the query position. Every other slot holds a random
token from ``[0, V)``. Labels are -100 off the query positions. Zoology asserts ``V > L`` and ``4 kv <= L``.

The plateau heuristics (:func:`plateau_heuristics`) are what a model scores without doing the lookup, so a
model is informative only above them.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100


def check_mqar_args(vocab: int, seq_len: int, kv: int) -> None:
    """Raise ``ValueError`` naming the argument unless Zoology's assertions hold (``V > L``, ``4 kv <= L``...)."""
    if seq_len <= 0 or seq_len % 2:
        raise ValueError(f"seq_len: expected a positive even length, got {seq_len}")
    if vocab <= seq_len:
        raise ValueError(f"vocab: expected vocab > seq_len={seq_len} (Zoology), got {vocab}")
    if kv <= 0 or 4 * kv > seq_len:
        raise ValueError(f"kv: expected 1 <= kv and 4 * kv <= seq_len={seq_len}, got kv={kv}")
    if kv >= vocab // 2:
        raise ValueError(f"kv: expected fewer pairs than vocab // 2 = {vocab // 2}, got {kv}")


def _sample_without_replacement(n: int, population: int, size: int, generator: torch.Generator | None) -> Tensor:
    """``(n, size)`` distinct draws from ``range(population)`` per row."""
    return torch.rand(n, population, generator=generator).argsort(dim=1)[:, :size]


def mqar_batch(
    n: int,
    *,
    vocab: int,
    seq_len: int,
    kv: int,
    power_a: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``n`` Zoology MQAR examples.

    Args:
        n: examples. vocab: V (> L). seq_len: L (even). kv: pairs per example (``4 kv <= L``).
        power_a: gap exponent ``p(i) ~ a i^(a-1)``. generator: CPU generator for every random draw.

    Returns:
        ``(inputs (n, L) int64, labels (n, L) int64 with -100 off the query positions)``.
    """
    check_mqar_args(vocab, seq_len, kv)
    half, context = vocab // 2, 2 * kv
    keys = _sample_without_replacement(n, half - 1, kv, generator) + 1
    values = _sample_without_replacement(n, vocab - half, kv, generator) + half
    inputs = torch.randint(0, vocab, (n, seq_len), generator=generator)
    labels = torch.full((n, seq_len), IGNORE_INDEX, dtype=torch.long)
    inputs[:, 0:context:2], inputs[:, 1:context:2] = keys, values
    space = (seq_len - context) // 2  # query slots at even offsets of the query region
    gaps = torch.arange(1, space + 1, dtype=torch.float64)
    weights = (power_a * gaps ** (power_a - 1)).expand(n, space)
    slots = context + 2 * torch.multinomial(weights, kv, replacement=False, generator=generator)  # (n, kv)
    inputs.scatter_(1, slots, keys)  # the i-th drawn slot queries the i-th key (slots are in random order)
    labels.scatter_(1, slots, values)
    return inputs, labels


def mqar_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of query positions whose argmax equals the value: logits ``(B, L, V)``, labels ``(B, L)``."""
    mask = labels != IGNORE_INDEX
    if not bool(mask.any()):
        raise ValueError("labels: expected at least one query position (labels != -100)")
    return float((logits.argmax(-1)[mask] == labels[mask]).float().mean())


def plateau_heuristics(
    inputs: Tensor, labels: Tensor, *, vocab: int, kv: int, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Accuracy of the two no-lookup strategies on a test set (``inputs``, ``labels`` ``(n, L)``).

    - ``random_context_value``: emit one of the example's ``kv`` values, uniformly (about 1/kv).
    - ``most_recent_value`` [inf: the issue names "most recent occurrence"; read here as recency]: emit the
      most recent value-range token (``>= V/2``) before the query position, wherever it occurs.

    Returns:
        ``{"random_context_value": acc, "most_recent_value": acc}``.
    """
    rows, cols = (labels != IGNORE_INDEX).nonzero(as_tuple=True)
    answers = labels[rows, cols]
    values = inputs[:, 1 : 2 * kv : 2]  # (n, kv)
    pick = torch.randint(0, kv, (rows.numel(),), generator=generator)
    random_value = values[rows, pick]
    is_value = inputs >= vocab // 2
    positions = torch.arange(inputs.shape[1]).expand_as(inputs)
    last_value_pos = torch.where(is_value, positions, -1).cummax(dim=1).values  # latest value position <= t
    before = last_value_pos[rows, cols - 1]  # strictly before the query
    recent = torch.where(before >= 0, inputs[rows, before.clamp(min=0)], -1)
    return {
        "random_context_value": float((random_value == answers).float().mean()),
        "most_recent_value": float((recent == answers).float().mean()),
    }
