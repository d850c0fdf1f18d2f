"""Long synthetic videos: shots of slow pans and zooms over scikit-image photos, with rare glyph needles.

Questions (all answered with one of at most 8 classes):
``NEEDLE``: which of 8 glyphs (4 colours x {filled square, ring}) appeared; ``COVERAGE``: which of 4
candidate photos appeared in the video; ``TEMPORAL``: in which quarter of the video the glyph was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.core.data import PHOTO_NAMES, load_photo

NEEDLE, COVERAGE, TEMPORAL = 0, 1, 2
QUESTION_NAMES = ("needle", "coverage", "temporal")
N_ANSWERS = (8, 4, 4)
N_GLYPHS = 8
GLYPH_COLOURS = ((1.0, 0.1, 0.1), (0.1, 1.0, 0.1), (0.1, 0.2, 1.0), (1.0, 1.0, 0.1))


@dataclass
class Video:
    """One generated video and the facts its questions ask about.

    Attributes:
        frames: ``(T, S, S, 3)`` float in ``[0, 1]``.
        shot_ids: ``(T,)`` shot index of each frame.
        needle_frames: ``(K,)`` frames carrying the glyph (1-3, isolated, all in one quarter).
        glyph: glyph class ``0..7``; quarter: ``0..3``.
        candidates: ``(4,)`` photo indices of the coverage question; answer_photo: position of the one shown.
    """

    frames: Tensor
    shot_ids: Tensor
    needle_frames: Tensor
    glyph: int
    quarter: int
    candidates: Tensor
    answer_photo: int

    def answers(self) -> Tensor:
        """``(3,)`` answers to (needle, coverage, temporal)."""
        return torch.tensor([self.glyph, self.answer_photo, self.quarter])


def glyph_patch(glyph: int, size: int = 8) -> tuple[Tensor, Tensor]:
    """``(size, size, 3)`` colour and ``(size, size)`` alpha mask of a glyph (filled square or ring)."""
    colour = torch.tensor(GLYPH_COLOURS[glyph % 4]).expand(size, size, 3)
    alpha = torch.ones(size, size)
    if glyph // 4 == 1:
        edge = max(1, size // 4)
        alpha[edge:-edge, edge:-edge] = 0.0
    return colour, alpha


class VideoGenerator:
    """Seeded generator of long videos over a bank of photos (all scikit-image photos by default).

    Args:
        n_frames: frames per video (256-512 in the issue).
        frame_size: frame side in pixels.
        shot_mean: mean shot length (geometric, at least 4 frames).
        noise: Gaussian pixel noise.
        max_photos: most distinct photos per video (the rest of the bank supplies absent candidates).
        glyph_size: needle glyph side in pixels.
        bank_size: resolution the photos are rendered from.
    """

    def __init__(
        self,
        n_frames: int = 256,
        frame_size: int = 32,
        shot_mean: float = 30.0,
        noise: float = 0.02,
        max_photos: int = 8,
        glyph_size: int = 8,
        bank_size: int = 96,
    ) -> None:
        if n_frames < 16:
            raise ValueError(f"n_frames: expected at least 16 frames (four quarters of 4), got {n_frames}")
        if frame_size % glyph_size:
            raise ValueError(f"glyph_size: expected a divisor of frame_size={frame_size}, got {glyph_size}")
        if max_photos + 3 > len(PHOTO_NAMES):
            raise ValueError(f"max_photos: expected at most {len(PHOTO_NAMES) - 3}, got {max_photos}")
        self.n_frames, self.frame_size, self.shot_mean, self.noise = n_frames, frame_size, shot_mean, noise
        self.max_photos, self.glyph_size = max_photos, glyph_size
        self.bank = torch.stack([load_photo(n, bank_size).permute(2, 0, 1) for n in PHOTO_NAMES])  # (N, 3, b, b)

    @property
    def n_photos(self) -> int:
        return self.bank.shape[0]

    def _shots(self, g: torch.Generator) -> Tensor:
        p = 1.0 / self.shot_mean
        lengths = []
        while sum(lengths) < self.n_frames:
            u = float(torch.rand((), generator=g).clamp_min(1e-9))
            lengths.append(max(4, int(torch.tensor(u).log() / torch.tensor(1 - p).log()) + 1))
        return torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))[: self.n_frames]

    def render(self, photo_ids: Tensor, boxes: Tensor) -> Tensor:
        """Crop-and-resize frames from the bank.

        Args:
            photo_ids: ``(T,)`` bank index per frame.
            boxes: ``(T, 3)`` crop (scale, centre x, centre y) in normalised ``[-1, 1]`` coordinates.

        Returns:
            ``(T, S, S, 3)`` frames.
        """
        theta = torch.zeros(boxes.shape[0], 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = boxes[:, 0]
        theta[:, 0, 2], theta[:, 1, 2] = boxes[:, 1], boxes[:, 2]
        grid = F.affine_grid(theta, [boxes.shape[0], 3, self.frame_size, self.frame_size], align_corners=False)
        return F.grid_sample(self.bank[photo_ids], grid, align_corners=False).permute(0, 2, 3, 1)

    def random_boxes(self, n: int, g: torch.Generator) -> Tensor:
        """``(n, 3)`` random crops: scale in [0.35, 0.7], centre keeping the crop inside the photo."""
        scale = 0.35 + 0.35 * torch.rand(n, generator=g)
        centre = (torch.rand(n, 2, generator=g) * 2 - 1) * (1 - scale[:, None])
        return torch.cat((scale[:, None], centre), dim=1)

    def _shot_boxes(self, shot_ids: Tensor, g: torch.Generator) -> Tensor:
        n_shots = int(shot_ids.max()) + 1
        start, end = self.random_boxes(n_shots, g), self.random_boxes(n_shots, g)
        end = start + 0.5 * (end - start)  # slow: half-way to a random second crop over the shot
        first = torch.searchsorted(shot_ids, torch.arange(n_shots))
        length = torch.bincount(shot_ids, minlength=n_shots).float()
        t = (torch.arange(shot_ids.numel()) - first[shot_ids]).float() / length[shot_ids].clamp_min(2)
        return start[shot_ids] + t[:, None] * (end - start)[shot_ids]

    def stamp(self, frames: Tensor, glyph: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Paste glyph ``glyph`` into every frame of ``frames`` ``(K, S, S, 3)`` at a random grid cell.

        The glyph is aligned to the ``glyph_size`` grid (the encoder's patch grid), so one encoder token carries
        it whole. Returns the stamped frames and ``(K,)`` the row-major cell index of each glyph.
        """
        colour, alpha = glyph_patch(glyph, self.glyph_size)
        cells = self.frame_size // self.glyph_size
        where = torch.randint(cells * cells, (frames.shape[0],), generator=g)
        out = frames.clone()
        for k, cell in enumerate(where.tolist()):
            y, x = (cell // cells) * self.glyph_size, (cell % cells) * self.glyph_size
            region = out[k, y : y + self.glyph_size, x : x + self.glyph_size]
            out[k, y : y + self.glyph_size, x : x + self.glyph_size] = (
                region * (1 - alpha[..., None]) + colour * alpha[..., None]
            )
        return out, where

    def video(self, g: torch.Generator) -> Video:
        """One video with its needles and coverage candidates."""
        shot_ids = self._shots(g)
        n_shots = int(shot_ids.max()) + 1
        perm = torch.randperm(self.n_photos, generator=g)
        used, absent = perm[: min(self.max_photos, n_shots)], perm[self.max_photos :]
        shot_photo = used[torch.arange(n_shots) % used.numel()][torch.randperm(n_shots, generator=g)]
        frames = self.render(shot_photo[shot_ids], self._shot_boxes(shot_ids, g))
        glyph = int(torch.randint(N_GLYPHS, (), generator=g))
        quarter = int(torch.randint(4, (), generator=g))
        span = self.n_frames // 4
        offset = 1 + int(torch.randint(3, (), generator=g))  # random phase: no aliasing with uniform sampling
        slots = torch.arange(quarter * span + offset, (quarter + 1) * span - 1, 3)
        needles = slots[torch.randperm(slots.numel(), generator=g)[: int(torch.randint(1, 4, (), generator=g))]]
        needles = needles.sort().values
        frames[needles] = self.stamp(frames[needles], glyph, g)[0]
        frames = (frames + self.noise * torch.randn(frames.shape, generator=g)).clamp(0, 1)
        shown = shot_photo[int(torch.randint(n_shots, (), generator=g))]
        candidates = torch.cat((shown[None], absent[torch.randperm(absent.numel(), generator=g)[:3]]))
        order = torch.randperm(4, generator=g)
        return Video(frames, shot_ids, needles, glyph, quarter, candidates[order], int((order == 0).nonzero()))

    def labelled_frames(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` single frames for encoder pre-training.

        Returns:
            frames ``(n, S, S, 3)``, photo labels ``(n,)``, and per-cell glyph labels ``(n, cells**2)`` with
            ``N_GLYPHS`` (8) for "no glyph" (half the frames carry one glyph, in one cell).
        """
        photos = torch.randint(self.n_photos, (n,), generator=g)
        frames = self.render(photos, self.random_boxes(n, g))
        glyphs = torch.randint(N_GLYPHS, (n,), generator=g)
        has = torch.rand(n, generator=g) < 0.5
        cells = (self.frame_size // self.glyph_size) ** 2
        labels = torch.full((n, cells), N_GLYPHS, dtype=torch.long)
        for c in range(N_GLYPHS):
            rows = (has & (glyphs == c)).nonzero().flatten()
            frames[rows], where = self.stamp(frames[rows], c, g)
            labels[rows, where] = c
        frames = (frames + self.noise * torch.randn(frames.shape, generator=g)).clamp(0, 1)
        return frames, photos, labels
