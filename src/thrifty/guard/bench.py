"""``thrifty bench guard``: ExecuTorch TTFT of a moderation prompt and decode tokens/s, teacher vs student."""

from __future__ import annotations

import copy
from typing import Any

import torch

from thrifty.core.bench import BenchContext, time_fn
from thrifty.core.deploy import ExecuTorchRunner, executorch_available, set_executorch_threads
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.guard.deploy import lower_guard, lower_guard_decode, time_decode_token, time_first_token
from thrifty.guard.model import prune_output_layer
from thrifty.guard.quant import quantize_8da4w

DECODE_ROOM = 16  # cache positions after the prompt in the decode program


def bench_models(vocab_size: int = 128, dim: int = 128, layers: int = 6, ffn: int = 512) -> dict[str, TransformerLM]:
    """Teacher (``layers``, ``ffn``, full head) and the pruned student (half the layers and FFN, 18-logit head)."""
    torch.manual_seed(0)
    teacher = TransformerLM(TransformerLMConfig(vocab_size, dim, layers, 4, mlp_hidden=ffn, tie_embeddings=False))
    student = TransformerLM(
        TransformerLMConfig(vocab_size, dim, max(1, layers // 2), 4, mlp_hidden=ffn // 2, tie_embeddings=False)
    )
    student = prune_output_layer(student, list(range(18)), expand_to_vocab=False).eval()
    int4 = quantize_8da4w(copy.deepcopy(student), group_size=32, embedding_bits=4)
    return {"teacher_fp32": teacher.eval(), "student_fp32": student, "student_8da4w": int4}


def _runtime_row(model: TransformerLM, ids: torch.Tensor, repeats: int) -> dict[str, Any]:
    """ExecuTorch prefill (TTFT) and static-KV decode step of ``model`` at the prompt ``ids (1, T)``."""
    seq_len = ids.shape[1]
    program = lower_guard(model, seq_len)
    ttft = time_first_token(ExecuTorchRunner(program), ids, repeats=repeats)
    decode = lower_guard_decode(model, seq_len + DECODE_ROOM)
    step = time_decode_token(ExecuTorchRunner(decode), seq_len, repeats=2 * repeats)
    return {
        "median_ms": 1e3 * ttft,
        "prompt_tok_s": seq_len / ttft,
        "decode_ms": 1e3 * step,
        "decode_tok_s": 1.0 / step,
        "pte_bytes": len(program.buffer),
        "non_delegated": len(program.non_delegated),
    }


def run_bench(ctx: BenchContext, sizes: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Rows per model: runtime TTFT, prompt and decode tokens/s, eager time, .pte bytes; target int4 TTFT <= 0.35x.

    ``sizes`` overrides :func:`bench_models`' shape (tests use a tiny one).
    """
    seq_len = 64 if ctx.quick else 256
    ids = torch.randint(0, 128, (1, seq_len), generator=torch.Generator().manual_seed(0))
    rows: list[dict[str, Any]] = []
    use_et = executorch_available()
    if use_et:
        set_executorch_threads(ctx.threads)
    for name, model in bench_models(**(sizes or {})).items():
        with torch.no_grad():
            eager = time_fn(lambda m=model: m(ids), threads=ctx.threads)
        row: dict[str, Any] = {"case": f"prefill T={seq_len}", "variant": name, "eager_ms": eager.median_ms}
        if use_et:
            row.update(_runtime_row(model, ids, repeats=10))
        rows.append(row)
    if use_et:
        teacher_ms = rows[0]["median_ms"]
        for row in rows:
            row["ttft_vs_teacher"] = row["median_ms"] / teacher_ms
            row["target"] = "student_8da4w <= 0.35"
    return rows
