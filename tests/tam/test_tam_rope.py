"""Axial RoPE: real implementation vs SAM 2's complex form, conventions, shift invariance."""

import math

import pytest
import torch

from thrifty.tam.reference import rope_complex_reference
from thrifty.tam.rope import apply_axial_rope, axial_rope_cos_sin, frame_rope_table, sine_pe_2d


@pytest.mark.parametrize(
    ("h", "w", "repeat", "tail"),
    [(4, 4, 1, 0), (3, 5, 3, 4), (2, 6, 2, 1)],
    ids=["square", "rect-3frames-4ptr", "rect-2frames-1ptr"],
)
def test_real_rope_matches_complex_reference(h: int, w: int, repeat: int, tail: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, repeat * h * w + tail, 16, generator=g, dtype=torch.float64)
    cos, sin = axial_rope_cos_sin(16, h, w, dtype=torch.float64)
    out = apply_axial_rope(x, cos, sin, repeat=repeat, n_tail_skip=tail)
    torch.testing.assert_close(out, rope_complex_reference(x, h, w, repeat=repeat, n_tail_skip=tail))
    if tail:
        assert torch.equal(out[..., -tail:, :], x[..., -tail:, :])  # pointer tokens untouched


def test_first_quarter_pairs_rotate_with_column_second_with_row() -> None:
    cos, sin = axial_rope_cos_sin(8, 3, 4, dtype=torch.float64)
    angles = torch.atan2(sin, cos)
    # token 6 is row 1, column 2: pair 0 (lowest x frequency 1) rotates by 2, pair 2 (y) by 1
    assert angles[6, 0].item() == pytest.approx(2.0)
    assert angles[6, 2].item() == pytest.approx(1.0)


def test_scores_are_invariant_to_a_common_2d_shift() -> None:
    g = torch.Generator().manual_seed(1)
    q, k = (
        torch.randn(1, 1, 16, generator=g, dtype=torch.float64),
        torch.randn(1, 1, 16, generator=g, dtype=torch.float64),
    )
    cos, sin = axial_rope_cos_sin(16, 8, 8, dtype=torch.float64)

    def score(pq: int, pk: int) -> float:
        rq = apply_axial_rope(q, cos[pq : pq + 1], sin[pq : pq + 1])
        rk = apply_axial_rope(k, cos[pk : pk + 1], sin[pk : pk + 1])
        return float((rq * rk).sum())

    base = score(1 * 8 + 2, 3 * 8 + 1)
    assert score(2 * 8 + 4, 4 * 8 + 3) == pytest.approx(base, abs=1e-10)  # both shifted by (+1 row, +2 col)
    assert abs(score(1 * 8 + 2, 3 * 8 + 2) - base) > 1e-6  # a relative change does change the score


def test_frame_table_prepends_identity_rows_and_rejects_bad_shapes() -> None:
    cos, sin = axial_rope_cos_sin(8, 2, 2)
    c2, s2 = frame_rope_table(cos, sin, 3)
    x = torch.randn(1, 7, 8)
    out = apply_axial_rope(x, c2, s2)
    assert torch.equal(out[:, :3], x[:, :3])
    with pytest.raises(ValueError, match="x: expected"):
        apply_axial_rope(torch.randn(1, 5, 8), cos, sin)
    with pytest.raises(ValueError, match="head_dim"):
        axial_rope_cos_sin(6, 2, 2)


def test_sine_pe_puts_y_encoding_first() -> None:
    pe = sine_pe_2d(8, 3, 5)
    assert pe.shape == (8, 3, 5)
    assert torch.allclose(pe[:4, :, 0], pe[:4, :, 4])  # y half constant along a row
    assert torch.allclose(pe[4:, 0, :], pe[4:, 2, :])  # x half constant along a column


def test_scaled_grid_places_patch_latents_at_window_centres() -> None:
    cos, sin = axial_rope_cos_sin(8, 2, 2, scale=4.0, offset=1.5, dtype=torch.float64)
    # token 3 = (row 1, col 1) -> coordinate 4 * 1 + 1.5 = 5.5 on both axes (lowest frequency 1)
    assert cos[3, 0].item() == pytest.approx(math.cos(5.5))
    assert sin[3, 2].item() == pytest.approx(math.sin(5.5))
    assert sin[0, 0].item() == pytest.approx(math.sin(1.5))


def test_memoised_tables_made_under_inference_mode_still_train() -> None:
    """A table first built inside ``torch.inference_mode()`` (e.g. a streaming session) must not break a
    later backward pass that reuses it from the cache."""
    from thrifty.tam.attention import RoPEAttention
    from thrifty.tam.rope import cached_rope_table, cached_sine_pe_2d

    cached_rope_table.cache_clear()
    cached_sine_pe_2d.cache_clear()
    attn = RoPEAttention(8, heads=1)
    x = torch.randn(1, 9, 8)
    with torch.inference_mode():
        attn(x, x, x, (3, 3))
        cached_sine_pe_2d(8, 3, 3, torch.device("cpu"), torch.float32)
    y = torch.randn(1, 9, 8, requires_grad=True)
    pe = cached_sine_pe_2d(8, 3, 3, torch.device("cpu"), torch.float32)
    (attn(y, y, y, (3, 3)).sum() + (y * pe.flatten(1).t()).sum()).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
