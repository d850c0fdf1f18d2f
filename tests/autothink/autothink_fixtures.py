"""Helpers for the autothink tests: a vocabulary and models biased to follow a scripted token chain."""

from __future__ import annotations

import torch
from torch import nn

VOCAB = ["PAD", "EOS", "<box>", "</box>", "<think>", "</think>", "FALLBACK", "x", "y", "r", "s", "p", "q", "z"]
ID = {t: i for i, t in enumerate(VOCAB)}


@torch.no_grad()
def bias_to_chain(embed: nn.Embedding, head: nn.Linear, chain: dict[str, list[tuple[str, float]]]) -> None:
    """Make ``head(norm(embed(tok)))`` favour the scripted successors of each token (a noisy bigram).

    Token ``i`` gets a large embedding along axis ``i``, so after the final norm the residual stream is
    dominated by it; the head maps axis ``i`` to the weighted successors. The blocks' random weights add
    small, position-dependent noise, so confidences differ from 1 and vary.
    """
    embed.weight.zero_()
    head.weight.zero_()
    for i in range(len(VOCAB)):
        embed.weight[i, i] = 30.0
    for tok, successors in chain.items():
        for nxt, weight in successors:
            head.weight[ID[nxt], ID[tok]] = weight


# p <box> x </box> <think> r s </think> <box> y </box> then <think> again (greedy loops until max_total)
CHAIN = {
    "p": [("<box>", 6.0)],
    "q": [("<box>", 6.0)],
    "<box>": [("x", 3.0), ("y", 2.5)],
    "x": [("</box>", 6.0)],
    "y": [("</box>", 6.0)],
    "</box>": [("<think>", 3.0), ("EOS", 2.5)],
    "<think>": [("r", 6.0)],
    "r": [("s", 6.0)],
    "s": [("</think>", 6.0)],
    "</think>": [("<box>", 6.0)],
}
FALLBACK_CHAIN = {**CHAIN, "<box>": [("FALLBACK", 4.0), ("x", 2.0)], "FALLBACK": [("</box>", 6.0)]}
