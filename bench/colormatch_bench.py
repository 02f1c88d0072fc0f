"""Benchmark: colour matching against the H.264 encode of the same frames (its floor: every clip is encoded), and
the seam numbers it reaches, per checkout, side by side.

Usage: python bench/colormatch_bench.py [--repeats 5] [--compare DIR]

The frames: bench/seam_bench.py's 540p moving picture with grain, a continued shot of 97 frames with a window seam
at 48 (two maps). Timed in turn, --repeats times each: matching them (storyforge.colormatch.match_job) and
encoding them (storyforge.clipfile.write_clip, ffmpeg's libx264). CPU seconds are the process's own (every
thread) plus its children's (ffmpeg), which a busy machine does not inflate the way it does wall seconds; both
are quoted, as seconds per minute of video, medians. Goal: matching at or below the encode. A bridge's arrival
(storyforge.colormatch.Arrival: its last window eased into the next shot, a map per frame) over the same frames is
timed beside them too.
The seam faults of seam_bench.py part 1 are measured after matching too: the ΔE figures must stay within 0.05
of the code before (--compare DIR: another checkout, e.g. before a change, run in its own process, in turn).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
FPS = 24


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def worker(repeats: int) -> dict[str, object]:
    """In the checkout measured: seam numbers after matching, and the timings."""
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE.parent.parent / "tests"))
    from seam_bench import SEAM, picture
    from seamclips import drift, moving_lab, step, to_frames

    from storyforge import colormatch, seams
    from storyforge.clipfile import write_clip

    figures: dict[str, float] = {}
    clean = moving_lab(60)
    for name, lightness, hue in (("brightness +6 L", 6, 0), ("brightness -10 L", -10, 0), ("hue turn 25 deg", 0, 25),
                                 ("+3 L and hue 15 deg", 3, 15)):
        matched = colormatch.match_job(to_frames(step(clean, SEAM, lightness=lightness, hue_degrees=hue)), [SEAM])
        figures[name] = seams.measure(matched[:SEAM], matched[SEAM:])["color_shift"]
    starts = [0, 20, 40, 60, 80]
    for lightness, yellow in ((2.5, 2.0), (-1.5, 3.0)):
        matched = colormatch.match_job(to_frames(drift(moving_lab(100), starts, lightness=lightness, yellow=yellow)),
                                       starts)
        figures[f"chain drift {lightness:+} L {yellow:+} b"] = seams.chain_drift(seams.window_colours(matched, starts))
    frames = picture(17 + 97)
    previous, shot = frames[:17], frames[17:]
    times: dict[str, list[float]] = {f"{name}_{clock}": [] for name in ("match", "encode", "arrive")
                                     for clock in ("cpu", "wall")}

    def arrive() -> None:  # a bridge's last window easing into the next shot: a map per frame
        arrival = colormatch.Arrival(0, len(shot), previous)
        arrival.feed(shot)
        arrival.finish()

    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeats):  # in turn, so a busy machine slows all alike
            for name, work in (("match", lambda: colormatch.match_job(shot, [0, 48], reference=previous)),
                               ("encode", lambda: write_clip(shot, Path(folder) / "clip.mp4", fps=FPS, keyframes=[0])),
                               ("arrive", arrive)):
                cpu, wall = _cpu(), time.perf_counter()
                work()
                times[f"{name}_wall"].append(time.perf_counter() - wall)
                times[f"{name}_cpu"].append(_cpu() - cpu)
    return {"figures": figures, "times": times, "frames": len(shot)}


def _table(results: dict[str, dict], what: str, per_minute: float) -> None:
    """One row per checkout: `what` (match, arrive) against the encode, CPU and wall, seconds per minute of video."""
    print(f"{'':24}{what + ' CPU':>11}{'encode CPU':>12}{'ratio':>7}"
          f"{what + ' wall':>12}{'encode wall':>13}{'ratio':>7}")
    for name, result in results.items():
        t = {key: statistics.median(values) for key, values in result["times"].items()}
        print(f"{name[:24]:24}{t[what + '_cpu'] * per_minute:>10.1f}s{t['encode_cpu'] * per_minute:>11.1f}s"
              f"{t[what + '_cpu'] / t['encode_cpu']:>6.2f}x{t[what + '_wall'] * per_minute:>11.1f}s"
              f"{t['encode_wall'] * per_minute:>12.1f}s{t[what + '_wall'] / t['encode_wall']:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout's root, run side by side")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.repeats)))
        return
    trees = {"this checkout": HERE.parent.parent}
    if args.compare:
        trees[str(args.compare)] = args.compare.resolve()
    results = {}
    for name, tree in trees.items():
        done = subprocess.run([sys.executable, str(HERE), "--worker", "--repeats", str(args.repeats)],
                              env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    per_minute = 60 * FPS / results["this checkout"]["frames"]
    print(f"540p, 97 frames with 2 seams; seconds per minute of video at {FPS} fps, medians of {args.repeats}")
    _table(results, "match", per_minute)
    print("goal: matching at or below the encode\n")
    print("a bridge's arrival over the same frames (its last window, a map per frame), against the same encode")
    _table(results, "arrive", per_minute)
    print("\nΔE after matching (seam_bench.py part 1)")
    names = list(results)
    print(f"{'':32}" + "".join(f"{n[:16]:>18}" for n in names) + ("   difference" if len(names) > 1 else ""))
    for figure in results[names[0]]["figures"]:
        values = [results[n]["figures"][figure] for n in names]
        print(f"{figure:32}" + "".join(f"{v:>18.3f}" for v in values)
              + (f"{values[0] - values[1]:>+13.3f}" if len(values) > 1 else ""))
    print("goal: within 0.05 of the code before")


if __name__ == "__main__":
    main()
