"""The stored latency dataset: loading, drift correction, the shipped file refits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from thrifty.flashnas.dataset import DATASET_PATH, LatencyDataset, LatencySpace, skip_series_archs
from thrifty.flashnas.latency import LatencyKey


def _write(tmp_path, ref_chunks: list[float], ms: list[float]):
    gen = torch.Generator().manual_seed(0)
    records = [
        {"name": f"c{i}", "arch": LatencySpace().sample(gen).to_dict(), "ms": {"prefill_64": v}}
        for i, v in enumerate(ms)
    ]
    raw = {
        "protocol": {"chunk": 2},
        "records": records,
        "reference": {"per_chunk_ms": [{"prefill_64": r} for r in ref_chunks]},
    }
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(raw))
    return path


def test_drift_correction_rescales_each_chunk(tmp_path) -> None:
    # The second chunk ran while the machine was twice as slow (the reference doubled).
    path = _write(tmp_path, [10.0, 20.0], [1.0, 2.0, 2.0, 4.0])
    corrected = LatencyDataset.load(path).ms["prefill_64"]
    np.testing.assert_allclose(corrected[:2] / corrected[2:], [1.0, 1.0])
    raw = LatencyDataset.load(path, drift_correct=False)
    np.testing.assert_allclose(raw.ms["prefill_64"], [1.0, 2.0, 2.0, 4.0])
    assert raw.drift() == {"prefill_64": 2.0}


def test_empty_dataset_raises(tmp_path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"records": []}))
    with pytest.raises(ValueError, match="records"):
        LatencyDataset.load(path)


def test_skip_series_differs_only_in_attention() -> None:
    series = skip_series_archs()
    assert [sum(a.attn) for a in series.values()] == [4, 2, 1]
    assert len({(a.d_model, a.ffn, a.n_heads) for a in series.values()}) == 1


@pytest.mark.skipif(not DATASET_PATH.exists(), reason=f"no stored latency dataset at {DATASET_PATH}")
def test_shipped_dataset_is_complete() -> None:
    data = LatencyDataset.load()
    assert len(data.archs) >= 10
    for key, ms in data.ms.items():
        LatencyKey.parse(key)
        assert ms.shape == (len(data.archs),) and (ms > 0).all()
    assert {r["name"] for r in data.raw["skip_series"]} == set(skip_series_archs())
