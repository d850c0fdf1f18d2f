"""A tiny video LM: a frame-patch encoder and a prefix-LM decoder from core blocks, with a KV cache.

The prefix (video tokens, then the question) is bidirectional; the response is causal. Video tokens are
``patch x patch`` pixel patches of each frame, linearly embedded, plus a learned position per patch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from thrifty.core.nn import KVCache, RMSNorm, TransformerBlock


@dataclass(frozen=True)
class VideoLMConfig:
    """Shape of :class:`VideoLM` (about 0.3-1 M parameters at the defaults)."""

    vocab_size: int
    n_frames: int = 8
    frame_size: int = 16
    patch: int = 8
    question_len: int = 3
    max_response: int = 24
    dim: int = 96
    n_layers: int = 3
    n_heads: int = 4

    def __post_init__(self) -> None:
        if self.frame_size % self.patch:
            raise ValueError(f"patch: expected a divisor of frame_size={self.frame_size}, got {self.patch}")
        if self.dim % self.n_heads:
            raise ValueError(f"n_heads: expected a divisor of dim={self.dim}, got {self.n_heads}")

    @property
    def n_video_tokens(self) -> int:
        return self.n_frames * (self.frame_size // self.patch) ** 2

    @property
    def prefix_len(self) -> int:
        return self.n_video_tokens + self.question_len

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VideoPrompt:
    """A batch of prompts: ``frames (B, F, H, W, 3)`` float and ``question (B, Q)`` token ids."""

    frames: Tensor
    question: Tensor

    def __getitem__(self, index: Any) -> VideoPrompt:
        return VideoPrompt(self.frames[index], self.question[index])

    def repeat_interleave(self, n: int) -> VideoPrompt:
        return VideoPrompt(self.frames.repeat_interleave(n, 0), self.question.repeat_interleave(n, 0))


def prefix_lm_mask(prefix_len: int, total: int, device: torch.device | None = None) -> Tensor:
    """``(total, total)`` bool: key ``j`` visible to query ``i`` iff ``j < prefix_len`` or ``j <= i``."""
    idx = torch.arange(total, device=device)
    return (idx[None, :] < prefix_len) | (idx[None, :] <= idx[:, None])


class VideoLM(nn.Module):
    """Video + question prefix (bidirectional) -> response tokens (causal)."""

    def __init__(self, cfg: VideoLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Linear(3 * cfg.patch * cfg.patch, cfg.dim)
        self.video_pos = nn.Parameter(torch.zeros(cfg.n_video_tokens, cfg.dim))
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.n_heads, causal=False) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
        nn.init.normal_(self.video_pos, std=0.02)

    def video_tokens(self, frames: Tensor) -> Tensor:
        """``frames (B, F, H, W, 3)`` -> ``(B, F * (H/p) * (W/p), dim)`` patch embeddings."""
        b, f, h, w, c = frames.shape
        p = self.cfg.patch
        if (f, h, w, c) != (self.cfg.n_frames, self.cfg.frame_size, self.cfg.frame_size, 3):
            raise ValueError(
                f"frames: expected (B, {self.cfg.n_frames}, {self.cfg.frame_size}, ..., 3), got {frames.shape}"
            )
        patches = frames.reshape(b, f, h // p, p, w // p, p, c).permute(0, 1, 2, 4, 3, 5, 6)
        return self.patch_embed(patches.reshape(b, -1, p * p * c)) + self.video_pos

    def _run(self, x: Tensor, start: int, caches: list[KVCache] | None, mask: Tensor | None) -> Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, start_pos=start, cache=None if caches is None else caches[i], mask=mask)
        return self.head(self.norm(x))

    def forward(self, prompt: VideoPrompt, response: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """Teacher-forced logits ``(B, L + 1, V)``: position ``j`` predicts ``response[:, j]`` (and the next).

        Args:
            prompt: the video and question batch.
            response: ``(B, L)`` response token ids (``L`` may be 0).
            caches: filled with the keys and values of every position when given.
        """
        x = torch.cat((self.video_tokens(prompt.frames), self.embed(prompt.question), self.embed(response)), dim=1)
        p = self.cfg.prefix_len
        mask = prefix_lm_mask(p, x.shape[1], x.device)
        return self._run(x, 0, caches, mask)[:, p - 1 :]

    def decode_session(self) -> VideoLMSession:
        return VideoLMSession(self)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class VideoLMSession:
    """:class:`~thrifty.autothink.sessions.DecodeSession` of the video LM (prompt: :class:`VideoPrompt`)."""

    def __init__(self, model: VideoLM) -> None:
        self.model = model
        self.max_context = model.cfg.prefix_len + model.cfg.max_response
        self._caches: list[KVCache] = []
        self._pos = 0

    def prompt_length(self, prompt: VideoPrompt) -> int:
        return self.model.cfg.n_video_tokens + int(prompt.question.shape[1])

    def prefill(self, prompt: VideoPrompt) -> Tensor:
        if prompt.question.shape[1] != self.model.cfg.question_len:
            raise ValueError(
                f"prompt: expected {self.model.cfg.question_len} question tokens, got {prompt.question.shape[1]}"
            )
        self._caches = [KVCache() for _ in self.model.blocks]
        empty = prompt.question.new_zeros((prompt.question.shape[0], 0))
        self._pos = self.model.cfg.prefix_len
        return self.model(prompt, empty, caches=self._caches)[:, -1]

    def step(self, tokens: Tensor) -> Tensor:
        """One new token per row attends to every cached position (no mask needed)."""
        logits = self.model._run(self.model.embed(tokens[:, None]), self._pos, self._caches, None)[:, -1]
        self._pos += 1
        return logits

    def logits_full(self, prompt: VideoPrompt, completion: Tensor) -> Tensor:
        return self.model(prompt, completion)
