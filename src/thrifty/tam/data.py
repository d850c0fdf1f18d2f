"""SynthVOS: seeded synthetic video object segmentation built from scikit-image's bundled photos.

Objects are coins cut by a watershed, the horse silhouette and binary blobs, textured with photo crops; the
background is a colour-jittered texture; 1-2 distractors of the same family and similar texture move too; a
brick occluder bar crosses the frame and, with probability ``p_occlude``, hides the target completely for
2-3 frames (empty ground truth). Ground truth is the VISIBLE part of the target after compositing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from thrifty.core.data import load_photo

_TEXTURES = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")
_BACKGROUNDS = ("grass", "gravel", "brick", "moon", "camera", "page")


@functools.lru_cache(maxsize=1)
def _shapes() -> dict[str, list[np.ndarray]]:
    """Binary object masks per family, each cropped to its bounding box."""
    from scipy import ndimage
    from skimage import data, filters, measure, segmentation

    coins = data.coins()
    markers = np.zeros_like(coins)
    markers[coins < 30], markers[coins > 150] = 1, 2
    seg = ndimage.binary_fill_holes(segmentation.watershed(filters.sobel(coins), markers) - 1)
    labels = measure.label(seg)
    coin_masks = [r.image for r in measure.regionprops(labels) if 1000 <= r.area <= 4000]
    horse = ~data.horse()  # True is background in the original
    blobs = []
    for seed in range(8):
        b = data.binary_blobs(length=96, blob_size_fraction=0.25, volume_fraction=0.3, rng=seed)
        lab = measure.label(b)
        biggest = max(measure.regionprops(lab), key=lambda r: r.area)
        blobs.append(ndimage.binary_fill_holes(biggest.image))
    return {"coin": coin_masks, "horse": [horse[ndimage.find_objects(horse.astype(int))[0]]], "blob": blobs}


@functools.lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    return {n: load_photo(n, size=160).numpy() for n in (*_TEXTURES, *_BACKGROUNDS)}


@dataclass
class VideoBatch:
    """``frames`` ``(B, T, 3, S, S)`` in [0, 1], ``masks`` ``(B, T, 1, S, S)`` in {0, 1},
    ``occluded`` ``(B,)``."""

    frames: Tensor
    masks: Tensor
    occluded: Tensor

    def to(self, device: torch.device | str) -> VideoBatch:
        return VideoBatch(self.frames.to(device), self.masks.to(device), self.occluded.to(device))


def _crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    y, x = rng.integers(0, photo.shape[0] - size + 1), rng.integers(0, photo.shape[1] - size + 1)
    return photo[y : y + size, x : x + size]


def _resize_mask(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.interpolate(t, size=(max(h, 2), max(w, 2)), mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5


def _trajectory(rng: np.random.Generator, t_len: int, size: int, extent: int) -> np.ndarray:
    """``(T, 2)`` top-left positions: velocity + sinusoid, bouncing at the borders."""
    lo, hi = 0.0, float(size - extent)
    speed = size / 64  # motion scales with the frame: up to ~2 px per frame at 64 px
    pos, vel = rng.uniform(lo, hi, 2), rng.uniform(-2.0, 2.0, 2) * speed
    amp, freq, phase = rng.uniform(0, 1.5, 2) * speed, rng.uniform(0.2, 0.6), rng.uniform(0, 2 * np.pi, 2)
    out = np.zeros((t_len, 2))
    for t in range(t_len):
        pos = pos + vel + amp * np.sin(freq * t + phase)
        for d in range(2):
            if pos[d] < lo or pos[d] > hi:
                vel[d], pos[d] = -vel[d], np.clip(pos[d], lo, hi)
        out[t] = pos
    return out


def _sprite(rng: np.random.Generator, shape: np.ndarray, tex: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    side = int(rng.integers(int(size * 0.35), size // 2 + 1))
    scale = side / max(shape.shape)
    mask = _resize_mask(shape, round(shape.shape[0] * scale), round(shape.shape[1] * scale))
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    colour = _crop(rng, tex, max(mask.shape)) * rng.uniform(0.7, 1.3, 3)
    return mask, np.clip(colour[: mask.shape[0], : mask.shape[1]], 0, 1)


def _paste(canvas: np.ndarray, alpha: np.ndarray, mask: np.ndarray, colour: np.ndarray, y: int, x: int) -> None:
    h, w = mask.shape
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, canvas.shape[0]), min(x + w, canvas.shape[1])
    m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
    canvas[y0:y1, x0:x1][m] = colour[y0 - y : y1 - y, x0 - x : x1 - x][m]
    alpha[y0:y1, x0:x1][m] = True


def make_video(seed: int, t_len: int = 8, size: int = 64, p_occlude: float = 0.3) -> tuple[np.ndarray, ...]:
    """One seeded video: ``(frames (T, S, S, 3), masks (T, S, S), occluded: bool)``."""
    rng = np.random.default_rng(seed)
    shapes, photos = _shapes(), _photos()
    family = ("coin", "horse", "blob")[int(rng.integers(0, 3))]
    tex = photos[_TEXTURES[int(rng.integers(0, len(_TEXTURES)))]]
    background = np.clip(
        _crop(rng, photos[_BACKGROUNDS[int(rng.integers(0, len(_BACKGROUNDS)))]], size) * rng.uniform(0.6, 1.2, 3),
        0,
        1,
    )
    objects = [
        _sprite(rng, shapes[family][int(rng.integers(0, len(shapes[family])))], tex, size)
        for _ in range(1 + int(rng.integers(1, 3)))
    ]  # objects[0] is the target
    paths = [_trajectory(rng, t_len, size, max(m.shape)) for m, _ in objects]
    brick = photos["brick"]
    occluded = t_len >= 6 and rng.random() < p_occlude
    bar_w = max(objects[0][0].shape[1] + 4, size // 8) if occluded else int(rng.integers(size // 10, size // 6))
    if occluded:  # slide in, sit on the target for 2-3 frames, slide out
        k, n_occ = int(rng.integers(2, t_len - 3)), int(rng.integers(2, 4))
        speed = rng.choice([-1.0, 1.0]) * bar_w * 0.6
        centre = paths[0][:, 1] + objects[0][0].shape[1] / 2
        ts = np.arange(t_len)
        bar_x = centre + speed * (ts - np.clip(ts, k, k + n_occ - 1)) - bar_w / 2
    else:
        bar_x = np.linspace(rng.uniform(-bar_w, size / 2), rng.uniform(size / 2, size), t_len)
    bar_colour = _crop(rng, brick, size)
    frames, masks = np.zeros((t_len, size, size, 3), np.float32), np.zeros((t_len, size, size), bool)
    for t in range(t_len):
        canvas, target_alpha = background.copy(), np.zeros((size, size), bool)
        for i in list(range(1, len(objects))) + [0]:  # distractors first, target on top
            alpha = target_alpha if i == 0 else np.zeros((size, size), bool)
            _paste(canvas, alpha, *objects[i], int(paths[i][t, 0]), int(paths[i][t, 1]))
        x0, x1 = int(round(bar_x[t])), int(round(bar_x[t] + bar_w))
        x0, x1 = max(x0, 0), min(x1, size)
        if x1 > x0:
            canvas[:, x0:x1] = bar_colour[:, x0:x1]
            target_alpha[:, x0:x1] = False
        frames[t], masks[t] = canvas, target_alpha
    if not masks[0].any():  # the prompt frame must show the target: regenerate deterministically
        return make_video(seed + 1_000_003, t_len, size, p_occlude)
    return frames, masks, bool(occluded)


def video_batch(seeds: list[int], t_len: int, size: int, p_occlude: float) -> VideoBatch:
    """Stack the videos of ``seeds`` into a :class:`VideoBatch` (CPU)."""
    vids = [make_video(s, t_len, size, p_occlude) for s in seeds]
    frames = torch.from_numpy(np.stack([v[0] for v in vids])).permute(0, 1, 4, 2, 3).contiguous()
    masks = torch.from_numpy(np.stack([v[1] for v in vids])).unsqueeze(2).float()
    return VideoBatch(frames, masks, torch.tensor([v[2] for v in vids]))
