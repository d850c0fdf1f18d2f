"""A tiny masked-diffusion LM (LLaDA-style) with block-diffusion (BD3-LM) attention.

Shapes: ``B`` batch, ``P`` prompt length, ``L`` response length, ``T`` sequence length, ``V`` vocabulary,
``C`` model width, ``Bs`` block size.

The model is a bidirectional transformer with a ``[MASK]`` token and no time embedding (spec A1). Attention
masks are passed in explicitly, so the same weights serve three layouts:

* full bidirectional attention (LLaDA, ``attn_mask=None``);
* the block-causal *canvas* ``[c ; y_1 .. y_NB]`` used by the semi-autoregressive sampler
  (:func:`block_causal_mask`);
* the two-copy training/scoring input ``[c ; x~_1 .. x~_NB ; y_1 .. y_NB]`` (:func:`block_diffusion_mask`),
  where one forward gives every block's prediction from a noisy version of itself plus the clean blocks
  before it (spec A3, B3-iii).

Both copies of the two-copy layout share position ids (:func:`two_copy_position_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thrifty.core.nn import RMSNorm, TransformerBlock

MDLM_WEIGHTINGS = ("elbo", "masked_mean")


def _check_layout(n_prompt: int, n_resp: int, block: int) -> None:
    if n_prompt < 0:
        raise ValueError(f"n_prompt: expected a non-negative length, got {n_prompt}")
    if n_resp <= 0:
        raise ValueError(f"n_resp: expected a positive response length (empty responses have no blocks), got {n_resp}")
    if block <= 0 or n_resp % block:
        raise ValueError(f"block: expected a positive divisor of the response length {n_resp}, got {block}")


def block_ids(n_prompt: int, n_resp: int, block: int, device: torch.device | str | None = None) -> Tensor:
    """Block index of each canvas position: ``-1`` for the prompt, ``0 .. NB-1`` for the response; ``(P+L,)``."""
    _check_layout(n_prompt, n_resp, block)
    prompt = torch.full((n_prompt,), -1, dtype=torch.long, device=device)
    resp = torch.arange(n_resp, device=device) // block
    return torch.cat((prompt, resp))


def block_causal_mask(n_prompt: int, n_resp: int, block: int, device: torch.device | str | None = None) -> Tensor:
    """Sampler mask over ``[c ; y]``: position ``i`` sees ``j`` iff ``block(j) <= block(i)``; ``(P+L, P+L)`` bool.

    The prompt is block ``-1``: it sees only itself, and every response block sees it.
    """
    ids = block_ids(n_prompt, n_resp, block, device)
    return ids[None, :] <= ids[:, None]


def block_diffusion_mask(n_prompt: int, n_resp: int, block: int, device: torch.device | str | None = None) -> Tensor:
    """BD3-LM mask over ``[c ; x~ (noisy, L) ; y (clean, L)]``; ``(T, T)`` bool with ``T = P + 2L``.

    True means "query (row) may attend key (column)". The union of (spec A3):

    * block-diagonal: a noisy query in block q sees the noisy keys of block q;
    * offset block-causal: a noisy query in block q sees clean keys in blocks < q;
    * block-causal: a clean query in block q sees clean keys in blocks <= q;

    plus the prompt, treated as a clean block ``-1`` seen by everyone and seeing only itself.
    """
    ids = block_ids(n_prompt, n_resp, block, device)
    n_p = n_prompt
    blk = torch.cat((ids, ids[n_p:]))  # block of each of the T positions
    kind = torch.cat(
        (
            torch.zeros(n_p, dtype=torch.long, device=ids.device),
            torch.ones(n_resp, dtype=torch.long, device=ids.device),
            torch.full((n_resp,), 2, dtype=torch.long, device=ids.device),
        )
    )  # 0 prompt 1 noisy 2 clean
    q_blk, k_blk = blk[:, None], blk[None, :]
    q_kind, k_kind = kind[:, None], kind[None, :]
    sees_prompt = k_kind == 0
    prompt_row = (q_kind == 0) & sees_prompt
    noisy_diag = (q_kind == 1) & (k_kind == 1) & (q_blk == k_blk)
    noisy_offset = (q_kind == 1) & (k_kind == 2) & (k_blk < q_blk)
    clean_causal = (q_kind == 2) & (k_kind == 2) & (k_blk <= q_blk)
    return prompt_row | ((q_kind != 0) & sees_prompt) | noisy_diag | noisy_offset | clean_causal


def two_copy_position_ids(n_prompt: int, n_resp: int, device: torch.device | str | None = None) -> Tensor:
    """Positions of ``[c ; x~ ; y]``: the noisy and the clean copy both use ``P .. P+L-1``; ``(P+2L,)``."""
    prompt = torch.arange(n_prompt, device=device)
    resp = torch.arange(n_prompt, n_prompt + n_resp, device=device)
    return torch.cat((prompt, resp, resp))


@dataclass
class DiffusionLMConfig:
    """Shape of a :class:`MaskedDiffusionLM`.

    Args:
        vocab_size: number of token ids, including ``mask_id``.
        mask_id: id of the ``[MASK]`` token.
        dim: model width ``C``.
        n_layers: transformer blocks.
        n_heads: attention heads (must divide ``dim``).
        mlp_hidden: SwiGLU hidden width (default: Llama's 8/3 * dim).
        impl: attention kernel, ``"sdpa"`` or ``"naive"`` (float64-friendly reference).
    """

    vocab_size: int
    mask_id: int
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_hidden: int | None = None
    rope_base: float = 10000.0
    impl: str = "sdpa"

    def __post_init__(self) -> None:
        if not 0 <= self.mask_id < self.vocab_size:
            raise ValueError(f"mask_id: expected an id in [0, {self.vocab_size}), got {self.mask_id}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(
                f"n_heads: expected a divisor of dim={self.dim} giving an even head dim, got {self.n_heads}"
            )
        if self.impl not in ("sdpa", "naive"):
            raise ValueError(f"impl: expected 'sdpa' or 'naive', got {self.impl!r}")


class MaskedDiffusionLM(nn.Module):
    """Bidirectional transformer over token ids with a ``[MASK]`` token; outputs logits ``(B, T, V)``.

    Args:
        cfg: the model shape; ``cfg.mask_id`` marks masked positions.
    """

    def __init__(self, cfg: DiffusionLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mask_id = cfg.mask_id
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                cfg.dim, cfg.n_heads, mlp_hidden=cfg.mlp_hidden, causal=False, rope_base=cfg.rope_base, impl=cfg.impl
            )  # type: ignore[arg-type]
            for _ in range(cfg.n_layers)
        )
        self.norm = RMSNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.apply(_init_weights)

    def forward(self, ids: Tensor, attn_mask: Tensor | None = None, pos_ids: Tensor | None = None) -> Tensor:
        """Logits of every position.

        Args:
            ids: ``(B, T)`` token ids.
            attn_mask: bool ``(T, T)`` or ``(B, T, T)``, True = may attend; None = full attention.
            pos_ids: ``(T,)`` position ids (default ``0 .. T-1``).

        Returns:
            ``(B, T, V)`` logits.
        """
        if ids.dim() != 2:
            raise ValueError(f"ids: expected a (B, T) tensor, got shape {tuple(ids.shape)}")
        t = ids.shape[1]
        if pos_ids is None:
            pos_ids = torch.arange(t, device=ids.device)
        if attn_mask is not None:
            if attn_mask.shape[-2:] != (t, t):
                raise ValueError(f"attn_mask: expected (T, T) = ({t}, {t}) trailing dims, got {tuple(attn_mask.shape)}")
            attn_mask = attn_mask.unsqueeze(-3)  # broadcast over heads
        x = self.embed(ids)
        for blk in self.blocks:
            x = blk(x, positions=pos_ids, mask=attn_mask)
        return self.head(self.norm(x))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)


def two_copy_forward(model: nn.Module, prompt: Tensor, noisy: Tensor, clean: Tensor, block: int) -> Tensor:
    """One forward over ``[c ; x~ ; y]`` with the BD3-LM mask; returns the noisy copy's logits ``(B, L, V)``.

    Args:
        model: a :class:`MaskedDiffusionLM` (or a DDP wrapper of one).
        prompt: ``(B, P)`` prompt ids (may contain masks, e.g. d1's prompt masking).
        noisy: ``(B, L)`` partially masked response.
        clean: ``(B, L)`` clean response.
        block: block size ``Bs`` (``L`` for plain LLaDA: then the clean copy is dropped, it is invisible).
    """
    n_p, n_r = prompt.shape[1], noisy.shape[1]
    _check_layout(n_p, n_r, block)
    if block == n_r:  # a single block: the noisy copy never sees the clean one, so drop it
        canvas = torch.cat((prompt, noisy), 1)
        return model(canvas, attn_mask=block_causal_mask(n_p, n_r, block, canvas.device))[:, n_p:]
    ids = torch.cat((prompt, noisy, clean), dim=1)
    mask = block_diffusion_mask(n_p, n_r, block, ids.device)
    pos = two_copy_position_ids(n_p, n_r, ids.device)
    return model(ids, attn_mask=mask, pos_ids=pos)[:, n_p : n_p + n_r]


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``U(0, 1)`` draws made on the generator's device (CPU generators stay usable with CUDA models)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64).to(device)


def mdlm_loss(
    model: nn.Module,
    prompt: Tensor,
    resp: Tensor,
    block: int,
    *,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    weighting: str = "elbo",
) -> Tensor:
    """LLaDA SFT loss applied per block (BD3-LM style); the prompt is never masked.

    Each block ``b`` of each sequence draws ``t_b ~ U(0, 1)`` and masks each of its tokens with probability
    ``p_b = (1 - eps) t_b + eps``. With ``weighting="elbo"`` the loss is ``sum_{masked i} CE_i / p_b(i) / L``,
    averaged over the batch (spec A1; EOS padding counts as response, so the model learns the length); with
    ``block = L`` this is exactly LLaDA's SFT loss. ``weighting="masked_mean"`` drops the ``1 / p`` factor and
    averages CE over the batch's masked tokens: not an ELBO, but without the heavy-tailed ``1 / p`` weights
    (up to ``1 / eps``), which with 2-token blocks made a tiny model's SFT stall on some seeds (measured,
    docs/methods/dtrpo.md).

    Args:
        model: a :class:`MaskedDiffusionLM`.
        prompt: ``(B, P)`` prompt ids.
        resp: ``(B, L)`` clean response ids.
        block: block size ``Bs`` dividing ``L``.
        eps: floor of the mask probability.
        generator: random stream of the mask draws.
        weighting: ``"elbo"`` or ``"masked_mean"``, see above.

    Returns:
        scalar loss.
    """
    if weighting not in MDLM_WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {MDLM_WEIGHTINGS}, got {weighting!r}")
    b, n_r = resp.shape
    _check_layout(prompt.shape[1], n_r, block)
    mask_id = _unwrap(model).mask_id
    t = uniform((b, n_r // block), generator, resp.device)
    p_mask = ((1 - eps) * t + eps).repeat_interleave(block, dim=1)  # (B, L)
    masked = uniform((b, n_r), generator, resp.device) < p_mask
    noisy = resp.masked_fill(masked, mask_id)
    logits = two_copy_forward(model, prompt, noisy, resp, block)
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), resp, reduction="none")  # (B, L)
    if weighting == "masked_mean":
        return (ce * masked).sum() / masked.sum().clamp(min=1)
    weighted = (ce * masked / p_mask.to(ce.dtype)).sum(1) / n_r
    return weighted.mean()


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model
