"""Slow, obviously-correct forms of the dTRPO pieces, for tests.

* :func:`block_diffusion_mask_bruteforce`: the BD3-LM mask from its definition, entry by entry.
* :func:`per_block_logits`: ``N_B`` separate forwards on ``[c ; y_<b ; x~_b]`` (what one two-copy
  forward must equal).
* :func:`trajectory_logratio`: step-by-step replay of a recorded unmasking order, one sequence at a time.
* :func:`order_averaged_logratio`: the trajectory log-ratio averaged over *all* unmasking orders, by
  enumeration (what dTRPO's estimators are unbiased for).
* :func:`sampler_trajectory_logprob`: the sampler's full probability of one trajectory, schedule term ``q``
  included, for random and (one token per step) low-confidence remasking.

Token probabilities are normalised over the sampler's vocabulary, i.e. without ``[MASK]``.

Shapes: ``P`` prompt length, ``L`` response length, ``Bs`` block size, ``K`` steps per block.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from thrifty.dtrpo.model import block_causal_mask
from thrifty.dtrpo.sampler import num_transfer_tokens


def block_diffusion_mask_bruteforce(n_prompt: int, n_resp: int, block: int) -> Tensor:
    """``(P+2L, P+2L)`` bool: the prompt is a clean block seen by all; noisy q sees noisy q and clean < q;
    clean q sees clean <= q."""
    size = n_prompt + 2 * n_resp
    out = torch.zeros(size, size, dtype=torch.bool)

    def describe(pos: int) -> tuple[str, int]:
        if pos < n_prompt:
            return "prompt", -1
        if pos < n_prompt + n_resp:
            return "noisy", (pos - n_prompt) // block
        return "clean", (pos - n_prompt - n_resp) // block

    for i in range(size):
        q_kind, q_blk = describe(i)
        for j in range(size):
            k_kind, k_blk = describe(j)
            if k_kind == "prompt":
                out[i, j] = True
            elif q_kind == "noisy" and k_kind == "noisy":
                out[i, j] = q_blk == k_blk
            elif q_kind == "noisy" and k_kind == "clean":
                out[i, j] = k_blk < q_blk
            elif q_kind == "clean" and k_kind == "clean":
                out[i, j] = k_blk <= q_blk
    return out


def _canvas_logits(model: nn.Module, prompt: Tensor, resp_part: Tensor, block: int) -> Tensor:
    """Logits of the response part of the canvas ``[c ; resp_part]`` with the block-causal mask."""
    canvas = torch.cat((prompt, resp_part), dim=1)
    mask = block_causal_mask(prompt.shape[1], resp_part.shape[1], block, canvas.device)
    return model(canvas, attn_mask=mask)[:, prompt.shape[1] :]


def per_block_logits(model: nn.Module, prompt: Tensor, noisy: Tensor, clean: Tensor, block: int) -> Tensor:
    """For each block ``b``, the logits of ``x~_b`` from a forward on ``[c ; y_<b ; x~_b]``; ``(B, L, V)``."""
    outs = []
    for b in range(noisy.shape[1] // block):
        part = torch.cat((clean[:, : b * block], noisy[:, b * block : (b + 1) * block]), dim=1)
        outs.append(_canvas_logits(model, prompt, part, block)[:, b * block :])
    return torch.cat(outs, dim=1)


def _sampler_logp(model: nn.Module, prompt: Tensor, state: Tensor, block: int, mask_id: int) -> Tensor:
    """``(B, L, V)`` log-probabilities of the canvas ``[c ; state]`` over the vocabulary without ``[MASK]``."""
    logits = _canvas_logits(model, prompt, state, block).double()
    return logits.masked_fill(torch.arange(logits.shape[-1]) == mask_id, float("-inf")).log_softmax(-1)


def _token_logp(model: nn.Module, prompt: Tensor, state: Tensor, resp: Tensor, block: int, mask_id: int) -> Tensor:
    return _sampler_logp(model, prompt, state, block, mask_id).gather(-1, resp[..., None]).squeeze(-1)


@torch.no_grad()
def trajectory_logratio(
    policy: nn.Module,
    ref: nn.Module,
    prompt: Tensor,
    resp: Tensor,
    order: Tensor,
    block: int,
    steps_per_block: int,
    mask_id: int,
) -> Tensor:
    """``sum_b sum_s sum_{i in S_s} [log p_pol(y_i | x^{b,s-1}) - log p_ref(y_i | x^{b,s-1})]``; ``(B,)``.

    Args:
        prompt: ``(B, P)``; resp: ``(B, L)``; order: ``(B, L)`` global step ``b*K + s`` of each token.
    """
    out = torch.zeros(resp.shape[0], dtype=torch.float64, device=resp.device)
    for row in range(resp.shape[0]):
        c, y, o = prompt[row : row + 1], resp[row : row + 1], order[row]
        for g in range(resp.shape[1] // block * steps_per_block):
            b = g // steps_per_block
            state = y.clone()
            state[0, b * block :] = mask_id  # the current block's later steps and every later block
            done = (o < g) & (torch.arange(y.shape[1], device=y.device) >= b * block)
            state[0, done] = y[0, done]
            new = o == g
            r = _token_logp(policy, c, state, y, block, mask_id) - _token_logp(ref, c, state, y, block, mask_id)
            out[row] += r[0, new].double().sum()
    return out


@torch.no_grad()
def order_averaged_logratio(
    policy: nn.Module, ref: nn.Module, prompt: Tensor, resp: Tensor, block: int, steps_per_block: int, mask_id: int
) -> Tensor:
    """The trajectory log-ratio averaged over all ``Bs!`` unmasking orders of every block; ``(B,)``.

    Orders of different blocks are independent (each block is conditioned on the clean blocks before it),
    so the average is the sum over blocks of the per-block averages.
    """
    counts = num_transfer_tokens(torch.tensor([block]), steps_per_block)[0].tolist()
    total = torch.zeros(resp.shape[0], dtype=torch.float64, device=resp.device)
    for row in range(resp.shape[0]):
        c, y = prompt[row : row + 1], resp[row : row + 1]
        for b in range(resp.shape[1] // block):
            lo = b * block
            cache: dict[frozenset[int], Tensor] = {}

            def ratio(
                masked: frozenset[int],
                c: Tensor = c,
                y: Tensor = y,
                lo: int = lo,
                cache: dict[frozenset[int], Tensor] = cache,
            ) -> Tensor:
                if masked not in cache:
                    state = y.clone()
                    state[0, lo + block :] = mask_id
                    state[0, [lo + i for i in masked]] = mask_id
                    pol, rf = (_token_logp(mdl, c, state, y, block, mask_id) for mdl in (policy, ref))
                    diff = pol - rf
                    cache[masked] = diff[0, lo : lo + block].double()
                return cache[masked]

            values = []
            for perm in itertools.permutations(range(block)):
                value, start = torch.zeros((), dtype=torch.float64), 0
                for c_s in counts:
                    masked = frozenset(perm[start:])
                    value = value + ratio(masked)[list(perm[start : start + c_s])].sum()
                    start += c_s
                values.append(value)
            total[row] += torch.stack(values).mean()
    return total


def _schedule_logq(logp: Tensor, resp: Tensor, new: Tensor, cur: Tensor, remasking: str) -> Tensor:
    """``log q`` of one step per row: which positions the sampler unmasked (``new``) among ``cur``; ``(B,)``.

    ``random``: ``c`` of the ``m`` masked positions uniformly, ``q = 1 / C(m, c)``. ``low_confidence`` (one
    token per step): the chosen ``(i, v)`` has the highest ``p_j(x0_j)`` with ``x0_j ~ p_j`` independent,
    so ``P(i, v) = p_i(v) prod_{j != i} F_j(p_i(v))`` with ``F_j(c) = sum_u p_j(u) [p_j(u) < c]``; the
    ``p_i(v)`` factor is the token part, so ``q = prod_{j != i} F_j(p_i(v))``.
    """
    m, c = cur.sum(1), new.sum(1)
    if remasking == "random":
        return -torch.tensor(
            [math.log(math.comb(int(a), int(b))) for a, b in zip(m, c, strict=True)], dtype=torch.float64
        )
    if bool((c != 1).any()):
        raise ValueError("remasking: the low_confidence closed form needs exactly one token per step")
    probs = logp.exp()  # (B, L, V)
    chosen = new.double().argmax(1)
    conf = probs.gather(-1, resp[..., None]).squeeze(-1).gather(1, chosen[:, None])  # (B, 1)
    below = (probs * (probs < conf[..., None])).sum(-1)  # (B, L): F_j(p_i(v))
    others = cur & ~new
    return torch.where(others, below.clamp_min(1e-300).log(), torch.zeros_like(below)).sum(1)


@torch.no_grad()
def sampler_trajectory_logprob(
    model: nn.Module,
    prompt: Tensor,
    resp: Tensor,
    order: Tensor,
    block: int,
    steps_per_block: int,
    mask_id: int,
    remasking: str = "random",
) -> Tensor:
    """``log P(sample(..., temperature=1, remasking) returns (resp, order))``, step by step; ``(B,)``.

    Each step contributes ``log q(S_s | x^{s-1}) + sum_{i in S_s} log p(y_i | x^{s-1})`` (see
    :func:`_schedule_logq` for ``q``), with ``p`` normalised without ``[MASK]`` as the sampler draws.

    Args:
        prompt: ``(B, P)``; resp: ``(B, L)``; order: ``(B, L)`` global step ``b*K + s`` of each token.
        remasking: ``"random"`` or ``"low_confidence"`` (one token per step only).
    """
    if remasking not in ("random", "low_confidence"):
        raise ValueError(f"remasking: expected 'random' or 'low_confidence', got {remasking!r}")
    pos = torch.arange(resp.shape[1])
    out = torch.zeros(resp.shape[0], dtype=torch.float64)
    for g in range(resp.shape[1] // block * steps_per_block):
        blk = g // steps_per_block
        later = (pos[None] >= (blk + 1) * block) | ((pos[None] >= blk * block) & (order >= g))
        state = resp.masked_fill(later, mask_id)
        logp = _sampler_logp(model, prompt, state, block, mask_id)
        new = order == g
        cur = later & (pos[None] < (blk + 1) * block)
        token = logp.gather(-1, resp[..., None]).squeeze(-1)
        out += (token * new).sum(1) + _schedule_logq(logp, resp, new, cur, remasking)
    return out
