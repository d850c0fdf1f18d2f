"""Format SFT and GRPO for the tiny video LM, for the three response styles side by side.

* ``direct``: ``<box>a</box>``; reward = accuracy + format.
* ``cot``: ``<think>trace</think><box>a</box>``; reward = accuracy + format.
* ``twice`` (VideoAuto-R1): ``<box>a1</box><think>trace</think><box>a2</box>``; the exact 0.9/1.1/1/0.3 reward.

Format SFT is not in the paper (it starts RL from Qwen-VL); at this scale RL from scratch never samples the
format, so every arm gets the same short SFT first. SFT targets for ``twice`` follow spec C4: a1 is the
answer on perception questions, and on reasoning ones FALLBACK with probability 0.5, else a random guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from thrifty.autothink.format import AnswerTwiceFormat, parse_answer_twice, parse_cot, parse_direct
from thrifty.autothink.model import VideoLM, VideoPrompt
from thrifty.autothink.rewards import answer_twice_reward, exact_match_reward
from thrifty.autothink.world import EOS, PAD, PERCEPTION, QUESTION_TYPES, VOCAB, Example, encode, question_ids
from thrifty.core.rl import group_advantages, grpo_loss, informative_groups
from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, train

Arm = Literal["direct", "cot", "twice"]
FMT = AnswerTwiceFormat()
_ANSWERS = {
    "colour": ("red", "green", "blue"),
    "count": ("0", "1", "2", "3", "4"),
    "exists": ("yes", "no"),
}


def target_tokens(example: Example, arm: Arm, rng: np.random.Generator) -> list[str]:
    """The SFT response of ``example`` in the style of ``arm`` (ending with EOS)."""
    box = ["<box>", example.answer, "</box>"]
    think = ["<think>", *example.trace, "</think>"]
    if arm == "direct":
        return [*box, "EOS"]
    if arm == "cot":
        return [*think, *box, "EOS"]
    if example.qtype in PERCEPTION:
        first = example.answer
    elif rng.random() < 0.5:
        first = "FALLBACK"
    else:
        first = str(rng.choice(_ANSWERS.get(example.qtype, tuple(str(d) for d in range(10)))))
    return ["<box>", first, "</box>", *think, *box, "EOS"]


def prompts_of(examples: list[Example], device: torch.device) -> VideoPrompt:
    """Stack examples into a :class:`VideoPrompt` on ``device``."""
    frames = torch.from_numpy(np.stack([e.frames for e in examples])).to(device)
    question = torch.tensor([question_ids(e) for e in examples], dtype=torch.long, device=device)
    return VideoPrompt(frames, question)


def pad(rows: list[list[int]], length: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(ids (B, L), mask (B, L))`` right-padded with PAD."""
    ids = torch.full((len(rows), length), PAD, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row[:length])
        mask[i, : len(row)] = True
    return ids.to(device), mask.to(device)


def response_logps(model: VideoLM, prompt: VideoPrompt, ids: Tensor) -> Tensor:
    """``(B, L)`` teacher-forced log-probs of ``ids`` (raw logits, temperature 1)."""
    logits = model(prompt, ids)[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sample(
    model: VideoLM, prompt: VideoPrompt, max_len: int, temperature: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Batched decoding with the KV cache: ``ids (B, L)``, ``mask (B, L)`` (EOS included), raw ``logps``.

    ``temperature == 0`` is greedy; otherwise samples from ``softmax(logits / temperature)``.
    """
    session = model.decode_session()
    logits = session.prefill(prompt)
    b = logits.shape[0]
    alive = torch.ones(b, dtype=torch.bool, device=logits.device)
    ids, masks, logps = [], [], []
    for _ in range(max_len):
        raw = torch.log_softmax(logits.float(), -1)
        if temperature > 0:
            probs = torch.softmax(logits.float() / temperature, -1)
            token = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)
        else:
            token = raw.argmax(-1)
        token = torch.where(alive, token, torch.full_like(token, PAD))
        ids.append(token)
        masks.append(alive.clone())
        logps.append(raw.gather(-1, token[:, None]).squeeze(1))
        alive &= token != EOS
        if not alive.any():
            break
        logits = session.step(token)
    return torch.stack(ids, 1), torch.stack(masks, 1), torch.stack(logps, 1)


@dataclass(frozen=True)
class RewardWeights:
    """The answer-twice reward weights (``w1 = w2`` and ``alpha = 0`` are the ablations)."""

    w1: float = 0.9
    w2: float = 1.1
    lam: float = 1.0
    alpha: float = 0.3


def response_reward(ids: list[int], example: Example, arm: Arm, weights: RewardWeights) -> float:
    """Reward of one response (token ids) of ``arm`` for ``example``."""
    if arm == "twice":
        parsed = parse_answer_twice(ids, VOCAB, FMT)
        return answer_twice_reward(
            parsed, example.answer, w1=weights.w1, w2=weights.w2, lam=weights.lam, alpha=weights.alpha
        )
    answer, ok = (parse_direct if arm == "direct" else parse_cot)(ids, VOCAB, FMT)
    return exact_match_reward(answer, example.answer) + float(ok)


def run_sft(
    model: VideoLM, pool: list[Example], arm: Arm, cfg: TrainConfig, batch: int, seed: int, ctx: RunContext
) -> list[float]:
    """Format SFT: cross-entropy on the response tokens of ``arm``; returns the loss curve."""
    rng = np.random.default_rng(seed)
    targets = [encode(target_tokens(e, arm, rng)) for e in pool]
    max_len = max(len(t) for t in targets)
    device = ctx.device

    def batch_fn(step: int) -> dict[str, Tensor]:
        idx = np.random.default_rng([seed, step]).integers(0, len(pool), batch)
        prompt = prompts_of([pool[i] for i in idx], device)
        ids, mask = pad([targets[i] for i in idx], max_len, device)
        return {"frames": prompt.frames, "question": prompt.question, "ids": ids, "mask": mask}

    def loss_fn(m: torch.nn.Module, b: dict[str, Tensor]) -> Tensor:
        logp = response_logps(m, VideoPrompt(b["frames"], b["question"]), b["ids"])  # type: ignore[arg-type]
        return -(logp * b["mask"]).sum() / b["mask"].sum()

    return train(model, loss_fn, batch_fn, cfg, ctx=ctx, series=f"sft/{arm}", progress_desc=f"sft {arm}").losses


@dataclass(frozen=True)
class GRPOSettings:
    """GRPO budget and hyper-parameters (spec C4 defaults)."""

    steps: int = 150
    prompts_per_step: int = 16
    group_size: int = 8
    steps_per_generation: int = 2
    lr: float = 1e-4
    beta: float = 0.01
    clip: float = 0.2
    temperature: float = 1.0
    max_len: int = 20


def run_grpo(
    model: VideoLM,
    ref: VideoLM,
    pool: list[Example],
    arm: Arm,
    s: GRPOSettings,
    weights: RewardWeights,
    seed: int,
    ctx: RunContext,
    series: str,
) -> list[float]:
    """GRPO with group advantages, the clipped token-level loss and k3 KL; returns mean reward per round."""
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    ref.eval()
    curve = []
    for step in ctx.progress(range(s.steps), desc=f"grpo {series}"):
        chosen = [pool[i] for i in rng.integers(0, len(pool), s.prompts_per_step)]
        prompt = prompts_of(chosen, ctx.device).repeat_interleave(s.group_size)
        ids, mask, _ = sample(model, prompt, s.max_len, s.temperature, gen)
        rows = [r[m].tolist() for r, m in zip(ids.cpu(), mask.cpu())]
        examples = [e for e in chosen for _ in range(s.group_size)]
        rewards = torch.tensor([response_reward(r, e, arm, weights) for r, e in zip(rows, examples)])
        curve.append(float(rewards.mean()))
        keep = informative_groups(rewards, s.group_size).repeat_interleave(s.group_size)
        ctx.log(f"grpo/{series}", step, reward=curve[-1], informative=float(keep.float().mean()))
        if not keep.any():
            continue
        adv = group_advantages(rewards, s.group_size)[keep].to(ctx.device)
        keep_dev = keep.to(ctx.device)
        prompt, ids, mask = prompt[keep_dev], ids[keep_dev], mask[keep_dev]
        with torch.no_grad():
            old = response_logps(model, prompt, ids)
            ref_lp = response_logps(ref, prompt, ids)
        order = torch.randperm(ids.shape[0], generator=gen).to(ctx.device)
        for part in order.chunk(s.steps_per_generation):
            logp = response_logps(model, prompt[part], ids[part])
            loss = grpo_loss(logp, old[part], ref_lp[part], adv[part], mask[part], clip=s.clip, beta=s.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return curve


__all__ = ["QUESTION_TYPES", "GRPOSettings", "RewardWeights", "response_reward", "run_grpo", "run_sft", "sample"]
