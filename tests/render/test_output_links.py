"""Symlinks in the output folder and the cache: refused with one message naming the path, never followed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from surroundings import STORY, TOTAL, error_lines, frames, outside, render, snapshot

from storyforge import api

REFUSAL = ("refusing to use {path}: it is a symbolic link, and storyforge follows no links and uses only its own "
           "regular files and folders in its output folder, cache and lock; move it away (or choose another folder) "
           "and run again")


def first_render(story_dir: Path) -> Path:
    out = story_dir / "renders" / "film"
    api.render(api.plan(story_dir / "film.yaml"), out=out, backend="animatic")
    return out


def undo(link: Path, backup: Path | None) -> None:
    link.unlink()
    if backup is not None:
        backup.rename(link)


@pytest.mark.parametrize("where", ["renders/film/clips", "renders/film/takes", "renders/film/takes/s__a",
                                   "renders/film/review", "renders", ".storyforge", ".storyforge/cache"])
def test_a_folder_replaced_by_a_link_to_outside_is_refused_and_nothing_outside_changes(
        write_story, story_dir: Path, tmp_path: Path, where: str) -> None:
    write_story(STORY)
    first_render(story_dir)
    target = outside(tmp_path)
    before = snapshot(target)
    link = story_dir / where
    backup = link.with_name(link.name + ".moved")
    link.rename(backup)
    link.symlink_to(target, target_is_directory=True)
    done = render(story_dir)
    assert done.returncode == 1
    assert error_lines(done) == ["error: " + REFUSAL.format(path=link)]
    assert snapshot(target) == before
    undo(link, backup)
    assert render(story_dir).returncode == 0
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL


@pytest.mark.parametrize("where", ["tmp", "trash", "keyframes", "prefix", "entry"])
def test_a_link_inside_the_cache_is_removed_as_a_link_and_never_followed(write_story, story_dir: Path,
                                                                          tmp_path: Path, where: str) -> None:
    write_story(STORY)
    first_render(story_dir)
    target = outside(tmp_path)
    before = snapshot(target)
    cache = story_dir / ".storyforge" / "cache"
    entry = sorted(cache.glob("[0-9a-f][0-9a-f]/*/meta.json"))[0].parent
    link = {"prefix": entry.parent, "entry": entry}.get(where, cache / where)
    if link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)
    done = render(story_dir, "--no-cache")  # writes a scratch cache; the shared one is only opened
    assert done.returncode == 0, done.stderr
    done = render(story_dir)
    assert done.returncode == 0, done.stderr
    assert not link.is_symlink()
    assert snapshot(target) == before
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL


@pytest.mark.parametrize("name", [".storyforge.lock", ".storyforge-out.json", "run.json", "plan.json"])
def test_a_bookkeeping_file_replaced_by_a_link_is_never_written_through(write_story, story_dir: Path,
                                                                         tmp_path: Path, name: str) -> None:
    write_story(STORY)
    out = first_render(story_dir)
    target = outside(tmp_path)
    before = snapshot(target)
    link = out / name
    link.unlink()
    link.symlink_to(target / "notes.txt")  # truncating or replacing it would lose the note
    done = render(story_dir)
    assert done.returncode == 1
    assert error_lines(done)[0].startswith(f"error: refusing to use {link}: it is a symbolic link")
    assert snapshot(target) == before
    link.unlink()
    assert render(story_dir).returncode == 0
    assert frames(out / "film.mp4") == TOTAL


def test_out_itself_a_link_is_refused_before_anything_is_written(write_story, story_dir: Path,
                                                                  tmp_path: Path) -> None:
    write_story(STORY)
    target = outside(tmp_path)
    before = snapshot(target)
    (story_dir / "mine").symlink_to(target, target_is_directory=True)
    done = render(story_dir, "--out", "mine")
    assert (done.returncode, error_lines(done)) == (1, [
        "error: --out mine: it is a symbolic link, and storyforge renders only into a real folder (a link may point "
        "anywhere); name the folder itself, or choose another"])
    assert snapshot(target) == before
    (story_dir / "mine").unlink()
    assert render(story_dir, "--out", "mine").returncode == 0
    assert frames(story_dir / "mine" / "film.mp4") == TOTAL


def test_a_link_to_a_device_or_a_fifo_where_a_clip_goes_is_refused(write_story, story_dir: Path,
                                                                    tmp_path: Path) -> None:
    write_story(STORY)
    out = first_render(story_dir)
    target = outside(tmp_path)
    before = snapshot(target)
    (out / "clips" / "s__b.mp4").unlink()
    (out / "clips" / "s__b.mp4").symlink_to("/dev/zero")
    (out / "takes" / "s__a" / "take2.mp4").unlink()
    os.mkfifo(out / "takes" / "s__a" / "take2.mp4")
    done = render(story_dir)
    assert done.returncode == 1
    assert error_lines(done)[0].startswith("error: refusing to use ")
    assert snapshot(target) == before
    (out / "clips" / "s__b.mp4").unlink()
    (out / "takes" / "s__a" / "take2.mp4").unlink()
    assert render(story_dir).returncode == 0
    assert frames(out / "film.mp4") == TOTAL


def test_a_linked_take_never_becomes_a_poster_on_the_review_page(write_story, story_dir: Path,
                                                                  tmp_path: Path) -> None:
    from surroundings import run

    write_story(STORY)
    out = first_render(story_dir)
    target = outside(tmp_path)
    before = snapshot(target)
    shutil.rmtree(out / "review")
    for take in (1, 2):
        (out / "takes" / "s__a" / f"take{take}.mp4").unlink()
    (out / "takes" / "s__a" / "take2.mp4").symlink_to(target / "clip.mp4")
    (out / "takes" / "s__a" / "take1.mp4").symlink_to(target / "sub", target_is_directory=True)
    done = run("review", "film.yaml", "--no-open", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert not (out / "review" / "s__a.take2.jpg").exists()  # take 1 shows clips/s__a.mp4, storyforge's own
    page = (out / "review.html").read_text(encoding="utf-8")
    assert "takes/s__a/take1.mp4" not in page and "takes/s__a/take2.mp4" not in page
    assert (out / "review" / "s__b.take1.jpg").is_file()  # the other shots' posters are there
    assert snapshot(target) == before
    for take in (1, 2):
        (out / "takes" / "s__a" / f"take{take}.mp4").unlink()
    assert render(story_dir).returncode == 0
    assert frames(out / "film.mp4") == TOTAL


@pytest.mark.parametrize("swap", ["a link to a picture outside", "other bytes"])
def test_a_start_image_swapped_after_planning_is_never_rendered(write_story, story_dir: Path, tmp_path: Path,
                                                                swap: str) -> None:
    from storyforge.errors import StoryforgeError

    story = write_story(STORY)
    plan = api.plan(story)  # checked and hashed here; a studio keeps its plan while files change
    target = outside(tmp_path)
    before = snapshot(target)
    image = story_dir / "refs" / "swan.png"
    kept = image.read_bytes()
    image.unlink()
    if swap == "a link to a picture outside":
        image.symlink_to(target / "picture.png")
        message = ("'refs/swan.png' became a symbolic link after it was checked; put the file itself there (it was "
                   "checked when the story was planned)")
    else:
        image.write_bytes(kept[:-16] + bytes(16))
        message = ("'refs/swan.png' changed after the story was planned (its bytes are not the ones the plan "
                   "hashed); render again, so the plan uses the image as it is now")
    with pytest.raises(StoryforgeError) as raised:
        api.render(plan, out=story_dir / "out", backend="animatic")
    assert str(raised.value) == message
    assert snapshot(target) == before
    image.unlink()
    image.write_bytes(kept)
    assert frames(api.render(api.plan(story), out=story_dir / "out", backend="animatic").film) == TOTAL


def test_a_soundtrack_swapped_for_a_link_after_planning_is_never_cut_in(write_story, story_dir: Path,
                                                                        tmp_path: Path) -> None:
    import subprocess

    from storyforge.clipfile import ffmpeg_exe
    from storyforge.errors import StoryforgeError

    music = story_dir / "music.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(music)],
                   check=True)
    story = write_story(STORY + "audio: music.wav\n")
    plan = api.plan(story)
    target = outside(tmp_path)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=880:duration=2",
                    str(target / "other.wav")], check=True)
    before = snapshot(target)
    kept = music.read_bytes()
    music.unlink()
    music.symlink_to(target / "other.wav")
    with pytest.raises(StoryforgeError) as raised:
        api.render(plan, out=story_dir / "out", backend="animatic")
    assert str(raised.value) == (f"the soundtrack {story_dir.resolve() / 'music.wav'} became a symbolic link "
                                 "after it was checked; put the file itself there (it was checked when the story "
                                 "was planned)")
    assert snapshot(target) == before
    music.unlink()
    music.write_bytes(kept)
    assert frames(api.render(api.plan(story), out=story_dir / "out", backend="animatic").film) == TOTAL
