"""The review page of a 20-shot film with 3 takes each (540p animatic): its weight, and the time `review` takes
to build it the first time (every poster decoded) and again (posters current).

The first build is timed --repeats times (every poster removed before each), beside its floor: opening each
take's clip and decoding its first frame into the same small JPEG, which no poster can beat (a clip is read from
its first keyframe). Goal: the first build of 60 posters in at most 1 s. --compare DIR renders and times another
checkout (e.g. the code before a change) in the same rounds, in its own folder, so before and after are measured
side by side; each checkout runs in its own process (PYTHONPATH), one build at a time, in turn.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


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


def worker(task: str, folder: Path) -> dict[str, object]:
    """One step, in the process of the checkout being measured: render, or one timed first build and floor."""
    from storyforge import api

    path = folder / "film.yaml"
    if task == "render":
        started = time.perf_counter()
        report = api.render(api.plan(path), backend="animatic")
        clips = sum(p.stat().st_size for p in (report.out / "takes").rglob("*.mp4"))
        return {"seconds": time.perf_counter() - started, "clip_bytes": clips}
    out = path.parent / "renders" / "film"
    for poster in (out / "review").glob("*.jpg"):
        poster.unlink()
    first = api.review(path)
    again = api.review(path)
    from PIL import Image  # noqa: F401 - imported before the floor's clock starts, as review has it

    from storyforge.clipfile import open_video

    started = time.perf_counter()
    floor = folder / "floor"
    floor.mkdir(exist_ok=True)
    for n, clip in enumerate(sorted((out / "takes").rglob("*.mp4"))):
        with open_video(clip) as container:
            frame = next(iter(container.decode(container.streams.video[0])))
            image = frame.to_image(width=320, height=max(2, round(320 * frame.height / frame.width)))
        image.save(floor / f"{n}.jpg", format="JPEG", quality=78, optimize=True, progressive=True)
    floor_seconds = time.perf_counter() - started
    posters = sorted((out / "review").glob("*.jpg"))
    return {"first": first.seconds, "posters": first.posters, "again": again.seconds, "floor": floor_seconds,
            "poster_bytes": sum(p.stat().st_size for p in posters), "page_bytes": (out / "review.html").stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=20, help="a multiple of 5")
    parser.add_argument("--takes", type=int, default=3)
    parser.add_argument("--resolution", default="540p")
    parser.add_argument("--repeats", type=int, default=5, help="first builds to time, per checkout")
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout's root, run side by side")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]))))
        return
    trees = {"this checkout": HERE.parent.parent}
    if args.compare:
        trees[str(args.compare)] = args.compare.resolve()
    with tempfile.TemporaryDirectory() as base:
        folders = {}
        for n, name in enumerate(trees):
            folders[name] = Path(base) / f"tree{n}"
            folders[name].mkdir()
            (folders[name] / "film.yaml").write_text(story(args.shots, args.takes, args.resolution), encoding="utf-8")

        def run(name: str, task: str) -> dict[str, object]:
            env = {**os.environ, "PYTHONPATH": str(trees[name])}
            done = subprocess.run([sys.executable, str(HERE), "--worker", task, str(folders[name])], env=env,
                                  capture_output=True, text=True, cwd=folders[name], check=True)
            return dict(json.loads(done.stdout.strip().splitlines()[-1]))

        rendered = {name: run(name, "render") for name in trees}
        results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name in trees:
                results[name].append(run(name, "build"))
        print(f"{args.shots} shots x {args.takes} takes at {args.resolution} (animatic), "
              f"medians of {args.repeats} first builds per checkout, in turn")
        for name, rows in results.items():
            first = statistics.median(float(r["first"]) for r in rows)  # type: ignore[arg-type]
            floor = statistics.median(float(r["floor"]) for r in rows)  # type: ignore[arg-type]
            again = statistics.median(float(r["again"]) for r in rows)  # type: ignore[arg-type]
            last = rows[-1]
            takes = rendered[name]
            clip_mb, render_s = int(str(takes["clip_bytes"])) / 1e6, float(str(takes["seconds"]))
            page_kb, posters_kb = int(str(last["page_bytes"])) / 1024, int(str(last["poster_bytes"])) / 1024
            print(f"{name}: first build ({last['posters']} posters) {first:.2f}s, floor (first frame of each take "
                  f"decoded into the same JPEG) {floor:.2f}s = {first / floor:.1f}x the floor; rebuild {again:.3f}s; "
                  f"takes {clip_mb:.1f} MB (rendered in {render_s:.0f}s), page {page_kb:.0f} kB + posters "
                  f"{posters_kb:.0f} kB")
        print("goal: first build of 60 posters <= 1 s")


if __name__ == "__main__":
    main()
