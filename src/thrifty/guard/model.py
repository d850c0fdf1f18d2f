"""The guard LM (a core ``TransformerLM``), output-layer pruning and the P(unsafe) score.

Two output-pruning conventions [card, code]: the card keeps the K answer-token rows of the head and
expands the K logits back to the vocabulary with a large negative fill; ExecuTorch's ``prune_output_vocab``
returns the K logits with remapped ids and a ``token_map {new_id: old_id}`` stored with the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from thrifty.core.lm import TransformerLM
from thrifty.guard.metrics import binary_metrics


class PrunedLMHead(nn.Module):
    """The rows ``keep_ids`` of an output head.

    Args:
        head: the full ``nn.Linear(C, V)`` head (copied, not shared).
        keep_ids: vocabulary ids to keep; ``token_map[new_id] = keep_ids[new_id]``.
        expand_to_vocab: True -> logits ``(..., V)`` with ``fill`` at pruned ids (the card); False ->
            ``(..., K)`` logits in ``keep_ids`` order (ExecuTorch).
        fill: logit of a pruned id; large and negative, never 0 (0 would out-rank negative real logits).
    """

    def __init__(self, head: nn.Linear, keep_ids: Sequence[int], expand_to_vocab: bool = True, fill: float = -1e4):
        super().__init__()
        vocab = head.out_features
        ids = [int(i) for i in keep_ids]
        if not ids or len(set(ids)) != len(ids) or not all(0 <= i < vocab for i in ids):
            raise ValueError(f"keep_ids: expected distinct ids in 0..{vocab - 1}, got {ids}")
        self.vocab_size, self.expand_to_vocab, self.fill = vocab, expand_to_vocab, float(fill)
        self.linear = nn.Linear(head.in_features, len(ids), bias=head.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(head.weight[ids])
            if head.bias is not None:
                self.linear.bias.copy_(head.bias[ids])
        self.register_buffer("keep_ids", torch.tensor(ids, dtype=torch.long))
        # Expansion as a matmul with a one-hot (K, V) matrix plus a fill bias (x * 1 + 0: the kept logits up
        # to GEMM rounding); it lowers to XNNPACK, unlike an index_put scatter.
        scatter = torch.zeros(len(ids), vocab)
        scatter[torch.arange(len(ids)), self.keep_ids] = 1.0
        bias = torch.full((vocab,), self.fill)
        bias[self.keep_ids] = 0.0
        self.register_buffer("scatter", scatter, persistent=False)
        self.register_buffer("fill_bias", bias, persistent=False)

    @property
    def token_map(self) -> dict[int, int]:
        """``{new_id: old_id}`` (ExecuTorch's convention)."""
        return {new: int(old) for new, old in enumerate(self.keep_ids.tolist())}

    def forward(self, x: Tensor) -> Tensor:
        """``x (..., C)`` -> ``(..., V)`` (expanded) or ``(..., K)``."""
        logits = self.linear(x)
        if not self.expand_to_vocab:
            return logits
        return logits @ self.scatter.to(logits.dtype) + self.fill_bias.to(logits.dtype)


def prune_output_layer(
    model: TransformerLM, keep_ids: Sequence[int], *, required_ids: Sequence[int] = (), expand_to_vocab: bool = True
) -> TransformerLM:
    """Replace ``model.head`` (untied) by a :class:`PrunedLMHead` in place; returns ``model``.

    Raises:
        ValueError: if the head is tied to the embedding, or ``keep_ids`` misses one of ``required_ids``.
    """
    if model.head.weight is model.embed.weight:
        raise ValueError("model: expected an untied head (tie_embeddings=False) to prune the output layer")
    missing = sorted(set(int(i) for i in required_ids) - set(int(i) for i in keep_ids))
    if missing:
        raise ValueError(f"keep_ids: token map misses answer token ids {missing}")
    model.head = PrunedLMHead(model.head, keep_ids, expand_to_vocab=expand_to_vocab)
    return model


def answer_logits(logits: Tensor, lengths: Tensor) -> Tensor:
    """``logits (B, T, V)`` at the first answer position (the last prompt token) -> ``(B, V)``.

    ``lengths (B,)`` are the prompt lengths (prompts right-padded, so the position is ``lengths - 1``).
    """
    index = (lengths - 1).to(logits.device).view(-1, 1, 1).expand(-1, 1, logits.shape[-1])
    return logits.gather(1, index).squeeze(1)


def unsafe_score(logits: Tensor, safe_id: int, unsafe_id: int) -> Tensor:
    """P(unsafe) from first-answer-position ``logits (B, V)``: softmax over the two logits {safe, unsafe}."""
    pair = torch.stack((logits[..., safe_id], logits[..., unsafe_id]), dim=-1).float()
    return torch.softmax(pair, dim=-1)[..., 1]


def unsafe_score_reference(logits: Tensor, safe_id: int, unsafe_id: int) -> Tensor:
    """Slow reference of :func:`unsafe_score`: ``1 / (1 + exp(l_safe - l_unsafe))`` in float64."""
    diff = logits[..., safe_id].double() - logits[..., unsafe_id].double()
    return (1.0 / (1.0 + torch.exp(diff))).float()


def calibrate_threshold(scores: Tensor, labels: Tensor) -> float:
    """The P(unsafe) threshold in ``scores`` maximising F1 (unsafe positive) on a validation split."""
    if scores.shape != labels.shape or scores.numel() == 0:
        raise ValueError(f"scores: expected the non-empty shape of labels {tuple(labels.shape)}")
    candidates = torch.unique(scores.float())
    best, best_f1 = 0.5, -1.0
    for thr in candidates.tolist():
        f1 = binary_metrics(scores >= thr, labels.bool())["F1"]
        if f1 > best_f1:
            best, best_f1 = float(thr), f1
    return best
