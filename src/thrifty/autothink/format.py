"""VideoAuto-R1's output format ``<box>a1</box><think>r</think><box>a2</box>`` and its strict parser.

The rules are those of the official regex (``_PATTERN_ANSWER_THINK_ANSWER`` in ``reward/reward.py``), with
``\\boxed{...}`` written as ``<box>...</box>``: only whitespace before the first box, exactly one think pair,
only whitespace around it, a second box, nothing but whitespace after. The official lookahead meant to forbid
an empty think block, ``<think>(?=[\\s\\S]*?\\S)``, is satisfied by the ``</think>`` tag itself, so the regex
accepts ``<think></think>`` **[inf]**; the paper (and the issue) want it rejected, so ``require_nonempty_think``
defaults to True. a1 is the single box of the text before ``<think>``, a2 the single box of the text after the
last ``</think>`` (the whole text when there is none), exactly as the official reward extracts them.

Input is either a string (spans are character offsets) or token ids with their vocabulary (spans are token
indices, tracked while parsing, never recovered by string matching).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

Span = tuple[int, int]


@dataclass(frozen=True)
class AnswerTwiceFormat:
    """Tag strings of the answer-think-answer format.

    Args:
        box: opening and closing tags of an answer box.
        think: opening and closing tags of the rationale.
        fallback: the first answer meaning "I must think" (the paper's "Let's analyze the problem step by step.").
        eos: end-of-sequence token: a token sequence is cut there.
        require_nonempty_think: reject ``<think></think>`` (see the module note) **[inf]**.
    """

    box: tuple[str, str] = ("<box>", "</box>")
    think: tuple[str, str] = ("<think>", "</think>")
    fallback: str = "FALLBACK"
    eos: str = "EOS"
    require_nonempty_think: bool = True

    @property
    def tags(self) -> tuple[str, ...]:
        return (*self.box, *self.think)


DEFAULT_FORMAT = AnswerTwiceFormat()


@dataclass(frozen=True)
class ParsedTwice:
    """A parsed response. Spans are ``[start, end)`` over characters (text) or token indices (ids)."""

    a1: str | None
    rationale: str | None
    a2: str | None
    fmt_ok: bool
    a1_span: Span | None
    a2_span: Span | None


@dataclass(frozen=True)
class _Seg:
    kind: str  # "box_open" | "box_close" | "think_open" | "think_close" | "text"
    text: str
    start: int
    end: int


def _kinds(fmt: AnswerTwiceFormat) -> dict[str, str]:
    return {fmt.box[0]: "box_open", fmt.box[1]: "box_close", fmt.think[0]: "think_open", fmt.think[1]: "think_close"}


def _segments_text(text: str, fmt: AnswerTwiceFormat) -> list[_Seg]:
    kinds = _kinds(fmt)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(kinds, key=len, reverse=True)))
    segs, pos = [], 0
    for match in pattern.finditer(text):
        if match.start() > pos:
            segs.append(_Seg("text", text[pos : match.start()], pos, match.start()))
        segs.append(_Seg(kinds[match.group()], match.group(), match.start(), match.end()))
        pos = match.end()
    if pos < len(text):
        segs.append(_Seg("text", text[pos:], pos, len(text)))
    return segs


def _segments_ids(ids: Sequence[int], vocab: Sequence[str], fmt: AnswerTwiceFormat) -> list[_Seg]:
    kinds = _kinds(fmt)
    segs: list[_Seg] = []
    for i, tok_id in enumerate(ids):
        if not 0 <= tok_id < len(vocab):
            raise ValueError(f"ids: token id {tok_id} is outside the vocabulary of size {len(vocab)}")
        piece = vocab[tok_id]
        if piece == fmt.eos:
            break
        kind = kinds.get(piece, "text")
        if kind == "text" and segs and segs[-1].kind == "text":
            last = segs[-1]
            segs[-1] = _Seg("text", f"{last.text} {piece}", last.start, i + 1)
        else:
            segs.append(_Seg(kind, piece, i, i + 1))
    return segs


def _single_box(segs: list[_Seg]) -> tuple[str, Span] | None:
    """The content of the only box among ``segs`` (None unless exactly one well-formed box)."""
    tags = [i for i, s in enumerate(segs) if s.kind in ("box_open", "box_close")]
    if len(tags) != 2 or segs[tags[0]].kind != "box_open" or segs[tags[1]].kind != "box_close":
        return None
    inner = segs[tags[0] + 1 : tags[1]]
    if any(s.kind != "text" for s in inner):
        return None
    start = segs[tags[0]].end
    return " ".join(s.text for s in inner).strip(), (start, inner[-1].end if inner else start)


def _think_pair(segs: list[_Seg], fmt: AnswerTwiceFormat) -> tuple[int, int] | None:
    """Indices of the only think pair, if there is exactly one, in order, and (optionally) non-empty."""
    kinds = [s.kind for s in segs]
    if kinds.count("think_open") != 1 or kinds.count("think_close") != 1:
        return None
    i_open, i_close = kinds.index("think_open"), kinds.index("think_close")
    if i_close < i_open:
        return None
    inside = segs[i_open + 1 : i_close]
    if fmt.require_nonempty_think and not any(s.kind != "text" or s.text.strip() for s in inside):
        return None
    return i_open, i_close


def _strict_ok(segs: list[_Seg], fmt: AnswerTwiceFormat) -> bool:
    """The official regex, on segments: box, think pair, box; only whitespace between and around."""
    pair = _think_pair(segs, fmt)
    return pair is not None and _box_only(segs[: pair[0]]) and _box_only(segs[pair[1] + 1 :])


def _box_only(segs: list[_Seg]) -> bool:
    """Exactly one box and, outside it, nothing but whitespace."""
    tagged = [s for s in segs if s.kind != "text" or s.text.strip()]
    if len(tagged) < 2 or tagged[0].kind != "box_open" or tagged[-1].kind != "box_close":
        return False
    return all(s.kind == "text" for s in tagged[1:-1])


def segments(
    text_or_ids: str | Sequence[int] | torch.Tensor, vocab: Sequence[str] | None, fmt: AnswerTwiceFormat
) -> list[_Seg]:
    """Split a response into tag and text segments (token ids need ``vocab``; cut at ``fmt.eos``)."""
    if isinstance(text_or_ids, str):
        return _segments_text(text_or_ids, fmt)
    if vocab is None:
        raise ValueError("vocab: expected the id -> token list when parsing token ids")
    ids = text_or_ids.tolist() if isinstance(text_or_ids, torch.Tensor) else list(text_or_ids)
    return _segments_ids(ids, vocab, fmt)


def parse_answer_twice(
    text_or_ids: str | Sequence[int] | torch.Tensor,
    vocab: Sequence[str] | None = None,
    fmt: AnswerTwiceFormat = DEFAULT_FORMAT,
) -> ParsedTwice:
    """Parse ``<box>a1</box><think>r</think><box>a2</box>`` with the official strict rules.

    Args:
        text_or_ids: the response as text, or as a 1-D sequence/tensor of token ids.
        vocab: id -> token string, needed for ids.
        fmt: the tags.

    Returns:
        :class:`ParsedTwice`; ``a1``/``a2`` are None when their part does not hold exactly one box.
    """
    segs = segments(text_or_ids, vocab, fmt)
    kinds = [s.kind for s in segs]
    i_open = kinds.index("think_open") if "think_open" in kinds else len(segs)
    i_close = len(kinds) - 1 - kinds[::-1].index("think_close") if "think_close" in kinds else -1
    first = _single_box(segs[:i_open])
    second = _single_box(segs[i_close + 1 :])
    ok = _strict_ok(segs, fmt)
    rationale = " ".join(s.text for s in segs[i_open + 1 : i_close]).strip() if ok else None
    return ParsedTwice(
        a1=None if first is None else first[0],
        rationale=rationale,
        a2=None if second is None else second[0],
        fmt_ok=ok,
        a1_span=None if first is None else first[1],
        a2_span=None if second is None else second[1],
    )


def parse_direct(
    text_or_ids: str | Sequence[int] | torch.Tensor,
    vocab: Sequence[str] | None = None,
    fmt: AnswerTwiceFormat = DEFAULT_FORMAT,
) -> tuple[str | None, bool]:
    """Direct-answer baseline ``<box>a</box>``: ``(answer, fmt_ok)``; strict (one box, nothing else)."""
    segs = segments(text_or_ids, vocab, fmt)
    box = _single_box(segs)
    return (None if box is None else box[0]), _box_only(segs)


def parse_cot(
    text_or_ids: str | Sequence[int] | torch.Tensor,
    vocab: Sequence[str] | None = None,
    fmt: AnswerTwiceFormat = DEFAULT_FORMAT,
) -> tuple[str | None, bool]:
    """Chain-of-thought baseline ``<think>r</think><box>a</box>``: ``(answer, fmt_ok)``.

    The answer is the single box after the last ``</think>``; the format needs exactly one non-empty
    think pair first and nothing after the box.
    """
    segs = segments(text_or_ids, vocab, fmt)
    kinds = [s.kind for s in segs]
    i_close = len(kinds) - 1 - kinds[::-1].index("think_close") if "think_close" in kinds else -1
    box = _single_box(segs[i_close + 1 :])
    pair = _think_pair(segs, fmt)
    ok = pair is not None and all(not s.text.strip() for s in segs[: pair[0]]) and _box_only(segs[pair[1] + 1 :])
    return (None if box is None else box[0]), ok
