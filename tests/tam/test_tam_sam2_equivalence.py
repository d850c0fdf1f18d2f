"""Numerical equality with the PyPI ``sam2`` package (copied random weights), skipped where it is absent.

Install (CPU, spec section 1): ``SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2==1.1.0``
then ``pip install hydra-core iopath``.
"""

import re

import pytest
import torch

from thrifty.tam.attention import MemoryAttention, MemoryLayout
from thrifty.tam.memory import MemoryEncoder
from thrifty.tam.rope import apply_axial_rope, axial_rope_cos_sin, sine_pe_2d

sam2_ma = pytest.importorskip("sam2.modeling.memory_attention", reason="PyPI sam2 not installed")
from sam2.modeling import memory_encoder as sam2_me  # noqa: E402
from sam2.modeling.position_encoding import (  # noqa: E402
    PositionEmbeddingSine,
    apply_rotary_enc,
    compute_axial_cis,
)
from sam2.modeling.sam.transformer import RoPEAttention as Sam2RoPEAttention  # noqa: E402


def test_rope_equals_sam2_apply_rotary_enc_with_repeat_and_excluded_tail() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 1, 16, 8, generator=g)
    k = torch.randn(2, 1, 3 * 16, 8, generator=g)
    cis = compute_axial_cis(dim=8, end_x=4, end_y=4)
    q_ref, k_ref = apply_rotary_enc(q, k, cis, repeat_freqs_k=True)
    cos, sin = axial_rope_cos_sin(8, 4, 4)
    torch.testing.assert_close(apply_axial_rope(q, cos, sin), q_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(apply_axial_rope(k, cos, sin, repeat=3), k_ref, atol=1e-6, rtol=1e-6)


def test_sine_pe_equals_sam2_position_embedding_sine() -> None:
    ref = PositionEmbeddingSine(16, warmup_cache=False)(torch.zeros(1, 16, 5, 7))[0]
    torch.testing.assert_close(sine_pe_2d(16, 5, 7), ref, atol=1e-5, rtol=1e-5)


def _sam2_memory_attention(dim: int, kv_dim: int, layers: int, ffn: int, grid: int) -> torch.nn.Module:
    def layer() -> torch.nn.Module:
        self_attn = Sam2RoPEAttention(embedding_dim=dim, num_heads=1, feat_sizes=(grid, grid))
        cross = Sam2RoPEAttention(
            embedding_dim=dim, num_heads=1, kv_in_dim=kv_dim, rope_k_repeat=True, feat_sizes=(grid, grid)
        )
        return sam2_ma.MemoryAttentionLayer(
            "relu",
            cross,
            dim,
            ffn,
            0.0,
            pos_enc_at_attn=False,
            pos_enc_at_cross_attn_keys=True,
            pos_enc_at_cross_attn_queries=False,
            self_attention=self_attn,
        )

    return sam2_ma.MemoryAttention(dim, pos_enc_at_input=True, layer=layer(), num_layers=layers)


def _to_sam2_name(name: str) -> str:
    name = name.replace("cross_attn.", "cross_attn_image.")
    return name.replace("ffn.0.", "linear1.").replace("ffn.3.", "linear2.")


def test_memory_attention_equals_sam2_with_copied_weights() -> None:
    torch.manual_seed(0)
    ref = _sam2_memory_attention(16, 8, 2, 32, 4).eval()
    ours = MemoryAttention(16, 8, layers=2, ffn=32, heads=1).eval()
    ours.load_state_dict({n: ref.state_dict()[_to_sam2_name(n)] for n in ours.state_dict()})
    g = torch.Generator().manual_seed(1)
    layout = MemoryLayout(n_frames=3, grid=(4, 4), n_ptr_tokens=4)
    curr, pos = torch.randn(2, 16, 16, generator=g), torch.randn(2, 16, 16, generator=g)
    mem, mem_pos = (
        torch.randn(2, layout.n_tokens, 8, generator=g),
        torch.randn(2, layout.n_tokens, 8, generator=g),
    )
    expected = ref(
        curr.transpose(0, 1),
        mem.transpose(0, 1),
        pos.transpose(0, 1),
        mem_pos.transpose(0, 1),
        num_obj_ptr_tokens=4,
    )
    out = ours(curr, pos, (4, 4), mem, mem_pos, layout)
    torch.testing.assert_close(out, expected.transpose(0, 1), atol=1e-5, rtol=1e-5)


def _to_sam2_encoder_name(name: str) -> str:
    name = re.sub(r"^mask_down\.(\d)\.(norm\.)?", r"mask_downsampler.encoder.\1.", name)
    name = name.replace("pix_proj.", "pix_feat_proj.")
    name = re.sub(r"^fuser\.(\d)\.", r"fuser.layers.\1.", name)
    return (
        name.replace(".dw.", ".dwconv.")
        .replace(".norm.norm.", ".norm.")
        .replace(".mlp.0.", ".pwconv1.")
        .replace(".mlp.2.", ".pwconv2.")
    )


def test_memory_encoder_equals_sam2_with_copied_weights() -> None:
    torch.manual_seed(0)
    down = sam2_me.MaskDownSampler(16, kernel_size=3, stride=2, padding=1, total_stride=4)
    ref = sam2_me.MemoryEncoder(8, down, sam2_me.Fuser(sam2_me.CXBlock(16), 2), PositionEmbeddingSine(8), 16).eval()
    ours = MemoryEncoder(16, 8).eval()
    state = ref.state_dict()
    for p in state.values():  # layer scale 1e-6 would hide a wrong fuser: make it O(1)
        if p.dim() == 1 and torch.all(p == 1e-6):
            p.fill_(0.5)
    ours.load_state_dict(
        {n: state[_to_sam2_encoder_name(n)] for n in ours.state_dict() if n != "no_obj_embed"}, strict=False
    )
    g = torch.Generator().manual_seed(2)
    feat, logits = torch.randn(2, 16, 4, 4, generator=g), 5 * torch.randn(2, 1, 16, 16, generator=g)
    expected = ref(feat, torch.sigmoid(logits) * 20 - 10, skip_mask_sigmoid=True)
    out = ours(feat, logits, torch.ones(2, 1))
    torch.testing.assert_close(out, expected["vision_features"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        sine_pe_2d(8, 4, 4).expand(2, -1, -1, -1), expected["vision_pos_enc"][0], atol=1e-5, rtol=1e-5
    )


def _to_sam2_decoder_name(name: str) -> str:
    name = re.sub(r"^blocks\.(\d)\.norms\.(\d)\.", lambda m: f"transformer.layers.{m[1]}.norm{int(m[2]) + 1}.", name)
    name = re.sub(
        r"^blocks\.(\d)\.mlp\.(\d)\.", lambda m: f"transformer.layers.{m[1]}.mlp.layers.{int(m[2]) // 2}.", name
    )
    name = re.sub(r"^blocks\.(\d)\.", r"transformer.layers.\1.", name)
    name = name.replace(".t2i.", ".cross_attn_token_to_image.").replace(".i2t.", ".cross_attn_image_to_token.")
    name = name.replace("final_attn.", "transformer.final_attn_token_to_image.")
    name = name.replace("final_norm.", "transformer.norm_final_attn.")
    name = re.sub(r"\.(q|k|v|out)\.(weight|bias)$", r".\1_proj.\2", name)
    name = name.replace("upscale.1.norm.", "output_upscaling.1.").replace("upscale.", "output_upscaling.")
    for ours, theirs in (("hyper", "output_hypernetworks_mlps.0"), ("iou_head", "iou_prediction_head")):
        name = re.sub(rf"^{ours}\.(\d)\.", lambda m, t=theirs: f"{t}.layers.{int(m[1]) // 2}.", name)
    return re.sub(r"^obj_head\.(\d)\.", lambda m: f"pred_obj_score_head.layers.{int(m[1]) // 2}.", name)


@pytest.mark.parametrize("obj_bias", [10.0, -10.0], ids=["present", "absent"])
def test_mask_decoder_equals_sam2_with_copied_weights(obj_bias: float) -> None:
    """Our decoder = sam2's ``MaskDecoder`` with one mask token, object-score MLP and sigmoid IoU head.

    ``obj_bias`` shifts the object-score head so that both branches of SAM2Base's gating are compared: real
    mask logits and pointers where the object is present, ``-1024`` and ``no_obj_ptr`` where it is absent.
    """
    from sam2.modeling.sam.mask_decoder import MaskDecoder as Sam2MaskDecoder
    from sam2.modeling.sam.transformer import TwoWayTransformer

    from thrifty.tam.decoder import NO_OBJ_SCORE, MaskDecoder

    torch.manual_seed(0)
    ref = Sam2MaskDecoder(
        transformer_dim=32,
        transformer=TwoWayTransformer(depth=2, embedding_dim=32, num_heads=4, mlp_dim=64),
        num_multimask_outputs=0,
        iou_head_hidden_dim=32,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        iou_prediction_use_sigmoid=True,
    ).eval()
    with torch.no_grad():
        ref.pred_obj_score_head.layers[-1].bias.add_(obj_bias)
    ours = MaskDecoder(32, heads=4, mlp_dim=64).eval()
    state = ref.state_dict()
    mapped = {n: state[_to_sam2_decoder_name(n)] for n in ours.state_dict() if n.split(".")[0] in _DECODER_SHARED}
    mapped["tokens"] = torch.cat(
        [state["obj_score_token.weight"], state["iou_token.weight"], state["mask_tokens.weight"]]
    )
    missing = ours.load_state_dict(mapped, strict=False).missing_keys
    assert all(n.startswith(("ptr_head.", "no_obj_ptr")) for n in missing), missing  # SAM2Base owns the pointer
    g = torch.Generator().manual_seed(3)
    feat, pe = torch.randn(3, 32, 4, 4, generator=g), torch.randn(32, 4, 4, generator=g)
    sparse, dense = torch.randn(3, 2, 32, generator=g), torch.randn(3, 32, 4, 4, generator=g)
    masks, iou, tokens_out, obj = ref(feat, pe[None], sparse, dense, multimask_output=False, repeat_image=False)
    out = ours(feat, pe, sparse, dense)
    present = obj > 0
    assert bool(present.all()) == (obj_bias > 0) and bool(present.any()) == (obj_bias > 0)
    torch.testing.assert_close(out["obj_logit"], obj, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["iou"], iou, atol=1e-5, rtol=1e-5)
    gated = torch.where(present[:, :, None, None], masks, torch.full_like(masks, NO_OBJ_SCORE))  # SAM2Base gating
    torch.testing.assert_close(out["masks"], gated, atol=1e-4, rtol=1e-5)
    ptr = torch.where(present, ours.ptr_head(tokens_out[:, 0]), ours.no_obj_ptr)
    torch.testing.assert_close(out["obj_ptr"], ptr, atol=1e-5, rtol=1e-5)


_DECODER_SHARED = ("blocks", "final_attn", "final_norm", "upscale", "hyper", "iou_head", "obj_head")
