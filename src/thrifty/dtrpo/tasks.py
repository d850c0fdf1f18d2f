"""Verifiable toy task for the reproduction: ``n``-digit addition, ``"123+456="`` -> ``"579"`` + EOS padding.

Vocabulary: digits ``0..9`` are ids ``0..9``, then ``+`` (10), ``=`` (11), EOS (12) and ``[MASK]`` (13).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PLUS, EQUALS, EOS, MASK = 10, 11, 12, 13
VOCAB_SIZE = 14
_SYMBOLS = "0123456789+=$_"  # $ = EOS, _ = MASK (for decoding/debugging only)


@dataclass(frozen=True)
class AdditionTask:
    """``a + b`` with ``a, b`` uniform ``n_digits``-digit numbers (leading zeros allowed in the prompt).

    Args:
        n_digits: digits per operand (prompt length ``2 n + 2``).
        resp_len: response length (the sum's digits, then EOS padding); must exceed ``n_digits``.
        zero_pad: write the sum with exactly ``n_digits + 1`` digits (leading zeros), which a tiny model
            learns much faster than variable-length sums.
        reverse: write the (zero-padded) sum least-significant digit first, so that every carry comes from
            digits already generated in earlier blocks (much easier for a semi-autoregressive model).
    """

    n_digits: int = 3
    resp_len: int = 8
    zero_pad: bool = True
    reverse: bool = False

    def __post_init__(self) -> None:
        if self.n_digits <= 0:
            raise ValueError(f"n_digits: expected a positive integer, got {self.n_digits}")
        if self.resp_len < self.n_digits + 1:
            raise ValueError(f"resp_len: expected at least n_digits + 1 = {self.n_digits + 1}, got {self.resp_len}")
        if self.reverse and not self.zero_pad:
            raise ValueError("reverse: expected zero_pad=True (a reversed sum is written with all its digits)")

    @property
    def prompt_len(self) -> int:
        return 2 * self.n_digits + 2

    def problems(self, n: int, generator: torch.Generator, exclude: Tensor | None = None) -> Tensor:
        """``(n, 2)`` operand pairs drawn uniformly; pairs whose key ``a * 10^d + b`` is in ``exclude`` are redrawn."""
        top = 10**self.n_digits
        out = torch.randint(0, top, (2 * n + 64, 2), generator=generator)
        if exclude is not None:
            out = out[~torch.isin(out[:, 0] * top + out[:, 1], exclude)]
        if out.shape[0] < n:
            raise RuntimeError("problems: too many exclusions; draw fewer problems")
        return out[:n]

    def key(self, problems: Tensor) -> Tensor:
        return problems[:, 0] * 10**self.n_digits + problems[:, 1]

    def _digits(self, values: Tensor, width: int) -> Tensor:
        powers = 10 ** torch.arange(width - 1, -1, -1)
        return (values[:, None] // powers) % 10

    def prompts(self, problems: Tensor) -> Tensor:
        """``(n, 2d+2)`` ids of ``"a+b="``."""
        n = problems.shape[0]
        a, b = self._digits(problems[:, 0], self.n_digits), self._digits(problems[:, 1], self.n_digits)
        return torch.cat((a, torch.full((n, 1), PLUS), b, torch.full((n, 1), EQUALS)), dim=1)

    def answers(self, problems: Tensor) -> Tensor:
        """``(n, resp_len)`` ids: the sum (zero-padded or not, see ``zero_pad``), then EOS."""
        total = problems.sum(1)
        width = self.n_digits + 1
        digits = self._digits(total, width)
        if self.reverse:
            digits = digits.flip(1)
        if self.zero_pad:
            return torch.cat((digits, torch.full((problems.shape[0], self.resp_len - width), EOS)), dim=1)
        n_sig = torch.where(total > 0, torch.floor(torch.log10(total.clamp_min(1).double())).long() + 1, 1)
        out = torch.full((problems.shape[0], self.resp_len), EOS)
        for length in range(1, width + 1):
            rows = n_sig == length
            out[rows, :length] = digits[rows, width - length :]
        return out

    def noisy_answers(self, problems: Tensor, carry_drop: float, generator: torch.Generator) -> Tensor:
        """``(n, resp_len)`` answers in which each carry is dropped independently with probability ``carry_drop``.

        The systematic error of a careless adder ("near-miss" answers: a dropped carry changes one digit, or
        a run of digits when it cascades). SFT on such targets converges to a model limited by the noise.
        Requires ``zero_pad``. ``carry_drop = 0`` gives :meth:`answers`.
        """
        if not 0 <= carry_drop <= 1:
            raise ValueError(f"carry_drop: expected a probability in [0, 1], got {carry_drop}")
        if not self.zero_pad:
            raise ValueError("noisy_answers: expected zero_pad=True")
        n, width = problems.shape[0], self.n_digits + 1
        a, b = self._digits(problems[:, 0], self.n_digits), self._digits(problems[:, 1], self.n_digits)
        drop = torch.rand((n, self.n_digits), generator=generator) < carry_drop
        carry = torch.zeros(n, dtype=torch.long)
        low_first = []
        for k in range(self.n_digits):  # least-significant digit first
            column = a[:, -1 - k] + b[:, -1 - k] + carry
            low_first.append(column % 10)
            carry = (column >= 10).long() * (~drop[:, k]).long()
        low_first.append(carry)
        digits = torch.stack(low_first, 1)
        digits = digits if self.reverse else digits.flip(1)
        return torch.cat((digits, torch.full((n, self.resp_len - width), EOS)), dim=1)

    def digit_reward(self, problems: Tensor, responses: Tensor) -> Tensor:
        """``(n,)`` long: how many response positions match the correct response (a graded reward)."""
        return (responses.cpu() == self.answers(problems.cpu())).sum(1)

    def verify(self, problems: Tensor, responses: Tensor) -> Tensor:
        """``(n,)`` bool: exact match with the correct response."""
        return (responses.cpu() == self.answers(problems.cpu())).all(1)

    @staticmethod
    def decode(ids: Tensor) -> str:
        return "".join(_SYMBOLS[int(i)] for i in ids)
