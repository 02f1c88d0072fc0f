"""Numbers in a story are numbers, and bounded with the bound in the message: settings, durations, the windows a
film needs and its shots; the largest settings allowed still plan quickly."""

from __future__ import annotations

import pytest
from conftest import story_errors, within

from storyforge import api

SHOT = "      - id: a\n        prompt: a fox\n        duration: 2s\n"
HEAD = "storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n"


TRUE = "expected a number, got True (YAML reads true/false, yes/no and on/off as True/False)"
FALSE = "expected a number, got False (YAML reads true/false, yes/no and on/off as True/False)"


@pytest.mark.parametrize(("setting", "line", "where", "message"), [
    ("fps: true", 9, "s/a.render.fps", TRUE),
    ("steps: yes", 9, "s/a.render.steps", TRUE),
    ("guidance: false", 9, "s/a.render.guidance", FALSE),
    ("seed: true", 9, "s/a.render.seed", TRUE),
    ("base_frames: 1001", 9, "s/a.render.base_frames", "must be at most 257, got 1001"),
    ("resolution: 8192x8192", 9, "s/a.render.resolution",
     "resolution 8192x8192 is larger than 4096x4096 pixels; use 540p, 720p or WIDTHxHEIGHT up to 4096 a side"),
    ("resolution: 99999999999999999999x16", 9, "s/a.render.resolution",
     "resolution 99999999999999999999… is larger than 4096x4096; use 540p or 720p"),
    ("steps: 100000", 9, "s/a.render.steps", "must be at most 1000, got 100000"),
])
def test_numbers_are_numbers_and_bounded(write_story, setting: str, line: int, where: str, message: str) -> None:
    text = HEAD + SHOT + f"        render: {{{setting}}}\n"
    assert story_errors(write_story(text)) == [f"film.yaml:{line}: {where}: {message}"]


@pytest.mark.parametrize(("duration", "message"), [
    ("601s", "'601s' is longer than a shot may last: at most 600s (10 minutes); split it into shots"),
    ("1e300", "'1e300' is not a duration; write seconds like '4s' or '4.5s', or frames like '97f'"),
    ("100000000.5", "100000000.5s is longer than a shot may last: at most 600s (10 minutes); split it into shots"),
    ("72001f", "'72001f' is longer than a shot may last: at most 72000f (10 minutes at 120 fps); split it into shots"),
    ("99999999999999999999999f", "'99999999999999999999999f' is longer than a shot may last: at most 72000f "
                                 "(10 minutes at 120 fps); split it into shots"),
    ("false", FALSE),
])
def test_durations_are_bounded_with_the_bound_in_the_message(write_story, duration: str, message: str) -> None:
    text = HEAD + SHOT.replace("duration: 2s", f"duration: {duration}")
    assert story_errors(write_story(text)) == [f"film.yaml:8: s/a.duration: {message}"]


LARGEST = ("storyforge: 1\ntitle: T\nrender: {steps: 1000, ar_step: 1000, causal_block_size: 1, fps: 24, "
           "base_frames: 257, overlap_frames: 253}\nscenes:\n  - id: s\n    shots:\n")


def test_the_largest_settings_still_plan_in_seconds(write_story) -> None:
    text = LARGEST + "      - {id: a, prompt: p, duration: 71997f}\n"
    with within():
        plan = api.plan(write_story(text))
    assert [job.frames for job in plan.jobs] == [71_997]
    assert len(plan.jobs[0].segments) == 17_936


def test_a_film_needing_too_many_windows_is_one_error_at_the_shot(write_story) -> None:
    text = LARGEST + "".join(f"      - {{id: a{i}, prompt: p, duration: 71997f}}\n" for i in range(5))
    assert story_errors(write_story(text)) == [
        "film.yaml:8: s/a1: the film needs more than 20,000 generation windows by this shot (windows of 257 frames "
        "overlapping by 253); real films need far fewer: shorten the shots, or overlap the windows less"]


def test_too_many_shots_is_one_error_before_anything_is_built(write_story) -> None:
    text = "storyforge: 1\ntitle: T\nscenes:\n" + "".join(
        f"  - id: s{s}\n    shots:\n" + "".join(f"      - {{id: a{i}, prompt: p, duration: 1s}}\n" for i in range(700))
        for s in range(3))
    assert story_errors(write_story(text)) == [
        "film.yaml:1008: the film has more than 1,000 shots; split it into several story files"]
