"""Mixer/LM: decode equals prefill, split prefill equals one pass, parameter formula, causality, overfit."""

from __future__ import annotations

import pytest
import torch

from thrifty.longhorn.model import LonghornLM, LonghornMixer, mixer_param_count


def _lm(**kw: object) -> LonghornLM:
    torch.manual_seed(0)
    return LonghornLM(37, d_model=16, n_layers=2, d_state=4, **kw).double()  # type: ignore[arg-type]


@pytest.mark.parametrize("prefill", [1, 3, 4, 6], ids=lambda p: f"prefill{p}")
def test_step_decode_equals_full_forward(prefill: int) -> None:
    model = _lm()
    idx = torch.randint(0, 37, (2, 10), generator=torch.Generator().manual_seed(prefill))
    full = model(idx)
    caches = model.allocate_caches(2)
    outs = [model(idx[:, :prefill], caches)]
    outs += [model.step(idx[:, t], caches).unsqueeze(1) for t in range(prefill, 10)]
    torch.testing.assert_close(torch.cat(outs, 1), full)


@pytest.mark.parametrize("mode", ["recurrent", "blocked", "exact"])
def test_split_prefill_with_cache_equals_one_pass(mode: str) -> None:
    model = _lm(scan_mode=mode, chunk_size=3)
    idx = torch.randint(0, 37, (2, 11), generator=torch.Generator().manual_seed(1))
    caches = model.allocate_caches(2)
    split = torch.cat([model(idx[:, :2], caches), model(idx[:, 2:7], caches), model(idx[:, 7:], caches)], 1)
    torch.testing.assert_close(split, model(idx))


def test_generate_matches_greedy_full_forward() -> None:
    model = _lm()
    idx = torch.randint(0, 37, (1, 5), generator=torch.Generator().manual_seed(2))
    out = model.generate(idx, 4)
    ref = idx
    for _ in range(4):
        ref = torch.cat([ref, model(ref)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, ref)


@pytest.mark.parametrize(("d_model", "d_state"), [(64, 16), (16, 4), (48, 8)])
def test_parameter_count_formula(d_model: int, d_state: int) -> None:
    block = LonghornLM(10, d_model, 1, d_state=d_state).blocks[0]
    assert sum(p.numel() for p in block.parameters()) == mixer_param_count(d_model, d_state)
    assert mixer_param_count(64, 16) == 30_656  # spec §2.6


def test_causality_of_the_lm() -> None:
    model = _lm()
    idx = torch.randint(0, 37, (1, 12), generator=torch.Generator().manual_seed(3))
    changed = idx.clone()
    changed[0, 8] = (idx[0, 8] + 1) % 37
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8], rtol=0, atol=0)
    assert not torch.allclose(a[:, 8], b[:, 8])


def test_short_overfit_drives_loss_down() -> None:
    torch.manual_seed(0)
    model = LonghornLM(20, d_model=16, n_layers=2, d_state=4)
    idx = torch.randint(0, 20, (4, 16), generator=torch.Generator().manual_seed(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        logits = model(idx[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_every_parameter_gets_a_gradient() -> None:
    model = _lm()
    model(torch.randint(0, 37, (2, 6))).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_model": 0}, "d_model: expected a positive int"),
        ({"d_model": 8, "scan_mode": "fast"}, "scan_mode: expected one of"),
    ],
)
def test_bad_mixer_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LonghornMixer(**kwargs)


def test_bad_input_shapes_raise() -> None:
    with pytest.raises(ValueError, match="h: expected shape"):
        LonghornMixer(8)(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="idx: expected"):
        _lm()(torch.zeros(3, dtype=torch.long))


def test_token_ids_outside_the_vocabulary_raise() -> None:
    model = LonghornLM(10, d_model=16, n_layers=1, d_state=4)  # embedding padded to 16 rows
    with pytest.raises(ValueError, match="idx: expected token ids in \\[0, 10\\), got \\[0, 12\\]"):
        model(torch.tensor([[0, 12]]))
    with pytest.raises(ValueError, match="idx: expected token ids"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="token: expected token ids"):
        model.step(torch.tensor([10]), model.allocate_caches(1))
    with pytest.raises(ValueError, match="idx: expected integer token ids"):
        model(torch.zeros(1, 2))


@pytest.mark.parametrize(
    ("prompt", "new", "message"),
    [
        (torch.zeros(1, 0, dtype=torch.long), 2, "idx: expected a non-empty"),
        (torch.zeros(1, 2, dtype=torch.long), -1, "max_new_tokens: expected an int >= 0"),
    ],
)
def test_generate_rejects_empty_prompts_and_negative_lengths(prompt: torch.Tensor, new: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _lm().generate(prompt, new)


def test_left_padding_mask_equals_the_unpadded_sequence() -> None:
    model = _lm()
    idx = torch.randint(0, 37, (1, 7), generator=torch.Generator().manual_seed(5))
    padded = torch.cat([torch.full((1, 3), 4), idx], 1)
    mask = torch.tensor([[0, 0, 0] + [1] * 7])
    torch.testing.assert_close(model(padded, mask=mask)[:, 3:], model(idx))
    assert not torch.allclose(model(padded)[:, 3:], model(idx))
