"""The director's choices in the lock besides picks: rejected takes, notes, extra takes and keyframe picks; kept by
every writer of the lock, read with bounds, and seen by the plan (so a terminal render makes the same takes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from storyforge import api
from storyforge.enhance import lock
from storyforge.errors import StoryError, StoryforgeError
from storyforge.plan.compiler import take_seed

ROOT = Path(__file__).resolve().parents[2]
STORY = """\
storyforge: 1
title: Choices
render: {resolution: 256x144, fps: 24, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a red fox
        duration: 17f
        render: {takes: 2}
      - id: b
        prompt: the fox runs
        duration: 8f
        transition: continue
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` in this process (tests/conftest.run_cli)."""
    return run_cli(*args, cwd=cwd)


def data(story: Path) -> dict:
    return json.loads(lock.lock_path(story).read_text(encoding="utf-8"))


def test_rejections_notes_and_picks_live_together_in_the_lock(write_story) -> None:
    story = write_story(STORY)
    assert lock.reject(story, "s/a", 2) is True
    assert lock.note(story, "s/a", 1, "  the light is wrong <b>here</b>  ") is True
    lock.pick(story, "s/a", 2)
    assert lock.note(story, "s/b", 1, "keep") is True
    assert data(story) | {"shots": {}} == {
        "storyforge_lock": 1, "story": "film.yaml", "shots": {}, "picks": {"s/a": 2}, "rejected": {"s/a": [2]},
        "notes": {"s/a": {"1": "the light is wrong <b>here</b>"}, "s/b": {"1": "keep"}}}
    api.enhance(story)  # rewriting the prompts keeps every choice
    assert data(story)["notes"]["s/b"] == {"1": "keep"} and data(story)["rejected"] == {"s/a": [2]}
    assert lock.reject(story, "s/a", 2, rejected=False) is True
    assert lock.note(story, "s/b", 1, "") is True  # an empty note removes it
    assert "rejected" not in data(story) and data(story)["notes"] == {"s/a": {"1": "the light is wrong <b>here</b>"}}
    assert lock.read_choices(story).notes == {"s/a": {1: "the light is wrong <b>here</b>"}}


def test_another_take_is_planned_with_its_own_seed_and_can_be_picked(write_story) -> None:
    story = write_story(STORY)
    before = api.plan(story)
    assert lock.add_take(story, "s/b") == 2  # a shot of one take gets a second
    assert lock.add_take(story, "s/a") == 3
    plan = api.plan(story)
    a, b = plan.jobs
    assert (a.takes, b.takes) == (3, 2) and data(story)["extra_takes"] == {"s/a": 1, "s/b": 1}
    assert a.take_seeds == tuple(take_seed(before.jobs[0].seed, n) for n in (1, 2, 3))
    assert a.take_keys[:2] == before.jobs[0].take_keys and len(set(a.take_keys)) == 3  # takes 1, 2 stay cached
    assert (a.key, b.key) == (before.jobs[0].key, before.jobs[1].key)  # the picks, so the cut, are unchanged
    assert lock.pick(story, "s/a", 3).take == 3
    assert api.plan(story).job("s/a").take == 3
    assert api.plan(story).job("s/b").key != b.key  # it continues the picked take


def test_choices_that_cannot_be_made_say_why_at_the_shot(write_story) -> None:
    story = write_story(STORY)
    with pytest.raises(StoryError) as error:
        lock.reject(story, "s/a", 9)
    assert str(error.value) == "film.yaml:7: s/a: has takes 1 to 2; there is no take 9"
    with pytest.raises(StoryError) as error:
        lock.note(story, "s/x", 1, "hi")
    assert str(error.value) == ("film.yaml: no shot 's/x' (write it as scene/shot); shots with several takes: s/a")
    with pytest.raises(StoryforgeError) as error:
        lock.note(story, "s/a", 1, "x" * 2001)
    assert str(error.value) == "a note holds at most 2000 characters; this one has 2001"
    with pytest.raises(StoryError) as error:
        lock.pick_keyframe(story, "s/a", 2)
    assert str(error.value) == ("film.yaml:7: s/a: has no keyframe (a generated start picture: `keyframes:` in the "
                                "story and references in the shot)")
    for _ in range(14):
        lock.add_take(story, "s/a")
    with pytest.raises(StoryError) as error:
        lock.add_take(story, "s/a")
    assert str(error.value) == ("film.yaml:7: s/a: has 16 takes, the most a shot may have; reject some and pick "
                                "among them")


def test_choices_that_are_not_well_formed_are_left_out(write_story) -> None:
    story = write_story(STORY)
    lock.lock_path(story).write_text(json.dumps({
        "storyforge_lock": 1, "story": "film.yaml", "shots": {},
        "rejected": {"s/a": ["x", 2, True, 99, "1"], "s/b": "all"}, "notes": {"s/a": {"1": 5, "2": "ok", "zz": "no"}},
        "extra_takes": {"s/a": 10**100, "s/b": -1}, "keyframe_picks": {"s/a": 2.5}}), encoding="utf-8")
    choices = lock.read_choices(story)
    assert (choices.rejected, choices.notes, choices.extra_takes, choices.keyframe_picks) == (
        {"s/a": (1, 2)}, {"s/a": {2: "ok"}}, {}, {})
    assert api.plan(story).job("s/a").takes == 2


def test_pick_names_a_take_or_a_keyframe(write_story) -> None:
    story = write_story(STORY)
    neither = cli("pick", "film.yaml", "s/a", cwd=story.parent)
    both = cli("pick", "film.yaml", "s/a", "2", "--keyframe", "1", cwd=story.parent)
    for result in (neither, both):
        assert result.returncode == 2
        assert "name a TAKE, or a keyframe candidate with --keyframe N (not both)" in result.stderr
    keyframe = cli("pick", "film.yaml", "s/a", "--keyframe", "2", cwd=story.parent)
    assert (keyframe.returncode, keyframe.stderr) == (1, "error: film.yaml:7: s/a: has no keyframe (a generated "
                                                          "start picture: `keyframes:` in the story and references "
                                                          "in the shot)\n")
