"""`storyforge export` (and `review`) in hostile surroundings: the render folder is reached as a render reaches it
(no link below the story's folder followed), so no run.json, clip or film.otio is read or written through a link to
elsewhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from surroundings import STORY, TOTAL, error_lines, frames, outside, render, run, snapshot

REFUSAL = ("refusing to use {path}: it is a symbolic link, and storyforge follows no links and uses only its own "
           "regular files and folders in its output folder, cache and lock; move it away (or choose another folder) "
           "and run again")


@pytest.mark.parametrize("where", ["renders", "renders/film"])
def test_export_refuses_a_render_folder_that_is_a_link_to_a_copy_of_a_render_outside(
        write_story, story_dir: Path, tmp_path: Path, where: str) -> None:
    write_story(STORY)
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    link = story_dir / where
    shutil.move(link, target / "moved")  # a real render, now outside: export would write film.otio beside it
    link.symlink_to(target / "moved", target_is_directory=True)
    before = snapshot(target)
    for command in (["export", "film.yaml"], ["review", "film.yaml", "--no-open"]):
        done = run(*command, cwd=story_dir)
        assert (done.returncode, error_lines(done)) == (1, ["error: " + REFUSAL.format(path=link)]), command
    assert snapshot(target) == before
    assert not (story_dir / "film.otio").exists()
    link.unlink()
    assert render(story_dir).returncode == 0
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL
    done = run("export", "film.yaml", cwd=story_dir)
    assert done.returncode == 0 and done.stdout.startswith(f"✓ wrote {story_dir / 'renders' / 'film' / 'film.otio'}")


def test_export_never_writes_film_otio_through_a_link_in_the_render_folder(write_story, story_dir: Path,
                                                                          tmp_path: Path) -> None:
    write_story(STORY)
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    before = snapshot(target)
    otio = story_dir / "renders" / "film" / "film.otio"
    otio.symlink_to(target / "notes.txt")
    done = run("export", "film.yaml", cwd=story_dir)
    assert done.returncode == 1
    assert error_lines(done) == ["error: " + REFUSAL.format(path=otio)]
    assert snapshot(target) == before and otio.is_symlink()


def test_export_without_a_render_folder_exports_the_plan_beside_the_story(write_story, story_dir: Path) -> None:
    write_story(STORY)
    done = run("export", "film.yaml", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert (story_dir / "film.otio").is_file() and not (story_dir / "renders").exists()
