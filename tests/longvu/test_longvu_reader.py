"""The aligned glyph stamp and its labels, the encoder's heads and reader features, the attention-pooling
reader, the frozen-head needle readout, and the tie-aware ablation checks."""

from __future__ import annotations

import pytest
import torch

from thrifty.longvu.arms import needle_readout
from thrifty.longvu.config import LongVUExperimentConfig
from thrifty.longvu.data import EncodedVideos, frame_glyph
from thrifty.longvu.experiment import _ablation_claims
from thrifty.longvu.model import FrameEncoder, QAModel, pack_token_sets, position_vocab
from thrifty.longvu.tokens import TokenSet
from thrifty.longvu.video import N_GLYPHS, VideoGenerator, glyph_patch


@pytest.fixture(scope="module")
def generator() -> VideoGenerator:
    return VideoGenerator(n_frames=32, frame_size=16, glyph_size=4, max_photos=4, bank_size=32)


def test_stamp_fills_exactly_one_grid_cell(generator: VideoGenerator) -> None:
    frames = torch.zeros(6, 16, 16, 3)
    stamped, cells = generator.stamp(frames, glyph=1, g=torch.Generator().manual_seed(0))
    colour, alpha = glyph_patch(1, 4)
    for k, cell in enumerate(cells.tolist()):
        y, x = (cell // 4) * 4, (cell % 4) * 4
        torch.testing.assert_close(stamped[k, y : y + 4, x : x + 4], colour * alpha[..., None])
        outside = stamped[k].clone()
        outside[y : y + 4, x : x + 4] = 0
        assert outside.abs().sum() == 0  # nothing outside the cell


def test_labelled_frames_mark_the_glyph_cell(generator: VideoGenerator) -> None:
    frames, photos, labels = generator.labelled_frames(64, torch.Generator().manual_seed(1))
    assert frames.shape == (64, 16, 16, 3) and labels.shape == (64, 16) and photos.max() < generator.n_photos
    per_frame = (labels < N_GLYPHS).sum(1)
    assert set(per_frame.tolist()) == {0, 1}  # at most one glyph cell per frame, both kinds present
    for k in (per_frame == 1).nonzero().flatten().tolist():
        cell, glyph = int((labels[k] < N_GLYPHS).nonzero()), int(labels[k].min())
        y, x = (cell // 4) * 4, (cell % 4) * 4
        target = glyph_patch(glyph, 4)[0][0, 0]
        assert (frames[k, y, x] - target).abs().max() < 0.1  # the glyph's corner pixel (noise 0.02)


def test_glyph_size_must_divide_the_frame() -> None:
    with pytest.raises(ValueError, match="glyph_size: expected a divisor of frame_size=16, got 5"):
        VideoGenerator(n_frames=32, frame_size=16, glyph_size=5, bank_size=32)


def test_frame_glyph_reads_the_least_none_token() -> None:
    logits = torch.zeros(2, 4, 9)
    logits[:, :, 8] = 5.0  # every token says "none"
    logits[0, 2, 8], logits[0, 2, 3] = 0.0, 4.0  # frame 0: token 2 is glyph 3
    assert frame_glyph(logits).tolist() == [3, 8]


def test_encoder_heads_and_reader_features() -> None:
    torch.manual_seed(0)
    encoder = FrameEncoder(n_photos=5, frame_size=16, patch=4, dim=8).eval()
    tokens = encoder(torch.rand(3, 16, 16, 3))
    photo, glyph = encoder.heads(tokens)
    assert tokens.shape == (3, 16, 8) and photo.shape == (3, 5) and glyph.shape == (3, 16, 9)
    feats = encoder.reader_features(tokens)
    assert feats.shape == (3, 16, 8 + 9 + 5)
    torch.testing.assert_close(feats[..., :8], tokens)
    torch.testing.assert_close(feats[..., 8:17], glyph)
    torch.testing.assert_close(feats[..., 17:].mean(1), photo)  # linear head: mean of logits = logits of mean


def _batch(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ts = TokenSet(
        torch.randn(n, 4, generator=g),
        torch.arange(n),
        torch.arange(n) % 16,
        torch.full((n,), 4),
        torch.ones(n),
    )
    packed = pack_token_sets([ts], n, 16, 16, position_vocab(4))
    return {**packed, "question": torch.tensor([1]), "candidates": torch.tensor([[0, 1, 2, 3]])}


def test_reader_is_invariant_to_token_order_and_reads_candidates() -> None:
    torch.manual_seed(0)
    model = QAModel(4, 6, 4, dim=16, n_layers=1).eval()
    batch = _batch()
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled = {**batch, **{k: batch[k][:, perm] for k in ("tokens", "time", "pos", "sizes", "valid")}}
    torch.testing.assert_close(model(shuffled), model(batch))  # provenance travels with each token
    swapped = {**batch, "candidates": torch.tensor([[1, 0, 2, 3]])}
    cover, cover_swapped = model(batch)[0, :4], model(swapped)[0, :4]
    torch.testing.assert_close(cover_swapped, cover[[1, 0, 2, 3]])  # a candidate's logit follows it
    for question in (0, 2):  # only the coverage question reads the candidates
        asked = {**batch, "question": torch.tensor([question])}
        torch.testing.assert_close(model(asked), model({**asked, "candidates": torch.tensor([[4, 5, 0, 1]])}))


def test_needle_readout_is_exact_on_hand_built_sets() -> None:
    torch.manual_seed(0)
    encoder = FrameEncoder(n_photos=4, frame_size=16, patch=4, dim=8).eval()
    with torch.no_grad():
        encoder.glyph_head.weight.zero_()
        encoder.glyph_head.bias.zero_()
        encoder.glyph_head.weight[:8, :8] = torch.eye(8) * 5  # glyph c fires on feature c
        encoder.glyph_head.bias[8] = 2.0  # "none" unless a feature fires
    glyph_token = torch.zeros(1, 8)
    glyph_token[0, 5] = 1.0
    hit = TokenSet(torch.cat((torch.zeros(3, 8), glyph_token)), *(torch.zeros(4, dtype=torch.long),) * 3, torch.ones(4))
    miss = TokenSet(torch.zeros(2, 8), *(torch.zeros(2, dtype=torch.long),) * 3, torch.ones(2))
    videos = EncodedVideos(
        torch.zeros(2, 16, 16, 8),
        torch.zeros(2, 16, dtype=torch.long),
        torch.zeros(2, 16, dtype=torch.bool),
        torch.tensor([[5, 0, 0], [5, 0, 0]]),
        torch.zeros(2, 4, dtype=torch.long),
    )
    assert needle_readout(encoder, [hit] * 3 + [miss] * 3, videos) == 0.5


def test_ablation_is_a_tie_inside_two_standard_errors() -> None:
    base = {"acc_needle": 0.9, "se_needle": 0.02, "acc_coverage": 0.8, "se_coverage": 0.03}
    variants = {
        "longvu": base,
        "longvu_no_query": {**base, "acc_needle": 0.5},
        "longvu_no_stc": {**base, "acc_coverage": 0.78},
    }
    variants["longvu@1/32"] = {**base, "acc_coverage": 0.6}
    variants["longvu_no_stc@1/32"] = {**base, "acc_coverage": 0.4}
    variants["longvu_no_temporal@1/8"] = base  # no longvu at 1/8: nothing to compare with
    claims = {c.name.split(" ")[0]: c for c in _ablation_claims(variants)}
    assert set(claims) == {"longvu_no_query", "longvu_no_stc", "longvu_no_stc@1/32"}
    assert claims["longvu_no_query"].holds and not claims["longvu_no_stc"].holds
    assert claims["longvu_no_stc"].target == pytest.approx(2 * (2 * 0.03**2) ** 0.5)
    assert claims["longvu_no_stc@1/32"].value == pytest.approx(0.2) and claims["longvu_no_stc@1/32"].holds


def test_lo_side_must_divide_the_grid() -> None:
    with pytest.raises(ValueError, match="lo_side"):
        LongVUExperimentConfig(lo_side=3)


def test_standardize_uses_training_statistics_and_zeroes_padding() -> None:
    from thrifty.longvu.arms import standardize

    g = torch.Generator().manual_seed(0)
    valid = torch.ones(4, 5, dtype=torch.bool)
    valid[:, 3:] = False
    train = {"tokens": 3 + 2 * torch.randn(4, 5, 2, generator=g), "valid": valid}
    test = {"tokens": train["tokens"].clone() + 1.0, "valid": valid.clone()}
    standardize(train, test)
    rows = train["tokens"][valid]
    torch.testing.assert_close(rows.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(rows.std(0), torch.ones(2))
    assert (train["tokens"][~valid] == 0).all() and (test["tokens"][~valid] == 0).all()
    shift = (test["tokens"][valid] - rows).mean(0)  # +1 on test, divided by the train std (not re-centred)
    assert (shift > 0.2).all()
