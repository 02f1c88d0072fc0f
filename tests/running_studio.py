"""A real `storyforge studio` process for the studio's tests: started on a free port, stopped by its own id."""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Session:
    """A running studio: its printed address, and what it wrote."""

    url: str
    process: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.url).query)["token"][0]


def _drain(stream, lines: list[str], found: queue.Queue[str] | None) -> None:
    for line in stream:
        lines.append(line)
        if found is not None and "http://" in line:
            found.put(line)
            found = None


@contextlib.contextmanager
def running_studio(story: Path, *args: str, wait: float = 180) -> Iterator[Session]:
    """`storyforge studio STORY --port 0 --no-open ARGS` in its own process, until the block ends."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "storyforge", "studio", story.name, "--port", "0", "--no-open",
                                *args], cwd=story.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    found: queue.Queue[str] = queue.Queue()
    out: list[str] = []
    err: list[str] = []
    threading.Thread(target=_drain, args=(process.stdout, out, found), daemon=True).start()
    threading.Thread(target=_drain, args=(process.stderr, err, None), daemon=True).start()
    try:
        try:
            line = found.get(timeout=wait)
        except queue.Empty:
            raise AssertionError(f"the studio printed no address in {wait}s; stderr: {''.join(err)}") from None
        url = next(word for word in line.split() if word.startswith("http://"))
        yield Session(url, process, out, err)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
