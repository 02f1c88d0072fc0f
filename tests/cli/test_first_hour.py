"""The first hour of a new user, through the real CLI: warnings that name what to do, `validate --strict` and
`--stories-only`, help text, the plan table in 80 columns, the GPU estimate, `init`'s .gitignore, the notice
when a GPU has no torch, a stale film after `--only`, the CI recipe, and what the extras install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli

from storyforge import __version__
from storyforge.render import fallback_notice

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

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


def storyforge(*args: str, cwd: Path = ROOT, env: dict[str, str | None] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (what it says is the point here, not the process; tests/conftest.run_cli)."""
    return run_cli(*args, cwd=cwd, env=env)


# -- 4. warnings that finish the job ---------------------------------------------------------------------

def test_validate_shows_warnings_with_the_lengths_to_use(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL)
    done = storyforge("validate", "film.yaml", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"warning: {WARN_A}", f"warning: {WARN_B}"]
    assert done.stdout == "✓ film.yaml — 'Wasteful', 1 scene, 2 shots (2 warnings)\n"


def test_the_lengths_a_warning_names_give_equal_windows_and_no_warning(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL.replace("8s", "7.38s").replace("duration: 4s", "duration: 160f"))
    done = storyforge("validate", "--strict", "film.yaml", cwd=story_dir)
    assert (done.returncode, done.stderr) == (0, "")


def test_validate_strict_fails_on_warnings(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL)
    (story_dir / "quiet.yaml").write_text(WASTEFUL.replace("8s", "4s").replace("duration: 4s\n        transition",
                                                                               "duration: 80f\n        transition"))
    done = storyforge("validate", "--strict", "film.yaml", "quiet.yaml", cwd=story_dir)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"error: {WARN_A} [--strict]", f"error: {WARN_B} [--strict]"]
    assert done.stdout == "✓ quiet.yaml — 'Wasteful', 1 scene, 2 shots\n"


# -- 1. validate over every YAML file ---------------------------------------------------------------------

def test_stories_only_skips_other_yaml_quietly_but_never_a_broken_story(write_story, story_dir: Path) -> None:
    write_story(WASTEFUL.replace("8s", "4s").replace("duration: 4s\n        transition", "duration: 80f\n"
                                                                                           "        transition"))
    (story_dir / "workflow.yml").write_text("name: ci\non: [push]\n")
    (story_dir / "notes.yaml").write_text("notes: [unclosed\n")
    (story_dir / "broken.yaml").write_text("storyforge: 1\ntitle: 'unclosed\nscenes: []\n")
    done = storyforge("validate", "--stories-only", "film.yaml", "workflow.yml", "notes.yaml", "broken.yaml",
                      cwd=story_dir)
    assert done.returncode == 1
    assert done.stdout == "✓ film.yaml — 'Wasteful', 1 scene, 2 shots\n"
    assert "broken.yaml" in done.stderr and "workflow.yml" not in done.stderr and "notes.yaml" not in done.stderr
    plain = storyforge("validate", "workflow.yml", cwd=story_dir)  # named on purpose: it is checked
    assert plain.returncode == 1
    assert "error: workflow.yml:1: (top): missing required key 'storyforge' (the format version); add " \
           "`storyforge: 1` at the top" in plain.stderr.splitlines()


# -- 10. cosmetics ----------------------------------------------------------------------------------------

def test_help_shows_usage_as_the_readme_writes_it_and_flags_without_a_type() -> None:
    env = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    plan = storyforge("plan", "--help", env=env)
    validate = storyforge("validate", "--help", env=env)
    init = storyforge("init", "--help", env=env)
    top = storyforge("--help", env=env)
    assert plan.returncode == validate.returncode == init.returncode == top.returncode == 0
    assert "Usage: storyforge plan [OPTIONS] FILE" in [line.strip() for line in plan.stdout.splitlines()]
    assert "Usage: storyforge validate [OPTIONS] FILE..." in [line.strip() for line in validate.stdout.splitlines()]
    assert "Usage: storyforge init [OPTIONS] [DIR]" in [line.strip() for line in init.stdout.splitlines()]
    for text in (plan.stdout, validate.stdout, init.stdout, top.stdout):
        assert "<bool>" not in text and "{" not in text
    assert re.search(r"--json +Print the plan JSON instead of a table\.", plan.stdout)
    assert re.search(r"--strict +Fail on warnings too \(exit 1\), for CI\.", validate.stdout)


def test_counts_are_singular_for_one() -> None:
    done = storyforge("validate", "examples/stories/minimal.yaml")
    assert done.stdout == "✓ examples/stories/minimal.yaml — 'Paper Boat', 1 scene, 1 shot\n"
    assert storyforge("plan", "examples/stories/minimal.yaml").stdout.count("\n1 shot, 97 frames = 4.04s") == 1


# -- 5. the plan table in 80 columns ----------------------------------------------------------------------

def test_plan_table_in_80_columns_keeps_shot_frames_and_start_whole() -> None:
    narrow = storyforge("plan", "examples/stories/swan-lake.yaml", env={"COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    table = [line for line in narrow.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 for line in table)
    assert "…" not in narrow.stdout
    header = table[1]
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == ["shot", "kind", "frames", "calls", "in",
                                                                       "start"]
    assert "│ flight/takeoff │ i2v    │ 97 → 97 │    60 │ fade 24f      │ 00:00:14:03 │" in table
    assert "left out at 80 columns: drift, windows (latents); plan --json has them" in narrow.stdout.splitlines()
    wide = storyforge("plan", "examples/stories/swan-lake.yaml", env={"COLUMNS": "140"})
    header = [line for line in wide.stdout.splitlines() if line.startswith("┃")][0]
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "shot", "kind", "frames", "drift", "windows (latents)", "calls", "in", "start"]
    assert "left out" not in wide.stdout


def test_plan_table_in_50_columns_still_shows_shot_frames_and_start() -> None:
    narrow = storyforge("plan", "examples/stories/swan-lake.yaml", env={"COLUMNS": "50"})
    header = [line for line in narrow.stdout.splitlines() if line.startswith("┃")][0]
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == ["shot", "frames", "start"]
    assert "│ flight/takeoff │ 97 → 97 │ 00:00:14:03 │" in narrow.stdout


# -- 6. the GPU estimate ----------------------------------------------------------------------------------

def test_gpu_estimate_is_for_the_films_own_models_and_says_what_it_assumes(write_story, story_dir) -> None:
    done = storyforge("plan", str(EXAMPLES / "swan-lake.yaml"))
    assert done.stdout.splitlines()[-5:] == [
        "7 shots, 521 frames = 21.71s (00:00:21:17), 420 transformer calls",
        "rough GPU time on one H100: df-1.3b-540p ≈ 3 min",
        "  assumes 0.45 s a call for df-1.3b-540p on a full 960x544 window of 97 frames",
        "  (other window sizes scale as tokens^1.5; loading the model and decoding are not counted)",
        # the largest window is 26 latents: an end image is one more (storyforge.plan.memory)
        "GPU memory for df-1.3b-540p at 960x544: ≈ 11.6 GiB with offload model (weights 13.7 GiB, activations of "
        "the largest window 6.3 GiB, VAE decode 1.3 GiB, tiled); none 25.0 GiB, sequential 9.3 GiB",
    ]
    # a 14B film at 540p: one line for its model, none for a 720p preset computed at the wrong size
    done = storyforge("plan", str(EXAMPLES / "swan-lake.yaml"), "--model", "df-14b-540p")
    assert "rough GPU time on one H100: df-14b-540p ≈ 22 min" in done.stdout.splitlines()
    assert "720p" not in done.stdout
    # a 720p film whose first shot uses the 1.3B model (a window of 25 latents of 3600 tokens, not 2040: each
    # call costs (3600 / 2040)^1.5 = 2.34 times its 0.45 s) and whose second uses the 14B 720p model
    write_story("storyforge: 1\ntitle: Mixed\nrender: {resolution: 720p}\nscenes:\n  - id: s\n    shots:\n"
                "      - {id: a, prompt: a fox, duration: 177f}\n"
                "      - {id: b, prompt: a fox runs, duration: 5s, render: {model: df-14b-720p}}\n")
    lines = storyforge("plan", "film.yaml", cwd=story_dir).stdout.splitlines()
    assert lines[-7:] == [
        "2 shots, 298 frames = 12.42s (00:00:12:10), 180 transformer calls",
        "rough GPU time on one H100: df-1.3b-540p ≈ 2 min, df-14b-720p ≈ 6 min",  # 120 × 0.45 × 2.34; 60 × 6.5
        "  assumes 0.45 s a call for df-1.3b-540p on a full 960x544 window of 97 frames",
        "  assumes 6.5 s a call for df-14b-720p on a full 1280x720 window of 121 frames",
        "  (other window sizes scale as tokens^1.5; loading the model and decoding are not counted)",
        "GPU memory for df-1.3b-540p at 1280x720: ≈ 14.4 GiB with offload model (weights 13.7 GiB, activations of "
        "the largest window 10.7 GiB, VAE decode 1.3 GiB, tiled); none 25.5 GiB, sequential 13.7 GiB",
        "GPU memory for df-14b-720p at 1280x720: ≈ 65.3 GiB with offload model (weights 37.7 GiB, activations of "
        "the largest window 37.7 GiB, VAE decode 1.3 GiB, tiled); none 76.3 GiB, sequential 40.6 GiB"]
    hub = storyforge("plan", str(EXAMPLES / "minimal.yaml"), "--model", "someone/some-model")
    assert hub.stdout.splitlines()[-1] == ("no GPU time estimate for someone/some-model: only the presets have "
                                           "measured speeds")


# -- 8. a GPU without torch -------------------------------------------------------------------------------

def test_auto_says_what_to_install_when_a_gpu_has_no_torch() -> None:
    preview = ("an animatic preview (title cards or start images, camera moves, captions, timecode) at the planned "
               "frame counts")
    assert fallback_notice(torch_installed=False, gpu_driver=True) == (
        f"this machine has a GPU driver but torch is not installed, so this is {preview}; to render the model's "
        "video, install the render extra: pip install 'storyforge[render]' (PyPI's torch for Linux is built for "
        "CUDA)")
    assert fallback_notice(torch_installed=True, gpu_driver=True) == (
        f"torch is installed but sees no CUDA GPU (a CPU-only build of torch?), so this is {preview}; install a "
        "CUDA build of torch (https://pytorch.org/get-started/locally/) to render the model's video")
    expected = f"no CUDA GPU here, so this is {preview}; render on a machine with CUDA for the model's video"
    assert fallback_notice(torch_installed=False, gpu_driver=False) == expected
    assert fallback_notice(torch_installed=True, gpu_driver=False) == expected


# -- 9. init's .gitignore ---------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_init_ignores_renders_and_the_cache_in_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.log")  # a user's own file, without a final newline
    assert storyforge("init", str(tmp_path / "a")).returncode == 0
    assert storyforge("init", str(tmp_path)).returncode == 0
    assert (tmp_path / ".gitignore").read_text() == "*.log\n# storyforge: renders and the clip cache\nrenders/\n" \
                                                    ".storyforge/\n"
    assert (tmp_path / "a" / ".gitignore").read_text() == "# storyforge: renders and the clip cache\nrenders/\n" \
                                                          ".storyforge/\n"
    paths = ["renders/film/film.mp4", ".storyforge/cache/ab/x/meta.json", "a/renders/film/run.json", "film.yaml",
             "a/film.yaml", "build.log"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=tmp_path, capture_output=True, text=True)
    assert ignored.stdout.splitlines() == ["renders/film/film.mp4", ".storyforge/cache/ab/x/meta.json",
                                           "a/renders/film/run.json", "build.log"]


# -- 7. --only leaves no stale film -----------------------------------------------------------------------

SMALL = """\
storyforge: 1
title: Small
render: {resolution: 64x48, fps: 24, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a red fox
        duration: 13f
      - id: b
        prompt: a grey fox
        duration: 9f
      - id: c
        prompt: a white fox
        duration: 9f
"""


def test_render_only_removes_the_film_and_clips_it_leaves_out_of_date(write_story, story_dir: Path) -> None:
    pytest.importorskip("av")
    story = write_story(SMALL)
    first = storyforge("render", "film.yaml", "--backend", "animatic", cwd=story_dir)
    assert first.returncode == 0, first.stderr
    out = story_dir / "renders" / "film"
    assert (out / "film.mp4").is_file() and (out / "clips" / "s__c.mp4").is_file()
    story.write_text(SMALL.replace("a red fox", "a red fox, running").replace("a white fox", "a white fox, asleep"))
    again = storyforge("render", "film.yaml", "--backend", "animatic", "--only", "s/a", cwd=story_dir)
    assert again.returncode == 0, again.stderr
    assert "note: film.mp4 was not cut: 1 shot has no clip yet (s/c); render without --only to make them; " \
           "removed the out-of-date film.mp4, clips/s__c.mp4" in again.stderr.splitlines()
    assert not (out / "film.mp4").exists() and not (out / "clips" / "s__c.mp4").exists()
    assert (out / "clips" / "s__a.mp4").is_file() and (out / "clips" / "s__b.mp4").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["film"] is None and run["notices"][-1].startswith("film.mp4 was not cut: 1 shot has no clip yet")
    last = storyforge("render", "film.yaml", "--backend", "animatic", cwd=story_dir)
    assert last.returncode == 0 and (out / "film.mp4").is_file()


# -- 1. the CI recipe -------------------------------------------------------------------------------------

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
    assert storyforge("init", str(repo / "stories" / "fox")).returncode == 0
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


# -- 11. extras, the README and the version ---------------------------------------------------------------

def _extras(names: list[str], table: dict[str, list[str]]) -> set[str]:
    """Every requirement of these extras, following storyforge[...] references."""
    found: set[str] = set()
    for name in names:
        for requirement in table[name]:
            inner = re.fullmatch(r"storyforge\[(.+)\]", requirement)
            found |= _extras(inner.group(1).split(","), table) if inner else {requirement}
    return found


def test_the_readme_test_command_installs_no_moviepy() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r'pip install (?:-c \S+ )?-e "\.\[([a-z,]+)\]"[^\n]*python -m pytest', readme)
    assert command is not None, "the README's test command"
    installed = _extras(command.group(1).split(","), project["optional-dependencies"])
    assert not any(re.match(r"moviepy\b", requirement) for requirement in installed)  # it caps Pillow
    assert {"pre-commit>=3.5", "jsonschema>=4.18"} <= installed
    assert project["optional-dependencies"]["bench"] == ["moviepy>=2.1"]


def test_release_tags_in_the_docs_name_this_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == __version__
    for path in (ROOT / "README.md", ROOT / "docs" / "cookbook" / "ci.md", ROOT / ".pre-commit-hooks.yaml",
                 ROOT / "examples" / "ci" / "storyforge.yml"):
        for tag in re.findall(r"\bv\d+\.\d+\.\d+\b", path.read_text(encoding="utf-8")):
            assert tag == f"v{version}", f"{path.name} names {tag}; this is version {version}"
    guide = (ROOT / "docs" / "cookbook" / "ci.md").read_text(encoding="utf-8")
    config = yaml.safe_load(re.search(r"# \.pre-commit-config\.yaml.*?\n(.*?)```", guide, re.S).group(1))
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert config["repos"][0]["hooks"][0]["id"] in {hook["id"] for hook in hooks}
    assert hooks[0]["additional_dependencies"] == ["av>=18"]
    assert "av>=18" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "video"]
