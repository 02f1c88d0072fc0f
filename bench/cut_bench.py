"""Benchmark: the cut with transitions against its floor, `ffmpeg -c copy` concat of the same clips, and where the
cut's time goes.

Usage: python bench/cut_bench.py [--rounds 5] [--compare DIR]

bench/stitch_bench.py's 12 clips of 5 s at 960x544 (three crossfades and one fade among hard cuts) are written
once; then, in turn, --rounds times: storyforge's cut with the transitions (verify="packets", as `render` runs it),
storyforge's cut with hard cuts only, and the floor. Quoted: medians of wall seconds and of CPU seconds (the
process's own plus its children's: ffmpeg), and the ratios to the floor taken round by round. Goal: the cut with
transitions within 3x of the floor. Each stage of the cut is timed too, in CPU seconds and in wall seconds (probing
the clips, decoding the frames the windows mix, mixing them, feeding them to the encoder, the encoder itself (the
ffmpeg child's CPU), muxing the film, checking it), so the rest of the time has a name.
--compare DIR runs another checkout's cut (e.g. the code before a change) in its own process, in the same rounds.
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
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve()


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + _children()


def _children() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def _clips(root: Path) -> tuple[list, list]:
    sys.path.insert(0, str(HERE.parent))
    from stitch_bench import CLIPS, FPS, SECONDS, TRANSITION, TRANSITIONS, synthetic

    from storyforge.clipfile import write_clip
    from storyforge.stitch import CutClip, sync_frames

    frames = SECONDS * FPS
    cut = [CutClip(f"scene/shot{i}", root / f"clip{i:02}.mp4", frames, TRANSITIONS.get(i, "cut"),
                   TRANSITION if i in TRANSITIONS else 0) for i in range(CLIPS)]
    if not all(c.path.exists() for c in cut):
        for clip, keys in zip(cut, sync_frames(cut), strict=True):
            write_clip(synthetic(int(clip.path.stem[4:]), frames), clip.path, fps=FPS, keyframes=keys)
    return cut, [CutClip(c.id, c.path, c.frames) for c in cut]


def _timed(owner: object, name: str, label: str, wall: dict[str, float], cpu: dict[str, float]) -> None:
    """Wrap owner.name (if this checkout has it) to add its wall and CPU seconds (this process's threads) to label."""
    original = getattr(owner, name, None)
    if original is None:
        return

    def timed(*args: object, **kwargs: object) -> object:
        started, used = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            wall[label] += time.perf_counter() - started
            cpu[label] += time.process_time() - used

    setattr(owner, name, timed)


def worker(root: Path, what: str) -> dict[str, object]:
    """One timed run in the checkout measured: the cut (with its stages) or the floor."""
    sys.path.insert(0, str(HERE.parent))
    from stitch_bench import FPS, raw_concat

    from storyforge import clipfile
    from storyforge import stitch as module

    cut, hard = _clips(root)
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    for name in ("_probe", "_render_windows", "_remux", "_verify", "_reference"):
        _timed(module, name, name.strip("_"), wall, cpu)
    # decoding the frames the windows mix: a window's frames one by one, or (before) all of them at once
    _timed(getattr(module, "_ClipFrames", None), "__getitem__", "decode", wall, cpu)
    _timed(module, "_decode_range", "decode", wall, cpu)
    _timed(getattr(module, "_Mixer", None), "__call__", "mix", wall, cpu)  # before it, mixing was in the windows
    _timed(clipfile.ClipWriter, "write", "feed encoder", wall, cpu)
    cpu_before, children_before, started = _cpu(), _children(), time.perf_counter()
    if what == "floor":
        raw_concat(hard, root / "floor.mp4")
    else:
        module.stitch(cut if what == "transitions" else hard, root / f"{what}.mp4", fps=FPS, work_dir=root / "work",
                      verify="packets")
    total = _cpu() - cpu_before
    if what != "floor":  # the window encoder is the cut's only child process (no soundtrack here)
        cpu["encoder (ffmpeg)"] = _children() - children_before
        # the windows' own work besides decoding, mixing and feeding the encoder (starting it, waiting for it)
        for part in ("decode", "mix", "feed encoder"):
            cpu["render_windows"] -= cpu.get(part, 0.0)
        cpu["other"] = total - sum(cpu.values())
    return {"wall": time.perf_counter() - started, "cpu": total, "stages": dict(wall), "cpu_stages": dict(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout's root, run side by side")
    parser.add_argument("--worker", nargs=2, metavar=("FOLDER", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), args.worker[1])))
        return
    trees = {"this checkout": HERE.parent.parent}
    if args.compare:
        trees[str(args.compare)] = args.compare.resolve()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)

        def run(tree: Path, what: str) -> dict[str, object]:
            done = subprocess.run([sys.executable, str(HERE), "--worker", str(root), what], capture_output=True,
                                  text=True, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
            return dict(json.loads(done.stdout.strip().splitlines()[-1]))

        run(HERE.parent.parent, "hard")  # writes the clips (not timed)
        results: dict[str, list[dict[str, object]]] = defaultdict(list)
        for _ in range(args.rounds):
            results["floor"].append(run(HERE.parent.parent, "floor"))
            for name, tree in trees.items():
                for what in ("transitions", "hard"):
                    results[f"{name}|{what}"].append(run(tree, what))
        floor = results["floor"]
        print(f"12 clips of 5 s at 960x544, medians of {args.rounds} rounds (in turn)")
        print(f"{'':44}{'wall':>8}{'CPU':>8}{'wall/floor':>12}{'CPU/floor':>11}")
        for key, rows in results.items():
            ratios = {kind: statistics.median(float(r[kind]) / float(f[kind]) for r, f in zip(rows, floor, strict=True))
                      for kind in ("wall", "cpu")}
            label = "ffmpeg concat -c copy, hard cuts (floor)" if key == "floor" else key.replace("|", ", ")
            print(f"{label[:44]:44}{statistics.median(float(r['wall']) for r in rows):>7.2f}s"
                  f"{statistics.median(float(r['cpu']) for r in rows):>7.2f}s{ratios['wall']:>11.2f}x"
                  f"{ratios['cpu']:>10.2f}x")
        print("goal: the cut with transitions within 3x of the floor")
        for title, field in (("CPU", "cpu_stages"), ("wall time", "stages")):
            print(f"\nwhere the cut's {title} goes (medians, s; decode, mix and feeding the encoder happen inside "
                  "render_windows" + (", listed apart" if field == "cpu_stages" else "") + ")")
            for key, rows in results.items():
                if key == "floor":
                    continue
                names = list(dict.fromkeys(name for r in rows for name in r[field]))  # type: ignore[union-attr]
                stages = {name: statistics.median(float(r[field].get(name, 0.0)) for r in rows)  # type: ignore[union-attr]
                          for name in names}
                print(f"  {key.replace('|', ', ')}: " + ", ".join(f"{name} {value:.2f}"
                                                                 for name, value in stages.items()))


if __name__ == "__main__":
    main()
