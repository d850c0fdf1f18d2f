"""The strict answer-twice format table, spans in token ids, reward arithmetic and TRL reward functions."""

from __future__ import annotations

import pytest
from autothink_fixtures import ID, VOCAB

from thrifty.autothink.format import AnswerTwiceFormat, parse_answer_twice, parse_cot, parse_direct
from thrifty.autothink.rewards import (
    accuracy_boxed1,
    accuracy_boxed2,
    answer_twice_reward,
    exact_match_reward,
    format_twice_boxed,
    normalize_answer,
    temporal_iou_reward,
)

FORMAT_TABLE = [
    ("<box>A</box><think>why</think><box>A</box>", True, "A", "A"),
    ("  <box>A</box> <think> why </think>\n<box>B</box>  ", True, "A", "B"),
    ("<box>A</box><think></think><box>A</box>", False, "A", "A"),  # empty think
    ("<box>A</box><think>   </think><box>A</box>", False, "A", "A"),  # whitespace-only think
    ("<box>A</box><think>a</think><think>b</think><box>A</box>", False, "A", "A"),  # two think blocks
    ("<think>why</think><box>A</box>", False, None, "A"),  # missing first box
    ("<box>A</box><think>why</think>", False, "A", None),  # missing second box
    ("<box>A</box><box>B</box><think>why</think><box>A</box>", False, None, "A"),  # extra first box
    ("<box>A</box><think>why</think><box>A</box><box>C</box>", False, "A", None),  # extra second box
    ("<box>A</box><think>why</think><box>A</box> done", False, "A", "A"),  # trailing text
    ("so <box>A</box><think>why</think><box>A</box>", False, "A", "A"),  # leading text
    ("<box>A</box>x<think>why</think><box>A</box>", False, "A", "A"),  # text between box and think
    ("<box>A</box></think>why<think><box>A</box>", False, "A", "A"),  # think tags reversed
]


@pytest.mark.parametrize(("text", "ok", "a1", "a2"), FORMAT_TABLE)
def test_format_table(text: str, ok: bool, a1: str | None, a2: str | None) -> None:
    parsed = parse_answer_twice(text)
    assert (parsed.fmt_ok, parsed.a1, parsed.a2) == (ok, a1, a2)


def test_official_empty_think_behaviour_is_a_switch() -> None:
    loose = AnswerTwiceFormat(require_nonempty_think=False)
    assert parse_answer_twice("<box>A</box><think></think><box>A</box>", fmt=loose).fmt_ok


def test_spans_in_token_ids_and_characters() -> None:
    ids = [ID[t] for t in ["<box>", "x", "y", "</box>", "<think>", "r", "</think>", "<box>", "s", "</box>", "EOS"]]
    parsed = parse_answer_twice(ids + [ID["z"]], VOCAB)  # tokens after EOS are ignored
    assert parsed.fmt_ok and parsed.a1 == "x y" and parsed.a2 == "s" and parsed.rationale == "r"
    assert parsed.a1_span == (1, 3) and parsed.a2_span == (8, 9)
    text = "<box>ab</box><think>r</think><box>c</box>"
    p = parse_answer_twice(text)
    assert text[slice(*p.a1_span)] == "ab" and text[slice(*p.a2_span)] == "c"
    with pytest.raises(ValueError, match="vocab: expected the id"):
        parse_answer_twice(ids)
    with pytest.raises(ValueError, match="ids: token id 99"):
        parse_answer_twice([99], VOCAB)


def test_direct_and_cot_baseline_formats() -> None:
    assert parse_direct("<box>A</box>") == ("A", True)
    assert parse_direct("<box>A</box> more") == ("A", False)
    assert parse_direct("<box>A</box><box>B</box>") == (None, False)
    assert parse_cot("<think>r</think><box>A</box>") == ("A", True)
    assert parse_cot("<think></think><box>A</box>") == ("A", False)
    assert parse_cot("x<think>r</think><box>A</box>") == ("A", False)
    assert parse_cot("<box>A</box>") == ("A", False)


def test_reward_arithmetic() -> None:
    both = parse_answer_twice("<box>3</box><think>r</think><box>3</box>")
    fallback = parse_answer_twice("<box>FALLBACK</box><think>r</think><box>3</box>")
    fallback_wrong = parse_answer_twice("<box>FALLBACK</box><think>r</think><box>4</box>")
    second_wrong = parse_answer_twice("<box>3</box><think>r</think><box>4</box>")
    no_format = parse_answer_twice("<box>3</box><think></think><box>3</box>")
    assert answer_twice_reward(both, "3") == pytest.approx(3.0)
    assert answer_twice_reward(fallback, "3") == pytest.approx(2.4)
    assert answer_twice_reward(second_wrong, "3") == pytest.approx(1.9)
    assert answer_twice_reward(fallback_wrong, "3") == pytest.approx(1.0)
    assert answer_twice_reward(no_format, "3") == pytest.approx(2.0)
    assert answer_twice_reward(fallback, "3", alpha=0.0) == pytest.approx(2.1)
    assert answer_twice_reward(both, "3", w1=1.0, w2=1.0) == pytest.approx(3.0)
    # the bonus is gated on R2 > 0.7: a partial IoU of 0.5 gets none
    seg = parse_answer_twice("<box>FALLBACK</box><think>r</think><box>0 2</box>")
    assert answer_twice_reward(seg, (0, 4), temporal_iou_reward) == pytest.approx(1.1 * 0.5 + 1.0)
    with pytest.raises(ValueError, match="task_reward_fn: returned NaN"):
        answer_twice_reward(both, "3", lambda p, g: float("nan"))


def test_task_rewards() -> None:
    assert normalize_answer("(B)") == "b" and normalize_answer("B.") == "b" and normalize_answer("b") == "b"
    assert normalize_answer("True") == "yes" and normalize_answer(" No. ") == "no"
    assert normalize_answer("Red   Square") == "red square"
    assert exact_match_reward("(C) a cat", "C") == 1.0
    assert exact_match_reward("red", "blue") == 0.0 and exact_match_reward(None, "x") == 0.0
    assert temporal_iou_reward("[1.0, 3.0]", (2, 4)) == pytest.approx(1 / 3)
    assert temporal_iou_reward("3 1", (1, 3)) == 0.0 and temporal_iou_reward("abc", (1, 3)) == 0.0


def test_trl_reward_functions_signature_and_weights() -> None:
    completions = [
        "<box>3</box><think>r</think><box>3</box>",
        "<box>FALLBACK</box><think>r</think><box>3</box>",
        [{"role": "assistant", "content": "<box>3</box><think>r</think><box>4</box>"}],
    ]
    kwargs = {"solution": ["3", "3", "3"], "prompts": ["q"] * 3, "completion_ids": [[1]] * 3}
    r1 = accuracy_boxed1(completions, **kwargs)
    r2 = accuracy_boxed2(completions, **kwargs)
    rf = format_twice_boxed(completions, **kwargs)
    totals = [0.9 * a + 1.1 * b + c for a, b, c in zip(r1, r2, rf)]
    assert totals == pytest.approx([3.0, 2.4, 1.9])
    with pytest.raises(ValueError, match="problem_type: expected one of"):
        accuracy_boxed1(completions, problem_type=["math"] * 3, **kwargs)
