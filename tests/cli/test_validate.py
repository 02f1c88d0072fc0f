"""`storyforge validate`: warnings that name the lengths to use, --strict, --stories-only, counts in words, and
the CI recipe (examples/ci/storyforge.yml) that validates and plans every story of a repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli

# s/a is 8 s at 24 fps: 193 frames, windows of 25, 25 and 9 latents; s/b continues with 96 new frames.
WASTEFUL = """\
storyforge: 1
title: Wasteful
scenes:
  - id: s
    shots:
      - id: a
        prompt: a fox
        duration: 8s
      - id: b
        prompt: the fox runs
        duration: 4s
        transition: continue
"""


WARN_A = ("film.yaml:8: s/a: the last window has 9 of 25 latents but costs nearly a full window of steps; a length "
          "giving equal windows is cheaper per frame: use 177f (7.38s) or 257f (10.71s)")
WARN_B = ("film.yaml:11: s/b: the last window has 9 of 25 latents but costs nearly a full window of steps; a length "
          "giving equal windows is cheaper per frame: use 80f (3.33s) or 160f (6.67s)")


# -- warnings that finish the job -------------------------------------------------------------------------------------

def test_validate_shows_warnings_with_the_lengths_to_use(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL)
    done = run_cli("validate", "film.yaml", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"warning: {WARN_A}", f"warning: {WARN_B}"]
    assert done.stdout == "✓ film.yaml — 'Wasteful', 1 scene, 2 shots (2 warnings)\n"


def test_the_lengths_a_warning_names_give_equal_windows_and_no_warning(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL.replace("8s", "7.38s").replace("duration: 4s", "duration: 160f"))
    done = run_cli("validate", "--strict", "film.yaml", cwd=story_dir)
    assert (done.returncode, done.stderr) == (0, "")


def test_validate_strict_fails_on_warnings(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL)
    (story_dir / "quiet.yaml").write_text(WASTEFUL.replace("8s", "4s").replace("duration: 4s\n        transition",
                                                                               "duration: 80f\n        transition"))
    done = run_cli("validate", "--strict", "film.yaml", "quiet.yaml", cwd=story_dir)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"error: {WARN_A} [--strict]", f"error: {WARN_B} [--strict]"]
    assert done.stdout == "✓ quiet.yaml — 'Wasteful', 1 scene, 2 shots\n"


# -- every YAML file of a repository ----------------------------------------------------------------------------------

def test_stories_only_skips_other_yaml_quietly_but_never_a_broken_story(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL.replace("8s", "4s").replace("duration: 4s\n        transition", "duration: 80f\n"
                                                                                           "        transition"))
    (story_dir / "workflow.yml").write_text("name: ci\non: [push]\n")
    (story_dir / "notes.yaml").write_text("notes: [unclosed\n")
    (story_dir / "broken.yaml").write_text("storyforge: 1\ntitle: 'unclosed\nscenes: []\n")
    done = run_cli("validate", "--stories-only", "film.yaml", "workflow.yml", "notes.yaml", "broken.yaml",
                      cwd=story_dir)
    assert done.returncode == 1
    assert done.stdout == "✓ film.yaml — 'Wasteful', 1 scene, 2 shots\n"
    assert "broken.yaml" in done.stderr and "workflow.yml" not in done.stderr and "notes.yaml" not in done.stderr
    plain = run_cli("validate", "workflow.yml", cwd=story_dir)  # named on purpose: it is checked
    assert plain.returncode == 1
    assert "error: workflow.yml:1: (top): missing required key 'storyforge' (the format version); add " \
           "`storyforge: 1` at the top" in plain.stderr.splitlines()


def test_counts_are_singular_for_one() -> None:
    done = run_cli("validate", "examples/stories/minimal.yaml", cwd=ROOT)
    assert done.stdout == "✓ examples/stories/minimal.yaml — 'Paper Boat', 1 scene, 1 shot\n"
    assert run_cli("plan", "examples/stories/minimal.yaml", cwd=ROOT).stdout.count("\n1 shot, 97 frames = 4.04s") == 1


# -- the CI recipe ----------------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("git") is None or shutil.which("bash") is None, reason="needs git and bash")
def test_the_ci_recipe_validates_and_plans_every_story(tmp_path: Path) -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "storyforge.yml").read_text())
    steps = [step for step in workflow["jobs"]["stories"]["steps"]
             if "run" in step and not step["name"].startswith("Install")]
    assert [step["name"] for step in steps] == ["Validate every story (warnings fail too)", "Plan every story"]
    guide = (ROOT / "docs" / "cookbook" / "ci.md").read_text(encoding="utf-8")
    for step in steps:  # the CI guide quotes these steps as they are
        assert all(line.strip() in guide for line in step["run"].splitlines())
    repo = tmp_path / "repo"
    assert run_cli("init", str(repo / "stories" / "fox"), cwd=ROOT).returncode == 0
    shutil.copy(EXAMPLES / "minimal.yaml", repo / "boat.yml")
    (repo / "ci.yaml").write_text("name: ci\non: [push]\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(step: dict) -> subprocess.CompletedProcess[str]:  # as GitHub runs a step: bash -e
        return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=300)

    for step in steps:
        done = run(step)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (repo / "plans").iterdir()) == ["boat.yml.plan.json",
                                                                  "stories__fox__film.yaml.plan.json"]
    assert json.loads((repo / "plans" / "boat.yml.plan.json").read_text())["title"] == "Paper Boat"
    (repo / "stories" / "fox" / "film.yaml").write_text(WASTEFUL)  # a warning: --strict fails the job
    failed = run(steps[0])
    assert failed.returncode != 0  # xargs reports storyforge's exit 1 as 123: the step fails either way
    assert failed.stderr.splitlines()[0].startswith("error: stories/fox/film.yaml:8: s/a: the last window has 9")
