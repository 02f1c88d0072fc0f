"""Benchmark: an animatic render of the multi-scene example, then a no-op re-render (everything cached).

Usage: python bench/render_noop.py [--rounds 3] [--story examples/stories/swan-lake.yaml]

Each round copies the story (and its refs/) into a fresh folder, so the first render starts from an
empty cache. Both the CLI (a new process each time, as a user or CI runs it) and the library call are
timed. Goal: the no-op re-render takes at most 5 % of the first render.

The CLI is timed twice over: wall seconds, and CPU seconds (user + system of the process and its children,
ffmpeg included), which a busy machine does not inflate the way it does wall time; the ratio is quoted on both.
"""

from __future__ import annotations

import argparse
import resource
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


CPU: list[float] = []  # CPU seconds of each CLI run, in the order they ran


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], cwd: Path) -> float:
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=cwd)
    CPU.append(_children_cpu() - cpu)
    return time.perf_counter() - started


def cli(story: Path) -> float:
    return _timed([sys.executable, "-m", "storyforge", "render", str(story), "--backend", "animatic"], story.parent)


def cli_plan(story: Path) -> float:
    """The floor under any CLI no-op: start Python, import the CLI, load and plan the story."""
    return _timed([sys.executable, "-m", "storyforge", "plan", str(story)], story.parent)


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
        cpu_first, cpu_again, cpu_floor = [], [], []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                story = fresh_copy(args.story, Path(folder))
                first.append(run(story))
                again.append(run(story))
                if run is cli:
                    floor.append(cli_plan(story))
                    cpu_first.append(CPU[-3])
                    cpu_again.append(CPU[-2])
                    cpu_floor.append(CPU[-1])
        a, b = statistics.median(first), statistics.median(again)
        print(f"{name:8} first render {a:6.2f}s  no-op re-render {b:5.2f}s  = {100 * b / a:4.1f}% "
              f"(goal <= 5%)  [first {', '.join(f'{x:.2f}' for x in first)}; no-op "
              f"{', '.join(f'{x:.2f}' for x in again)}]")
        if cpu_first:
            x, y = statistics.median(cpu_first), statistics.median(cpu_again)
            print(f"{'':8} CPU:  first render {x:6.2f}s  no-op re-render {y:5.2f}s  = {100 * y / x:4.1f}% "
                  f"(goal <= 5%); `storyforge plan` alone {statistics.median(cpu_floor):.2f}s")
        if floor:
            c = statistics.median(floor)
            print(f"{'':8} `storyforge plan` alone {c:.2f}s: the render's own no-op work is {b - c:.2f}s "
                  f"= {100 * (b - c) / a:.1f}% of the first render")


if __name__ == "__main__":
    main()
