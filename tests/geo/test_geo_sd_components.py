"""The Stable Diffusion call path, offline: tiny random UNet2DConditionModel + AutoencoderKL + CLIPTextModel."""

from __future__ import annotations

import torch
from geo_helpers import image, scheduler

from thrifty.core.optional import require
from thrifty.geo import (
    DiffusionModel,
    GeometricAccumulationLoss,
    boosted_image_prompt_edit,
    ddim_invert,
    direct_inversion_offsets,
    optimize_null_embeddings,
    reconstruct,
    structure_distance,
    tiny_unet,
    unet_mid_features,
)


def _sd_parts():
    diffusers, transformers = require("diffusers"), require("transformers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    ).eval()
    unet = tiny_unet(8, widths=(8, 16), emb_dim=16, head_dim=4, in_channels=4).eval()
    text = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=8,
        )
    ).eval()
    with torch.no_grad():
        src, tgt, null = (text(torch.tensor([ids])).last_hidden_state for ids in ([1, 5, 2], [1, 7, 2], [1, 2, 2]))
    return DiffusionModel(unet, scheduler(), 4, vae=vae), src, tgt, null


def test_latent_pipeline_inverts_optimises_and_edits() -> None:
    model, src, tgt, null = _sd_parts()
    img = image(1, 16)
    z0 = model.encode(img)
    assert z0.shape == (1, 4, 8, 8)
    traj = ddim_invert(model, z0, src)
    offsets = direct_inversion_offsets(model, traj, src, null, 7.5)
    torch.testing.assert_close(reconstruct(model, traj[-1], src, null, 7.5, offsets=offsets), z0, rtol=0, atol=1e-4)
    loss = GeometricAccumulationLoss(horizon=2, lambda_geo=0.5)  # decodes x0_hat through the VAE
    out = optimize_null_embeddings(model, traj, src, null, w=3.0, inner_steps=2, loss=loss, image=img)
    assert len(out.nulls) == 4 and all(not torch.equal(n, null) for n in out.nulls)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:10, 4:10] = 1
    edited = img.clone()
    edited[..., 4:10, 4:10] = 0.5
    result = boosted_image_prompt_edit(model, img, edited, src, tgt, null, w=3.0, mask=mask, eta_geo=0.1, inner_steps=1)
    assert result.image.shape == img.shape and 0 <= float(result.image.min()) and float(result.image.max()) <= 1
    features = unet_mid_features(model, null)
    assert float(structure_distance(img, img, features)) == 0
    assert float(structure_distance(img, result.image, features)) > 0


def test_geometry_guidance_moves_the_edit_toward_the_source_layout() -> None:
    model, src, tgt, null = _sd_parts()
    img = image(1, 16)
    edited = image(1, 16, seed=9)
    plain = boosted_image_prompt_edit(model, img, edited, src, tgt, null, w=2.0, eta_geo=0.0, inner_steps=1)
    guided = boosted_image_prompt_edit(model, img, edited, src, tgt, null, w=2.0, eta_geo=5.0, inner_steps=1)
    from thrifty.geo import GeometryDescriptor

    desc = GeometryDescriptor()
    assert float(desc(guided.image, img)) < float(desc(plain.image, img))
