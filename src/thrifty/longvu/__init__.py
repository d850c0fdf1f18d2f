"""LongVU: spatio-temporal token compression for long videos, with provenance (arXiv 2410.17434).

Reusable parts: :func:`temporal_reduce`, :func:`frame_relevance`, :func:`choose_highres`,
:func:`spatial_token_reduce`, :func:`enforce_budget` composed as :class:`LongVUCompressor`, returning a
:class:`TokenSet` (kept tokens with frame, position, resolution and size). Baselines behind the same
interface: :class:`UniformFrames`, :class:`UniformPool`, :class:`RandomDrop`, :class:`DyCokeKeep`,
:class:`ToMeMerge`, :class:`VisionZip`. Model-free frame features: :func:`hog_color_features`.
"""

from thrifty.core.registry import Method, register_method
from thrifty.longvu.baselines import (
    BASELINES,
    DyCokeKeep,
    RandomDrop,
    ToMeMerge,
    UniformFrames,
    UniformPool,
    VisionZip,
    bipartite_merge_round,
)
from thrifty.longvu.bench import run_bench
from thrifty.longvu.compressor import Compressor, LongVUCompressor
from thrifty.longvu.config import LongVUExperimentConfig
from thrifty.longvu.experiment import run_experiment
from thrifty.longvu.features import calibrate_threshold, hog_color_features
from thrifty.longvu.ops import choose_highres, enforce_budget, frame_relevance, spatial_token_reduce, temporal_reduce
from thrifty.longvu.saved import load_trained
from thrifty.longvu.tokens import TokenSet, pool_grid
from thrifty.longvu.video import VideoGenerator

METHOD = register_method(
    Method(
        name="longvu",
        paper="LongVU: Spatiotemporal Adaptive Compression for Long Video-Language Understanding (arXiv 2410.17434)",
        claim=(
            "At 1/16 of the raw visual tokens, LongVU's temporal + query + spatial compression answers needle "
            "questions on long videos >= 20 points better than uniform frame sampling (tiny encoder + QA model)."
        ),
        config_cls=LongVUExperimentConfig,
        reproduce=run_experiment,
        load_trained=load_trained,
        bench=run_bench,
    )
)

__all__ = [
    "load_trained",
    "BASELINES",
    "Compressor",
    "DyCokeKeep",
    "LongVUCompressor",
    "LongVUExperimentConfig",
    "RandomDrop",
    "ToMeMerge",
    "TokenSet",
    "UniformFrames",
    "UniformPool",
    "VideoGenerator",
    "VisionZip",
    "bipartite_merge_round",
    "calibrate_threshold",
    "choose_highres",
    "enforce_budget",
    "frame_relevance",
    "hog_color_features",
    "pool_grid",
    "run_bench",
    "run_experiment",
    "spatial_token_reduce",
    "temporal_reduce",
]
