"""Output names are injective (issue 20, item 5): no two shots share `clips/<scene>__<shot>.mp4`, their takes or
their keyframe; ids that would are refused at validate, naming both lines and what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from storyforge import api
from storyforge.errors import StoryError

HOW = ("rename one of them or its scene so that scene and shot ids joined by '__' differ (ids without '__' never "
       "collide)")


def story(*scenes: tuple[str, list[str]]) -> str:
    lines = ["storyforge: 1", "title: Names", "scenes:"]
    for scene, shots in scenes:
        lines += [f"  - id: {scene}", "    shots:"]
        for shot in shots:
            lines += [f"      - id: {shot}", "        prompt: a fox", "        duration: 1s"]
    return "\n".join(lines) + "\n"


def shared(first: str, first_line: int, second: str) -> str:
    stem = second.replace("/", "__")
    return (f"shot '{second}' and shot '{first}' (film.yaml:{first_line}) would share the output name '{stem}' "
            f"(clips/{stem}.mp4, takes/{stem}/, keyframes/{stem}.png); {HOW}")


@pytest.mark.parametrize(("scenes", "expected"), [
    ((("x", ["y__z"]), ("x__y", ["z"])), [(11, "x__y/z", shared("x/y__z", 6, "x__y/z"))]),
    ((("x__y", ["z"]), ("x", ["y__z"])), [(11, "x/y__z", shared("x__y/z", 6, "x/y__z"))]),
    ((("a", ["b__c__d"]), ("a__b", ["c__d"]), ("a__b__c", ["d"])),  # three ways to one name: each later one said
     [(11, "a__b/c__d", shared("a/b__c__d", 6, "a__b/c__d")), (16, "a__b__c/d", shared("a/b__c__d", 6, "a__b__c/d"))]),
    ((("a", ["b", "b__c"]), ("a__b", ["c"])), [(14, "a__b/c", shared("a/b__c", 9, "a__b/c"))]),
])
def test_ids_that_join_into_one_output_name_are_refused_with_both_lines(write_story, scenes, expected) -> None:
    path = write_story(story(*scenes))
    with pytest.raises(StoryError) as caught:
        api.validate(path)
    assert [(p.line, p.where, p.message) for p in caught.value.problems] == expected


def test_ids_with_double_underscores_that_do_not_collide_are_fine(write_story) -> None:
    # x__y, x__y__z, x___y, x____y
    path = write_story(story(("x", ["y"]), ("x__y", ["z"]), ("x_", ["y"]), ("x__", ["y"])))
    api.validate(path)
    stems = [job.id.replace("/", "__") for job in api.plan(path).jobs]
    assert len(set(stems)) == len(stems) == 4


def test_validate_says_it_on_the_command_line(write_story, story_dir: Path) -> None:
    write_story(story(("x", ["y__z"]), ("x__y", ["z"])))
    done = subprocess.run([sys.executable, "-m", "storyforge", "validate", "film.yaml"], capture_output=True,
                          text=True, cwd=story_dir, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 1
    assert done.stderr == f"error: film.yaml:11: x__y/z: {shared('x/y__z', 6, 'x__y/z')}\n"
