"""guard: Llama Guard 3-1B-INT4's compression recipe end to end (arXiv 2411.17713).

Reusable parts: the moderation I/O (:data:`GUARD_CATEGORIES`, :func:`format_guard_prompt`,
:func:`parse_guard_output`), :func:`unsafe_score`, output-layer pruning (:class:`PrunedLMHead`, both
conventions), answer-token :func:`distill_loss`, torchao 8da4w PTQ/QAT (:func:`quantize_8da4w`,
:func:`convert_8da4w`) with plain-torch references, the GGUF Q4_0 peer (:func:`apply_q4_0`) and
:class:`GuardClassifier`. Structured pruning (block influence, neuron importance, slicing) lives in
:mod:`thrifty.core.prune`. No compression code was released: the pipeline is the card's recipe **[recon]**.
"""

from thrifty.core.registry import Method, register_method
from thrifty.guard.bench import run_bench
from thrifty.guard.classifier import GuardClassifier
from thrifty.guard.config import GuardConfig
from thrifty.guard.data import GuardExample, make_dataset
from thrifty.guard.distill import distill_loss
from thrifty.guard.experiment import run_experiment
from thrifty.guard.io import GUARD_CATEGORIES, GuardOutputError, GuardVerdict, format_guard_prompt, parse_guard_output
from thrifty.guard.metrics import binary_metrics
from thrifty.guard.model import PrunedLMHead, calibrate_threshold, prune_output_layer, unsafe_score
from thrifty.guard.quant import apply_q4_0, convert_8da4w, quantize_8da4w
from thrifty.guard.saved import load_trained
from thrifty.guard.tokens import GuardTokenizer

METHOD = register_method(
    Method(
        name="guard",
        paper="Llama Guard 3-1B-INT4: compact and efficient safeguard for human-AI conversations (arXiv 2411.17713)",
        claim=(
            "Pruning + KD + 8da4w QAT makes a guard LM >= 7x smaller as an ExecuTorch .pte with F1 within 0.02 "
            "of the fp32 teacher (synthetic compositional moderation set, word-level LM)."
        ),
        config_cls=GuardConfig,
        reproduce=run_experiment,
        load_trained=load_trained,
        bench=run_bench,
    )
)

__all__ = [
    "load_trained",
    "GUARD_CATEGORIES",
    "GuardClassifier",
    "GuardConfig",
    "GuardExample",
    "GuardOutputError",
    "GuardTokenizer",
    "GuardVerdict",
    "PrunedLMHead",
    "apply_q4_0",
    "binary_metrics",
    "calibrate_threshold",
    "convert_8da4w",
    "distill_loss",
    "format_guard_prompt",
    "make_dataset",
    "parse_guard_output",
    "prune_output_layer",
    "quantize_8da4w",
    "run_bench",
    "run_experiment",
    "unsafe_score",
]
