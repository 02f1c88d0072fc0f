"""Synthetic clips for the seam tests and bench: moving colour patterns with injected steps, rotations and drift."""

from __future__ import annotations

import numpy as np

from storyforge.lab import lab_to_srgb


def moving_lab(frames: int, height: int = 72, width: int = 128, seed: int = 0) -> np.ndarray:
    """A moving, textured Lab picture (float32, (F, H, W, 3)): ordinary frame-to-frame change of a few levels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    lab = np.empty((frames, height, width, 3), np.float32)
    lab[..., 0] = 50 + 18 * np.sin(x / 11 + 0.25 * t + phase[0]) * np.cos(y / 9 - 0.1 * t)
    lab[..., 1] = 12 + 10 * np.sin((x + y) / 15 - 0.2 * t + phase[1])
    lab[..., 2] = 8 + 14 * np.cos(x / 19 + 0.15 * t + phase[2])
    lab += rng.normal(0, 0.8, lab.shape).astype(np.float32)  # grain
    return lab


def step(lab: np.ndarray, at: int, lightness: float = 0.0, hue_degrees: float = 0.0) -> np.ndarray:
    """`lab` with every frame from `at` on made `lightness` lighter and its hue turned by `hue_degrees`."""
    out = lab.copy()
    after = out[at:]
    after[..., 0] += lightness
    turn = np.radians(hue_degrees)
    a, b = after[..., 1].copy(), after[..., 2].copy()
    after[..., 1] = a * np.cos(turn) - b * np.sin(turn)
    after[..., 2] = a * np.sin(turn) + b * np.cos(turn)
    return out


def drift(lab: np.ndarray, starts: list[int], lightness: float, yellow: float) -> np.ndarray:
    """`lab` with each window (beginning at `starts`) `lightness` lighter and `yellow` more yellow than the last."""
    out = lab.copy()
    for k, start in enumerate(starts):
        if k:
            out[start:, ..., 0] += lightness
            out[start:, ..., 2] += yellow
    return out


def to_frames(lab: np.ndarray) -> np.ndarray:
    """uint8 sRGB frames of a Lab clip."""
    return lab_to_srgb(lab)
