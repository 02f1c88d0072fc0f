"""Clip files: real libx264 encodes through ffmpeg, checked by decoding them again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("imageio_ffmpeg")

from storyforge.clipfile import ENCODER, ClipWriter, count_frames, read_frames, write_clip  # noqa: E402

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 100, 50), (0, 0, 0), (255, 255, 255), (30, 60, 90)]


def moving(count: int, *, width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """A gradient that drifts right."""
    x = np.arange(width)[None, :] + np.arange(height)[:, None]
    frames = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        frames[i, ..., 0] = (x + 3 * i + seed) % 256
        frames[i, ..., 1] = (2 * x + i) % 256
        frames[i, ..., 2] = 128
    return frames


def keyframe_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [n for n, p in enumerate(p for p in container.demux(stream) if p.size) if p.is_keyframe]


def test_round_trip_keeps_count_size_and_colours(tmp_path: Path) -> None:
    frames = np.zeros((len(COLOURS), 64, 96, 3), np.uint8)
    for i, colour in enumerate(COLOURS):
        frames[i] = colour
    path = tmp_path / "clip.mp4"
    write_clip(frames, path, fps=24)
    decoded = read_frames(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert count_frames(path) == len(COLOURS)
    # bt709 limited range both ways: a few levels of rounding at most
    assert np.abs(decoded.astype(int) - frames).max() <= 3


def test_keyframes_forced_where_asked(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(moving(30), path, fps=24, keyframes=[7, 20])
    found = keyframe_indices(path)
    assert {0, 7, 20} <= set(found) and len(found) < 30  # x264 may add scene-cut keyframes of its own


def test_one_timescale_and_even_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(moving(10), path, fps=24)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]
        assert stream.time_base.denominator == ENCODER.timescale(24) == 12288
    assert pts == [n * ENCODER.ticks_per_frame for n in range(10)]


def test_clips_share_stream_headers(tmp_path: Path) -> None:
    """Stitching copies packets of different clips into one stream: their SPS/PPS must be identical."""
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_clip(moving(12), first, fps=24, keyframes=[5])
    write_clip(np.full((3, 64, 96, 3), 40, np.uint8), second, fps=24)
    with av.open(str(first)) as a, av.open(str(second)) as b:
        extradata = [bytes(c.streams.video[0].codec_context.extradata) for c in (a, b)]
    assert extradata[0] == extradata[1] and extradata[0]


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((2, 64, 96, 3), np.float32), "uint8"),
        (np.zeros((2, 64, 96), np.uint8), "shape"),
        (np.zeros((2, 64, 96, 4), np.uint8), "shape"),
        (np.zeros((0, 64, 96, 3), np.uint8), "empty"),
        (np.zeros((2, 63, 96, 3), np.uint8), "even"),
        ([np.zeros((64, 96, 3), np.uint8)], "numpy array"),
    ],
)
def test_rejects_bad_frames(tmp_path: Path, frames: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_clip(frames, tmp_path / "clip.mp4", fps=24)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_rejects_keyframes_outside_the_clip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"keyframes \[5\]"):
        write_clip(moving(5), tmp_path / "clip.mp4", fps=24, keyframes=[5])


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError), ClipWriter(path, width=96, height=64, fps=24) as writer:
        writer.write(moving(1)[0])
        raise RuntimeError("the backend crashed mid-clip")
    assert not list(tmp_path.iterdir())
