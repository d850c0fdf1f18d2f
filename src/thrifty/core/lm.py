"""A small Llama-style language model assembled from :mod:`thrifty.core.nn` blocks."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from thrifty.core.config import Config
from thrifty.core.nn import AttnImpl, KVCache, RMSNorm, TransformerBlock


@dataclasses.dataclass
class TransformerLMConfig(Config):
    """Architecture of :class:`TransformerLM` (causal for autoregressive LMs, bidirectional for dLLMs)."""

    PRESETS = {"smoke": {}, "quick": {}, "full": {}}
    vocab_size: int = 256
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int | None = None
    mlp_hidden: int | None = None
    causal: bool = True
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    impl: str = "sdpa"

    def validate(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads"):
            self.require(getattr(self, name) > 0, name, "a positive integer")
        self.require(self.dim % self.n_heads == 0, "n_heads", f"a divisor of dim={self.dim}")
        kv = self.n_kv_heads or self.n_heads
        self.require(self.n_heads % kv == 0, "n_kv_heads", f"a divisor of n_heads={self.n_heads}")
        self.require(self.impl in ("sdpa", "naive"), "impl", "'sdpa' or 'naive'")


class TransformerLM(nn.Module):
    """Token embedding, pre-norm blocks, final RMSNorm and a (tied) output head."""

    def __init__(self, cfg: TransformerLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        impl: AttnImpl = cfg.impl  # type: ignore[assignment]
        self.blocks = nn.ModuleList(
            TransformerBlock(
                cfg.dim,
                cfg.n_heads,
                cfg.n_kv_heads,
                cfg.mlp_hidden,
                causal=cfg.causal,
                rope_base=cfg.rope_base,
                impl=impl,
            )
            for _ in range(cfg.n_layers)
        )
        self.norm = RMSNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.apply(_init_weights)

    def new_caches(self) -> list[KVCache]:
        return [KVCache() for _ in self.blocks]

    def forward(
        self,
        idx: Tensor,
        *,
        start_pos: int = 0,
        positions: Tensor | None = None,
        caches: list[KVCache] | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """``idx (B, T)`` token ids -> logits ``(B, T, V)``; ``positions (T,)`` overrides ``start_pos``."""
        if idx.dim() != 2:
            raise ValueError(f"idx: expected (B, T) token ids, got shape {tuple(idx.shape)}")
        x = self.embed(idx)
        for i, block in enumerate(self.blocks):
            cache = None if caches is None else caches[i]
            x = block(x, start_pos=start_pos, positions=positions, cache=cache, mask=mask)
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(
        self, idx: Tensor, max_new_tokens: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Greedy (temperature 0) or sampled continuation with a KV cache: ``(B, T) -> (B, T + n)``."""
        if not self.cfg.causal:
            raise ValueError("generate: expected a causal model (cfg.causal=True)")
        caches = self.new_caches()
        logits = self(idx, caches=caches)
        out = idx
        for _ in range(max_new_tokens):
            last = logits[:, -1, :].float()
            if temperature > 0:
                probs = torch.softmax(last / temperature, dim=-1)
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device)
            else:
                nxt = last.argmax(dim=-1, keepdim=True)
            out = torch.cat((out, nxt), dim=1)
            logits = self(nxt, start_pos=out.shape[1] - 1, caches=caches)
        return out

    def num_params(self) -> int:
        """Unique parameters (a tied head counts once)."""
        return sum(p.numel() for p in self.parameters())


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
