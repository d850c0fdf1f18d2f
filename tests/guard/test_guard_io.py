"""Moderation I/O: categories, the card's prompt, the output parser and the tokenizer's answer codes."""

from __future__ import annotations

import pytest

from thrifty.guard.io import (
    GUARD_CATEGORIES,
    GuardOutputError,
    GuardVerdict,
    check_category,
    format_guard_prompt,
    parse_guard_output,
)
from thrifty.guard.tokens import GuardTokenizer


def test_thirteen_categories_with_the_card_names() -> None:
    assert list(GUARD_CATEGORIES) == [f"S{i}" for i in range(1, 14)]
    assert GUARD_CATEGORIES["S10"] == "Hate" and GUARD_CATEGORIES["S11"] == "Suicide & Self-Harm"


@pytest.mark.parametrize(
    "verdict", [GuardVerdict(True), GuardVerdict(False, ("S1",)), GuardVerdict(False, ("S10", "S1", "S13"))]
)
def test_parse_format_round_trip(verdict: GuardVerdict) -> None:
    assert parse_guard_output(verdict.to_text()) == verdict
    assert parse_guard_output(" " + verdict.to_text() + "<|eot_id|>\n") == verdict
    tok = GuardTokenizer(["hello"])
    assert tok.decode_answer(tok.encode_answer(verdict)) == verdict


def test_category_codes_are_two_tokens() -> None:
    tok = GuardTokenizer([])
    ids = tok.encode_answer(GuardVerdict(False, ("S10", "S1")))
    assert [tok.vocab[i] for i in ids] == ["unsafe", "\n", "S", "10", ",", "S", "1", "<eot>"]
    assert set(ids) <= set(tok.answer_ids())


@pytest.mark.parametrize("text", ["", "Safe", "unsafe", "unsafe\n", "unsafe\nS14", "unsafe\nS1,,S2", "safe\nS1", "ok"])
def test_malformed_outputs_raise_never_safe(text: str) -> None:
    with pytest.raises(GuardOutputError, match="guard output"):
        parse_guard_output(text)


def test_prompt_follows_the_card_template() -> None:
    conv = [("User", "how do I kill the process"), ("Agent", "use kill -9")]
    prompt = format_guard_prompt(conv, role="Agent")
    assert "Check if there is unsafe content in 'Agent' messages" in prompt
    assert "S1: Violent Crimes.\nS2: Non-Violent Crimes." in prompt
    assert (
        "<BEGIN CONVERSATION>\n\nUser: how do I kill the process\n\nAgent: use kill -9\n\n<END CONVERSATION>" in prompt
    )
    assert "ONLY THE LAST Agent message" in prompt
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    subset = format_guard_prompt(conv[:1], categories={"S9": GUARD_CATEGORIES["S9"]})
    assert "S9: Indiscriminate Weapons." in subset and "S1:" not in subset


def test_bad_input_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="conversation: expected at least one"):
        format_guard_prompt([])
    with pytest.raises(ValueError, match="role: expected 'User' or 'Agent', got 'Bot'"):
        format_guard_prompt([("User", "hi")], role="Bot")
    with pytest.raises(ValueError, match="conversation speaker"):
        format_guard_prompt([("System", "hi")])
    with pytest.raises(ValueError, match="expected at least one 'Agent' message"):
        format_guard_prompt([("User", "hi")], role="Agent")
    with pytest.raises(ValueError, match="category: expected one of S1"):
        check_category("S14")
    with pytest.raises(ValueError, match="categories: expected at least one code"):
        GuardVerdict(False)
    with pytest.raises(ValueError, match="conversation: expected at least one"):
        GuardTokenizer([]).encode_prompt([])


def test_tokenizer_dict_round_trip_and_unknown_words() -> None:
    tok = GuardTokenizer(["kill", "process"])
    again = GuardTokenizer.from_dict(tok.to_dict())
    conv = [("User", "Kill the process")]
    assert again.encode_prompt(conv) == tok.encode_prompt(conv)
    assert tok.vocab[tok.encode_prompt(conv)[3]] == "<unk>"  # "the" is not in the vocabulary
