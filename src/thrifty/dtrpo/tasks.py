"""Verifiable toy task: ``n``-digit additions, ``"12+34=56+78="`` -> ``"640431"`` (each sum reversed) + EOS.

With ``prompt_format="digits"`` the prompt is the operands' digits only (``"1234"`` for ``12+34``).

Vocabulary: digits ``0..9`` are ids ``0..9``, then ``+`` (10), ``=`` (11), EOS (12) and ``[MASK]`` (13).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PLUS, EQUALS, EOS, MASK = 10, 11, 12, 13
VOCAB_SIZE = 14
PROMPT_FORMATS = ("equation", "digits")
_SYMBOLS = "0123456789+=$_"  # $ = EOS, _ = MASK (for decoding/debugging only)


@dataclass(frozen=True)
class AdditionTask:
    """``n_sums`` additions of ``n_digits``-digit numbers per prompt (leading zeros allowed in the prompt).

    The prompt is ``"a1+b1=a2+b2=..."``; the response is every sum in turn (zero-padded to ``n_digits + 1``
    digits, optionally reversed), then EOS padding to ``resp_len``. Several sums make responses longer (more
    informative blocks) while each output digit stays a local, learnable computation.

    Args:
        n_digits: digits per operand (prompt length ``n_sums * (2 n + 2)``).
        resp_len: response length; at least ``n_sums * (n_digits + 1)`` (every sum's digits).
        zero_pad: write each sum with exactly ``n_digits + 1`` digits (leading zeros), which a tiny model
            learns much faster than variable-length sums (``zero_pad=False`` needs ``n_sums = 1``).
        reverse: write each (zero-padded) sum least-significant digit first, so that every carry comes from
            digits already generated in earlier blocks (much easier for a semi-autoregressive model).
        n_sums: additions per prompt.
        prompt_format: ``"equation"`` (``"a1+b1=a2+b2=..."``) or ``"digits"`` (``"a1b1a2b2..."``, the operands'
            digits only). With 1-digit operands, ``"digits"`` gives every sum 2 prompt and 2 response tokens, so
            each output digit sits at the same relative position to its operands in every sum; with
            ``"equation"`` that offset differs per sum, which a tiny RoPE model learns far more slowly and on
            some seeds not at all within 2,000 steps (measured, docs/methods/dtrpo.md).
    """

    n_digits: int = 3
    resp_len: int = 8
    zero_pad: bool = True
    reverse: bool = False
    n_sums: int = 1
    prompt_format: str = "equation"

    def __post_init__(self) -> None:
        if self.n_digits <= 0:
            raise ValueError(f"n_digits: expected a positive integer, got {self.n_digits}")
        if self.n_sums <= 0:
            raise ValueError(f"n_sums: expected a positive integer, got {self.n_sums}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format: expected one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        if self.resp_len < self.answer_len:
            raise ValueError(
                f"resp_len: expected at least n_sums * (n_digits + 1) = {self.answer_len}, got {self.resp_len}"
            )
        if self.reverse and not self.zero_pad:
            raise ValueError("reverse: expected zero_pad=True (a reversed sum is written with all its digits)")
        if self.n_sums > 1 and not self.zero_pad:
            raise ValueError("zero_pad: expected True when n_sums > 1 (each sum has a fixed width)")

    @property
    def prompt_len(self) -> int:
        symbols = 2 if self.prompt_format == "equation" else 0
        return self.n_sums * (2 * self.n_digits + symbols)

    @property
    def answer_len(self) -> int:
        """Tokens carrying digits (the rest of the response is EOS padding)."""
        return self.n_sums * (self.n_digits + 1)

    def problems(self, n: int, generator: torch.Generator, exclude: Tensor | None = None) -> Tensor:
        """``(n, 2 * n_sums)`` operands ``a1, b1, a2, b2, ...`` drawn uniformly; keys in ``exclude`` are redrawn."""
        top = 10**self.n_digits
        out = torch.randint(0, top, (2 * n + 64, 2 * self.n_sums), generator=generator)
        if exclude is not None:
            out = out[~torch.isin(self.key(out), exclude)]
        if out.shape[0] < n:
            raise RuntimeError("problems: too many exclusions; draw fewer problems")
        return out[:n]

    def key(self, problems: Tensor) -> Tensor:
        """``(n,)`` one integer per problem (its operands' digits concatenated)."""
        top = 10**self.n_digits
        powers = top ** torch.arange(problems.shape[1] - 1, -1, -1)
        return (problems * powers).sum(1)

    def _digits(self, values: Tensor, width: int) -> Tensor:
        powers = 10 ** torch.arange(width - 1, -1, -1)
        return (values[:, None] // powers) % 10

    def _pad(self, digits: Tensor) -> Tensor:
        return torch.cat((digits, torch.full((digits.shape[0], self.resp_len - digits.shape[1]), EOS)), dim=1)

    def prompts(self, problems: Tensor) -> Tensor:
        """``(n, prompt_len)`` ids of ``"a1+b1=a2+b2=..."`` (or ``"a1b1a2b2..."`` with ``prompt_format="digits"``)."""
        n, parts = problems.shape[0], []
        for pair in problems.view(n, -1, 2).unbind(1):  # (n, 2) operands of one sum
            a_d, b_d = self._digits(pair[:, 0], self.n_digits), self._digits(pair[:, 1], self.n_digits)
            if self.prompt_format == "digits":
                parts += [a_d, b_d]
            else:
                parts += [a_d, torch.full((n, 1), PLUS), b_d, torch.full((n, 1), EQUALS)]
        return torch.cat(parts, dim=1)

    def answers(self, problems: Tensor) -> Tensor:
        """``(n, resp_len)`` ids: each sum (zero-padded or not, see ``zero_pad``), then EOS."""
        totals = problems.view(problems.shape[0], -1, 2).sum(2)  # (n, n_sums)
        width = self.n_digits + 1
        if self.zero_pad:
            digits = [self._digits(t, width) for t in totals.unbind(1)]
            return self._pad(torch.cat([d.flip(1) if self.reverse else d for d in digits], dim=1))
        total, digits = totals[:, 0], self._digits(totals[:, 0], width)
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
        n = problems.shape[0]
        drops = torch.rand((n, self.n_sums, self.n_digits), generator=generator) < carry_drop
        sums = []
        for pair, drop in zip(problems.view(n, -1, 2).unbind(1), drops.unbind(1)):
            a, b = self._digits(pair[:, 0], self.n_digits), self._digits(pair[:, 1], self.n_digits)
            digits = self._careless_sum(a, b, drop)
            sums.append(digits if self.reverse else digits.flip(1))
        return self._pad(torch.cat(sums, dim=1))

    def _careless_sum(self, a: Tensor, b: Tensor, drop: Tensor) -> Tensor:
        """``(n, n_digits + 1)`` sum digits, least-significant first, with the carries flagged in ``drop`` lost."""
        carry = torch.zeros(a.shape[0], dtype=torch.long)
        low_first = []
        for k in range(self.n_digits):
            column = a[:, -1 - k] + b[:, -1 - k] + carry
            low_first.append(column % 10)
            carry = (column >= 10).long() * (~drop[:, k]).long()
        low_first.append(carry)
        return torch.stack(low_first, 1)

    def digit_reward(self, problems: Tensor, responses: Tensor) -> Tensor:
        """``(n,)`` long: how many response positions match the correct response (a graded reward)."""
        return (responses.cpu() == self.answers(problems.cpu())).sum(1)

    def verify(self, problems: Tensor, responses: Tensor) -> Tensor:
        """``(n,)`` bool: exact match with the correct response."""
        return (responses.cpu() == self.answers(problems.cpu())).all(1)

    @staticmethod
    def decode(ids: Tensor) -> str:
        return "".join(_SYMBOLS[int(i)] for i in ids)
