"""The peers Longhorn is measured against: GLA (own implementation), HF Mamba, and the core RoPE Transformer.

Every peer is exposed as an ``nn.Module`` with ``forward(idx (B, T)) -> logits (B, T, V)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.core.nn import RMSNorm, SwiGLU

GLA_GATE_NORMALIZER = 16.0  # GLA's log-gate temperature: logsigmoid(.) / 16 keeps gates near 1 at init


def gla_chunked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_gate: Tensor,
    chunk_size: int = 16,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chunkwise gated linear attention; the maths of :func:`thrifty.longhorn.reference.naive_gla_recurrent`.

    Inside a chunk the decay between positions s <= t is ``exp(b_t - b_s)`` with ``b`` the within-chunk
    cumulative log gate; it is formed on a ``(C, C, K)`` tensor with the upper triangle masked to -inf
    *before* exp, so nothing overflows. Across chunks the ``(K, V)`` state is carried in L/C steps.

    Args:
        q, k, log_gate: ``(B, H, L, K)``; v: ``(B, H, L, V)``; initial_state: ``(B, H, K, V)``.

    Returns:
        ``(o (B, H, L, V), final state (B, H, K, V))``.
    """
    batch, heads, length, dk = q.shape
    n_chunks = -(-length // chunk_size)
    pad = n_chunks * chunk_size - length
    if pad:  # zero keys and zero log-gates are identity steps
        q, k, v, log_gate = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v, log_gate))
    shape = (batch, heads, n_chunks, chunk_size)
    q, k, log_gate = (t.reshape(*shape, dk) for t in (q, k, log_gate))
    v = v.reshape(*shape, -1)
    b = log_gate.cumsum(3)  # (B, H, nC, C, K)
    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
    diff = (b.unsqueeze(4) - b.unsqueeze(3)).masked_fill(~causal[..., None], float("-inf"))
    scores = torch.einsum("bhctk,bhcsk,bhctsk->bhcts", q, k, diff.exp())
    o = scores @ v  # intra-chunk part
    q_decayed = q * b.exp()
    k_to_end = k * (b[:, :, :, -1:] - b).exp()
    state = initial_state if initial_state is not None else q.new_zeros(batch, heads, dk, v.shape[-1])
    inter = []
    for c in range(n_chunks):
        inter.append(q_decayed[:, :, c] @ state)
        state = b[:, :, c, -1].exp().unsqueeze(-1) * state + k_to_end[:, :, c].transpose(-1, -2) @ v[:, :, c]
    o = (o + torch.stack(inter, 2)).reshape(batch, heads, n_chunks * chunk_size, -1)[:, :, :length]
    return o, state


class GLAMixer(nn.Module):
    """Gated linear attention layer (Yang et al. 2024 style): low-rank key-dimension forget gates, per-head
    RMSNorm, SiLU output gate. ``forward(h (B, L, d)) -> (B, L, d)``."""

    def __init__(
        self,
        d_model: int,
        n_heads: int = 2,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_rank: int = 16,
        chunk_size: int = 16,
    ) -> None:
        super().__init__()
        self.n_heads, self.chunk_size = n_heads, chunk_size
        self.key_dim, self.value_dim = int(d_model * expand_k), int(d_model * expand_v)
        if self.key_dim % n_heads or self.value_dim % n_heads:
            raise ValueError(f"n_heads: expected a divisor of key/value dims {self.key_dim}/{self.value_dim}")
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.gate = nn.Sequential(nn.Linear(d_model, gate_rank, bias=False), nn.Linear(gate_rank, self.key_dim))
        self.head_norm = RMSNorm(self.value_dim // n_heads)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        def heads(t: Tensor) -> Tensor:
            return t.view(*t.shape[:2], self.n_heads, -1).transpose(1, 2)

        q = heads(self.q_proj(h)) * (self.key_dim // self.n_heads) ** -0.5
        k, v = heads(self.k_proj(h)), heads(self.v_proj(h))
        log_gate = heads(F.logsigmoid(self.gate(h)) / GLA_GATE_NORMALIZER)
        o, _ = gla_chunked(q.float(), k.float(), v.float(), log_gate.float(), self.chunk_size)
        o = self.head_norm(o.to(h.dtype)).transpose(1, 2).reshape(*h.shape[:2], self.value_dim)
        return self.o_proj(o * F.silu(self.g_proj(h)))


class GLALM(nn.Module):
    """Embedding -> [GLA + SwiGLU MLP] pre-norm blocks -> RMSNorm -> tied head."""

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, mlp_hidden: int, n_heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.mixers = nn.ModuleList(GLAMixer(d_model, n_heads) for _ in range(n_layers))
        self.mlps = nn.ModuleList(SwiGLU(d_model, mlp_hidden) for _ in range(n_layers))
        self.norms = nn.ModuleList(RMSNorm(d_model) for _ in range(2 * n_layers))
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, idx: Tensor) -> Tensor:
        h = self.embed(idx)
        for i, (mixer, mlp) in enumerate(zip(self.mixers, self.mlps, strict=True)):
            h = h + mixer(self.norms[2 * i](h))
            h = h + mlp(self.norms[2 * i + 1](h))
        return self.head(self.norm(h))


class HFMambaLM(nn.Module):
    """transformers' ``MambaForCausalLM`` (pure-torch CPU path, ``use_mambapy=False``): ``idx -> logits``.

    The equivalence oracle of :class:`thrifty.longhorn.mamba.MambaLM` and its decoder (HF cache). Built with
    transformers' own initialisation, or around ``model`` (e.g. ``MambaLM.to_transformers()``).
    """

    def __init__(
        self, vocab_size: int, d_model: int, n_layers: int, d_state: int, *, model: nn.Module | None = None
    ) -> None:
        super().__init__()
        if model is None:
            from transformers import MambaForCausalLM

            from thrifty.longhorn.mamba import MambaLM

            shape = MambaLM(vocab_size, d_model, n_layers, d_state)  # only its MambaConfig is used
            model = MambaForCausalLM(shape.transformers_config())
        self.model = model
        self.vocab_size = vocab_size

    def forward(self, idx: Tensor) -> Tensor:
        return self.model(input_ids=idx, use_cache=False).logits[..., : self.vocab_size]

    @torch.no_grad()
    def prefill(self, idx: Tensor) -> tuple[Tensor, object]:
        """Run ``idx (B, T)`` with a cache; returns ``(last logits (B, V), cache)``."""
        out = self.model(input_ids=idx, use_cache=True)
        return out.logits[:, -1], out.cache_params

    @torch.no_grad()
    def step(self, token: Tensor, cache: object) -> Tensor:
        """One decode step on the HF cache: ``token (B,) -> logits (B, V)``."""
        out = self.model(input_ids=token.unsqueeze(1), cache_params=cache, use_cache=True)
        return out.logits[:, -1]


class ShortConvTransformerLM(nn.Module):
    """The core RoPE Transformer with a residual causal depthwise short conv before each block (Zoology's
    attention baseline pairs attention with a short conv). ``forward(idx (B, T)) -> logits (B, T, V)``."""

    def __init__(
        self, vocab_size: int, d_model: int, n_layers: int, mlp_hidden: int, n_heads: int = 4, kernel: int = 3
    ) -> None:
        super().__init__()
        self.lm = transformer_lm(vocab_size, d_model, n_layers, mlp_hidden, n_heads)
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel, groups=d_model) for _ in range(n_layers))
        self.kernel = kernel

    def forward(self, idx: Tensor) -> Tensor:
        h = self.lm.embed(idx)
        for conv, block in zip(self.convs, self.lm.blocks, strict=True):
            h = h + conv(F.pad(h.transpose(1, 2), (self.kernel - 1, 0))).transpose(1, 2)
            h = block(h)
        return self.lm.head(self.lm.norm(h))


def transformer_lm(vocab_size: int, d_model: int, n_layers: int, mlp_hidden: int, n_heads: int = 4) -> TransformerLM:
    """The core RoPE Transformer (SwiGLU MLP, tied head)."""
    return TransformerLM(
        TransformerLMConfig(
            vocab_size=vocab_size, dim=d_model, n_layers=n_layers, n_heads=n_heads, mlp_hidden=mlp_hidden
        )
    )


def count_params(model: nn.Module) -> int:
    """Unique parameters (tied weights count once)."""
    return sum(p.numel() for p in model.parameters())


def matched_mlp_hidden(target_params: int, build: Callable[[int], nn.Module]) -> int:
    """The MLP width whose model has the parameter count nearest ``target_params`` (linear in it)."""
    low, high = count_params(build(8)), count_params(build(16))
    per_unit = (high - low) / 8
    return max(8, round(8 + (target_params - low) / per_unit))
