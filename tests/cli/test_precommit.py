"""The pre-commit hook, run by the real `pre-commit` against a throw-away git repository of story files.

pre-commit installs this repository into its own environment with pip, as it does for a user, so the test
needs PyPI (or the index in PIP_INDEX_URL) for the dependencies; without it the test is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

# a story with an undecodable soundtrack fails only where the hook's environment has PyAV, as validate's has
SOUNDTRACK = """\
storyforge: 1
title: Music
audio: track.mp3
scenes:
  - id: s
    shots:
      - {id: a, prompt: a boat on a stream, duration: 4s}
"""
NOT_A_STORY = "name: ci\non: [push]\njobs: {}\n"  # a YAML file of another tool, e.g. a workflow
NOT_A_STORY_BROKEN = "notes: [unclosed\n"  # not a story, and not even valid YAML


def _index_unreachable() -> str | None:
    """Why pip could not download the hook's dependencies, or None when its package index answers."""
    index = urlparse(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple"))
    host, port = index.hostname or "pypi.org", index.port or (80 if index.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as error:
        return f"pre-commit installs the hook with pip, and the package index {host}:{port} is unreachable ({error})"
    return None


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
                    *args], cwd=repo, check=True, capture_output=True)


def test_the_hook_fails_broken_stories_passes_good_ones_and_ignores_other_yaml(tmp_path: Path) -> None:
    if importlib.util.find_spec("pre_commit") is None:
        pytest.skip("pre-commit is not installed (it is in the dev extra: pip install -e '.[dev]')")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    reason = _index_unreachable()
    if reason:
        pytest.skip(reason)

    repo = tmp_path / "stories"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the hook must run what pip installed
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    for folder in ("good", "broken"):
        made = subprocess.run([sys.executable, "-m", "storyforge", "init", str(repo / folder)],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert made.returncode == 0, made.stderr
    broken = repo / "broken" / "film.yaml"
    text = broken.read_text(encoding="utf-8").replace("duration: 3s", "duraton: 3s")
    broken.write_text(text, encoding="utf-8")
    typo = text.splitlines().index("        duraton: 3s") + 1
    (repo / "music").mkdir()
    (repo / "music" / "film.yaml").write_text(SOUNDTRACK, encoding="utf-8")
    (repo / "music" / "track.mp3").write_bytes(b"not a sound")
    (repo / "ci.yaml").write_text(NOT_A_STORY, encoding="utf-8")
    (repo / "notes.yml").write_text(NOT_A_STORY_BROKEN, encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "stories")

    def hook() -> subprocess.CompletedProcess[str]:
        # try-repo installs the hook from this checkout (uncommitted changes included) as `repo:` would
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "storyforge-validate",
                               "--all-files", "--color", "never"],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=1200)

    first = hook()
    output = first.stdout + first.stderr
    if "An unexpected error has occurred" in output and "pip" in output and _index_unreachable():
        pytest.skip(f"the hook's environment could not be installed: {_index_unreachable()}")
    assert first.returncode == 1, output
    assert "storyforge validate" in output and "Failed" in output
    lines = output.splitlines()
    assert f"error: broken/film.yaml:{typo}: morning/stretch: unknown key 'duraton'; did you mean 'duration'?" \
        in lines, output
    assert "error: music/film.yaml:3: audio: 'track.mp3' is not audio that can be decoded (InvalidDataError); " \
           "re-export it" in lines, output
    assert "✓ good/film.yaml — 'My First Film', 1 scene, 3 shots" in lines, output
    assert "ci.yaml" not in output and "notes.yml" not in output  # not stories: skipped without a word

    _git(repo, "rm", "-q", "-r", "broken", "music")
    _git(repo, "commit", "-q", "-m", "only good stories")
    second = hook()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout
