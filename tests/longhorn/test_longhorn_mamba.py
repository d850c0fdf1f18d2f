"""The fast Mamba peer equals transformers' MambaForCausalLM; its scan equals the reference; both init families."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import MambaForCausalLM

from thrifty.longhorn.algorithm import build_model
from thrifty.longhorn.initialization import init_ssm_lm
from thrifty.longhorn.mamba import LinearScanFn, MambaLM, reference_linear_scan, selective_scan
from thrifty.longhorn.model import LonghornLM


@pytest.mark.parametrize(("length", "d_state"), [(11, 4), (1, 3), (6, 5)], ids=["L11-N4", "L1-N3", "L6-N5"])
def test_fast_mamba_equals_transformers_on_logits_and_every_gradient(length: int, d_state: int) -> None:
    torch.manual_seed(length)
    oracle = MambaForCausalLM(MambaLM(29, 16, 2, d_state).transformers_config())  # transformers' own init
    fast = MambaLM.from_transformers(oracle)
    idx = torch.randint(0, 29, (2, length), generator=torch.Generator().manual_seed(0))
    ours, theirs = fast(idx), oracle(input_ids=idx, use_cache=False).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    ours.square().mean().backward()
    theirs.square().mean().backward()
    grads = dict(fast.named_parameters())
    for name, param in oracle.named_parameters():
        scale = param.grad.abs().max().clamp(min=1e-6)
        torch.testing.assert_close(grads[name].grad / scale, param.grad / scale, rtol=1e-4, atol=1e-4, msg=name)


def test_to_transformers_round_trip_keeps_every_weight() -> None:
    torch.manual_seed(0)
    fast = MambaLM(23, 16, 2, 4)
    back = MambaLM.from_transformers(fast.to_transformers())
    for (name, a), (_, b) in zip(fast.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def _scan_inputs(batch: int, length: int, channels: int, n_state: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(length)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {
        "x": r(batch, length, channels),
        "delta": torch.nn.functional.softplus(r(batch, length, channels)),
        "A": -torch.rand(channels, n_state, generator=g, dtype=torch.float64) * 3,
        "B": r(batch, length, n_state),
        "C": r(batch, length, n_state),
        "D": r(channels),
        "z": r(batch, length, channels),
        "initial_state": r(batch, channels, n_state),
    }


@pytest.mark.parametrize(("batch", "length", "channels", "n_state"), [(2, 13, 5, 3), (1, 1, 3, 2), (3, 7, 4, 6)])
def test_selective_scan_recurrent_equals_reference_with_gradients(
    batch: int, length: int, channels: int, n_state: int
) -> None:
    t = {k: v.requires_grad_() for k, v in _scan_inputs(batch, length, channels, n_state).items()}
    results = []
    for mode in ("recurrent", "reference"):
        y, s = selective_scan(**t, mode=mode, return_final_state=True)
        grads = torch.autograd.grad((y.sin().sum() + s.square().sum()), list(t.values()))
        results.append((y, s, grads))
    (y1, s1, g1), (y2, s2, g2) = results
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(s1, s2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_linear_scan_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 5, 2, 3, generator=g, dtype=torch.float64).requires_grad_()
    b, s0 = (torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_() for s in ((1, 5, 2, 3), (1, 2, 3)))
    c = torch.randn(1, 5, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda *args: LinearScanFn.apply(*args), (a, b, c, s0))
    y, s = reference_linear_scan(a, b, c, s0)  # the oracle is the recurrence itself
    torch.testing.assert_close(
        s,
        a[:, 4] * (a[:, 3] * (a[:, 2] * (a[:, 1] * (a[:, 0] * s0 + b[:, 0]) + b[:, 1]) + b[:, 2]) + b[:, 3]) + b[:, 4],
    )
    torch.testing.assert_close(y[:, -1], (s * c[:, -1].unsqueeze(-2)).sum(-1))


def test_mamba_ssm_family_initialisation() -> None:
    torch.manual_seed(0)
    model = MambaLM(300, 64, 2, 8, init_scheme="mamba_ssm")
    assert abs(float(model.backbone.embeddings.weight.std()) - 0.02) < 0.002
    mixer = model.backbone.layers[0].mixer
    bound = 1 / math.sqrt(mixer.out_proj.in_features) / math.sqrt(2)  # kaiming-uniform(a=sqrt 5) / sqrt(n_layers)
    assert bound * 0.95 < float(mixer.out_proj.weight.abs().max()) <= bound
    torch.testing.assert_close(mixer.A_log, torch.log(torch.arange(1.0, 9.0)).expand(128, -1))
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert float(dt.min()) >= 1e-3 * 0.99 and float(dt.max()) <= 0.1 * 1.01  # dt ~ LogUniform[1e-3, 0.1]
    longhorn = LonghornLM(300, 64, 2, init_scheme="mamba_ssm")
    assert abs(float(longhorn.embed.weight.std()) - 0.02) < 0.002
    assert float(longhorn.blocks[0].mixer.dt_head.bias.abs().max()) == 0.0  # beta starts at 0.5


@pytest.mark.parametrize("cls", [MambaLM, LonghornLM])
def test_transformers_family_initialisation(cls: type) -> None:
    torch.manual_seed(0)
    model = cls(300, 64, 1, init_scheme="transformers")
    mixer = (model.backbone.layers[0] if cls is MambaLM else model.blocks[0]).mixer
    embed = model.backbone.embeddings if cls is MambaLM else model.embed
    assert abs(float(embed.weight.std()) - 0.1) < 0.01
    assert abs(float(mixer.in_proj.weight.std()) - 0.1) < 0.01
    assert float(mixer.conv1d.bias.abs().max()) == 0.0
    bound = 1 / math.sqrt(mixer.out_proj.in_features)  # kaiming, no residual rescale
    assert bound * 0.95 < float(mixer.out_proj.weight.abs().max()) <= bound


def test_bad_init_scheme_and_mode_raise() -> None:
    with pytest.raises(ValueError, match="init_scheme: expected one of"):
        MambaLM(10, 16, 1, 4, init_scheme="gpt2")
    with pytest.raises(ValueError, match="init_scheme: expected one of"):
        init_ssm_lm(
            torch.nn.Linear(2, 2), embedding=torch.nn.Embedding(2, 2), out_projs=[], n_layers=1, init_scheme="x"
        )
    with pytest.raises(ValueError, match="mode: expected one of"):
        MambaLM(10, 16, 1, 4, mode="fast")
    with pytest.raises(ValueError, match="name: expected one of"):
        build_model("rwkv", 10, 16, 2, 4)
