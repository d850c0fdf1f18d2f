"""Configuration of the guard reproduction (``thrifty reproduce guard``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.core.config import Config


@dataclass
class GuardConfig(Config):
    """Teacher on the synthetic moderation set, then the Llama Guard 3-1B-INT4 recipe stage by stage.

    Args:
        n_train, n_val, n_test: examples of the teacher's training set, the threshold-calibration split and
            the test set (disjoint seeds).
        ft_pool: labelled examples available to every fine-tune (scarce, the spec's "mid" setting).
        label_noise, two_clause_p: data generator knobs (flipped labels; messages with two clauses).
        dim, n_layers, n_heads, mlp_hidden: teacher shape (word-level ``TransformerLM``, untied head).
        teacher_steps, teacher_lr, batch: teacher training.
        keep_layers, ffn_dim: the student after depth/width pruning (the card: 16 -> 12 layers, 8192 -> 6400).
        calib_batches: calibration batches of ``batch`` examples for block influence and neuron importance.
        neuron_agg: ``"mean_abs"`` or ``"l2"`` neuron importance (the card's "average L2 norm" is [inf]).
        ft_steps, ft_lr: steps of every fine-tune (CE, KD, the from-scratch control) and the CE / KD learning rate
            (QAT uses half of it; the from-scratch control uses ``teacher_lr``).
        kd_alpha, kd_tau: KD weight of the CE term and temperature (KD over the answer tokens only).
        qat_steps: KD fine-tune steps with fake quantisation before convert.
        group_size: int4 group size along in-features (the card's 256 needs width >= 256; None = per channel).
        use_executorch: lower the teacher and the int4 student to ExecuTorch/XNNPACK (sizes, runtime F1).
        ttft_repeats: runtime prefill timings per model.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "n_train": 256,
            "n_val": 64,
            "n_test": 128,
            "ft_pool": 64,
            "dim": 32,
            "n_layers": 4,
            "mlp_hidden": 64,
            "teacher_steps": 6,
            "keep_layers": 2,
            "ffn_dim": 32,
            "calib_batches": 1,
            "ft_steps": 3,
            "qat_steps": 2,
            "batch": 16,
            "use_executorch": False,
        },
        "quick": {},
        "full": {
            "n_train": 12000,
            "n_test": 3000,
            "dim": 128,
            "n_layers": 6,
            "mlp_hidden": 512,
            "teacher_steps": 1500,
            "keep_layers": 3,
            "ffn_dim": 256,
            "ft_steps": 400,
            "qat_steps": 200,
        },
    }
    n_train: int = 6000
    n_val: int = 500
    n_test: int = 2000
    ft_pool: int = 300
    label_noise: float = 0.03
    two_clause_p: float = 0.4
    dim: int = 64
    n_layers: int = 4
    n_heads: int = 4
    mlp_hidden: int = 256
    teacher_steps: int = 600
    teacher_lr: float = 2e-3
    batch: int = 32
    keep_layers: int = 2
    ffn_dim: int = 128
    calib_batches: int = 8
    neuron_agg: str = "mean_abs"
    ft_steps: int = 300
    ft_lr: float = 5e-4
    kd_alpha: float = 0.5
    kd_tau: float = 1.0
    qat_steps: int = 150
    group_size: int | None = 32
    use_executorch: bool = True
    ttft_repeats: int = 5

    def validate(self) -> None:
        self.require_positive(
            "n_train", "n_val", "n_test", "ft_pool", "teacher_steps", "ft_steps", "qat_steps", "batch"
        )
        self.require(0 < self.keep_layers <= self.n_layers, "keep_layers", f"1..n_layers={self.n_layers}")
        self.require(0 < self.ffn_dim <= self.mlp_hidden, "ffn_dim", f"1..mlp_hidden={self.mlp_hidden}")
        self.require(self.neuron_agg in ("mean_abs", "l2"), "neuron_agg", "'mean_abs' or 'l2'")
        self.require(0.0 <= self.kd_alpha <= 1.0, "kd_alpha", "a weight in [0, 1]")
        self.require(0.0 <= self.label_noise < 0.5, "label_noise", "a rate in [0, 0.5)")
        gs = self.group_size
        ok = gs is None or (gs > 0 and self.dim % gs == 0 and self.ffn_dim % gs == 0)
        self.require(ok, "group_size", f"None or a divisor of dim={self.dim} and ffn_dim={self.ffn_dim}")
