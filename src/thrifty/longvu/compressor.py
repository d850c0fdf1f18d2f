"""``LongVUCompressor``: the four steps composed, behind the interface every baseline shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from thrifty.longvu.ops import choose_highres, enforce_budget, frame_relevance, spatial_token_reduce, temporal_reduce
from thrifty.longvu.tokens import TokenSet, check_video, pool_grid


class Compressor(Protocol):
    """A video token compressor: ``(T, H*W, D)`` tokens and a budget in, at most ``budget`` tokens out."""

    name: str

    def __call__(
        self,
        tokens: Tensor,
        budget: int,
        query: Tensor | None = None,
        features: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> TokenSet:
        """Compress one video.

        Args:
            tokens: ``(T, H*W, D)`` full-resolution frame tokens (square grid).
            budget: the most tokens to return (``1..T*H*W``).
            query: ``(L, D)`` optional question embedding in the token space.
            features: ``(T, ...)`` optional per-frame features for frame redundancy (default: the tokens).
            generator: randomness for stochastic compressors.
        """
        ...


@dataclass
class LongVUCompressor:
    """LongVU spatio-temporal compression with provenance (arXiv 2410.17434, official-code semantics).

    Regimes, with ``N`` frames left after the temporal step, ``hi = H*W`` and ``lo = lo_side**2`` tokens:
    ``N*hi <= budget``: every frame at full resolution; ``N*lo > budget``: every frame at full resolution
    through STC and budget enforcement (no query step, as in the code); otherwise: all frames low-res and the
    top-``k`` frames by query relevance upgraded.

    Args:
        temporal_window, temporal_threshold, max_frames, center_features: :func:`temporal_reduce`.
        stc_window, stc_threshold: :func:`spatial_token_reduce` (also the chunk of :func:`enforce_budget`).
        lo_side: low-res grid side (default half the full side: 2x2 average pooling).
        use_temporal, use_query, use_stc: switch a step off for the ablations (no temporal step: every frame
            goes on; no query: evenly spaced frames are upgraded; no STC: budget enforcement only).
    """

    temporal_window: int = 16
    temporal_threshold: float = 0.83
    max_frames: int | None = 400
    center_features: bool = True
    stc_window: int = 8
    stc_threshold: float = 0.8
    lo_side: int | None = None
    use_temporal: bool = True
    use_query: bool = True
    use_stc: bool = True
    name: str = "longvu"

    def __call__(
        self,
        tokens: Tensor,
        budget: int,
        query: Tensor | None = None,
        features: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> TokenSet:
        """See :class:`Compressor`; ``stats`` holds ``regime`` (0 all-high, 1 mixing, 2 STC), frame counts."""
        side = check_video(tokens, budget, query)
        if tokens.shape[0] < self.temporal_window:
            raise ValueError(
                f"tokens: expected at least one window of {self.temporal_window} frames, got {tokens.shape[0]}"
            )
        lo_side = self.lo_side or max(1, side // 2)
        if self.use_temporal:
            feats = tokens if features is None else features
            kept = temporal_reduce(
                feats, self.temporal_window, self.temporal_threshold, True, self.center_features, self.max_frames
            ).to(tokens.device)
        else:
            kept = torch.arange(tokens.shape[0], device=tokens.device)
        high = tokens[kept]
        n_kept, hi_n, lo_n = kept.numel(), side * side, lo_side * lo_side
        n_high = 0
        if n_kept * hi_n <= budget:
            regime, out = 0, TokenSet.from_frames(high, kept, side, side)
            n_high = n_kept
        elif n_kept * lo_n > budget:
            regime = 2
            if self.use_stc:
                out = spatial_token_reduce(high, kept, self.stc_window, self.stc_threshold)
            else:
                out = TokenSet.from_frames(high, kept, side, side)
        else:
            regime, out, n_high = 1, *self._mix(high, kept, query, budget, side, lo_side)
        out = enforce_budget(out, budget, self.stc_window)
        out.stats = {"regime": regime, "frames_after_temporal": n_kept, "frames_highres": n_high}
        return out

    def _mix(
        self, high: Tensor, kept: Tensor, query: Tensor | None, budget: int, side: int, lo_side: int
    ) -> tuple[TokenSet, int]:
        """Text-guided selective reduction: low-res everywhere, top-``k`` relevant frames at full res."""
        low = pool_grid(high, lo_side)
        relevance = frame_relevance(low, query) if (self.use_query and query is not None) else None
        up = choose_highres(relevance, kept.numel(), lo_side * lo_side, side * side, budget).to(high.device)
        is_up = torch.zeros(kept.numel(), dtype=torch.bool, device=high.device)
        is_up[up] = True
        parts = [
            TokenSet.from_frames(low[~is_up], kept[~is_up], lo_side, side),
            TokenSet.from_frames(high[is_up], kept[is_up], side, side),
        ]
        return TokenSet.cat(parts).sorted(), int(up.numel())
