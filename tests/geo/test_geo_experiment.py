"""Reproduction plumbing: config validation, crop data, caption encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thrifty.core.config import ConfigError
from thrifty.geo import CaptionEncoder, GeoConfig
from thrifty.geo.training import PhotoCrops


@pytest.mark.parametrize(
    "field,value",
    [("geo_headline", (3, 0.5)), ("guidance", (3.0,)), ("test_scale", 32), ("geo_grid", ((20, 0.1),))],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        GeoConfig.from_preset("quick", **{field: value})


def test_photo_crops_are_seeded_in_range_and_labelled() -> None:
    data = PhotoCrops(("chelsea", "coffee"), 8, (16, 24))
    a, la = data.sample(6, torch.Generator().manual_seed(0))
    b, lb = data.sample(6, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert a.shape == (6, 3, 8, 8) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert set(la.tolist()) <= {0, 1}


def test_caption_encoder_null_index_and_unknown_name() -> None:
    enc = CaptionEncoder(("cat", "coffee"), tokens=2, dim=4)
    assert enc.index("") == 2 and enc.embed("coffee").shape == (1, 2, 4)
    torch.testing.assert_close(enc.embed("cat")[0], enc.table.weight[0].view(2, 4))
    with pytest.raises(ValueError, match="name: expected one of"):
        enc.index("dog")


def test_denoiser_cache_is_keyed_by_recipe_and_code_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from thrifty.core.runs import RunContext
    from thrifty.geo import training

    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    cfg = GeoConfig.from_preset("smoke", train_steps=2)
    ctx = RunContext(tmp_path / "run", seed=0, preset="smoke", device="cpu", threads=1)
    data = PhotoCrops(tuple(cfg.photos), cfg.image_size, tuple(cfg.train_scales))
    first, cached_first = training.get_denoiser(cfg, ctx, data)
    second, cached_second = training.get_denoiser(cfg, ctx, data)
    assert (cached_first, cached_second) == (False, True)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    monkeypatch.setattr(training, "CODE_VERSION", "changed")
    assert training.get_denoiser(cfg, ctx, data)[1] is False
    assert training.get_denoiser(cfg.replace(lr=2e-3), ctx, data)[1] is False
