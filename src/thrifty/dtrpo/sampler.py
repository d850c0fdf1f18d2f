"""LLaDA's semi-autoregressive sampler for masked-diffusion LMs (spec A2), with block attention.

Shapes: ``B`` batch, ``P`` prompt length, ``L`` generated length, ``V`` vocabulary, ``K`` steps per block.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from thrifty.dtrpo.model import _check_layout, block_causal_mask, uniform

Remasking = Literal["low_confidence", "random"]


def num_transfer_tokens(mask_count: Tensor, steps: int) -> Tensor:
    """Even schedule: how many tokens each of ``steps`` steps unmasks; ``(B,) -> (B, steps)``.

    ``base = m // steps`` per step, and the first ``m % steps`` steps unmask one more (LLaDA's
    ``get_num_transfer_tokens``).
    """
    if steps <= 0:
        raise ValueError(f"steps: expected a positive number of steps, got {steps}")
    base = (mask_count // steps)[:, None]
    rem = (mask_count % steps)[:, None]
    extra = torch.arange(steps, device=mask_count.device)[None, :] < rem
    return base + extra.long()


def gumbel_argmax(logits: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    """``argmax(exp(logits) / (-log u)^temperature)`` in float64 (LLaDA's Gumbel trick); ``(..., V) -> (...)``.

    Evaluated in log space, ``logits - temperature * log(-log u)``, which has the same argmax and does not
    overflow. ``temperature = 0`` is plain argmax (deterministic); ``1`` samples from ``softmax(logits)``.
    """
    if temperature < 0:
        raise ValueError(f"temperature: expected a non-negative float, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    u = uniform(tuple(logits.shape), generator, logits.device).clamp_min(1e-300)
    return (logits.double() - temperature * torch.log(-torch.log(u))).argmax(-1)


def _unmask_top(conf: Tensor, count: Tensor) -> Tensor:
    """Bool ``(B, N)``: the ``count[b]`` highest-confidence positions of each row (``-inf`` never chosen)."""
    order = conf.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(conf.shape[1], device=conf.device).expand_as(order))
    return (rank < count[:, None]) & torch.isfinite(conf)


@torch.no_grad()
def sample(
    model: nn.Module,
    prompt: Tensor,
    gen_len: int,
    block_len: int,
    steps: int,
    *,
    temperature: float = 0.0,
    remasking: Remasking = "low_confidence",
    generator: torch.Generator | None = None,
    return_order: bool = False,
    block_attention: bool = True,
) -> Tensor | tuple[Tensor, Tensor]:
    """Generate ``gen_len`` tokens block by block, unmasking ``steps / num_blocks`` times per block.

    At each step the model predicts every position, draws ``x0`` by the Gumbel trick, scores each masked
    position of the current block by the softmax probability of ``x0`` (``low_confidence``) or by uniform
    noise (``random``), and unmasks the top ones (per-step counts from :func:`num_transfer_tokens`).
    Unmasked tokens are never remasked; the ``[MASK]`` id itself is never produced.

    Args:
        model: a :class:`~thrifty.dtrpo.model.MaskedDiffusionLM`.
        prompt: ``(B, P)`` prompt ids.
        gen_len: response length ``L``.
        block_len: block size, dividing ``gen_len``.
        steps: total denoising steps, a multiple of the number of blocks.
        temperature: Gumbel temperature; 0 is deterministic.
        remasking: ``"low_confidence"`` or ``"random"``.
        generator: random stream (Gumbel and random remasking).
        return_order: also return the step at which each response token was unmasked.
        block_attention: use the block-causal canvas mask (a block-diffusion model); False for plain
            LLaDA full attention.

    Returns:
        ``(B, P+L)`` ids, and with ``return_order`` the ``(B, L)`` global step index (``b*K + s``).
    """
    _check_layout(prompt.shape[1], gen_len, block_len)
    n_blocks = gen_len // block_len
    if steps <= 0 or steps % n_blocks:
        raise ValueError(f"steps: expected a positive multiple of the number of blocks {n_blocks}, got {steps}")
    if remasking not in ("low_confidence", "random"):
        raise ValueError(f"remasking: expected 'low_confidence' or 'random', got {remasking!r}")
    per_block = steps // n_blocks
    mask_id = model.mask_id
    b, n_p = prompt.shape
    x = torch.cat((prompt, prompt.new_full((b, gen_len), mask_id)), dim=1)
    order = prompt.new_full((b, gen_len), -1)
    attn = block_causal_mask(n_p, gen_len, block_len, prompt.device) if block_attention else None
    for blk in range(n_blocks):
        lo, hi = n_p + blk * block_len, n_p + (blk + 1) * block_len
        counts = num_transfer_tokens((x[:, lo:hi] == mask_id).sum(1), per_block)
        for step in range(per_block):
            logits = model(x, attn_mask=attn).double()
            logits[..., mask_id] = float("-inf")
            x0 = gumbel_argmax(logits, temperature, generator)
            if remasking == "low_confidence":
                conf = logits.softmax(-1).gather(-1, x0[..., None]).squeeze(-1)
            else:
                conf = uniform((b, x.shape[1]), generator, x.device)
            in_block = torch.zeros_like(x, dtype=torch.bool)
            in_block[:, lo:hi] = True
            conf = conf.masked_fill(~(in_block & (x == mask_id)), float("-inf"))
            chosen = _unmask_top(conf, counts[:, step])
            x = torch.where(chosen, x0, x)
            order = torch.where(chosen[:, n_p:], blk * per_block + step, order)
    return (x, order) if return_order else x
