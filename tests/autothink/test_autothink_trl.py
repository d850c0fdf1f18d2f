"""The reward functions plug into trl.GRPOTrainer unchanged, and core's GRPO loss equals TRL's (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thrifty.autothink.rewards import TRL_REWARD_FUNCS, TRL_REWARD_WEIGHTS
from thrifty.core.optional import require
from thrifty.core.rl import grpo_loss

WORDS = ["<pad>", "<eos>", "<box>", "</box>", "<think>", "</think>", "FALLBACK", "3", "4", "q", "r", "why"]


def _tiny_trainer(tmp_path: Path) -> object:
    trl = require("trl")
    transformers = require("transformers")
    datasets = pytest.importorskip("datasets", reason="datasets (installed with trl, the rl extra) is missing")
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers (installed with transformers) is missing")
    word_level = tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="q")
    backend = tokenizers.Tokenizer(word_level)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    model_dir = tmp_path / "tiny-llama"  # TRL builds the reference model from the path: save it locally
    transformers.LlamaForCausalLM(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = datasets.Dataset.from_dict({"prompt": ["q r", "r q", "q q", "r r"], "solution": ["3", "4", "3", "4"]})
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=1,
        learning_rate=1e-4,
        beta=0.01,
        epsilon=0.2,
        reward_weights=list(TRL_REWARD_WEIGHTS),
        report_to="none",
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        bf16=False,
        loss_type="grpo",
        dataloader_num_workers=0,
        seed=0,
    )
    return trl.GRPOTrainer(
        model=str(model_dir), reward_funcs=list(TRL_REWARD_FUNCS), args=args, train_dataset=data, processing_class=tok
    )


def test_reward_funcs_run_inside_grpo_trainer_and_loss_matches(tmp_path: Path) -> None:
    trainer = _tiny_trainer(tmp_path)
    trainer.train()
    logged = {k for row in trainer.state.log_history for k in row}
    for fn in TRL_REWARD_FUNCS:
        assert f"rewards/{fn.__name__}/mean" in logged

    g = torch.Generator().manual_seed(0)
    b, length = 4, 6
    logp = (-torch.rand(b, length, generator=g) * 2).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(b, length, generator=g)
    ref = logp.detach() + 0.3 * torch.randn(b, length, generator=g)
    adv = torch.randn(b, generator=g)
    mask = torch.ones(b, length, dtype=torch.long)
    mask[2, 3:] = 0
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logp, torch.zeros_like(logp), None)
    trainer.current_gradient_accumulation_steps = 1
    inputs = {
        "prompt_ids": torch.zeros(b, 2, dtype=torch.long),
        "prompt_mask": torch.ones(b, 2, dtype=torch.long),
        "completion_ids": torch.zeros(b, length, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
    }
    trainer.model.train()
    theirs = trainer._compute_loss(trainer.model, inputs)
    ours = grpo_loss(logp, old, ref, adv, mask, clip=0.2, beta=0.01, kl_ratio_correction=True)  # TRL 1.x default
    assert torch.allclose(theirs, ours, atol=1e-6)
    (g_theirs,) = torch.autograd.grad(theirs, logp, retain_graph=True)
    (g_ours,) = torch.autograd.grad(ours, logp)
    assert torch.allclose(g_theirs, g_ours, atol=1e-6)
    trainer.use_bias_correction_kl = False
    trainer.args.use_bias_correction_kl = False  # the paper's (TRL 0.23) objective
    paper = grpo_loss(logp, old, ref, adv, mask, clip=0.2, beta=0.01)
    assert torch.allclose(trainer._compute_loss(trainer.model, inputs), paper, atol=1e-6)
    assert not torch.allclose(paper, ours, atol=1e-6)
