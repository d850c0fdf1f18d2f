"""The peers and the protocol: GLA chunked == recurrent, parameter parity, MQAR generator, decode timing."""

from __future__ import annotations

import pytest
import torch

from thrifty.longhorn.algorithm import ZOO_MODELS, bucket_edges, build_zoo, decoder_for, paired_interval, verdict
from thrifty.longhorn.baselines import count_params, gla_chunked
from thrifty.longhorn.mqar import IGNORE_INDEX, mqar_accuracy, mqar_batch, plateau_heuristics
from thrifty.longhorn.reference import naive_gla_recurrent


@pytest.mark.parametrize(("length", "chunk"), [(13, 4), (16, 16), (5, 8)], ids=["L13-C4", "L16-C16", "L5-C8"])
def test_gla_chunked_equals_recurrent(length: int, chunk: int) -> None:
    g = torch.Generator().manual_seed(length)
    q, k, lg = (torch.randn(2, 2, length, 3, generator=g, dtype=torch.float64) for _ in range(3))
    v = torch.randn(2, 2, length, 4, generator=g, dtype=torch.float64)
    lg = -torch.nn.functional.softplus(lg) * 2  # strong decays stress the overflow-free form
    s0 = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64)
    o, s = gla_chunked(q, k, v, lg, chunk_size=chunk, initial_state=s0)
    o_ref, s_ref = naive_gla_recurrent(q, k, v, lg, s0)
    torch.testing.assert_close(o, o_ref)
    torch.testing.assert_close(s, s_ref)


def test_gla_chunked_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v, lg = (torch.randn(1, 1, 5, 2, generator=g, dtype=torch.float64) for _ in range(4))
    lg = -torch.nn.functional.softplus(lg)
    s0 = torch.randn(1, 1, 2, 2, generator=g, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (q, k, v, lg, s0)]
    assert torch.autograd.gradcheck(lambda *a: gla_chunked(*a[:4], chunk_size=2, initial_state=a[4]), leaves)


def test_peers_have_equal_parameters_within_ten_percent() -> None:
    zoo = build_zoo(
        ZOO_MODELS,
        65,
        32,
        4,
        8,
        seed=0,
        device=torch.device("cpu"),
    )
    counts = {name: count_params(m) for name, m in zoo.items()}
    for name, n in counts.items():
        assert abs(n / counts["longhorn"] - 1) <= 0.10, (name, counts)
    idx = torch.randint(0, 65, (2, 9))
    for name, model in zoo.items():
        assert model(idx).shape == (2, 9, 65), name


def test_mqar_batch_follows_zoology() -> None:
    inputs, labels = mqar_batch(50, vocab=80, seq_len=32, kv=6, generator=torch.Generator().manual_seed(0))
    assert inputs.shape == labels.shape == (50, 32)
    assert bool(((inputs >= 0) & (inputs < 80)).all())
    keys, values = inputs[:, 0:12:2], inputs[:, 1:12:2]
    assert bool(((keys >= 1) & (keys < 40)).all()) and bool(((values >= 40) & (values < 80)).all())
    assert all(len(set(row.tolist())) == 6 for row in keys)
    assert all(len(set(row.tolist())) == 6 for row in values)  # values without replacement
    for row in range(50):
        query = labels[row] != IGNORE_INDEX
        positions = query.nonzero().flatten()
        assert int(query.sum()) == 6 and not bool(query[:12].any())
        assert bool(((positions - 12) % 2 == 0).all())  # queries at even offsets of the query region
        lookup = dict(zip(keys[row].tolist(), values[row].tolist(), strict=True))
        for pos in positions.tolist():
            assert lookup[int(inputs[row, pos])] == int(labels[row, pos])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab": 32, "seq_len": 32, "kv": 2}, "vocab: expected vocab > seq_len"),
        ({"vocab": 64, "seq_len": 31, "kv": 2}, "seq_len: expected a positive even length"),
        ({"vocab": 64, "seq_len": 32, "kv": 9}, "kv: expected 1 <= kv and 4 \\* kv <= seq_len"),
    ],
)
def test_mqar_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mqar_batch(1, **kwargs)


def test_plateau_heuristics_on_a_hand_built_example() -> None:
    # V = 20 (values >= 10), kv = 2: pairs (1, 11) (2, 12); queries: key 2 at 6, key 1 at 8.
    inputs = torch.tensor([[1, 11, 2, 12, 5, 13, 2, 7, 1, 0]])
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels[0, 6], labels[0, 8] = 12, 11
    out = plateau_heuristics(inputs, labels, vocab=20, kv=2, generator=torch.Generator().manual_seed(0))
    assert out["most_recent_value"] == 0.0  # the latest value token before both queries is 13
    labels[0, 6] = 13  # now the recency answer is right for the first query
    out = plateau_heuristics(inputs, labels, vocab=20, kv=2, generator=torch.Generator().manual_seed(0))
    assert out["most_recent_value"] == 0.5


def test_random_context_value_scores_one_over_kv() -> None:
    g = torch.Generator().manual_seed(3)
    inputs, labels = mqar_batch(3000, vocab=128, seq_len=32, kv=4, generator=g)
    out = plateau_heuristics(inputs, labels, vocab=128, kv=4, generator=g)
    assert abs(out["random_context_value"] - 0.25) < 0.02


def test_mqar_accuracy_and_errors() -> None:
    labels = torch.full((1, 4), IGNORE_INDEX)
    labels[0, 2] = 3
    logits = torch.zeros(1, 4, 5)
    logits[0, 2, 3] = 1.0
    assert mqar_accuracy(logits, labels) == 1.0
    logits[0, 2, 4] = 2.0
    assert mqar_accuracy(logits, labels) == 0.0
    with pytest.raises(ValueError, match="labels: expected at least one query"):
        mqar_accuracy(logits, torch.full((1, 4), IGNORE_INDEX))


def test_paired_interval_and_verdict() -> None:
    out = paired_interval([0.2, 0.25, 0.3])
    half = 4.302652729749462 * 0.05 / 3**0.5  # t(0.975, df 2) * sd / sqrt(n)
    assert out["mean"] == pytest.approx(0.25) and out["high"] == pytest.approx(0.25 + half)
    assert verdict(out) == "higher"
    assert verdict(paired_interval([-0.2, -0.25, -0.3])) == "lower"
    assert verdict(paired_interval([0.1, 0.2, 0.3])) == "tie"  # mean 0.2 but the interval reaches below 0
    assert verdict(paired_interval([-0.1, 0.2, 0.05])) == "tie"
    assert verdict(paired_interval([0.5])) == "tie"  # one pair: an infinite interval


def test_bucket_edges() -> None:
    assert bucket_edges(128, 1024) == [0, 128, 256, 512, 1024]
    assert bucket_edges(128, 300) == [0, 128, 256, 300]


@pytest.mark.parametrize("name", ["longhorn", "mamba", "mamba_hf", "transformer"])
def test_decoders_match_full_forward(name: str) -> None:
    model = build_zoo((name,), 33, 16, 2, 4, seed=0, device=torch.device("cpu"))[name].eval()
    idx = torch.randint(0, 33, (1, 9), generator=torch.Generator().manual_seed(1))
    prefill, step = decoder_for(model)
    with torch.no_grad():
        state = prefill(idx[:, :6])
        got = torch.stack([step(idx[:, t], state) for t in range(6, 9)], 1)
        torch.testing.assert_close(got, model(idx)[:, 6:9], rtol=1e-4, atol=1e-4)
