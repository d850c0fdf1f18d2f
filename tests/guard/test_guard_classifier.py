"""GuardClassifier: save / load round trip (no pickle), scores, verdicts, and malformed decodes rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from thrifty.core.lm import TransformerLM, TransformerLMConfig
from thrifty.guard.classifier import GuardClassifier
from thrifty.guard.io import GuardOutputError, GuardVerdict
from thrifty.guard.model import prune_output_layer
from thrifty.guard.tokens import GuardTokenizer


def _classifier(threshold: float = 0.5) -> GuardClassifier:
    tok = GuardTokenizer(["kill", "the", "process", "neighbor"])
    torch.manual_seed(0)
    model = TransformerLM(TransformerLMConfig(tok.vocab_size, 16, 1, 2, mlp_hidden=32, tie_embeddings=False))
    prune_output_layer(model, tok.answer_ids(), required_ids=tok.answer_ids())
    return GuardClassifier(model, tok, threshold)


def test_save_load_round_trip_gives_the_same_scores(tmp_path: Path) -> None:
    clf = _classifier(0.3)
    clf.save(tmp_path / "clf")
    files = sorted(p.name for p in (tmp_path / "clf").iterdir())
    assert files == ["config.json", "model.safetensors", "token_map.json"]
    token_map = json.loads((tmp_path / "clf" / "token_map.json").read_text())
    assert [token_map[str(i)] for i in range(len(token_map))] == clf.tokenizer.answer_ids()
    again = GuardClassifier.load(tmp_path / "clf")
    conv = [("User", "kill the neighbor")]
    assert again.score(conv) == clf.score(conv) and again.threshold == 0.3
    assert 0.0 < clf.score(conv) < 1.0


def _chain(clf: GuardClassifier, chain: list[str], first: str) -> None:
    """Make the model a bigram table: P(unsafe) from ``first`` at the prompt end, then ``chain[i] -> chain[i+1]``.

    Attention and MLP outputs are zeroed, so logits = head(norm(embed(last token))); each chain token gets a
    one-hot embedding and the head row of its successor points at it.
    """
    model, tok = clf.model, clf.tokenizer
    keep = model.head.keep_ids.tolist()
    with torch.no_grad():
        model.blocks[0].attn.o_proj.weight.zero_()
        model.blocks[0].mlp.down.weight.zero_()
        model.embed.weight.zero_()
        model.head.linear.weight.zero_()
        sources = ["User:", *chain[:-1]]  # the prompt ends with the role token "User:"
        targets = [first, *chain[1:]] if first == chain[0] else [first]
        for dim, (src, dst) in enumerate(zip(sources, targets, strict=False)):
            model.embed.weight[tok.ids[src], dim] = 1.0
            model.head.linear.weight[keep.index(tok.ids[dst]), dim] = 10.0


def test_classify_below_threshold_is_safe() -> None:
    clf = _classifier(0.5)
    _chain(clf, ["safe"], "safe")
    verdict, p = clf.classify([("User", "kill the process")])
    assert verdict == GuardVerdict(True) and p < 0.01


def test_classify_decodes_multi_token_category_codes() -> None:
    clf = _classifier(0.5)
    _chain(clf, ["unsafe", "\n", "S", "10", "<eot>"], "unsafe")  # distinct tokens: a bigram chain
    verdict, p = clf.classify([("User", "kill the neighbor")])
    assert p > 0.99
    assert verdict == GuardVerdict(False, ("S10",))


def test_malformed_decode_raises_never_safe() -> None:
    clf = _classifier(0.5)
    _chain(clf, ["unsafe", "<eot>"], "unsafe")  # "unsafe" with no category line
    with pytest.raises(GuardOutputError, match="guard output"):
        clf.classify([("User", "kill the neighbor")])


def test_bad_threshold_and_role_raise() -> None:
    with pytest.raises(ValueError, match="threshold: expected a probability"):
        _classifier(1.5)
    with pytest.raises(ValueError, match="role: expected 'User' or 'Agent'"):
        _classifier().score([("User", "hi")], role="Bot")
