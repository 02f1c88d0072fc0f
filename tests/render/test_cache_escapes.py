"""Escapes through the cache and run.json: links and junk where entries belong, paths that leave the folder.

The cache is storyforge's own folder: whatever stands where an entry belongs and is not one (a link, a file, a
FIFO) is removed as what it is (a link as a link, never what it points to) with a notice, and the entry is made
again. Nothing outside the cache and the output folder changes, and the film has its planned frames.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from surroundings import STORY, TOTAL, error_lines, frames, outside, render, run, snapshot

CACHE = Path(".storyforge") / "cache"


def _entries(story_dir: Path) -> list[Path]:
    return [meta.parent for meta in sorted((story_dir / CACHE).glob("[0-9a-f][0-9a-f]/*/meta.json"))]


def _plant(entry: Path, case: str, target: Path) -> None:
    if case == "a file at the entry":
        shutil.rmtree(entry)
        entry.write_bytes(b"junk")
    elif case == "a fifo at the entry":
        shutil.rmtree(entry)
        os.mkfifo(entry)
    elif case == "a link at the entry":
        shutil.rmtree(entry)
        entry.symlink_to(target, target_is_directory=True)
    elif case == "its clip a link to a copy outside":  # same bytes, same size: only the link gives it away
        shutil.copyfile(entry / "clip.mp4", target / "copy.mp4")
        (entry / "clip.mp4").unlink()
        (entry / "clip.mp4").symlink_to(target / "copy.mp4")
    elif case == "its tail a link to /dev/zero":
        if (entry / "tail.npy").exists():
            (entry / "tail.npy").unlink()
            (entry / "tail.npy").symlink_to("/dev/zero")
    elif case == "its meta a folder":
        (entry / "meta.json").unlink()
        (entry / "meta.json").mkdir()


@pytest.mark.parametrize("case", ["a file at the entry", "a fifo at the entry", "a link at the entry",
                                  "its clip a link to a copy outside", "its tail a link to /dev/zero",
                                  "its meta a folder"])
def test_junk_where_a_cache_entry_belongs_heals_with_a_notice(write_story, story_dir: Path, tmp_path: Path,
                                                             case: str) -> None:
    write_story(STORY)
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    for entry in _entries(story_dir):
        _plant(entry, case, target)
    before = snapshot(target)
    done = render(story_dir)
    assert done.returncode == 0, error_lines(done)
    assert "was discarded" in done.stdout + done.stderr
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL
    assert snapshot(target) == before
    again = render(story_dir)  # healed: nothing is discarded any more
    assert again.returncode == 0 and "was discarded" not in again.stdout + again.stderr


def test_a_dead_writers_staging_that_is_a_link_goes_as_a_link(write_story, story_dir: Path, tmp_path: Path) -> None:
    write_story(STORY)
    target = outside(tmp_path)
    before = snapshot(target)
    staging = story_dir / CACHE / "tmp" / f"{socket.gethostname()}-999999999-abcdef"
    staging.parent.mkdir(parents=True)
    staging.symlink_to(target, target_is_directory=True)  # the sweep removes dead writers' staging folders
    assert render(story_dir).returncode == 0
    assert not os.path.lexists(staging)
    assert snapshot(target) == before
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL


def test_export_never_follows_a_clip_of_run_json_out_of_the_folder(write_story, story_dir: Path,
                                                                   tmp_path: Path) -> None:
    write_story(STORY)
    out = story_dir / "renders" / "film"
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    before = snapshot(target)
    (out / "clips" / "evil.mp4").symlink_to(target / "clip.mp4")
    data = json.loads((out / "run.json").read_text())
    escapes = ["clips/evil.mp4", "../../../outside/clip.mp4", str(target / "clip.mp4"), "clips/../../../outside/c"]
    for job, clip in zip(data["jobs"], escapes, strict=False):
        job["clip"] = clip
    (out / "run.json").write_text(json.dumps(data))
    done = run("export", "film.yaml", "--format", "otio", "-o", "film.otio", cwd=story_dir)
    assert done.returncode == 0, error_lines(done)
    timeline = (story_dir / "film.otio").read_text(encoding="utf-8")
    assert "outside" not in timeline and "evil" not in timeline
    assert snapshot(target) == before
    (out / "clips" / "evil.mp4").unlink()
    assert render(story_dir).returncode == 0
    assert frames(out / "film.mp4") == TOTAL


def test_no_cache_scratch_of_a_killed_run_is_removed_by_its_exact_name(write_story, story_dir: Path) -> None:
    write_story(STORY)
    out = story_dir / "renders" / "film"
    assert render(story_dir, "--no-cache").returncode == 0
    manifest = json.loads((out / ".storyforge-out.json").read_text())
    manifest.update(pending=["film.mp4"], run="deadbeef")
    (out / ".storyforge-out.json").write_text(json.dumps(manifest))
    (out / ".cache-deadbeef" / "ab").mkdir(parents=True)
    (out / ".cache-deadbeef" / "ab" / "clip.mp4").write_bytes(b"half")
    (out / ".cache-photos").mkdir()
    (out / ".cache-photos" / "me.jpg").write_bytes(b"me")
    assert render(story_dir, "--no-cache").returncode == 0
    assert not (out / ".cache-deadbeef").exists()
    assert (out / ".cache-photos" / "me.jpg").read_bytes() == b"me"
    assert [p.name for p in out.iterdir() if p.name.startswith(".cache-")] == [".cache-photos"]
    assert frames(out / "film.mp4") == TOTAL
