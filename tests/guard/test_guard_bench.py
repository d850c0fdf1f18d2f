"""guard's runtime pieces: the static-KV decode of the pruned and int4 students, and ``thrifty bench guard``."""

from __future__ import annotations

import copy

import pytest
import torch

from thrifty.core.bench import BenchContext
from thrifty.core.deploy import executorch_available
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.core.lm_export import StaticKVDecodeStep
from thrifty.guard.bench import run_bench
from thrifty.guard.model import prune_output_layer
from thrifty.guard.quant import quantize_8da4w


def _student() -> TransformerLM:
    torch.manual_seed(7)
    cfg = TransformerLMConfig(vocab_size=40, dim=64, n_layers=2, n_heads=4, mlp_hidden=96, tie_embeddings=False)
    return prune_output_layer(TransformerLM(cfg), list(range(10)), expand_to_vocab=False).eval()


def test_static_kv_decode_of_the_pruned_and_the_int4_student_equals_their_forward() -> None:
    fp32 = _student()
    int4 = quantize_8da4w(copy.deepcopy(fp32), group_size=32, embedding_bits=4)
    ids = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(8))
    for model in (fp32, int4):
        with torch.no_grad():
            full = model(ids)
        assert full.shape == (2, 8, 10)  # K logits of the pruned head
        # activations are quantised per token, so decoding token by token sees the same int8 inputs
        torch.testing.assert_close(StaticKVDecodeStep(model, 12, batch=2).prefill(ids), full, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not executorch_available(), reason="executorch not installed")
def test_bench_rows_report_runtime_prefill_and_decode_on_fully_delegated_graphs() -> None:
    ctx = BenchContext(device=torch.device("cpu"), threads=1, quick=True)
    rows = run_bench(ctx, sizes={"dim": 64, "layers": 2, "ffn": 128})
    assert [r["variant"] for r in rows] == ["teacher_fp32", "student_fp32", "student_8da4w"]
    for row in rows:
        assert row["non_delegated"] == 1  # the embedding lookup only: TTFT measures the model, not fallbacks
        assert row["decode_tok_s"] == pytest.approx(1e3 / row["decode_ms"])
        assert row["prompt_tok_s"] == pytest.approx(64 / (row["median_ms"] / 1e3))
    assert rows[0]["ttft_vs_teacher"] == 1.0
    assert rows[2]["pte_bytes"] < rows[1]["pte_bytes"] < rows[0]["pte_bytes"]
