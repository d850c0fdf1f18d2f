"""The reproduction's extra arms: unseen photos, the pasted-patch / guided edit, paired differences."""

from __future__ import annotations

import math

import pytest
import torch
from geo_helpers import embeddings, image, tiny_model

from thrifty.core.config import ConfigError
from thrifty.geo import GeoConfig, ddim_invert, guided_edit, paired_difference, paste_patch, reconstruct
from thrifty.geo.results import paired_summary
from thrifty.geo.training import PhotoCrops


def test_paste_patch_replaces_exactly_the_central_square() -> None:
    img, donor = image(2, 8, seed=3), image(2, 8, seed=4)
    edited, mask = paste_patch(img, donor, fraction=0.4)  # side round(3.2) = 3, top-left (2, 2)
    assert mask.shape == (2, 1, 8, 8) and int(mask.sum()) == 2 * 9
    assert torch.equal(mask[0, 0, 2:5, 2:5], torch.ones(3, 3))
    inside = mask.bool().expand_as(img)
    assert torch.equal(edited[inside], donor[inside]) and torch.equal(edited[~inside], img[~inside])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"fraction": 0.0}, "fraction: expected a value in"),
        ({"donor": torch.rand(1, 3, 8, 8)}, "donor: expected shape"),
    ],
)
def test_paste_patch_rejects_bad_input(kwargs: dict, message: str) -> None:
    args = {"image": image(2, 8), "donor": image(2, 8, seed=5), "fraction": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        paste_patch(**args)


def test_guided_edit_without_guidance_is_text_only_inversion_then_cfg_denoising() -> None:
    model = tiny_model(steps=3)
    cond, null = embeddings(2)
    img, edited = image(2, 8), image(2, 8, seed=7)
    nulls = [null + 0.1 * s for s in range(3)]
    out = guided_edit(model, img, edited, cond, nulls, w=3.0, eta_geo=0.0)
    with torch.no_grad():
        z_T = ddim_invert(model, model.encode(edited), cond)[-1]
        expected = model.decode(reconstruct(model, z_T, cond, nulls, 3.0)).clamp(0, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    guided = guided_edit(model, img, edited, cond, nulls, w=3.0, eta_geo=5.0)
    assert not torch.equal(guided, out)
    everywhere = torch.ones(2, 1, 8, 8)  # a mask over the whole image leaves no region to guide
    masked = guided_edit(model, img, edited, cond, nulls, w=3.0, eta_geo=5.0, mask=everywhere)
    torch.testing.assert_close(masked, out, rtol=0, atol=1e-6)


def test_paired_difference_matches_the_textbook_formula() -> None:
    a, b = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.5, 2.5, 1.0])
    d = [0.5, -0.5, 3.0]
    mean = sum(d) / 3
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / 2) / math.sqrt(3)
    assert paired_difference(a, b) == pytest.approx((mean, se), rel=1e-12)
    assert math.isnan(paired_difference(a[:1], b[:1])[1])
    with pytest.raises(ValueError, match="b: expected a non-empty"):
        paired_difference(a, b[:2])


def test_paired_summary_calls_a_tie_only_within_two_standard_errors() -> None:
    base = torch.zeros(4)
    per_image = {"noisy": {"m": torch.tensor([1.0, -1.0, 1.2, -0.8])}, "base": {"m": base}}
    per_image["shifted"] = {"m": torch.tensor([1.0, 1.1, 0.9, 1.0])}
    assert paired_summary(per_image, "noisy", "base", "m")["within_noise"] is True
    shifted = paired_summary(per_image, "shifted", "base", "m")
    assert shifted["within_noise"] is False and shifted["n"] == 4


def test_crops_of_draws_the_same_crops_as_sample() -> None:
    data = PhotoCrops(("chelsea", "coffee", "rocket"), 8, (16, 24))
    crops, labels = data.sample(5, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    again = data.crops_of(torch.randint(3, (5,), generator=gen), gen)
    assert torch.equal(crops, again)


@pytest.mark.parametrize(
    "field,value",
    [
        ("unseen_photos", ("coffee",)),
        ("unseen_photos", ("cat",)),  # the same scikit-image photo as chelsea
        ("unseen_photos", ()),
        ("unseen_caption", "random"),
        ("boost_patch", 0.0),
        ("unseen_crops", 0),
    ],
)
def test_config_rejects_bad_unseen_and_boost_settings(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        GeoConfig.from_preset("quick", **{field: value})


@pytest.mark.parametrize("caption", ["nearest", "null"])
def test_unseen_bench_inverts_under_the_configured_caption(caption: str, tmp_path) -> None:
    from thrifty.core.runs import RunContext
    from thrifty.geo import DiffusionModel
    from thrifty.geo.experiment import unseen_bench
    from thrifty.geo.model import CropClassifier
    from thrifty.geo.training import build_denoiser, sampling_scheduler

    cfg = GeoConfig.from_preset("smoke", unseen_caption=caption, unseen_crops=2)
    torch.manual_seed(0)
    denoiser, classifier = build_denoiser(cfg).eval(), CropClassifier(len(cfg.photos)).eval()
    ctx = RunContext(tmp_path, seed=0, preset="smoke", device="cpu", threads=1)
    bench = unseen_bench(cfg, DiffusionModel(denoiser.unet, sampling_scheduler(), 2), denoiser, classifier, ctx)
    assert bench.images.shape == (2, 3, 8, 8)
    with torch.no_grad():
        nearest = classifier(bench.images).argmax(-1)
        ids = nearest if caption == "nearest" else torch.full_like(nearest, denoiser.captions.null_index)
        assert torch.equal(bench.labels, nearest) and torch.equal(bench.targets, (nearest + 1) % len(cfg.photos))
        torch.testing.assert_close(bench.cond, denoiser.captions(ids), rtol=0, atol=0)
