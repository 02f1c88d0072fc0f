"""The review page of a 20-shot film with 3 takes each (540p animatic): its weight, and the time `review` takes
to build it the first time (every poster decoded) and again (posters current)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def story(shots: int, takes: int, resolution: str) -> str:
    lines = ["storyforge: 1", "title: Review bench", f"render: {{resolution: {resolution}, takes: {takes}}}",
             "scenes:"]
    for scene in range(shots // 5):
        lines += [f"  - id: scene{scene}", "    shots:"]
        for shot in range(5):
            lines += [f"      - id: shot{shot}", f"        prompt: shot {shot} of scene {scene}, a heron at dawn",
                      "        duration: 4s", "        camera: slow push in"]
            if shot == 2:
                lines += ["        transition: continue"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=20, help="a multiple of 5")
    parser.add_argument("--takes", type=int, default=3)
    parser.add_argument("--resolution", default="540p")
    parser.add_argument("--repeats", type=int, default=5, help="rebuilds to time")
    args = parser.parse_args()
    from storyforge import api

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "film.yaml"
        path.write_text(story(args.shots, args.takes, args.resolution), encoding="utf-8")
        started = time.perf_counter()
        report = api.render(api.plan(path), backend="animatic")
        rendered = time.perf_counter() - started
        out = report.out
        for poster in (out / "review").glob("*.jpg"):
            poster.unlink()
        first = api.review(path)
        again = [api.review(path).seconds for _ in range(args.repeats)]
        started = time.perf_counter()
        command = subprocess.run([sys.executable, "-m", "storyforge", "review", str(path), "--no-open"],
                                 capture_output=True, text=True, check=True)
        cli = time.perf_counter() - started
        posters = sorted((out / "review").glob("*.jpg"))
        sizes = [p.stat().st_size for p in posters]
        page = (out / "review.html").stat().st_size
        clips = sum(p.stat().st_size for p in (out / "takes").rglob("*.mp4"))
        print(f"{args.shots} shots x {args.takes} takes at {args.resolution}: rendered (animatic) in {rendered:.1f}s")
        print(f"page weight: review.html {page / 1024:.1f} kB + {len(posters)} posters {sum(sizes) / 1024:.1f} kB "
              f"(median {statistics.median(sizes) / 1024:.1f} kB) = {(page + sum(sizes)) / 1024:.1f} kB; "
              f"the takes it plays on hover: {clips / 1e6:.1f} MB, loaded only when hovered")
        print(f"review, first build (decode {first.posters} posters): {first.seconds:.2f}s; rebuild: "
              f"{min(again):.3f}s (best of {len(again)}); `storyforge review` command end to end: {cli:.2f}s")
        print(command.stdout.strip())


if __name__ == "__main__":
    main()
