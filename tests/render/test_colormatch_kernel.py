"""The colour-matching kernel (storyforge.colormatch): its residual table against the exact Lab map on varied
colours, saturated and near black and white among them; an identity map copying nothing; the same frames
whatever the chunks, the threads or the order its cells are worked out in."""

from __future__ import annotations

import numpy as np
import pytest
from seamclips import drift, moving_lab, to_frames

from storyforge import colormatch
from storyforge.lab import delta_e_2000, lab_to_srgb, srgb_to_lab

# (gain, offset) per Lab channel: what seams ask for (steps of light, hue turns, drift) and the clamp's extremes
EVERYDAY = {"lighter": ([1.0, 1.0, 1.0], [6.0, 0.0, 0.0]),
            "darker": ([1.0, 1.0, 1.0], [-10.0, 0.0, 0.0]),
            "warmer, flatter": ([0.95, 1.05, 1.1], [-2.0, 3.0, 6.0]),
            "hue turned": ([1.0, 1.1, 0.9], [0.0, -5.0, 4.0]),
            "more contrast": ([1.25, 1.0, 1.0], [-12.0, 0.0, 0.0]),
            "less saturated": ([1.0, 0.8, 0.8], [1.0, 0.5, -0.5])}
EXTREME = {"twice the contrast": ([2.0, 2.0, 2.0], [-50.0, 0.0, 0.0]),
           "half the contrast": ([0.5, 0.5, 0.5], [25.0, 3.0, -3.0]),
           "everything at once": ([1.4, 0.7, 1.6], [-12.0, -8.0, 9.0])}


def exact(colours: np.ndarray, gain: list[float], offset: list[float]) -> np.ndarray:
    """Every pixel to Lab, mapped, and back: what the table stands for."""
    return lab_to_srgb(srgb_to_lab(colours) * np.array(gain) + np.array(offset))


def varied_colours() -> np.ndarray:
    """One frame (1, N, 3) of colours: greys, near black and near white, saturated primaries and secondaries at
    every strength, skin, sky and foliage tones, and a coarse grid over the whole cube."""
    rng = np.random.default_rng(7)
    ramp = np.arange(256)
    zero, full = np.zeros(256, int), np.full(256, 255)
    saturated = [np.stack(channels, axis=-1) for channels in (
        (ramp, zero, zero), (zero, ramp, zero), (zero, zero, ramp), (ramp, ramp, zero), (zero, ramp, ramp),
        (ramp, zero, ramp), (full, ramp, zero), (zero, full, ramp), (ramp, zero, full), (ramp, ramp, ramp))]
    corners = [np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
               for levels in (np.arange(0, 9), np.arange(247, 256))]  # every colour near black, near white
    tones = np.array([[224, 172, 150], [141, 85, 36], [255, 219, 172], [135, 206, 235], [34, 139, 34],
                      [107, 142, 35], [70, 130, 180], [255, 140, 0], [128, 0, 32], [240, 248, 255]])
    grid = np.arange(0, 256, 17)
    cube = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    mixed = rng.integers(0, 256, (4000, 3))
    return np.concatenate([*saturated, *corners, tones, cube, mixed]).astype(np.uint8)[None]


@pytest.mark.parametrize("name", EVERYDAY)
def test_the_table_gives_the_exact_lab_map_within_a_level_or_two(name: str) -> None:
    gain, offset = EVERYDAY[name]
    colours = varied_colours()
    got = colormatch.apply(colours[None], np.array(gain), np.array(offset))[0, 0].astype(int)
    want = exact(colours, gain, offset)[0].astype(int)
    error = np.abs(got - want).max(axis=-1)
    assert np.mean(error <= 1) > 0.99, name  # almost every colour within a level (rounding either side)
    assert np.mean(error <= 2) > 0.995, name
    greys = np.all(colours[0] == colours[0, :, :1], axis=-1)
    assert error[greys].max() <= 1, name  # black, white and every grey: within a level
    # the few further off: saturated colours whose smallest channel the map moves steeply, where a level is
    # far below what anyone sees
    difference = delta_e_2000(srgb_to_lab(got.astype(np.uint8)), srgb_to_lab(want.astype(np.uint8)))
    assert np.all(difference[error > 1] < 0.5) and np.mean(difference) < 0.15, name


@pytest.mark.parametrize("name", EXTREME)
def test_maps_at_the_gain_clamp_stay_within_a_just_visible_difference(name: str) -> None:
    gain, offset = EXTREME[name]
    colours = varied_colours()
    got = colormatch.apply(colours[None], np.array(gain), np.array(offset))[0, 0]
    want = exact(colours, gain, offset)[0]
    difference = delta_e_2000(srgb_to_lab(got), srgb_to_lab(want))
    assert difference.max() < 2.0 and np.mean(difference) < 0.35, name
    error = np.abs(got.astype(int) - want).max(axis=-1)
    assert np.mean(error <= 1) > 0.93 and np.mean(error <= 2) > 0.97, name


def test_an_identity_map_copies_nothing() -> None:
    frames = to_frames(moving_lab(6))
    assert colormatch.apply(frames, np.ones(3), np.zeros(3)) is frames
    assert np.shares_memory(colormatch.match_job(frames, [0]), frames)
    matcher = colormatch.ColorMatch([0, 100])  # a seam past the end: nothing to match yet
    assert np.shares_memory(matcher.feed(frames), frames)


def test_chunks_threads_and_the_order_cells_are_made_in_give_the_same_frames(monkeypatch) -> None:
    starts = [0, 9, 23]
    frames = to_frames(drift(moving_lab(34, height=90, width=160, seed=3), starts, lightness=-3.0, yellow=4.0))
    previous = to_frames(moving_lab(6, height=90, width=160, seed=4))
    whole = colormatch.match_job(frames, starts, reference=previous)
    assert not np.array_equal(whole, frames)
    for size in (1, 2, 5, 11, 34):
        matcher = colormatch.ColorMatch(starts, previous)
        parts = [matcher.feed(frames[i:i + size]) for i in range(0, len(frames), size)] + [matcher.finish()]
        assert np.array_equal(np.concatenate([p for p in parts if len(p)]), whole), size
    monkeypatch.setattr(colormatch, "MAX_THREADS", 1)
    assert np.array_equal(colormatch.match_job(frames, starts, reference=previous), whole)
    gain, offset = np.array([1.1, 0.9, 1.2]), np.array([3.0, -2.0, 5.0])
    forward = colormatch.apply(frames, gain, offset)
    backward = colormatch.apply(frames[::-1], gain, offset)[::-1]  # other frames make each cell first
    assert np.array_equal(forward, backward)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 5), (7, 13)])
def test_any_frame_size_and_a_strided_view_are_matched_pixel_by_pixel(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    frames = rng.integers(0, 256, (3, *shape, 3)).astype(np.uint8)
    gain, offset = np.array([1.2, 0.9, 1.1]), np.array([-4.0, 6.0, -3.0])
    one_by_one = np.concatenate([colormatch.apply(pixel.reshape(1, 1, 1, 3), gain, offset).reshape(1, 3)
                                 for pixel in frames.reshape(-1, 3)])  # each pixel its own frame: the last pixel
    assert np.array_equal(colormatch.apply(frames, gain, offset).reshape(-1, 3), one_by_one)
    wide = np.zeros((3, shape[0], 2 * shape[1], 3), np.uint8)
    wide[:, :, ::2] = frames
    assert np.array_equal(colormatch.apply(wide[:, :, ::2], gain, offset), colormatch.apply(frames, gain, offset))
