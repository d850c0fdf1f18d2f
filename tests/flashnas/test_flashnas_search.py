"""Pareto front, hypervolume, the latency model on synthetic data, and the search loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flashnas_fixtures import random_model

from thrifty.flashnas.algorithm import ImportanceScores
from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.latency import arch_features, interleaved_timings, reduce_times
from thrifty.flashnas.latency_model import LatencyModel, spearman
from thrifty.flashnas.reference import reference_pareto_front
from thrifty.flashnas.search import SearchSpace, hypervolume_2d, pareto_front, run_search


@pytest.mark.parametrize("maximize", [(True, False), (False, False), (True, True, False)])
def test_pareto_front_equals_quadratic_check(maximize: tuple[bool, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 6, (40, len(maximize)), generator=gen).double()  # ties on purpose
    assert torch.equal(pareto_front(y, maximize), reference_pareto_front(y, maximize))
    with pytest.raises(ValueError, match="y"):
        pareto_front(y, maximize[:1])


def test_hypervolume_of_known_staircase() -> None:
    # points (loss, cost): (1, 2) and (2, 1) with ref (3, 3): area 1*2 + 1*1... = 3
    assert hypervolume_2d(np.array([1.0, 2.0]), np.array([2.0, 1.0]), (3.0, 3.0)) == pytest.approx(3.0)
    assert hypervolume_2d(np.array([4.0]), np.array([1.0]), (3.0, 3.0)) == 0.0


def _synthetic_archs(n: int) -> list[FlashLMConfig]:
    gen = torch.Generator().manual_seed(0)
    from thrifty.flashnas.dataset import LatencySpace

    return [LatencySpace().sample(gen) for _ in range(n)]


@pytest.mark.parametrize("residual", ["none", "gp"])
def test_latency_model_recovers_additive_latency(residual: str) -> None:
    archs = _synthetic_archs(12)
    costs = np.array([20.0, 17.0, 52.0, 15.0, 0.05, 0.02])  # ms per GMAC / per layer
    ms = np.array([arch_features(a, "prefill", 1024) @ costs + 0.3 for a in archs])
    noisy = ms * np.exp(np.random.default_rng(0).normal(0, 0.01, len(ms)))
    model = LatencyModel("prefill", 1024, residual=residual).fit(archs, noisy)
    assert model.loo_r2(archs, noisy) > 0.95
    assert model.costs()["attn_core_gmac"] == pytest.approx(52.0, rel=0.15)
    assert spearman(model.predict(archs)[0], ms) > 0.95


def test_latency_model_refit_is_deterministic() -> None:
    from thrifty.flashnas.dataset import DATASET_PATH, LatencyDataset

    if not DATASET_PATH.exists():
        pytest.skip(f"no stored dataset at {DATASET_PATH}")
    data = LatencyDataset.load()
    key = sorted(data.ms)[0]
    mode, _, length = key.rpartition("_")
    preds = [LatencyModel(mode, int(length)).fit(data.archs, data.ms[key]).predict(data.archs)[0] for _ in range(2)]
    np.testing.assert_array_equal(preds[0], preds[1])
    assert np.isfinite(preds[0]).all() and (preds[0] > 0).all()


def test_latency_model_bad_inputs() -> None:
    archs = _synthetic_archs(3)
    with pytest.raises(ValueError, match="ms"):
        LatencyModel("prefill", 128).fit(archs, [1.0, 2.0])
    with pytest.raises(ValueError, match="mode"):
        arch_features(archs[0], "train", 128)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="fit"):
        LatencyModel("decode", 128).predict(archs)


def test_interleaved_timings_and_stats() -> None:
    calls = {"a": lambda: sum(range(100)), "b": lambda: None}
    out = interleaved_timings(calls, warmup=1, reps=3)
    assert set(out) == {"a", "b"} and all(v >= 0 for v in out.values())
    assert reduce_times([3.0, 1.0, 2.0], "min") == 1.0 and reduce_times([3.0, 1.0, 2.0], "median") == 2.0
    with pytest.raises(ValueError, match="stat"):
        reduce_times([1.0], "max")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["random", "ehvi"])
def test_search_spends_exactly_the_budget(method: str) -> None:
    cfg = FlashLMConfig.uniform(11, 32, 3, 4, 2, 32, head_dim=8)
    model = random_model(cfg)
    scores = ImportanceScores.collect(model, [torch.randint(0, 11, (2, 8))])
    space = SearchSpace.from_backbone(cfg, width_step=8, ffn_step=8)
    pool = space.pool(model, scores, 40, torch.Generator().manual_seed(0))
    cost = np.array([c.d_model * len(c.layers) for c in pool], dtype=np.float64)
    calls: list[int] = []

    def evaluate(i: int) -> float:  # quality improves with size: the BO must trade it against cost
        calls.append(i)
        return 1.0 / cost[i]

    chosen = run_search(pool, cfg, evaluate, 5, method=method, cost=cost, n_init=3, seed=0)
    assert len(chosen) == 5 == len(set(chosen)) and calls == chosen
    first = run_search(pool, cfg, lambda i: 0.0, 3, method="random", seed=0)
    assert chosen[:3] == first  # shared seeded initial design
    with pytest.raises(ValueError, match="budget"):
        run_search(pool, cfg, evaluate, 0, method=method, cost=cost)


def test_hv_improvement_equals_brute_force() -> None:
    from thrifty.flashnas.search import hv_improvement

    rng = np.random.default_rng(0)
    front_loss, front_cost = rng.random(6), rng.random(6)
    loss, cost = rng.random((20, 3)), rng.random(20)
    ref = (1.1, 1.05)
    base = hypervolume_2d(front_loss, front_cost, ref)
    expected = np.array(
        [
            [
                hypervolume_2d(np.append(front_loss, loss[r, s]), np.append(front_cost, cost[r]), ref) - base
                for s in range(3)
            ]
            for r in range(20)
        ]
    )
    np.testing.assert_allclose(hv_improvement(loss, cost, front_loss, front_cost, ref), expected, atol=1e-12)


def test_measure_latency_eager_accepts_sdpa_models() -> None:
    from thrifty.flashnas.latency import measure_latency

    cfg = FlashLMConfig.uniform(11, 16, 2, 4, 2, 8, max_seq_len=32)
    model = random_model(cfg, impl="sdpa").float()
    for mode in ("prefill", "decode"):
        ms = measure_latency(model, mode=mode, seq_len=16, backend="eager", warmup=0, reps=2)  # type: ignore[arg-type]
        assert ms > 0
    assert model.attn_impl == "sdpa"  # the caller's model is not modified
    with pytest.raises(ValueError, match="backend"):
        measure_latency(model, mode="prefill", seq_len=16, backend="onnx", warmup=0, reps=1)
