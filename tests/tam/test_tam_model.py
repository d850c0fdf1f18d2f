"""TinyTAM end to end: streaming session, bounded memory, bad input, training, distillation."""

import numpy as np
import pytest
import torch

from thrifty.tam.algorithm import distill_loss, sam2_loss, unroll_clip
from thrifty.tam.config import TamModelConfig
from thrifty.tam.data import video_batch
from thrifty.tam.model import TinyTAM
from thrifty.tam.session import VideoSession

TINY = TamModelConfig(
    image_size=32,
    dim=32,
    mem_dim=16,
    mem_ffn=64,
    dec_mlp=64,
    n_global=2,
    patch_grid=(2, 2),
    num_maskmem=3,
    max_obj_ptrs=4,
)


@pytest.mark.parametrize("memory", ["full", "pooled", "perceiver", "none"])
def test_session_streams_and_never_exceeds_the_memory_bound(memory: str) -> None:
    torch.manual_seed(0)
    session = VideoSession(TinyTAM(TINY.replace(memory=memory)))
    vb = video_batch([0], 10, 32, 0.0)
    first = vb.masks[0, 0, 0].numpy()
    mask, score = session.step((vb.frames[0, 0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), mask=first)
    assert mask.shape == (32, 32) and torch.equal(mask, torch.from_numpy(first > 0.5))
    for t in range(1, 10):
        mask, score = session.step(vb.frames[0, t])
        assert mask.dtype == torch.bool and 0.0 <= score <= 1.0
        assert session.memory_frames <= (TINY.num_maskmem if memory != "none" else 0)
        assert len(session.bank.ptrs) <= TINY.max_obj_ptrs


def test_points_and_box_prompts_are_accepted() -> None:
    torch.manual_seed(0)
    session = VideoSession(TinyTAM(TINY))
    frame = torch.rand(3, 32, 32)
    session.step(frame, points=([[10.0, 12.0]], [1]))
    session2 = VideoSession(TinyTAM(TINY))
    session2.step(frame, box=[4, 4, 20, 20])
    assert session.memory_frames == 1 and session2.memory_frames == 1


def test_bad_input_raises_clear_errors() -> None:
    session = VideoSession(TinyTAM(TINY))
    with pytest.raises(ValueError, match="frame: expected a 32x32"):
        session.step(torch.rand(3, 16, 16), mask=np.ones((16, 16)))
    with pytest.raises(ValueError, match="first frame needs a prompt"):
        session.step(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="mask: expected a \\(32, 32\\)"):
        session.step(torch.rand(3, 32, 32), mask=np.ones((16, 16)))
    with pytest.raises(ValueError, match="prompt mask is empty"):
        session.step(torch.rand(3, 32, 32), mask=np.zeros((32, 32)))
    with pytest.raises(ValueError, match="points"):
        session.step(torch.rand(3, 32, 32), points=(np.zeros((0, 2)), np.zeros(0)))
    with pytest.raises(TypeError, match="frame"):
        session.step([[0.0]], mask=np.ones((32, 32)))
    with pytest.raises(ValueError, match="memory"):
        TamModelConfig(memory="sparse")


def test_a_short_training_run_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = TinyTAM(TINY)
    vb = video_batch([1, 2], 3, 32, 0.0)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    losses = []
    for _ in range(12):
        loss = unroll_clip(model, vb.frames, vb.masks)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_sam2_loss_terms_and_distillation() -> None:
    gt = torch.zeros(2, 1, 8, 8)
    gt[0, 0, 2:5, 2:5] = 1  # object 1 present, object 2 absent
    logits = torch.where(gt > 0, 10.0, -10.0)
    perfect = sam2_loss(logits, torch.tensor([[1.0], [1.0]]), torch.tensor([[10.0], [-10.0]]), gt)
    assert perfect["loss"] < 0.01
    wrong_obj = sam2_loss(logits, torch.tensor([[1.0], [1.0]]), torch.tensor([[10.0], [10.0]]), gt)
    assert wrong_obj["obj"] > 4.0 and wrong_obj["focal"] == perfect["focal"]  # absent object: no mask loss
    with pytest.raises(ValueError, match="gt: expected"):
        sam2_loss(logits, torch.ones(2, 1), torch.ones(2, 1), gt[:, :, :4])
    out = {"feat": torch.randn(2, 4, 3), "cond": torch.randn(2, 4, 3)}
    assert distill_loss(out, out) == 0
    assert distill_loss(out, {k: v + 1 for k, v in out.items()}, 2.0, 1.0).item() == pytest.approx(3.0)


def test_vit_encoder_variant_runs() -> None:
    torch.manual_seed(0)
    model = TinyTAM(TINY.replace(encoder="vit"))
    out = model.track_step(torch.rand(1, 3, 32, 32), model.new_bank(), 0, mask_prompt=torch.ones(1, 1, 32, 32))
    assert out["feat"].shape == (1, 64, 32)
