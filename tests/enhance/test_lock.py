"""The lock file: written by `enhance`, stable and atomic, used by `plan` when it matches, stale when not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyforge import api
from storyforge.enhance import lock
from storyforge.enhance.qwen import INSTRUCTIONS_SHA256
from storyforge.errors import StoryError, StoryforgeError

ROOT = Path(__file__).resolve().parents[2]
RUN = "run `storyforge enhance film.yaml`"


@pytest.fixture
def story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return api.init(tmp_path)  # three shots: morning/wake (line 24), morning/stretch (29), morning/run (33)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


def entries(path: Path) -> dict:
    return json.loads(lock.lock_path(path).read_text("utf-8"))["shots"]


def set_entry(path: Path, shot: str, **changes: object) -> None:
    data = json.loads(lock.lock_path(path).read_text("utf-8"))
    data["shots"][shot].update(changes)
    lock.lock_path(path).write_text(json.dumps(data), "utf-8")


def test_the_lock_is_beside_the_story() -> None:
    assert lock.lock_path(Path("films/swan.yaml")) == Path("films/swan.lock.json")


def test_enhance_without_an_llm_locks_the_template_prompts(story: Path) -> None:
    report = api.enhance(story)
    assert (report.updated, report.kept, report.llm, report.changed) == (
        ("morning/wake", "morning/stretch", "morning/run"), (), None, True)
    text = lock.lock_path(story).read_text("utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # stable for review
    assert data["storyforge_lock"] == 1 and data["story"] == "film.yaml"
    plan = api.plan(story, use_lock=False)
    for job in plan.jobs:
        entry = data["shots"][job.id]
        assert entry == {"kind": job.kind, "llm": None, "prompt": job.template_prompt, "source": "template",
                         "template": {"name": "plain", "sha256": entry["template"]["sha256"]},
                         "template_prompt": job.template_prompt}
    assert [p.name for p in story.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_second_enhance_changes_nothing(story: Path) -> None:
    api.enhance(story)
    before = lock.lock_path(story).stat().st_mtime_ns
    report = api.enhance(story)
    assert (report.updated, len(report.kept), report.changed) == ((), 3, False)
    assert lock.lock_path(story).stat().st_mtime_ns == before


def test_force_rewrites_every_entry(story: Path) -> None:
    api.enhance(story)
    assert len(api.enhance(story, force=True).updated) == 3


def test_plan_uses_the_locked_prompt_and_rekeys_the_job(story: Path) -> None:
    api.enhance(story)
    unlocked = api.plan(story, use_lock=False)
    set_entry(story, "morning/run", prompt="A hand-tuned prompt: the fox sprints between pines.")
    plan = api.plan(story)
    assert plan.job("morning/run").prompt == "A hand-tuned prompt: the fox sprints between pines."
    assert plan.job("morning/run").template_prompt == unlocked.job("morning/run").template_prompt
    assert plan.job("morning/run").key != unlocked.job("morning/run").key
    assert plan.job("morning/wake").key == unlocked.job("morning/wake").key
    assert plan.warnings == ()
    assert api.plan(story).dumps() == plan.dumps()  # byte-identical


def test_a_continued_job_is_rekeyed_when_its_head_prompt_changes(story: Path) -> None:
    api.enhance(story)
    unlocked = api.plan(story, use_lock=False)
    set_entry(story, "morning/wake", prompt="A different opening.")
    plan = api.plan(story)
    assert plan.job("morning/stretch").prompt == unlocked.job("morning/stretch").prompt
    assert plan.job("morning/stretch").key != unlocked.job("morning/stretch").key  # it continues wake


def test_a_changed_shot_is_stale_with_a_warning(story: Path) -> None:
    api.enhance(story)
    edit(story, "the fox stretches and yawns", "the fox stretches slowly")
    plan = api.plan(story)
    assert [str(w) for w in plan.warnings] == [
        f"film.yaml:29: morning/stretch: the locked prompt is stale (the shot's prompt changed since the lock was "
        f"written); using the template prompt; {RUN} to update film.lock.json"]
    assert plan.job("morning/stretch").prompt == plan.job("morning/stretch").template_prompt
    assert "slowly" in plan.job("morning/stretch").prompt
    report = api.enhance(story)
    assert (report.updated, len(report.kept)) == (("morning/stretch",), 2)
    assert api.plan(story).warnings == ()


def test_a_new_shot_is_not_in_the_lock(story: Path) -> None:
    api.enhance(story)
    text = story.read_text("utf-8") + "      - id: rest\n        prompt: the fox sleeps\n        duration: 2s\n"
    story.write_text(text, "utf-8")
    assert [str(w) for w in api.plan(story).warnings] == [
        f"film.yaml:38: morning/rest: not in film.lock.json yet; using the template prompt; {RUN}"]


def test_a_removed_shot_leaves_the_lock(story: Path) -> None:
    api.enhance(story)
    edit(story, "      - id: run\n        prompt: the fox runs between the trees\n        camera: tracking shot\n"
                "        duration: 4s\n        transition: {type: crossfade, duration: 0.5s}\n", "")
    api.enhance(story)
    assert sorted(entries(story)) == ["morning/stretch", "morning/wake"]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"prompt": "a {{ templated }} prompt"}, "its locked prompt contains template syntax"),
    ({"prompt": ""}, "its locked prompt is empty or not text"),
    ({"prompt": 7}, "its locked prompt is empty or not text"),
    ({"kind": "i2v"}, "the shot changed from i2v to t2v"),
    ({"llm": {"model": "Qwen/Qwen2.5-7B-Instruct", "sha256": None, "seed": 1, "max_new_tokens": 256,
              "instructions_sha256": INSTRUCTIONS_SHA256}}, "enhance.seed or enhance.max_new_tokens changed"),
    ({"llm": {"model": "Qwen/Qwen2.5-7B-Instruct", "sha256": None, "seed": 0, "max_new_tokens": 256,
              "instructions_sha256": "0" * 64}}, "storyforge's instructions to the LLM changed"),
])
def test_unusable_or_outdated_entries_are_stale(story: Path, changes: dict, reason: str) -> None:
    api.enhance(story)
    set_entry(story, "morning/run", **changes)
    plan = api.plan(story)
    assert [str(w) for w in plan.warnings] == [
        f"film.yaml:33: morning/run: the locked prompt is stale ({reason}); using the template prompt; {RUN} to "
        "update film.lock.json"]
    assert plan.job("morning/run").prompt == plan.job("morning/run").template_prompt


def test_an_llm_entry_written_with_llm_is_used_when_the_story_names_none(story: Path) -> None:
    api.enhance(story)
    record = {"model": "Qwen/Qwen2.5-7B-Instruct", "sha256": None, "seed": 0, "max_new_tokens": 256,
              "instructions_sha256": INSTRUCTIONS_SHA256}
    set_entry(story, "morning/run", llm=record, prompt="An expanded caption.", source="llm")
    plan = api.plan(story)
    assert (plan.job("morning/run").prompt, plan.warnings) == ("An expanded caption.", ())
    # the story now asks for another model: the entry is stale
    edit(story, "storyforge: 1\n", "storyforge: 1\nenhance:\n  llm: Qwen/Qwen2.5-3B-Instruct\n")
    assert [str(w) for w in api.plan(story).warnings][-1] == (
        "film.yaml:35: morning/run: the locked prompt is stale (the story asks for Qwen/Qwen2.5-3B-Instruct but the "
        f"lock was written with Qwen/Qwen2.5-7B-Instruct); using the template prompt; {RUN} to update "
        "film.lock.json")


def test_a_story_that_asks_for_an_llm_without_a_lock_says_so(story: Path) -> None:
    edit(story, "storyforge: 1\n", "storyforge: 1\nenhance:\n  llm: Qwen/Qwen2.5-7B-Instruct\n")
    plan = api.plan(story)
    assert [str(w) for w in plan.warnings] == [
        "film.yaml:6: enhance.llm: enhance.llm is set but there is no film.lock.json yet; prompts are the "
        f"templates' until you {RUN}"]


def test_a_lock_that_is_not_json_is_ignored_with_a_warning(story: Path) -> None:
    lock.lock_path(story).write_text("{ not json", "utf-8")
    plan = api.plan(story)
    assert [str(w) for w in plan.warnings] == [
        "film.lock.json:1: lock: film.lock.json is not a lock file storyforge can read (it is not JSON (Expecting "
        f"property name enclosed in double quotes: line 1 column 3 (char 2))); prompts are the templates'; {RUN} to "
        "rewrite it"]
    assert [job.prompt for job in plan.jobs] == [job.template_prompt for job in plan.jobs]
    api.enhance(story)
    assert api.plan(story).warnings == ()


def test_a_template_change_that_keeps_the_text_keeps_the_entry(story: Path) -> None:
    (story.parent / "mine.j2").write_text("{{ [shot.prompt, shot.camera, style] | sentences }}\n", "utf-8")
    api.enhance(story)
    edit(story, "storyforge: 1\n", "storyforge: 1\nenhance:\n  template: mine.j2\n")
    report = api.enhance(story)
    assert (report.updated, len(report.kept), report.changed) == ((), 3, True)
    assert {entry["template"]["name"] for entry in entries(story).values()} == {"mine.j2"}


def test_a_failed_write_keeps_the_old_lock(story: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api.enhance(story)
    before = lock.lock_path(story).read_bytes()
    edit(story, "the fox runs", "the fox walks")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        api.enhance(story)
    assert lock.lock_path(story).read_bytes() == before
    # init's .gitignore and the lock's guard in .storyforge/; no temporary anywhere
    assert sorted(p.name for p in story.parent.iterdir() if p.name.startswith(".")) == [".gitignore", ".storyforge"]
    assert [p.name for p in (story.parent / ".storyforge").iterdir()] == ["film.lock.json.guard"]


def test_an_invalid_story_writes_no_lock(story: Path) -> None:
    edit(story, "{{ characters.fox }}", "{{ characters.goose }}")
    with pytest.raises(StoryError):
        api.enhance(story)
    assert not lock.lock_path(story).exists()


def test_an_unknown_model_is_an_error(story: Path) -> None:
    with pytest.raises(StoryforgeError) as caught:
        api.enhance(story, llm="./no-such-model")
    assert str(caught.value) == (f"no model folder './no-such-model' (relative to {story.parent}), and it is not a "
                                 "hub id like Qwen/Qwen2.5-7B-Instruct")
    edit(story, "storyforge: 1\n", "storyforge: 1\nenhance:\n  llm: ./models/missing\n")
    with pytest.raises(StoryError) as caught:
        api.enhance(story)
    assert [str(p) for p in caught.value.problems] == [
        f"film.yaml:6: enhance.llm: no model folder './models/missing' (relative to {story.parent}), and it is not a "
        "hub id like Qwen/Qwen2.5-7B-Instruct"]
    assert not lock.lock_path(story).exists()


def test_the_enhance_command(story: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "storyforge", "enhance", "film.yaml"]
    first = subprocess.run(command, capture_output=True, text=True, cwd=story.parent, env=env)
    second = subprocess.run(command, capture_output=True, text=True, cwd=story.parent, env=env)
    assert (first.returncode, first.stdout) == (0, "✓ film.lock.json written: 3 shots updated (template), 0 up to "
                                                   "date\n")
    assert (second.returncode, second.stdout) == (0, "✓ film.lock.json unchanged: 0 shots updated (template), 3 up "
                                                     "to date\n")
    plans = [subprocess.run([sys.executable, "-m", "storyforge", "plan", "film.yaml", "--json"], capture_output=True,
                            cwd=story.parent, env=env, check=True).stdout for _ in range(2)]
    assert plans[0] == plans[1] and b"{{" not in plans[0]
