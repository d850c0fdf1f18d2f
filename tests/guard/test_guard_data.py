"""The synthetic compositional moderation set: labels follow the composition rule; determinism; encoding."""

from __future__ import annotations

import pytest

from thrifty.guard.data import HARM, NEGATIONS, make_dataset, vocabulary
from thrifty.guard.tokens import SPECIALS, GuardTokenizer
from thrifty.guard.training import IGNORE, encode_examples


def _rule(text: str) -> list[str]:
    """Categories by re-deriving the rule from the words of each clause (independent of the generator)."""
    cats = set()
    clauses = text.replace(" and then ", "|").replace(" after that ", "|").replace(" but ", "|").replace(" and ", "|")
    for clause in clauses.split("|"):
        words = clause.split()
        if any(n in words for n in NEGATIONS):
            continue
        for code, (verbs, targets) in HARM.items():
            if any(v in words for v in verbs) and any(t in words for t in targets):
                cats.add(code)
    return sorted(cats, key=lambda c: int(c[1:]))


def test_labels_follow_the_composition_rule_without_noise() -> None:
    examples = make_dataset(300, seed=3, label_noise=0.0)
    for ex in examples:
        assert list(ex.verdict.categories) == _rule(ex.text), ex.text
        if ex.hard_negative:
            assert ex.verdict.safe
    kinds = [ex.verdict.safe for ex in examples]
    assert 0.2 < sum(not k for k in kinds) / len(kinds) < 0.7
    assert sum(ex.hard_negative for ex in examples) > 40


def test_noise_flips_about_the_requested_fraction_and_is_deterministic() -> None:
    clean = make_dataset(600, seed=4, label_noise=0.0)
    noisy = make_dataset(600, seed=4, label_noise=0.2)
    assert [e.text for e in noisy] == [e.text for e in clean]  # noise flips labels, never texts
    assert [e.verdict for e in noisy] == [e.verdict for e in make_dataset(600, seed=4, label_noise=0.2)]
    flipped = sum(a.verdict.safe != b.verdict.safe for a, b in zip(clean, noisy, strict=True))
    assert 0.14 < flipped / 600 < 0.26
    with pytest.raises(ValueError, match="n: expected a positive number"):
        make_dataset(0, seed=0)


def test_encoding_labels_only_the_answer_tokens() -> None:
    tok = GuardTokenizer(vocabulary())
    examples = make_dataset(20, seed=5)
    batch = encode_examples(examples, tok)
    for i, ex in enumerate(examples):
        n = int(batch.lengths[i])
        answer = tok.encode_answer(ex.verdict)
        assert batch.labels[i, : n - 1].eq(IGNORE).all()
        assert batch.labels[i, n - 1 : n - 1 + len(answer)].tolist() == answer
        assert batch.ids[i, n : n + len(answer)].tolist() == answer
        assert tok.decode_answer(batch.ids[i, n:].tolist()) == ex.verdict
    assert batch.unsafe.tolist() == [not ex.verdict.safe for ex in examples]
    with pytest.raises(ValueError, match="max_len: expected >="):
        encode_examples(examples, tok, max_len=3)
    assert tok.vocab_size == len(SPECIALS) + len(vocabulary())  # every generated word has its own id
