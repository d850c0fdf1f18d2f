"""Run one EfficientTAM / EdgeTAM reference module on seeded random inputs and save everything.

Runs in a subprocess whose ``PYTHONPATH`` puts a vendored reference package first, because EfficientTAM and
EdgeTAM both ship a top-level package named ``sam2`` (clashing with SAM 2 itself). Usage::

    python tam_reference_dump.py CASE OUT.pt

Saves ``{"state_dict", "inputs", "outputs"}``. Every parameter is redrawn from N(0, 0.2^2) so that LayerNorm
gains and biases are not at their trivial initial values.
"""

from __future__ import annotations

import sys

import torch

DIM, KV_DIM, MAP, FRAMES, PTR = 32, 16, 8, 3, 4
N_GLOBAL, PATCH = 4, 2


def _randomise(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.2)
    return module.eval()


def efficienttam_pooled() -> dict:
    """EfficientTAM's pooled cross-attention over 3 memory frames + 4 pointer tokens."""
    from sam2.modeling.sam.transformer import EfficientRoPEAttention1

    attn = EfficientRoPEAttention1(
        embedding_dim=DIM, num_heads=1, kv_in_dim=KV_DIM, rope_k_repeat=True, feat_sizes=(MAP, MAP)
    )
    q = torch.randn(2, MAP * MAP, DIM)
    k, v = torch.randn(2, FRAMES * MAP * MAP + PTR, KV_DIM), torch.randn(2, FRAMES * MAP * MAP + PTR, KV_DIM)
    _randomise(attn)
    with torch.no_grad():
        out = attn(q, k, v, num_k_exclude_rope=PTR)
    return {"state_dict": attn.state_dict(), "inputs": (q, k, v), "outputs": (out,)}


def edgetam_perceiver() -> dict:
    """EdgeTAM's PerceiverResampler with its released settings (depth 2, 1 head, self-attention, pos at k/v)."""
    from sam2.modeling.perceiver import PerceiverResampler
    from sam2.modeling.position_encoding import PositionEmbeddingSine

    perceiver = PerceiverResampler(
        dim=DIM,
        depth=2,
        dim_head=DIM,
        heads=1,
        num_latents=N_GLOBAL,
        num_latents_2d=PATCH * PATCH,
        ff_mult=4,
        hidden_dropout_p=0.0,
        attention_dropout_p=0.0,
        pos_enc_at_key_value=True,
        concat_kv_latents=False,
        position_encoding=PositionEmbeddingSine(num_pos_feats=DIM, normalize=True),
        use_self_attn=True,
    )
    # Batch 1: the reference's forward_2d calls .view on an expanded tensor, which fails for batch > 1.
    x = torch.randn(1, DIM, MAP, MAP)
    pos = PositionEmbeddingSine(num_pos_feats=DIM, normalize=True)(x)
    _randomise(perceiver)
    with torch.no_grad():
        latents, latent_pos = perceiver(x, pos)
    return {"state_dict": perceiver.state_dict(), "inputs": (x, pos), "outputs": (latents, latent_pos)}


def edgetam_rope_v2() -> dict:
    """EdgeTAM's cross-attention over [global (no RoPE) ; patch latents (RoPE on their grid)] x 3 + pointers."""
    from sam2.modeling.sam.transformer import RoPEAttentionv2

    attn = RoPEAttentionv2(embedding_dim=DIM, num_heads=1, kv_in_dim=KV_DIM, q_sizes=(MAP, MAP), k_sizes=(PATCH, PATCH))
    n_mem = FRAMES * (N_GLOBAL + PATCH * PATCH) + PTR
    q, k, v = torch.randn(2, MAP * MAP, DIM), torch.randn(2, n_mem, KV_DIM), torch.randn(2, n_mem, KV_DIM)
    _randomise(attn)
    with torch.no_grad():
        out = attn(q, k, v, num_k_exclude_rope=PTR, rope_k_repeat=FRAMES)
    return {"state_dict": attn.state_dict(), "inputs": (q, k, v), "outputs": (out,)}


CASES = {
    "efficienttam_pooled": efficienttam_pooled,
    "edgetam_perceiver": edgetam_perceiver,
    "edgetam_rope_v2": edgetam_rope_v2,
}

if __name__ == "__main__":
    case, out_path = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.save(CASES[case](), out_path)
