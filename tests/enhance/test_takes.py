"""Takes: several renders of a shot, each with its own seed and key; `storyforge pick` chooses one in the lock."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from storyforge import api
from storyforge.enhance import lock
from storyforge.errors import StoryError

ROOT = Path(__file__).resolve().parents[2]
# Three shots on the tiny model: s/a has three takes, s/b continues it (one take), s/c has two.
STORY = """\
storyforge: 1
title: Takes
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    render: {takes: 3}
    shots:
      - id: a
        prompt: a red fox
        duration: 17f
      - id: b
        prompt: the fox runs
        duration: 8f
        transition: continue
        render: {takes: 1}
      - id: c
        prompt: the fox sleeps
        duration: 13f
        transition: {type: crossfade, duration: 3f}
        render: {takes: 2}
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` in this process (tests/conftest.run_cli)."""
    return run_cli(*args, cwd=cwd)


def test_takes_cascade_and_each_take_has_its_own_seed_and_key(write_story) -> None:
    plan = api.plan(write_story(STORY))
    a, b, c = plan.jobs
    assert [(job.takes, job.take) for job in plan.jobs] == [(3, 1), (1, 1), (2, 1)]
    assert len(set(a.take_seeds)) == 3 and len(set(a.take_keys)) == 3
    assert (a.seed, a.key) == (a.take_seeds[0], a.take_keys[0])
    assert [t.seed for t in a.all_takes] == list(a.take_seeds)
    # take 1 is the shot as it renders without takes: its seed and key (so its cache entry) do not change
    single = api.plan(write_story(STORY.replace("render: {takes: 3}", "render: {takes: 1}")))
    assert (single.jobs[0].seed, single.jobs[0].key) == (a.seed, a.key)
    assert single.jobs[1].key == b.key
    assert plan.transformer_calls == 3 * a.transformer_calls + b.transformer_calls + 2 * c.transformer_calls


def test_the_plan_json_shows_takes_only_where_there_are_several(write_story) -> None:
    data = json.loads(api.plan(write_story(STORY)).dumps())
    assert [(job.get("takes"), job.get("take")) for job in data["jobs"]] == [(3, 1), (None, None), (2, 1)]


def test_pick_writes_the_lock_and_the_plan_uses_it(write_story) -> None:
    story = write_story(STORY)
    before = api.plan(story)
    report = api.pick(story, "s/a", 2)
    assert (report.take, report.previous, report.changed) == (2, 1, True)
    assert lock.lock_path(story).read_text("utf-8") == (
        '{\n  "picks": {\n    "s/a": 2\n  },\n  "shots": {},\n  "story": "film.yaml",\n  "storyforge_lock": 1\n}\n')
    after = api.plan(story)
    a, b, c = after.jobs
    assert (a.take, a.seed, a.key) == (2, a.take_seeds[1], a.take_keys[1])
    assert b.key != before.jobs[1].key  # it continues the picked take
    assert c.key == before.jobs[2].key and c.take_keys == before.jobs[2].take_keys  # nothing else moves
    assert after.warnings == ()
    assert api.pick(story, "s/a", 2).changed is False  # stable: the same pick writes the same bytes


def test_enhance_keeps_the_picks_and_pick_keeps_the_prompts(write_story) -> None:
    story = write_story(STORY)
    api.pick(story, "s/c", 2)
    api.enhance(story)
    data = json.loads(lock.lock_path(story).read_text("utf-8"))
    assert data["picks"] == {"s/c": 2} and sorted(data["shots"]) == ["s/a", "s/b", "s/c"]
    api.pick(story, "s/a", 3)
    data = json.loads(lock.lock_path(story).read_text("utf-8"))
    assert data["picks"] == {"s/a": 3, "s/c": 2} and sorted(data["shots"]) == ["s/a", "s/b", "s/c"]
    assert [job.take for job in api.plan(story).jobs] == [3, 1, 2]


@pytest.mark.parametrize(("shot", "take", "message"), [
    ("s/a", 4, "error: film.yaml:8: s/a: has takes 1 to 3; there is no take 4\n"),
    ("s/a", 0, "error: film.yaml:8: s/a: has takes 1 to 3; there is no take 0\n"),
    ("s/a", -1, "error: film.yaml:8: s/a: has takes 1 to 3; there is no take -1\n"),
    ("s/b", 2, "error: film.yaml:11: s/b: has one take (takes: 1), so there is nothing to pick; set `takes:` in "
               "its `render:` (or its scene's or the film's) to render several\n"),
    ("s/x", 1, "error: film.yaml: no shot 's/x' (write it as scene/shot); shots with several takes: s/a, s/c\n"),
    ("a", 1, "error: film.yaml: no shot 'a' (write it as scene/shot); shots with several takes: s/a, s/c\n"),
])
def test_a_bad_pick_is_one_clear_error(write_story, shot: str, take: int, message: str) -> None:
    story = write_story(STORY)
    result = cli("pick", "film.yaml", shot, str(take), cwd=story.parent)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message)
    assert not lock.lock_path(story).exists()


def test_pick_on_a_story_without_takes_says_how_to_get_them(write_story) -> None:
    story = write_story(STORY.replace("    render: {takes: 3}\n", "").replace("render: {takes: 2}", "seed: 3"))
    with pytest.raises(StoryError) as caught:
        api.pick(story, "s/x", 1)
    assert str(caught.value) == ("film.yaml: no shot 's/x' (write it as scene/shot); no shot has several takes yet; "
                                 "set `takes:` under a film, scene or shot's `render:`")


def test_the_pick_command(write_story) -> None:
    story = write_story(STORY)
    first = cli("pick", "film.yaml", "s/a", "3", cwd=story.parent)
    again = cli("pick", "film.yaml", "s/a", "3", cwd=story.parent)
    assert (first.returncode, first.stdout) == (0, "✓ s/a: take 3 of 3 picked (was take 1) in film.lock.json; "
                                                   "`storyforge render film.yaml` cuts the film with it\n")
    assert (again.returncode, again.stdout) == (0, "✓ s/a: take 3 of 3 picked (unchanged) in film.lock.json; "
                                                   "`storyforge render film.yaml` cuts the film with it\n")
    table = cli("plan", "film.yaml", cwd=story.parent)
    assert table.returncode == 0
    assert "3 of 3" in table.stdout and "1 of 2" in table.stdout
    assert "3 extra takes of 2 shots" in table.stdout


def test_a_pick_the_shot_no_longer_has_falls_back_to_take_1_with_a_warning(write_story) -> None:
    story = write_story(STORY)
    api.pick(story, "s/a", 3)
    story.write_text(STORY.replace("render: {takes: 3}", "render: {takes: 2}"), "utf-8")
    plan = api.plan(story)
    assert plan.jobs[0].take == 1
    assert [str(w) for w in plan.warnings] == [
        "film.yaml:8: s/a: film.lock.json picks take 3, but the shot has 2 takes now; using take 1 "
        "(`storyforge pick film.yaml s/a N` chooses another)"]


def test_too_many_takes_is_an_error_at_its_line(write_story) -> None:
    story = write_story(STORY.replace("render: {takes: 3}", "render: {takes: 17}"))
    result = cli("validate", "film.yaml", cwd=story.parent)
    assert result.returncode == 1
    assert result.stderr.startswith("error: film.yaml:6: ")
    assert "16" in result.stderr


def test_enhance_drops_the_pick_of_a_removed_shot_as_it_drops_its_prompt(write_story) -> None:
    story = write_story(STORY)
    api.pick(story, "s/a", 2)
    api.pick(story, "s/c", 2)
    story.write_text(STORY.split("      - id: c")[0], "utf-8")
    api.enhance(story)
    data = json.loads(lock.lock_path(story).read_text("utf-8"))
    assert (data["picks"], sorted(data["shots"])) == ({"s/a": 2}, ["s/a", "s/b"])


def test_a_lock_with_only_picks_holds_no_prompts_yet(write_story) -> None:
    story = write_story(STORY.replace("scenes:", "enhance: {llm: ./models/qwen}\nscenes:"))
    api.pick(story, "s/a", 2)
    assert [str(w) for w in api.plan(story).warnings] == [
        "film.yaml:4: enhance.llm: enhance.llm is set but film.lock.json holds no prompts yet (only picks); prompts "
        "are the templates' until you run `storyforge enhance film.yaml`"]
