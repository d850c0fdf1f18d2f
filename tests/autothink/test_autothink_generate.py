"""True early exit: equal to one-shot greedy token for token, counted lengths, confidence, bad input."""

from __future__ import annotations

import pytest
import torch
from autothink_fixtures import CHAIN, FALLBACK_CHAIN, ID, VOCAB, bias_to_chain

from thrifty.autothink.format import parse_answer_twice
from thrifty.autothink.generate import answer_confidence, generate_auto, generate_posthoc, greedy_reference
from thrifty.autothink.model import VideoLM, VideoLMConfig, VideoPrompt
from thrifty.core.lm import TransformerLM, TransformerLMConfig


def _core_lm(chain: dict | None, seed: int = 0) -> TransformerLM:
    torch.manual_seed(seed)
    model = TransformerLM(TransformerLMConfig(len(VOCAB), dim=16, n_layers=2, n_heads=2, tie_embeddings=False))
    if chain is not None:
        bias_to_chain(model.embed, model.head, chain)
    return model.eval()


def _hf_lm(chain: dict | None, seed: int = 0) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers", reason="transformers (the hf extra) is not installed")
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=40,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(cfg)
    if chain is not None:
        bias_to_chain(model.model.embed_tokens, model.lm_head, chain)
    return model.eval()


def _video_lm(chain: dict | None) -> tuple[VideoLM, VideoPrompt]:
    torch.manual_seed(0)
    model = VideoLM(
        VideoLMConfig(
            len(VOCAB),
            n_frames=2,
            frame_size=8,
            patch=4,
            question_len=3,
            max_response=30,
            dim=16,
            n_layers=2,
            n_heads=2,
        )
    )
    if chain is not None:
        bias_to_chain(model.embed, model.head, {**chain, "PAD": chain["p"]})
    g = torch.Generator().manual_seed(1)
    prompt = VideoPrompt(torch.rand(1, 2, 8, 8, 3, generator=g), torch.tensor([[ID["p"], ID["PAD"], ID["PAD"]]]))
    return model.eval(), prompt


def _models(chain: dict | None) -> list[tuple[str, torch.nn.Module, object]]:
    video, video_prompt = _video_lm(chain)
    prompt = torch.tensor([[ID["q"], ID["z"], ID["p"]]])
    return [("core", _core_lm(chain), prompt), ("hf", _hf_lm(chain), prompt), ("video", video, video_prompt)]


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.999, 1.0])
@pytest.mark.parametrize("chain", [CHAIN, FALLBACK_CHAIN, None], ids=["chain", "fallback", "random"])
def test_two_stage_equals_one_shot_greedy(tau: float, chain: dict | None) -> None:
    for name, model, prompt in _models(chain):
        res = generate_auto(model, prompt, VOCAB, tau=tau, max_first=6, max_total=17)
        full = greedy_reference(model, prompt, 17, stop_id=ID["EOS"])
        assert res.ids == full[: res.n_tokens], name
        assert res.n_tokens == len(res.ids)
        if res.used == "a2":
            assert res.ids == full, name
        if chain is not None:
            exits = chain is CHAIN and tau <= 0.3
            assert res.used == ("a1" if exits else "a2"), (name, res.conf)
            if exits:  # counted length = the prefix up to and including <think>
                assert res.n_tokens == res.a1_end == 4 and res.ids[-1] == ID["<think>"]
                assert res.answer == "x"


def test_confidence_is_geometric_mean_of_teacher_forced_raw_probabilities() -> None:
    for name, model, prompt in _models(CHAIN):
        res = generate_auto(model, prompt, VOCAB, tau=0.0, max_first=6, max_total=17)
        session = model.decode_session() if hasattr(model, "decode_session") else None
        comp = torch.tensor([res.ids])
        if session is None:
            from thrifty.autothink.sessions import make_session

            session = make_session(model)
        logits = session.logits_full(prompt, comp)[0, :-1].double()
        logp = torch.log_softmax(logits, -1).gather(1, comp[0, :, None])[:, 0]
        span = parse_answer_twice(res.ids, VOCAB).a1_span
        assert span == (1, 2)
        expected = torch.exp(logp[span[0] : span[1]].mean()).item()
        assert res.conf == pytest.approx(expected, rel=1e-5), name
        assert 0.2 < res.conf < 0.9


def test_fallback_first_answer_has_confidence_minus_one_and_thinks() -> None:
    model = _core_lm(FALLBACK_CHAIN)
    res = generate_auto(model, torch.tensor([[ID["p"]]]), VOCAB, tau=0.0, max_first=6, max_total=12)
    assert res.conf == -1.0 and res.used == "a2"


def test_posthoc_generates_everything_and_picks_the_same_answer() -> None:
    model = _core_lm(CHAIN)
    prompt = torch.tensor([[ID["p"]]])
    for tau in (0.2, 0.95):
        auto = generate_auto(model, prompt, VOCAB, tau=tau, max_first=6, max_total=15)
        post = generate_posthoc(model, prompt, VOCAB, tau=tau, max_total=15)
        assert (post.used, post.answer, post.conf) == (auto.used, auto.answer, auto.conf)
        assert post.n_tokens == 15 and post.ids[: auto.n_tokens] == auto.ids


def test_answer_confidence_values() -> None:
    logps = torch.log(torch.tensor([0.5, 0.8, 0.2]))
    assert answer_confidence(logps, (1, 3)) == pytest.approx((0.8 * 0.2) ** 0.5)
    assert answer_confidence(logps, None) == -1.0
    assert answer_confidence(logps, (2, 2)) == -1.0
    with pytest.raises(ValueError, match="span: expected a range"):
        answer_confidence(logps, (1, 5))


def test_bad_input_errors() -> None:
    model = _hf_lm(None)
    prompt = torch.zeros(1, 30, dtype=torch.long)
    with pytest.raises(ValueError, match="prompt: 30 prompt tokens"):
        generate_auto(model, prompt, VOCAB, tau=0.5, max_first=4, max_total=16)
    for tau in (-0.1, 1.5):
        with pytest.raises(ValueError, match="tau: expected a confidence threshold in"):
            generate_auto(model, prompt[:, :2], VOCAB, tau=tau)
    with pytest.raises(ValueError, match="max_first: expected"):
        generate_auto(model, prompt[:, :2], VOCAB, max_first=20, max_total=10)
    with pytest.raises(ValueError, match="vocab: expected the tag"):
        generate_auto(model, prompt[:, :2], VOCAB[:3])
    with pytest.raises(ValueError, match="model: expected a TransformerLM"):
        generate_auto(object(), prompt, VOCAB)
    video, vprompt = _video_lm(None)
    with pytest.raises(ValueError, match="prompt: expected 3 question tokens"):
        generate_auto(video, VideoPrompt(vprompt.frames, vprompt.question[:, :2]), VOCAB, max_first=4, max_total=8)
