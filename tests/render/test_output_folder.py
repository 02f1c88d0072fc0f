"""The output folder (real animatic renders): a dangerous --out is refused before anything is written, files
storyforge did not write are never touched, replaced or cleaned away, -o replaces only regular files, and two
renders into one folder (real processes) wait for each other and both give the planned film."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from surroundings import FILM, TOTAL

from storyforge import api
from storyforge.atomic import write_text
from storyforge.clipfile import count_frames
from storyforge.errors import StoryforgeError
from storyforge.outdir import MANIFEST
from storyforge.render import render


def said(done: subprocess.CompletedProcess[str]) -> str:
    """stderr without the plan's warnings (a 64x48 test film is far from the model's size, and is told so)."""
    return "".join(line + "\n" for line in done.stderr.splitlines() if not line.startswith("warning: "))


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under `folder`: its mode and, for regular files, its bytes."""
    return {str(p.relative_to(folder)): (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_symlink()
                                         else None) for p in sorted(folder.rglob("*"))}


# -- --out and -o -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("out", "message"), [
    (".", "--out .: refusing to render into the story's own folder (or one above it), where its sources live; "
          "choose a folder of its own, like renders/"),
    ("..", "--out ..: refusing to render into the story's own folder (or one above it), where its sources live; "
           "choose a folder of its own, like renders/"),
    ("/", "--out /: refusing to render into the file system's root; choose a folder of its own, like renders/"),
    ("film.yaml", "--out film.yaml: this is a file, not a folder; choose a folder"),
    ("notes.txt", "--out notes.txt: this is a file, not a folder; choose a folder"),
])
def test_a_dangerous_out_is_refused_before_anything_is_written(write_story, story_dir: Path, out: str,
                                                               message: str) -> None:
    write_story(FILM)
    (story_dir / "notes.txt").write_text("mine", encoding="utf-8")
    before = snapshot(story_dir)
    done = run_cli("render", "film.yaml", "--backend", "animatic", "--out", out, cwd=story_dir)
    assert (done.returncode, said(done)) == (1, f"error: {message}\n")
    assert snapshot(story_dir) == before


def test_foreign_files_in_out_are_never_touched(write_story, story_dir: Path) -> None:
    story = write_story(FILM)
    out = story_dir / "mine"
    (out / "clips").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    (out / "clips" / "extra.mp4").write_bytes(b"my own clip")
    foreign = snapshot(out)
    report = render(api.plan(story), out=out, backend="animatic")
    assert count_frames(report.film) == TOTAL
    # a shorter story: the stale clip storyforge wrote goes, the user's files stay
    write_story(FILM.replace("      - {id: c, prompt: it sleeps, duration: 9f, image: refs/swan.png}\n", ""))
    render(api.plan(story), out=out, backend="animatic")
    assert not (out / "clips" / "s__c.mp4").exists()
    assert {name: value for name, value in snapshot(out).items() if name in foreign} == foreign
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == {
        "clips/s__a.mp4", "clips/s__b.mp4", "film.mp4", "plan.json", "run.json", "review.html",
        "takes/s__a/take1.mp4", "takes/s__b/take1.mp4", "review/s__a.take1.jpg", "review/s__b.take1.jpg"}


@pytest.mark.parametrize("name", ["film.mp4", "plan.json", "clips/s__a.mp4"])
def test_a_foreign_file_where_storyforge_would_write_stops_the_render(write_story, story_dir: Path,
                                                                      name: str) -> None:
    write_story(FILM)
    out = story_dir / "mine"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(b"precious")
    before = snapshot(out)
    done = run_cli("render", "film.yaml", "--backend", "animatic", "--out", "mine", cwd=story_dir)
    assert (done.returncode, said(done)) == (1, f"error: --out {out} already holds '{name}', which storyforge did "
                                                 "not write; storyforge never replaces files it did not make: choose "
                                                 "an empty folder, or move them away\n")
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".storyforge")} == before


@pytest.mark.parametrize("kind", ["fifo", "folder", "symlink", "device"])
def test_atomic_writes_replace_only_regular_files(tmp_path: Path, write_story, story_dir: Path, kind: str) -> None:
    target = tmp_path / "target.json"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("keep", encoding="utf-8")
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target = Path("/dev/null")
    mode = target.lstat().st_mode
    with pytest.raises(StoryforgeError, match="only a regular file is replaced"):
        write_text(target, "x")
    assert target.lstat().st_mode == mode
    write_story(FILM)
    done = run_cli("plan", "film.yaml", "-o", str(target), cwd=story_dir)
    assert done.returncode == 1 and "only a regular file is replaced; choose another path" in done.stderr
    assert target.lstat().st_mode == mode
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".target")]  # no temporary left
    if kind == "symlink":
        assert (tmp_path / "elsewhere").read_text(encoding="utf-8") == "keep"
    if kind == "device":
        assert stat.S_ISCHR(mode)


# -- a killed run's leftovers -----------------------------------------------------------------------------------------

def test_only_a_killed_runs_exact_leftovers_are_cleaned_never_lookalikes(write_story, story_dir: Path) -> None:
    story = write_story(FILM)
    out = story_dir / "out"
    render(api.plan(story), out=out, backend="animatic")
    manifest = json.loads((out / MANIFEST).read_text())
    # what a run with nonce 'abc123' killed halfway leaves: its announced files and its temporaries
    manifest.update(pending=["film.mp4", "clips/s__a.mp4"], run="abc123")
    (out / MANIFEST).write_text(json.dumps(manifest))
    leftovers = [out / ".film.mp4.abc123.mp4", out / "clips" / ".s__a.mp4.abc123.tmp", out / ".stitch-abc123" / "a"]
    lookalikes = [out / ".film.abc123.mp4", out / "clips" / ".s__a.mp4.999.tmp", out / ".stitch" / "stitch-x" / "a",
                  out / ".stitch-notes" / "b", out / ".run.zz.tmp", out / ".cache-photos" / "c.jpg",
                  out / ".plan.old.tmp", out / "takes" / "favourites" / "x.txt"]
    for path in leftovers + lookalikes:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    render(api.plan(story), out=out, backend="animatic")
    assert not [path for path in leftovers if path.exists()]
    assert not (out / ".stitch-abc123").exists()
    assert [path.read_bytes() for path in lookalikes] == [b"half"] * len(lookalikes)


# -- two renders into one folder --------------------------------------------------------------------------------------

def test_two_renders_into_one_folder_and_cache_both_give_the_planned_film(write_story, story_dir: Path) -> None:
    write_story(FILM)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "storyforge", "render", "film.yaml", "--backend", "animatic", "--out", "out"]
    runs = [subprocess.Popen(command, cwd=story_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert all("Traceback" not in err for _, err in results)
    assert count_frames(story_dir / "out" / "film.mp4") == TOTAL
    other = [sys.executable, "-m", "storyforge", "render", "film.yaml", "--backend", "animatic", "--out"]
    runs = [subprocess.Popen(other + [name], cwd=story_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for name in ("x", "y")]  # two folders, one cache
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert [count_frames(story_dir / name / "film.mp4") for name in ("x", "y")] == [TOTAL, TOTAL]


def test_a_second_render_waits_for_the_lock_and_says_so(write_story, story_dir: Path, tmp_path: Path) -> None:
    import fcntl
    import time

    write_story(FILM)
    out = story_dir / "out"
    out.mkdir()
    with open(out / ".storyforge.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        lock.write("4242\n")
        lock.flush()
        log = tmp_path / "stderr.txt"
        with open(log, "w") as stderr:
            run = subprocess.Popen([sys.executable, "-m", "storyforge", "render", "film.yaml", "--backend",
                                    "animatic", "--out", "out"], cwd=story_dir, stderr=stderr, stdout=subprocess.PIPE,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
            deadline = time.monotonic() + 120
            while "waiting" not in log.read_text() and time.monotonic() < deadline and run.poll() is None:
                time.sleep(0.2)
            assert not (out / "film.mp4").exists()  # nothing written while the other render holds the folder
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        assert run.wait(timeout=300) == 0
    notes = [line for line in log.read_text().splitlines() if not line.startswith("warning: ")]
    assert notes[0] == f"note: another render (process 4242) is writing into {out}; waiting for it to finish"
    assert count_frames(out / "film.mp4") == TOTAL
