"""transformers integration: Auto registration, save_pretrained/from_pretrained (safetensors), generate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from thrifty.longhorn.hf import LonghornForCausalLM, LonghornHFConfig


def test_save_load_round_trip_and_generate(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LonghornForCausalLM(LonghornHFConfig(vocab_size=30, d_model=16, n_layers=2, d_state=4)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LonghornHFConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LonghornForCausalLM)
    assert loaded.model.head.weight.data_ptr() == loaded.model.embed.weight.data_ptr()
    idx = torch.randint(0, 30, (1, 6), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loaded(idx).logits, model(idx).logits)
    out = loaded.generate(idx, max_new_tokens=4, do_sample=False)
    assert torch.equal(out, model.model.generate(idx, 4))


def test_labels_give_the_shifted_loss_and_padding_is_rejected() -> None:
    torch.manual_seed(0)
    model = LonghornForCausalLM(LonghornHFConfig(vocab_size=30, d_model=16, n_layers=1, d_state=4))
    idx = torch.randint(0, 30, (2, 7))
    out = model(idx, labels=idx)
    ref = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), idx[:, 1:].flatten())
    torch.testing.assert_close(out.loss, ref)
    with pytest.raises(ValueError, match="attention_mask"):
        model(idx, attention_mask=torch.zeros_like(idx))


def test_from_lm_wraps_trained_weights() -> None:
    from thrifty.longhorn.model import LonghornLM

    torch.manual_seed(0)
    lm = LonghornLM(30, 16, 2, d_state=4)
    wrapped = LonghornForCausalLM.from_lm(lm, LonghornHFConfig(vocab_size=30, d_model=16, n_layers=2, d_state=4))
    idx = torch.randint(0, 30, (1, 5))
    torch.testing.assert_close(wrapped(idx).logits, lm(idx))


def _tiny_hf() -> LonghornForCausalLM:
    torch.manual_seed(0)
    return LonghornForCausalLM(LonghornHFConfig(vocab_size=30, d_model=16, n_layers=2, d_state=4)).eval()


def test_generate_on_a_left_padded_batch_decodes_each_row_as_if_alone() -> None:
    model = _tiny_hf()
    g = torch.Generator().manual_seed(2)
    long_row, short_row = torch.randint(1, 30, (1, 6), generator=g), torch.randint(1, 30, (1, 3), generator=g)
    batch = torch.cat([long_row, torch.cat([torch.zeros(1, 3, dtype=torch.long), short_row], 1)])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    out = model.generate(batch, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0)
    alone = [model.generate(r, max_new_tokens=5, do_sample=False, pad_token_id=0) for r in (long_row, short_row)]
    assert torch.equal(out[0], alone[0][0])
    assert torch.equal(out[1, 3:], alone[1][0])
    # Without the mask the pads change the logits, so the equality above depends on the mask.
    assert not torch.allclose(model(batch).logits[1, -1], model(batch, attention_mask=mask).logits[1, -1])


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ([[1, 1, 0, 1]], "attention_mask: expected left padding only"),
        ([[1, 1, 1, 0]], "attention_mask: expected left padding only"),
        ([[0, 1, 2, 1]], "attention_mask: expected only 0 and 1"),
        ([[1, 1, 1]], "attention_mask: expected shape"),
    ],
)
def test_bad_attention_masks_raise(mask: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _tiny_hf()(torch.ones(1, 4, dtype=torch.long), attention_mask=torch.tensor(mask))


def test_empty_input_and_hidden_states_raise() -> None:
    model = _tiny_hf()
    with pytest.raises(ValueError, match="input_ids: expected \\(B, T\\) with T >= 1"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2, do_sample=False)
    with pytest.raises(ValueError, match="output_hidden_states: not supported"):
        model(torch.ones(1, 3, dtype=torch.long), output_hidden_states=True)
    with pytest.raises(ValueError, match="input_ids: expected token ids in \\[0, 30\\)"):
        model(torch.full((1, 3), 30))
