"""Structured pruning shared by the methods: block influence, MLP neuron importance and slicing.

Minitron/ShortGPT-style activation importance, measured on calibration batches with forward hooks:

- layers: Block Influence ``BI_l = 1 - E_{b,t} cos(h_l, h_{l+1})`` (ShortGPT), averaged over the real
  tokens only (a ``(B, T)`` padding mask removes pad positions from the mean);
- MLP neurons: ``E |a_j|`` (``agg="mean_abs"``) or the root mean square ``sqrt(E a_j^2)``
  (``agg="l2"``, the card's "average L2 norm of activation" **[inf]**: the card does not say over which
  axis), where ``a = silu(x W_gate) * (x W_up)`` is the input of the down projection.

The hooks need only that a model has ``blocks`` (an ``nn.ModuleList`` mapping ``(B, T, C) -> (B, T, C)``)
and that each block has ``mlp.down`` (an ``nn.Linear``), so :class:`thrifty.core.lm.TransformerLM` and
method-specific LMs share them. :func:`prune_depth_width` slices a ``TransformerLM``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from thrifty.core.lm import TransformerLM

Agg = Literal["mean_abs", "l2"]
Batch = Tensor | tuple[Tensor, Tensor]


def top_indices(scores: Tensor, k: int) -> Tensor:
    """The ``k`` highest-scoring indices of ``scores (N,)``, sorted ascending (ties: the lower index wins)."""
    if not 0 < k <= scores.numel():
        raise ValueError(f"k: expected 1..{scores.numel()}, got {k}")
    order = torch.sort(-scores.double(), stable=True).indices[:k]
    return order.sort().values


class ImportanceAccumulator:
    """Running float64 sums of block influence and neuron importance, filled by forward hooks.

    Set :attr:`mask` (``(B, T)`` bool, True = real token) before each forward to leave padding out.
    """

    def __init__(self, n_layers: int, ffn_widths: Sequence[int], agg: Agg = "mean_abs") -> None:
        if agg not in ("mean_abs", "l2"):
            raise ValueError(f"agg: expected 'mean_abs' or 'l2', got {agg!r}")
        self.agg = agg
        self.cos = torch.zeros(n_layers, dtype=torch.float64)
        self.ffn = [torch.zeros(int(f), dtype=torch.float64) for f in ffn_widths]
        self.tokens = 0
        self.mask: Tensor | None = None

    def _weights(self, like: Tensor) -> Tensor:
        """``(B*T,)`` float64 weights: 1 for real tokens, 0 for padding."""
        if self.mask is None:
            return torch.ones(like.shape[:-1].numel(), dtype=torch.float64, device=like.device)
        if self.mask.shape != like.shape[:-1]:
            raise ValueError(f"mask: expected shape {tuple(like.shape[:-1])}, got {tuple(self.mask.shape)}")
        return self.mask.reshape(-1).to(like.device, torch.float64)

    def block_hook(self, layer: int):  # noqa: ANN201 - torch hook signature
        """Forward hook on block ``layer``: adds ``sum cos(input, output)`` over real tokens."""

        def hook(_module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            cos = torch.nn.functional.cosine_similarity(inputs[0], output, dim=-1).double().reshape(-1)
            weights = self._weights(inputs[0])
            self.cos[layer] += (cos * weights).sum().cpu()
            if layer == 0:
                self.tokens += int(weights.sum().item())

        return hook

    def neuron_hook(self, layer: int):  # noqa: ANN201
        """Forward hook on ``blocks[layer].mlp.down``: adds ``sum |a|`` (or ``sum a^2``) per neuron."""

        def hook(_module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
            act = inputs[0].double().flatten(0, -2)
            act = act.abs() if self.agg == "mean_abs" else act.square()
            self.ffn[layer] += (act * self._weights(inputs[0])[:, None]).sum(0).cpu()

        return hook

    def attach(self, blocks: Sequence[nn.Module]) -> list[torch.utils.hooks.RemovableHandle]:
        """Register both hooks on every block (``block`` and ``block.mlp.down``); returns the handles."""
        handles = []
        for i, block in enumerate(blocks):
            handles.append(block.register_forward_hook(self.block_hook(i)))
            handles.append(block.mlp.down.register_forward_hook(self.neuron_hook(i)))
        return handles

    def block_influence(self) -> Tensor:
        """``(L,)`` float64 block influence."""
        self._check()
        return 1.0 - self.cos / self.tokens

    def neuron_importance(self) -> list[Tensor]:
        """Per layer ``(F_l,)`` float64 neuron importance."""
        self._check()
        means = [s / self.tokens for s in self.ffn]
        return means if self.agg == "mean_abs" else [m.sqrt() for m in means]

    def _check(self) -> None:
        if self.tokens == 0:
            raise ValueError("batches: expected at least one calibration batch with a real token")


@dataclass
class Importance:
    """Activation importance of a model. ``block_influence (L,)``; ``ffn``: per layer ``(F_l,)``."""

    block_influence: Tensor
    ffn: list[Tensor]


def _split(batch: Batch) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, tuple):
        ids, mask = batch
        return ids, mask.bool()
    return batch, None


@torch.no_grad()
def collect_importance(model: nn.Module, batches: Iterable[Batch], *, agg: Agg = "mean_abs") -> Importance:
    """Run ``model`` on calibration ``batches`` with hooks; each batch is ``ids (B, T)`` or ``(ids, mask)``.

    ``mask (B, T)`` is True on real tokens; padding is left out of every mean (pad on the right for a
    causal model, so real tokens never attend to padding).
    """
    blocks = model.blocks
    acc = ImportanceAccumulator(len(blocks), [b.mlp.down.in_features for b in blocks], agg)
    handles = acc.attach(blocks)
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            ids, acc.mask = _split(batch)
            model(ids)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return Importance(acc.block_influence(), acc.neuron_importance())


@contextmanager
def only_blocks(model: nn.Module, layers: Sequence[int]) -> Iterator[nn.Module]:
    """Temporarily run ``model`` with only ``blocks[layers]`` (in that order); restores them on exit."""
    full = model.blocks
    model.blocks = nn.ModuleList(full[i] for i in layers)
    try:
        yield model
    finally:
        model.blocks = full


def select_layers(
    model: nn.Module, batches: Sequence[Batch], keep: int, *, iterative_above: float = 0.25
) -> tuple[int, ...]:
    """Indices (ascending) of the ``keep`` blocks of highest block influence.

    When more than ``iterative_above`` of the layers go, the block of lowest BI is removed one at a time
    and the rest re-scored without it (adjacent removals compound, so one-shot scores go stale).
    """
    n_layers = len(model.blocks)
    if not 0 < keep <= n_layers:
        raise ValueError(f"keep: expected 1..{n_layers} (the model depth), got {keep}")
    if n_layers - keep <= iterative_above * n_layers:
        return tuple(int(i) for i in top_indices(collect_importance(model, batches).block_influence, keep))
    kept = list(range(n_layers))
    while len(kept) > keep:
        with only_blocks(model, kept):
            bi = collect_importance(model, batches).block_influence
        kept.pop(int(torch.argmin(bi)))  # argmin returns the first of ties: the lower index goes
    return tuple(kept)


@torch.no_grad()
def slice_swiglu(dst: nn.Module, src: nn.Module, neurons: Tensor, channels: Tensor | None = None) -> None:
    """Copy the ``neurons`` (and residual ``channels``, default all) of a SwiGLU ``src`` into ``dst``."""
    gate, up, down = src.gate.weight[neurons], src.up.weight[neurons], src.down.weight[:, neurons]
    if channels is not None:
        gate, up, down = gate[:, channels], up[:, channels], down[channels]
    dst.gate.weight.copy_(gate)
    dst.up.weight.copy_(up)
    dst.down.weight.copy_(down)


@torch.no_grad()
def prune_depth_width(
    model: TransformerLM, keep_layers: Sequence[int], ffn_dim: int, ffn_scores: Sequence[Tensor]
) -> TransformerLM:
    """A new ``TransformerLM`` with blocks ``keep_layers`` (in order), each MLP sliced to ``ffn_dim`` neurons.

    Args:
        model: the source LM (left unchanged).
        keep_layers: block indices to keep, strictly increasing.
        ffn_dim: hidden width of every kept MLP (its top neurons by ``ffn_scores``, in original order).
        ffn_scores: per source layer, ``(F,)`` neuron importance (e.g. :attr:`Importance.ffn`).

    Raises:
        ValueError: on an empty, unsorted or out-of-range ``keep_layers`` or a too-large ``ffn_dim``.
    """
    cfg, layers = model.cfg, list(keep_layers)
    width = model.blocks[0].mlp.down.in_features
    if not layers or layers != sorted(set(layers)) or not 0 <= layers[0] <= layers[-1] < cfg.n_layers:
        raise ValueError(f"keep_layers: expected increasing indices in 0..{cfg.n_layers - 1}, got {layers}")
    if not 0 < ffn_dim <= width:
        raise ValueError(f"ffn_dim: expected 1..{width} (the source MLP width), got {ffn_dim}")
    device = model.embed.weight.device
    pruned = TransformerLM(cfg.replace(n_layers=len(layers), mlp_hidden=ffn_dim)).to(device, model.embed.weight.dtype)
    pruned.embed.load_state_dict(model.embed.state_dict())
    pruned.norm.load_state_dict(model.norm.state_dict())
    if not cfg.tie_embeddings:
        pruned.head.load_state_dict(model.head.state_dict())
    for new, layer in zip(pruned.blocks, layers, strict=True):
        old = model.blocks[layer]
        for name in ("attn_norm", "attn", "mlp_norm"):
            getattr(new, name).load_state_dict(getattr(old, name).state_dict())
        slice_swiglu(new.mlp, old.mlp, top_indices(ffn_scores[layer], ffn_dim).to(device))
    return pruned
