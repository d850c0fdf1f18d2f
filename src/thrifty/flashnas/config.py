"""Configurations: the LM architecture, one search-space point (subnet) and the experiment presets.

MobileLLM-Flash (arXiv 2603.15954) searches layers, widths and a per-layer attention mask over a
pruned backbone. Its search ranges are not published; the ranges here are [inf] (inferred) and exposed
as fields of :class:`FlashNASConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config


@dataclass(frozen=True)
class FlashLMConfig:
    """Architecture of a Llama-style LM whose layers may skip attention.

    Args:
        vocab_size: number of token ids ``V``.
        d_model: residual width ``C``.
        n_heads: query heads ``H`` (the same in every attention layer).
        n_kv_heads: key/value heads ``Hkv`` (GQA groups); must divide ``n_heads``.
        head_dim: per-head width ``D`` (even, for RoPE); not tied to ``d_model`` once width is pruned.
        ffn: SwiGLU hidden width of each layer, one entry per layer.
        attn: per-layer flag; ``False`` makes an FFN-only block (no QKV/O, no SDPA, no KV cache).
        max_seq_len: longest prefill / KV cache the position tables cover.
        rope_base: RoPE frequency base.
        norm_eps: RMSNorm epsilon.
    """

    vocab_size: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: tuple[int, ...]
    attn: tuple[bool, ...]
    max_seq_len: int = 1024
    rope_base: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "n_kv_heads", "head_dim", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads: expected a divisor of n_heads={self.n_heads}, got {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim: expected an even number (RoPE), got {self.head_dim}")
        if len(self.ffn) == 0 or len(self.ffn) != len(self.attn):
            raise ValueError(f"ffn, attn: expected equal non-zero lengths, got {len(self.ffn)} and {len(self.attn)}")
        if any(f <= 0 for f in self.ffn):
            raise ValueError(f"ffn: expected positive widths, got {self.ffn}")

    @property
    def n_layers(self) -> int:
        return len(self.ffn)

    @classmethod
    def uniform(
        cls,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        n_kv_heads: int,
        ffn: int,
        head_dim: int | None = None,
        **kwargs: Any,
    ) -> FlashLMConfig:
        """A backbone with every layer alike (all attention on); ``head_dim`` defaults to ``d_model // n_heads``."""
        if n_layers <= 0:
            raise ValueError(f"n_layers: expected a positive integer, got {n_layers}")
        head_dim = head_dim or d_model // n_heads
        return cls(vocab_size, d_model, n_heads, n_kv_heads, head_dim, (ffn,) * n_layers, (True,) * n_layers, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlashLMConfig:
        return cls(**{**data, "ffn": tuple(data["ffn"]), "attn": tuple(bool(a) for a in data["attn"])})


@dataclass(frozen=True)
class SubnetConfig:
    """One point of the search space: which backbone layers to keep and how wide each part is.

    Args:
        layers: indices of the kept backbone layers, strictly increasing (original order is kept).
        d_model: kept residual channels.
        ffn: kept SwiGLU neurons per kept layer.
        n_heads: kept query heads; they are taken whole GQA groups at a time.
        n_kv_heads: kept KV groups (``n_heads / n_kv_heads`` must equal the backbone's group size).
        attn: attention flag per kept layer (``False`` = attention skipped).
    """

    layers: tuple[int, ...]
    d_model: int
    ffn: tuple[int, ...]
    n_heads: int
    n_kv_heads: int
    attn: tuple[bool, ...]

    @classmethod
    def keep_all(cls, backbone: FlashLMConfig) -> SubnetConfig:
        return cls(
            tuple(range(backbone.n_layers)),
            backbone.d_model,
            backbone.ffn,
            backbone.n_heads,
            backbone.n_kv_heads,
            backbone.attn,
        )

    def check(self, backbone: FlashLMConfig) -> None:
        """Raise ValueError (naming the field) if this subnet does not fit inside ``backbone``."""
        n = len(self.layers)
        if n == 0 or n > backbone.n_layers:
            raise ValueError(f"layers: expected 1..{backbone.n_layers} layer indices, got {n}")
        if list(self.layers) != sorted(set(self.layers)) or not all(0 <= i < backbone.n_layers for i in self.layers):
            raise ValueError(f"layers: expected increasing indices in [0, {backbone.n_layers}), got {self.layers}")
        if not 0 < self.d_model <= backbone.d_model:
            raise ValueError(f"d_model: expected 1..{backbone.d_model} (backbone width), got {self.d_model}")
        if len(self.ffn) != n or len(self.attn) != n:
            raise ValueError(
                f"ffn, attn: expected {n} entries (one per kept layer), got {len(self.ffn)}, {len(self.attn)}"
            )
        for width, layer in zip(self.ffn, self.layers, strict=True):
            if not 0 < width <= backbone.ffn[layer]:
                raise ValueError(f"ffn: expected 1..{backbone.ffn[layer]} for layer {layer}, got {width}")
        if any(a and not backbone.attn[layer] for a, layer in zip(self.attn, self.layers, strict=True)):
            raise ValueError("attn: a layer without attention in the backbone cannot regain it")
        if not 0 < self.n_kv_heads <= backbone.n_kv_heads:
            raise ValueError(f"n_kv_heads: expected 1..{backbone.n_kv_heads}, got {self.n_kv_heads}")
        group = backbone.n_heads // backbone.n_kv_heads
        if self.n_heads % self.n_kv_heads or self.n_heads // self.n_kv_heads != group:
            raise ValueError(f"n_heads: expected n_kv_heads * {group} (whole GQA groups), got {self.n_heads}")

    def arch(self, backbone: FlashLMConfig) -> FlashLMConfig:
        """The :class:`FlashLMConfig` of this subnet (validated against ``backbone``)."""
        self.check(backbone)
        return dataclasses.replace(
            backbone,
            d_model=self.d_model,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            ffn=tuple(self.ffn),
            attn=tuple(self.attn),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubnetConfig:
        return cls(
            tuple(data["layers"]),
            data["d_model"],
            tuple(data["ffn"]),
            data["n_heads"],
            data["n_kv_heads"],
            tuple(bool(a) for a in data["attn"]),
        )


@dataclass
class FlashNASConfig(Config):
    """The ``thrifty reproduce flashnas`` experiment (see ``experiment.py``).

    Backbone: a char-level LM on Shakespeare. Search ranges are [inf]: the paper's are unpublished.
    Field groups: backbone (``d_model`` .. ``ffn``), training (``train_steps`` .. ``batch``), weight
    inheritance and CPT (``calib_batches``, ``cpt_steps``, ``final_steps``, ``kd_temperature``), search
    (``search_budget`` quality evaluations per strategy and repeat, ``search_repeats`` seeded repeats of
    every strategy, ``n_candidates`` pool size, ``width_step``, ``ffn_step``, ``screen_loss_bound`` the
    relative screened loss above which a candidate adds no hypervolume [inf]), selection
    (``final_candidates`` screened-front candidates re-trained for ``final_steps``; ``loss_bounds`` the
    relative-loss bounds at which speed-ups are read; ``max_loss_increase`` the claim's bound), latency
    (``latency_seq_lens`` prefill lengths and ``decode_kv_len`` measured on ExecuTorch with ``latency_reps``
    runs; ``latency_dataset`` = "" uses the shipped dataset; ``lowering_cache`` keeps lowered ``.pte`` programs under
    the cache dir, keyed by graph and weights, so an identical model is not lowered twice).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "d_model": 32,
            "n_layers": 3,
            "n_heads": 2,
            "n_kv_heads": 1,
            "ffn": 64,
            "train_steps": 3,
            "seq_len": 32,
            "batch": 2,
            "calib_batches": 2,
            "cpt_steps": 2,
            "final_steps": 2,
            "search_budget": 2,
            "search_repeats": 2,
            "final_candidates": 2,
            "n_candidates": 32,
            "eval_batches": 1,
            "latency_seq_lens": (32,),
            "decode_kv_len": 32,
            "latency_reps": 3,
            "latency_warmup": 1,
            "width_step": 16,
            "ffn_step": 16,
            "skip_seq_lens": (32,),
            "use_executorch": False,
            "latency_residual": "none",
        },
        "quick": {},
        # full keeps quick's backbone (cached; a 192-wide 8-layer backbone takes over an hour to train on 2
        # cores) and spends its budget where quick cannot decide: more search repeats and evaluations (the
        # strategy comparison) and more finalists near the +2% bound; the final continued pre-training stays at
        # 10% of the backbone's steps, the paper's budget.
        "full": {
            "calib_batches": 16,
            "cpt_steps": 30,
            "search_budget": 10,
            "search_repeats": 6,
            "final_candidates": 6,
            "eval_batches": 8,
            "latency_seq_lens": (128, 1024),
        },
    }
    d_model: int = 128
    n_layers: int = 6
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn: int = 384
    train_steps: int = 1000
    lr: float = 3e-3
    seq_len: int = 128
    batch: int = 8
    calib_batches: int = 8
    cpt_steps: int = 20
    final_steps: int = 100
    kd_temperature: float = 1.0
    search_budget: int = 6
    search_repeats: int = 2
    final_candidates: int = 3
    screen_loss_bound: float = 0.15
    loss_bounds: tuple[float, ...] = (0.01, 0.02, 0.05)
    n_candidates: int = 2000
    eval_batches: int = 4
    width_step: int = 32
    ffn_step: int = 64
    max_loss_increase: float = 0.02
    latency_seq_lens: tuple[int, ...] = (1024,)
    decode_kv_len: int = 1024
    skip_seq_lens: tuple[int, ...] = (128, 512, 1024)
    latency_reps: int = 30
    latency_warmup: int = 3
    use_executorch: bool = True
    latency_residual: str = "gp"
    latency_dataset: str = ""
    lowering_cache: bool = True

    def validate(self) -> None:
        self.require_positive(
            "d_model",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "ffn",
            "train_steps",
            "seq_len",
            "batch",
            "calib_batches",
            "cpt_steps",
            "final_steps",
            "search_budget",
            "search_repeats",
            "final_candidates",
            "n_candidates",
            "eval_batches",
            "width_step",
            "ffn_step",
            "decode_kv_len",
            "latency_reps",
        )
        self.require(self.d_model % self.n_heads == 0, "n_heads", f"a divisor of d_model={self.d_model}")
        self.require(self.n_heads % self.n_kv_heads == 0, "n_kv_heads", f"a divisor of n_heads={self.n_heads}")
        self.require(self.lr > 0, "lr", "a positive learning rate")
        self.require(0 <= self.max_loss_increase < 1, "max_loss_increase", "a fraction in [0, 1)")
        self.require(len(self.latency_seq_lens) > 0, "latency_seq_lens", "at least one prefill length")
        self.require(0 < self.screen_loss_bound < 1, "screen_loss_bound", "a fraction in (0, 1)")
        bounds_ok = len(self.loss_bounds) > 0 and all(0 <= b < 1 for b in self.loss_bounds)
        self.require(bounds_ok, "loss_bounds", "one or more fractions in [0, 1)")
        self.require(self.latency_warmup >= 0, "latency_warmup", "a non-negative integer")
        self.require(self.latency_residual in ("gp", "none"), "latency_residual", "'gp' or 'none'")
        self.require_file("latency_dataset")  # "" = the shipped dataset; a path must exist before any work
