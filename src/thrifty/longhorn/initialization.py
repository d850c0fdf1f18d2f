"""The two initialisation families every SSM peer can start from (issue #18: one family for both models).

``"mamba_ssm"`` is the scheme of ``state-spaces/mamba`` (``_init_weights``), which the official Longhorn code
reuses (spec §2.7) and which the authors' Mamba baseline runs: PyTorch-default Linear/conv weights, every
Linear bias zeroed (except Mamba's ``dt_proj.bias``, which holds the dt initialisation), embedding
N(0, 0.02), and each ``out_proj.weight`` re-drawn kaiming-uniform(a=sqrt 5) and divided by sqrt(n_layers).

``"transformers"`` is what ``MambaForCausalLM``'s ``_init_weights`` does with its defaults
(``initializer_range=0.1``, ``rescale_prenorm_residual=False``): every Linear weight and the embedding
N(0, 0.1), Linear and conv biases zeroed, conv and ``out_proj`` kaiming-uniform(a=sqrt 5), no residual rescale.

Mamba's dt/A/D initialisation (``A_log = log(1..N)``, ``dt ~ LogUniform[1e-3, 0.1]``) is the same in both
families and is applied by the Mamba mixer itself after this; Longhorn has no dt/A parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

INIT_SCHEMES: tuple[str, ...] = ("mamba_ssm", "transformers")
MAMBA_SSM_EMBED_STD = 0.02
TRANSFORMERS_INIT_RANGE = 0.1  # MambaConfig.initializer_range default


def check_init_scheme(init_scheme: str) -> None:
    """Raise ``ValueError`` naming ``init_scheme`` unless it is one of :data:`INIT_SCHEMES`."""
    if init_scheme not in INIT_SCHEMES:
        raise ValueError(f"init_scheme: expected one of {INIT_SCHEMES}, got {init_scheme!r}")


@torch.no_grad()
def init_ssm_lm(
    model: nn.Module,
    *,
    embedding: nn.Embedding,
    out_projs: Iterable[nn.Linear],
    n_layers: int,
    init_scheme: str = "mamba_ssm",
    keep_bias: Iterable[nn.Parameter] = (),
) -> None:
    """Initialise an SSM language model in place with one of :data:`INIT_SCHEMES`.

    Args:
        model: the whole LM (its Linear and Conv1d modules are visited).
        embedding: the (tied) token embedding.
        out_projs: each mixer's output projection (the residual-branch weight rescaled by ``mamba_ssm``).
        n_layers: residual layers (the ``mamba_ssm`` rescale divides by ``sqrt(n_layers)``).
        init_scheme: ``"mamba_ssm"`` or ``"transformers"``.
        keep_bias: biases left untouched (``mamba_ssm``'s ``_no_reinit``: Mamba's ``dt_proj.bias``).
    """
    check_init_scheme(init_scheme)
    kept = {id(p) for p in keep_bias}
    transformers_family = init_scheme == "transformers"
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if transformers_family:
                nn.init.normal_(module.weight, std=TRANSFORMERS_INIT_RANGE)
            if module.bias is not None and id(module.bias) not in kept:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d) and transformers_family:
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    nn.init.normal_(embedding.weight, std=TRANSFORMERS_INIT_RANGE if transformers_family else MAMBA_SSM_EMBED_STD)
    for proj in out_projs:
        nn.init.kaiming_uniform_(proj.weight, a=math.sqrt(5))
        if not transformers_family:
            proj.weight /= math.sqrt(n_layers)
