"""Benchmark: render the multi-scene example with the animatic, then stitch its clips with storyforge and
with a plain moviepy 2 composition of the same cut, side by side in one run, and print the ratios.

moviepy comes with the bench extra: pip install -c constraints.txt -e '.[video,bench]' (moviepy caps
Pillow, which the animatic's cache key records: the constraints keep Pillow where the tests have it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stitch_bench import moviepy_cut, raw_concat, timed  # noqa: E402

from storyforge import api  # noqa: E402
from storyforge.clipfile import count_frames  # noqa: E402
from storyforge.render import clip_name  # noqa: E402
from storyforge.stitch import CutClip, stitch  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "stories" / "swan-lake.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = parser.parse_args()
    plan = api.plan(EXAMPLE)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        render_seconds = timed(lambda: api.render(plan, out=root / "out", backend="animatic",
                                                  cache_root=root / "cache"))
        clips = [CutClip(job.id, root / "out" / clip_name(job), job.frames, job.transition.type,
                         job.transition.frames) for job in plan.jobs]
        hard = [CutClip(c.id, c.path, c.frames) for c in clips]
        print(f"{plan.title}: {len(clips)} clips, {plan.total_frames} frames at {plan.width}x{plan.height}, "
              f"animatic render {render_seconds:.1f} s")
        runs = {
            "storyforge stitch": lambda: stitch(clips, root / "a.mp4", fps=plan.fps, work_dir=root / "w",
                                                verify="packets"),
            "storyforge stitch + decode check": lambda: stitch(clips, root / "b.mp4", fps=plan.fps,
                                                               work_dir=root / "w"),
            "moviepy 2 composition": lambda: moviepy_cut(clips, root / "c.mp4", plan.fps, (plan.width, plan.height)),
            "storyforge stitch, hard cuts": lambda: stitch(hard, root / "d.mp4", fps=plan.fps, work_dir=root / "w",
                                                           verify="packets"),
            "ffmpeg concat -c copy, hard cuts": lambda: raw_concat(hard, root / "e.mp4"),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):  # alternating, so a busy machine slows every method alike
            for name, run in runs.items():
                times[name].append(timed(run))
        median = {name: statistics.median(values) for name, values in times.items()}
        for name, file in zip(runs, "abcde", strict=True):
            frames = count_frames(root / f"{file}.mp4")
            rounds = " ".join(f"{t:.2f}" for t in times[name])
            print(f"{name:36} {median[name]:7.2f} s   rounds {rounds:24} frames {frames}")
        moviepy = median["moviepy 2 composition"]
        print(f"moviepy / storyforge: {moviepy / median['storyforge stitch']:.1f}x (goal >= 10x); "
              f"with the decode check: {moviepy / median['storyforge stitch + decode check']:.1f}x")
        print(f"hard cuts, storyforge / raw concat: "
              f"{median['storyforge stitch, hard cuts'] / median['ffmpeg concat -c copy, hard cuts']:.2f}x "
              f"(goal <= 3x)")


if __name__ == "__main__":
    main()
