"""``GuardClassifier``: save / load a trained guard LM (config.json + safetensors + token map) and classify."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from thrifty.core.checkpoint import load_checkpoint, save_checkpoint
from thrifty.core.io import write_json_atomic
from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.guard.io import GuardVerdict
from thrifty.guard.model import PrunedLMHead, prune_output_layer, unsafe_score
from thrifty.guard.tokens import GuardTokenizer


class GuardClassifier:
    """A guard LM with its tokenizer and calibrated P(unsafe) threshold.

    Args:
        model: a ``TransformerLM`` whose head may be a :class:`PrunedLMHead` (expanded to the vocabulary).
        tokenizer: the word-level tokenizer it was trained with.
        threshold: P(unsafe) at or above which a message is unsafe.
    """

    def __init__(self, model: TransformerLM, tokenizer: GuardTokenizer, threshold: float = 0.5) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold: expected a probability in [0, 1], got {threshold}")
        self.model, self.tokenizer, self.threshold = model.eval(), tokenizer, float(threshold)

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``token_map.json`` (no pickle)."""
        head = self.model.head
        token_map = head.token_map if isinstance(head, PrunedLMHead) else None
        config = {
            "lm": self.model.cfg.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
            "threshold": self.threshold,
            "pruned_head": token_map is not None,
        }
        directory = save_checkpoint(directory, self.model, config)
        write_json_atomic(Path(directory) / "token_map.json", {str(k): v for k, v in (token_map or {}).items()})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> GuardClassifier:
        """Rebuild the model from ``config.json`` and ``token_map.json`` and load its weights."""
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        tokenizer = GuardTokenizer.from_dict(config["tokenizer"])
        model = TransformerLM(TransformerLMConfig.from_dict(config["lm"]))
        if config["pruned_head"]:
            token_map = json.loads((directory / "token_map.json").read_text())
            keep = [token_map[str(i)] for i in range(len(token_map))]
            prune_output_layer(model, keep, required_ids=tokenizer.answer_ids())
        load_checkpoint(directory, model)
        return cls(model.to(device), tokenizer, config["threshold"])

    @torch.no_grad()
    def score(self, conversation: Sequence[tuple[str, str]], role: str = "User") -> float:
        """P(unsafe) of the last ``role`` message at the first answer position."""
        ids = torch.tensor([self.tokenizer.encode_prompt(conversation, role)], device=self.model.embed.weight.device)
        logits = self.model(ids)[:, -1]
        return float(unsafe_score(logits, self.tokenizer.safe_id, self.tokenizer.unsafe_id)[0])

    @torch.no_grad()
    def classify(
        self, conversation: Sequence[tuple[str, str]], role: str = "User", max_new_tokens: int = 12
    ) -> tuple[GuardVerdict, float]:
        """``(verdict, P(unsafe))``: safe below the threshold, else the greedily decoded category codes.

        Raises:
            GuardOutputError: if the decoded categories are malformed (never reported as safe).
        """
        p_unsafe = self.score(conversation, role)
        if p_unsafe < self.threshold:
            return GuardVerdict(True), p_unsafe
        prompt = self.tokenizer.encode_prompt(conversation, role) + [self.tokenizer.unsafe_id]
        ids = torch.tensor([prompt], device=self.model.embed.weight.device)
        out = self.model.generate(ids, max_new_tokens)[0, len(prompt) - 1 :].tolist()
        return self.tokenizer.decode_answer(out), p_unsafe
