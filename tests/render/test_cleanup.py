"""Cleanup removes exact paths storyforge recorded (and a killed run's exact temporaries), never a name pattern."""

from __future__ import annotations

import json
from pathlib import Path

from surroundings import STORY, TOTAL, frames, outside, render, snapshot

from storyforge import api
from storyforge.readback import MANIFEST

LOOKALIKES = {".stitch-notes/today.txt": b"notes", ".cache-photos/a.jpg": b"photo", ".plan.old.tmp": b"old plan",
              ".film.final.mp4": b"my cut", ".stitch/x": b"x", ".run.zz.tmp": b"zz",
              "clips/.s__a.mp4.999.tmp": b"mine", "takes/s__a/.take1.mp4.keep": b"mine", "review/.poster.jpg": b"me",
              "clips/extra.mp4": b"my own clip", "takes/favourites/fav.txt": b"fav"}


def plant(out: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)


def kept(out: Path, files: dict[str, bytes]) -> bool:
    return all((out / name).read_bytes() == data for name, data in files.items())


def test_user_files_that_look_like_scratch_survive_renders_and_a_shorter_story(write_story, story_dir: Path,
                                                                               tmp_path: Path) -> None:
    story = write_story(STORY)
    out = story_dir / "renders" / "film"
    target = outside(tmp_path)
    before = snapshot(target)
    api.render(api.plan(story), out=out, backend="animatic")
    plant(out, LOOKALIKES)
    (out / "takes" / "empty-favourites").mkdir()
    assert render(story_dir).returncode == 0
    write_story(STORY.replace("render: {takes: 2}", "render: {takes: 1}").replace(
        "      - {id: c, prompt: it sleeps, duration: 9f, image: refs/swan.png}\n", ""))
    assert render(story_dir).returncode == 0  # stale clips, takes and posters of storyforge's go; nothing else
    assert not (out / "clips" / "s__c.mp4").exists() and not (out / "takes" / "s__a" / "take2.mp4").exists()
    assert not (out / "takes" / "s__c").exists()  # storyforge made it, and it is empty now
    assert kept(out, LOOKALIKES) and (out / "takes" / "empty-favourites").is_dir()
    assert snapshot(target) == before
    assert frames(out / "film.mp4") == 17


def test_out_in_another_storys_folder_touches_none_of_its_files(write_story, story_dir: Path,
                                                                tmp_path: Path) -> None:
    write_story(STORY)
    other = story_dir / "other"
    plant(other, {"other.yaml": b"storyforge: 1\n", ".stitch-q1/b": b"b", ".cache-x/c": b"c", ".film.abc.mp4": b"f",
                  "refs/swan.png": (story_dir / "refs" / "swan.png").read_bytes()})
    before = snapshot(other)
    assert render(story_dir, "--out", "other").returncode == 0
    assert render(story_dir, "--out", "other").returncode == 0
    after = snapshot(other)
    assert {name: value for name, value in after.items() if name in before} == before
    assert frames(other / "film.mp4") == TOTAL


def test_a_killed_runs_exact_temporaries_go_and_another_nonces_stay(write_story, story_dir: Path) -> None:
    story = write_story(STORY)
    out = story_dir / "renders" / "film"
    api.render(api.plan(story), out=out, backend="animatic")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest.update(pending=["film.mp4", "clips/s__b.mp4", "takes/s__a/take2.mp4", "review/s__a.take2.jpg"],
                    run="dead1")
    (out / MANIFEST).write_text(json.dumps(manifest))
    theirs = {".film.mp4.dead1.mp4": b"half", "clips/.s__b.mp4.dead1.tmp": b"half",
              "takes/s__a/.take2.mp4.dead1.mp4": b"half", "review/.s__a.take2.jpg.dead1.jpg": b"half",
              ".stitch-dead1/stitch-x/w.mp4": b"half", ".cache-dead1/aa/b/clip.mp4": b"half"}
    others = {".film.mp4.live2.mp4": b"another run's", "clips/.s__b.mp4.dead1.tmp.bak": b"mine",
              ".stitch-dead12/x": b"mine", "clips/.s__c.mp4.dead1.tmp": b"not announced"}
    plant(out, theirs | others)
    assert render(story_dir).returncode == 0
    assert [name for name in theirs if (out / name).exists()] == []
    assert not (out / ".stitch-dead1").exists() and not (out / ".cache-dead1").exists()
    assert kept(out, others)
    assert frames(out / "film.mp4") == TOTAL


def test_a_manifest_naming_paths_out_of_the_folder_removes_nothing_there(write_story, story_dir: Path,
                                                                        tmp_path: Path) -> None:
    story = write_story(STORY)
    out = story_dir / "renders" / "film"
    target = outside(tmp_path)
    before = snapshot(target)
    api.render(api.plan(story), out=out, backend="animatic")
    manifest = json.loads((out / MANIFEST).read_text())
    escapes = [str(target / "notes.txt"), "../../../outside/notes.txt", "clips/../../../../outside/clip.mp4",
               "takes/../../film.yaml", "clips//x", "clips/./s__a.mp4", "takes/s__a"]
    manifest["files"] += escapes
    manifest.update(pending=escapes, run="abc")
    (out / MANIFEST).write_text(json.dumps(manifest))
    story_before = (story_dir / "film.yaml").read_bytes()
    assert render(story_dir).returncode == 0
    assert snapshot(target) == before and (story_dir / "film.yaml").read_bytes() == story_before
    assert (out / "takes" / "s__a").is_dir()
    assert frames(out / "film.mp4") == TOTAL
