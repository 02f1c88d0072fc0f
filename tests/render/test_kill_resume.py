"""A first cut killed (SIGKILL, SIGTERM: what CI timeouts send) at every stage: the next render finishes it.

Real `storyforge render` processes of the animatic, slowed per job, killed when the output folder shows the
stage; the next render must exit 0 with the planned frame count, leave nothing of the killed run behind, keep
every file it did not write, and change nothing outside the output folder and the cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT
from surroundings import STORY, TIME_LIMIT, TOTAL, error_lines, frames, outside, render, snapshot

from storyforge.backends.animatic import DELAY_VARIABLE
from storyforge.readback import MANIFEST

OUT = Path("renders") / "film"
USER = {"keep.txt": b"mine", ".stitch-notes/n.txt": b"notes", "takes/favourites/f.txt": b"fav"}


def _manifest(out: Path) -> dict:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


STAGES: dict[str, Callable[[Path, Path], bool]] = {
    "announced": lambda out, cache: bool(_manifest(out).get("pending")),
    "rendering": lambda out, cache: any(cache.glob("[0-9a-f][0-9a-f]/*/meta.json")),
    "placing": lambda out, cache: (out / "takes" / "s__a").is_dir(),
    "cutting": lambda out, cache: any(p.name.startswith((".stitch-", ".film.mp4.")) for p in out.iterdir()),
    "reviewing": lambda out, cache: (out / "review").is_dir(),
}


# `storyforge` with each clip's reading at the cut slowed by PAUSE seconds: a cut of three small clips otherwise
# takes a few milliseconds, which a busy machine's poll below can miss (the process then finishes unkilled)
PAUSE = 0.3
SLOW_CUT = ("import sys, time\n"
            "from storyforge import stitch\n"
            "probe = stitch._probe\n"
            "def slowed(*args, **kwargs):\n"
            f"    time.sleep({PAUSE})\n"
            "    return probe(*args, **kwargs)\n"
            "stitch._probe = slowed\n"
            "sys.argv[0] = 'storyforge'\n"
            "from storyforge.cli import main\n"
            "main()\n")


def kill_at(story_dir: Path, stage: str, sig: signal.Signals, delay: str = "0.4") -> str | None:
    """Start a render, kill it with `sig` as soon as `stage` shows; the killed run's nonce (None if it finished)."""
    out, cache = story_dir / OUT, story_dir / ".storyforge" / "cache"
    process = subprocess.Popen([sys.executable, "-c", SLOW_CUT, "render", "film.yaml", "--backend", "animatic"],
                               cwd=story_dir, env={**os.environ, "PYTHONPATH": str(ROOT), DELAY_VARIABLE: delay},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIME_LIMIT
    nonce = None
    try:
        while process.poll() is None and time.monotonic() < deadline:
            nonce = _manifest(out).get("run") or nonce
            if out.is_dir() and STAGES[stage](out, cache):
                process.send_signal(sig)
                break
            time.sleep(0.005)
    finally:
        _, stderr = process.communicate(timeout=TIME_LIMIT)
    assert "Traceback" not in stderr, stderr
    assert process.returncode == -sig, (stage, process.returncode, stderr[-2000:])  # killed there, not finished
    return nonce


def _leftovers_of(out: Path, nonce: str) -> list[str]:
    return [str(path.relative_to(out)) for path in out.rglob("*") if nonce in path.name]


@pytest.mark.parametrize(("stage", "sig"), [
    ("announced", signal.SIGKILL), ("rendering", signal.SIGKILL), ("placing", signal.SIGTERM),
    ("cutting", signal.SIGKILL), ("cutting", signal.SIGTERM), ("reviewing", signal.SIGKILL),
])
def test_a_killed_first_cut_is_finished_by_the_next_render(write_story, story_dir: Path, tmp_path: Path,
                                                           stage: str, sig: signal.Signals) -> None:
    write_story(STORY)
    out = story_dir / OUT
    for name, data in USER.items():  # the folder already holds the user's files
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    target = outside(tmp_path)
    before = snapshot(target)
    nonce = kill_at(story_dir, stage, sig)
    done = render(story_dir)
    assert done.returncode == 0, error_lines(done)
    assert frames(out / "film.mp4") == TOTAL
    assert all((out / name).read_bytes() == data for name, data in USER.items())
    if nonce is not None:
        assert _leftovers_of(out, nonce) == []
    assert "pending" not in _manifest(out)
    assert snapshot(target) == before


def test_several_kills_in_a_row_then_a_render_gives_the_film(write_story, story_dir: Path, tmp_path: Path) -> None:
    write_story(STORY)
    target = outside(tmp_path)
    before = snapshot(target)
    nonces = [kill_at(story_dir, stage, sig, delay="0.2") for stage, sig in
              [("rendering", signal.SIGTERM), ("announced", signal.SIGKILL), ("cutting", signal.SIGKILL)]]
    assert render(story_dir).returncode == 0
    out = story_dir / OUT
    assert frames(out / "film.mp4") == TOTAL
    assert [name for nonce in nonces if nonce for name in _leftovers_of(out, nonce)] == []
    assert snapshot(target) == before


def test_a_deleted_manifest_and_a_new_shot_still_render(write_story, story_dir: Path) -> None:
    write_story(STORY)
    out = story_dir / OUT
    assert render(story_dir).returncode == 0
    (out / MANIFEST).unlink()  # run.json still says what the last render wrote
    write_story(STORY + "      - {id: d, prompt: it wakes, duration: 9f, render: {takes: 2}}\n")
    done = render(story_dir)
    assert done.returncode == 0, error_lines(done)
    assert frames(out / "film.mp4") == TOTAL + 9
    assert (out / "takes" / "s__d" / "take2.mp4").is_file()
