"""Longhorn (Liu et al., ICLR 2025): the state-space model as an amortised online learner.

Public API: the scans (:func:`longhorn_scan`, :func:`longhorn_exact_scan`, :func:`longhorn_step`), the layer
(:class:`LonghornMixer`, :class:`LonghornCache`), the LM (:class:`LonghornLM`), the fast Mamba-1 peer
(:class:`MambaLM`, :func:`selective_scan`), the reproduction, and :func:`load_trained` for the models it saves.
"""

from thrifty.core.registry import Method, register_method
from thrifty.longhorn.bench import run_bench
from thrifty.longhorn.config import LonghornConfig
from thrifty.longhorn.experiment import run_experiment
from thrifty.longhorn.initialization import INIT_SCHEMES
from thrifty.longhorn.mamba import MambaLM, selective_scan
from thrifty.longhorn.model import LonghornBlock, LonghornCache, LonghornLM, LonghornMixer, mixer_param_count
from thrifty.longhorn.ops import compute_eps, longhorn_exact_scan, longhorn_scan, longhorn_step
from thrifty.longhorn.reference import naive_longhorn_scan
from thrifty.longhorn.saved import load_trained

__all__ = [
    "INIT_SCHEMES",
    "LonghornBlock",
    "LonghornCache",
    "LonghornConfig",
    "LonghornLM",
    "LonghornMixer",
    "MambaLM",
    "compute_eps",
    "longhorn_exact_scan",
    "longhorn_scan",
    "load_trained",
    "longhorn_step",
    "mixer_param_count",
    "naive_longhorn_scan",
    "run_bench",
    "run_experiment",
    "selective_scan",
]

register_method(
    Method(
        name="longhorn",
        paper="Longhorn: State Space Models are Amortized Online Learners (arXiv 2407.14207)",
        claim=(
            "Longhorn recalls at least as well as Mamba on MQAR and reaches lower bits/char at equal "
            "tokens and parameters; measured on CPU at tiny scale on one initialisation family, with the "
            "plateau heuristics, GLA and a RoPE Transformer beside them."
        ),
        config_cls=LonghornConfig,
        reproduce=run_experiment,
        bench=run_bench,
        load_trained=load_trained,
    )
)
