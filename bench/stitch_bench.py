"""Benchmark: stitch 12 clips of 5 s at 960x544 with storyforge, plain moviepy 2, and raw ffmpeg concat.

moviepy comes with the bench extra: pip install -c constraints.txt -e '.[video,bench]' (moviepy caps
Pillow, which the animatic's cache key records: the constraints keep Pillow where the tests have it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from storyforge.clipfile import count_frames, ffmpeg_exe, write_clip
from storyforge.stitch import CutClip, stitch, sync_frames

WIDTH, HEIGHT, FPS, SECONDS, CLIPS = 960, 544, 24, 5, 12
TRANSITION = FPS // 2  # 0.5 s, the story format's default length
# Clip index -> how it begins: three crossfades and one fade among hard cuts.
TRANSITIONS = {2: "crossfade", 5: "fade", 7: "crossfade", 10: "crossfade"}


def synthetic(index: int, frames: int) -> np.ndarray:
    """A textured colour field that pans diagonally: real motion, so x264 has work to do."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    hue = 2 * np.pi * index / CLIPS
    base = np.stack([np.sin(x / 97 + hue + c) * np.cos(y / 71 - c) for c in (0.0, 2.1, 4.2)], axis=-1)
    texture = rng.normal(0, 0.12, (HEIGHT, WIDTH, 1)).astype(np.float32)
    field = ((base * 0.4 + 0.5 + texture).clip(0, 1) * 255).astype(np.uint8)
    return np.stack([np.roll(field, (2 * i, 3 * i), axis=(0, 1)) for i in range(frames)])


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def moviepy_cut(clips: list[CutClip], out: Path, fps: int = FPS, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
    """The same cut as a moviepy 2 user would write it: one composition, crossfades and fades as effects."""
    from moviepy import CompositeVideoClip, VideoFileClip, vfx

    sources = [VideoFileClip(str(c.path)) for c in clips]
    placed, start = [], 0.0
    for clip, source in zip(clips, sources, strict=True):
        effects = []
        seconds = clip.transition_frames / fps
        if clip.transition == "crossfade":
            start -= seconds
            effects.append(vfx.CrossFadeIn(seconds))
        elif clip.transition == "fade" and not placed:  # the film fades in from black
            effects.append(vfx.FadeIn(seconds))
        elif clip.transition == "fade":
            half = (clip.transition_frames // 2) / fps
            placed[-1] = placed[-1].with_effects([vfx.FadeOut(half)])
            effects.append(vfx.FadeIn(seconds - half))
        placed.append(source.with_start(start).with_effects(effects) if effects else source.with_start(start))
        start += source.duration
    # bg_color: without it the composition blends against transparency, 1.1-1.7x slower (research note).
    film = CompositeVideoClip(placed, size=size, bg_color=(0, 0, 0))
    film.write_videofile(str(out), fps=fps, codec="libx264", audio=False, logger=None)
    for source in sources:
        source.close()


def raw_concat(clips: list[CutClip], out: Path) -> None:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{c.path}'\n" for c in clips))
    concat = ["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy"]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *concat, str(out)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = parser.parse_args()
    frames = SECONDS * FPS
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        cut = [
            CutClip(f"scene/shot{i}", root / f"clip{i:02}.mp4", frames, TRANSITIONS.get(i, "cut"),
                    TRANSITION if i in TRANSITIONS else 0)
            for i in range(CLIPS)
        ]  # fmt: skip
        hard = [CutClip(c.id, c.path, c.frames) for c in cut]
        write_seconds = 0.0
        for clip, keys in zip(cut, sync_frames(cut), strict=True):
            content = synthetic(int(clip.path.stem[4:]), frames)
            write_seconds += timed(lambda: write_clip(content, clip.path, fps=FPS, keyframes=keys))  # noqa: B023
        clip_bytes = sum(c.path.stat().st_size for c in cut)
        print(f"wrote {CLIPS} clips of {frames} frames at {WIDTH}x{HEIGHT}: {write_seconds:.1f} s "
              f"({CLIPS * frames / write_seconds:.0f} fps), {clip_bytes / 1e6:.1f} MB")  # fmt: skip

        runs: dict[str, Callable[[], object]] = {
            "storyforge, transitions (verify=decode)": lambda: stitch(
                cut, root / "a.mp4", fps=FPS, work_dir=root / "work"),
            "storyforge, transitions (verify=packets)": lambda: stitch(
                cut, root / "a2.mp4", fps=FPS, work_dir=root / "work", verify="packets"),
            "moviepy 2, transitions (medium)": lambda: moviepy_cut(cut, root / "b.mp4"),
            "storyforge, hard cuts (verify=decode)": lambda: stitch(
                hard, root / "c.mp4", fps=FPS, work_dir=root / "work"),
            "storyforge, hard cuts (verify=packets)": lambda: stitch(
                hard, root / "c2.mp4", fps=FPS, work_dir=root / "work", verify="packets"),
            "ffmpeg concat -c copy, hard cuts": lambda: raw_concat(hard, root / "d.mp4"),
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):  # alternate, so a busy machine slows every method alike
            for name, run in runs.items():
                times[name].append(timed(run))
        median = {name: statistics.median(values) for name, values in times.items()}

        expected = CLIPS * frames - TRANSITION * sum(t == "crossfade" for t in TRANSITIONS.values())
        counts = {
            name: count_frames(root / f)
            for name, f in zip(runs, ["a.mp4", "a2.mp4", "b.mp4", "c.mp4", "c2.mp4", "d.mp4"], strict=True)
        }
        print(
            f"\n{os.cpu_count()} cores, {args.rounds} alternating rounds, medians; "
            f"expected frames: {expected} with transitions, {CLIPS * frames} hard-cut"
        )
        print(f"{'method':44} {'median s':>9} {'all rounds':>24} {'frames':>7}")
        for name in runs:
            rounds = " ".join(f"{t:.2f}" for t in times[name])
            print(f"{name:44} {median[name]:9.2f} {rounds:>24} {counts[name]:7}")
        print("\nratios")
        mp, raw = median["moviepy 2, transitions (medium)"], median["ffmpeg concat -c copy, hard cuts"]
        for mode in ("decode", "packets"):
            sf, hc = (
                median[f"storyforge, transitions (verify={mode})"],
                median[f"storyforge, hard cuts (verify={mode})"],
            )
            print(
                f"  verify={mode:8} moviepy / storyforge (transitions): {mp / sf:5.1f}x  (goal >= 10x)   "
                f"storyforge / raw concat (hard cuts): {hc / raw:5.1f}x  (goal <= 3x)"
            )


if __name__ == "__main__":
    main()
