"""TinyTAM: a compact SAM 2-style tracker whose memory path is SAM 2, EfficientTAM or EdgeTAM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from thrifty.tam.attention import MemoryAttention, MemoryLayout
from thrifty.tam.config import TamModelConfig
from thrifty.tam.decoder import MaskDecoder, PromptEncoder
from thrifty.tam.encoder import ConvEncoder, ViTEncoder
from thrifty.tam.memory import MemoryBank, MemoryEncoder
from thrifty.tam.perceiver import SpatialPerceiver
from thrifty.tam.rope import cached_sine_pe_2d


class TinyTAM(nn.Module):
    """Image encoder, prompt encoder, mask decoder, memory encoder, optional perceiver, memory attention.

    Args:
        cfg: :class:`TamModelConfig`; ``cfg.memory`` picks the memory path.
    """

    def __init__(self, cfg: TamModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grid = (cfg.image_size // 4, cfg.image_size // 4)
        self.encoder = ConvEncoder(cfg.dim) if cfg.encoder == "conv" else ViTEncoder(cfg.dim, cfg.image_size)
        self.prompt_encoder = PromptEncoder(cfg.dim, self.grid, cfg.image_size)
        self.decoder = MaskDecoder(cfg.dim, cfg.dec_heads, cfg.dec_mlp)
        self.no_mem_embed = nn.Parameter(0.02 * torch.randn(cfg.dim))
        self.memory_attention: MemoryAttention | None = None
        self.perceiver: SpatialPerceiver | None = None
        if cfg.memory != "none":
            cross = "pooled" if cfg.memory == "pooled" else "full"
            self.memory_attention = MemoryAttention(
                cfg.dim, cfg.mem_dim, cfg.mem_layers, cfg.mem_ffn, cfg.mem_heads, cross, cfg.pool
            )
            self.memory_encoder = MemoryEncoder(cfg.dim, cfg.mem_dim)
            self.tpos = nn.Parameter(0.02 * torch.randn(cfg.num_maskmem, cfg.mem_dim))
        if cfg.memory == "perceiver":
            self.perceiver = SpatialPerceiver(
                cfg.mem_dim,
                cfg.n_global,
                cfg.patch_grid,
                latent_std=cfg.latent_std,
                norm_init=cfg.perceiver_norm_init,
                branch_gain=cfg.perceiver_branch_gain,
                init=cfg.perceiver_init,
            )

    def new_bank(self) -> MemoryBank:
        """An empty bank laid out for this model's stored memories."""
        scale_offset = (1.0, 0.0)
        if self.perceiver is not None:
            grid, nope = self.perceiver.patch_grid, self.perceiver.n_global
            if self.cfg.patch_rope == "window" and grid[0] > 0:
                window = self.grid[0] / grid[0]
                scale_offset = (window, (window - 1) / 2)
        else:
            grid, nope = self.grid, 0
        return MemoryBank(self.cfg.num_maskmem, self.cfg.max_obj_ptrs, grid, nope, grid_scale_offset=scale_offset)

    def tokens_per_frame(self) -> tuple[int, int]:
        """``(stored, attended)`` memory tokens per frame (pooled attends to ``HW/s^2`` of ``HW`` stored)."""
        hw = self.grid[0] * self.grid[1]
        if self.cfg.memory == "perceiver":
            n = self.cfg.n_global + self.cfg.patch_grid[0] * self.cfg.patch_grid[1]
            return n, n
        if self.cfg.memory == "pooled":
            return hw, hw // (self.cfg.pool**2)
        return (hw, hw) if self.cfg.memory == "full" else (0, 0)

    def check_frame(self, frame: Tensor) -> None:
        s = self.cfg.image_size
        if frame.dim() != 4 or frame.shape[1:] != (3, s, s):
            raise ValueError(f"frame: expected (B, 3, {s}, {s}) float tensor, got {tuple(frame.shape)}")

    def condition(self, feat: Tensor, bank: MemoryBank, frame_idx: int) -> Tensor:
        """Memory-conditioned features ``(B, C, H, W)`` (``feat + no_mem_embed`` without usable memory)."""
        b, c, h, w = feat.shape
        if self.memory_attention is None or len(bank) == 0:
            return feat + self.no_mem_embed.view(1, -1, 1, 1)
        mem = bank.gather(frame_idx, self.tpos)
        pos = cached_sine_pe_2d(c, h, w, feat.device, feat.dtype).flatten(1).t().expand(b, -1, -1)
        out = self.memory_attention(feat.flatten(2).transpose(1, 2), pos, self.grid, mem.tokens, mem.pos, mem.layout)
        return out.transpose(1, 2).reshape(b, c, h, w)

    def encode_memory(self, feat: Tensor, mask_logits: Tensor, obj_logit: Tensor) -> tuple[Tensor, Tensor]:
        """Memory tokens and positions ``(B, N, Cm)`` to store (compressed by the perceiver for EdgeTAM)."""
        mem = self.memory_encoder(feat, mask_logits, obj_logit)
        b, cm, h, w = mem.shape
        pos = cached_sine_pe_2d(cm, h, w, mem.device, mem.dtype).expand(b, -1, -1, -1)
        if self.perceiver is not None:
            return self.perceiver(mem, pos)
        return mem.flatten(2).transpose(1, 2), pos.flatten(2).transpose(1, 2)

    def track_step(
        self,
        frame: Tensor,
        bank: MemoryBank,
        frame_idx: int,
        mask_prompt: Tensor | None = None,
        points: tuple[Tensor, Tensor] | None = None,
        box: Tensor | None = None,
        store: bool = True,
    ) -> dict[str, Tensor]:
        """Segment one frame and (optionally) store its memory.

        Args:
            frame: ``(B, 3, S, S)`` in [0, 1]. bank: the video's :class:`MemoryBank`. frame_idx: its index.
            mask_prompt: ``(B, 1, S, S)`` binary mask; it becomes the output directly (logits ``20 m - 10``)
                while the heads still run on it to produce the object pointer (SAM 2 VOS setting).
            points, box: click / box prompts (a conditioning frame). store: write the memory to ``bank``.

        Returns:
            dict: ``masks`` ``(B, 1, S, S)`` logits, ``iou`` ``(B, 1)``, ``obj_logit`` ``(B, 1)``, ``obj_ptr``
            ``(B, C)``, ``feat`` (raw encoder tokens) and ``cond`` (memory-conditioned tokens),
            ``(B, HW, C)``.
        """
        self.check_frame(frame)
        is_cond = mask_prompt is not None or points is not None or box is not None
        feat = self.encoder(frame)
        cond = feat + self.no_mem_embed.view(1, -1, 1, 1) if is_cond else self.condition(feat, bank, frame_idx)
        sparse, dense = self.prompt_encoder(
            frame.shape[0], points, box, None if mask_prompt is None else mask_prompt * 20 - 10
        )
        out = self.decoder(cond, self.prompt_encoder.dense_pe(), sparse, dense)
        if mask_prompt is not None:
            out["masks"] = out["masks_ungated"] = mask_prompt * 20 - 10
            out["obj_logit"] = torch.where(mask_prompt.flatten(1).amax(1, keepdim=True) > 0, 10.0, -10.0)
        out["feat"], out["cond"] = feat.flatten(2).transpose(1, 2), cond.flatten(2).transpose(1, 2)
        if store and self.memory_attention is not None:
            tokens, pos = self.encode_memory(feat, out["masks"], out["obj_logit"])
            bank.add(frame_idx, tokens, pos, out["obj_ptr"], is_cond)
        return out

    def layout_for(self, n_frames: int, n_ptr_tokens: int) -> MemoryLayout:
        """The memory layout of ``n_frames`` stored frames plus ``n_ptr_tokens`` pointer tokens."""
        return MemoryLayout(n_frames, self.new_bank().grid, self.new_bank().n_nope, n_ptr_tokens)
