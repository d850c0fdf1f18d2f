from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from thrifty.core.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from thrifty.core.config import ConfigError
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, cosine_lr, train


def test_cosine_schedule_endpoints() -> None:
    assert cosine_lr(0, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 10, 1.0, 0.1) == pytest.approx(1.0)
    assert cosine_lr(10, 100, 10, 1.0, 0.1) == pytest.approx(1.0)
    assert cosine_lr(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    values = [cosine_lr(s, 100, 10, 1.0, 0.1) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def _regression_setup(seed: int = 0) -> tuple[nn.Module, callable, callable]:
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    g = torch.Generator().manual_seed(123)
    w_true = torch.randn(4, 1, generator=g)
    data = [torch.randn(16, 4, generator=g) for _ in range(8)]

    def batch_fn(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = data[step % len(data)]
        return x, x @ w_true

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(m(x), y)

    return model, loss_fn, batch_fn


def test_train_lowers_loss_and_logs(tmp_path) -> None:
    model, loss_fn, batch_fn = _regression_setup()
    ctx = RunContext(tmp_path)
    cfg = TrainConfig(steps=60, lr=0.05, warmup_steps=5, log_every=10, eval_every=20)
    res = train(
        model, loss_fn, batch_fn, cfg, ctx=ctx, series="train/reg", eval_fn=lambda m: {"w_norm": float(m.weight.norm())}
    )
    assert res.losses[-1] < 0.05 * res.losses[0]
    assert [e["step"] for e in res.evals] == [19, 39, 59]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["series"] == "train/reg"]
    assert [r["step"] for r in train_rows] == [0, 10, 20, 30, 40, 50, 59]
    assert sum(r["series"] == "train/reg/eval" for r in rows) == 3


def test_train_is_bitwise_deterministic() -> None:
    results = []
    for _ in range(2):
        model, loss_fn, batch_fn = _regression_setup(seed=3)
        train(model, loss_fn, batch_fn, TrainConfig(steps=15, lr=0.01))
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(results[0], results[1])


def test_train_config_validation() -> None:
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(steps=5, warmup_steps=10)
    with pytest.raises(ConfigError, match="strategy"):
        TrainConfig(strategy="horovod")


def test_checkpoint_round_trip_with_tied_weights(tmp_path) -> None:
    cfg = TransformerLMConfig(vocab_size=30, dim=16, n_layers=1, n_heads=2)
    torch.manual_seed(0)
    lm = TransformerLM(cfg)
    save_checkpoint(tmp_path / "ckpt", lm, cfg.to_dict())
    assert has_checkpoint(tmp_path / "ckpt") and not list((tmp_path / "ckpt").glob(".*tmp"))
    torch.manual_seed(1)
    fresh = TransformerLM(TransformerLMConfig.from_dict(json.loads((tmp_path / "ckpt/config.json").read_text())))
    assert load_checkpoint(tmp_path / "ckpt", fresh) == cfg.to_dict()
    idx = torch.randint(0, 30, (1, 5))
    torch.testing.assert_close(fresh(idx), lm(idx), rtol=0, atol=0)
    assert fresh.head.weight is fresh.embed.weight


def test_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json and model.safetensors"):
        load_checkpoint(tmp_path, nn.Linear(2, 2))


def test_bits_per_token_of_uniform_model_is_log2_vocab() -> None:
    from thrifty.core.lm_eval import evaluate_bits_per_token

    class Uniform(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*x.shape, 16)

    ids = torch.randint(0, 16, (500,))
    bits = evaluate_bits_per_token(Uniform(), ids, seq_len=8, batch=2, n_batches=3)
    assert abs(bits - 4.0) < 1e-6


def test_plots_are_written(tmp_path) -> None:
    from thrifty.core.plots import bar_plot, line_plot

    ctx = RunContext(tmp_path)
    line_plot(ctx, "curve", {"a": ([1, 2], [3, 4]), "b": ([1, 2], [4, 5])}, xlabel="x", ylabel="y", logy=True)
    bar_plot(ctx, "bars", {"a": 1.0, "b": 2.0}, ylabel="y")
    assert (tmp_path / "curve.png").stat().st_size > 1000 and (tmp_path / "bars.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.png", "curve.png"]
