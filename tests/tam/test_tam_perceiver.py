"""EdgeTAM 2D Spatial Perceiver: locality of patch latents, permutation invariance of global latents."""

import pytest
import torch

from thrifty.tam.perceiver import SpatialPerceiver


def _perceiver(n_global: int = 3, grid: tuple[int, int] = (2, 2)) -> SpatialPerceiver:
    torch.manual_seed(0)
    return SpatialPerceiver(8, n_global, grid).double().eval()


def test_patch_latent_ignores_pixels_outside_its_window() -> None:
    model = _perceiver()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 4, 6, generator=g, dtype=torch.float64)
    pos = torch.randn_like(x)
    tokens, _ = model(x, pos)
    x2 = x.clone()
    x2[:, :, 2:, :] += torch.randn(1, 8, 2, 6, generator=g, dtype=torch.float64)  # windows 2, 3 change
    tokens2, _ = model(x2, pos)
    patch, patch2 = tokens[:, 3:], tokens2[:, 3:]
    torch.testing.assert_close(patch[:, :2], patch2[:, :2])
    assert (patch[:, 2:] - patch2[:, 2:]).abs().amax(-1).min() > 1e-6  # the changed windows do move
    assert (tokens[:, :3] - tokens2[:, :3]).abs().max() > 1e-6  # global latents see everything


def test_global_latents_are_invariant_to_joint_permutation_of_tokens_and_positions() -> None:
    model = _perceiver(grid=(0, 0))
    g = torch.Generator().manual_seed(1)
    x, pos = (
        torch.randn(2, 8, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(2, 8, 4, 4, generator=g, dtype=torch.float64),
    )
    perm = torch.randperm(16, generator=g)
    xp = x.flatten(2)[:, :, perm].view_as(x)
    pp = pos.flatten(2)[:, :, perm].view_as(pos)
    torch.testing.assert_close(model(x, pos)[0], model(xp, pp)[0])
    assert (model(x, pos)[0] - model(xp, pos)[0]).abs().max() > 1e-6  # positions do matter


def test_output_positions_are_zero_for_global_and_grid_pe_for_patches() -> None:
    model = _perceiver()
    tokens, pos = model(torch.randn(2, 8, 4, 4, dtype=torch.float64), torch.randn(2, 8, 4, 4, dtype=torch.float64))
    assert tokens.shape == pos.shape == (2, 7, 8)
    assert torch.equal(pos[:, :3], torch.zeros_like(pos[:, :3]))
    assert pos[:, 3:].abs().sum() > 0


def test_bad_inputs_raise() -> None:
    model = _perceiver()
    with pytest.raises(ValueError, match="not divisible"):
        model(torch.randn(1, 8, 3, 4, dtype=torch.float64), torch.randn(1, 8, 3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 4, 4, 4, dtype=torch.float64), torch.randn(1, 4, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one latent"):
        SpatialPerceiver(8, 0, (0, 0))


def test_final_norm_gain_and_latent_scale_are_configurable() -> None:
    model = SpatialPerceiver(8, 2, (1, 1), latent_std=0.0, norm_init=0.25)
    assert torch.equal(model.global_latents, torch.zeros(2, 8))
    tokens, _ = model(torch.randn(1, 8, 2, 2), torch.randn(1, 8, 2, 2))
    assert tokens.std(-1).max() < 0.3  # LayerNorm output scaled by the 0.25 gain


def test_pool_init_with_closed_branches_stores_layer_normed_window_averages() -> None:
    """init="pool", branch_gain=0 and zero latents: each patch latent is LN(mean of its LN'd window) * gain."""
    torch.manual_seed(0)
    model = SpatialPerceiver(8, 2, (2, 3), latent_std=0.0, norm_init=0.25, branch_gain=0.0, init="pool").double()
    g = torch.Generator().manual_seed(3)
    x, pos = torch.randn(2, 8, 4, 9, generator=g, dtype=torch.float64), torch.randn(2, 8, 4, 9, dtype=torch.float64)
    tokens, _ = model(x, pos)
    normed = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,)).permute(0, 3, 1, 2)
    windows = torch.nn.functional.avg_pool2d(normed, (2, 3)).flatten(2).transpose(1, 2)  # (B, 6, C) row-major
    expected = 0.25 * torch.nn.functional.layer_norm(2 * windows, (8,))  # each of the 2 layers adds the average
    torch.testing.assert_close(tokens[:, 2:], expected)
    mean_all = torch.nn.functional.layer_norm(2 * (normed.flatten(2).mean(2) + pos.flatten(2).mean(2)), (8,))
    torch.testing.assert_close(tokens[:, :2], 0.25 * mean_all[:, None].expand(-1, 2, -1))


def test_branch_gains_scale_only_the_latent_branches() -> None:
    torch.manual_seed(0)
    closed = SpatialPerceiver(8, 2, (2, 2), branch_gain=0.0).double()
    x, pos = torch.randn(1, 8, 4, 4, dtype=torch.float64), torch.randn(1, 8, 4, 4, dtype=torch.float64)
    before, _ = closed(x, pos)
    with torch.no_grad():
        for p in closed.branch_parameters():
            if p.dim() >= 2:
                p.mul_(3.0)  # branch weights do not matter while the gains are zero
    torch.testing.assert_close(closed(x, pos)[0], before)
    with torch.no_grad():
        for layer in closed.layers:
            layer.gains["ff2"].fill_(1.0)
    assert (closed(x, pos)[0] - before).abs().max() > 1e-6
    branch = {id(p) for p in closed.branch_parameters()}
    assert all(id(p) not in branch for p in closed.layers[0].cross.parameters())
    assert {id(p) for p in closed.layers[1].ff1.parameters()} <= branch
    with pytest.raises(ValueError, match="init: expected 'random' or 'pool'"):
        SpatialPerceiver(8, 2, (1, 1), init="avg")
