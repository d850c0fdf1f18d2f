"""Pure helpers of the reproduction: the deep-thin baseline and the constrained pick."""

from __future__ import annotations

import numpy as np
from flashnas_fixtures import random_model

from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.experiment import _select, deep_thin_config
from thrifty.flashnas.latency import param_count
from thrifty.flashnas.search import SearchSpace


def test_deep_thin_keeps_every_layer_and_matches_params() -> None:
    cfg = FlashLMConfig.uniform(11, 64, 4, 4, 2, 128, head_dim=16)
    space = SearchSpace.from_backbone(cfg, width_step=16, ffn_step=32)
    target = param_count(cfg) // 3
    thin = deep_thin_config(random_model(cfg), space, target)
    assert thin.layers == (0, 1, 2, 3) and all(thin.attn) and thin.d_model < 64
    best_gap = abs(param_count(thin.arch(cfg)) - target)
    assert best_gap <= min(
        abs(param_count(FlashLMConfig.uniform(11, w, 4, 2 * kv, kv, f, head_dim=16)) - target)
        for w in space.widths
        if w < 64
        for f in space.ffns
        for kv in space.kv_heads
    )


def test_select_is_best_loss_within_budget_else_fastest() -> None:
    bpc = {0: 2.0, 1: 2.5, 2: 2.2, 3: 3.0}
    pred = np.array([10.0, 4.0, 5.0, 1.0])
    assert _select([0, 1, 2, 3], bpc, pred, budget_ms=5.0) == 2
    assert _select([0, 1], bpc, pred, budget_ms=0.5) == 1
