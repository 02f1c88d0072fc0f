"""A keyframe that comes out blank (all one colour, or NaN: `keyframes.steps: 1` on the tiny model divides 0 by 0)
is refused at the shot's file:line with what to change (issue 20, item 8), and nothing of it is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from storyforge import api
from storyforge.errors import RenderError
from storyforge.keyframes import refuse_blank

STORY = """\
storyforge: 1
title: Keyframes
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
keyframes: {model: tiny, steps: STEPS, guidance: 1.0}
characters:
  swan: {description: a white swan, reference: refs/swan.png}
scenes:
  - id: s
    shots:
      - id: a
        prompt: "{{ characters.swan }} glides"
        duration: 17f
"""


def blank(what: str, steps: int = 1) -> str:
    return (f"film.yaml:10: s/a: its keyframe came out blank ({what}) from tiny at {steps} step"
            f"{'s' if steps != 1 else ''}; give `keyframes.steps` more steps (the keyframes at film.yaml:4), or "
            "another `keyframes.seed` or prompt for this shot")


@pytest.mark.parametrize(("picture", "what"), [
    (np.zeros((64, 64, 3), np.uint8), "one colour, rgb(0, 0, 0)"),
    (np.full((64, 64, 3), (12, 200, 7), np.uint8), "one colour, rgb(12, 200, 7)"),
    (np.full((64, 64, 3), np.nan, np.float32), "not a number"),
    (np.where(np.arange(64 * 64 * 3).reshape(64, 64, 3) % 2, np.nan, 0.5).astype(np.float32), "not a number"),
])
def test_a_blank_picture_is_refused_at_the_shot(write_story, picture: np.ndarray, what: str) -> None:
    job = api.plan(write_story(STORY.replace("STEPS", "3"))).jobs[0]
    with pytest.raises(RenderError) as caught:
        refuse_blank(job, job.keyframe, picture)
    assert str(caught.value) == blank(what, 3)


def test_a_picture_with_one_different_pixel_is_a_picture(write_story) -> None:
    job = api.plan(write_story(STORY.replace("STEPS", "3"))).jobs[0]
    picture = np.zeros((64, 64, 3), np.uint8)
    picture[63, 63, 2] = 1
    refuse_blank(job, job.keyframe, picture)


@pytest.mark.torch
@pytest.mark.slow
def test_one_step_on_the_tiny_model_is_refused_and_nothing_is_kept(write_story, story_dir: Path,
                                                                   tmp_path: Path) -> None:
    write_story(STORY.replace("STEPS", "1"))
    done = subprocess.run([sys.executable, "-m", "storyforge", "render", "film.yaml", "--keyframes-only"],
                          capture_output=True, text=True, cwd=story_dir, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "STORYFORGE_HOME": str(tmp_path / "home")})
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == f"error: {blank('not a number')}"
    assert list((story_dir / ".storyforge" / "cache").rglob("*.png")) == []
    assert not (story_dir / "renders" / "film" / "keyframes").exists()
