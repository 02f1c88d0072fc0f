"""Hostile surroundings for the tests of storyforge's own folders: a story, a folder outside to watch, CLI runs.

Every fault test checks the same things: the command exits 0 or 1 within its time limit and never prints a
traceback; no file outside the output folder and the cache is created, changed or deleted (an outside folder is
snapshotted before and after); no file storyforge did not write is removed; and after the fault is undone a
render gives the planned frame count (film.mp4 decoded). Commands run in this process (`run`), which is what
they test; the tests that kill or race real processes start them themselves.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import ROOT, run_cli, within

# Three shots on the animatic, one take each: a chain (a continue) and a start image.
FILM = """\
storyforge: 1
title: Surroundings
render: {resolution: 64x48, fps: 24, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - {id: a, prompt: a fox, duration: 9f}
      - {id: b, prompt: it runs, duration: 8f, transition: continue}
      - {id: c, prompt: it sleeps, duration: 9f, image: refs/swan.png}
"""
# The same film with two takes of the first shot: clips/, takes/, review/.
STORY = FILM.replace("{id: a, prompt: a fox, duration: 9f}", "{id: a, prompt: a fox, duration: 9f, render: {takes: 2}}")
TOTAL = 9 + 8 + 9
TIME_LIMIT = 120  # seconds for one command on a busy 2-core machine


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` in this process (conftest.run_cli), within TIME_LIMIT: what it prints and its exit code
    are the point, not the interpreter around it (tests/render/test_kill_resume.py kills real processes)."""
    with within(TIME_LIMIT):
        done = run_cli(*args, cwd=cwd, env=env)
    assert done.returncode in (0, 1), (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    return done


def render(cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("render", "film.yaml", "--backend", "animatic", *extra, cwd=cwd)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every entry under `folder`, links not followed: its mode and its bytes (a file) or target (a link)."""
    found: dict[str, tuple[int, bytes | str | None]] = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root) / name
            info = path.lstat()
            content: bytes | str | None = None
            if path.is_symlink():
                content = os.readlink(path)
            elif path.is_file():
                content = path.read_bytes()
            found[str(path.relative_to(folder))] = (info.st_mode, content)
    return found


def outside(tmp_path: Path) -> Path:
    """A folder beside the story's, full of things an attacker would aim at: a note, a picture, a clip."""
    folder = tmp_path / "outside"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("precious", encoding="utf-8")
    (folder / "clip.mp4").write_bytes(b"not storyforge's")
    (folder / "picture.png").write_bytes((ROOT / "examples" / "stories" / "refs" / "swan.png").read_bytes())
    (folder / "sub" / "deep.txt").write_text("deep", encoding="utf-8")
    return folder


def frames(film: Path) -> int:
    from storyforge.clipfile import count_frames

    return count_frames(film)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error: ")]
