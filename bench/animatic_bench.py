"""Benchmark: the animatic draws a 540p window faster than x264 encodes it (a preview must not be the slow part).

Usage: python bench/animatic_bench.py [--rounds 5]

Side by side in one process, alternating: drawing one 97-frame 960x544 window with the animatic, and encoding
the same frames with the clip writer every render uses. Prints frames per second of each (medians) and the
ratio of drawing to encoding time. Goal: drawing at least as fast as encoding (ratio <= 1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

STORY = """\
storyforge: 1
title: Bench
render: {resolution: 960x544, fps: 24, base_frames: 97, overlap_frames: 17}
scenes:
  - id: s
    shots:
      - {id: a, prompt: a red fox runs through the snow, camera: slow push in, duration: 97f}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from storyforge import api
    from storyforge.backends.animatic import Animatic
    from storyforge.backends.base import RenderInputs
    from storyforge.clipfile import write_clip

    with tempfile.TemporaryDirectory() as folder:
        story = Path(folder) / "film.yaml"
        story.write_text(STORY, encoding="utf-8")
        job = api.plan(story).jobs[0]
        backend = Animatic()
        frames = backend.render(job, RenderInputs())  # warm: fonts, the first big allocation
        draw, encode = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            frames = backend.render(job, RenderInputs())
            draw.append(time.perf_counter() - started)
            started = time.perf_counter()
            write_clip(frames, Path(folder) / "clip.mp4", fps=24)
            encode.append(time.perf_counter() - started)
        count = len(frames)
        d, e = statistics.median(draw), statistics.median(encode)
        ratio = statistics.median(a / b for a, b in zip(draw, encode, strict=True))
        print(f"{count} frames at 960x544, median of {args.rounds}: draw {count / d:.0f} frames/s, "
              f"encode {count / e:.0f} frames/s; draw/encode time = {ratio:.2f}x (goal <= 1)")


if __name__ == "__main__":
    main()
