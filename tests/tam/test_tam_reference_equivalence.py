"""thrifty.tam equals EfficientTAM's pooled attention and EdgeTAM's perceiver / latent cross-attention.

The reference packages (``efficient-track-anything==1.0``, ``edgetam-dimos==1.0.1``) both ship a package
named ``sam2``, so ``make install`` puts each under ``<venv>/vendor/<name>`` and the reference side runs in a
subprocess (``tam_reference_dump.py``) with that directory first on ``PYTHONPATH``. The weights it used are
copied into the thrifty module, which then runs on the same inputs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from thrifty.tam.attention import MemoryLayout, RoPEAttention
from thrifty.tam.perceiver import SpatialPerceiver

VENDOR = Path(sys.prefix) / "vendor"
DUMP_SCRIPT = Path(__file__).with_name("tam_reference_dump.py")
DIM, KV_DIM, MAP, FRAMES, PTR, N_GLOBAL, PATCH = 32, 16, 8, 3, 4, 4, 2


def _reference(package: str, case: str, tmp_path: Path) -> dict:
    """Run ``case`` of the dump script against the vendored ``package``; skip when it is not installed."""
    root = VENDOR / package
    if not (root / "sam2").is_dir():
        pytest.skip(f"{package} reference code not installed under {root} (make install puts it there)")
    out = tmp_path / f"{case}.pt"
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, str(DUMP_SCRIPT), case, str(out)], env=env, check=True, timeout=120)
    return torch.load(out)


def _perceiver_key(name: str) -> str:
    """EdgeTAM ``PerceiverResampler`` parameter name -> :class:`SpatialPerceiver` name."""
    renames = [
        (r"^latents$", "global_latents"),
        (r"^latents_2d$", "patch_latents"),
        (r"\.attn\.norm_x\.", ".cross.norm_context."),
        (r"\.attn\.", ".cross."),
        (r"\.self_attn\.norm\.", ".self_attn.norm_latents."),
        (r"\.ff\.", ".ff1."),
        (r"\.self_ff\.", ".ff2."),
        (r"\.to_q\.", ".q."),
        (r"\.to_kv\.", ".kv."),
        (r"\.to_out\.", ".out."),
    ]
    for pattern, repl in renames:
        name = re.sub(pattern, repl, name)
    return name


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_pooled_cross_attention_equals_efficienttam(tmp_path: Path, impl: str) -> None:
    ref = _reference("efficienttam", "efficienttam_pooled", tmp_path)
    ours = RoPEAttention(DIM, KV_DIM, heads=1, cross="pooled", impl=impl).eval()
    ours.load_state_dict(ref["state_dict"])
    q, k, v = ref["inputs"]
    layout = MemoryLayout(n_frames=FRAMES, grid=(MAP, MAP), n_ptr_tokens=PTR)
    with torch.no_grad():
        got = ours(q, k, v, (MAP, MAP), layout)
    torch.testing.assert_close(got, ref["outputs"][0], rtol=1e-5, atol=1e-5)


def test_spatial_perceiver_equals_edgetam(tmp_path: Path) -> None:
    ref = _reference("edgetam", "edgetam_perceiver", tmp_path)
    ours = SpatialPerceiver(DIM, N_GLOBAL, (PATCH, PATCH), depth=2, heads=1, ff_mult=4).eval()
    ours.load_state_dict({_perceiver_key(n): t for n, t in ref["state_dict"].items()})
    x, pos = ref["inputs"]
    with torch.no_grad():
        latents, latent_pos = ours(x, pos)
    torch.testing.assert_close(latents, ref["outputs"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(latent_pos, ref["outputs"][1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_latent_cross_attention_equals_edgetam_official_rope(tmp_path: Path, impl: str) -> None:
    ref = _reference("edgetam", "edgetam_rope_v2", tmp_path)
    ours = RoPEAttention(DIM, KV_DIM, heads=1, cross="full", impl=impl).eval()
    ours.load_state_dict(ref["state_dict"])
    q, k, v = ref["inputs"]
    # EdgeTAM's "official" convention: patch latents rotated on their own integer grid (scale 1, offset 0).
    layout = MemoryLayout(n_frames=FRAMES, grid=(PATCH, PATCH), n_nope_per_frame=N_GLOBAL, n_ptr_tokens=PTR)
    with torch.no_grad():
        got = ours(q, k, v, (MAP, MAP), layout)
    torch.testing.assert_close(got, ref["outputs"][0], rtol=1e-5, atol=1e-5)
