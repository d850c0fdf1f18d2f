"""One arm of the reproduction: compress every video with one compressor, train a QA model, evaluate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.core.runs import RunContext
from thrifty.core.train import TrainConfig, train
from thrifty.longvu.baselines import BASELINES
from thrifty.longvu.compressor import Compressor, LongVUCompressor
from thrifty.longvu.config import LongVUExperimentConfig
from thrifty.longvu.data import EncodedVideos
from thrifty.longvu.model import FrameEncoder, QAModel, pack_token_sets, position_vocab
from thrifty.longvu.saved import save_qa_model
from thrifty.longvu.tokens import TokenSet
from thrifty.longvu.video import COVERAGE, N_GLYPHS, NEEDLE, QUESTION_NAMES

TIME_BUCKETS = 16


@dataclass
class Arm:
    """A compressor at a budget; ``query`` says whether it reads the question."""

    name: str
    compressor: Compressor
    budget: int
    query: bool = False


def make_compressor(name: str, thresholds: tuple[float, float], lo_side: int | None = None) -> tuple[Compressor, bool]:
    """A method or ablation by name, with the calibrated (temporal, STC) thresholds and LongVU's low-res grid
    side; and whether it reads the query."""
    if name.startswith("longvu"):
        flags = {
            "use_temporal": name != "longvu_no_temporal",
            "use_query": name != "longvu_no_query",
            "use_stc": name != "longvu_no_stc",
        }
        comp = LongVUCompressor(
            temporal_threshold=thresholds[0], stc_threshold=thresholds[1], lo_side=lo_side, name=name, **flags
        )
        return comp, True
    return BASELINES[name](), False


@torch.no_grad()
def compress_videos(
    arm: Arm, videos: EncodedVideos, encoder: FrameEncoder, use_hog: bool, generator: torch.Generator
) -> tuple[list[TokenSet], float]:
    """One token set per (video, question), samples ordered ``v * 3 + q``; and the seconds per video."""
    sets: list[TokenSet] = []
    start = time.perf_counter()
    device = next(encoder.parameters()).device
    for v in range(len(videos)):
        tokens = videos.tokens[v].to(device)
        feats = videos.hog[v] if (use_hog and videos.hog is not None) else None
        if arm.query:
            needle_q = encoder.query(NEEDLE, videos.candidates[v])
            cover_q = encoder.query(COVERAGE, videos.candidates[v].to(device))
            needle_set = arm.compressor(tokens, arm.budget, needle_q, feats, generator)
            sets += [needle_set, arm.compressor(tokens, arm.budget, cover_q, feats, generator), needle_set]
        else:
            shared = arm.compressor(tokens, arm.budget, None, feats, generator)
            sets += [shared, shared, shared]
    return sets, (time.perf_counter() - start) / max(1, len(videos))


def kept_token_metrics(sets: list[TokenSet], videos: EncodedVideos) -> dict[str, float]:
    """Model-free: needle recall (a needle frame survives, needle question) and shot coverage (coverage question)."""
    recall, coverage, kept, regimes = [], [], [], []
    for v in range(len(videos)):
        needle_set, cover_set = sets[3 * v + NEEDLE], sets[3 * v + COVERAGE]
        frames = needle_set.frame_ids.cpu()
        recall.append(float(videos.needle_mask[v][frames].any()))
        shots = videos.shot_ids[v]
        coverage.append(shots[cover_set.frame_ids.cpu()].unique().numel() / (int(shots.max()) + 1))
        kept.append(len(needle_set))
        regimes.append(needle_set.stats.get("regime", -1))
    out = {"needle_recall": _mean(recall), "shot_coverage": _mean(coverage), "tokens_kept": _mean(kept)}
    for regime, label in ((0, "all_high"), (1, "mixing"), (2, "stc")):
        out[f"regime_{label}"] = _mean([float(r == regime) for r in regimes])
    return out


@torch.no_grad()
def standardize(train: dict[str, Tensor], test: dict[str, Tensor]) -> None:
    """Scale every reader feature to zero mean, unit variance over the arm's valid *training* tokens (in place).

    A rare token (a needle) then stands out by several units in the features that mark it, whatever the
    compressor did to it (pooled, merged or full resolution), so the reader's attention can find it early.
    """
    rows = train["tokens"][train["valid"]]
    mean, std = rows.mean(0), rows.std(0).clamp_min(1e-3)
    for packed in (train, test):
        packed["tokens"] = ((packed["tokens"] - mean) / std).masked_fill(~packed["valid"][..., None], 0.0)


@torch.no_grad()
def needle_readout(encoder: FrameEncoder, sets: list[TokenSet], videos: EncodedVideos) -> float:
    """Needle accuracy of the frozen encoder's glyph head alone (no QA model) on the kept tokens.

    Per video, the kept token least likely to be "no glyph" is read by the head (forced to one of the 8
    glyphs): how much of the needle's identity the compressor kept, independent of QA training.
    """
    device = next(encoder.parameters()).device
    hits = []
    for v in range(len(videos)):
        logits = encoder.glyph_head(sets[3 * v + NEEDLE].tokens.to(device).float())  # (M, 9)
        token = logits.log_softmax(-1)[:, N_GLYPHS].argmin()
        hits.append(float(int(logits[token, :N_GLYPHS].argmax()) == int(videos.answers[v, NEEDLE])))
    return _mean(hits)


def _mean(values: list[float]) -> float:
    return sum(values) / max(1, len(values))


def batch_of(
    packed: dict[str, Tensor], videos: EncodedVideos, index: Tensor, device: torch.device
) -> dict[str, Tensor]:
    """Rows ``index`` of the packed samples with their question, candidates and answer."""
    video, question = index // 3, index % 3
    batch = {k: v[index].to(device) for k, v in packed.items()}
    batch["question"] = question.to(device)
    batch["candidates"] = videos.candidates[video].to(device)
    batch["answer"] = videos.answers[video, question].to(device)
    return batch


def train_qa(
    cfg: LongVUExperimentConfig,
    ctx: RunContext,
    arm: Arm,
    packed: dict[str, Tensor],
    videos: EncodedVideos,
    shape: tuple[int, int],
) -> tuple[QAModel, float]:
    """Train a fresh QA model (same init, batches, steps and lr in every arm); ``shape``: (grid side, photos)."""
    torch.manual_seed(ctx.seed + 1)
    model = QAModel(packed["tokens"].shape[-1], shape[1], shape[0], cfg.qa_dim, cfg.qa_layers)
    model = model.to(ctx.device)
    order = torch.Generator().manual_seed(ctx.seed + 2)
    proportional = arm.name.startswith("tome")
    n_samples = 3 * len(videos)

    def batch_fn(step: int) -> dict[str, Tensor]:
        return batch_of(packed, videos, torch.randint(n_samples, (cfg.qa_batch,), generator=order), ctx.device)

    def loss_fn(m: QAModel, batch: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(m(batch, proportional), batch["answer"])

    train_cfg = TrainConfig(steps=cfg.qa_steps, lr=cfg.qa_lr, warmup_steps=min(30, cfg.qa_steps), log_every=25)
    start = time.perf_counter()
    train(model, loss_fn, batch_fn, train_cfg, ctx=ctx, series=f"train/{arm.name}")
    return model.eval(), time.perf_counter() - start


@torch.no_grad()
def evaluate_qa(
    model: QAModel, packed: dict[str, Tensor], videos: EncodedVideos, proportional: bool, device: torch.device
) -> dict[str, float]:
    """Accuracy per question type on the packed test samples."""
    correct = torch.zeros(3)
    for lo in range(0, 3 * len(videos), 256):
        index = torch.arange(lo, min(lo + 256, 3 * len(videos)))
        batch = batch_of(packed, videos, index, device)
        hit = (model(batch, proportional).argmax(-1) == batch["answer"]).float().cpu()
        correct.index_add_(0, index % 3, hit)
    out = {}
    for q, name in enumerate(QUESTION_NAMES):
        acc = float(correct[q] / len(videos))
        out[f"acc_{name}"], out[f"se_{name}"] = acc, (acc * (1 - acc) / len(videos)) ** 0.5
    return out


def run_arm(
    cfg: LongVUExperimentConfig,
    ctx: RunContext,
    arm: Arm,
    data: tuple[EncodedVideos, EncodedVideos],
    encoder: FrameEncoder,
) -> dict[str, Any]:
    """Compress train and test videos, train the QA model in the loop, and measure everything for one arm."""
    train_videos, test_videos = data
    n_frames, n_tok = train_videos.tokens.shape[1:3]
    side = int(round(n_tok**0.5))
    use_hog = cfg.temporal_features == "hog"
    gen = ctx.generator(30)
    train_sets, _ = compress_videos(arm, train_videos, encoder, use_hog, gen)
    test_sets, sec_per_video = compress_videos(arm, test_videos, encoder, use_hog, gen)
    pack = {"budget": arm.budget, "n_frames": n_frames, "time_buckets": TIME_BUCKETS, "offsets": position_vocab(side)}
    train_packed = pack_token_sets(train_sets, **pack)
    test_packed = pack_token_sets(test_sets, **pack)
    for packed in (train_packed, test_packed):
        packed["tokens"] = encoder.reader_features(packed["tokens"].to(ctx.device)).cpu()
    standardize(train_packed, test_packed)
    model, train_s = train_qa(cfg, ctx, arm, train_packed, train_videos, (side, encoder.photo_head.out_features))
    metrics = evaluate_qa(model, test_packed, test_videos, arm.name.startswith("tome"), ctx.device)
    save_qa_model(ctx.out_dir / "models" / arm.name, model, {"arm": arm.name, "budget": arm.budget, **metrics})
    return {
        **metrics,
        **kept_token_metrics(test_sets, test_videos),
        "needle_readout": needle_readout(encoder, test_sets, test_videos),
        "budget": arm.budget,
        "raw_tokens": n_frames * n_tok,
        "compress_ms_per_video": 1e3 * sec_per_video,
        "train_s": train_s,
    }
