"""The tiny frame encoder (ViT-like, 4x4 tokens per frame) and the attention-pooling QA reader of kept tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.nn import RMSNorm, TransformerBlock
from thrifty.longvu.tokens import TokenSet
from thrifty.longvu.video import N_ANSWERS, N_GLYPHS


class FrameEncoder(nn.Module):
    """Patch embedding + transformer blocks: ``(B, S, S, 3)`` frames -> ``(B, (S/patch)^2, dim)`` tokens.

    Pre-trained once on single frames with two linear heads (photo identity from the mean token; glyph class
    of every token, 8 = none), then frozen; its head weights double as the "text" embeddings of the questions, so the
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
        """``(B, P, dim)`` tokens -> photo logits ``(B, n_photos)`` (mean token), glyph logits ``(B, P, 9)``."""
        return self.photo_head(tokens.mean(1)), self.glyph_head(tokens)

    @torch.no_grad()
    def reader_features(self, tokens: Tensor) -> Tensor:
        """What the QA model reads per kept token: ``(..., dim) -> (..., dim + 9 + n_photos)``.

        The token followed by the frozen heads' glyph and photo logits for it (a fixed linear map of the token,
        as a projector would hand an LLM; for a pooled token, the logits of the pooled token).
        """
        return torch.cat((tokens, self.glyph_head(tokens), self.photo_head(tokens)), dim=-1)

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


INIT_TEMPERATURE = (8.0, 1.0, 8.0)  # needle, coverage, temporal


class QAModel(nn.Module):
    """Attention-pooling reader of kept tokens: one learned query per question type, one per candidate photo.

    Every kept token gets its provenance as embeddings (a time bucket of its frame and its (resolution,
    position) in the grid) and ``n_layers`` per-token residual MLPs; no token attends to another, so the cost
    is linear in the tokens kept. Queries: the question type's learned query, or (coverage) the type's query
    plus each candidate photo's embedding. Each query attends over the tokens with ``n_heads`` heads; with
    ``proportional=True`` the logits to token ``j`` get ``+log size_j`` (ToMe's proportional attention).
    Needle and temporal answers are read from the pooled vector of query 0; a coverage candidate's logit is
    read from its own pooled vector plus the log-sum-exp of its attention logits (how well it matched).

    Args:
        token_dim: dim of the encoder tokens; n_photos: candidate vocabulary; side: full grid side.
        dim, n_layers, n_heads: width, per-token MLP blocks, pooling heads; time_buckets: frame-time resolution.
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
        self.n_heads = n_heads
        self.time_buckets, self.n_pos = time_buckets, sum(s * s for s in self.offsets)
        self.in_proj = nn.Linear(token_dim + time_buckets + self.n_pos, dim)  # token + one-hot provenance
        self.mlps = nn.ModuleList(
            nn.Sequential(RMSNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            for _ in range(n_layers)
        )
        self.kv = nn.Linear(dim, 2 * dim)
        self.type_query = nn.Embedding(len(N_ANSWERS), dim)
        self.photo_emb = nn.Embedding(n_photos, dim)
        self.readout = nn.Sequential(RMSNorm(dim), nn.Linear(dim, dim), nn.GELU())
        self.class_head = nn.Linear(dim, max(N_ANSWERS))
        self.cand_head = nn.Linear(dim, 1)
        self.match_scale = nn.Parameter(torch.ones(n_heads) / n_heads)
        # Learned attention sharpness per question type; needle and temporal questions look for one token among
        # hundreds, so they start sharp (x8), coverage pools evidence and starts at the usual 1/sqrt(d).
        self.log_temperature = nn.Parameter(torch.tensor(INIT_TEMPERATURE).log())
        self.register_buffer("answer_mask", _answer_mask(), persistent=False)

    def encode_tokens(self, batch: dict[str, Tensor]) -> Tensor:
        """``(B, M, dim)`` token features with provenance embeddings (one-hot time bucket and grid position,
        projected with the token: the same as summed embedding tables, and cheaper to train on a CPU)."""
        scale = float(self.in_proj.in_features) ** 0.5  # one-hot columns start near embedding scale
        time = F.one_hot(batch["time"], self.time_buckets).to(batch["tokens"].dtype) * scale
        pos = F.one_hot(batch["pos"], self.n_pos).to(batch["tokens"].dtype) * scale
        x = self.in_proj(torch.cat((batch["tokens"], time, pos), dim=-1))
        for mlp in self.mlps:
            x = x + mlp(x)
        return x

    def forward(self, batch: dict[str, Tensor], proportional: bool = False) -> Tensor:
        """Logits ``(B, 8)`` (invalid answers of a question type at ``-inf``).

        Args:
            batch: ``tokens (B, M, D)``, ``time (B, M)`` buckets, ``pos (B, M)`` table ids, ``sizes (B, M)``,
                ``valid (B, M)`` bool, ``question (B,)``, ``candidates (B, 4)``.
            proportional: add ``log sizes`` to the attention logits.
        """
        q = batch["question"]
        b = batch["valid"].shape[0]
        keys, values = self.kv(self.encode_tokens(batch)).chunk(2, dim=-1)
        queries = self.type_query(q)[:, None] + self.photo_emb(batch["candidates"]) * (q == 1)[:, None, None].float()
        split = (b, -1, self.n_heads, keys.shape[-1] // self.n_heads)
        logits = torch.einsum("bqhd,bmhd->bhqm", queries.reshape(split), keys.reshape(split))
        logits = logits * (self.log_temperature[q].exp() / split[-1] ** 0.5)[:, None, None, None]
        bias = batch["sizes"].clamp_min(1e-6).log() if proportional else torch.zeros_like(batch["sizes"])
        logits = logits + bias.masked_fill(~batch["valid"], float("-inf"))[:, None, None, :]
        pooled = torch.einsum("bhqm,bmhd->bqhd", logits.softmax(-1), values.reshape(split)).flatten(2)
        out = self.readout(pooled + queries)  # (B, 4, dim)
        match = (logits.logsumexp(-1).transpose(1, 2) * self.match_scale).sum(-1)  # (B, 4)
        cover = self.cand_head(out).squeeze(-1) + match
        answers = torch.where((q == 1)[:, None], F.pad(cover, (0, max(N_ANSWERS) - 4)), self.class_head(out[:, 0]))
        return answers.masked_fill(~self.answer_mask[q], float("-inf"))


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
