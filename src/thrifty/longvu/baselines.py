"""Baselines behind LongVU's interface and budget: sampling, pooling, random drop, DyCoke, ToMe, VisionZip."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.longvu.ops import enforce_budget
from thrifty.longvu.tokens import TokenSet, check_video, pool_grid


def _even_indices(n_total: int, n_pick: int, device: torch.device) -> Tensor:
    """``n_pick`` indices at the centres of equal segments of ``0..n_total-1``."""
    return (torch.arange(n_pick, device=device) * 2 + 1) * n_total // (2 * n_pick)


@dataclass
class UniformFrames:
    """Uniform frame sampling: ``budget // (H*W)`` evenly spaced frames at full resolution."""

    name: str = "uniform_frames"

    def __call__(self, tokens: Tensor, budget: int, query=None, features=None, generator=None) -> TokenSet:
        side = check_video(tokens, budget, query)
        n_pick = max(1, min(tokens.shape[0], budget // tokens.shape[1]))
        frames = _even_indices(tokens.shape[0], n_pick, tokens.device)
        return enforce_budget(TokenSet.from_frames(tokens[frames], frames, side, side), budget)


@dataclass
class UniformPool:
    """Uniform spatial pooling of every frame to the finest grid that fits (frames subsampled if even 1x1 won't)."""

    name: str = "uniform_pool"

    def __call__(self, tokens: Tensor, budget: int, query=None, features=None, generator=None) -> TokenSet:
        side = check_video(tokens, budget, query)
        n_frames = tokens.shape[0]
        fits = [s for s in range(side, 0, -1) if side % s == 0 and n_frames * s * s <= budget]
        pooled_side = fits[0] if fits else 1
        frames = torch.arange(n_frames, device=tokens.device)
        if not fits:
            frames = _even_indices(n_frames, budget, tokens.device)
        pooled = pool_grid(tokens[frames], pooled_side)
        return TokenSet.from_frames(pooled, frames, pooled_side, side)


@dataclass
class RandomDrop:
    """Keep ``budget`` tokens drawn uniformly without replacement (temporal order kept)."""

    name: str = "random_drop"

    def __call__(self, tokens: Tensor, budget: int, query=None, features=None, generator=None) -> TokenSet:
        side = check_video(tokens, budget, query)
        flat = torch.randperm(tokens.shape[0] * tokens.shape[1], generator=generator)[:budget].sort().values
        flat = flat.to(tokens.device)
        frame_ids, pos_ids = flat // tokens.shape[1], flat % tokens.shape[1]
        return TokenSet(
            tokens[frame_ids, pos_ids],
            frame_ids,
            pos_ids,
            torch.full_like(frame_ids, side),
            torch.ones(budget, device=tokens.device),
        )


@dataclass
class DyCokeKeep:
    """DyCoke-style temporal token merging (TTM) with a fixed keep per group **[recon]**.

    Groups of ``group`` frames; the group's first frame (anchor) is kept whole and every group keeps the
    same number of its other tokens: those least cosine-similar to the anchor at the same position (DyCoke's
    top-k instead of STC's threshold). DyCoke's group is 4; at small budgets the anchors alone would exceed
    the budget, so ``group=None`` picks the smallest group ``>= 4`` whose anchors use at most
    ``anchor_share`` of the budget (the adaptation to a fixed budget is ours).
    """

    group: int | None = None
    anchor_share: float = 0.5
    name: str = "dycoke"

    def _group(self, n_frames: int, n_tok: int, budget: int) -> int:
        if self.group is not None:
            return self.group
        g = 4
        while g < n_frames and -(-n_frames // g) * n_tok > self.anchor_share * budget:
            g += 1
        return g

    def __call__(self, tokens: Tensor, budget: int, query=None, features=None, generator=None) -> TokenSet:
        side = check_video(tokens, budget, query)
        n_frames, n_tok, _ = tokens.shape
        g = self._group(n_frames, n_tok, budget)
        n_groups = -(-n_frames // g)
        frame = torch.arange(n_frames, device=tokens.device)
        anchor = (frame // g) * g
        dissim = 1 - F.cosine_similarity(tokens, tokens[anchor], dim=-1, eps=1e-12)  # (T, P)
        is_anchor = frame == anchor
        per_group = max(0, (budget - int(is_anchor.sum()) * n_tok) // n_groups)
        score = torch.full((n_groups * g, n_tok), float("-inf"), device=tokens.device)
        score[:n_frames] = dissim.masked_fill(is_anchor[:, None], float("-inf"))
        grouped = score.view(n_groups, g * n_tok)
        k = min(per_group, g * n_tok)
        top = grouped.topk(k, dim=1, sorted=False) if k else None
        keep = is_anchor[:, None].expand(-1, n_tok).clone()
        if top is not None:
            flat = (top.indices + torch.arange(n_groups, device=tokens.device)[:, None] * g * n_tok).flatten()
            chosen = flat[torch.isfinite(top.values.flatten())]
            keep.view(-1)[chosen] = True
        frame_ids, pos_ids = keep.nonzero(as_tuple=True)
        out = TokenSet(
            tokens[frame_ids, pos_ids],
            frame_ids,
            pos_ids,
            torch.full_like(frame_ids, side),
            torch.ones(frame_ids.numel(), device=tokens.device),
        )
        return enforce_budget(out, budget)


def bipartite_merge_round(x: Tensor, sizes: Tensor, rep: Tensor, r: int) -> tuple[Tensor, Tensor, Tensor]:
    """One ToMe bipartite soft matching step on token sequences (batched over a leading group dim).

    Tokens alternate into sets A (even) and B (odd); each A token's best B match by cosine is an edge; the
    ``r`` highest-scoring edges (stable, ties to the lower A index) merge their A token into its B token by
    size-weighted averaging. The output is re-sorted by representative (the B token, or the unmerged A token).

    Args:
        x: ``(G, N, D)`` tokens (also the matching metric); ``(N, D)`` is one group.
        sizes: ``(G, N)`` raw tokens each stands for.
        rep: ``(G, N)`` representative raw index of each token (its provenance).
        r: edges to merge per group (capped at ``len(A) = ceil(N / 2)``).

    Returns:
        ``(x', sizes', rep')`` with ``N - r`` tokens per group.
    """
    if x.dim() == 2:
        out = bipartite_merge_round(x[None], sizes[None], rep[None], r)
        return out[0][0], out[1][0], out[2][0]
    a, b = x[:, 0::2], x[:, 1::2]
    if r <= 0 or b.shape[1] == 0:
        return x, sizes, rep
    r = min(r, a.shape[1])
    scores = torch.bmm(F.normalize(a, dim=-1), F.normalize(b, dim=-1).transpose(1, 2))
    best, best_idx = scores.max(dim=-1)
    order = torch.sort(best, dim=1, descending=True, stable=True).indices
    src, unmerged = order[:, :r], order[:, r:]
    dst = best_idx.gather(1, src)
    size_a, size_b = sizes[:, 0::2], sizes[:, 1::2]
    moved = (a * size_a[..., None]).gather(1, src[..., None].expand(-1, -1, x.shape[-1]))
    weighted = (b * size_b[..., None]).scatter_add(1, dst[..., None].expand(-1, -1, x.shape[-1]), moved)
    new_size_b = size_b.scatter_add(1, dst, size_a.gather(1, src))
    keep_a = a.gather(1, unmerged[..., None].expand(-1, -1, x.shape[-1]))
    out_x = torch.cat((keep_a, weighted / new_size_b[..., None]), dim=1)
    out_size = torch.cat((size_a.gather(1, unmerged), new_size_b), dim=1)
    out_rep = torch.cat((rep[:, 0::2].gather(1, unmerged), rep[:, 1::2]), dim=1)
    perm = torch.sort(out_rep, dim=1).indices
    return (
        out_x.gather(1, perm[..., None].expand(-1, -1, x.shape[-1])),
        out_size.gather(1, perm),
        out_rep.gather(1, perm),
    )


def tome_merge(x: Tensor, budget: int) -> tuple[Tensor, Tensor, Tensor]:
    """Repeated :func:`bipartite_merge_round` on ``(G, N, D)`` groups until ``budget`` remain in each group.

    Returns:
        ``(x, sizes, rep)`` of shapes ``(G, budget, D)``, ``(G, budget)``, ``(G, budget)``; ``rep`` indexes
        the group's input tokens.
    """
    groups, n, _ = x.shape
    sizes = torch.ones(groups, n, dtype=x.dtype, device=x.device)
    rep = torch.arange(n, device=x.device).expand(groups, -1)
    while x.shape[1] > budget:
        x, sizes, rep = bipartite_merge_round(x, sizes, rep, x.shape[1] - budget)
    return x, sizes, rep


@dataclass
class ToMeMerge:
    """ToMe bipartite soft matching, repeated until ``budget`` tokens remain, within windows of frames.

    Merged tokens are size-weighted means; :attr:`TokenSet.sizes` carries the sizes so the reader can add
    ``log(size)`` to its attention logits (ToMe's proportional attention, see ``QAModel``). ToMe merges inside
    ViT blocks with attention keys as the metric; here it runs once on the encoder's output tokens, with the
    tokens as the metric (what a drop-in video-LM compressor sees). Matching over a whole video is quadratic in
    its length, so ``window`` consecutive frames are merged at a time, each window keeping its share of the
    same share of the budget **[recon]**; ``window=None`` matches across the whole video.
    """

    window: int | None = 16
    name: str = "tome"

    def __call__(self, tokens: Tensor, budget: int, query=None, features=None, generator=None) -> TokenSet:
        side = check_video(tokens, budget, query)
        n_frames, n_tok, dim = tokens.shape
        window = n_frames if self.window is None else min(self.window, n_frames)
        n_full = n_frames // window
        share = budget * window // n_frames  # per full window; a shorter last window gets its own share
        parts = []
        if share > 0:
            full = tokens[: n_full * window].reshape(n_full, window * n_tok, dim)
            x, sizes, rep = tome_merge(full, share)
            offset = torch.arange(n_full, device=tokens.device)[:, None] * window * n_tok
            parts.append((x.reshape(-1, dim), sizes.flatten(), (rep + offset).flatten()))
        tail_share = budget - n_full * share
        if n_frames % window and tail_share > 0:
            tail = tokens[n_full * window :].reshape(1, -1, dim)
            x, sizes, rep = tome_merge(tail, min(tail_share, tail.shape[1]))
            parts.append((x[0], sizes[0], rep[0] + n_full * window * n_tok))
        x, sizes, rep = (torch.cat(p) for p in zip(*parts, strict=True))
        return TokenSet(x, rep // n_tok, rep % n_tok, torch.full_like(rep, side), sizes)


def frame_saliency(tokens: Tensor) -> Tensor:
    """Attention of each frame's mean token to its tokens, ``softmax(<x, mean> / sqrt(D))`` **[recon]**.

    Stands in for the CLS attention VisionZip reads from the vision tower. ``(T, P, D) -> (T, P)``.
    """
    mean = tokens.mean(1, keepdim=True)
    return torch.softmax((tokens * mean).sum(-1) / tokens.shape[-1] ** 0.5, dim=-1)


@dataclass
class VisionZip:
    """VisionZip: dominant tokens by saliency plus contextual tokens merged from the rest.

    ``round(budget * dominant_share)`` dominant tokens (highest :func:`frame_saliency` over the video, or the
    ``features`` given as ``(T, P)`` saliency); the rest of the budget are contextual targets, uniformly
    spaced among the remaining tokens, each averaged with every remaining token whose most cosine-similar
    target it is. ``dominant_share`` defaults to VisionZip's 54 / 64.
    """

    dominant_share: float = 54 / 64
    name: str = "visionzip"

    def __call__(self, tokens: Tensor, budget: int, query=None, features=None, generator=None) -> TokenSet:
        side = check_video(tokens, budget, query)
        n_tok, dev = tokens.shape[1], tokens.device
        saliency = frame_saliency(tokens) if features is None else features
        if saliency.shape != tokens.shape[:2]:
            raise ValueError(
                f"features: expected (T, P)={tuple(tokens.shape[:2])} saliency, got {tuple(saliency.shape)}"
            )
        x = tokens.reshape(-1, tokens.shape[-1])
        n_dom = min(budget, max(1, round(budget * self.dominant_share)))
        dominant = saliency.flatten().topk(n_dom).indices
        rest_mask = torch.ones(x.shape[0], dtype=torch.bool, device=dev)
        rest_mask[dominant] = False
        rest = rest_mask.nonzero().flatten()
        n_ctx = min(budget - n_dom, rest.numel())
        rep, vals, sizes = dominant, x[dominant], torch.ones(n_dom, dtype=x.dtype, device=dev)
        if n_ctx > 0:
            targets = rest[_even_indices(rest.numel(), n_ctx, dev)]
            assign = (F.normalize(x[rest], dim=-1) @ F.normalize(x[targets], dim=-1).T).argmax(-1)
            assign[torch.searchsorted(rest, targets)] = torch.arange(n_ctx, device=dev)  # a target is its own
            counts = torch.bincount(assign, minlength=n_ctx).to(x.dtype)
            ctx = x.new_zeros(n_ctx, x.shape[1]).index_add(0, assign, x[rest]) / counts[:, None]
            rep, vals, sizes = torch.cat((rep, targets)), torch.cat((vals, ctx)), torch.cat((sizes, counts))
        perm = torch.sort(rep).indices
        rep = rep[perm]
        return TokenSet(vals[perm], rep // n_tok, rep % n_tok, torch.full_like(rep, side), sizes[perm])


BASELINES = {
    "uniform_frames": UniformFrames,
    "uniform_pool": UniformPool,
    "random_drop": RandomDrop,
    "dycoke": DyCokeKeep,
    "tome": ToMeMerge,
    "visionzip": VisionZip,
}
