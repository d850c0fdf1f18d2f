"""tam: a compact SAM 2-style video object tracker with EfficientTAM (pooled) and EdgeTAM (perceiver) memory.

Public API: the tracker (:class:`TinyTAM`, :class:`TamModelConfig`), its memory modules
(:class:`MemoryAttention`, :class:`RoPEAttention`, :class:`SpatialPerceiver`, :class:`MemoryBank`,
:class:`MemoryEncoder`), the streaming :class:`VideoSession`, the losses, the DAVIS J&F metric, SynthVOS data,
the analytic FLOP counter, the training recipe (:func:`pretrained_a`, :func:`train_variant`,
:func:`copy_shared_weights`, :class:`ScaledAdamW`) and the reproduction.
"""

from thrifty.core.registry import Method, register_method
from thrifty.tam.algorithm import (
    calibrate_threshold,
    copy_first_frame_tracks,
    distill_loss,
    evaluate,
    predict_video,
    sam2_loss,
    score_tracks,
    track_videos,
    unroll_clip,
    video_logits,
)
from thrifty.tam.attention import MemoryAttention, MemoryLayout, RoPEAttention, pool_memory
from thrifty.tam.bench import run_bench
from thrifty.tam.config import TamConfig, TamModelConfig, parse_latent_grid
from thrifty.tam.costs import measure_costs
from thrifty.tam.data import VideoBatch, make_video, video_batch
from thrifty.tam.experiment import run_experiment
from thrifty.tam.flops import memory_attention_flops, variant_memory_flops
from thrifty.tam.memory import MemoryBank, MemoryEncoder
from thrifty.tam.metrics import db_eval_boundary, db_eval_iou, db_statistics, evaluate_vos
from thrifty.tam.model import TinyTAM
from thrifty.tam.perceiver import SpatialPerceiver
from thrifty.tam.recipe import ScaledAdamW, copy_shared_weights, pretrained_a, train_variant, variant_model
from thrifty.tam.rope import apply_axial_rope, axial_rope_cos_sin, sine_pe_2d
from thrifty.tam.saved import load_trained
from thrifty.tam.session import VideoSession

__all__ = [
    "load_trained",
    "MemoryAttention",
    "MemoryBank",
    "MemoryEncoder",
    "MemoryLayout",
    "RoPEAttention",
    "ScaledAdamW",
    "SpatialPerceiver",
    "TamConfig",
    "TamModelConfig",
    "TinyTAM",
    "VideoBatch",
    "VideoSession",
    "apply_axial_rope",
    "axial_rope_cos_sin",
    "calibrate_threshold",
    "copy_first_frame_tracks",
    "copy_shared_weights",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "distill_loss",
    "evaluate",
    "evaluate_vos",
    "make_video",
    "measure_costs",
    "memory_attention_flops",
    "parse_latent_grid",
    "pool_memory",
    "predict_video",
    "pretrained_a",
    "run_bench",
    "run_experiment",
    "sam2_loss",
    "score_tracks",
    "sine_pe_2d",
    "track_videos",
    "train_variant",
    "unroll_clip",
    "video_batch",
    "video_logits",
    "variant_memory_flops",
    "variant_model",
]

register_method(
    Method(
        name="tam",
        paper=(
            "SAM 2: Segment Anything in Images and Videos (Ravi et al., 2024) with Efficient Track Anything "
            "(EfficientTAM, Xiong et al.) and EdgeTAM: On-Device Track Anything Model "
            "(Zhou et al., CVPR 2025)"
        ),
        claim=(
            "EfficientTAM's pooled cross-attention keeps SAM 2's J&F within 2 points at <= 0.3x cross-attention "
            "FLOPs and EdgeTAM's perceiver within 4 points at <= 1/8 storage; as the papers start from SAM 2, we "
            "pretrain the SAM 2-style tracker and start every variant from it, then measure J&F (3 seeds), FLOPs, "
            "bytes and latency on synthetic scikit-image videos on CPU."
        ),
        config_cls=TamConfig,
        reproduce=run_experiment,
        load_trained=load_trained,
        bench=run_bench,
    )
)
