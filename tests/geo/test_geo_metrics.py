"""Metrics against scikit-image and hand-built edge maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from geo_helpers import image

from thrifty.geo import edge_f1, grad_ssim, psnr, ssim
from thrifty.geo.metrics import self_similarity


def test_psnr_and_ssim_match_scikit_image() -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a, b = image(2, 16, seed=0), image(2, 16, seed=1).mul(0.3).add(image(2, 16, seed=0).mul(0.7))
    for i in range(2):
        x, y = a[i].permute(1, 2, 0).double().numpy(), b[i].permute(1, 2, 0).double().numpy()
        assert float(psnr(a, b)[i]) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), rel=1e-4)
        sk = structural_similarity(
            x,
            y,
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            win_size=7,
            use_sample_covariance=False,
        )
        assert float(ssim(a, b)[i]) == pytest.approx(sk, abs=0.05)
    assert torch.allclose(ssim(a, a), torch.ones(2)) and torch.allclose(grad_ssim(a, a), torch.ones(2))


def _square(offset: int) -> torch.Tensor:
    img = torch.zeros(1, 3, 24, 24)
    img[..., 6 + offset : 16 + offset, 6:16] = 1.0
    return img


def test_edge_f1_identity_tolerance_and_disjoint() -> None:
    from skimage.feature import canny

    a = _square(0)
    assert float(edge_f1(a, a)) == 1.0
    shifted = _square(1)
    assert float(edge_f1(a, shifted, tolerance=1)) == 1.0  # every edge within one pixel
    strict = float(edge_f1(a, shifted, tolerance=0))
    ea, eb = canny(a[0, 0].double().numpy(), sigma=1.0), canny(shifted[0, 0].double().numpy(), sigma=1.0)
    tp = (ea & eb).sum()
    assert strict == pytest.approx(2 * tp / (ea.sum() + eb.sum()), rel=1e-6) and strict < 1
    assert float(edge_f1(a, torch.zeros_like(a))) == 0.0
    assert np.isclose(float(edge_f1(torch.zeros_like(a), torch.zeros_like(a))), 1.0)


def test_self_similarity_is_cosine_and_bad_pair_raises() -> None:
    f = torch.randn(1, 5, 2, 3)
    sim = self_similarity(f)
    tokens = f.flatten(2)[0].t()
    torch.testing.assert_close(sim[0, 1, 4], torch.cosine_similarity(tokens[1], tokens[4], dim=0))
    with pytest.raises(ValueError, match=r"b: expected shape \(2, 3, 16, 16\)"):
        psnr(image(2, 16), image(2, 8))
