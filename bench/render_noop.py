"""Benchmark: an animatic render of the multi-scene example, then a no-op re-render (everything cached).

Usage: python bench/render_noop.py [--rounds 3] [--story examples/stories/swan-lake.yaml]

Each round copies the story (and its refs/) into a fresh folder, so the first render starts from an
empty cache. Both the CLI (a new process each time, as a user or CI runs it) and the library call are
timed. Goal: the no-op re-render takes at most 5 % of the first render.

The CLI is timed twice over: wall seconds, and CPU seconds (user + system of the process and its children,
ffmpeg included), which a busy machine does not inflate the way it does wall time; the ratio is quoted on both.

The CLI runs from bytecode, as an installed package does (see bench/plan_bench.py; --source keeps the
environment's PYTHONDONTWRITEBYTECODE). --compare DIR runs another checkout's CLI (e.g. main, before a change)
in the same rounds, on its own fresh copies, so before and after are measured side by side.
"""

from __future__ import annotations

import argparse
import os
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
ENV: dict[str, str] = dict(os.environ)  # the CLI's environment; main() sets PYTHONPATH and the bytecode folder


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], cwd: Path) -> float:
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=cwd, env=ENV)
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
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout's root, run side by side")
    parser.add_argument("--source", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as the environment has it")
    parser.add_argument("--no-library", action="store_true", help="time the CLI only")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from storyforge import api

    plan = api.plan(args.story)
    print(f"{args.story.name}: {len(plan.jobs)} shots in {len({j.id.split('/')[0] for j in plan.jobs})} scenes, "
          f"{plan.total_frames} frames at {plan.width}x{plan.height}, {args.rounds} rounds")
    trees = {"cli": ROOT, **({f"cli {args.compare}": args.compare.resolve()} if args.compare else {})}
    with tempfile.TemporaryDirectory() as pycache:
        if not args.source:
            ENV.pop("PYTHONDONTWRITEBYTECODE", None)
            ENV["PYTHONPYCACHEPREFIX"] = pycache
        times: dict[str, dict[str, list[float]]] = {name: {key: [] for key in ("first", "again", "floor", "cpu_first",
                                                                                 "cpu_again", "cpu_floor")}
                                                    for name in trees}
        for round in range(-1, args.rounds):  # round -1 warms the bytecode of both trees; it is not counted
            for name, tree in trees.items():
                ENV["PYTHONPATH"] = str(tree)
                with tempfile.TemporaryDirectory() as folder:
                    story = fresh_copy(args.story, Path(folder))
                    first, again, floor = cli(story), cli(story), cli_plan(story)
                if round < 0:
                    continue
                for key, value in zip(("first", "again", "floor", "cpu_first", "cpu_again", "cpu_floor"),
                                      (first, again, floor, *CPU[-3:]), strict=True):
                    times[name][key].append(value)
        for name, t in times.items():
            report(name, t["first"], t["again"], t["floor"], t["cpu_first"], t["cpu_again"], t["cpu_floor"])
    if not args.no_library:
        first, again = [], []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                story = fresh_copy(args.story, Path(folder))
                first.append(library(story))
                again.append(library(story))
        report("library", first, again, [], [], [], [])


def report(name: str, first: list[float], again: list[float], floor: list[float], cpu_first: list[float],
           cpu_again: list[float], cpu_floor: list[float]) -> None:
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
