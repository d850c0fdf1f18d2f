"""Output-layer pruning (both conventions), the unsafe score, KD loss and threshold calibration."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.guard.distill import distill_loss, distill_loss_reference
from thrifty.guard.metrics import binary_metrics
from thrifty.guard.model import (
    PrunedLMHead,
    answer_logits,
    calibrate_threshold,
    prune_output_layer,
    unsafe_score,
    unsafe_score_reference,
)


def _lm() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(TransformerLMConfig(vocab_size=29, dim=8, n_layers=1, n_heads=2, tie_embeddings=False))


def test_pruned_head_keeps_argmax_and_remaps_ids() -> None:
    head = torch.nn.Linear(8, 29, bias=False)
    keep = [3, 17, 5, 28, 0]
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(1))
    full = head(x)
    expanded, remapped = PrunedLMHead(head, keep), PrunedLMHead(head, keep, expand_to_vocab=False)
    out, small = expanded(x), remapped(x)
    assert out.shape == (200, 29) and small.shape == (200, 5)
    torch.testing.assert_close(out[:, keep], full[:, keep], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out[:, keep], small, rtol=1e-6, atol=1e-6)
    assert bool((out[:, [i for i in range(29) if i not in keep]] == -1e4).all())
    kept_argmax = torch.isin(full.argmax(-1), torch.tensor(keep))
    assert kept_argmax.any()
    assert torch.equal(out.argmax(-1)[kept_argmax], full.argmax(-1)[kept_argmax])
    mapped = torch.tensor([remapped.token_map[int(i)] for i in small.argmax(-1)])
    assert torch.equal(mapped, out.argmax(-1))
    assert remapped.token_map == dict(enumerate(keep))


def test_prune_output_layer_rejects_tied_heads_and_missing_answer_tokens() -> None:
    with pytest.raises(ValueError, match="token map misses answer token ids \\[7\\]"):
        prune_output_layer(_lm(), [1, 2], required_ids=[1, 7])
    tied = TransformerLM(TransformerLMConfig(vocab_size=29, dim=8, n_layers=1, n_heads=2))
    with pytest.raises(ValueError, match="model: expected an untied head"):
        prune_output_layer(tied, [1])
    with pytest.raises(ValueError, match="keep_ids: expected distinct ids"):
        PrunedLMHead(torch.nn.Linear(8, 29), [1, 1])


def test_unsafe_score_equals_reference_and_answer_position() -> None:
    logits = torch.randn(4, 6, 29, generator=torch.Generator().manual_seed(2)) * 5
    lengths = torch.tensor([6, 1, 3, 4])
    first = answer_logits(logits, lengths)
    assert torch.equal(first[2], logits[2, 2])
    torch.testing.assert_close(unsafe_score(first, 3, 7), unsafe_score_reference(first, 3, 7))
    shifted = first.clone()
    shifted[:, 11] += 100.0  # other tokens do not enter the two-way softmax
    torch.testing.assert_close(unsafe_score(shifted, 3, 7), unsafe_score(first, 3, 7))


@pytest.mark.parametrize("restrict", [None, [0, 4, 9]])
def test_distill_loss_equals_reference_values_and_gradients(restrict: list[int] | None) -> None:
    gen = torch.Generator().manual_seed(3)
    s = torch.randn(7, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randn(7, 11, generator=gen, dtype=torch.float64)
    labels = torch.tensor([4, -100, 9, 0, -100, 4, 9])
    fast = distill_loss(s, t, labels, alpha=0.3, tau=2.0, restrict_ids=restrict)
    slow = distill_loss_reference(s, t, labels, alpha=0.3, tau=2.0, restrict_ids=restrict)
    torch.testing.assert_close(fast.double(), slow)
    (g_fast,) = torch.autograd.grad(fast, s)
    (g_slow,) = torch.autograd.grad(slow, s)
    torch.testing.assert_close(g_fast.double(), g_slow)
    with pytest.raises(ValueError, match="alpha: expected a weight in \\[0, 1\\]"):
        distill_loss(s, t, labels, alpha=1.5)
    with pytest.raises(ValueError, match="labels: expected at least one position"):
        distill_loss(s, t, torch.full((7,), -100))


def test_binary_metrics_and_calibration() -> None:
    pred = torch.tensor([1, 1, 0, 0, 1, 0], dtype=torch.bool)
    gold = torch.tensor([1, 0, 0, 1, 1, 0], dtype=torch.bool)
    m = binary_metrics(pred, gold)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["FPR"] == pytest.approx(1 / 3) and m["F1"] == pytest.approx(2 / 3)
    scores = torch.tensor([0.9, 0.2, 0.1, 0.3, 0.8, 0.25])
    assert calibrate_threshold(scores, gold) == pytest.approx(0.3)  # threshold 0.3 separates perfectly
