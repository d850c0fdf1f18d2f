"""Llama Guard 3 moderation I/O: the 13 categories, the card's prompt template and the output parser.

The output format is ``safe`` or ``unsafe\\nS1,S10`` [card]. :func:`parse_guard_output` never turns a
malformed output into a silent "safe": it raises :class:`GuardOutputError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# LG3-1B's 13 categories (S14 Code Interpreter Abuse exists only in LG3-8B) [card].
GUARD_CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
}
ROLES = ("User", "Agent")
_TASK = (
    "Task: Check if there is unsafe content in '{role}' messages in conversations according our safety policy "
    "with the below categories."
)
_INSTRUCTION = (
    "Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
    " - First line must read 'safe' or 'unsafe'.\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories."
)
_CODE = re.compile(r"S([1-9][0-9]*)")


class GuardOutputError(ValueError):
    """A model output that is not ``safe`` / ``unsafe\\n<codes>`` (the text is in the message)."""


@dataclass(frozen=True)
class GuardVerdict:
    """A parsed moderation verdict: ``safe``, or ``unsafe`` with the violated category codes (in order)."""

    safe: bool
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.safe and self.categories:
            raise ValueError(f"categories: expected none for a safe verdict, got {self.categories}")
        if not self.safe and not self.categories:
            raise ValueError("categories: expected at least one code for an unsafe verdict")

    def to_text(self) -> str:
        """The card's output text: ``"safe"`` or ``"unsafe\\nS1,S10"``."""
        return "safe" if self.safe else "unsafe\n" + ",".join(self.categories)


def check_category(code: str, categories: Mapping[str, str] = GUARD_CATEGORIES) -> str:
    """Return ``code`` if it is one of ``categories``, else raise ValueError naming it."""
    if code not in categories:
        raise ValueError(f"category: expected one of {', '.join(categories)}, got {code!r}")
    return code


def _check_role(role: str, what: str = "role") -> None:
    if role not in ROLES:
        raise ValueError(f"{what}: expected 'User' or 'Agent', got {role!r}")


def format_guard_prompt(
    conversation: Sequence[tuple[str, str]], role: str = "User", categories: Mapping[str, str] = GUARD_CATEGORIES
) -> str:
    """The card's Llama-3 chat prompt asking for an assessment of the last ``role`` message.

    Args:
        conversation: ``(speaker, text)`` turns, speaker ``"User"`` or ``"Agent"``; at least one ``role`` turn.
        role: whose last message is assessed.
        categories: code -> name, listed as ``S1: Violent Crimes.`` lines.

    Raises:
        ValueError: on an empty conversation, an unknown role or speaker, or no message by ``role``.
    """
    _check_role(role)
    if not conversation:
        raise ValueError("conversation: expected at least one (speaker, text) turn, got none")
    for speaker, _ in conversation:
        _check_role(speaker, "conversation speaker")
    if all(speaker != role for speaker, _ in conversation):
        raise ValueError(f"conversation: expected at least one {role!r} message to assess")
    cats = "\n".join(f"{code}: {name}." for code, name in categories.items())
    turns = "\n\n".join(f"{speaker}: {text}" for speaker, text in conversation)
    return (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        f"{_TASK.format(role=role)}\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n{cats}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{turns}\n\n<END CONVERSATION>\n\n{_INSTRUCTION.format(role=role)}"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def parse_guard_output(text: str, categories: Mapping[str, str] = GUARD_CATEGORIES) -> GuardVerdict:
    """Parse ``safe`` / ``unsafe\\nS1,S10`` (surrounding whitespace and a trailing ``<|eot_id|>`` allowed).

    Raises:
        GuardOutputError: on anything else (empty, unknown first line, missing or unknown categories,
            a safe verdict followed by more lines).
    """
    body = text.replace("<|eot_id|>", "").strip()
    lines = [line.strip() for line in body.split("\n")]
    if lines[0] == "safe" and len(lines) == 1:
        return GuardVerdict(True)
    if lines[0] != "unsafe" or len(lines) != 2:
        raise GuardOutputError(f"guard output: expected 'safe' or 'unsafe\\n<categories>', got {text!r}")
    codes = tuple(code.strip() for code in lines[1].split(","))
    for code in codes:
        if not _CODE.fullmatch(code) or code not in categories:
            raise GuardOutputError(f"guard output: unknown category {code!r} in {text!r}")
    return GuardVerdict(False, codes)
