"""Concurrent changes of one lock never lose an update: real `storyforge pick` (and enhance) processes at once.

Each process waits for a start file and then runs the CLI, so their reads and writes of film.lock.json overlap;
every pick must be in the lock afterwards, round after round. Two story files with one stem (film.yaml,
film.yml) never share a lock silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from surroundings import TIME_LIMIT, error_lines, frames, outside, run, snapshot

SHOTS = 6
STORY = ("storyforge: 1\ntitle: Picks\nrender: {resolution: 64x48, fps: 24, takes: 4}\nscenes:\n  - id: s\n"
         "    shots:\n" + "".join(f"      - {{id: p{n}, prompt: shot {n}, duration: 9f}}\n" for n in range(SHOTS)))
# waits for the start file, then runs the command line as `storyforge ...` would
STARTER = ("import os, sys, time\n"
           "go = sys.argv[1]\n"
           "while not os.path.exists(go):\n"
           "    time.sleep(0.001)\n"
           "sys.argv = ['storyforge', *sys.argv[2:]]\n"
           "from storyforge.cli import main\n"
           "main()\n")


def together(story_dir: Path, commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run the commands as processes that start at the same moment; their results."""
    go = story_dir / f".go-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [subprocess.Popen([sys.executable, "-c", STARTER, str(go), *command], cwd=story_dir, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for command in commands]
    time.sleep(1.5)  # every process imported storyforge's command line and waits
    go.write_text("go")
    results = []
    for process, command in zip(processes, commands, strict=True):
        out, err = process.communicate(timeout=TIME_LIMIT)
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    go.unlink()
    for result in results:
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-2000:]
    return results


def picks(story_dir: Path) -> dict[str, int]:
    return json.loads((story_dir / "film.lock.json").read_text(encoding="utf-8")).get("picks", {})


@pytest.mark.parametrize("rounds", [4])
def test_picks_made_at_once_are_all_kept_round_after_round(write_story, story_dir: Path, tmp_path: Path,
                                                           rounds: int) -> None:
    write_story(STORY)
    target = outside(tmp_path)
    before = snapshot(target)
    for round_ in range(rounds):
        wanted = {f"s/p{n}": 2 + (n + round_) % 3 for n in range(SHOTS)}
        results = together(story_dir, [["pick", "film.yaml", shot, str(take)] for shot, take in wanted.items()])
        assert [result.returncode for result in results] == [0] * SHOTS, [error_lines(r) for r in results]
        assert picks(story_dir) == wanted, f"round {round_}: a pick was lost"
    assert snapshot(target) == before
    assert run("render", "film.yaml", "--backend", "animatic", cwd=story_dir).returncode == 0
    assert frames(story_dir / "renders" / "film" / "film.mp4") == 9 * SHOTS


def test_a_pick_made_while_enhance_writes_the_lock_is_kept(write_story, story_dir: Path) -> None:
    write_story(STORY)
    for round_ in range(3):
        wanted = {f"s/p{n}": 2 + (n + round_) % 3 for n in range(3)}
        commands = [["pick", "film.yaml", shot, str(take)] for shot, take in wanted.items()]
        results = together(story_dir, [*commands, ["enhance", "film.yaml", "--force"]])
        assert [result.returncode for result in results] == [0] * 4, [error_lines(r) for r in results]
        lock = json.loads((story_dir / "film.lock.json").read_text(encoding="utf-8"))
        assert {shot: lock["picks"][shot] for shot in wanted} == wanted
        assert sorted(lock["shots"]) == [f"s/p{n}" for n in range(SHOTS)]


def test_two_story_files_with_one_stem_never_share_picks_silently(write_story, story_dir: Path) -> None:
    write_story(STORY)
    write_story(STORY.replace("title: Picks", "title: Other"), "film.yml")
    assert run("pick", "film.yaml", "s/p1", "3", cwd=story_dir).returncode == 0
    message = ("error: film.lock.json belongs to the story file film.yaml, not to film.yml: two story files with the "
               "stem 'film' would share one lock (its prompts and picks); rename one of them (each story's lock is "
               "named after its stem), or remove film.lock.json if film.yml is the only story left")
    for command in (["pick", "film.yml", "s/p1", "2"], ["plan", "film.yml"], ["enhance", "film.yml"],
                    ["render", "film.yml", "--backend", "animatic"]):
        done = run(*command, cwd=story_dir)
        assert (done.returncode, error_lines(done)) == (1, [message]), command
    assert picks(story_dir) == {"s/p1": 3}  # the other story's pick stays as it was
    assert run("plan", "film.yaml", cwd=story_dir).returncode == 0
