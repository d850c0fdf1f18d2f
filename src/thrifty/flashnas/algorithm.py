"""Weight inheritance: importance scores on calibration batches and subnet extraction.

Minitron-style activation importance [inf] (MobileLLM-Flash only says "pruned backbone with inherited
weights"; the scores below are the spec's inferred design). Block influence, neuron importance,
``top_indices`` and the MLP slicing are shared with other methods in :mod:`thrifty.core.prune`:

- layers: Block Influence ``BI_l = 1 - E_{b,t} cos(h_l, h_{l+1})`` (ShortGPT); keep the top ``L'``
  in their original order;
- FFN neurons: ``E |silu(x W_gate)_j (x W_up)_j|``;
- heads: the mean L2 norm of each head's output; KV groups are scored by the sum over their heads and
  kept whole;
- residual channels: ``E |RMSNorm(x)_c|`` summed over every norm of the model. The same channel
  indices are sliced in the embedding, every norm, every projection and the tied head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thrifty.core.prune import ImportanceAccumulator, slice_swiglu, top_indices
from thrifty.flashnas.config import SubnetConfig
from thrifty.flashnas.model import FlashLM


@dataclass
class ImportanceScores:
    """Activation importance of a backbone, collected once.

    Attributes:
        block_influence: ``(L,)`` ShortGPT block influence (0 for a block that changes nothing).
        ffn: per layer, ``(F_l,)`` mean ``|silu(gate) * up|`` per neuron.
        heads: ``(L, H)`` mean L2 norm of each head's output (zeros for FFN-only layers).
        channels: ``(C,)`` mean ``|RMSNorm(x)_c|`` summed over all norms.
    """

    block_influence: Tensor
    ffn: list[Tensor]
    heads: Tensor
    channels: Tensor

    def kv_groups(self, group: int) -> Tensor:
        """``(L, Hkv)``: the head scores summed over each GQA group of ``group`` query heads."""
        n_layers, n_heads = self.heads.shape
        return self.heads.view(n_layers, n_heads // group, group).sum(-1)

    @classmethod
    @torch.no_grad()
    def collect(cls, model: FlashLM, batches: Iterable[Tensor]) -> ImportanceScores:
        """Run ``model`` on ``batches`` (each ``(B, T)`` token ids) with forward hooks and average."""
        cfg = model.cfg
        acc = _Accumulators(cfg.n_layers, cfg.n_heads, cfg.d_model, list(cfg.ffn))
        handles = acc.shared.attach(model.blocks)
        for i, block in enumerate(model.blocks):
            handles.append(block.mlp_norm.register_forward_hook(acc.channel_hook()))
            if block.has_attn:
                handles.append(block.attn.o_proj.register_forward_hook(acc.head_hook(i, cfg.n_heads)))
                handles.append(block.attn_norm.register_forward_hook(acc.channel_hook()))
        handles.append(model.norm.register_forward_hook(acc.channel_hook()))
        was_training = model.training
        model.eval()
        try:
            for idx in batches:
                model(idx)
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)
        if acc.shared.tokens == 0:
            raise ValueError("batches: expected at least one calibration batch")
        n = acc.shared.tokens
        return cls(acc.shared.block_influence(), acc.shared.neuron_importance(), acc.heads / n, acc.channels / n)


class _Accumulators:
    """Running sums filled by the forward hooks of :meth:`ImportanceScores.collect` (float64).

    Block influence and FFN neuron importance come from :class:`thrifty.core.prune.ImportanceAccumulator`.
    """

    def __init__(self, n_layers: int, n_heads: int, d_model: int, ffn: list[int]) -> None:
        self.shared = ImportanceAccumulator(n_layers, ffn, "mean_abs")
        self.heads = torch.zeros(n_layers, n_heads, dtype=torch.float64)
        self.channels = torch.zeros(d_model, dtype=torch.float64)

    def head_hook(self, layer: int, n_heads: int):  # noqa: ANN201
        def hook(_module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
            per_head = inputs[0].unflatten(-1, (n_heads, -1)).double().norm(dim=-1)  # (B, T, H)
            self.heads[layer] += per_head.flatten(0, -2).sum(0).cpu()

        return hook

    def channel_hook(self):  # noqa: ANN201
        def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
            self.channels += output.abs().double().flatten(0, -2).sum(0).cpu()

        return hook


def make_subnet(
    model: FlashLM,
    scores: ImportanceScores,
    *,
    n_layers: int,
    d_model: int,
    ffn: int | Sequence[int],
    n_kv_heads: int,
    attn: Sequence[bool] | None = None,
) -> SubnetConfig:
    """A :class:`SubnetConfig` keeping the ``n_layers`` blocks of highest block influence (in order).

    ``ffn`` is one width for all kept layers or one per kept layer; ``attn`` defaults to the backbone's.
    """
    cfg = model.cfg
    if not 0 < n_layers <= cfg.n_layers:
        raise ValueError(f"n_layers: expected 1..{cfg.n_layers} (the backbone depth), got {n_layers}")
    layers = tuple(int(i) for i in top_indices(scores.block_influence, n_layers))
    widths = (ffn,) * n_layers if isinstance(ffn, int) else tuple(ffn)
    group = cfg.n_heads // cfg.n_kv_heads
    mask = tuple(cfg.attn[i] for i in layers) if attn is None else tuple(bool(a) for a in attn)
    sub = SubnetConfig(layers, d_model, widths, n_kv_heads * group, n_kv_heads, mask)
    sub.check(cfg)
    return sub


@torch.no_grad()
def extract_subnet(backbone: FlashLM, cfg: SubnetConfig, scores: ImportanceScores) -> FlashLM:
    """Build the subnet ``cfg`` with weights sliced from ``backbone`` by importance.

    The same residual-channel indices are cut everywhere (embedding = tied head, every norm, every
    in-projection column and out-projection row); query heads go with their whole KV group.

    Raises:
        ValueError: if ``cfg`` does not fit in the backbone (more layers, width, heads; bad groups).
    """
    arch = cfg.arch(backbone.cfg)
    sub = FlashLM(arch, backbone.attn_impl).to(backbone.embed.weight.device, backbone.embed.weight.dtype)
    ch = top_indices(scores.channels, cfg.d_model).to(backbone.embed.weight.device)
    sub.embed.weight.copy_(backbone.embed.weight[:, ch])
    sub.norm.weight.copy_(backbone.norm.weight[ch])
    group = backbone.cfg.n_heads // backbone.cfg.n_kv_heads
    kv_scores = scores.kv_groups(group)
    for new_block, layer, width in zip(sub.blocks, cfg.layers, cfg.ffn, strict=True):
        old = backbone.blocks[layer]
        neurons = top_indices(scores.ffn[layer], width).to(ch.device)
        new_block.mlp_norm.weight.copy_(old.mlp_norm.weight[ch])
        slice_swiglu(new_block.mlp, old.mlp, neurons, ch)
        if new_block.has_attn:
            _copy_attention(new_block, old, ch, top_indices(kv_scores[layer], cfg.n_kv_heads).to(ch.device), group)
    return sub


def _copy_attention(new_block: nn.Module, old_block: nn.Module, ch: Tensor, groups: Tensor, group: int) -> None:
    """Slice q/k/v/o of one layer to the kept channels and whole KV groups."""
    hd = old_block.attn.head_dim
    kv_rows = (groups[:, None] * hd + torch.arange(hd, device=ch.device)).flatten()
    heads = (groups[:, None] * group + torch.arange(group, device=ch.device)).flatten()
    q_rows = (heads[:, None] * hd + torch.arange(hd, device=ch.device)).flatten()
    new, old = new_block.attn, old_block.attn
    new_block.attn_norm.weight.copy_(old_block.attn_norm.weight[ch])
    new.q_proj.weight.copy_(old.q_proj.weight[q_rows][:, ch])
    new.k_proj.weight.copy_(old.k_proj.weight[kv_rows][:, ch])
    new.v_proj.weight.copy_(old.v_proj.weight[kv_rows][:, ch])
    new.o_proj.weight.copy_(old.o_proj.weight[ch][:, q_rows])


def subnet_masks(backbone: FlashLM, cfg: SubnetConfig, scores: ImportanceScores) -> dict[str, object]:
    """Keyword masks for :func:`thrifty.flashnas.reference.reference_forward` equivalent to ``cfg``."""
    bcfg = backbone.cfg
    dev = backbone.embed.weight.device
    channel_mask = torch.zeros(bcfg.d_model, device=dev)
    channel_mask[top_indices(scores.channels, cfg.d_model)] = 1.0
    kv_scores = scores.kv_groups(bcfg.n_heads // bcfg.n_kv_heads)
    kv_masks, ffn_masks = {}, {}
    for layer, width in zip(cfg.layers, cfg.ffn, strict=True):
        kv_masks[layer] = torch.zeros(bcfg.n_kv_heads, device=dev).index_fill(
            0, top_indices(kv_scores[layer], cfg.n_kv_heads).to(dev), 1.0
        )
        ffn_masks[layer] = torch.zeros(bcfg.ffn[layer], device=dev).index_fill(
            0, top_indices(scores.ffn[layer], width).to(dev), 1.0
        )
    dtype = backbone.embed.weight.dtype
    return {
        "layers": cfg.layers,
        "attn": cfg.attn,
        "channel_mask": channel_mask.to(dtype),
        "kv_group_masks": {k: v.to(dtype) for k, v in kv_masks.items()},
        "ffn_masks": {k: v.to(dtype) for k, v in ffn_masks.items()},
    }
