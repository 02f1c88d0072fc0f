"""Benchmark: from a pick in the studio to "cut again" done, beside the same pick and re-cut from a terminal.

Usage: python bench/studio_pick_to_cut.py [--rounds 3]

On the README example (examples/stories/swan-lake.yaml) rendered with the animatic, in a temporary folder: the
studio (a real `storyforge studio` process) is asked for another take of reeds/strike (a shot nothing
continues, so a new pick needs only a cut), then, alternating each round, take 1 and take 2 are picked and cut
again (a) through the studio's API, as the page does it (POST /api/pick, POST /api/cut, wait for the task), and
(b) from a terminal (`storyforge pick`, then `storyforge render --backend animatic`). Prints the medians and
their ratio, and the page's weight (the page, its script and style, and the film's JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def call(base: str, token: str, path: str, body: object | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read())


def size(base: str, token: str, path: str) -> int:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return len(answer.read())


def wait(base: str, token: str, task: int) -> dict:
    while True:
        for entry in call(base, token, "/api/work")["tasks"]:
            if entry["id"] == task and entry["state"] in ("done", "failed"):
                if entry["state"] == "failed":
                    raise SystemExit(f"the studio's task failed: {entry['message']}")
                return entry
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        shutil.copy(ROOT / "examples/stories/swan-lake.yaml", folder / "swan-lake.yaml")
        shutil.copytree(ROOT / "examples/stories/refs", folder / "refs")
        os.environ["STORYFORGE_HOME"] = str(folder / "home")
        env["STORYFORGE_HOME"] = str(folder / "home")

        def cli(*words: str) -> None:
            subprocess.run([sys.executable, "-m", "storyforge", *words], cwd=folder, env=env, check=True,
                           capture_output=True, text=True, timeout=1200)

        started = time.perf_counter()
        cli("render", "swan-lake.yaml", "--backend", "animatic")
        print(f"first render (animatic): {time.perf_counter() - started:.1f}s")
        studio = subprocess.Popen([sys.executable, "-m", "storyforge", "studio", "swan-lake.yaml", "--port", "0",
                                   "--no-open"], cwd=folder, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            assert studio.stdout is not None
            line = next(line for line in studio.stdout if "http://" in line)
            threading.Thread(target=studio.stdout.read, daemon=True).start()
            url = next(word for word in line.split() if word.startswith("http://"))
            base, token = url.split("/?token=")
            weight = {name: size(base, token, path) for name, path in (
                ("page", "/"), ("studio.js", "/static/studio.js"), ("studio.css", "/static/studio.css"),
                ("film JSON", "/api/film"))}
            print("page weight: " + ", ".join(f"{k} {v:,} B" for k, v in weight.items())
                  + f"; total {sum(weight.values()):,} B (videos load on demand, by byte ranges)")
            started = time.perf_counter()
            task = call(base, token, "/api/take", {"shot": "reeds/strike"})["task"]
            wait(base, token, task)
            print(f"another take of reeds/strike, rendered and cut: {time.perf_counter() - started:.1f}s")
            studio_times, terminal_times = [], []
            take = 1  # what the film holds now; every step picks the other take, so every cut is a real one
            messages = []
            for _round in range(args.rounds):
                take = 3 - take
                started = time.perf_counter()
                call(base, token, "/api/pick", {"shot": "reeds/strike", "take": take})
                done = wait(base, token, call(base, token, "/api/cut", {})["task"])
                studio_times.append(time.perf_counter() - started)
                assert done["message"].startswith("0 rendered") and "cut in" in done["message"], done["message"]
                messages.append(done["message"])
                take = 3 - take
                started = time.perf_counter()
                cli("pick", "swan-lake.yaml", "reeds/strike", str(take))
                cli("render", "swan-lake.yaml", "--backend", "animatic")
                terminal_times.append(time.perf_counter() - started)
            print("the studio's cuts: " + "; ".join(messages))
            s, t = statistics.median(studio_times), statistics.median(terminal_times)
            print(f"pick -> cut again done: studio {s:.2f}s, terminal (pick + render) {t:.2f}s; "
                  f"studio / terminal = {s / t:.2f} (medians of {args.rounds})")
        finally:
            studio.terminate()
            studio.wait(timeout=30)


if __name__ == "__main__":
    main()
