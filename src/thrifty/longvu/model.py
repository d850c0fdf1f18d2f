"""The tiny frame encoder (ViT-like, 4x4 tokens per frame) and the QA transformer that reads kept tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from thrifty.core.nn import RMSNorm, TransformerBlock
from thrifty.longvu.tokens import TokenSet
from thrifty.longvu.video import N_ANSWERS, N_GLYPHS


class FrameEncoder(nn.Module):
    """Patch embedding + transformer blocks: ``(B, S, S, 3)`` frames -> ``(B, (S/patch)^2, dim)`` tokens.

    Pre-trained once on single frames with two linear heads on the mean token (photo identity, glyph class
    with 8 = none), then frozen; its head weights double as the "text" embeddings of the questions, so the
    query lives in the token space as in LongVU (where it is the LLM's input embedding).
    """

    def __init__(self, n_photos: int, frame_size: int = 32, patch: int = 8, dim: int = 32, n_layers: int = 1) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.n_tokens = (frame_size // patch) ** 2
        self.pos = nn.Parameter(torch.randn(self.n_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, 4, causal=False) for _ in range(n_layers))
        self.norm = RMSNorm(dim)
        self.photo_head = nn.Linear(dim, n_photos)
        self.glyph_head = nn.Linear(dim, N_GLYPHS + 1)

    def forward(self, frames: Tensor) -> Tensor:
        """``(B, S, S, 3) -> (B, P, dim)`` row-major tokens."""
        x = self.patch_embed(frames.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def heads(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Photo and glyph logits from the mean token of ``(B, P, dim)``."""
        pooled = tokens.mean(1)
        return self.photo_head(pooled), self.glyph_head(pooled)

    @torch.no_grad()
    def query(self, question: int, candidates: Tensor) -> Tensor:
        """``(L, dim)`` query embedding: glyph directions (rows 0..7 minus "none") or the 4 candidate photos."""
        if question == 1:
            return self.photo_head.weight[candidates]
        return self.glyph_head.weight[:N_GLYPHS] - self.glyph_head.weight[N_GLYPHS]


def position_vocab(side: int) -> dict[int, int]:
    """Offset of each grid side dividing ``side`` in the shared (resolution, position) embedding table."""
    offsets, total = {}, 0
    for s in range(side, 0, -1):
        if side % s == 0:
            offsets[s] = total
            total += s * s
    return offsets


class QAModel(nn.Module):
    """Reads ``[CLS, question, 4 candidates, kept tokens]`` and answers with one of 8 classes.

    Each kept token gets its provenance as embeddings: a time bucket of its frame, and its (resolution,
    position) in the grid. With ``proportional=True`` the attention logits to token ``j`` get ``+log size_j``
    (ToMe's proportional attention for merged tokens).

    Args:
        token_dim: dim of the encoder tokens; n_photos: candidate vocabulary; side: full grid side.
        dim, n_layers, n_heads: transformer shape; time_buckets: frame-time resolution.
    """

    def __init__(
        self,
        token_dim: int,
        n_photos: int,
        side: int,
        dim: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        time_buckets: int = 16,
    ) -> None:
        super().__init__()
        self.init_config = {  # the constructor arguments, saved beside the weights (see thrifty.longvu.saved)
            "token_dim": token_dim,
            "n_photos": n_photos,
            "side": side,
            "dim": dim,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "time_buckets": time_buckets,
        }
        self.offsets = position_vocab(side)
        self.time_buckets = time_buckets
        self.in_proj = nn.Linear(token_dim, dim)
        self.time_emb = nn.Embedding(time_buckets, dim)
        self.pos_emb = nn.Embedding(sum(s * s for s in self.offsets), dim)
        self.special = nn.Embedding(1 + len(N_ANSWERS), dim)  # CLS, then one per question type
        self.photo_emb = nn.Embedding(n_photos + 1, dim)  # last = no candidate
        self.blocks = nn.ModuleList(TransformerBlock(dim, n_heads, causal=False) for _ in range(n_layers))
        self.norm = RMSNorm(dim)
        self.out = nn.Linear(dim, max(N_ANSWERS))
        self.register_buffer("answer_mask", _answer_mask(), persistent=False)

    def forward(self, batch: dict[str, Tensor], proportional: bool = False) -> Tensor:
        """Logits ``(B, 8)`` (invalid answers of a question type at ``-inf``).

        Args:
            batch: ``tokens (B, M, D)``, ``time (B, M)`` buckets, ``pos (B, M)`` table ids, ``sizes (B, M)``,
                ``valid (B, M)`` bool, ``question (B,)``, ``candidates (B, 4)``.
            proportional: add ``log sizes`` to the attention logits.
        """
        vis = self.in_proj(batch["tokens"]) + self.time_emb(batch["time"]) + self.pos_emb(batch["pos"])
        q = batch["question"]
        head = torch.stack((self.special.weight[0].expand(q.shape[0], -1), self.special(q + 1)), dim=1)
        x = torch.cat((head, self.photo_emb(batch["candidates"]), vis), dim=1)
        bias = torch.zeros(x.shape[:2], device=x.device)
        vis_bias = batch["sizes"].clamp_min(1e-6).log() if proportional else torch.zeros_like(batch["sizes"])
        bias[:, head.shape[1] + 4 :] = vis_bias.masked_fill(~batch["valid"], float("-inf"))
        mask = bias[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask=mask)
        logits = self.out(self.norm(x[:, 0]))
        return logits.masked_fill(~self.answer_mask[q], float("-inf"))


def _answer_mask() -> Tensor:
    mask = torch.zeros(len(N_ANSWERS), max(N_ANSWERS), dtype=torch.bool)
    for question, n in enumerate(N_ANSWERS):
        mask[question, :n] = True
    return mask


def pack_token_sets(
    sets: list[TokenSet], budget: int, n_frames: int, time_buckets: int, offsets: dict[int, int]
) -> dict[str, Tensor]:
    """Pad token sets to ``budget`` rows: the visual part of a :class:`QAModel` batch (stored on CPU)."""
    dim = sets[0].tokens.shape[-1]
    out = {
        "tokens": torch.zeros(len(sets), budget, dim),
        "time": torch.zeros(len(sets), budget, dtype=torch.long),
        "pos": torch.zeros(len(sets), budget, dtype=torch.long),
        "sizes": torch.ones(len(sets), budget),
        "valid": torch.zeros(len(sets), budget, dtype=torch.bool),
    }
    lut = torch.zeros(max(offsets) + 1, dtype=torch.long)
    for side, offset in offsets.items():
        lut[side] = offset
    for i, ts in enumerate(sets):
        m = len(ts)
        if m > budget:
            raise ValueError(f"sets: token set {i} has {m} tokens, more than budget={budget}")
        out["tokens"][i, :m] = ts.tokens.float().cpu()
        out["time"][i, :m] = (ts.frame_ids.cpu() * time_buckets) // n_frames
        out["pos"][i, :m] = lut[ts.resolution.cpu()] + ts.pos_ids.cpu()
        out["sizes"][i, :m] = ts.sizes.float().cpu()
        out["valid"][i, :m] = True
    return out
