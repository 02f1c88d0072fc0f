"""Benchmark: a second render of a story naming a local model folder reads no weight file, however large.

Usage: python bench/model_folder_bench.py [--gigabytes 2] [--rounds 3]

Two copies of the tiny model's folder, one with an extra 2 GB weight file and one with a 2 KB one (diffusers
ignores files its components do not name, so both load as the tiny model). Each story is rendered once (its
clips cached, its folder's digests remembered), then its second render (everything cached: only the keys, and
so the folder's identity, are computed) is timed in a fresh process, alternating the two, `--rounds` times.
Prints the medians and their ratio. Goal: the 2 GB folder's second render at most 1.2x the 2 KB one's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORY = """\
storyforge: 1
title: Folder
render: {{model: {model}, resolution: 64x64, fps: 16, steps: 2, base_frames: 17, overlap_frames: 5}}
scenes:
  - id: s
    shots:
      - {{id: a, prompt: a red fox, duration: 17f}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        env["STORYFORGE_HOME"] = str(work / "home")
        subprocess.run([sys.executable, "-c", "from storyforge.backends.tiny import tiny_model_folder as t; t()"],
                       check=True, env=env)
        from storyforge.backends import tiny

        os.environ["STORYFORGE_HOME"] = env["STORYFORGE_HOME"]
        source = tiny.tiny_model_folder()
        stories = {}
        for name, size in (("large", int(args.gigabytes * 2**30)), ("small", 2048)):
            folder = work / name / "model"
            shutil.copytree(source, folder)
            with open(folder / "extra-weights.bin", "wb") as handle:  # a sparse-free file: its bytes are real
                block = os.urandom(1 << 20)
                for _ in range(size >> 20):
                    handle.write(block)
                handle.write(block[:size & ((1 << 20) - 1)])
            story = work / name / "film.yaml"
            story.write_text(STORY.format(model=str(folder)), encoding="utf-8")
            stories[name] = story
            render(story, env)  # clips cached, digests remembered
        times: dict[str, list[float]] = {"large": [], "small": []}
        for _ in range(args.rounds):
            for name in ("large", "small"):
                times[name].append(render(stories[name], env))
    large, small = statistics.median(times["large"]), statistics.median(times["small"])
    print(f"second render, median of {args.rounds}: {args.gigabytes:g} GB folder {large:.2f}s, 2 KB folder "
          f"{small:.2f}s, ratio {large / small:.2f} (goal <= 1.2)")


def render(story: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "storyforge", "render", story.name, "--backend", "skyreels-df"],
                   check=True, cwd=story.parent, env=env, capture_output=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
