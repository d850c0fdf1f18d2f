"""Word-level tokenizer of the tiny guard LM, with Llama-3-like multi-token category codes.

Category codes span two tokens, as in Llama 3 (``S10`` = ``S`` + ``10``), so the answer vocabulary is
``safe``, ``unsafe``, newline, ``S``, the numbers ``1..13``, the comma and ``<eot>`` (18 tokens).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from thrifty.guard.io import ROLES, GuardVerdict, parse_guard_output

PAD, BOS, UNK, EOT, ASK = "<pad>", "<bos>", "<unk>", "<eot>", "<assess>"
ANSWER_TOKENS: tuple[str, ...] = ("safe", "unsafe", "\n", "S", ",", EOT, *(str(i) for i in range(1, 14)))
SPECIALS: tuple[str, ...] = (PAD, BOS, UNK, ASK, *(f"{r}:" for r in ROLES), *ANSWER_TOKENS)
_ANSWER_PIECES = re.compile(r"unsafe|safe|\n|S|[0-9]+|,")


class GuardTokenizer:
    """Maps words and answer pieces to ids; ids ``0..len(SPECIALS)-1`` are the special/answer tokens.

    The tiny model reads a compact prompt, ``<bos> User: words ... <assess>`` **[recon]** instead of the
    card's ~100-word template (:func:`thrifty.guard.io.format_guard_prompt`), whose constant text carries
    no information for a model trained from scratch.
    """

    def __init__(self, words: Iterable[str]) -> None:
        extra = sorted({w for w in words if w not in SPECIALS})
        self.vocab: list[str] = [*SPECIALS, *extra]
        self.ids: dict[str, int] = {tok: i for i, tok in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return self.ids[PAD]

    @property
    def safe_id(self) -> int:
        return self.ids["safe"]

    @property
    def unsafe_id(self) -> int:
        return self.ids["unsafe"]

    @property
    def eot_id(self) -> int:
        return self.ids[EOT]

    def answer_ids(self) -> list[int]:
        """Ids of every token a guard answer may contain (the ``keep_ids`` of output-layer pruning)."""
        return [self.ids[t] for t in ANSWER_TOKENS]

    def encode_prompt(self, conversation: Sequence[tuple[str, str]], role: str = "User") -> list[int]:
        """``<bos> Speaker: w w ... <assess> Role:`` ids; unknown words map to ``<unk>``."""
        if not conversation:
            raise ValueError("conversation: expected at least one (speaker, text) turn, got none")
        if role not in ROLES:
            raise ValueError(f"role: expected 'User' or 'Agent', got {role!r}")
        ids = [self.ids[BOS]]
        for speaker, text in conversation:
            if speaker not in ROLES:
                raise ValueError(f"conversation speaker: expected 'User' or 'Agent', got {speaker!r}")
            ids.append(self.ids[f"{speaker}:"])
            ids.extend(self.ids.get(w, self.ids[UNK]) for w in text.lower().split())
        return [*ids, self.ids[ASK], self.ids[f"{role}:"]]

    def encode_answer(self, verdict: GuardVerdict) -> list[int]:
        """The answer ids of ``verdict``, ending with ``<eot>``: ``unsafe \\n S 10 , S 1 <eot>``."""
        pieces = _ANSWER_PIECES.findall(verdict.to_text())
        return [self.ids[p] for p in pieces] + [self.eot_id]

    def decode_answer(self, ids: Sequence[int]) -> GuardVerdict:
        """Parse generated answer ids (up to the first ``<eot>``) with :func:`parse_guard_output`."""
        text = ""
        for i in ids:
            tok = self.vocab[int(i)]
            if tok == EOT:
                break
            text += tok
        return parse_guard_output(text)

    def to_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuardTokenizer:
        vocab = list(data["vocab"])
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError("vocab: expected the guard special tokens first")
        return cls(vocab[len(SPECIALS) :])
