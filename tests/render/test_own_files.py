"""storyforge's own files read back as untrusted: wrong types, FIFOs, links to /dev/zero, deep or huge JSON.

The cache heals (the entry is discarded with a notice and rendered again); the manifest and the lock stop the
command with one message saying what to do; run.json only informs, so review and export carry on without it.
Every case ends within its time limit, without a traceback, and a render afterwards gives the planned film.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from surroundings import STORY, TOTAL, error_lines, frames, outside, render, run, snapshot

from storyforge.readback import MANIFEST

DEEP = "[" * 100_000 + "]" * 100_000
MANY = json.dumps({"storyforge_out": 1, "files": ["a"] * 2_000_000})


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _zero(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def _text(content: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(content, encoding="utf-8")


def _entries(story_dir: Path, job: str | None = None) -> list[Path]:
    metas = sorted((story_dir / ".storyforge" / "cache").glob("[0-9a-f][0-9a-f]/*/meta.json"))
    return [meta.parent for meta in metas if job is None or json.loads(meta.read_text())["job"] == job]


def _meta_with(**fields: object) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
    return damage


# -- the cache's meta.json heals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "damage"), [
    ("seams a text", _meta_with(seams="many")),
    ("windows of text", _meta_with(seams={"seams": [], "windows": [["a", "b", "c"]]})),
    ("jump a text", _meta_with(seams={"seams": [{"frame": 1, "kind": "continue", "jump": "big", "color_shift": 1}],
                                      "windows": []})),
    ("two million keyframes", _meta_with(keyframes=[0] * 2_000_000)),
    ("a fifo", _fifo), ("a link to /dev/zero", _zero), ("deep", _text(DEEP)), ("not utf-8", _text("\udcff")),
])
def test_a_damaged_meta_json_is_discarded_with_a_notice_and_rendered_again(write_story, story_dir: Path,
                                                                          tmp_path: Path, case: str, damage) -> None:
    write_story(STORY)
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    before = snapshot(target)
    for entry in _entries(story_dir):
        if case == "not utf-8":
            (entry / "meta.json").write_bytes(b"\xff\xfe{")
        else:
            damage(entry / "meta.json")
    done = render(story_dir)
    assert done.returncode == 0, error_lines(done)
    assert "was discarded" in done.stdout + done.stderr
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL
    assert snapshot(target) == before
    assert render(story_dir).returncode == 0  # healed: every entry is whole again


def test_a_tail_whose_header_claims_a_huge_array_is_discarded_before_anything_is_allocated(
        write_story, story_dir: Path) -> None:
    write_story(STORY)
    assert render(story_dir).returncode == 0
    import hashlib

    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 1000000000, 3), }"
    forged = b"\x93NUMPY\x01\x00" + len(header.ljust(118) + "\n").to_bytes(2, "little") + (
        header.ljust(118) + "\n").encode() + b"\0" * 64
    for entry in _entries(story_dir, "s/a"):  # what s/b continues
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "tail.npy").write_bytes(forged)
        meta.update(tail_bytes=len(forged), tail_sha256=hashlib.sha256(forged).hexdigest())
        (entry / "meta.json").write_text(json.dumps(meta))
    for entry in _entries(story_dir, "s/b"):
        shutil.rmtree(entry)  # s/b renders again, from s/a's tail
    done = render(story_dir)
    assert done.returncode == 0, error_lines(done)
    assert "its tail frames do not load (its header says uint8 (1000000000, 1000000000, 3)" in done.stdout + done.stderr
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL


# -- the manifest: one clear error, then it heals ----------------------------------------------------------------


@pytest.mark.parametrize(("case", "damage", "why"), [
    ("a fifo", _fifo, None), ("a link to /dev/zero", _zero, None),
    ("deep", _text(DEEP), "it is not JSON: it is nested too deeply"),
    ("two million entries", _text(MANY), "it holds more than 600000 entries"),
    ("files a number", _text('{"storyforge_out": 1, "files": 5}'), "its 'files' is not a list"),
    ("a list", _text("[1, 2]"), "it is not a storyforge output manifest of format 1"),
])
def test_a_damaged_manifest_is_one_clear_error_and_removing_it_heals(write_story, story_dir: Path,
                                                                     tmp_path: Path, case: str, damage, why) -> None:
    write_story(STORY)
    out = story_dir / "renders" / "film"
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    before = snapshot(target)
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    damage(out / MANIFEST)
    done = render(story_dir)
    assert done.returncode == 1
    if why is None:
        assert error_lines(done)[0].startswith(f"error: refusing to use {out / MANIFEST}: it is ")
    else:
        assert error_lines(done) == [
            f"error: {out / MANIFEST} is not an output manifest storyforge can read ({why}), so storyforge cannot "
            f"tell the files it wrote there from yours; move the files you want to keep out of {out}, remove "
            f"{MANIFEST}, and render again (or render into another folder with --out)"]
    (out / MANIFEST).unlink()
    assert render(story_dir).returncode == 0  # run.json vouches for what the last render wrote
    assert frames(out / "film.mp4") == TOTAL
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert snapshot(target) == before


# -- run.json only informs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "damage"), [
    ("jobs a number", _text('{"storyforge_run": 1, "jobs": 5, "seams": 7}')),
    ("a text jump", lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "seams": [
        {"job": "s/b", "frame": 9, "kind": "continue", "jump": "huge", "color_shift": None}]}))),
    ("clips out of the folder", lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "jobs": [
        {**job, "clip": "../../../outside/clip.mp4", "takes": [{"take": 1, "key": job["key"], "status": "rendered",
                                                                "clip": "/etc/passwd"}]}
        for job in json.loads(path.read_text())["jobs"]]}))),
    ("deep", _text(DEEP)), ("a link to /dev/zero", _zero),
    # names no file system can be asked about (a lone surrogate) or storyforge never writes (control characters)
    ("clips with a lone surrogate", lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "jobs": [
        {**job, "clip": "clips/\ud800.mp4", "takes": [{"take": 1, "key": job["key"], "status": "rendered",
                                                        "clip": "takes/\udfff/take1.mp4"}]}
        for job in json.loads(path.read_text())["jobs"]], "keyframes": [{"image": "keyframes/\ud800.png"}]}))),
    ("texts with a lone surrogate", lambda path: path.write_text(json.dumps({**json.loads(path.read_text()),
        "backend": "\ud800", "cut_key": "\udfff", "jobs": [{**job, "id": job["id"] + "\ud800", "status": "\ud800"}
                                                           for job in json.loads(path.read_text())["jobs"]],
        "seams": [{"job": "s/b", "frame": 9, "kind": "\ud800", "jump": 1.0, "color_shift": 1.0}]}))),
    ("clips with control characters", lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "jobs": [
        {**job, "clip": "clips/a\nb\x1b.mp4"} for job in json.loads(path.read_text())["jobs"]]}))),
])
def test_review_and_export_carry_on_past_a_damaged_run_json(write_story, story_dir: Path, tmp_path: Path,
                                                            case: str, damage) -> None:
    write_story(STORY)
    out = story_dir / "renders" / "film"
    assert render(story_dir).returncode == 0
    target = outside(tmp_path)
    before = snapshot(target)
    damage(out / "run.json")
    review = run("review", "film.yaml", "--no-open", cwd=story_dir)
    exported = run("export", "film.yaml", "--format", "otio", "-o", "film.otio", cwd=story_dir)
    if case == "a link to /dev/zero":  # a link is no render's run.json
        assert (review.returncode, error_lines(review)) == (1, [
            "error: no render in renders/film yet; run `storyforge render film.yaml` first (or name its folder with "
            "--out)"])
    else:
        assert review.returncode == 0, error_lines(review)
    assert exported.returncode == 0, error_lines(exported)
    timeline = (story_dir / "film.otio").read_text(encoding="utf-8")
    assert "outside" not in timeline and "/etc/passwd" not in timeline
    assert snapshot(target) == before
    (out / "run.json").unlink()
    assert render(story_dir).returncode == 0
    assert frames(out / "film.mp4") == TOTAL


# -- the lock: one clear error for a change, the templates' prompts for a plan -------------------------------------


@pytest.mark.parametrize(("case", "content"), [
    ("a 5000-digit pick", '{"storyforge_lock": 1, "story": "film.yaml", "shots": {}, "picks": {"s/a": 1' + "0" * 5000
     + "}}"),
    ("a lone surrogate", '{"storyforge_lock": 1, "story": "film.yaml", "shots": {"s/a\\udc80": {}}}'),
    ("deep", DEEP),
    ("two million picks", json.dumps({"storyforge_lock": 1, "story": "film.yaml", "shots": {},
                                      "picks": {f"s/{n}": 2 for n in range(2_000_000)}})),
    ("a fifo", None), ("a link to a file outside", "link"),
])
def test_a_damaged_lock_warns_a_plan_and_stops_a_pick_with_what_to_do(write_story, story_dir: Path,
                                                                      case: str, content: str | None) -> None:
    write_story(STORY)
    lock = story_dir / "film.lock.json"
    target = outside(story_dir)  # below the working folder: a message must still name the link, not its target
    before = snapshot(target)
    if content is None:
        os.mkfifo(lock)
    elif content == "link":
        lock.symlink_to(target / "notes.txt")
    else:
        lock.write_text(content, encoding="utf-8")
    planned = run("plan", "film.yaml", cwd=story_dir)
    assert planned.returncode == 0, error_lines(planned)
    assert "film.lock.json is not a lock file storyforge can read (" in planned.stdout + planned.stderr
    picked = run("pick", "film.yaml", "s/a", "2", cwd=story_dir)
    assert picked.returncode == 1
    [line] = error_lines(picked)
    assert line.startswith("error: film.lock.json is not a lock file storyforge can read (")
    assert line.endswith("); fix it, or remove it and run `storyforge enhance film.yaml`")
    assert "warning: film.lock.json:1: lock: film.lock.json is not a lock file" in planned.stderr
    assert render(story_dir).returncode == 0
    assert snapshot(target) == before
    lock.unlink()
    assert run("pick", "film.yaml", "s/a", "2", cwd=story_dir).returncode == 0
    assert render(story_dir).returncode == 0
    assert frames(story_dir / "renders" / "film" / "film.mp4") == TOTAL


# -- keyframe pictures: the header's size before any decode --------------------------------------------------------


@pytest.mark.parametrize("case", ["20000x20000 header", "a fifo", "a link to a picture outside", "not a png"])
def test_a_cached_keyframe_that_is_not_storyforges_is_removed_and_made_again(tmp_path: Path, case: str) -> None:
    import struct
    import zlib

    from storyforge.keyframes import KeyframeStore

    store = KeyframeStore(tmp_path / ".storyforge" / "cache" / "keyframes")
    key = "ab" * 32
    good = np.full((16, 16, 3), 90, np.uint8)
    path = store.put(key, good)
    target = outside(tmp_path)
    before = snapshot(target)
    path.unlink()
    if case == "20000x20000 header":
        ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
                         + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    elif case == "a fifo":
        os.mkfifo(path)
    elif case == "a link to a picture outside":
        path.symlink_to(target / "picture.png")
    else:
        path.write_bytes(b"GIF89a" + bytes(100))
    assert store.get(key) is None
    assert len(store.discarded) == 1 and store.discarded[0].startswith(f"keyframe {key[:12]} was discarded: ")
    assert not os.path.lexists(path)
    assert store.get(store.put(key, good).stem) is not None
    assert snapshot(target) == before
