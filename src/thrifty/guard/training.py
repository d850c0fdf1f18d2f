"""Batches of guard examples, the CE / KD fine-tuning loss and the per-stage moderation metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.guard.data import GuardExample
from thrifty.guard.distill import distill_loss
from thrifty.guard.metrics import binary_metrics
from thrifty.guard.model import answer_logits, unsafe_score
from thrifty.guard.tokens import GuardTokenizer

IGNORE = -100


@dataclass
class GuardBatch:
    """Right-padded prompt + answer ids.

    Attributes:
        ids: ``(N, L)`` token ids (pad after the answer).
        labels: ``(N, L)`` next-token targets at answer positions, ``-100`` elsewhere.
        lengths: ``(N,)`` prompt lengths (the first answer token is predicted at ``lengths - 1``).
        unsafe: ``(N,)`` bool gold label; ``category``: ``(N,)`` id of the first category number (or -1).
        hard_negative: ``(N,)`` bool.
    """

    ids: Tensor
    labels: Tensor
    lengths: Tensor
    unsafe: Tensor
    category: Tensor
    hard_negative: Tensor

    def to(self, device: torch.device) -> GuardBatch:
        return GuardBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def take(self, index: Tensor) -> GuardBatch:
        return GuardBatch(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def __len__(self) -> int:
        return self.ids.shape[0]


def encode_examples(examples: Sequence[GuardExample], tok: GuardTokenizer, max_len: int | None = None) -> GuardBatch:
    """Encode ``examples`` (user messages) as prompt + answer; ``max_len`` pads (and must fit) every row."""
    rows, labels, lengths, cats = [], [], [], []
    for ex in examples:
        prompt, answer = tok.encode_prompt([("User", ex.text)]), tok.encode_answer(ex.verdict)
        rows.append(prompt + answer)
        labels.append([IGNORE] * (len(prompt) - 1) + answer + [IGNORE])
        lengths.append(len(prompt))
        cats.append(answer[3] if not ex.verdict.safe else -1)  # unsafe \n S <number>
    width = max(len(r) for r in rows) if max_len is None else max_len
    if max(len(r) for r in rows) > width:
        raise ValueError(f"max_len: expected >= the longest example ({max(len(r) for r in rows)}), got {width}")
    ids = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
    lab = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        lab[i, : len(label)] = torch.tensor(label)
    return GuardBatch(
        ids,
        lab,
        torch.tensor(lengths),
        torch.tensor([not ex.verdict.safe for ex in examples]),
        torch.tensor(cats),
        torch.tensor([ex.hard_negative for ex in examples]),
    )


def guard_loss(
    model: nn.Module,
    ids: Tensor,
    labels: Tensor,
    *,
    teacher: nn.Module | None = None,
    alpha: float = 0.5,
    tau: float = 1.0,
    restrict_ids: Sequence[int] | None = None,
) -> Tensor:
    """CE on the answer tokens of ``ids (B, L)`` / ``labels (B, L)``, or :func:`distill_loss` against ``teacher``."""
    logits = model(ids).flatten(0, 1)
    labels = labels.flatten()
    if teacher is None:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE)
    with torch.no_grad():
        t_logits = teacher(ids).flatten(0, 1)
    return distill_loss(logits, t_logits, labels, alpha=alpha, tau=tau, restrict_ids=restrict_ids)


@torch.no_grad()
def first_answer_outputs(
    forward: Callable[[Tensor], Tensor], batch: GuardBatch, chunk: int = 256
) -> tuple[Tensor, Tensor]:
    """``(first answer logits (N, V), category-position logits (N, V))`` by teacher forcing, in chunks."""
    firsts, cats = [], []
    for start in range(0, len(batch), chunk):
        part = batch.take(torch.arange(start, min(start + chunk, len(batch))))
        logits = forward(part.ids)
        firsts.append(answer_logits(logits, part.lengths))
        cats.append(answer_logits(logits, (part.lengths + 3).clamp(max=part.ids.shape[1])))  # after "unsafe \n S"
    return torch.cat(firsts), torch.cat(cats)


def moderation_metrics(
    forward: Callable[[Tensor], Tensor], batch: GuardBatch, tok: GuardTokenizer, threshold: float = 0.5
) -> dict[str, float]:
    """F1 / FPR (unsafe positive) overall, FPR on hard negatives, and first-category accuracy.

    Category accuracy is teacher-forced **[recon]**: on gold-unsafe examples, the argmax over the number
    tokens after ``unsafe \\n S`` must be the first gold category.
    """
    first, cat_logits = first_answer_outputs(forward, batch)
    score = unsafe_score(first, tok.safe_id, tok.unsafe_id).cpu()
    pred = score >= threshold
    gold, hard = batch.unsafe.cpu(), batch.hard_negative.cpu()
    overall = binary_metrics(pred, gold)
    numbers = torch.tensor([tok.ids[str(i)] for i in range(1, 14)])
    cat_pred = numbers[cat_logits.cpu()[:, numbers].argmax(-1)]
    unsafe_rows = gold.nonzero().flatten()
    cat_acc = (
        float((cat_pred[unsafe_rows] == batch.category.cpu()[unsafe_rows]).float().mean()) if len(unsafe_rows) else 0.0
    )
    return {
        "F1": overall["F1"],
        "FPR": overall["FPR"],
        "FPR_hard": float(pred[hard].float().mean()) if bool(hard.any()) else 0.0,
        "category_acc": cat_acc,
    }
