"""transformers integration: ``LonghornHFConfig`` / ``LonghornForCausalLM``, registered with the Auto classes.

Importing this module registers ``model_type="thrifty_longhorn"``, so after ``import thrifty.longhorn.hf``::

    model = AutoModelForCausalLM.from_pretrained(path)          # offline, safetensors
    model.generate(input_ids, max_new_tokens=20, do_sample=False)

``generate`` re-runs the prefix each step (no HF cache object) and honours ``attention_mask`` for left-padded
batches (padding is an identity step of the recurrence); for O(E*N)-per-token decoding use
:meth:`thrifty.longhorn.LonghornLM.generate` on ``model.model``.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from thrifty.longhorn.model import LonghornLM

MODEL_TYPE = "thrifty_longhorn"


class LonghornHFConfig(PretrainedConfig):
    """Architecture of :class:`LonghornForCausalLM` (the arguments of :class:`LonghornLM`)."""

    model_type = MODEL_TYPE
    attribute_map = {"num_hidden_layers": "n_layers", "hidden_size": "d_model"}

    def __init__(
        self,
        vocab_size: int = 256,
        d_model: int = 64,
        n_layers: int = 4,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        scan_mode: str = "recurrent",
        chunk_size: int = 32,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        self.vocab_size, self.d_model, self.n_layers = vocab_size, d_model, n_layers
        self.d_state, self.d_conv, self.expand = d_state, d_conv, expand
        self.scan_mode, self.chunk_size = scan_mode, chunk_size
        kwargs.setdefault("use_cache", False)  # no HF cache object: generate re-runs the prefix
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


def check_left_padding(attention_mask: Tensor, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``attention_mask`` is a 0/1 ``shape`` mask of left padding (rows 0...01...1)."""
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(f"attention_mask: expected shape {tuple(shape)}, got {tuple(attention_mask.shape)}")
    if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask: expected only 0 and 1 values")
    if attention_mask.shape[1] > 1 and not bool((attention_mask[:, 1:] >= attention_mask[:, :-1]).all()):
        raise ValueError("attention_mask: expected left padding only (no 0 after a 1 in a row)")
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("attention_mask: expected every row to end with a real token (a row is all padding)")


class LonghornForCausalLM(PreTrainedModel, GenerationMixin):
    """A :class:`LonghornLM` behind the ``PreTrainedModel`` API (save/load/generate)."""

    config_class = LonghornHFConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _tied_weights_keys = {"model.head.weight": "model.embed.weight"}

    def __init__(self, config: LonghornHFConfig) -> None:
        super().__init__(config)
        self.model = LonghornLM(
            config.vocab_size,
            config.d_model,
            config.n_layers,
            d_state=config.d_state,
            d_conv=config.d_conv,
            expand=config.expand,
            scan_mode=config.scan_mode,
            chunk_size=config.chunk_size,
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Keep :class:`LonghornLM`'s own initialisation (spec §2.7)."""

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed = value

    def get_output_embeddings(self) -> nn.Module:
        return self.model.head

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        """``input_ids (B, T)`` -> logits ``(B, T, V)``; ``labels`` are shifted inside (HF convention).

        ``attention_mask (B, T)`` may mark left padding (zeros before the tokens of a row): padded positions
        are identity steps of the recurrence, so each row's logits equal those of its unpadded prompt (and
        ``generate`` on a left-padded batch decodes each row as if alone). Any other pattern (a zero after
        a one) raises ``ValueError``, as do ``output_hidden_states=True`` and an empty ``input_ids``.
        """
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids: expected (B, T) with T >= 1, got shape {tuple(input_ids.shape)}")
        self.model.check_ids(input_ids, "input_ids")
        if output_hidden_states or (output_hidden_states is None and self.config.output_hidden_states):
            raise ValueError("output_hidden_states: not supported by LonghornForCausalLM (pass False)")
        mask = None
        if attention_mask is not None:
            check_left_padding(attention_mask, input_ids.shape)
            mask = None if bool(attention_mask.all()) else attention_mask
        logits = self.model(input_ids, mask=mask)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    def prepare_inputs_for_generation(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    @classmethod
    def from_lm(cls, lm: LonghornLM, config: LonghornHFConfig) -> LonghornForCausalLM:
        """Wrap trained :class:`LonghornLM` weights (``config`` must describe the same architecture)."""
        model = cls(config)
        model.model.load_state_dict(lm.state_dict())
        return model.to(next(lm.parameters()).device)


AutoConfig.register(MODEL_TYPE, LonghornHFConfig, exist_ok=True)
AutoModelForCausalLM.register(LonghornHFConfig, LonghornForCausalLM, exist_ok=True)

__all__ = ["LonghornForCausalLM", "LonghornHFConfig", "MODEL_TYPE"]
