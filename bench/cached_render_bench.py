"""Benchmark: a render whose every job is cached, on the tiny skyreels-df model, beside the animatic's.

Usage: python bench/cached_render_bench.py [--rounds 5] [--compare DIR]

The three-shot tiny story of the tests (a chain and a crossfade) is rendered once with each backend, each into
its own output folder; then `storyforge render` runs again and again with nothing to render, the two backends in
turn (A B A B ...), so a busy machine slows both alike. Quoted: medians of CPU seconds (user + system of the
process and its children; waiting for a core does not inflate them) and of wall seconds, and the ratio taken
pair by pair. Goal: the cached skyreels-df render at most 1.5x the animatic's. It also says whether the cached
render imported torch (it should not: its keys are worked out without loading the backend).

--compare DIR runs another checkout's CLI (e.g. the code before a change) in the same rounds, on the same story
and caches, so before and after are measured side by side. The CLI runs from bytecode (see bench/plan_bench.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import TINY  # noqa: E402

PROBE = ("import runpy, sys; sys.argv = ['storyforge', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('storyforge', run_name='__main__')\n"
         "finally:\n    print('heavy modules:', sorted(m for m in ('torch', 'diffusers', 'transformers') "
         "if m in sys.modules), file=sys.stderr)")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout's root, run side by side")
    args = parser.parse_args()
    trees = {"this checkout": ROOT, **({str(args.compare): args.compare.resolve()} if args.compare else {})}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        story = base / "film.yaml"
        story.write_text(TINY, encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "STORYFORGE_HOME": str(base / "home"), "PYTHONPYCACHEPREFIX": str(base / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        def command(backend: str) -> list[str]:
            return [sys.executable, "-c", PROBE, "render", str(story), "--backend", backend,
                    "--out", str(base / f"out-{backend}")]

        def run(backend: str, tree: Path) -> tuple[float, float, str]:
            cpu, started = _children_cpu(), time.perf_counter()
            done = subprocess.run(command(backend), capture_output=True, text=True, cwd=base,
                                  env={**env, "PYTHONPATH": str(tree)})
            if done.returncode:
                raise SystemExit(f"{' '.join(command(backend))} failed:\n{done.stderr}")
            heavy = next(line for line in done.stderr.splitlines() if line.startswith("heavy modules:"))
            return _children_cpu() - cpu, time.perf_counter() - started, heavy

        for backend in ("skyreels-df", "animatic"):  # the first renders fill the caches; not counted
            print(f"first render, {backend}: {run(backend, ROOT)[1]:.1f}s")
        for tree in trees.values():  # warm each tree's bytecode once, not counted
            run("animatic", tree)
            run("skyreels-df", tree)
        times: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": [], "cpu_floor": [], "wall_floor": []}
                                                    for name in trees}
        heavy: dict[str, str] = {}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                cpu, wall, heavy[name] = run("skyreels-df", tree)
                floor_cpu, floor_wall, _ = run("animatic", tree)
                for key, value in (("cpu", cpu), ("wall", wall), ("cpu_floor", floor_cpu), ("wall_floor", floor_wall)):
                    times[name][key].append(value)
        print(f"\nno-op re-render of the tiny story (3 shots, every job cached), median of {args.rounds} pairs")
        print(f"{'':16}{'skyreels-df (tiny)':>22}{'animatic':>12}{'ratio':>8}   cached render imported")
        for name, t in times.items():
            for kind in ("cpu", "wall"):
                ratio = statistics.median(a / b for a, b in zip(t[kind], t[f"{kind}_floor"], strict=True))
                print(f"{name[:14]:14}{kind:>5}{statistics.median(t[kind]):>19.2f}s"
                      f"{statistics.median(t[f'{kind}_floor']):>11.2f}s{ratio:>7.2f}x"
                      + (f"   {heavy[name]}" if kind == "cpu" else ""))
        print("goal: the cached skyreels-df render <= 1.5x the animatic's")


if __name__ == "__main__":
    main()
