"""``thrifty bench guard``: ExecuTorch TTFT of a 256-token moderation prompt, teacher vs student, and sizes."""

from __future__ import annotations

import copy
from typing import Any

import torch

from thrifty.core.bench import BenchContext, time_fn
from thrifty.core.deploy import ExecuTorchRunner, executorch_available, set_executorch_threads
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.guard.deploy import lower_guard, time_first_token
from thrifty.guard.model import prune_output_layer
from thrifty.guard.quant import quantize_8da4w


def bench_models(vocab_size: int = 128, dim: int = 128) -> dict[str, torch.nn.Module]:
    """Teacher (6 layers, ffn 512, full head) and the pruned student (3 layers, ffn 256, 18-logit head)."""
    torch.manual_seed(0)
    teacher = TransformerLM(TransformerLMConfig(vocab_size, dim, 6, 4, mlp_hidden=512, tie_embeddings=False)).eval()
    student = TransformerLM(TransformerLMConfig(vocab_size, dim, 3, 4, mlp_hidden=256, tie_embeddings=False))
    student = prune_output_layer(student, list(range(18)), expand_to_vocab=False).eval()
    int4 = quantize_8da4w(copy.deepcopy(student), group_size=32, embedding_bits=4)
    return {"teacher_fp32": teacher, "student_fp32": student, "student_8da4w": int4}


def run_bench(ctx: BenchContext) -> list[dict[str, Any]]:
    """Rows per model: runtime TTFT and prompt tokens/s, eager time, .pte bytes; target int4 TTFT <= 0.35x teacher."""
    seq_len = 64 if ctx.quick else 256
    ids = torch.randint(0, 128, (1, seq_len), generator=torch.Generator().manual_seed(0))
    rows: list[dict[str, Any]] = []
    models = bench_models()
    use_et = executorch_available()
    if use_et:
        set_executorch_threads(ctx.threads)
    for name, model in models.items():
        with torch.no_grad():
            eager = time_fn(lambda m=model: m(ids), threads=ctx.threads)
        row: dict[str, Any] = {"case": f"prefill T={seq_len}", "variant": name, "eager_ms": eager.median_ms}
        if use_et:
            program = lower_guard(model, seq_len)
            ttft = time_first_token(ExecuTorchRunner(program), ids, repeats=10)
            row.update({"median_ms": 1e3 * ttft, "prompt_tok_s": seq_len / ttft, "pte_bytes": len(program.buffer)})
        rows.append(row)
    if use_et:
        teacher_ms = rows[0]["median_ms"]
        for row in rows:
            row["ttft_vs_teacher"] = row["median_ms"] / teacher_ms
            row["target"] = "student_8da4w <= 0.35"
    return rows
