"""flashnas: MobileLLM-Flash-style hardware-in-the-loop architecture search, measured through ExecuTorch.

Read top-down: ``config`` (architectures, search points, presets) -> ``model`` (LM with attention
skipping, static-KV decode) -> ``algorithm`` (importance scores, subnet extraction) -> ``export``
(ExecuTorch/XNNPACK lowering and delegation check) -> ``latency`` / ``latency_model`` / ``dataset``
(harness, features, fitted models, the stored measurements) -> ``search`` -> ``experiment``/``bench``.
"""

from thrifty.core.registry import Method, register_method
from thrifty.flashnas.algorithm import ImportanceScores, extract_subnet, make_subnet
from thrifty.flashnas.bench import run_bench
from thrifty.flashnas.config import FlashLMConfig, FlashNASConfig, SubnetConfig
from thrifty.flashnas.dataset import LatencyDataset
from thrifty.flashnas.experiment import run_experiment
from thrifty.flashnas.latency import measure_latency
from thrifty.flashnas.latency_model import LatencyModel
from thrifty.flashnas.model import FlashLM, PrefillExport, StaticKVDecoder
from thrifty.flashnas.saved import load_trained
from thrifty.flashnas.search import SearchSpace, pareto_front, run_search

__all__ = [
    "load_trained",
    "FlashLM",
    "FlashLMConfig",
    "FlashNASConfig",
    "ImportanceScores",
    "LatencyDataset",
    "LatencyModel",
    "PrefillExport",
    "SearchSpace",
    "StaticKVDecoder",
    "SubnetConfig",
    "extract_subnet",
    "make_subnet",
    "measure_latency",
    "pareto_front",
    "run_bench",
    "run_experiment",
    "run_search",
]

register_method(
    Method(
        name="flashnas",
        paper="MobileLLM-Flash: hardware-in-the-loop architecture search for on-device LLMs (arXiv 2603.15954)",
        claim=(
            "Latency-model-guided search over pruned subnets with attention skipping finds models up to 1.8x "
            "faster in prefill and 1.6x in decode at equal quality; here: measured ExecuTorch speed-ups of the "
            "chosen model over its backbone at <= 2% higher val loss (targets 1.5x prefill, 1.3x decode, T=1024)."
        ),
        config_cls=FlashNASConfig,
        reproduce=run_experiment,
        load_trained=load_trained,
        bench=run_bench,
    )
)
