"""`--help`: usage as the README writes it, flags without a type, option texts in words."""

from __future__ import annotations

import re

from conftest import ROOT, run_cli


def test_help_shows_usage_as_the_readme_writes_it_and_flags_without_a_type() -> None:
    env = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    plan = run_cli("plan", "--help", env=env, cwd=ROOT)
    validate = run_cli("validate", "--help", env=env, cwd=ROOT)
    init = run_cli("init", "--help", env=env, cwd=ROOT)
    top = run_cli("--help", env=env, cwd=ROOT)
    assert plan.returncode == validate.returncode == init.returncode == top.returncode == 0
    assert "Usage: storyforge plan [OPTIONS] FILE" in [line.strip() for line in plan.stdout.splitlines()]
    assert "Usage: storyforge validate [OPTIONS] FILE..." in [line.strip() for line in validate.stdout.splitlines()]
    assert "Usage: storyforge init [OPTIONS] [DIR]" in [line.strip() for line in init.stdout.splitlines()]
    for text in (plan.stdout, validate.stdout, init.stdout, top.stdout):
        assert "<bool>" not in text and "{" not in text
    assert re.search(r"--json +Print the plan JSON instead of a table\.", plan.stdout)
    assert re.search(r"--strict +Fail on warnings too \(exit 1\), for CI\.", validate.stdout)
