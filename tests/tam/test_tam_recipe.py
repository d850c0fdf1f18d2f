"""The training recipe: weights copied from A, the scaled optimiser, cached pretraining, the full-size loss."""

from pathlib import Path

import pytest
import torch

from thrifty.core.runs import RunContext
from thrifty.tam.algorithm import unroll_clip
from thrifty.tam.config import TamConfig
from thrifty.tam.data import video_batch
from thrifty.tam.model import TinyTAM
from thrifty.tam.recipe import ScaledAdamW, clip_seeds, copy_shared_weights, make_optimizer, pretrained_a, train_variant

SMOKE = TamConfig.from_preset("smoke")


def _ctx(tmp_path: Path, seed: int = 0) -> RunContext:
    return RunContext(out_dir=tmp_path / "run", seed=seed, preset="smoke", device=torch.device("cpu"), threads=1)


def test_copy_shared_weights_copies_every_shared_tensor_and_leaves_the_perceiver_fresh() -> None:
    torch.manual_seed(0)
    a = TinyTAM(SMOKE.model.replace(memory="full"))
    torch.manual_seed(1)
    c = TinyTAM(SMOKE.model.replace(memory="perceiver"))
    fresh = copy_shared_weights(c, a)
    assert fresh and all(k.startswith("perceiver.") for k in fresh)
    a_state, c_state = a.state_dict(), c.state_dict()
    assert all(torch.equal(c_state[k], a_state[k]) for k in a_state)
    d = TinyTAM(SMOKE.model.replace(memory="none"))
    assert copy_shared_weights(d, a) == []  # D's modules are all A's
    assert all(torch.equal(x, a.state_dict()[k]) for k, x in d.state_dict().items())


def test_scaled_adamw_equals_adamw_at_the_scaled_lr() -> None:
    torch.manual_seed(0)
    w1, w2 = torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))
    r1, r2 = torch.nn.Parameter(w1.detach().clone()), torch.nn.Parameter(w2.detach().clone())
    ours = ScaledAdamW([{"params": [w1], "lr_scale": 0.1}, {"params": [w2]}], lr=1e-2, weight_decay=0.01)
    ref = torch.optim.AdamW([{"params": [r1], "lr": 1e-3}, {"params": [r2], "lr": 1e-2}], weight_decay=0.01)
    for step in range(3):
        for p, q in ((w1, r1), (w2, r2)):
            grad = torch.full_like(p, float(step + 1)) + torch.arange(p.numel()).view_as(p)
            p.grad, q.grad = grad.clone(), grad.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(w1, r1)
    torch.testing.assert_close(w2, r2)
    assert ours.param_groups[0]["lr"] == 1e-2  # the schedule's LR is restored after each step


def test_make_optimizer_scales_exactly_the_perceiver_branches() -> None:
    model = TinyTAM(SMOKE.model.replace(memory="perceiver"))
    opt = make_optimizer(model, 1e-3, 0.01, 0.1)
    scaled = {id(p) for g in opt.param_groups if g["lr_scale"] == 0.1 for p in g["params"]}
    assert scaled == {id(p) for p in model.perceiver.branch_parameters()}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_clip_streams_are_disjoint_from_each_other_and_from_the_evaluation_set() -> None:
    a, b, c = clip_seeds(0, 1, 3, 8), clip_seeds(1, 1, 3, 8), clip_seeds(0, 2, 3, 8)
    assert len(set(a) | set(b) | set(c)) == 24 and min(a + b + c) > 20_000_100


def test_pretrained_a_is_cached_by_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    first, info = pretrained_a(SMOKE, _ctx(tmp_path))
    again, info2 = pretrained_a(SMOKE, _ctx(tmp_path))
    assert not info["cached"] and info2["cached"]
    assert all(torch.equal(x, y) for x, y in zip(first.state_dict().values(), again.state_dict().values()))
    _, info3 = pretrained_a(SMOKE.replace(pretrain_steps=2), _ctx(tmp_path))
    assert not info3["cached"]  # another recipe never loads these weights


def test_full_size_perceiver_training_loss_goes_down(tmp_path: Path) -> None:
    """C at the full preset's model size (64 px, 16 + 4x4 latents), trained with the recipe's optimiser."""
    full = TamConfig.from_preset("full")
    cfg = full.replace(steps=6, pretrain_steps=1, batch=2, clip_len=3, lr=4e-3)
    model, result, fresh = train_variant("C", cfg, _ctx(tmp_path), start=None)
    assert model.cfg.image_size == 64 and model.cfg.patch_grid == (4, 4) and len(result.losses) == 7
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert sum(result.losses[-2:]) < sum(result.losses[:2])


def test_mask_loss_on_ungated_logits_stays_finite_and_trains_the_mask_path_when_the_object_is_misjudged() -> None:
    """A frame wrongly judged absent is -1024 everywhere: the gated focal term explodes and has no mask gradient."""
    torch.manual_seed(0)
    model = TinyTAM(SMOKE.model.replace(memory="full"))
    with torch.no_grad():
        model.decoder.obj_head[-1].bias.fill_(-50.0)  # every tracked frame judged "absent"
    vb = video_batch([5, 6], 4, 32, 0.0)  # the target is visible in every frame
    losses = {}
    for gated in (True, False):
        model.zero_grad()
        out = unroll_clip(model, vb.frames, vb.masks, gated_mask_loss=gated)
        out["loss"].backward()
        grad = model.decoder.hyper[0].weight.grad
        losses[gated] = (float(out["loss"].detach()), 0.0 if grad is None else float(grad.abs().sum()))
    assert losses[True][0] - losses[False][0] > 100.0 and losses[True][1] == 0.0  # both pay the obj BCE (~50)
    assert losses[False][1] > 0.0
