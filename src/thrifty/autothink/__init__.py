"""autothink: VideoAuto-R1's answer-think-answer training and confidence-gated early exit (arXiv 2601.05175).

Model-agnostic parts: the strict format parser (:func:`parse_answer_twice`), the rewards with TRL's
``reward_funcs`` signature, confidence from raw logits and :func:`generate_auto` (true early exit with KV-cache
resume, for core's TransformerLM, transformers models and the tiny video LM). GRPO pieces live in
:mod:`thrifty.core.rl`. The reproduction is a seeded moving-shapes video QA world
whose reasoning questions (frame-by-frame tallies) need their trace.
"""

from thrifty.autothink.bench import run_bench
from thrifty.autothink.config import AutoThinkConfig
from thrifty.autothink.experiment import run_experiment
from thrifty.autothink.format import AnswerTwiceFormat, ParsedTwice, parse_answer_twice, parse_cot, parse_direct
from thrifty.autothink.generate import (
    AutoResult,
    answer_confidence,
    first_answer_confidence,
    generate_auto,
    generate_posthoc,
    greedy_reference,
)
from thrifty.autothink.model import VideoLM, VideoLMConfig, VideoPrompt, prefix_lm_mask
from thrifty.autothink.rewards import (
    TRL_REWARD_FUNCS,
    TRL_REWARD_WEIGHTS,
    accuracy_boxed1,
    accuracy_boxed2,
    answer_twice_reward,
    exact_match_reward,
    format_twice_boxed,
    normalize_answer,
    temporal_iou_reward,
)
from thrifty.autothink.saved import load_trained
from thrifty.autothink.sessions import CoreLMSession, DecodeSession, HFSession, make_session
from thrifty.core.registry import Method, register_method

METHOD = register_method(
    Method(
        name="autothink",
        paper="VideoAuto-R1: answer, think, answer again with confidence-gated early exit (arXiv 2601.05175)",
        claim=(
            "Answer-twice GRPO with a confidence-gated true early exit generates <= 0.4x the tokens of always "
            "thinking at accuracy within 1 point of the better of direct and CoT RL per category (tiny video LM, "
            "evaluation mix of 25% reasoning questions)."
        ),
        config_cls=AutoThinkConfig,
        reproduce=run_experiment,
        load_trained=load_trained,
        bench=run_bench,
    )
)

__all__ = [
    "load_trained",
    "TRL_REWARD_FUNCS",
    "TRL_REWARD_WEIGHTS",
    "AnswerTwiceFormat",
    "AutoResult",
    "AutoThinkConfig",
    "CoreLMSession",
    "DecodeSession",
    "HFSession",
    "ParsedTwice",
    "VideoLM",
    "VideoLMConfig",
    "VideoPrompt",
    "accuracy_boxed1",
    "accuracy_boxed2",
    "answer_confidence",
    "answer_twice_reward",
    "exact_match_reward",
    "first_answer_confidence",
    "format_twice_boxed",
    "generate_auto",
    "generate_posthoc",
    "greedy_reference",
    "make_session",
    "normalize_answer",
    "parse_answer_twice",
    "parse_cot",
    "parse_direct",
    "prefix_lm_mask",
    "run_bench",
    "run_experiment",
    "temporal_iou_reward",
]
