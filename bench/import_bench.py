"""`storyforge import` benchmark: the Fountain samples and hostile scripts, each through the real command.

Each case runs as a CLI process, side by side with the smallest sample (Brick & Steel) as the baseline, and is
reported as seconds and as a ratio to it. The goals: the largest sample (Big Fish, 146 KB, 190 scenes) imports in
a second or two, and every hostile script ends (exit 1; exit 0 for the one that is odd but valid) in under 2 s.
Usage: python bench/import_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "screenplay" / "data"
GOAL_S = 2.0
BOMB = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">\n'
                  for i in range(10))
        + ']>\n<FinalDraft><Content><Paragraph Type="Action"><Text>&lol9;</Text></Paragraph></Content></FinalDraft>\n')


def hostile(folder: Path) -> dict[str, Path]:
    """Every class of hostile script, written into `folder`."""
    cases = {
        "deeply nested FDX (100,000 levels)": ("nested.fdx", b"<FinalDraft>" + b"<a>" * 100_000),
        "entity bomb (billion laughs)": ("bomb.fdx", BOMB.encode()),
        "external entity": ("external.fdx", b'<!DOCTYPE FinalDraft SYSTEM "file:///etc/passwd">\n<FinalDraft/>'),
        "binary (NUL bytes)": ("binary.fountain", os.urandom(900_000) + b"\x00"),
        "control characters": ("control.fountain", b"INT. A - DAY\n\n" + b"He walks.\n\n" * 80_000 + b"\x1b[2J\n"),
        "360,000 cues and speeches (0.9 MB)": ("many.fountain", b"A\nb\n\n" * 180_000),
        "unclosed notes, 0.9 MB (valid text: imports)": ("notes.fountain", (b"[[" * 9_000 + b" x\n") * 50),
        "unclosed boneyard at the end": ("boneyard.fountain", b"INT. A - DAY\n\nx.\n\n" * 50_000 + b"/*\n"),
        "one long line": ("line.fountain", b"x" * 990_000),
        "headings of 19,000 spaces (valid text: imports)": ("spaces.fountain", (b"INT. A" + b" " * 19_000
                                                                                 + b"B - DAY\n\nx.\n\n") * 50),
        "Final Draft in an unknown encoding": ("encoding.fdx", b'<?xml version="1.0" encoding="x-unknown"?>'
                                                               b"<FinalDraft/>"),
        "FDX of 36,000 paragraphs (1.9 MB)": ("wide.fdx", b"<FinalDraft><Content>"
                                               + b"<Paragraph Type='Action'><Text>x</Text></Paragraph>" * 36_000
                                               + b"</Content></FinalDraft>"),
    }
    paths = {}
    for label, (name, data) in cases.items():
        (folder / name).write_bytes(data)
        paths[label] = folder / name
    huge = folder / "huge.fountain"
    with huge.open("wb") as handle:
        handle.truncate(50_000_000)
    paths["huge (50 MB)"] = huge
    return paths


def timed(script: Path, repeat: int) -> tuple[float, int, str]:
    best, code, err = float("inf"), 0, ""
    for _ in range(repeat):
        out = script.with_suffix(".yaml")
        out.unlink(missing_ok=True)
        script.with_name(f"{script.stem}.import.json").unlink(missing_ok=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "storyforge", "import", script.name], capture_output=True,
                                text=True, cwd=script.parent, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        best = min(best, time.perf_counter() - started)
        code, err = result.returncode, (result.stderr.strip().splitlines() or [""])[-1]
    return best, code, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for name in ("Brick-and-Steel.fountain", "The-Last-Birthday-Card.fountain", "Big-Fish.fountain",
                     "Brick-and-Steel.fdx", "lighthouse.fdx"):
            shutil.copy(DATA / name, folder / name)
        baseline, code, _ = timed(folder / "Brick-and-Steel.fountain", args.repeat)
        assert code == 0
        print(f"{'case':42} {'exit':>4} {'seconds':>8} {'x baseline':>10}  last line")
        print(f"{'baseline: Brick & Steel (3 KB)':42} {code:>4} {baseline:8.3f} {1:10.2f}")
        for name in ("The-Last-Birthday-Card.fountain", "Big-Fish.fountain", "Brick-and-Steel.fdx", "lighthouse.fdx"):
            seconds, code, _ = timed(folder / name, args.repeat)
            size = (folder / name).stat().st_size // 1000
            print(f"{f'sample: {name} ({size} KB)':42} {code:>4} {seconds:8.3f} {seconds / baseline:10.2f}")
        worst = 0.0
        for label, path in hostile(folder).items():
            seconds, code, err = timed(path, args.repeat)
            worst = max(worst, seconds)
            print(f"{f'hostile: {label}':42} {code:>4} {seconds:8.3f} {seconds / baseline:10.2f}  {err[:90]}")
        print(f"slowest hostile script: {worst:.3f}s ({'within' if worst < GOAL_S else 'OVER'} the {GOAL_S:g}s goal)")


if __name__ == "__main__":
    main()
