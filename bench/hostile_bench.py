"""Hostile-input benchmark: every class of hostile story file, timed through `storyforge validate`.

Each case runs as a real CLI process (what CI runs on a pull request), side by side with the README's example
story as the baseline. The goal: the slowest hostile case finishes in under 2 s, with exit 0 or 1 and no
traceback. Usage: python bench/hostile_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 2.0
HEAD = "storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n"
SHOT = "      - {id: a, prompt: p, duration: 2s}\n"
LARGEST = ("storyforge: 1\ntitle: T\nrender: {steps: 1000, ar_step: 1000, causal_block_size: 1, fps: 24, "
           "base_frames: 257, overlap_frames: 253}\nscenes:\n  - id: s\n    shots:\n")


def _png(width: int, height: int, rows: int | None = None, noise: bool = False) -> bytes:
    fill = random.Random(0).randbytes if noise else (lambda n: b"\x80" * n)
    raw = b"".join(b"\x00" + fill(width) for _ in range(height if rows is None else rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _text(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "film.yaml").write_text(text, encoding="utf-8")


def _prompt(prompt: str, shots: int = 1) -> Callable[[Path], None]:
    return _text(HEAD + "".join(f"      - {{id: a{i}, prompt: {json.dumps(prompt)}, duration: 1s}}\n"
                                for i in range(shots)))


def _image(data: bytes) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / "x.png").write_bytes(data)
        (folder / "film.yaml").write_text(HEAD + "      - {id: a, prompt: p, duration: 1s, image: x.png}\n",
                                          encoding="utf-8")
    return write


def _special(make: Callable[[Path], None], story: bool) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        if story:
            make(folder / "film.yaml")
        else:
            make(folder / "x.png")
            (folder / "film.yaml").write_text(HEAD + "      - {id: a, prompt: p, duration: 1s, image: x.png}\n",
                                              encoding="utf-8")
    return write


LAUGHS = "storyforge: 1\ntitle: T\na: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "scenes: []\n"
DOUBLING = ("{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
            "{{ ns.a|tojson|length }}")
EQUAL = ("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}"
         "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}")

CASES: dict[str, Callable[[Path], None]] = {
    "baseline: the README's example": lambda folder: (shutil.copy(ROOT / "examples/stories/swan-lake.yaml",
                                                                  folder / "film.yaml"),
                                                      shutil.copytree(ROOT / "examples/stories/refs", folder / "refs")),
    "yaml: billion laughs (10^9 values)": _text(LAUGHS),
    "yaml: alias inside itself": _text("storyforge: 1\ntitle: T\nscenes: &x [[[*x]]]\n"),
    "yaml: merge key inside itself": _text("storyforge: 1\ntitle: T\nx: &x {<<: *x}\nscenes: []\n"),
    "yaml: 100,000 nested brackets": _text("storyforge: 1\ntitle: T\nx: " + "[" * 100_000 + "]" * 100_000 + "\n"),
    "yaml: 80 nested mappings": _text("storyforge: 1\ntitle: T\nx:\n" + "".join(
        "  " * i + f"k{i}:\n" for i in range(1, 80)) + "scenes: []\n"),
    "yaml: 4,000-digit integer": _text("storyforge: 1\ntitle: T\nrender: {seed: " + "9" * 4000 + "}\nscenes: []\n"),
    "yaml: NaN and infinities": _text(HEAD.replace("scenes:", "render: {fps: .nan, steps: .inf}\nscenes:") + SHOT),
    "yaml: lone surrogate": _text('storyforge: 1\ntitle: "\\ud800"\nscenes: []\n'),
    "yaml: unclosed quote": _text("storyforge: 1\ntitle: 'T\nscenes: []\n" + "# filler\n" * 10_000),
    "numbers: true where a number goes": _text(HEAD + SHOT.replace("2s", "true")),
    "numbers: 10^300 s shot": _text(HEAD + SHOT.replace("2s", "1" + "0" * 300)),
    "numbers: 99999999999999999f shot": _text(HEAD + SHOT.replace("2s", "99999999999999999f")),
    "numbers: a 71997f shot (50 min), stride 1 latent": _text(LARGEST + "".join(
        f"      - {{id: a{i}, prompt: p, duration: 71997f}}\n" for i in range(1))),
    "numbers: 5 such shots (over 20,000 windows)": _text(LARGEST + "".join(
        f"      - {{id: a{i}, prompt: p, duration: 71997f}}\n" for i in range(5))),
    "size: 1,000 shots (the most allowed)": _prompt("a fox runs through the forest at dawn", 1000),
    "size: 10,000 shots in 500 KB": _text(HEAD + "".join(f"      - {{id: a{i}, prompt: p, duration: 1s}}\n"
                                                         for i in range(12_000))[: 495_000].rsplit("\n", 1)[0] + "\n"),
    "size: 3 MB story file": _text("# x\n" * 750_000),
    "file: story is a FIFO": _special(lambda p: os.mkfifo(p), story=True),
    "file: story links to /dev/zero": _special(lambda p: p.symlink_to("/dev/zero"), story=True),
    "file: image is a FIFO": _special(lambda p: os.mkfifo(p), story=False),
    "file: image links outside the root": _special(lambda p: p.symlink_to("/etc/hostname"), story=False),
    "template: list doubled 64 times, tojson": _prompt(DOUBLING),
    "template: == on two doubled lists": _prompt(EQUAL),
    "template: 10^8 x 'x'": _prompt("{{ 'x' * 100000000 }}"),
    "template: loops on 1,000 shots (film budget)": _prompt("{% for i in range(100000) %}{% endfor %}x", 1000),
    "image: 6000x6000, fully decoded (about the largest allowed)": _image(_png(6000, 6000)),
    "image: 7000x7000 header (bomb)": _image(_png(7000, 7000, rows=1)),
    "image: 200000x200000 header (bomb)": _image(_png(200_000, 200_000, rows=1)),
    "image: truncated in its pixel data": _image(_png(256, 256, noise=True)[:20_000]),
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(name: str, make: Callable[[Path], None]) -> tuple[float, float, int, str]:
    with tempfile.TemporaryDirectory() as folder:
        make(Path(folder))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("STORYFORGE_ALLOW_PATH", None)
        started, cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run([sys.executable, "-m", "storyforge", "validate", "film.yaml"], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120)
        seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if "Traceback" in done.stderr or done.returncode not in (0, 1):
        raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr}")
    first = (done.stderr or done.stdout).strip().splitlines()[0] if (done.stderr or done.stdout).strip() else ""
    return seconds, cpu, done.returncode, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the fastest counts (noise is added)")
    parser.add_argument("--write", type=Path, metavar="DIR",
                        help="only write each case into DIR/<number>/ (to time them with another tool) and list them")
    args = parser.parse_args()
    if args.write:
        for number, (name, make) in enumerate(CASES.items()):
            folder = args.write / str(number)
            folder.mkdir(parents=True, exist_ok=True)
            make(folder)
            print(f"{folder}\t{name}")
        return
    results = []
    for name, make in CASES.items():
        best = min((run(name, make) for _ in range(args.repeat)), key=lambda r: r[0])
        results.append((name, *best))
        print(f"{best[0]:6.2f}s wall {best[1]:5.2f}s cpu  exit {best[2]}  {name}: {best[3][:100]}", flush=True)
    baseline = results[0]
    slowest = max(results[1:], key=lambda r: r[1])
    print(f"\nbaseline (the example story): {baseline[1]:.2f}s wall, {baseline[2]:.2f}s cpu; slowest hostile case: "
          f"{slowest[1]:.2f}s wall ({slowest[1] / baseline[1]:.1f}x), {slowest[2]:.2f}s cpu "
          f"({slowest[2] / baseline[2]:.1f}x) -- {slowest[0]}")
    print(f"goal: every hostile case under {GOAL_S:.0f}s: {'met' if slowest[1] < GOAL_S else 'NOT met'} (wall time; "
          "on a busy machine compare the cpu seconds and the ratio to the baseline)")
    if slowest[1] >= GOAL_S:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
