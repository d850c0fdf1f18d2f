"""LongVU's compression steps, as the official code (``cambrian_arch.py``) does them, vectorised over frames.

1. :func:`temporal_reduce`: windows of 16 frames; a frame survives when its mean cosine similarity to the
   window (self term included) is below ``threshold``; the middle frame of every window always survives.
2. :func:`frame_relevance` / :func:`choose_highres`: raw dot products between each low-res frame and the
   query embedding; the top-``k`` frames that the budget allows are upgraded to full resolution.
3. :func:`spatial_token_reduce`: chunks of 8 frames; the first frame is kept whole, a token of a later frame
   survives when its cosine to the same position of the chunk's first frame is below ``threshold``.
4. :func:`enforce_budget`: cut ``ceil(excess / n_chunks)`` tokens from the end of every chunk, then truncate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from thrifty.longvu.tokens import TokenSet, grid_side


def _check_window(n_frames: int, window: int, name: str) -> None:
    if window <= 0:
        raise ValueError(f"window: expected a positive integer, got {window}")
    if n_frames < window:
        raise ValueError(f"{name}: expected at least one window of {window} frames, got {n_frames} frames")


def unit_frame_features(feats: Tensor, center: bool = True) -> Tensor:
    """Flatten each frame's features, mean-centre over frames (optional), and L2-normalise.

    A frame whose centred vector vanishes (it equals the video mean, e.g. a video of identical frames) gets
    the same fixed unit vector as every such frame, so duplicates stay duplicates under the cosine.

    Args:
        feats: ``(T, ...)`` any per-frame features.
        center: subtract the mean frame first (the spec's pitfall: raw cosines are all close to 1).

    Returns:
        ``(T, C)`` unit vectors (float32, or float64 for float64 input).
    """
    dtype = torch.promote_types(feats.dtype, torch.float32)
    flat = feats.reshape(feats.shape[0], -1).to(dtype)
    if center:
        flat = flat - flat.mean(0, keepdim=True)
    norms = flat.norm(dim=1, keepdim=True)
    scale = feats.reshape(feats.shape[0], -1).to(dtype).norm(dim=1).max().clamp_min(1e-30)
    degenerate = norms <= 1e-6 * scale
    fallback = torch.full_like(flat, 1.0 / math.sqrt(flat.shape[1]))
    return torch.where(degenerate, fallback, flat / norms.clamp_min(1e-30))


def temporal_reduce(
    feats: Tensor,
    window: int = 16,
    threshold: float = 0.83,
    keep_middle: bool = True,
    center: bool = True,
    max_frames: int | None = 400,
) -> Tensor:
    """Frames that survive LongVU's temporal (DINO) step.

    Args:
        feats: ``(T, ...)`` per-frame features (flattened per frame, like the official patch grid).
        window: non-overlapping window length (16 in the code; the last window may be shorter).
        threshold: keep a frame iff its mean similarity is below this (0.83 for DINOv2; recalibrate).
        keep_middle: force the middle frame ``n // 2`` of each window (``n`` its length) to survive.
        center: mean-centre the features over frames before the cosine.
        max_frames: uniformly subsample to at most this many survivors (the code's 400 cap); ``None``: no cap.

    Returns:
        ``(N,)`` sorted long indices of the kept frames.
    """
    n_frames = feats.shape[0]
    _check_window(n_frames, window, "feats")
    unit = unit_frame_features(feats, center)
    n_win = -(-n_frames // window)
    padded = unit.new_zeros(n_win * window, unit.shape[1])
    padded[:n_frames] = unit
    blocks = padded.view(n_win, window, -1)
    lengths = torch.full((n_win,), window, device=feats.device)
    lengths[-1] = n_frames - (n_win - 1) * window
    score = torch.bmm(blocks, blocks.transpose(1, 2)).sum(-1) / lengths[:, None]  # padded rows are zero
    if keep_middle:
        score[torch.arange(n_win, device=feats.device), lengths // 2] = 0.0
    valid = torch.arange(window, device=feats.device)[None] < lengths[:, None]
    kept = ((score < threshold) & valid).flatten().nonzero().flatten()
    if max_frames is not None and kept.numel() > max_frames:
        pick = (torch.arange(max_frames, device=feats.device) * kept.numel()) // max_frames
        kept = kept[pick]
    return kept


def frame_relevance(frame_tokens: Tensor, text_emb: Tensor) -> Tensor:
    """``r_f = mean_{v in frame f} mean_{u in text} <v, u>``: raw dot products, no cosine, no softmax.

    Args:
        frame_tokens: ``(F, P, D)`` (low-res) tokens per frame.
        text_emb: ``(L, D)`` query embeddings.

    Returns:
        ``(F,)`` relevance (the double mean factorises into a dot of the two means).
    """
    if text_emb.dim() != 2 or text_emb.shape[-1] != frame_tokens.shape[-1]:
        raise ValueError(
            f"text_emb: expected (L, D) with D={frame_tokens.shape[-1]}, got shape {tuple(text_emb.shape)}"
        )
    return frame_tokens.mean(1) @ text_emb.mean(0)


def highres_count(n_frames: int, lo_per_frame: int, hi_per_frame: int, budget: int) -> int:
    """``k = floor((budget - N * lo) / (hi - lo))`` clamped to ``[0, N]``: how many frames fit at full res."""
    if hi_per_frame <= lo_per_frame:
        raise ValueError(f"hi_per_frame: expected more than lo_per_frame={lo_per_frame}, got {hi_per_frame}")
    return max(0, min(n_frames, (budget - n_frames * lo_per_frame) // (hi_per_frame - lo_per_frame)))


def choose_highres(
    relevance: Tensor | None, n_frames: int, lo_per_frame: int, hi_per_frame: int, budget: int
) -> Tensor:
    """Frames (positions ``0..N-1``, sorted) upgraded to full resolution.

    Args:
        relevance: ``(N,)`` scores; the top-``k`` win (ties to the earlier frame). ``None`` (no query, or the
            no-query ablation): ``k`` evenly spaced frames instead.
        n_frames, lo_per_frame, hi_per_frame, budget: the budget formula of :func:`highres_count`.
    """
    k = highres_count(n_frames, lo_per_frame, hi_per_frame, budget)
    if relevance is None:
        picked = (torch.arange(k) * n_frames + n_frames // 2) // max(k, 1)
        return picked[:k].sort().values
    order = torch.sort(relevance, descending=True, stable=True).indices
    return order[:k].sort().values


def spatial_token_reduce(
    frames: Tensor, frame_ids: Tensor | None = None, window: int = 8, threshold: float = 0.8
) -> TokenSet:
    """LongVU's spatial token compression (STC) on full-resolution frames.

    Args:
        frames: ``(N, P, D)`` tokens of consecutive kept frames.
        frame_ids: ``(N,)`` source frame index of each row (default ``0..N-1``).
        window: chunk length (8); the first frame of every chunk is kept whole.
        threshold: a later frame's token is kept iff its cosine to the chunk's first frame at the same
            position is below this (0.8 in the video training script; recalibrate for other spaces).

    Returns:
        The kept tokens in temporal (frame-major) order with provenance.
    """
    if window <= 0:
        raise ValueError(f"window: expected a positive integer, got {window}")
    n_frames, n_tok, _ = frames.shape
    side = grid_side(n_tok)
    ids = torch.arange(n_frames, device=frames.device) if frame_ids is None else frame_ids
    anchor = frames[(torch.arange(n_frames, device=frames.device) // window) * window]
    sim = torch.nn.functional.cosine_similarity(frames, anchor, dim=-1, eps=1e-12)
    first = (torch.arange(n_frames, device=frames.device) % window == 0)[:, None]
    keep = (sim < threshold) | first
    frame_pos, pos = keep.nonzero(as_tuple=True)
    fid = ids[frame_pos]
    return TokenSet(
        tokens=frames[frame_pos, pos],
        frame_ids=fid,
        pos_ids=pos,
        resolution=torch.full_like(fid, side),
        sizes=torch.ones(fid.numel(), device=frames.device),
    )


def enforce_budget(tokens: TokenSet, budget: int, window: int = 8) -> TokenSet:
    """Cut a token set down to ``budget`` the official way: tails of chunks, then a hard truncation.

    Chunks are ``window`` consecutive distinct frames of the (temporally ordered) set. Each chunk loses
    ``ceil((len - budget) / n_chunks)`` tokens from its end (biased against late frames of a chunk, as
    in the code); the result is truncated to ``budget``.
    """
    if budget <= 0:
        raise ValueError(f"budget: expected a positive integer, got {budget}")
    n = len(tokens)
    if n <= budget:
        return tokens
    _, frame_rank = torch.unique_consecutive(tokens.frame_ids, return_inverse=True)
    chunk = frame_rank // window
    n_chunks = int(chunk.max()) + 1
    cut = -(-(n - budget) // n_chunks)
    counts = torch.bincount(chunk, minlength=n_chunks)
    chunk_end = torch.cumsum(counts, 0)[chunk]  # exclusive end index of each token's chunk
    from_end = chunk_end - torch.arange(n, device=chunk.device)  # 1 for the last token of a chunk
    kept = (from_end > cut).nonzero().flatten()[:budget]
    out = tokens.select(kept)
    return out
