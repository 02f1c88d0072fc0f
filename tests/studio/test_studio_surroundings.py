"""The studio's output folder is reached as a render reaches it: a link below the story's folder (renders/ or
renders/<story>/ pointing elsewhere) is refused when the studio starts, and its renders never write through one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT
from surroundings import STORY, TOTAL, frames, outside, render, snapshot

from storyforge.studio.work import Worker

REFUSAL = ("error: refusing to use {path}: it is a symbolic link, and storyforge follows no links and uses only its "
           "own regular files and folders in its output folder, cache and lock; move it away (or choose another "
           "folder) and run again")


def test_the_studio_refuses_to_start_on_a_render_folder_reached_through_a_link(write_story, story_dir: Path,
                                                                               tmp_path: Path) -> None:
    write_story(STORY)
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    shutil.move(story_dir / "renders", target / "moved")
    (story_dir / "renders").symlink_to(target / "moved", target_is_directory=True)
    before = snapshot(target)
    done = subprocess.run([sys.executable, "-m", "storyforge", "studio", "film.yaml", "--port", "0", "--no-open"],
                          capture_output=True, text=True, cwd=story_dir, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert (done.returncode, done.stderr.splitlines()) == (1, [REFUSAL.format(path=story_dir / "renders")])
    assert "http://" not in done.stdout and snapshot(target) == before


def test_a_studio_render_never_writes_through_a_link_that_appeared_after_it_started(write_story, story_dir: Path,
                                                                                    tmp_path: Path) -> None:
    write_story(STORY)
    target = outside(tmp_path)
    before = snapshot(target)
    (story_dir / "renders").symlink_to(target, target_is_directory=True)  # planted after the studio checked
    worker = Worker(story_dir / "film.yaml", story_dir / "renders" / "film", "animatic")
    task = worker.submit("render")
    for _ in range(1200):
        if task.state in ("done", "failed"):
            break
        time.sleep(0.1)
    assert (task.state, task.message) == ("failed", REFUSAL.format(path=story_dir / "renders")[len("error: "):])
    assert snapshot(target) == before
    (story_dir / "renders").unlink()
    task = worker.submit("render")
    for _ in range(1200):
        if task.state in ("done", "failed"):
            break
        time.sleep(0.1)
    assert task.state == "done", task.message
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL
