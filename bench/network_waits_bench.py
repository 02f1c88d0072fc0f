"""Bounded network waits (issue 20, item 8): how long storyforge takes to refuse each kind of RAY_ADDRESS that is
not a usable Ray head node, measured two ways, side by side with the fastest refusal (nothing listens: the kernel
answers "connection refused" at once) as the baseline:

- `probe`: the check itself (parse, connect, HTTP/2 handshake), in this process;
- `cli`: `storyforge render --executor ray` as a real process, to its exit 1 (Python, storyforge and Ray imports
  included).

Every test server listens on 127.0.0.1 and stops with the benchmark. The goal: every refusal in under 2 s of the
check itself; a server that accepts and stays silent is bounded by the handshake wait (ray_cluster.HANDSHAKE_SECONDS).
Usage: python bench/network_waits_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fake_heads import server  # noqa: E402  (the tests' servers: one definition)

GOAL_S = 2.0
STORY = ("storyforge: 1\ntitle: Net\nrender: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5}\n"
         "scenes:\n  - id: one\n    shots:\n      - id: a\n        prompt: a fox\n        duration: 9f\n")


CASES = {  # name: (server kind, RAY_ADDRESS with {port}, extra environment)
    "nothing listens (baseline)": ("refused", "127.0.0.1:{port}", {}),
    "silent server": ("silent", "127.0.0.1:{port}", {}),
    "garbage": ("garbage", "127.0.0.1:{port}", {}),
    "HTTP server": ("http", "127.0.0.1:{port}", {}),
    "closes at once": ("close", "127.0.0.1:{port}", {}),
    "port 2**70": ("refused", f"127.0.0.1:{2**70}", {}),
    "junk address": ("refused", "head node:{port}", {}),
    "http:// address": ("refused", "http://127.0.0.1:{port}", {}),
    "bogus token": ("silent", "127.0.0.1:{port}", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not a token"}),
}


def probe_seconds(kind: str, address: str, env: dict[str, str]) -> float:
    from storyforge.executors.ray_cluster import ClusterError, check_token, probe

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with server(kind) as port:
            started = time.perf_counter()
            try:
                check_token()
                probe(address.format(port=port))
            except ClusterError:
                pass
            else:
                raise SystemExit(f"{address}: not refused")
            return time.perf_counter() - started
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cli_seconds(kind: str, address: str, env: dict[str, str], folder: Path) -> float:
    with server(kind) as port:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "storyforge", "render", "film.yaml", "--backend", "animatic",
                               "--executor", "ray"], capture_output=True, text=True, cwd=folder, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": address.format(port=port),
                                   **env})
        seconds = time.perf_counter() - started
    if done.returncode != 1 or "Traceback" in done.stderr:
        raise SystemExit(f"{address}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "film.yaml").write_text(STORY, encoding="utf-8")
        rows = []
        for name, (kind, address, env) in CASES.items():
            probes = [probe_seconds(kind, address, env) for _ in range(args.repeat)]
            clis = [cli_seconds(kind, address, env, folder) for _ in range(args.repeat)]
            rows.append((name, statistics.median(probes), statistics.median(clis)))
    base_probe, base_cli = rows[0][1], rows[0][2]
    print(f"{'case':<28} {'probe s':>8} {'cli s':>7} {'cli / baseline':>15}   (median of {args.repeat})")
    for name, probe, cli in rows:
        mark = "" if probe < GOAL_S else "  over the goal"
        print(f"{name:<28} {probe:>8.3f} {cli:>7.2f} {cli / base_cli:>15.2f}{mark}")
    print(f"baseline probe {base_probe:.4f}s; goal: every probe under {GOAL_S:g}s")


if __name__ == "__main__":
    main()
