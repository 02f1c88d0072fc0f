"""Every example validates and plans, its plan matches the golden file, and the schema is current."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, run_cli

from storyforge import api

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
GOLDEN = ROOT / "tests" / "golden"


def test_there_are_varied_examples() -> None:
    assert len(EXAMPLE_FILES) >= 4
    plans = [api.plan(path) for path in EXAMPLE_FILES]
    kinds = {job.kind for plan in plans for job in plan.jobs}
    transitions = {job.transition.type for plan in plans for job in plan.jobs}
    assert kinds == {"t2v", "i2v", "extend"}
    assert transitions == {"cut", "continue", "crossfade", "fade"}
    assert any(job.settings.ar_step and job.settings.causal_block_size > 1 for p in plans for job in p.jobs)
    assert any(plan.height == 720 for plan in plans)
    assert any(job.end_image for plan in plans for job in plan.jobs)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_has_the_schema_modeline(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../schemas/film.schema.json"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_plan_matches_golden(path: Path, request: pytest.FixtureRequest, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    text = api.plan(path.relative_to(ROOT)).dumps()
    golden = GOLDEN / f"{path.stem}.plan.json"
    if request.config.getoption("--regen-golden"):
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden plan for {path.name}: run pytest --regen-golden"
    assert text == golden.read_text(encoding="utf-8"), f"{golden.name} differs: review, then pytest --regen-golden"


def test_cli_validates_every_example() -> None:
    result = run_cli("validate", *map(str, EXAMPLE_FILES), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("✓") == len(EXAMPLE_FILES)


def test_plan_json_is_byte_identical_across_runs() -> None:
    # two processes: each hashes strings with its own seed, so set order would show here
    runs = [subprocess.run([sys.executable, "-m", "storyforge", "plan", "examples/stories/swan-lake.yaml", "--json"],
                           capture_output=True, cwd=ROOT) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    data = json.loads(runs[0].stdout)
    assert list(data)[:8] == ["storyforge_plan", "title", "fps", "width", "height", "total_frames", "duration_s",
                              "transformer_calls"]
    assert "{{" not in runs[0].stdout.decode()


def test_plan_output_file(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    result = run_cli("plan", "examples/stories/minimal.yaml", "-o", str(target), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(target.read_text())["total_frames"] == 97


def test_schema_file_is_current() -> None:
    assert (ROOT / "schemas" / "film.schema.json").read_text(encoding="utf-8") == api.schema_text(), \
        "schemas/film.schema.json is stale: run `storyforge schema > schemas/film.schema.json`"


def test_schema_command_prints_the_schema() -> None:
    result = run_cli("schema")
    assert json.loads(result.stdout)["title"] == "storyforge story file, format 1"


def test_init_scaffolds_a_story_that_validates_and_plans(tmp_path: Path) -> None:
    result = run_cli("init", str(tmp_path / "new"))
    assert result.returncode == 0, result.stderr
    story = tmp_path / "new" / "film.yaml"
    assert api.plan(story).jobs
    again = run_cli("init", str(tmp_path / "new"))
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_precommit_hook_definition() -> None:
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hooks[0]["id"] == "storyforge-validate"
    assert hooks[0]["entry"] == "storyforge validate --stories-only"
    assert hooks[0]["types"] == ["yaml"] and "files" not in hooks[0]  # every story file, whatever its name
