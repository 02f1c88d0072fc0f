"""The same story named twice in one `storyforge render` (issue 20, item 5) is rendered once, and says so,
instead of waiting forever on its own output folder's lock: `..`, a symbolic link, a hard link, a folder
holding it, the same path twice; and through the API, the same plan twice is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from storyforge import api
from storyforge.clipfile import read_frames
from storyforge.errors import StoryforgeError

FOX = """\
storyforge: 1
title: Fox
render: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up
        duration: 9f
"""


def cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # a bound on the whole command: a render waiting on its own lock fails the test instead of hanging it
    return subprocess.run([sys.executable, "-m", "storyforge", *arguments], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


@pytest.mark.parametrize("again", ["dotdot", "symlink", "hardlink", "folder", "same"])
def test_a_story_named_twice_is_rendered_once_and_said(story_dir: Path, again: str) -> None:
    (story_dir / "sub").mkdir()
    (story_dir / "film.yaml").write_text(FOX)
    other = {"dotdot": "sub/../film.yaml", "symlink": "link.yaml", "hardlink": "hard.yaml", "folder": ".",
             "same": "film.yaml"}[again]
    if again == "symlink":
        (story_dir / "link.yaml").symlink_to("film.yaml")
    if again == "hardlink":
        os.link(story_dir / "film.yaml", story_dir / "hard.yaml")
    done = cli("render", "film.yaml", other, "--backend", "animatic", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    if again in ("same", "folder"):  # the same path twice (a folder yields film.yaml itself): nothing to say
        assert notes == []
    else:
        assert notes == [f"note: {other} is film.yaml again; it is rendered once"]
    assert done.stdout.startswith(f"✓ {story_dir / 'renders' / 'film' / 'film.mp4'} — 9 frames")
    assert read_frames(story_dir / "renders" / "film" / "film.mp4").shape[0] == api.plan("film.yaml").total_frames
    assert sorted(p.name for p in (story_dir / "renders").iterdir()) == ["film"]  # no second folder


def test_the_api_refuses_one_plan_twice_at_once(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(FOX)
    plan = api.plan(story_dir / "film.yaml")
    with pytest.raises(StoryforgeError) as caught:
        api.render_films([plan, api.plan(story_dir / "film.yaml")], backend="animatic")
    assert str(caught.value) == "film.yaml is given twice; give each story once"
    assert not (story_dir / "renders").exists()
