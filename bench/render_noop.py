"""Benchmark: an animatic render of the multi-scene example, then a no-op re-render (everything cached).

Usage: python bench/render_noop.py [--rounds 3] [--story examples/stories/swan-lake.yaml]

Each round copies the story (and its refs/) into a fresh folder, so the first render starts from an
empty cache. Both the CLI (a new process each time, as a user or CI runs it) and the library call are
timed. Goal: the no-op re-render takes at most 5 % of the first render.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_copy(story: Path, folder: Path) -> Path:
    if (story.parent / "refs").is_dir():
        shutil.copytree(story.parent / "refs", folder / "refs")
    target = folder / story.name
    shutil.copyfile(story, target)
    return target


def cli(story: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "storyforge", "render", str(story), "--backend", "animatic"],
                   check=True, capture_output=True, cwd=story.parent)
    return time.perf_counter() - started


def cli_plan(story: Path) -> float:
    """The floor under any CLI no-op: start Python, import the CLI, load and plan the story."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "storyforge", "plan", str(story)], check=True, capture_output=True,
                   cwd=story.parent)
    return time.perf_counter() - started


def library(story: Path) -> float:
    from storyforge import api

    started = time.perf_counter()
    api.render(api.plan(story), backend="animatic", out=story.parent / "lib-out",
               cache_root=story.parent / "lib-cache")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--story", type=Path, default=ROOT / "examples" / "stories" / "swan-lake.yaml")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from storyforge import api

    plan = api.plan(args.story)
    print(f"{args.story.name}: {len(plan.jobs)} shots in {len({j.id.split('/')[0] for j in plan.jobs})} scenes, "
          f"{plan.total_frames} frames at {plan.width}x{plan.height}, {args.rounds} rounds")
    for name, run in (("cli", cli), ("library", library)):
        first, again, floor = [], [], []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                story = fresh_copy(args.story, Path(folder))
                first.append(run(story))
                again.append(run(story))
                if run is cli:
                    floor.append(cli_plan(story))
        a, b = statistics.median(first), statistics.median(again)
        print(f"{name:8} first render {a:6.2f}s  no-op re-render {b:5.2f}s  = {100 * b / a:4.1f}% "
              f"(goal <= 5%)  [first {', '.join(f'{x:.2f}' for x in first)}; no-op "
              f"{', '.join(f'{x:.2f}' for x in again)}]")
        if floor:
            c = statistics.median(floor)
            print(f"{'':8} `storyforge plan` alone {c:.2f}s: the render's own no-op work is {b - c:.2f}s "
                  f"= {100 * (b - c) / a:.1f}% of the first render")


if __name__ == "__main__":
    main()
