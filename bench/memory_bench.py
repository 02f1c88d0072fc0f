"""Benchmark: peak host memory of rendering one shot, short against ten times as long, per backend.

Usage: python bench/memory_bench.py [--backend animatic|skyreels-df|both] [--short 4] [--long 40]

Each render runs in a fresh subprocess (one story of one shot, an empty cache) that reports its own peak
resident set (ru_maxrss) and the largest of its children's (ffmpeg encoding the clip; a child's count
starts at its fork, so it includes the parent's size then). Frames stream from the backend into the clip
writer, so the peak should not grow with the shot. Goal: the long shot peaks at
most 1.5x the short one. The animatic renders at 540p (960x544, 24 fps); skyreels-df runs the tiny model at
256x256 (24 fps, 1 step), a size where frames, not the model, dominate memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "animatic": "resolution: 960x544, fps: 24",
    "skyreels-df": "model: tiny, resolution: 256x256, fps: 24, steps: 1, base_frames: 97, overlap_frames: 17",
}
CHILD = textwrap.dedent("""\
    import json, resource, sys, time
    from storyforge import api
    story, backend = sys.argv[1], sys.argv[2]
    plan = api.plan(story)
    started = time.perf_counter()
    api.render(plan, backend=backend)
    seconds = time.perf_counter() - started
    self, children = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(json.dumps({"frames": plan.total_frames, "self_kb": self, "children_kb": children, "seconds": seconds}))
""")


def story(seconds: int, backend: str) -> str:
    return textwrap.dedent(f"""\
        storyforge: 1
        title: One long shot
        render: {{{SETTINGS[backend]}, seed: 7}}
        scenes:
          - id: s
            shots:
              - id: a
                prompt: a red fox runs along a frozen river under a pale winter sun
                camera: tracking shot
                duration: {seconds}s
        """)


def measure(seconds: int, backend: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "film.yaml"
        path.write_text(story(seconds, backend), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([sys.executable, "-c", CHILD, str(path), backend], capture_output=True, text=True,
                              cwd=folder, env=env, check=False)
        if done.returncode:
            raise SystemExit(f"{backend} {seconds}s failed:\n{done.stderr[-3000:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("animatic", "skyreels-df", "both"), default="both")
    parser.add_argument("--short", type=int, default=4, help="seconds")
    parser.add_argument("--long", type=int, default=40, help="seconds")
    args = parser.parse_args()
    backends = ("animatic", "skyreels-df") if args.backend == "both" else (args.backend,)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"peak resident memory of one render, {args.short}s shot against {args.long}s ({started})")
    for backend in backends:
        short, long = measure(args.short, backend), measure(args.long, backend)
        ratio = long["self_kb"] / short["self_kb"]
        print(f"{backend:12} {args.short:3}s ({short['frames']:5} frames): python {short['self_kb'] / 1024:7.0f} MB, "
              f"children {short['children_kb'] / 1024:5.0f} MB, {short['seconds']:6.1f}s")
        print(f"{'':12} {args.long:3}s ({long['frames']:5} frames): python {long['self_kb'] / 1024:7.0f} MB, "
              f"children {long['children_kb'] / 1024:5.0f} MB, {long['seconds']:6.1f}s")
        verdict = "ok" if ratio <= 1.5 else "OVER"
        print(f"{'':12} long / short peak = {ratio:.2f}x (goal <= 1.5x: {verdict}); "
              f"the whole {args.long}s shot as uint8 would be {_frames_mb(long['frames'], backend):.0f} MB")


def _frames_mb(frames: float, backend: str) -> float:
    width, height = (960, 544) if backend == "animatic" else (256, 256)
    return frames * width * height * 3 / 2**20


if __name__ == "__main__":
    main()
