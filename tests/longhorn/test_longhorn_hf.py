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
