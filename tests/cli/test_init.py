"""`storyforge init`: the .gitignore it writes (or extends) keeps renders and the clip cache out of git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, run_cli


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_init_ignores_renders_and_the_cache_in_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.log")  # a user's own file, without a final newline
    assert run_cli("init", str(tmp_path / "a"), cwd=ROOT).returncode == 0
    assert run_cli("init", str(tmp_path), cwd=ROOT).returncode == 0
    assert (tmp_path / ".gitignore").read_text() == "*.log\n# storyforge: renders and the clip cache\nrenders/\n" \
                                                    ".storyforge/\n"
    assert (tmp_path / "a" / ".gitignore").read_text() == "# storyforge: renders and the clip cache\nrenders/\n" \
                                                          ".storyforge/\n"
    paths = ["renders/film/film.mp4", ".storyforge/cache/ab/x/meta.json", "a/renders/film/run.json", "film.yaml",
             "a/film.yaml", "build.log"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=tmp_path, capture_output=True, text=True)
    assert ignored.stdout.splitlines() == ["renders/film/film.mp4", ".storyforge/cache/ab/x/meta.json",
                                           "a/renders/film/run.json", "build.log"]
