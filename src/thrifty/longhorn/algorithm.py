"""The comparison protocol: peers at equal parameter count, masked LM loss, position losses, decoding."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thrifty.longhorn.baselines import (
    GLALM,
    HFMambaLM,
    ShortConvTransformerLM,
    count_params,
    matched_mlp_hidden,
    transformer_lm,
)
from thrifty.longhorn.mamba import MambaLM
from thrifty.longhorn.model import LonghornLM
from thrifty.longhorn.mqar import IGNORE_INDEX

ZOO_MODELS: tuple[str, ...] = (
    "longhorn",
    "longhorn_exact",
    "mamba",
    "mamba_hf",
    "gla",
    "transformer",
    "transformer_conv",
)


def build_model(
    name: str, vocab: int, d_model: int, ssm_layers: int, d_state: int, init_scheme: str = "mamba_ssm"
) -> nn.Module:
    """One model of the zoo. SSMs get ``ssm_layers`` layers and no MLP; GLA and the (short-conv) RoPE
    Transformer get ``ssm_layers // 2`` blocks whose MLP width is solved to match Longhorn's parameter count.

    ``mamba`` is the fast :class:`MambaLM`; ``mamba_hf`` is transformers' ``MambaForCausalLM`` with its own
    initialisation (the oracle). ``init_scheme`` (``"mamba_ssm"`` or ``"transformers"``) applies to Longhorn
    and ``mamba``.
    """
    if name in ("longhorn", "longhorn_exact"):
        mode = "exact" if name == "longhorn_exact" else "recurrent"
        return LonghornLM(vocab, d_model, ssm_layers, init_scheme=init_scheme, d_state=d_state, scan_mode=mode)
    if name == "mamba":
        return MambaLM(vocab, d_model, ssm_layers, d_state, init_scheme=init_scheme)
    if name == "mamba_hf":
        return HFMambaLM(vocab, d_model, ssm_layers, d_state)
    target = count_params(LonghornLM(vocab, d_model, ssm_layers, d_state=d_state))
    blocks = ssm_layers // 2
    heads = 4 if d_model % 4 == 0 and d_model >= 32 else 2
    builders: dict[str, Callable[[int], nn.Module]] = {
        "gla": lambda h: GLALM(vocab, d_model, blocks, h),
        "transformer": lambda h: transformer_lm(vocab, d_model, blocks, h, heads),
        "transformer_conv": lambda h: ShortConvTransformerLM(vocab, d_model, blocks, h, heads),
    }
    if name not in builders:
        raise ValueError(f"name: expected one of {ZOO_MODELS}, got {name!r}")
    return builders[name](matched_mlp_hidden(target, builders[name]))


def build_zoo(
    names: tuple[str, ...],
    vocab: int,
    d_model: int,
    ssm_layers: int,
    d_state: int,
    *,
    seed: int,
    device: torch.device,
    init_scheme: str = "mamba_ssm",
) -> dict[str, nn.Module]:
    """Every model, each initialised from ``seed`` (so a model's init does not depend on the others)."""
    zoo = {}
    for name in names:
        torch.manual_seed(seed)
        zoo[name] = build_model(name, vocab, d_model, ssm_layers, d_state, init_scheme).to(device)
    return zoo


def masked_lm_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Cross-entropy over positions whose label is not -100: inputs/labels ``(B, L)``."""
    inputs, labels = batch
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def position_losses(
    model: nn.Module, ids: Tensor, *, length: int, batch: int, seed: int, device: torch.device
) -> Tensor:
    """Mean next-token loss (nats) at every position of ``batch`` random windows: returns ``(length,)``."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - length - 1, (batch,), generator=g)
    window = torch.stack([ids[s : s + length + 1] for s in starts.tolist()]).to(device)
    model.eval()
    logits = model(window[:, :-1])
    losses = F.cross_entropy(logits.flatten(0, 1).float(), window[:, 1:].flatten(), reduction="none")
    return losses.view(batch, length).mean(0).cpu()


def bucket_means(per_position: Tensor, edges: list[int]) -> list[float]:
    """Means of ``per_position`` over ``[edges[i], edges[i+1])``."""
    return [float(per_position[lo:hi].mean()) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def bucket_edges(train_len: int, eval_len: int) -> list[int]:
    """``0, train_len, 2*train_len, 4*train_len, ...`` up to ``eval_len``."""
    edges = [0, train_len]
    while edges[-1] < eval_len:
        edges.append(min(2 * edges[-1], eval_len))
    return edges


def decoder_for(model: nn.Module) -> tuple[Callable[[Tensor], object], Callable[[Tensor, object], Tensor]]:
    """``(prefill(idx (1, T)) -> state, step(token (1,), state) -> logits)`` for a zoo model."""
    if isinstance(model, LonghornLM):

        def prefill(idx: Tensor) -> object:
            caches = model.allocate_caches(idx.shape[0])
            model(idx, caches)
            return caches

        return prefill, lambda token, caches: model.step(token, caches)  # type: ignore[arg-type]
    if isinstance(model, MambaLM):  # decode through transformers' cache on the same weights
        model = HFMambaLM(model.vocab_size, model.d_model, model.n_layers, model.d_state, model=model.to_transformers())
    if isinstance(model, HFMambaLM):
        return (lambda idx: model.prefill(idx)[1]), model.step  # type: ignore[union-attr]

    def prefill_kv(idx: Tensor) -> object:  # the core Transformer: chunked prefill into KV caches
        caches = model.new_caches()  # type: ignore[operator]
        for start in range(0, idx.shape[1], 1024):
            model(idx[:, start : start + 1024], start_pos=start, caches=caches)
        return [caches, idx.shape[1]]

    def step_kv(token: Tensor, state: object) -> Tensor:
        caches, pos = state  # type: ignore[misc]
        state[1] = pos + 1  # type: ignore[index]
        return model(token.unsqueeze(1), start_pos=pos, caches=caches)[:, -1]

    return prefill_kv, step_kv


@torch.no_grad()
def decode_ms_per_token(
    model: nn.Module,
    vocab: int,
    context: int,
    steps: int,
    *,
    seed: int,
    device: torch.device,
    warmup: int = 3,
) -> float:
    """Median wall ms of one decode step (batch 1) after prefilling ``context`` random tokens."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab, (1, context), generator=g).to(device)
    prefill, step = decoder_for(model)
    state = prefill(prompt)
    token = prompt[:, -1]
    times = []
    threads = torch.get_num_threads()
    # Batch-1 decode is a chain of tiny ops: extra intra-op threads only add synchronisation, and on an
    # oversubscribed machine they made the timings erratic (94 ms/token for a 2-block Transformer).
    torch.set_num_threads(1)
    for _ in range(steps + warmup):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        token = step(token, state).argmax(-1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return 1e3 * statistics.median(times[warmup:])  # the first steps pay one-off allocation costs


def paired_interval(diffs: list[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean of paired differences with a two-sided Student-t interval (infinite half-width for one pair).

    Returns:
        ``{"mean", "low", "high", "n"}``; a tie is an interval that contains 0.
    """
    if not diffs:
        raise ValueError("diffs: expected at least one paired difference")
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        half = math.inf
    else:
        from scipy.stats import t

        half = float(t.ppf(0.5 + confidence / 2, len(diffs) - 1)) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": float(len(diffs))}


def verdict(interval: dict[str, float]) -> str:
    """``"lower"``, ``"higher"`` or ``"tie"`` (the interval contains 0) for an interval of A - B."""
    if interval["high"] < 0:
        return "lower"
    if interval["low"] > 0:
        return "higher"
    return "tie"
