"""Decoding sessions: one KV-cached incremental interface over core's TransformerLM and transformers models.

A session wraps a model for greedy decoding: :meth:`prefill` encodes the prompt into the cache and returns
the logits of the next token; :meth:`step` feeds one token per row and returns the next logits;
:meth:`logits_full` is the cache-free teacher-forced forward used by the slow references.
Models with their own prompt type (the video LM) provide ``decode_session()``.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from thrifty.core.lm import TransformerLM


@runtime_checkable
class DecodeSession(Protocol):
    """Incremental greedy-decoding interface (batch ``B``, vocabulary ``V``)."""

    max_context: int | None

    def prompt_length(self, prompt: Any) -> int:
        """Number of positions the prompt occupies."""
        ...

    def prefill(self, prompt: Any) -> Tensor:
        """Encode the prompt into a fresh cache; logits ``(B, V)`` of the first generated token."""
        ...

    def step(self, tokens: Tensor) -> Tensor:
        """Append ``tokens (B,)`` to the cache; logits ``(B, V)`` of the next token."""
        ...

    def logits_full(self, prompt: Any, completion: Tensor) -> Tensor:
        """Cache-free forward: logits ``(B, L + 1, V)`` predicting ``completion (B, L)`` and the token after."""
        ...


class CoreLMSession:
    """Session over :class:`thrifty.core.lm.TransformerLM` (prompt: token ids ``(B, P)``)."""

    def __init__(self, model: TransformerLM, max_context: int | None = None) -> None:
        if not model.cfg.causal:
            raise ValueError("model: expected a causal TransformerLM (cfg.causal=True)")
        self.model, self.max_context = model, max_context
        self._caches: list[Any] = []
        self._pos = 0

    def prompt_length(self, prompt: Tensor) -> int:
        return int(prompt.shape[1])

    def prefill(self, prompt: Tensor) -> Tensor:
        self._caches = self.model.new_caches()
        self._pos = prompt.shape[1]
        return self.model(prompt, caches=self._caches)[:, -1]

    def step(self, tokens: Tensor) -> Tensor:
        logits = self.model(tokens[:, None], start_pos=self._pos, caches=self._caches)[:, -1]
        self._pos += 1
        return logits

    def logits_full(self, prompt: Tensor, completion: Tensor) -> Tensor:
        logits = self.model(torch.cat((prompt, completion), dim=1))
        return logits[:, prompt.shape[1] - 1 :]


class HFSession:
    """Session over a transformers causal LM (prompt: ``input_ids (B, P)``), using ``past_key_values``."""

    def __init__(self, model: nn.Module, max_context: int | None = None) -> None:
        self.model = model
        config = getattr(model, "config", None)
        self.max_context = max_context or getattr(config, "max_position_embeddings", None)
        self._past: Any = None
        # transformers >= 5.2x renamed ``past_key_values`` to ``cache`` (input and output).
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def prompt_length(self, prompt: Tensor) -> int:
        return int(prompt.shape[1])

    def prefill(self, prompt: Tensor) -> Tensor:
        out = self.model(input_ids=prompt, use_cache=True)
        self._past = out[self._cache_arg]
        return out.logits[:, -1]

    def step(self, tokens: Tensor) -> Tensor:
        out = self.model(input_ids=tokens[:, None], use_cache=True, **{self._cache_arg: self._past})
        self._past = out[self._cache_arg]
        return out.logits[:, -1]

    def logits_full(self, prompt: Tensor, completion: Tensor) -> Tensor:
        logits = self.model(input_ids=torch.cat((prompt, completion), dim=1), use_cache=False).logits
        return logits[:, prompt.shape[1] - 1 :]


def make_session(model: Any, max_context: int | None = None) -> DecodeSession:
    """The decoding session of ``model``: its own ``decode_session()``, core's LM, or a transformers model."""
    if isinstance(model, DecodeSession):
        return model
    if hasattr(model, "decode_session"):
        return model.decode_session()
    if isinstance(model, TransformerLM):
        return CoreLMSession(model, max_context)
    if hasattr(model, "config") and hasattr(model, "prepare_inputs_for_generation"):
        return HFSession(model, max_context)
    raise ValueError(
        f"model: expected a TransformerLM, a transformers causal LM or an object with decode_session(), "
        f"got {type(model).__name__}"
    )
