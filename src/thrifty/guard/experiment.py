"""``thrifty reproduce guard``: the Llama Guard 3-1B-INT4 recipe on a synthetic moderation set, stage by stage.

Side by side, same data and seed: teacher fp32; pruned (no fine-tune); + CE; + KD; KD + PTQ 8da4w;
KD + QAT 8da4w; the QAT student in the ExecuTorch runtime; the GGUF Q4_0 peer of the KD student; a
from-scratch control of the student's size on the same fine-tuning data and budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from thrifty.core.deploy import ExecuTorchRunner, executorch_available, set_executorch_threads
from thrifty.core.runs import Claim, Results, RunContext
from thrifty.guard.classifier import GuardClassifier
from thrifty.guard.config import GuardConfig
from thrifty.guard.deploy import lower_guard, lower_guard_decode, time_decode_token, time_first_token
from thrifty.guard.model import PrunedLMHead, answer_logits, calibrate_threshold, unsafe_score
from thrifty.guard.quant import apply_q4_0, quantize_8da4w
from thrifty.guard.saved import save_guard_lm
from thrifty.guard.stages import GuardData, build_data, fit, get_teacher, prune_student, qat_student, scratch_control
from thrifty.guard.training import first_answer_outputs, moderation_metrics

Forward = Callable[[Tensor], Tensor]


def fp32_bytes(model: nn.Module) -> int:
    """Bytes of the model's tensors (shared tensors once): its fp32 checkpoint size."""
    seen = {id(t): t for t in model.state_dict().values()}
    return sum(t.numel() * t.element_size() for t in seen.values())


def evaluate(name: str, forward: Forward, data: GuardData) -> dict[str, float]:
    """Test metrics at threshold 0.5 and at the threshold calibrated on the validation split."""
    first, _ = first_answer_outputs(forward, data.val)
    threshold = calibrate_threshold(unsafe_score(first, data.tok.safe_id, data.tok.unsafe_id).cpu(), data.val.unsafe)
    metrics = moderation_metrics(forward, data.test, data.tok)
    calibrated = moderation_metrics(forward, data.test, data.tok, threshold)
    metrics.update({"threshold_cal": threshold, "F1_cal": calibrated["F1"], "FPR_cal": calibrated["FPR"]})
    return metrics


def runtime_forward(runner: ExecuTorchRunner, head: PrunedLMHead) -> Forward:
    """Runtime logits ``(1, T, K)`` expanded back to the vocabulary with the stored token map."""

    def forward(ids: Tensor) -> Tensor:
        rows = [runner(ids[i : i + 1].cpu()) for i in range(ids.shape[0])]
        small = torch.cat(rows).to(ids.device)
        return small @ head.scatter + head.fill_bias

    return forward


DECODE_TOKENS = 16  # cache room after the prompt in the decode program (the verdict is at most a few tokens)


def executorch_stage(
    cfg: GuardConfig, ctx: RunContext, teacher: nn.Module, qat: nn.Module, data: GuardData
) -> dict[str, dict[str, float]]:
    """Lower teacher fp32 and the int4 QAT student; .pte bytes, runtime F1, argmax agreement, TTFT."""
    set_executorch_threads(ctx.threads)
    student = copy.deepcopy(qat)
    student.head.expand_to_vocab = False  # ExecuTorch convention: K logits + token map
    programs = {"teacher_fp32": lower_guard(teacher, data.width), "student_int4": lower_guard(student, data.width)}
    for name, program in programs.items():
        (ctx.out_dir / f"{name}.pte").write_bytes(program.buffer)
    runner = ExecuTorchRunner(programs["student_int4"])
    forward = runtime_forward(runner, qat.head)
    metrics = evaluate("executorch", forward, data)
    rt_first, _ = first_answer_outputs(forward, data.test)
    with torch.no_grad():
        eager_first = answer_logits(qat(data.test.ids), data.test.lengths)
    metrics["argmax_agreement"] = float((rt_first.argmax(-1) == eager_first.argmax(-1)).float().mean())
    sample = data.test.ids[:1].cpu()
    out: dict[str, dict[str, float]] = {"executorch_int4": metrics}
    decoders = {"teacher_fp32": teacher, "student_int4": student}
    for name, program in programs.items():
        ttft = time_first_token(ExecuTorchRunner(program), sample, cfg.ttft_repeats)
        decode = lower_guard_decode(decoders[name], data.width + DECODE_TOKENS)
        step_s = time_decode_token(ExecuTorchRunner(decode), data.width, 4 * cfg.ttft_repeats)
        out[name] = {
            "pte_bytes": float(len(program.buffer)),
            "ttft_ms": 1e3 * ttft,
            "prefill_tok_s": data.width / ttft,
            "decode_tok_s": 1.0 / step_s,
            "non_delegated": float(len(program.non_delegated)),
        }
    metrics.update(
        {
            "pte_bytes": out["student_int4"]["pte_bytes"],
            "ttft_ms": out["student_int4"]["ttft_ms"],
            "prefill_tok_s": out["student_int4"]["prefill_tok_s"],
            "decode_tok_s": out["student_int4"]["decode_tok_s"],
        }
    )
    return out


def train_variants(cfg: GuardConfig, ctx: RunContext, data: GuardData) -> tuple[dict[str, nn.Module], bool]:
    """Every model of the comparison, trained (or loaded, the teacher) with the same data and seed."""
    teacher, cached = get_teacher(cfg, ctx, data)
    pruned = prune_student(cfg, teacher, data, ctx).eval()
    ce, kd = copy.deepcopy(pruned), copy.deepcopy(pruned)
    fit(ce, data.ft_pool, cfg.ft_steps, cfg.ft_lr, cfg.batch, ctx, "train/ce")
    fit(
        kd,
        data.ft_pool,
        cfg.ft_steps,
        cfg.ft_lr,
        cfg.batch,
        ctx,
        "train/kd",
        teacher=teacher,
        cfg=cfg,
        restrict_ids=data.tok.answer_ids(),
    )
    ptq = quantize_8da4w(copy.deepcopy(kd), cfg.group_size, embedding_bits=4, qat=False)
    qat = qat_student(cfg, kd.eval(), teacher, data, ctx)
    q4 = copy.deepcopy(kd)
    q4_stats = apply_q4_0(q4)
    q4.q4_stats = q4_stats  # type: ignore[assignment]
    control = scratch_control(cfg, pruned, data, ctx)
    models = {
        "teacher_fp32": teacher,
        "pruned_no_ft": pruned,
        "ft_ce": ce.eval(),
        "ft_kd": kd.eval(),
        "kd_ptq_8da4w": ptq.eval(),
        "kd_qat_8da4w": qat,
        "kd_q4_0_gguf": q4.eval(),
        "scratch_control": control,
    }
    return models, cached


def run_experiment(cfg: GuardConfig, ctx: RunContext) -> Results:
    """Train and evaluate every stage; ExecuTorch sizes and runtime F1 when available."""
    data = build_data(cfg, ctx.seed)
    for split in ("train", "ft_pool", "val", "test"):
        setattr(data, split, getattr(data, split).to(ctx.device))
    models, cached = train_variants(cfg, ctx, data)
    variants = {name: evaluate(name, model, data) for name, model in models.items()}
    for name in ("teacher_fp32", "ft_kd", "scratch_control"):
        save_guard_lm(ctx.out_dir / "models" / name, models[name], {"stage": name, "seed": ctx.seed})
    thr = variants["ft_kd"]["threshold_cal"]
    GuardClassifier(models["ft_kd"], data.tok, thr).save(ctx.out_dir / "classifier_kd")
    for name, model in models.items():
        variants[name]["params"] = float(sum(p.numel() for p in model.parameters()))
    variants["teacher_fp32"]["fp32_bytes"] = float(fp32_bytes(models["teacher_fp32"]))
    q4 = models["kd_q4_0_gguf"].q4_stats  # type: ignore[attr-defined]
    variants["kd_q4_0_gguf"].update({"q4_0_bytes": q4["q4_0_bytes"], "bits_per_weight": q4["bits_per_weight"]})
    runtime: dict[str, dict[str, float]] = {}
    if cfg.use_executorch and executorch_available():
        runtime = executorch_stage(cfg, ctx, models["teacher_fp32"], models["kd_qat_8da4w"], data)
        variants["executorch_int4"] = runtime.pop("executorch_int4")
    return _results(cfg, variants, runtime, cached)


def _results(
    cfg: GuardConfig, variants: dict[str, dict[str, float]], runtime: dict[str, dict[str, float]], cached: bool
) -> Results:
    f1 = {k: v["F1"] for k, v in variants.items()}
    fpr = {k: v["FPR"] for k, v in variants.items()}
    teacher_f1 = f1["teacher_fp32"]
    nan = float("nan")
    ratio = (runtime["teacher_fp32"]["pte_bytes"] / runtime["student_int4"]["pte_bytes"]) if runtime else nan
    deployed = "executorch_int4" if "executorch_int4" in variants else "kd_qat_8da4w"
    checks = [
        Claim(
            "informative: teacher F1 in [0.85, 0.97]",
            "distance_outside_range",
            max(0.85 - teacher_f1, teacher_f1 - 0.97),
            0.0,
            "<=",
        ),
        Claim(f"{deployed}: F1 within 0.02 of the teacher", "f1_drop", teacher_f1 - f1[deployed], 0.02, "<="),
        Claim(
            f"{deployed}: FPR increase over the teacher",
            "fpr_increase",
            fpr[deployed] - fpr["teacher_fp32"],
            0.03,
            "<=",
        ),
        Claim("QAT F1 - PTQ F1", "f1_diff", f1["kd_qat_8da4w"] - f1["kd_ptq_8da4w"], 0.0, ">="),
        Claim("KD F1 - CE F1", "f1_diff", f1["ft_kd"] - f1["ft_ce"], 0.0, ">="),
        Claim("KD student F1 - from-scratch control F1", "f1_diff", f1["ft_kd"] - f1["scratch_control"], 0.0, ">="),
    ]
    if runtime:
        agreement = variants["executorch_int4"]["argmax_agreement"]
        checks.append(Claim("ExecuTorch first-token argmax agreement with eager", "fraction", agreement, 0.99, ">="))
        ttft = runtime["student_int4"]["ttft_ms"] / runtime["teacher_fp32"]["ttft_ms"]
        checks.append(Claim("int4 student TTFT / teacher TTFT (runtime)", "ratio", ttft, 0.35, "<="))
    headline = Claim("teacher .pte bytes / int4 student .pte bytes", "size_ratio", ratio, 7.0, ">=")
    notes = (
        f"teacher {'loaded from cache' if cached else 'trained in this run'}; int4 group size {cfg.group_size} "
        "(the card's 256 does not divide d=128); the int4 embedding runs ExecuTorch's packed int4 kernel; Q4_0 "
        "bytes are gguf's packed bytes of every linear + embedding, not a .gguf file; 'prefill_tok_s' is prompt "
        "tokens / TTFT and 'decode_tok_s' one static-KV decode step's rate after the prompt."
    )
    return Results(
        variants=variants,
        headline=headline,
        checks=checks,
        extra={"runtime": runtime, "group_size": cfg.group_size},
        notes=notes,
    )
